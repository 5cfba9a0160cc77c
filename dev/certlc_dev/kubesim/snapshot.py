"""Persisting the store to a JSON file and loading it back.

The file holds every object as the API would return it plus the global resourceVersion, so a
restarted stand-in continues the counter (watchers resuming from an older version get 410, as
after an API server restart with a fresh watch cache). Writes are atomic: a temporary file in
the same directory, then a rename. `Snapshotter` saves periodically from a thread that sleeps
on an event between saves and only writes when something changed.
"""

from __future__ import annotations

import logging
import os
import tempfile
import threading
from pathlib import Path
from typing import Any

import msgspec

from certlc_dev.kubesim.resources import ResourceType
from certlc_dev.kubesim.store import Store

log = logging.getLogger("kubesim.snapshot")
FORMAT = "kubesim.snapshot/v1"


class SnapshotError(Exception):
    """A snapshot file that cannot be read."""


def save(store: Store, path: Path) -> int:
    """Write the store to `path`; returns the resourceVersion written."""
    items, rv = store.dump()
    document = {"format": FORMAT, "resourceVersion": str(rv), "items": items}
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(msgspec.json.encode(document))
        Path(temporary).replace(path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return rv


def load(store: Store, path: Path) -> int:
    """Load `path` into an empty store; returns the number of objects loaded."""
    try:
        document: Any = msgspec.json.decode(path.read_bytes())
    except (OSError, msgspec.DecodeError) as error:
        raise SnapshotError(f"cannot read snapshot {path}: {error}") from None
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        raise SnapshotError(f"{path} is not a kube-sim snapshot ({FORMAT})")
    objects: list[tuple[ResourceType, dict[str, Any]]] = []
    for item in document.get("items") or []:
        try:
            rt = store.registry.for_object(item["apiVersion"], item["kind"])
        except (KeyError, TypeError):
            raise SnapshotError(f"{path}: unknown object {str(item)[:80]}") from None
        objects.append((rt, item))
    store.restore(objects, int(document.get("resourceVersion") or 0))
    return len(objects)


class Snapshotter:
    """Saves the store every `interval` seconds when the resourceVersion moved."""

    def __init__(self, store: Store, path: Path, interval: float) -> None:
        self.store = store
        self.path = path
        self.interval = interval
        self._stop = threading.Event()
        self._saved_rv = store.resource_version
        self._thread = threading.Thread(target=self._run, name="kubesim-snapshot", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def save_now(self) -> None:
        self._saved_rv = save(self.store, self.path)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            if self.store.resource_version != self._saved_rv:
                try:
                    self.save_now()
                except OSError:
                    log.exception("periodic snapshot to %s failed", self.path)

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()
