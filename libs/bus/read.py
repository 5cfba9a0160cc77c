"""Read a stream from a chosen point with an ephemeral consumer: for tools, not services.

`open_reader` creates an ordered, ack-less, ephemeral consumer on `stream` filtered by one
subject (wildcards allowed) and starting at the first message, at a time (`since`), after a
sequence (`after_seq`) or at the next message published (`only_new`). The server removes the
consumer `inactive_threshold` after the reader closes (or its process dies): the reader never
deletes it itself, so a user allowed to create ephemeral consumers on a stream needs no right to
delete consumers there (which, by name, would also reach the durable ones of others). nats-py
recreates the consumer after a gap (missed heartbeats, a server restart), resuming after the last
sequence seen, so a reader that follows a stream survives reconnects.

`StreamReader.next(max_wait)` hands over the next `StoredMessage` (subject, payload, stream
sequence, the time the server stored it) or None on timeout; `caught_up` becomes true once every
matching message that existed when the reader opened has been handed over, which is what a
bounded listing (`read_available`) stops on. nats-py types stay inside this module.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import logging
from dataclasses import dataclass, field
from types import TracebackType
from typing import Self

import nats.errors
import nats.js.errors
from nats.aio.msg import Msg
from nats.js import api
from nats.js.client import JetStreamContext

from libs.bus.connect import Bus
from libs.bus.errors import BusError

log = logging.getLogger(__name__)

DEFAULT_INACTIVE_THRESHOLD = 10.0


class StreamNotFoundError(BusError):
    """The stream to read does not exist (yet) on this NATS server."""


@dataclass(frozen=True, slots=True, kw_only=True)
class StoredMessage:
    """One message of a stream as a reader sees it. `repr()` never shows the payload."""

    subject: str
    data: bytes = field(repr=False)
    seq: int
    time: datetime.datetime
    pending: int = 0  # matching messages still in the stream after this one, when delivered


class StreamReader:
    """Messages of one stream from the start point chosen at `open_reader`, in order."""

    def __init__(
        self,
        bus: Bus,
        sub: JetStreamContext.PushSubscription,
        queue: asyncio.Queue[Msg],
        *,
        stream: str,
        backlog: int,
        first_seq: int = 1,
        since: datetime.datetime | None = None,
    ) -> None:
        self._bus = bus
        self._sub = sub
        self._queue = queue
        self.stream = stream
        self._backlog = backlog  # matching messages present when the reader opened
        self._received = 0
        # A consumer recreated after a gap before its first message restarts from sequence 1:
        # what lies before the chosen start, or was handed over already, is dropped here.
        self._last_seq = first_seq - 1
        self._since = since
        self._caught_up = backlog == 0
        self._closed = False

    @property
    def caught_up(self) -> bool:
        """Every matching message that existed when the reader opened has been handed over."""
        return self._caught_up

    async def next(self, max_wait: float | None = None) -> StoredMessage | None:
        """The next message, waiting up to `max_wait` seconds (None: forever); None on timeout."""
        if self._closed:
            raise BusError(f"reader of stream {self.stream} is closed")
        loop = asyncio.get_running_loop()
        deadline = None if max_wait is None else loop.time() + max_wait
        while True:
            left = None if deadline is None else max(0.0, deadline - loop.time())
            try:
                msg = await asyncio.wait_for(self._queue.get(), timeout=left)
            except TimeoutError:
                return None
            meta = msg.metadata
            stored = StoredMessage(
                subject=msg.subject,
                data=bytes(msg.data),
                seq=int(meta.sequence.stream),
                time=_utc(meta.timestamp),
                pending=int(meta.num_pending or 0),
            )
            if stored.seq <= self._last_seq or (self._since and stored.time < self._since):
                continue
            self._last_seq = stored.seq
            self._received += 1
            if stored.pending == 0 or self._received >= self._backlog:
                self._caught_up = True
            return stored

    async def read_available(self, idle_timeout: float = 5.0) -> list[StoredMessage]:
        """Every message up to the end of the stream as it was when the reader opened.

        `idle_timeout` bounds the wait for one message while the backlog is not yet handed
        over (a server that stops delivering mid-way); what arrived so far is returned.
        """
        messages: list[StoredMessage] = []
        while not self._caught_up:
            stored = await self.next(idle_timeout)
            if stored is None:
                log.warning(
                    "stream reader stalled before catching up",
                    extra={"stream": self.stream, "received": len(messages)},
                )
                break
            messages.append(stored)
        return messages

    async def close(self) -> None:
        """Unsubscribe; the server removes the ephemeral consumer. Safe to call twice."""
        if self._closed:
            return
        self._closed = True
        await _discard(self._sub)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()


def _utc(moment: datetime.datetime) -> datetime.datetime:
    if moment.tzinfo is None:
        return moment.replace(tzinfo=datetime.UTC)
    return moment.astimezone(datetime.UTC)


def _start_config(
    since: datetime.datetime | None, after_seq: int | None, only_new: bool
) -> api.ConsumerConfig:
    chosen = sum((since is not None, after_seq is not None, only_new))
    if chosen > 1:
        raise ValueError("choose at most one of since, after_seq and only_new")
    if since is not None:
        if since.tzinfo is None:
            raise ValueError("since must be timezone-aware")
        return api.ConsumerConfig(
            deliver_policy=api.DeliverPolicy.BY_START_TIME, opt_start_time=_utc(since)
        )
    if after_seq is not None:
        if after_seq < 0:
            raise ValueError("after_seq must be >= 0")
        return api.ConsumerConfig(
            deliver_policy=api.DeliverPolicy.BY_START_SEQUENCE, opt_start_seq=after_seq + 1
        )
    if only_new:
        return api.ConsumerConfig(deliver_policy=api.DeliverPolicy.NEW)
    return api.ConsumerConfig(deliver_policy=api.DeliverPolicy.ALL)


async def last_sequence(bus: Bus, stream: str) -> int:
    """The sequence of the newest message in `stream` (0 when empty)."""
    try:
        info = await bus.js.stream_info(stream)
    except nats.js.errors.NotFoundError as exc:
        raise StreamNotFoundError(f"stream {stream} not found") from exc
    return int(info.state.last_seq or 0)


async def open_reader(
    bus: Bus,
    stream: str,
    filter_subject: str,
    *,
    since: datetime.datetime | None = None,
    after_seq: int | None = None,
    only_new: bool = False,
    idle_heartbeat: float = 5.0,
    inactive_threshold: float = DEFAULT_INACTIVE_THRESHOLD,
    max_buffered: int = 10_000,
) -> StreamReader:
    """An ephemeral ordered consumer on `stream` for `filter_subject`, from the chosen start.

    Default start: the first message. `since`: the first message stored at or after that
    moment. `after_seq`: the message after that stream sequence. `only_new`: messages published
    from now on. Raises `StreamNotFoundError` when the stream does not exist.
    """
    config = _start_config(since, after_seq, only_new)
    config.inactive_threshold = inactive_threshold
    queue: asyncio.Queue[Msg] = asyncio.Queue(maxsize=max_buffered)

    async def enqueue(msg: Msg) -> None:
        await queue.put(msg)

    try:
        sub = await bus.js.subscribe(
            filter_subject,
            stream=stream,
            config=config,
            ordered_consumer=True,
            idle_heartbeat=idle_heartbeat,
            cb=enqueue,
        )
    except nats.js.errors.NotFoundError as exc:
        raise StreamNotFoundError(f"stream {stream} not found") from exc
    try:
        info = await sub.consumer_info()
    except (nats.errors.Error, TimeoutError):
        await _discard(sub)
        raise
    # nats-py keeps `config` to recreate the consumer after a gap, then from a sequence: a
    # start time left in it would make the server refuse that request.
    config.opt_start_time = None
    delivered = int(info.delivered.consumer_seq or 0) if info.delivered else 0
    backlog = 0 if only_new else int(info.num_pending or 0) + delivered
    first_seq = 1
    if only_new:
        first_seq = int(info.delivered.stream_seq or 0) + 1 if info.delivered else 1
    elif after_seq is not None:
        first_seq = after_seq + 1
    log.debug(
        "stream reader opened",
        extra={"stream": stream, "filter": filter_subject, "backlog": backlog},
    )
    return StreamReader(
        bus,
        sub,
        queue,
        stream=stream,
        backlog=backlog,
        first_seq=first_seq,
        since=_utc(since) if since is not None else None,
    )


async def _discard(sub: JetStreamContext.PushSubscription) -> None:
    """Unsubscribe: with no interest left, the server removes the ephemeral consumer after its
    `inactive_threshold`. No delete request, so readers need no `CONSUMER.DELETE` right."""
    with contextlib.suppress(nats.errors.Error, TimeoutError):
        await sub.unsubscribe()
