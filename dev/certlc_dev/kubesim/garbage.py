"""An opt-in garbage collector: deletes the dependents of deleted owners.

The API server only stores `ownerReferences`; in a cluster, kube-controller-manager's garbage
collector deletes an object once none of its owners exists any more, or removes the dangling
reference when other owners remain. With `propagationPolicy: Orphan` the dependents keep
living and lose the reference. Foreground deletion is treated like Background here (the owner
is gone at once, dependents follow). Runs on its own thread, blocked on a store subscription.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from certlc_dev.kubesim.api import Api
from certlc_dev.kubesim.errors import ApiError
from certlc_dev.kubesim.events import DELETED, Change
from certlc_dev.kubesim.resources import ResourceType
from certlc_dev.kubesim.store import thaw

log = logging.getLogger("kubesim.gc")


class GarbageCollector:
    """Cascades deletions along ownerReferences."""

    def __init__(self, api: Api) -> None:
        self.api = api
        self.store = api.store
        self._sub = self.store.subscribe_all()
        self._thread = threading.Thread(target=self._run, name="kubesim-gc", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._sub.close("stopped")
        self.store.unsubscribe(self._sub)
        if self._thread.is_alive():
            self._thread.join()

    def _run(self) -> None:
        while True:
            batch = self._sub.take(None)
            if self._sub.closed is not None:
                return
            for change in batch:
                if change.type == DELETED:
                    try:
                        self.collect(change)
                    except ApiError as error:
                        log.debug("garbage collection after %s: %s", change.new.name, error.message)
                    except Exception:  # a bug must not stop the collector
                        log.exception("garbage collection after %s failed", change.new.name)

    def collect(self, change: Change) -> None:
        """Handle the deletion of one owner."""
        owner_uid = change.new.uid
        for rt, dependent in self.store.dependents(owner_uid):
            refs: list[dict[str, Any]] = list(dependent.metadata.get("ownerReferences") or [])
            alive = [
                r
                for r in refs
                if r.get("uid") != owner_uid and self.store.by_uid(str(r.get("uid"))) is not None
            ]
            if change.propagation == "Orphan" or alive:
                self._drop_reference(rt, dependent.namespace, dependent.name, owner_uid)
            else:
                self.api.delete(rt, dependent.namespace, dependent.name, propagation="Background")

    def _drop_reference(self, rt: ResourceType, namespace: str, name: str, uid: str) -> None:
        current = self.store.get(rt, namespace, name)
        if current is None:
            return
        body = thaw(current)
        refs = [r for r in body["metadata"].get("ownerReferences") or [] if r.get("uid") != uid]
        body["metadata"]["ownerReferences"] = refs
        self.api.update(rt, namespace, name, body)
