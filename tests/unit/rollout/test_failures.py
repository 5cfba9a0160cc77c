"""Rollout's Warning Events for failures on the audit stream: which failures, what the Event says,
how it is named, and the consumer that brings them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import msgspec
import pytest

from libs.contracts import subjects
from libs.contracts.api import (
    AnnotationRejected,
    AuditEvent,
    CaExpiring,
    CertificateIssued,
    ExternalCertificateExpiring,
    LoopGuardTripped,
    RenewalOutsideWindow,
    RolloutFailed,
    RolloutStarted,
    RotationFailed,
    audit_type_token,
)
from libs.runtime import topology
from services.rollout.events import event_name
from services.rollout.failures import (
    MAX_AGE,
    ROTATION_FAILED,
    WARNINGS,
    Failure,
    Ignored,
    failure,
    failure_event,
)

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
TCP: dict[str, Any] = {
    "apiVersion": "kamaji.clastix.io/v1alpha1",
    "kind": "TenantControlPlane",
    "metadata": {"name": "k8s-126", "namespace": "prod", "uid": "u-1", "resourceVersion": "7"},
}
CA_BROKEN = "ca Secret, key 'ca.crt': signer private key does not match the certificate"


def failed(**changes: Any) -> RotationFailed:
    fields: dict[str, Any] = {
        "namespace": "prod",
        "tcp": "k8s-126",
        "rotation_id": "r-1",
        "at": NOW - timedelta(minutes=1),
        "message": CA_BROKEN,
        "retryable": False,
        "secrets": ("admin-kubeconfig",),
        **changes,
    }
    return RotationFailed(**fields)


def recorded(event: AuditEvent, now: datetime = NOW) -> Failure:
    found = failure(event, now)
    assert isinstance(found, Failure), found
    return found


def test_a_failed_rotation_is_a_warning_event_on_its_tcp_naming_secret_and_error() -> None:
    body = failure_event(recorded(failed()), TCP)
    assert body["type"] == "Warning"
    assert body["reason"] == ROTATION_FAILED == "RotationFailed"
    assert body["message"] == (
        f"Rotation of k8s-126-admin-kubeconfig failed (rotation r-1), not retried: {CA_BROKEN}"
    )
    assert body["metadata"]["namespace"] == "prod"
    assert body["involvedObject"] == {
        "apiVersion": "kamaji.clastix.io/v1alpha1",
        "kind": "TenantControlPlane",
        "name": "k8s-126",
        "namespace": "prod",
        "uid": "u-1",
        "resourceVersion": "7",
    }
    # the time of the failure, not of its recording
    assert body["firstTimestamp"] == body["lastTimestamp"] == "2026-06-01T11:59:00Z"
    assert body["count"] == 1
    assert body["source"] == {"component": "certlc-rollout"}


def test_the_same_failure_gets_the_same_name_whenever_and_wherever_it_is_handled() -> None:
    first = failure_event(recorded(failed()), TCP)
    redelivered = failure_event(recorded(failed(), NOW + timedelta(minutes=5)), TCP)
    assert first == redelivered
    name = first["metadata"]["name"]
    assert name.startswith("k8s-126.")
    assert len(name.split(".")[1]) == 16


@pytest.mark.parametrize(
    "other",
    [
        failed(at=NOW - timedelta(seconds=30)),  # the same rotation failing again later
        failed(rotation_id="r-2"),
        failed(tcp="k8s-127"),
        failed(namespace="staging"),
    ],
)
def test_another_failure_gets_another_name(other: RotationFailed) -> None:
    assert (
        failure_event(recorded(other), TCP)["metadata"]["name"]
        != failure_event(recorded(failed()), TCP)["metadata"]["name"]
    )


def test_a_failure_older_than_an_event_lives_gets_no_event() -> None:
    assert timedelta(hours=1) == MAX_AGE
    old = failed(at=NOW - MAX_AGE - timedelta(seconds=1))
    found = failure(old, NOW)
    assert isinstance(found, Ignored)
    assert "older than" in found.why
    assert isinstance(failure(failed(at=NOW - MAX_AGE), NOW), Failure)
    assert isinstance(failure(failed(at=NOW + timedelta(minutes=2)), NOW), Failure)  # clock skew


def test_times_with_another_offset_or_none_are_taken_in_utc() -> None:
    plus_two = timezone(timedelta(hours=2))
    local = recorded(failed(at=datetime(2026, 6, 1, 13, 59, tzinfo=plus_two)))
    naive = recorded(failed(at=datetime(2026, 6, 1, 11, 59)))
    assert local == naive == recorded(failed())
    assert failure_event(local, TCP)["firstTimestamp"] == "2026-06-01T11:59:00Z"


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"retryable": True}, "Rotation of k8s-126-admin-kubeconfig failed (rotation r-1), "),
        ({"secrets": ()}, "Rotation failed (rotation r-1), "),
        ({"secrets": (), "rotation_id": ""}, "Rotation failed, "),
        (
            {"secrets": ("ca", "api-server-certificate", "admin-kubeconfig", "ca")},
            "Rotation of k8s-126-ca, k8s-126-api-server-certificate, k8s-126-admin-kubeconfig "
            "failed (rotation r-1), ",
        ),
        (
            {"secrets": ("a", "b", "c", "d", "e", "f")},
            "Rotation of k8s-126-a, k8s-126-b, k8s-126-c, k8s-126-d and 2 more failed "
            "(rotation r-1), ",
        ),
    ],
)
def test_the_message_names_what_it_knows(changes: dict[str, Any], message: str) -> None:
    text = recorded(failed(**changes)).message
    assert text.startswith(message)
    outcome = "will be retried" if changes.get("retryable") else "not retried"
    assert text.endswith(f"{outcome}: {CA_BROKEN}")


def test_a_long_error_is_cut_to_what_an_event_message_holds() -> None:
    body = failure_event(recorded(failed(message="x " * 1000)), TCP)
    assert len(body["message"]) == 1024


@pytest.mark.parametrize(
    "event",
    [
        RolloutFailed(
            namespace="prod", tcp="k8s-126", at=NOW, deployment="k8s-126", message="timeout"
        ),
        RolloutStarted(namespace="prod", tcp="k8s-126", at=NOW, deployment="k8s-126"),
        CertificateIssued(
            namespace="prod",
            tcp="k8s-126",
            at=NOW,
            secret="k8s-126-ca",
            kind="ca",
            serial="01",
            not_before=NOW,
            not_after=NOW,
            fingerprint_sha256="ab",
        ),
    ],
)
def test_other_audit_events_get_no_event_here(event: AuditEvent) -> None:
    found = failure(event, NOW)
    assert isinstance(found, Ignored)
    assert type(event).__name__ in found.why


def test_random_names_remain_for_events_without_a_key() -> None:
    assert event_name("k8s-126") != event_name("k8s-126")
    assert event_name("k8s-126", "a") == event_name("k8s-126", "a") != event_name("k8s-126", "b")


def _matches(pattern: str, subject: str) -> bool:
    """NATS subject matching: `*` one token, `>` the rest."""
    want, have = pattern.split("."), subject.split(".")
    for i, token in enumerate(want):
        if token == ">":
            return len(have) > i
        if i >= len(have) or (token != "*" and token != have[i]):
            return False
    return len(want) == len(have)


def test_the_consumer_follows_the_whole_audit_stream_with_one_filter() -> None:
    spec = topology.ROLLOUT_FAILURES_CONSUMER
    assert spec in topology.CONSUMERS
    assert spec.stream == subjects.AUDIT_STREAM
    assert spec.durable == subjects.ROLLOUT_FAILURES_DURABLE
    assert isinstance(spec.filter_subject, str)  # one subject: nats-server 2.9 ignores a list
    for kind in WARNINGS:
        token = audit_type_token(kind)
        assert _matches(spec.filter_subject, subjects.audit("prod", "cp.team-a", token)), kind
    # no other consumer of the same durable name on any stream
    assert len({(c.stream, c.durable) for c in topology.CONSUMERS}) == len(topology.CONSUMERS)


def test_the_message_says_when_the_next_attempt_comes() -> None:
    retry = datetime(2026, 6, 1, 12, 5, tzinfo=UTC)
    text = recorded(failed(retryable=True, attempt=3, next_retry=retry)).message
    assert text.endswith(f"will be retried at 2026-06-01T12:05:00Z after attempt 3: {CA_BROKEN}")


LATER = NOW + timedelta(days=30)
WARNED: list[tuple[AuditEvent, AuditEvent, str, str]] = [
    # (a report, the same occurrence reported again later, the Event's reason, text it holds)
    (
        LoopGuardTripped(
            namespace="prod", tcp="k8s-126", at=NOW, secret="k8s-126-api-server-certificate",
            issued=3, window_seconds=600, message="re-issued 3 times in 10m; fix the cause",
        ),
        LoopGuardTripped(
            namespace="prod", tcp="k8s-126", at=NOW + timedelta(minutes=3),
            secret="k8s-126-api-server-certificate", issued=3, window_seconds=600,
            message="re-issued 3 times in 10m; fix the cause",
        ),
        "LoopGuardTripped",
        "re-issued 3 times",
    ),
    (
        CaExpiring(namespace="prod", tcp="k8s-126", at=NOW, secret="k8s-126-ca", not_after=LATER),
        CaExpiring(
            namespace="prod", tcp="k8s-126", at=NOW + timedelta(minutes=5), secret="k8s-126-ca",
            not_after=LATER,
        ),
        "CertificateAuthorityExpiring",
        "k8s-126-ca expires 2026-07-01T12:00:00Z",
    ),
    (
        ExternalCertificateExpiring(
            namespace="prod", tcp="k8s-126", at=NOW, datastore="pg", not_after=LATER,
            message="DataStore pg: the external client certificate expires 2026-07-01",
        ),
        ExternalCertificateExpiring(
            namespace="prod", tcp="k8s-126", at=NOW + timedelta(minutes=1), datastore="pg",
            not_after=LATER, message="DataStore pg: the external client certificate expires",
        ),
        "ExternalCertificateExpiring",
        "DataStore pg",
    ),
    (
        AnnotationRejected(
            namespace="prod", tcp="k8s-126", at=NOW,
            annotation="certlc.kamaji.clastix.io/key-algorithm", value="DSA-1024",
            message="not one of RSA-2048, ECDSA-P256",
        ),
        AnnotationRejected(
            namespace="prod", tcp="k8s-126", at=NOW + timedelta(minutes=2),
            annotation="certlc.kamaji.clastix.io/key-algorithm", value="DSA-1024",
            message="not one of RSA-2048, ECDSA-P256",
        ),
        "AnnotationRejected",
        "certlc.kamaji.clastix.io/key-algorithm='DSA-1024' ignored: not one of",
    ),
    (
        RenewalOutsideWindow(
            namespace="prod", tcp="k8s-126", at=NOW, secrets=("k8s-126-api-server-certificate",),
            not_after=LATER, message="no maintenance window opens before 2026-07-01T10:00:00Z",
        ),
        RenewalOutsideWindow(
            namespace="prod", tcp="k8s-126", at=NOW + timedelta(minutes=3),
            secrets=("k8s-126-api-server-certificate",), not_after=LATER,
            message="no maintenance window opens before 2026-07-01T10:00:00Z",
        ),
        "RenewalOutsideWindow",
        "no maintenance window opens before",
    ),
]  # fmt: skip


@pytest.mark.parametrize(("event", "again", "reason", "text"), WARNED)
def test_each_warning_type_gets_one_event_per_occurrence(
    event: AuditEvent, again: AuditEvent, reason: str, text: str
) -> None:
    first, second = recorded(event), recorded(again)
    assert first.reason == reason
    assert text in first.message
    body = failure_event(first, TCP)
    assert body["type"] == "Warning"
    assert body["reason"] == reason
    # the same occurrence reported again (a re-evaluation, a restarted lifecycle): one Event
    assert body["metadata"]["name"] == failure_event(second, TCP)["metadata"]["name"]
    other_tcp = recorded(msgspec.structs.replace(event, tcp="k8s-127"))
    assert other_tcp.key != first.key


def test_every_warning_type_is_tested() -> None:
    assert {type(e) for e, *_ in WARNED} | {RotationFailed} == set(WARNINGS)
