"""The CloudEvents headers of audit events (pure)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from libs.contracts.api import CaRotationCompleted, ExternalCertificateExpiring
from libs.contracts.cloudevents import (
    cloudevent_headers,
    cloudevent_source,
    cloudevent_type,
    rfc3339,
)

AT = datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)


def test_headers_of_an_event() -> None:
    event = CaRotationCompleted(namespace="ns", tcp="t", rotation_id="r", at=AT)
    assert cloudevent_headers(event, msg_id="audit:x:1", service="certlc-rollout") == {
        "ce-specversion": "1.0",
        "ce-id": "audit:x:1",
        "ce-source": "/certlc/rollout",
        "ce-type": "io.certlc.ca-rotation.completed.v1",
        "ce-subject": "ns/t",
        "ce-time": "2026-01-02T03:04:05.678901Z",
        "content-type": "application/json",
    }


def test_type_keeps_the_tag_and_adds_a_version() -> None:
    assert (
        cloudevent_type(ExternalCertificateExpiring)
        == "io.certlc.datastore.external-certificate-expiring.v1"
    )


@pytest.mark.parametrize(
    ("service", "source"), [("issuer", "/certlc/issuer"), ("certlc-issuer", "/certlc/issuer")]
)
def test_source(service: str, source: str) -> None:
    assert cloudevent_source(service) == source


@pytest.mark.parametrize(
    ("moment", "text"),
    [
        (AT, "2026-01-02T03:04:05.678901Z"),
        (AT.replace(tzinfo=None), "2026-01-02T03:04:05.678901Z"),
        (AT.astimezone(timezone(timedelta(hours=2))), "2026-01-02T03:04:05.678901Z"),
        (AT.replace(microsecond=0), "2026-01-02T03:04:05Z"),
    ],
)
def test_time_is_rfc3339_in_utc(moment: datetime, text: str) -> None:
    assert rfc3339(moment) == text
