"""Decides the Warning Event for a failure reported on the audit stream. Pure: values in and out.

The issuer may not write Events (its RBAC is Secrets only), so rollout, which already writes to
the TenantControlPlane, records the issuer's failures there. An Event's name derives from the
failure it reports (TCP, rotation id, time), so a redelivered audit message, or two replicas
handling it, create one Event; the same rotation failing again later is a new failure and gets
its own Event.

Failures older than `MAX_AGE` (how long the API server keeps an Event by default) are left out:
a consumer created on a long audit trail, or a rollout that was down for a while, posts no stale
Events.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from libs.contracts.api import AuditEvent, RotationFailed
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


def failure(event: AuditEvent, now: datetime, max_age: timedelta = MAX_AGE) -> Failure | Ignored:
    """The failure `event` reports, or why it calls for no Event."""
    if not isinstance(event, RotationFailed):
        return Ignored(f"{type(event).__name__} is not a failure recorded as an Event")
    at = _utc(event.at)
    if now - at > max_age:
        return Ignored(f"the failure is older than {max_age} (at {at.isoformat()})")
    key = "|".join(("rotation.failed", event.namespace, event.tcp, event.rotation_id))
    return Failure(
        reason=ROTATION_FAILED,
        message=rotation_failed_message(event),
        at=at,
        key=f"{key}|{at.isoformat()}",
    )


def failure_event(found: Failure, tcp: Mapping[str, Any]) -> dict[str, Any]:
    """The Warning Event about `tcp` that records `found`, named after the failure."""
    return tcp_event(
        tcp, reason=found.reason, message=found.message, warning=True, now=found.at, key=found.key
    )
