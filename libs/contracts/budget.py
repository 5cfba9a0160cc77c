"""The rollout budget: at most N TCPs roll out at once across the fleet, at most M per namespace.

The slots are one document, key `fleet` of the KeyValue bucket CERTLC_ROLLOUT_SLOTS, written by
compare-and-set, so any number of rollout replicas share one budget without a leader. It holds
who rolls out (`holders`) and who waits (`waiting`), each with a lease: an entry that nobody
renews (its replica died, its work vanished) expires and gives its place back, so the budget
survives restarts and never deadlocks. The document is a durable record whose owner is rollout;
everything in it is re-derived within one lease from the rollouts under way.

`claim` is the one pure transition, tested as a table: the waiters are served by deadline (the
earliest `NotAfter` among the certificates being replaced, the request time for a missing or
invalid one), then by arrival; a slot that frees goes to the first waiter that its namespace's
share allows, and is kept for it until it comes back (a waiter re-checks within a few seconds).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import msgspec

from libs.contracts.messages import Fact

SLOTS_BUCKET = "CERTLC_ROLLOUT_SLOTS"
SLOTS_KEY = "fleet"
# The queue the document records, at most (an entry is about 300 bytes: well within NATS's 1 MB
# message). A waiter beyond it is told to wait and asks again later; one with an earlier deadline
# than the last recorded waiter takes that one's place, so the recorded queue is always the
# earliest deadlines known, and the first served are the right ones.
MAX_WAITING = 2000


class Entry(Fact, frozen=True, kw_only=True):
    """One TCP in the budget: holding a slot, or waiting for one."""

    namespace: str
    tcp: str
    rotation_id: str
    deadline: datetime  # serve order: earliest first
    since: datetime  # holding or waiting since (ties of deadline: first come first)
    lease_until: datetime  # gone after this unless renewed


class Slots(Fact, frozen=True, kw_only=True):
    """The document. Keys of both maps are `<namespace>/<tcp>`: one entry per TCP."""

    holders: dict[str, Entry] = {}  # noqa: RUF012 - msgspec copies defaults
    waiting: dict[str, Entry] = {}  # noqa: RUF012 - msgspec copies defaults
    # the budget as the replica that wrote last has it configured (for `certlc status`)
    total: int = 0
    per_namespace: int = 0


@dataclass(frozen=True, slots=True)
class Budget:
    """`total` slots across the fleet, `per_namespace` in one namespace; 0 means no limit."""

    total: int = 0
    per_namespace: int = 0
    lease: timedelta = timedelta(seconds=30)

    def __post_init__(self) -> None:
        if self.total < 0 or self.per_namespace < 0:
            raise ValueError("a rollout budget is 0 (no limit) or a positive number of TCPs")
        if self.lease <= timedelta(0):
            raise ValueError("the rollout budget lease must be positive")

    @property
    def limited(self) -> bool:
        return self.total > 0 or self.per_namespace > 0


@dataclass(frozen=True, slots=True)
class Claim:
    """A rollout that wants to start (`rolling` False) or is under way (`rolling` True: its
    Deployment already rolls, whatever the budget says, so it is counted, never queued)."""

    namespace: str
    tcp: str
    rotation_id: str
    deadline: datetime
    rolling: bool = False

    @property
    def key(self) -> str:
        return entry_key(self.namespace, self.tcp)


@dataclass(frozen=True, slots=True)
class Verdict:
    slots: Slots
    granted: bool
    position: int  # 0 when granted; else 1-based place in the queue
    changed: bool  # the document must be written
    queued: bool = False  # this claim joined the queue now (not a re-check)


def entry_key(namespace: str, tcp: str) -> str:
    return f"{namespace}/{tcp}"


def expire(slots: Slots, now: datetime) -> Slots:
    """Drop the entries whose lease ran out."""
    holders = {k: e for k, e in slots.holders.items() if e.lease_until >= now}
    waiting = {k: e for k, e in slots.waiting.items() if e.lease_until >= now}
    if len(holders) == len(slots.holders) and len(waiting) == len(slots.waiting):
        return slots
    return Slots(holders=holders, waiting=waiting)


def queue(slots: Slots) -> list[Entry]:
    """The waiters in serve order."""
    return sorted(slots.waiting.values(), key=lambda e: (e.deadline, e.since, e.namespace, e.tcp))


def served(slots: Slots, budget: Budget) -> list[str]:
    """The waiters the free slots go to now, in serve order: each takes a fleet slot and one of
    its namespace's, a waiter whose namespace is full is passed over (not blocking the rest)."""
    free = budget.total - len(slots.holders) if budget.total else len(slots.waiting)
    per_ns: dict[str, int] = {}
    for entry in slots.holders.values():
        per_ns[entry.namespace] = per_ns.get(entry.namespace, 0) + 1
    chosen: list[str] = []
    for entry in queue(slots):
        if free <= 0:
            break
        if budget.per_namespace and per_ns.get(entry.namespace, 0) >= budget.per_namespace:
            continue
        chosen.append(entry_key(entry.namespace, entry.tcp))
        per_ns[entry.namespace] = per_ns.get(entry.namespace, 0) + 1
        free -= 1
    return chosen


def _renewed(entry: Entry, claim: Claim, now: datetime, lease: timedelta) -> Entry | None:
    """The entry with its lease renewed, or None when it needs no write yet (more than half of
    the lease left, same rotation and deadline): a re-check usually costs one read only."""
    fresh = entry.lease_until - now > lease / 2
    if fresh and entry.rotation_id == claim.rotation_id and entry.deadline == claim.deadline:
        return None
    return msgspec.structs.replace(
        entry, rotation_id=claim.rotation_id, deadline=claim.deadline, lease_until=now + lease
    )


def claim(slots: Slots, request: Claim, now: datetime, budget: Budget) -> Verdict:
    """Hold a slot for `request`, or keep (or put) it in the queue."""
    current = expire(slots, now)
    changed = current is not slots
    key = request.key
    held = current.holders.get(key)
    if held is not None:
        renewed = _renewed(held, request, now, budget.lease)
        if renewed is None:
            return Verdict(current, True, 0, changed)
        return Verdict(_with(current, holders={key: renewed}), True, 0, True)
    waiter = current.waiting.get(key)
    entry = Entry(
        namespace=request.namespace,
        tcp=request.tcp,
        rotation_id=request.rotation_id,
        deadline=request.deadline,
        since=waiter.since if waiter is not None else now,
        lease_until=now + budget.lease,
    )
    if request.rolling:
        return Verdict(_with(current, holders={key: entry}, unwait=key), True, 0, True)
    if waiter is None:
        if len(current.waiting) >= MAX_WAITING:
            last = queue(current)[-1]
            if (entry.deadline, entry.since) >= (last.deadline, last.since):
                return Verdict(current, False, len(current.waiting) + 1, changed)
            current = _with(current, unwait=entry_key(last.namespace, last.tcp))
        current = _with(current, waiting={key: entry})
        changed = True
    elif (renewed := _renewed(waiter, request, now, budget.lease)) is not None:
        current = _with(current, waiting={key: renewed})
        changed = True
    if key in served(current, budget):
        holder = msgspec.structs.replace(entry, since=now)
        return Verdict(_with(current, holders={key: holder}, unwait=key), True, 0, True)
    order = [entry_key(e.namespace, e.tcp) for e in queue(current)]
    return Verdict(current, False, order.index(key) + 1, changed, queued=waiter is None)


def release(slots: Slots, namespace: str, tcp: str, now: datetime) -> Slots | None:
    """The TCP's rollout is over (or stopped moving): its slot and any place in the queue go.
    None when there is nothing to write."""
    key = entry_key(namespace, tcp)
    current = expire(slots, now)
    if key not in current.holders and key not in current.waiting:
        return None if current is slots else current
    holders = {k: e for k, e in current.holders.items() if k != key}
    waiting = {k: e for k, e in current.waiting.items() if k != key}
    return Slots(holders=holders, waiting=waiting)


def _with(
    slots: Slots,
    *,
    holders: dict[str, Entry] | None = None,
    waiting: dict[str, Entry] | None = None,
    unwait: str = "",
) -> Slots:
    new_waiting = {**slots.waiting, **(waiting or {})}
    new_waiting.pop(unwait, None)
    return Slots(holders={**slots.holders, **(holders or {})}, waiting=new_waiting)


def recheck_after(position: int, budget: Budget, most: timedelta) -> timedelta:
    """When a waiter looks again: the head of the queue within a second (a slot kept for it
    should not idle), later ones the further back they are, at most `most` (well inside the
    lease, so a waiter's place never lapses while it waits)."""
    per_round = max(budget.total or budget.per_namespace, 1)
    rounds = (position - 1) // per_round
    return min(timedelta(seconds=1) * (1 + rounds), most, budget.lease / 3)
