"""JetStream KeyValue helpers with optimistic locking, for leader-free coordination of replicas.

Replicas of a service coordinate without a leader by compare-and-set on a key: `create` succeeds
for exactly one writer, `update(..., revision=)` succeeds only if nobody wrote since that
revision. Losers get `KeyConflictError` and re-read. Missing keys read as None instead of an
exception, and nats-py types stay inside this module.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

import nats.js.errors
from nats.js import api
from nats.js.kv import KeyValue

from libs.bus.connect import Bus
from libs.bus.errors import KeyConflictError, TopologyError
from libs.bus.specs import BucketSpec

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class KvEntry:
    key: str
    value: bytes
    revision: int


class KvBucket:
    """One KeyValue bucket. Keys: letters, digits and `-_=./` (dots make hierarchies)."""

    def __init__(self, name: str, store: KeyValue) -> None:
        self.name = name
        self._store = store

    async def get(self, key: str) -> KvEntry | None:
        """The current value, or None if the key never existed or was deleted."""
        try:
            entry = await self._store.get(key)
        except nats.js.errors.KeyNotFoundError:
            return None
        return KvEntry(key=key, value=entry.value or b"", revision=entry.revision or 0)

    async def put(self, key: str, value: bytes) -> int:
        """Write unconditionally (last writer wins); return the new revision."""
        return await self._store.put(key, value)

    async def create(self, key: str, value: bytes) -> int:
        """Write only if the key does not exist (or was deleted); else `KeyConflictError`."""
        try:
            return await self._store.create(key, value)
        except nats.js.errors.KeyWrongLastSequenceError as exc:
            raise KeyConflictError(self.name, key, "already exists") from exc

    async def update(self, key: str, value: bytes, *, revision: int) -> int:
        """Write only if the key is still at `revision`; else `KeyConflictError`."""
        if revision < 1:
            raise ValueError("update needs the revision read before (>= 1); use create()")
        try:
            return await self._store.update(key, value, last=revision)
        except nats.js.errors.KeyWrongLastSequenceError as exc:
            raise KeyConflictError(self.name, key, f"revision {revision} is stale") from exc

    async def delete(self, key: str, *, revision: int | None = None) -> None:
        """Delete (optionally only if still at `revision`); deleting a missing key is fine."""
        try:
            await self._store.delete(key, last=revision)
        except nats.js.errors.APIError as exc:
            if exc.err_code in (10071, 10164):  # wrong last sequence
                raise KeyConflictError(self.name, key, f"revision {revision} is stale") from exc
            raise


async def ensure_bucket(bus: Bus, spec: BucketSpec) -> KvBucket:
    """Create the bucket if missing (idempotent; safe from several processes) and open it."""
    config = api.KeyValueConfig(
        bucket=spec.name,
        description=spec.description,
        history=spec.history,
        ttl=spec.ttl,
        storage=api.StorageType(spec.storage.value),
        replicas=spec.replicas,
        max_value_size=spec.max_value_size,
    )
    try:
        store = await bus.js.create_key_value(config)
    except nats.js.errors.BadRequestError as exc:
        # Exists with another configuration: use it as it is, but say so.
        log.warning(
            "bucket exists with a different configuration",
            extra={"bucket": spec.name, "error": exc.description},
        )
        try:
            store = await bus.js.key_value(spec.name)
        except nats.js.errors.BucketNotFoundError as missing:
            raise TopologyError(f"bucket {spec.name}: {exc.description}") from missing
    return KvBucket(spec.name, store)


class LazyBucket:
    """A bucket created (if missing) and opened on first use, once, however many tasks ask."""

    def __init__(self, bus: Bus, spec: BucketSpec) -> None:
        self.bus = bus
        self.spec = spec
        self._bucket: KvBucket | None = None
        self._opening = asyncio.Lock()

    async def get(self) -> KvBucket:
        if self._bucket is None:
            async with self._opening:
                if self._bucket is None:
                    self._bucket = await ensure_bucket(self.bus, self.spec)
        return self._bucket


async def open_bucket(bus: Bus, name: str) -> KvBucket | None:
    """Open an existing bucket without creating it (a reader's rights suffice); None when it
    does not exist."""
    try:
        store = await bus.js.key_value(name)
    except nats.js.errors.BucketNotFoundError:
        return None
    return KvBucket(name, store)
