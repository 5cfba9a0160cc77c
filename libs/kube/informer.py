"""List-then-watch of one resource kind, with a local cache, re-listing on 410 and on errors.

`Informer.run()` blocks (run it on a thread). It calls `on_event(kind, obj)` with kind ADDED,
MODIFIED or DELETED for every change, and `on_synced(resource_version, count)` after each
(re-)list. A re-list is diffed against the cache, so an object deleted while the watch was down
still produces DELETED, and an unchanged object produces nothing.

Lists are read a page at a time (`page_size` objects), and each page is handed over before the
next is fetched, so thousands of Secrets never sit in memory as one response. The cache keeps
only each object's identity (`identity`: name, namespace, uid, resourceVersion, labels), which is
all a diff needs and all a DELETED found by a re-list carries; whoever handles the events keeps
what else it needs.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from libs.kube.client import KubeClient, Obj
from libs.kube.errors import Gone, KubeError

log = logging.getLogger(__name__)

EventHandler = Callable[[str, Obj], None]
SyncedHandler = Callable[[str, int], None]
Key = tuple[str, str]

PAGE_SIZE = 500
_IDENTITY_FIELDS = ("name", "namespace", "uid", "resourceVersion", "labels")


def object_key(obj: Mapping[str, Any]) -> Key:
    meta = obj.get("metadata") or {}
    return str(meta.get("namespace") or ""), str(meta.get("name") or "")


def resource_version(obj: Mapping[str, Any]) -> str:
    return str((obj.get("metadata") or {}).get("resourceVersion") or "")


def identity(obj: Mapping[str, Any]) -> Obj:
    """The object reduced to what identifies it: kind, apiVersion and the metadata fields
    name, namespace, uid, resourceVersion and labels (no data, spec, status or annotations)."""
    meta = obj.get("metadata") or {}
    slim: Obj = {k: obj[k] for k in ("apiVersion", "kind") if k in obj}
    slim["metadata"] = {k: meta[k] for k in _IDENTITY_FIELDS if k in meta}
    return slim


def diff_page(
    cache: Mapping[Key, Mapping[str, Any]], items: Iterable[Obj], seen: set[Key]
) -> list[tuple[str, Obj]]:
    """ADDED and MODIFIED events of one page of a listing against `cache` (pure); adds the
    page's keys to `seen`."""
    events: list[tuple[str, Obj]] = []
    for obj in items:
        key = object_key(obj)
        seen.add(key)
        old = cache.get(key)
        if old is None:
            events.append(("ADDED", obj))
        elif resource_version(old) != resource_version(obj):
            events.append(("MODIFIED", obj))
    return events


def vanished(cache: Mapping[Key, Obj], seen: set[Key]) -> list[tuple[str, Obj]]:
    """DELETED events for what the cache holds and a complete listing did not show (pure)."""
    return [("DELETED", old) for key, old in cache.items() if key not in seen]


def diff_listing(cache: Mapping[Key, Obj], items: list[Obj]) -> list[tuple[str, Obj]]:
    """The events that turn `cache` into `items` (pure): ADDED, MODIFIED, DELETED."""
    seen: set[Key] = set()
    events = diff_page(cache, items, seen)
    return events + vanished(cache, seen)


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
        page_size: int = PAGE_SIZE,
    ) -> None:
        self.client = client
        self.resource = resource
        self.on_event = on_event
        self.on_synced = on_synced
        self.label_selector = label_selector
        self.watch_timeout = watch_timeout
        self.stop = stop or threading.Event()
        self.page_size = page_size
        self.cache: dict[Key, Obj] = {}
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
        """List page by page, reporting each page's changes as it arrives; the list's version."""
        seen: set[Key] = set()
        token, version = "", ""
        while True:
            listing = self.client.list_resource(
                self.resource, self.label_selector, limit=self.page_size, continue_token=token
            )
            meta = listing.get("metadata") or {}
            version = version or str(meta.get("resourceVersion") or "0")  # the first page's
            items: list[Any] = listing.pop("items", None) or []
            for kind, obj in diff_page(self.cache, items, seen):
                self._apply(kind, obj)
            del items, listing
            token = str(meta.get("continue") or "")
            if not token:
                break
            if self.stop.is_set():
                return version  # incomplete: no DELETED from a partial listing
        for kind, obj in vanished(self.cache, seen):
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
            self.cache[key] = identity(obj)
        try:
            self.on_event(kind, obj)
        except Exception:  # a handler bug must not stop the watch
            log.exception("handler failed for %s %s %s/%s", kind, self.resource, *key)
