"""`limit`/`continue` pagination over consistent list snapshots.

Like etcd serving a paginated list at one revision, every page of a paginated list comes from
the snapshot taken by the first request (objects are immutable, so a snapshot is a list of
references). Snapshots live for `ttl` seconds and at most `capacity` are kept; an unknown or
expired token gets 410 Expired, as the API server answers once etcd compacted the revision.
"""

from __future__ import annotations

import base64
import binascii
import itertools
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass

import msgspec

from certlc_dev.kubesim.errors import BadRequest, Expired
from certlc_dev.kubesim.events import Stored

EXPIRED_CONTINUE = (
    "The provided continue parameter is too old to display a consistent list result. You can "
    "start a new list without the continue parameter, or use the continue token in this response "
    "to retrieve the remainder of the results. Continuing with the provided token results in an "
    "inconsistent list - objects that were created, modified, or deleted between the time the "
    "first chunk was returned and now may show up in the list."
)


@dataclass(frozen=True, slots=True)
class ListResult:
    """One page of a list: items, the list's resourceVersion, and what remains."""

    items: list[Stored]
    rv: int
    continue_token: str = ""
    remaining: int | None = None


class _Token(msgspec.Struct, forbid_unknown_fields=True):
    id: int
    offset: int
    rv: int


class Pager:
    """Keeps list snapshots for continuation."""

    def __init__(self, *, ttl: float = 300.0, capacity: int = 64) -> None:
        self.ttl = ttl
        self.capacity = capacity
        self._lock = threading.Lock()
        self._snapshots: OrderedDict[int, tuple[list[Stored], int, float]] = OrderedDict()
        self._ids = itertools.count(1)

    def _page(
        self, snapshot_id: int, items: list[Stored], rv: int, offset: int, limit: int | None
    ) -> ListResult:
        if limit is None or limit <= 0 or offset + limit >= len(items):
            return ListResult(items[offset:], rv)
        end = offset + limit
        raw = msgspec.json.encode(_Token(id=snapshot_id, offset=end, rv=rv))
        token = base64.urlsafe_b64encode(raw).decode().rstrip("=")
        return ListResult(items[offset:end], rv, token, len(items) - end)

    def first(self, items: list[Stored], rv: int, limit: int | None) -> ListResult:
        if limit is None or limit <= 0 or limit >= len(items):
            return ListResult(items, rv)
        with self._lock:
            snapshot_id = next(self._ids)
            self._snapshots[snapshot_id] = (items, rv, time.monotonic())
            while len(self._snapshots) > self.capacity:
                self._snapshots.popitem(last=False)
        return self._page(snapshot_id, items, rv, 0, limit)

    def resume(self, token: str, limit: int | None) -> ListResult:
        try:
            padded = token + "=" * (-len(token) % 4)
            parsed = msgspec.json.decode(base64.urlsafe_b64decode(padded), type=_Token)
        except (binascii.Error, ValueError, msgspec.DecodeError):
            raise BadRequest(f"continue key is not valid: {token!r}") from None
        with self._lock:
            entry = self._snapshots.get(parsed.id)
            if entry is None or time.monotonic() - entry[2] > self.ttl:
                self._snapshots.pop(parsed.id, None)
                raise Expired(EXPIRED_CONTINUE)
        items, rv, _ = entry
        return self._page(parsed.id, items, rv, parsed.offset, limit)

    def clear(self) -> None:
        with self._lock:
            self._snapshots.clear()
