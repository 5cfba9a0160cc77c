"""The pull-consumer loop: per message, never per batch; ack, nak or term each message.

The loop owns acknowledgement so that every handler is "typed message in, effects out":

- handler returns          -> `ack()` (only now: a crash mid-handler means redelivery)
- `TemporaryError(delay)`  -> `nak(delay)`: the server redelivers it after `delay`; this is how a
                              handler that must re-check later (a rollout still in progress)
                              gives its slot back instead of waiting in it
- `PermanentError`         -> `term()`: never redeliver; the reason is logged
- any other exception      -> logged with traceback, `nak` with exponential backoff
                              (by delivery count); the loop itself never dies of a handler bug

Up to `max_concurrency` handlers run at once, and the loop fetches more messages as soon as one
of them finishes: a slow handler holds its own slot, never a batch. Messages with the same
ordering key (a function of the subject) run one after another in stream order: a later one
waits for the earlier one (its heartbeats keep it from being redelivered meanwhile) while other
keys go on. If one fails, the later ones with its key that were already fetched are nak'ed with
the same delay, so they cannot overtake it. At most `max_concurrency` keys are in hand at once,
and at most `max_held` messages (running or waiting behind their key).

Every message in hand gets an in-progress heartbeat each `heartbeat_interval` seconds, which
must be well below the consumer's ack_wait (a third of it or less): then a message is only
redelivered when its process died, and ack_wait alone bounds how long that takes. Fetch failures
(server restart, consumer not created yet) are logged and retried with backoff; the pull
subscription survives reconnects. Set `stop_event` to let the running handlers finish and return
(within about `fetch_timeout`).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Hashable
from types import MappingProxyType

import nats.errors
from nats.aio.msg import Msg

from libs.bus.backoff import Backoff
from libs.bus.connect import Bus
from libs.bus.delivery import Delivery, OrderingKey, by_subject
from libs.bus.errors import BusError, PermanentError, TemporaryError

log = logging.getLogger(__name__)

Handler = Callable[[Delivery], Awaitable[None]]

DEFAULT_RETRY_BACKOFF = Backoff(initial=1.0, maximum=60.0)
DEFAULT_FETCH_ERROR_BACKOFF = Backoff(initial=0.1, maximum=5.0)
DEFAULT_HEARTBEAT_INTERVAL = 2.0
"""Seconds between in-progress heartbeats; a consumer's ack_wait should be 3x this or more."""


async def run_consumer(
    bus: Bus,
    stream: str,
    durable: str,
    handler: Handler,
    *,
    stop_event: asyncio.Event,
    batch: int = 10,
    fetch_timeout: float = 2.0,
    max_concurrency: int = 4,
    max_held: int | None = None,
    ordering_key: OrderingKey | None = by_subject,
    heartbeat_interval: float | None = DEFAULT_HEARTBEAT_INTERVAL,
    retry_backoff: Backoff = DEFAULT_RETRY_BACKOFF,
    fetch_error_backoff: Backoff = DEFAULT_FETCH_ERROR_BACKOFF,
) -> None:
    """Consume `stream`/`durable` (created beforehand by `ensure_topology`) until `stop_event`.

    `batch` caps one fetch; `max_held` (default `4 * max_concurrency`, at least `batch`) caps the
    messages in hand. `ordering_key=None` lets every message run concurrently.
    `heartbeat_interval` should be a third of the consumer's ack_wait or less (None disables
    heartbeats).
    """
    if batch < 1 or max_concurrency < 1:
        raise ValueError("batch and max_concurrency must be >= 1")
    if fetch_timeout <= 0:
        raise ValueError("fetch_timeout must be > 0")
    held_limit = max_held if max_held is not None else max(4 * max_concurrency, batch)
    if held_limit < 1:
        raise ValueError("max_held must be >= 1")
    dispatcher = _Dispatcher(
        handler, max_concurrency, held_limit, ordering_key, heartbeat_interval, retry_backoff
    )
    sub = await bus.js.pull_subscribe_bind(durable=durable, stream=stream)
    where = {"stream": stream, "consumer": durable}
    failures = 0
    log.info("consumer started", extra=where)
    try:
        while not stop_event.is_set():
            if not bus.is_connected:
                # Pull requests buffered while disconnected would all fire on reconnect.
                if bus.is_closed:
                    raise BusError(f"consumer {stream}/{durable}: connection closed")
                await _sleep_unless(stop_event, fetch_error_backoff.initial)
                continue
            room = dispatcher.room()
            if room == 0:
                await dispatcher.wait_for_room(stop_event)
                continue
            try:
                msgs = await sub.fetch(min(batch, room), timeout=fetch_timeout)
            except TimeoutError:  # nothing to do (or the server is away): poll again
                continue
            except (nats.errors.Error, OSError) as exc:
                if bus.is_closed:
                    raise BusError(f"consumer {stream}/{durable}: connection closed") from exc
                failures += 1
                delay = fetch_error_backoff.delay(failures)
                log.warning("fetch failed, retrying", extra={**where, "error": repr(exc)})
                await _sleep_unless(stop_event, delay)
                continue
            failures = 0
            for msg in msgs:
                dispatcher.add(msg)
        await dispatcher.drain()
    finally:
        await dispatcher.cancel()
        with contextlib.suppress(nats.errors.Error, TimeoutError):
            await sub.unsubscribe()
            await bus.client.flush(timeout=2)  # let the last acks reach the server
        log.info("consumer stopped", extra=where)


async def _sleep_unless(stop_event: asyncio.Event, delay: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop_event.wait(), timeout=delay)


class _Chain:
    """The messages of one ordering key in hand, handled one after another by one task."""

    __slots__ = ("deferred", "queue")

    def __init__(self) -> None:
        self.queue: deque[tuple[Msg, asyncio.Task[None] | None]] = deque()
        self.deferred: float | None = None  # nak delay of a failed earlier message


class _Dispatcher:
    """Messages in hand: one task per ordering key (at most `max_concurrency` keys), at most
    `held_limit` messages; each message heartbeats from its fetch until it is settled."""

    def __init__(
        self,
        handler: Handler,
        max_concurrency: int,
        held_limit: int,
        ordering_key: OrderingKey | None,
        heartbeat_interval: float | None,
        retry_backoff: Backoff,
    ) -> None:
        self._handler = handler
        self._max_concurrency = max_concurrency
        self._held_limit = held_limit
        self._ordering_key = ordering_key
        self._heartbeat_interval = heartbeat_interval
        self._retry_backoff = retry_backoff
        self._chains: dict[Hashable, _Chain] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._held = 0
        self._changed = asyncio.Event()
        self._unique = itertools.count()

    def room(self) -> int:
        """How many messages may be fetched now (0: wait for a running handler to finish)."""
        return max(0, min(self._max_concurrency - len(self._chains), self._held_limit - self._held))

    async def wait_for_room(self, stop_event: asyncio.Event) -> None:
        self._changed.clear()
        if self.room() > 0:
            return
        waits = {
            asyncio.ensure_future(self._changed.wait()),
            asyncio.ensure_future(stop_event.wait()),
        }
        try:
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiting in waits:
                waiting.cancel()

    def add(self, msg: Msg) -> None:
        key: Hashable = (
            self._ordering_key(msg.subject) if self._ordering_key else next(self._unique)
        )
        self._held += 1
        chain = self._chains.get(key)
        heartbeat = self._start_heartbeat(msg)
        if chain is not None:
            chain.queue.append((msg, heartbeat))
            return
        chain = self._chains[key] = _Chain()
        chain.queue.append((msg, heartbeat))
        task = asyncio.create_task(self._run_chain(key, chain))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def drain(self) -> None:
        """Wait for every message in hand to be settled."""
        while self._tasks:
            await asyncio.wait(set(self._tasks))

    async def cancel(self) -> None:
        """Stop what still runs (its messages are redelivered after ack_wait)."""
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _run_chain(self, key: Hashable, chain: _Chain) -> None:
        try:
            while chain.queue:
                msg, heartbeat = chain.queue[0]
                try:
                    if chain.deferred is not None:
                        await _settle(msg, "nak", chain.deferred)
                    else:
                        chain.deferred = await self._handle(msg)
                finally:
                    await _stop(heartbeat)
                    chain.queue.popleft()
                    self._held -= 1
                    self._changed.set()
        finally:
            for _, heartbeat in chain.queue:  # cancelled: stop the heartbeats of the rest
                await _stop(heartbeat)
            self._held -= len(chain.queue)
            chain.queue.clear()
            del self._chains[key]
            self._changed.set()

    async def _handle(self, msg: Msg) -> float | None:
        """Run the handler on one message and settle it; return the nak delay if it failed."""
        try:
            delivery = _delivery(msg)
        except nats.errors.NotJSMessageError:
            log.error("not a JetStream delivery, skipped", extra={"subject": msg.subject})
            return None
        try:
            await self._handler(delivery)
        except TemporaryError as exc:
            log.info(
                "handler asked for a retry", extra={**_fields(delivery, exc), "delay": exc.delay}
            )
            return await _settle(msg, "nak", exc.delay)
        except PermanentError as exc:
            log.warning("handler rejected message, terminated", extra=_fields(delivery, exc))
            await _settle(msg, "term")
            return None
        except Exception as exc:  # a handler bug must not stop the loop
            delay = self._retry_backoff.delay(delivery.num_delivered)
            log.error(
                "handler failed, will retry",
                exc_info=True,
                extra={**_fields(delivery, exc), "delay": delay},
            )
            return await _settle(msg, "nak", delay)
        await _settle(msg, "ack")
        return None

    def _start_heartbeat(self, msg: Msg) -> asyncio.Task[None] | None:
        if self._heartbeat_interval is None:
            return None
        return asyncio.create_task(_heartbeat(msg, self._heartbeat_interval))


async def _stop(task: asyncio.Task[None] | None) -> None:
    if task is None:
        return
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


async def _heartbeat(msg: Msg, interval: float) -> None:
    while True:
        await asyncio.sleep(interval)
        try:
            await msg.in_progress()
        except nats.errors.Error as exc:
            log.debug(
                "in-progress heartbeat failed", extra={"subject": msg.subject, "error": repr(exc)}
            )


def _delivery(msg: Msg) -> Delivery:
    meta = msg.metadata
    return Delivery(
        subject=msg.subject,
        data=msg.data,
        headers=MappingProxyType(dict(msg.headers or {})),
        num_delivered=meta.num_delivered,
        stream=meta.stream,
        consumer=meta.consumer,
        stream_seq=meta.sequence.stream,
        consumer_seq=meta.sequence.consumer,
        num_pending=meta.num_pending,
        timestamp=meta.timestamp,
        progress=msg.in_progress,
    )


def _fields(delivery: Delivery, exc: BaseException) -> dict[str, object]:
    return {**delivery.log_fields(), "reason": str(exc), "error_type": type(exc).__name__}


async def _settle(msg: Msg, action: str, delay: float | None = None) -> float | None:
    """ack / nak(delay) / term; a failure here only delays redelivery until ack_wait."""
    try:
        if action == "ack":
            await msg.ack()
        elif action == "nak":
            await msg.nak(delay=delay)
        else:
            await msg.term()
    except nats.errors.Error as exc:
        log.warning(
            "could not settle message; it will be redelivered after ack_wait",
            extra={"subject": msg.subject, "action": action, "error": repr(exc)},
        )
    return delay
