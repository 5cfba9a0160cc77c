"""Deletion: preconditions, finalizers, and namespace termination.

An object with finalizers is not removed by DELETE: it gets `deletionTimestamp` (and a new
generation for kinds that have one) and stays until its last finalizer is removed, as with
the API server's graceful-deletion path. Deleting a Namespace marks it Terminating, deletes
everything in it, and removes it once it is empty; that is the namespace controller's job in
a cluster, done synchronously here. Cascading along ownerReferences is not done here: see
`garbage.py`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from certlc_dev.kubesim.errors import Conflict
from certlc_dev.kubesim.events import DELETED, MODIFIED, Stored
from certlc_dev.kubesim.resources import Generation, ResourceType
from certlc_dev.kubesim.store import Store, encode, thaw


@dataclass(frozen=True, slots=True)
class Preconditions:
    """DeleteOptions.preconditions."""

    uid: str | None = None
    resource_version: str | None = None

    def check(self, rt: ResourceType, old: Stored) -> None:
        if self.uid is not None and self.uid != old.uid:
            raise Conflict.object(
                rt,
                old.name,
                f"Precondition failed: UID in precondition: "
                f"{self.uid}, UID in object meta: {old.uid}",
            )
        rv = self.resource_version
        if rv is not None and rv != str(old.rv):
            raise Conflict.object(
                rt,
                old.name,
                f"Precondition failed: ResourceVersion in "
                f"precondition: {rv}, ResourceVersion in object meta: {old.rv}",
            )


def _terminating(stored: Stored) -> bool:
    return bool((stored.obj.get("status") or {}).get("phase") == "Terminating")


class Deleter:
    """Deletes objects from a `Store` (callers hold the store lock)."""

    def __init__(self, store: Store, namespaces: ResourceType, now: Callable[[], str]) -> None:
        self.store = store
        self.namespaces = namespaces
        self.now = now

    def delete(
        self,
        rt: ResourceType,
        old: Stored,
        propagation: str | None,
        preconditions: Preconditions | None,
        dry_run: bool,
    ) -> tuple[Stored, bool]:
        """The last state and whether the object is gone (False: waiting for finalizers)."""
        if preconditions is not None:
            preconditions.check(rt, old)
        if rt is self.namespaces:
            return self._delete_namespace(old, dry_run)
        if old.metadata.get("finalizers"):
            if old.metadata.get("deletionTimestamp"):
                return old, False
            marked = self._marked(rt, old)
            if dry_run:
                return Stored(marked, encode(marked), old.rv), False
            return self.store.commit(rt, MODIFIED, marked, old), False
        if dry_run:
            return old, True
        return self.remove(rt, old, thaw(old), propagation), True

    def _marked(self, rt: ResourceType, old: Stored) -> dict[str, Any]:
        marked = thaw(old)
        meta = marked["metadata"]
        meta["deletionTimestamp"] = self.now()
        meta["deletionGracePeriodSeconds"] = 0
        if rt.generation is not Generation.NONE:
            meta["generation"] = int(meta.get("generation", 0)) + 1
        return marked

    def remove(
        self, rt: ResourceType, old: Stored, last: dict[str, Any], propagation: str | None
    ) -> Stored:
        """Remove the object now (DELETED carries `last` with a new resourceVersion)."""
        stored = self.store.commit(rt, DELETED, last, old, propagation)
        if rt.namespaced:
            self._maybe_finish_namespace(old.namespace)
        return stored

    def _delete_namespace(self, old: Stored, dry_run: bool) -> tuple[Stored, bool]:
        if dry_run:
            return old, False
        current = old
        if not _terminating(old):
            marked = self._marked(self.namespaces, old)
            marked["status"] = {"phase": "Terminating"}
            current = self.store.commit(self.namespaces, MODIFIED, marked, old)
        for rt, stored in self.store.namespaced_in(old.name):
            latest = self.store.get(rt, stored.namespace, stored.name)
            if latest is not None:
                self.delete(rt, latest, None, None, False)
        self._maybe_finish_namespace(old.name)
        return current, False

    def _maybe_finish_namespace(self, namespace: str) -> None:
        ns = self.store.get(self.namespaces, "", namespace)
        if ns is not None and _terminating(ns) and not self.store.namespaced_in(namespace):
            self.store.commit(self.namespaces, DELETED, thaw(ns), ns)
