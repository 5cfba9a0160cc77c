"""Watch streams: which changes a watcher sees, and the loop that writes them.

`translate` decides, for one change and a selector, what a watcher receives (pure): an
object entering the selector arrives as ADDED, one leaving it as DELETED carrying the new
content, as the watch cache does. `WatchStream.run` drains a `Subscription`, writes one JSON
object per line in batches (flushing whenever the queue is empty, like the API server), sends
BOOKMARKs when allowed, and ends on `timeoutSeconds`, server shutdown, a cut, or a client that
went away.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from certlc_dev.kubesim.errors import BadRequest, Expired
from certlc_dev.kubesim.events import ADDED, DELETED, MODIFIED, Change, Stored, Subscription
from certlc_dev.kubesim.resources import ResourceType
from certlc_dev.kubesim.selectors import Matcher
from certlc_dev.kubesim.store import Store, encode
from certlc_dev.kubesim.tables import render_table
from certlc_dev.kubesim.wire import AbruptClose, Request, StreamResponse, Writer

CHECK_INTERVAL = 1.0
BATCH = 512


def translate(change: Change, matcher: Matcher | None) -> tuple[str, Stored] | None:
    """The event a watcher with `matcher` receives for `change`, or None."""
    if matcher is None:
        return change.type, change.new
    if change.type == ADDED:
        return (ADDED, change.new) if matcher(change.new.obj) else None
    if change.type == DELETED:
        return (DELETED, change.new) if matcher(change.new.obj) else None
    was = change.old is not None and matcher(change.old.obj)
    now = matcher(change.new.obj)
    if was and now:
        return MODIFIED, change.new
    if now:
        return ADDED, change.new
    if was:
        return DELETED, change.new
    return None


def json_event(kind: str, stored: Stored) -> bytes:
    """`{"type":...,"object":...}` plus newline, reusing the stored encoding."""
    return b'{"type":"' + kind.encode() + b'","object":' + stored.raw + b"}\n"


@dataclass(slots=True)
class WatchOptions:
    timeout: float | None = None
    bookmarks: bool = False
    bookmark_interval: float = 1.0
    initial_events_end: bool = False


Encoder = Callable[[str, Stored], bytes]
Bookmark = Callable[[int, bool], bytes]


class WatchStream:
    """Writes the events of one subscription until an end condition."""

    def __init__(
        self,
        store: Store,
        sub: Subscription,
        matcher: Matcher | None,
        options: WatchOptions,
        *,
        encode: Encoder,
        bookmark: Bookmark,
        client_gone: Callable[[], bool] = lambda: False,
    ) -> None:
        self.store = store
        self.sub = sub
        self.matcher = matcher
        self.options = options
        self.encode = encode
        self.bookmark = bookmark
        self.client_gone = client_gone
        self.initial_left = sub.initial if options.initial_events_end else -1
        self.initial_rv = sub.start_rv

    def _emit(self, batch: list[Change], write: Callable[[bytes], None]) -> None:
        chunk: list[bytes] = []
        for change in batch:
            if self.initial_left > 0:
                self.initial_left -= 1
            event = translate(change, self.matcher)
            if event is not None:
                chunk.append(self.encode(*event))
            if self.initial_left == 0:
                chunk.append(self.bookmark(self.initial_rv, True))
                self.initial_left = -1
            if len(chunk) >= BATCH:
                write(b"".join(chunk))
                chunk = []
        if chunk:
            write(b"".join(chunk))

    def run(self, write: Callable[[bytes], None]) -> str:
        """Stream until the end; returns why it ended ("timeout", "stopped", "cut", ...)."""
        opts = self.options
        start = time.monotonic()
        deadline = start + opts.timeout if opts.timeout else None
        next_bookmark = start + opts.bookmark_interval if opts.bookmarks else None
        if self.initial_left == 0:
            write(self.bookmark(self.initial_rv, True))
            self.initial_left = -1
        while True:
            now = time.monotonic()
            if deadline is not None and now >= deadline:
                return "timeout"
            wait = min(
                CHECK_INTERVAL,
                deadline - now if deadline is not None else CHECK_INTERVAL,
                max(0.0, next_bookmark - now) if next_bookmark is not None else CHECK_INTERVAL,
            )
            batch = self.sub.take(wait)
            if batch:
                self._emit(batch, write)
            if self.sub.closed is not None:
                return self.sub.closed
            if next_bookmark is not None and time.monotonic() >= next_bookmark:
                rv = self.store.quiet_since(self.sub)
                if rv is not None:
                    write(self.bookmark(rv, False))
                    next_bookmark = time.monotonic() + opts.bookmark_interval
            if not batch and self.client_gone():
                return "gone"


# ---------------------------------------------------------------- the HTTP side of a watch


def table_encoder(rt: ResourceType, clock: Callable[[], datetime], include: str) -> Encoder:
    """Events whose objects are one-row Tables; column definitions only in the first."""
    first = [True]

    def encode_event(kind: str, stored: Stored) -> bytes:
        table = render_table(
            rt,
            [stored.obj],
            clock(),
            resource_version=str(stored.rv),
            include_object=include,
            no_headers=not first[0],
        )
        first[0] = False
        return b'{"type":"' + kind.encode() + b'","object":' + encode(table) + b"}\n"

    return encode_event


def bookmark_encoder(rt: ResourceType) -> Bookmark:
    def bookmark(rv: int, initial_end: bool) -> bytes:
        meta: dict[str, Any] = {"resourceVersion": str(rv)}
        if initial_end:
            meta["annotations"] = {"k8s.io/initial-events-end": "true"}
        obj = {"kind": rt.kind, "apiVersion": rt.api_version, "metadata": meta}
        return b'{"type":"BOOKMARK","object":' + encode(obj) + b"}\n"

    return bookmark


def _since(request: Request) -> int | None:
    text = request.param("resourceVersion") or ""
    if text in ("", "0"):
        return None
    try:
        return int(text)
    except ValueError:
        raise BadRequest(
            f'resourceVersion: Invalid value: "{text}": must be a valid resource version'
        ) from None


def _flag(request: Request, name: str) -> bool:
    return (request.param(name) or "").lower() in {"true", "1"}


def serve_watch(
    store: Store,
    rt: ResourceType,
    namespace: str | None,
    matcher: Matcher | None,
    request: Request,
    encoder: Encoder,
    bookmark_interval: float,
) -> StreamResponse:
    """The chunked response of a watch request (an ERROR line when the version is too old)."""
    since = _since(request)
    timeout = request.param("timeoutSeconds") or ""
    if timeout and not timeout.isdigit():
        raise BadRequest(f"invalid value for timeoutSeconds: {timeout!r}")
    options = WatchOptions(
        timeout=float(timeout) if timeout and int(timeout) > 0 else None,
        bookmarks=_flag(request, "allowWatchBookmarks"),
        bookmark_interval=bookmark_interval,
        initial_events_end=_flag(request, "sendInitialEvents") and since is None,
    )
    try:
        sub = store.subscribe(rt, namespace, since)
    except Expired as error:
        line = b'{"type":"ERROR","object":' + encode(error.status()) + b"}\n"
        return StreamResponse(lambda write, gone: write(line))

    def run(write: Writer, client_gone: Callable[[], bool]) -> None:
        stream = WatchStream(
            store,
            sub,
            matcher,
            options,
            encode=encoder,
            bookmark=bookmark_encoder(rt),
            client_gone=client_gone,
        )
        try:
            reason = stream.run(write)
        finally:
            store.unsubscribe(sub)
        if reason == "cut-abrupt":
            raise AbruptClose()

    return StreamResponse(run)
