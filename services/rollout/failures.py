"""Decides the Warning Event for a failure or warning reported on the audit stream. Pure: values
in and out.

The issuer and lifecycle may not write Events (their RBAC has no Events), so rollout, which
already writes to the TenantControlPlane, records what they report there: a rotation that
failed, a loop-guard trip, a CA or an external datastore certificate near its end, an annotation
that was rejected. `WARNINGS` maps each such audit type to the Event's reason, message and
identity; every other audit type gets no Event. An Event's name derives from the occurrence it
reports (the TCP, and for a failure the rotation id and time), so a redelivered audit message, or
two replicas handling it, create one Event; the same rotation failing again later is a new
failure and gets its own Event.

Reports older than `MAX_AGE` (how long the API server keeps an Event by default) are left out:
a consumer created on a long audit trail, or a rollout that was down for a while, posts no stale
Events.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from libs.contracts.api import (
    AnnotationRejected,
    AuditEvent,
    CaExpiring,
    ExternalCertificateExpiring,
    LoopGuardTripped,
    RenewalOutsideWindow,
    RotationFailed,
)
from services.rollout.events import tcp_event

ROTATION_FAILED = "RotationFailed"
MAX_AGE = timedelta(hours=1)  # kube-apiserver --event-ttl default
SHOWN_SECRETS = 4  # Secrets named in an Event message; the rest are counted


@dataclass(frozen=True, slots=True)
class Failure:
    """A failure to record: the Event's reason, message, time and identity."""

    reason: str
    message: str
    at: datetime
    key: str


@dataclass(frozen=True, slots=True)
class Ignored:
    """No Event, and why."""

    why: str


def _utc(at: datetime) -> datetime:
    """In UTC (a time without an offset is taken as UTC)."""
    return at.astimezone(UTC) if at.tzinfo is not None else at.replace(tzinfo=UTC)


def _secrets(tcp: str, kinds: tuple[str, ...]) -> str:
    names = [f"{tcp}-{kind}" for kind in dict.fromkeys(kinds)]
    shown = ", ".join(names[:SHOWN_SECRETS])
    more = len(names) - SHOWN_SECRETS
    return f"{shown} and {more} more" if more > 0 else shown


def rotation_failed_message(event: RotationFailed) -> str:
    """What the Event says: which Secrets, which rotation, whether it is retried, the error."""
    what = f"rotation of {_secrets(event.tcp, event.secrets)}" if event.secrets else "rotation"
    rotation = f" (rotation {event.rotation_id})" if event.rotation_id else ""
    outcome = "will be retried" if event.retryable else "not retried"
    if event.retryable and event.next_retry is not None:
        attempt = f" after attempt {event.attempt}" if event.attempt else ""
        outcome = f"will be retried at {_utc(event.next_retry):%Y-%m-%dT%H:%M:%SZ}{attempt}"
    return f"{what[0].upper()}{what[1:]} failed{rotation}, {outcome}: {event.message}"


@dataclass(frozen=True, slots=True)
class Recorded:
    """How one audit type is recorded: the Event's reason, its message, and what identifies the
    occurrence (with the event's type, namespace and TCP: the Event's name derives from it)."""

    reason: str
    message: Callable[[Any], str]
    occurrence: Callable[[Any], str]


def _stamp(at: datetime) -> str:
    return f"{_utc(at):%Y-%m-%dT%H:%M:%SZ}"


WARNINGS: Mapping[type[AuditEvent], Recorded] = {
    RotationFailed: Recorded(
        ROTATION_FAILED,
        rotation_failed_message,
        lambda e: f"{e.rotation_id}|{_utc(e.at).isoformat()}",
    ),
    LoopGuardTripped: Recorded(
        "LoopGuardTripped", lambda e: e.message, lambda e: f"{e.secret}|{e.issued}"
    ),
    CaExpiring: Recorded(
        "CertificateAuthorityExpiring",
        lambda e: (
            f"{e.secret} expires {_stamp(e.not_after)}; rotate it before then (docs/operations.md)"
        ),
        lambda e: f"{e.secret}|{_utc(e.not_after).isoformat()}",
    ),
    ExternalCertificateExpiring: Recorded(
        "ExternalCertificateExpiring",
        lambda e: e.message,
        lambda e: f"{e.datastore}|{_utc(e.not_after).isoformat()}",
    ),
    AnnotationRejected: Recorded(
        "AnnotationRejected",
        lambda e: f"annotation {e.annotation}={e.value!r} ignored: {e.message}",
        lambda e: f"{e.annotation}|{e.value}",
    ),
    RenewalOutsideWindow: Recorded(
        "RenewalOutsideWindow",
        lambda e: e.message,
        lambda e: f"{','.join(e.secrets)}|{_utc(e.not_after).isoformat()}",
    ),
}
"""The audit types recorded as Warning Events; `topology.ROLLOUT_FAILURES_CONSUMER` delivers
the whole audit stream, and the other types are acknowledged without one."""


def failure(event: AuditEvent, now: datetime, max_age: timedelta = MAX_AGE) -> Failure | Ignored:
    """The Warning `event` reports, or why it calls for no Event."""
    how = WARNINGS.get(type(event))
    if how is None:
        return Ignored(f"{type(event).__name__} is not recorded as an Event")
    at = _utc(event.at)
    if now - at > max_age:
        return Ignored(f"the report is older than {max_age} (at {at.isoformat()})")
    tag = type(event).__struct_config__.tag
    key = "|".join((str(tag), event.namespace, event.tcp, how.occurrence(event)))
    return Failure(reason=how.reason, message=how.message(event), at=at, key=key)


def failure_event(found: Failure, tcp: Mapping[str, Any]) -> dict[str, Any]:
    """The Warning Event about `tcp` that records `found`, named after the failure."""
    return tcp_event(
        tcp, reason=found.reason, message=found.message, warning=True, now=found.at, key=found.key
    )
