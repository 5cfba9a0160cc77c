"""The rotation records on the bus: read, and move on by compare-and-set. The I/O edge of
`libs.contracts.records`, whose pure `advance` decides every step.

`RotationStore.advance` reads a record, applies the transition and writes the result only if
nobody wrote the record since it was read (KeyValue revision); on a lost race it reads again and
re-applies, so two replicas never overwrite each other's step and a step is never half-done.
"""

from __future__ import annotations

import logging

from libs.bus import Bus, KeyConflictError, KvBucket, LazyBucket
from libs.bus.errors import TemporaryError
from libs.contracts.codec import MalformedMessage, decode, encode
from libs.contracts.records import Observation, RotationRecord, advance, record_key
from libs.runtime.topology import rotations_bucket

log = logging.getLogger(__name__)

CAS_ATTEMPTS = 8


def decode_record(data: bytes) -> RotationRecord:
    return decode(RotationRecord, data)


class RotationStore:
    """The records of CERTLC_ROTATIONS; the bucket is opened (created if missing) on first use."""

    def __init__(self, bus: Bus, replicas: int = 1) -> None:
        self.bus = bus
        self._bucket = LazyBucket(bus, rotations_bucket(replicas))

    async def bucket(self) -> KvBucket:
        return await self._bucket.get()

    async def get(self, namespace: str, tcp: str, rotation_id: str) -> RotationRecord | None:
        bucket = await self.bucket()
        entry = await bucket.get(record_key(namespace, tcp, rotation_id))
        if entry is None or not entry.value:
            return None
        try:
            return decode_record(entry.value)
        except MalformedMessage as exc:
            log.warning("unreadable rotation record %s: %s", entry.key, exc)
            return None

    async def advance(
        self, namespace: str, tcp: str, rotation_id: str, observation: Observation
    ) -> RotationRecord | None:
        """Apply `observation` to the record and store the result; the record as it now is."""
        bucket = await self.bucket()
        key = record_key(namespace, tcp, rotation_id)
        for _ in range(CAS_ATTEMPTS):
            entry = await bucket.get(key)
            current: RotationRecord | None = None
            if entry is not None and entry.value:
                try:
                    current = decode_record(entry.value)
                except MalformedMessage as exc:
                    # Not ours to trust: the transition starts afresh and overwrites it.
                    log.warning("replacing unreadable rotation record %s: %s", key, exc)
            step = advance(current, observation)
            if not step.changed or step.record is None:
                return step.record
            try:
                if entry is None:
                    await bucket.create(key, encode(step.record))
                else:
                    await bucket.update(key, encode(step.record), revision=entry.revision)
            except KeyConflictError:
                continue  # somebody moved it meanwhile: read again, apply again
            return step.record
        raise TemporaryError(f"rotation record {key} kept changing; trying again", delay=0.5)


__all__ = ["RotationStore", "decode_record"]
