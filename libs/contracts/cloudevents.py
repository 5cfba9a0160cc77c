"""Audit events as CloudEvents 1.0 in the NATS binding's binary content mode.

Each audit message carries, beside `Nats-Msg-Id`, the CloudEvents attributes as `ce-` headers;
its body is the audit event's JSON, unchanged (so `datacontenttype` is `application/json`, in
the `content-type` header as the binding has it):

    ce-specversion  1.0
    ce-id           the message's Nats-Msg-Id (unique per event; a repeat is the same event)
    ce-source       /certlc/<service> (the publishing service: lifecycle, issuer, rollout)
    ce-type         io.certlc.<event type>.v1, e.g. io.certlc.rotation.requested.v1
    ce-subject      <namespace>/<tcp>
    ce-time         the event's `at`, RFC 3339 in UTC
    content-type    application/json

The `v1` of ce-type follows the contract's evolution rules (docs/subjects.md): fields are only
ever added with defaults, so the version changes only if an event's meaning ever does.
"""

from __future__ import annotations

from datetime import UTC, datetime

from libs.contracts.api import AuditEvent

SPECVERSION = "1.0"
TYPE_PREFIX = "io.certlc."
TYPE_VERSION = "v1"
CONTENT_TYPE = "application/json"


def cloudevent_type(kind: type[AuditEvent]) -> str:
    """`io.certlc.<tag>.v1` for the audit events of type `kind`."""
    tag = kind.__struct_config__.tag
    assert isinstance(tag, str)
    return f"{TYPE_PREFIX}{tag}.{TYPE_VERSION}"


def cloudevent_source(service: str) -> str:
    """The source of events published by `service` (`issuer` or `certlc-issuer`)."""
    return f"/certlc/{service.removeprefix('certlc-')}"


def rfc3339(moment: datetime) -> str:
    """`2026-01-02T03:04:05.678901Z`; a naive datetime is taken as UTC."""
    aware = moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
    return aware.astimezone(UTC).isoformat().replace("+00:00", "Z")


def cloudevent_headers(event: AuditEvent, *, msg_id: str, service: str) -> dict[str, str]:
    """The binary-mode CloudEvents headers of one audit message."""
    return {
        "ce-specversion": SPECVERSION,
        "ce-id": msg_id,
        "ce-source": cloudevent_source(service),
        "ce-type": cloudevent_type(type(event)),
        "ce-subject": f"{event.namespace}/{event.tcp}",
        "ce-time": rfc3339(event.at),
        "content-type": CONTENT_TYPE,
    }
