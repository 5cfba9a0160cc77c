"""The in-memory object store: one global resourceVersion, indexes, history, subscribers.

Like etcd behind the API server, every committed write takes the next value of a single
counter, which becomes the object's `resourceVersion`. Objects are indexed by resource type,
namespace and name, encoded once with msgspec at commit time, and kept with a bounded
per-resource history of changes so that a watch can resume from a recent resourceVersion
(older ones get 410 Expired, like the watch cache). Subscribers (watch streams, controllers)
receive each change while the store lock is held, so no change can slip between a snapshot
and the start of a watch.

The store knows nothing about API rules (validation, preconditions, generation): `api.py`
decides what to write and calls `commit` with the lock held.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Iterable
from typing import Any

import msgspec

from certlc_dev.kubesim.errors import Expired
from certlc_dev.kubesim.events import ADDED, DELETED, Change, Stored, Subscription
from certlc_dev.kubesim.resources import Registry, ResourceType

DEFAULT_HISTORY = 10_000

_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder()


def encode(obj: Any) -> bytes:
    return _encoder.encode(obj)


def decode(raw: bytes) -> Any:
    return _decoder.decode(raw)


def thaw(stored: Stored) -> dict[str, Any]:
    """A private, mutable deep copy of a stored object (decoding its bytes is the fast copy)."""
    result: dict[str, Any] = _decoder.decode(stored.raw)
    return result


class Store:
    """Objects by type/namespace/name, a global resourceVersion and change fan-out."""

    def __init__(self, registry: Registry, *, history_limit: int = DEFAULT_HISTORY) -> None:
        self.registry = registry
        self.lock = threading.RLock()
        self.history_limit = max(1, history_limit)
        self._rv = 0
        self._objects: dict[str, dict[str, dict[str, Stored]]] = {rt.key: {} for rt in registry}
        self._sorted: dict[str, list[tuple[str, str]] | None] = {}
        self._history: dict[str, deque[Change]] = {rt.key: deque() for rt in registry}
        self._floor: dict[str, int] = {rt.key: 0 for rt in registry}
        self._subs: dict[str, set[Subscription]] = {rt.key: set() for rt in registry}
        self._all_subs: set[Subscription] = set()
        self._owners: dict[str, set[tuple[str, str, str]]] = {}
        self._uids: dict[str, tuple[str, str, str]] = {}
        self._types = {rt.key: rt for rt in registry}
        self._type_rv: dict[str, int] = {rt.key: 0 for rt in registry}
        self._watches_closed = False

    # ------------------------------------------------------------------ reads

    @property
    def resource_version(self) -> int:
        return self._rv

    def type_revision(self, rt: ResourceType) -> int:
        """The resourceVersion of the last write to an object of type `rt` (0: none yet)."""
        return self._type_rv[rt.key]

    def get(self, rt: ResourceType, namespace: str, name: str) -> Stored | None:
        return self._objects[rt.key].get(namespace, {}).get(name)

    def objects(self, rt: ResourceType, namespace: str | None = None) -> tuple[list[Stored], int]:
        """Objects sorted by namespace then name, and the current resourceVersion."""
        with self.lock:
            by_ns = self._objects[rt.key]
            if namespace is not None:
                names = by_ns.get(namespace, {})
                return [names[n] for n in sorted(names)], self._rv
            keys = self._sorted.get(rt.key)
            if keys is None:
                keys = sorted((ns, n) for ns, names in by_ns.items() for n in names)
                self._sorted[rt.key] = keys
            return [by_ns[ns][n] for ns, n in keys], self._rv

    def count(self, rt: ResourceType, namespace: str) -> int:
        return len(self._objects[rt.key].get(namespace, {}))

    def namespaced_in(self, namespace: str) -> list[tuple[ResourceType, Stored]]:
        """Every namespaced object in `namespace`."""
        with self.lock:
            return [
                (rt, stored)
                for rt in self.registry
                if rt.namespaced
                for stored in self._objects[rt.key].get(namespace, {}).values()
            ]

    def dependents(self, owner_uid: str) -> list[tuple[ResourceType, Stored]]:
        """Objects whose ownerReferences name `owner_uid`."""
        with self.lock:
            found: list[tuple[ResourceType, Stored]] = []
            for key, ns, name in sorted(self._owners.get(owner_uid, ())):
                stored = self._objects[key].get(ns, {}).get(name)
                if stored is not None:
                    found.append((self._types[key], stored))
            return found

    def by_uid(self, uid: str) -> tuple[ResourceType, Stored] | None:
        """The object with this uid, if it exists."""
        with self.lock:
            entry = self._uids.get(uid)
            if entry is None:
                return None
            key, ns, name = entry
            stored = self._objects[key].get(ns, {}).get(name)
            return None if stored is None else (self._types[key], stored)

    # ------------------------------------------------------------------ writes

    def commit(
        self,
        rt: ResourceType,
        kind: str,
        obj: dict[str, Any],
        old: Stored | None,
        propagation: str | None = None,
    ) -> Stored:
        """Write `obj` (ADDED/MODIFIED/DELETED) with the next resourceVersion and fan it out.

        `obj` becomes owned by the store and must not be mutated afterwards.
        """
        with self.lock:
            self._rv += 1
            rv = self._rv
            self._type_rv[rt.key] = rv
            metadata = obj["metadata"]
            metadata["resourceVersion"] = str(rv)
            stored = Stored(obj, _encoder.encode(obj), rv)
            ns, name = stored.namespace, stored.name
            by_ns = self._objects[rt.key]
            if old is not None:
                self._index_owners(rt, old, add=False)
            if kind == DELETED:
                names = by_ns.get(ns, {})
                names.pop(name, None)
                if not names:
                    by_ns.pop(ns, None)
                self._sorted[rt.key] = None
                self._uids.pop(stored.uid, None)
            else:
                if old is None:
                    self._sorted[rt.key] = None
                by_ns.setdefault(ns, {})[name] = stored
                self._index_owners(rt, stored, add=True)
                self._uids[stored.uid] = (rt.key, ns, name)
            change = Change(kind, rt, stored, old, propagation)
            self._record(change)
            return stored

    def _index_owners(self, rt: ResourceType, stored: Stored, *, add: bool) -> None:
        for ref in stored.metadata.get("ownerReferences") or ():
            uid = str(ref.get("uid", ""))
            entry = (rt.key, stored.namespace, stored.name)
            if add:
                self._owners.setdefault(uid, set()).add(entry)
            else:
                dependents = self._owners.get(uid)
                if dependents is not None:
                    dependents.discard(entry)
                    if not dependents:
                        del self._owners[uid]

    def _record(self, change: Change) -> None:
        history = self._history[change.rt.key]
        if len(history) >= self.history_limit:
            self._floor[change.rt.key] = history.popleft().rv
        history.append(change)
        for sub in self._subs[change.rt.key]:
            if sub.namespace is None or sub.namespace == change.new.namespace:
                sub.push(change)
        for sub in self._all_subs:
            if sub.wants(change):
                sub.push(change)

    def restore(self, objects: Iterable[tuple[ResourceType, dict[str, Any]]], rv: int) -> None:
        """Load objects as they were (snapshot), keeping their resourceVersions; no events."""
        with self.lock:
            for rt, obj in objects:
                stored = Stored(obj, _encoder.encode(obj), int(obj["metadata"]["resourceVersion"]))
                self._objects[rt.key].setdefault(stored.namespace, {})[stored.name] = stored
                self._index_owners(rt, stored, add=True)
                self._uids[stored.uid] = (rt.key, stored.namespace, stored.name)
                self._sorted[rt.key] = None
                self._type_rv[rt.key] = max(self._type_rv[rt.key], stored.rv)
            self._rv = max(self._rv, rv)
            for key in self._floor:
                self._floor[key] = self._rv

    def dump(self) -> tuple[list[dict[str, Any]], int]:
        """Every object (decoded copies) and the current resourceVersion."""
        with self.lock:
            items = [
                thaw(s)
                for by_ns in self._objects.values()
                for names in by_ns.values()
                for s in names.values()
            ]
            return items, self._rv

    # ------------------------------------------------------------------ watches

    def subscribe(self, rt: ResourceType, namespace: str | None, since: int | None) -> Subscription:
        """A queue primed with the current objects (since=None) or the history after `since`.

        Raises `Expired` when `since` is older than the retained history.
        """
        with self.lock:
            sub = Subscription(rt, namespace)
            sub.start_rv = self._rv
            if since is None:
                items, _ = self.objects(rt, namespace)
                sub.initial = len(items)
                sub.push_many(Change(ADDED, rt, s, None) for s in items)
            else:
                floor = self._floor[rt.key]
                if since < floor:
                    raise Expired(f"too old resource version: {since} ({floor})")
                sub.push_many(
                    c
                    for c in self._history[rt.key]
                    if c.rv > since and (namespace is None or c.new.namespace == namespace)
                )
            self._subs[rt.key].add(sub)
            if self._watches_closed:
                sub.close("stopped")
            return sub

    def subscribe_all(self, types: Iterable[ResourceType] | None = None) -> Subscription:
        """A queue of future changes of the given types (all types when None)."""
        with self.lock:
            wanted = tuple(types) if types is not None else None
            sub = _MultiSubscription(wanted)
            self._all_subs.add(sub)
            return sub

    def unsubscribe(self, sub: Subscription) -> None:
        with self.lock:
            self._all_subs.discard(sub)
            if sub.rt is not None:
                self._subs[sub.rt.key].discard(sub)

    def close_watches(self) -> None:
        """End every watch subscription now and any started later (server shutdown)."""
        with self.lock:
            self._watches_closed = True
            for subs in self._subs.values():
                for sub in subs:
                    sub.close("stopped")

    def subscriptions(self) -> list[Subscription]:
        with self.lock:
            return [s for subs in self._subs.values() for s in subs]

    def compact(self, rt: ResourceType | None = None) -> int:
        """Forget history so that any older resourceVersion gets 410; returns the new floor."""
        with self.lock:
            keys = [rt.key] if rt is not None else list(self._history)
            for key in keys:
                self._history[key].clear()
                self._floor[key] = self._rv
            return self._rv

    def quiet_since(self, sub: Subscription) -> int | None:
        """The current resourceVersion if `sub` has nothing queued (a safe bookmark), else None.

        Holding the store lock guarantees no change is being pushed meanwhile.
        """
        with self.lock:
            return self._rv if sub.empty() else None


class _MultiSubscription(Subscription):
    """A subscription over several resource types (controllers)."""

    def __init__(self, types: tuple[ResourceType, ...] | None) -> None:
        super().__init__(None, None)
        self._keys = None if types is None else frozenset(rt.key for rt in types)

    def wants(self, change: Change) -> bool:
        return self._keys is None or change.rt.key in self._keys
