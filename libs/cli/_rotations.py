"""The rotation records in `certlc status`: read from the bus, shown as a table or as data.

Only open records are shown (in progress or failed): a completed rotation is in the audit trail.
Reading them needs NATS; without it `status` still reports the certificates, and says why the
rotations are missing.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from libs.bus import Bus, open_bucket
from libs.bus.read import StreamNotFoundError, open_reader
from libs.cli._opsutil import phased_target, stamp, table
from libs.contracts.budget import SLOTS_BUCKET, SLOTS_KEY, Entry, Slots, queue
from libs.contracts.codec import MalformedMessage
from libs.contracts.records import ROTATIONS_BUCKET, Phase, RotationRecord, tcp_prefix
from libs.pki import short_human_duration
from libs.runtime.records import decode_record
from libs.runtime.slots import decode_slots
from libs.runtime.topology import RECORDS_STREAM


def records_filter(namespace: str | None, tcp: str | None) -> str:
    """The subjects of the records of one TCP, of a namespace, or of all."""
    if namespace is None:
        return f"$KV.{ROTATIONS_BUCKET}.>"
    if tcp is None:
        return f"$KV.{ROTATIONS_BUCKET}.{namespace}.>"
    return f"$KV.{ROTATIONS_BUCKET}.{tcp_prefix(namespace, tcp)}*"


async def read_open_records(
    bus: Bus, namespace: str | None, tcp: str | None, *, all_tcps_named: str | None = None
) -> list[RotationRecord]:
    """Open records, oldest request first. `all_tcps_named`: with no namespace, only TCPs of
    that name (`status -A NAME`)."""
    try:
        reader = await open_reader(bus, RECORDS_STREAM, records_filter(namespace, tcp))
    except StreamNotFoundError:
        return []  # no rotation was ever recorded here
    try:
        stored = await reader.read_available(idle_timeout=2.0)
    finally:
        await reader.close()
    latest: dict[str, bytes] = {}
    for message in stored:
        latest[message.subject] = message.data  # one per key; a delete leaves empty data
    records: list[RotationRecord] = []
    for data in latest.values():
        if not data:
            continue
        try:
            record = decode_record(data)
        except MalformedMessage:
            continue
        if record.open and (all_tcps_named is None or record.tcp == all_tcps_named):
            records.append(record)
    return sorted(records, key=lambda r: (r.requested_at, r.id))


def _next(record: RotationRecord, now: datetime) -> str:
    if record.next_retry is None:
        return "-"
    wait = record.next_retry - now
    return "due" if wait.total_seconds() <= 0 else f"in {short_human_duration(wait)}"


def waits_for(record: RotationRecord, now: datetime) -> str:
    """What a phased rotation waits for ("" for one that waits for nothing)."""
    following = record.step.next
    if record.phase is not Phase.WAITING or following is None:
        return ""
    ref = f"{record.namespace}/{record.tcp}"
    target = phased_target(record.phased)
    moves_on = record.moves_on_at()
    if moves_on is None:
        return (
            f"{following.value} waits for the operator: certlc rotate {ref} {target} --complete "
            "(or --abort to back out)"
        )
    left = moves_on - now
    when = "now" if left.total_seconds() <= 0 else f"in {short_human_duration(left)}"
    return (
        f"{following.value} starts {when} ({stamp(moves_on)}); sooner with "
        f"certlc rotate {ref} {target} --complete"
    )


def _phase(record: RotationRecord) -> str:
    text = record.phase.value + (f" ({record.stage.value})" if record.stage.value else "")
    if record.step.value:
        return f"{record.step.value}: {text}"
    return text


def _what(record: RotationRecord) -> str:
    shown = ", ".join(record.secrets[:3])
    more = len(record.secrets) - 3
    return f"{shown} (+{more})" if more > 0 else shown


def render_records(records: Sequence[RotationRecord], now: datetime) -> list[str]:
    """The ROTATIONS table and one note per failed record (its last error)."""
    if not records:
        return []
    rows = [
        [
            f"{r.namespace}/{r.tcp}",
            r.id,
            r.reason.value
            + (" (CA)" if r.ca_rotation else "")
            + (f" (phased {r.phased})" if r.phased else ""),
            _phase(r),
            r.rollout.value or "-",
            str(r.attempts),
            _next(r, now),
            short_human_duration(now - r.requested_at),
            _what(r),
        ]
        for r in records
    ]
    header = ["NAMESPACE/TCP", "ROTATION", "REASON", "PHASE", "ROLLOUT", "ATTEMPTS", "NEXT TRY"]
    lines = ["", *table([*header, "AGE", "SECRETS"], rows)]
    notes = [
        f"- {r.namespace}/{r.tcp}: rotation {r.id}: {r.last_error}"
        for r in records
        if r.phase is Phase.FAILED and r.last_error
    ]
    notes += [
        f"- {r.namespace}/{r.tcp}: phased rotation {r.id} of {r.phased}: {r.step.value} rolled "
        f"out; {wait}"
        for r in records
        if (wait := waits_for(r, now))
    ]
    return [*lines, *(["", *notes] if notes else [])]


def record_data(record: RotationRecord, now: datetime) -> dict[str, Any]:
    def when(moment: datetime | None) -> str | None:
        return stamp(moment) if moment is not None else None

    phased = (
        {
            "phased": record.phased,
            "step": record.step.value,
            "stepDoneAt": when(record.step_done_at),
            "movesOnAt": when(record.moves_on_at()),
            "waitingFor": waits_for(record, now) or None,
            "aborted": record.aborted,
        }
        if record.phased
        else {}
    )

    return {
        "namespace": record.namespace,
        "tcp": record.tcp,
        "id": record.id,
        "reason": record.reason.value,
        "caRotation": record.ca_rotation,
        "requester": record.requester,
        "secrets": list(record.secrets),
        "phase": record.phase.value,
        "stage": record.stage.value or None,
        "rollout": record.rollout.value or None,
        "attempts": record.attempts,
        "lastError": record.last_error or None,
        "nextRetry": when(record.next_retry),
        "requestedAt": when(record.requested_at),
        "updatedAt": when(record.updated_at),
        "rolloutSince": when(record.rollout_since),
        **phased,
    }


async def read_slots(bus: Bus) -> Slots:
    """The rollout budget's document; an empty one when no budget was ever used."""
    bucket = await open_bucket(bus, SLOTS_BUCKET)
    return Slots() if bucket is None else decode_slots(await bucket.get(SLOTS_KEY))


def _limit(value: int) -> str:
    return str(value) if value else "no limit"


def _mine(entries: Sequence[Entry], namespace: str | None, tcp: str | None) -> list[Entry]:
    return [
        e
        for e in entries
        if (namespace is None or e.namespace == namespace) and (tcp is None or e.tcp == tcp)
    ]


def render_slots(
    slots: Slots, now: datetime, namespace: str | None = None, tcp: str | None = None
) -> list[str]:
    """The rollout budget: who rolls out under it, and the queue in serve order."""
    rolling = _mine(sorted(slots.holders.values(), key=lambda e: e.since), namespace, tcp)
    waiting = [(i, e) for i, e in enumerate(queue(slots), 1) if _mine([e], namespace, tcp)]
    if not (slots.total or slots.per_namespace) and not rolling and not waiting:
        return []
    lines = [
        "",
        f"rollout budget: {_limit(slots.total)} at once, {_limit(slots.per_namespace)} per "
        f"namespace; {len(slots.holders)} rolling, {len(slots.waiting)} waiting",
    ]
    rows = [
        [f"{e.namespace}/{e.tcp}", "rolling", "-", stamp(e.deadline),
         short_human_duration(now - e.since), e.rotation_id]
        for e in rolling
    ] + [
        [f"{e.namespace}/{e.tcp}", "waiting", str(i), stamp(e.deadline),
         short_human_duration(now - e.since), e.rotation_id]
        for i, e in waiting
    ]  # fmt: skip
    if rows:
        header = ["NAMESPACE/TCP", "ROLLOUT", "QUEUE", "DEADLINE", "FOR", "ROTATION"]
        lines += ["", *table(header, rows)]
    return lines


def slots_data(
    slots: Slots, namespace: str | None = None, tcp: str | None = None
) -> dict[str, Any]:
    def entry(e: Entry, position: int | None) -> dict[str, Any]:
        return {
            "namespace": e.namespace,
            "tcp": e.tcp,
            "rotation": e.rotation_id,
            "deadline": stamp(e.deadline),
            "since": stamp(e.since),
            **({"position": position} if position is not None else {}),
        }

    return {
        "budget": slots.total,
        "perNamespace": slots.per_namespace,
        "rolling": [entry(e, None) for e in _mine(list(slots.holders.values()), namespace, tcp)],
        "waiting": [
            entry(e, i) for i, e in enumerate(queue(slots), 1) if _mine([e], namespace, tcp)
        ],
    }
