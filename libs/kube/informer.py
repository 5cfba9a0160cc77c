"""List-then-watch of one resource kind, with a local cache, re-listing on 410 and on errors.

`Informer.run()` blocks (run it on a thread). It calls `on_event(kind, obj)` with kind ADDED,
MODIFIED or DELETED for every change, and `on_synced(resource_version, count)` after each
(re-)list. A re-list is diffed against the cache, so an object deleted while the watch was down
still produces DELETED, and an unchanged object produces nothing.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from libs.kube.client import KubeClient, Obj
from libs.kube.errors import Gone, KubeError

log = logging.getLogger(__name__)

EventHandler = Callable[[str, Obj], None]
SyncedHandler = Callable[[str, int], None]


def object_key(obj: Obj) -> tuple[str, str]:
    meta = obj.get("metadata") or {}
    return str(meta.get("namespace") or ""), str(meta.get("name") or "")


def resource_version(obj: Obj) -> str:
    return str((obj.get("metadata") or {}).get("resourceVersion") or "")


def diff_listing(cache: dict[tuple[str, str], Obj], items: list[Obj]) -> list[tuple[str, Obj]]:
    """The events that turn `cache` into `items` (pure): ADDED, MODIFIED, DELETED."""
    events: list[tuple[str, Obj]] = []
    seen: set[tuple[str, str]] = set()
    for obj in items:
        key = object_key(obj)
        seen.add(key)
        old = cache.get(key)
        if old is None:
            events.append(("ADDED", obj))
        elif resource_version(old) != resource_version(obj):
            events.append(("MODIFIED", obj))
    events.extend(("DELETED", old) for key, old in cache.items() if key not in seen)
    return events


class Informer:
    """Keeps `cache` equal to the server's view of `resource` and reports every change."""

    def __init__(
        self,
        client: KubeClient,
        resource: str,
        on_event: EventHandler,
        on_synced: SyncedHandler | None = None,
        *,
        label_selector: str = "",
        watch_timeout: int = 60,
        stop: threading.Event | None = None,
    ) -> None:
        self.client = client
        self.resource = resource
        self.on_event = on_event
        self.on_synced = on_synced
        self.label_selector = label_selector
        self.watch_timeout = watch_timeout
        self.stop = stop or threading.Event()
        self.cache: dict[tuple[str, str], Obj] = {}
        self.relists = 0

    def run(self) -> None:
        backoff = 0.1
        while not self.stop.is_set():
            try:
                version = self._relist()
                backoff = 0.1
                while not self.stop.is_set():
                    version = self._watch_from(version)
            except Gone:
                log.info("watch of %s expired (410); re-listing", self.resource)
            except KubeError as exc:
                log.warning(
                    "watch of %s failed: %s; re-listing in %.1fs", self.resource, exc, backoff
                )
                self.stop.wait(backoff)
                backoff = min(backoff * 2, 10.0)

    def _relist(self) -> str:
        listing = self.client.list_resource(self.resource, self.label_selector)
        items: list[Any] = listing.get("items") or []
        version = str((listing.get("metadata") or {}).get("resourceVersion") or "0")
        for kind, obj in diff_listing(self.cache, items):
            self._apply(kind, obj)
        self.relists += 1
        if self.on_synced is not None:
            self.on_synced(version, len(self.cache))
        return version

    def _watch_from(self, version: str) -> str:
        for kind, obj in self.client.watch_stream(
            self.resource,
            resource_version=version,
            label_selector=self.label_selector,
            timeout_seconds=self.watch_timeout,
        ):
            if self.stop.is_set():
                break
            version = resource_version(obj) or version
            if kind in ("ADDED", "MODIFIED", "DELETED"):
                self._apply(kind, obj)
        return version

    def _apply(self, kind: str, obj: Obj) -> None:
        key = object_key(obj)
        if kind == "DELETED":
            self.cache.pop(key, None)
        else:
            self.cache[key] = obj
        try:
            self.on_event(kind, obj)
        except Exception:  # a handler bug must not stop the watch
            log.exception("handler failed for %s %s %s/%s", kind, self.resource, *key)
