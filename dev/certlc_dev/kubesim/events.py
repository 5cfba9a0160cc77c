"""Stored objects, change events and the per-watcher queues that carry them.

A `Stored` object is immutable once committed: `obj` is never mutated again and `raw` is its
JSON encoding, made once at commit time so that lists and watches only concatenate bytes.
A `Change` is one committed write (ADDED, MODIFIED or DELETED) with the object before and
after. A `Subscription` is the queue between the store, which pushes changes while holding
its lock, and one consumer thread (a watch stream or a controller), which blocks on a
condition variable until something arrives: no polling.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from certlc_dev.kubesim.resources import ResourceType

ADDED = "ADDED"
MODIFIED = "MODIFIED"
DELETED = "DELETED"


@dataclass(frozen=True, slots=True)
class Stored:
    """A committed object: the decoded document, its JSON bytes and its resourceVersion."""

    obj: dict[str, Any]
    raw: bytes
    rv: int

    @property
    def metadata(self) -> Mapping[str, Any]:
        meta = self.obj.get("metadata")
        return meta if isinstance(meta, Mapping) else {}

    @property
    def name(self) -> str:
        return str(self.metadata.get("name", ""))

    @property
    def namespace(self) -> str:
        return str(self.metadata.get("namespace", ""))

    @property
    def uid(self) -> str:
        return str(self.metadata.get("uid", ""))

    @property
    def labels(self) -> Mapping[str, str]:
        labels = self.metadata.get("labels")
        return labels if isinstance(labels, Mapping) else {}


@dataclass(frozen=True, slots=True)
class Change:
    """One committed write. For DELETED, `new` is the last content with the new version."""

    type: str
    rt: ResourceType
    new: Stored
    old: Stored | None
    propagation: str | None = None

    @property
    def rv(self) -> int:
        return self.new.rv


class Subscription:
    """A queue of changes for one consumer; closing it wakes the consumer."""

    def __init__(self, rt: ResourceType | None, namespace: str | None) -> None:
        self.rt = rt
        self.namespace = namespace
        self._cond = threading.Condition(threading.Lock())
        self._queue: deque[Change] = deque()
        self._closed: str | None = None
        self.initial = 0  # synthetic ADDED events queued first (watch without resourceVersion)
        self.start_rv = 0  # the store's resourceVersion when the subscription started

    def wants(self, change: Change) -> bool:
        if self.rt is not None and change.rt is not self.rt:
            return False
        return self.namespace is None or change.new.namespace == self.namespace

    def push(self, change: Change) -> None:
        with self._cond:
            if self._closed is None:
                self._queue.append(change)
                self._cond.notify()

    def push_many(self, changes: Iterable[Change]) -> None:
        with self._cond:
            self._queue.extend(changes)
            self._cond.notify()

    def close(self, reason: str) -> None:
        """Stop the consumer; `reason` is kept (e.g. "stopped", "cut", "cut-abrupt")."""
        with self._cond:
            if self._closed is None:
                self._closed = reason
            self._cond.notify_all()

    @property
    def closed(self) -> str | None:
        return self._closed

    def empty(self) -> bool:
        with self._cond:
            return not self._queue

    def take(self, timeout: float | None) -> list[Change]:
        """Everything queued, waiting up to `timeout` seconds for the first change.

        Returns an empty list on timeout or when closed (check `closed`).
        """
        with self._cond:
            if not self._queue and self._closed is None:
                self._cond.wait(timeout)
            batch = list(self._queue)
            self._queue.clear()
            return batch
