"""`certlc audit`: audit events as table lines or JSON lines, one event at a time.

Lines are printed as events arrive (a follower cannot size columns in advance), so the table
uses fixed column widths; a longer value just pushes the rest of its line to the right.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from libs.cli._opsutil import stamp
from libs.contracts.api import (
    AnnotationRejected,
    Audit,
    AuditEvent,
    CaExpiring,
    CaRotationCompleted,
    CaRotationStarted,
    CertificateIssued,
    ExternalCertificateExpiring,
    LoopGuardTripped,
    RenewalOutsideWindow,
    RolloutCompleted,
    RolloutFailed,
    RolloutStarted,
    RotationFailed,
    RotationRejected,
    RotationRequested,
    RotationStepDone,
    SecretWrittenEvent,
)

WIDTHS = (20, 28, 22, 12)  # TIME, NAMESPACE/TCP, EVENT, ROTATION
HEADER = ("TIME", "NAMESPACE/TCP", "EVENT", "ROTATION", "DETAIL")


def event_type(event: AuditEvent) -> str:
    tag = type(event).__struct_config__.tag
    return str(tag)


def _requested(e: RotationRequested) -> str:
    text = f"{e.reason!s}: {', '.join(e.secrets)}"
    if e.ca_rotation:
        text += " (CA rotation)"
    text += f" by {e.requester}" if e.requester else ""
    if e.not_before is not None:
        text += f", waiting for the maintenance window at {stamp(e.not_before)}"
    if e.step:
        text += f" (phased rotation of {e.phased}: {e.step})"
    return text


def _step_done(e: RotationStepDone) -> str:
    text = f"{e.secret}: {e.step} rolled out"
    if not e.next_step:
        return text + "; phased rotation complete"
    if e.moves_on_at is None:
        return text + f"; {e.next_step} waits for --complete"
    return text + f"; {e.next_step} at {stamp(e.moves_on_at)}"


_DETAILS: dict[type[Any], Callable[[Any], str]] = {
    RotationRequested: _requested,
    RotationRejected: lambda e: (
        f"{e.code} {e.message}" + (f" (by {e.requester})" if e.requester else "")
    ),
    CertificateIssued: lambda e: f"{e.secret} serial {e.serial} until {stamp(e.not_after)}",
    SecretWrittenEvent: lambda e: f"{e.secret} {e.action}",
    RotationFailed: lambda e: e.message + (" (will retry)" if e.retryable else ""),
    RolloutStarted: lambda e: f"deployment {e.deployment}: {', '.join(e.secrets)}",
    RolloutCompleted: lambda e: f"deployment {e.deployment} in {e.duration_seconds:.1f}s",
    RolloutFailed: lambda e: f"deployment {e.deployment}: {e.message}",
    CaRotationStarted: lambda e: f"{len(e.secrets)} Secret(s)",
    CaRotationCompleted: lambda e: "",
    LoopGuardTripped: lambda e: f"{e.secret}: {e.message}",
    CaExpiring: lambda e: f"{e.secret} expires {stamp(e.not_after)}",
    ExternalCertificateExpiring: lambda e: f"datastore {e.datastore}: {e.message}",
    AnnotationRejected: lambda e: f"{e.annotation}={e.value!r}: {e.message}",
    RenewalOutsideWindow: lambda e: e.message,
    RotationStepDone: _step_done,
}


def detail(event: Audit) -> str:
    """A one-line summary of what the event says beyond its type."""
    describe = _DETAILS.get(type(event))
    return describe(event) if describe is not None else ""


def _line(cells: tuple[str, ...]) -> str:
    padded = [cell.ljust(width) for cell, width in zip(cells, WIDTHS, strict=False)]
    return "  ".join([*padded, *cells[len(WIDTHS) :]]).rstrip()


def header_line() -> str:
    return _line(HEADER)


def table_line(event: Audit) -> str:
    return _line(
        (
            stamp(event.at),
            f"{event.namespace}/{event.tcp}",
            event_type(event),
            event.rotation_id[:12] or "-",
            detail(event),
        )
    )
