"""The rollout budget on the bus: the I/O edge of `libs.contracts.budget`, whose pure `claim`
and `release` decide every step.

The document is read, transformed and written back only if nobody wrote it since it was read
(KeyValue revision); on a lost race it is read again and the step re-applied, so rollout
replicas share one budget without a leader and never count a slot twice.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime

import msgspec

from libs.bus import Bus, KeyConflictError, KvBucket, KvEntry, LazyBucket
from libs.bus.errors import TemporaryError
from libs.contracts.budget import SLOTS_KEY, Budget, Claim, Slots, Verdict, claim, release
from libs.contracts.codec import MalformedMessage, decode, encode
from libs.runtime.topology import slots_bucket

log = logging.getLogger(__name__)

CAS_ATTEMPTS = 16


def decode_slots(entry: KvEntry | None) -> Slots:
    """The document as stored; an empty one when missing. An unreadable one is replaced: its
    entries come back within one lease, as every rollout under way renews its own."""
    if entry is None or not entry.value:
        return Slots()
    try:
        return decode(Slots, entry.value)
    except MalformedMessage as exc:
        log.warning("replacing the unreadable rollout budget document: %s", exc)
        return Slots()


class SlotStore:
    """The budget document of CERTLC_ROLLOUT_SLOTS; the bucket is opened on first use."""

    def __init__(self, bus: Bus, budget: Budget, replicas: int = 1) -> None:
        self.bus = bus
        self.budget = budget
        self._bucket = LazyBucket(bus, slots_bucket(replicas))

    async def bucket(self) -> KvBucket:
        return await self._bucket.get()

    async def read(self) -> Slots:
        bucket = await self.bucket()
        return decode_slots(await bucket.get(SLOTS_KEY))

    async def claim(self, request: Claim, now: datetime) -> Verdict:
        """Hold a slot for `request`, or its place in the queue (see `claim`)."""
        verdict: Verdict | None = None

        def step(slots: Slots) -> Slots | None:
            nonlocal verdict
            verdict = claim(slots, request, now, self.budget)
            return verdict.slots if verdict.changed else None

        await self._update(step)
        assert verdict is not None
        return verdict

    async def release(self, namespace: str, tcp: str, now: datetime) -> Slots:
        """Give the TCP's slot (or place in the queue) back; the document as it now is."""
        return await self._update(lambda slots: release(slots, namespace, tcp, now))

    async def _update(self, step: Callable[[Slots], Slots | None]) -> Slots:
        bucket = await self.bucket()
        for _ in range(CAS_ATTEMPTS):
            entry = await bucket.get(SLOTS_KEY)
            current = decode_slots(entry)
            new = step(current)
            if new is None:
                return current
            new = msgspec.structs.replace(
                new, total=self.budget.total, per_namespace=self.budget.per_namespace
            )
            try:
                if entry is None:
                    await bucket.create(SLOTS_KEY, encode(new))
                else:
                    await bucket.update(SLOTS_KEY, encode(new), revision=entry.revision)
            except KeyConflictError:
                continue  # another replica wrote meanwhile: read again, decide again
            return new
        raise TemporaryError("the rollout budget document is contended; trying again", delay=1.0)
