"""The pull-consumer loop: fetch a batch, run handlers, then ack, nak or term each message.

The loop owns acknowledgement so that every handler is "typed message in, effects out":

- handler returns          -> `ack()` (only now: a crash mid-handler means redelivery)
- `TemporaryError(delay)`  -> `nak(delay)`: try again later
- `PermanentError`         -> `term()`: never redeliver; the reason is logged
- any other exception      -> logged with traceback, `nak` with exponential backoff
                              (by delivery count); the loop itself never dies of a handler bug

Messages of one batch run concurrently up to `max_concurrency`, except that messages with the
same ordering key (a function of the subject) run one after another in stream order. If one of
them fails, the later ones with that key are not run in this batch but nak'ed with the same
delay, so they cannot overtake it. Long handlers are kept alive with in-progress heartbeats.
Fetch failures (server restart, consumer not created yet) are logged and retried with backoff;
the pull subscription survives reconnects. Set `stop_event` to finish the current batch and
return (within about `fetch_timeout`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
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
    ordering_key: OrderingKey | None = by_subject,
    heartbeat_interval: float | None = 10.0,
    retry_backoff: Backoff = DEFAULT_RETRY_BACKOFF,
    fetch_error_backoff: Backoff = DEFAULT_FETCH_ERROR_BACKOFF,
) -> None:
    """Consume `stream`/`durable` (created beforehand by `ensure_topology`) until `stop_event`.

    `ordering_key=None` lets every message of a batch run concurrently. `heartbeat_interval`
    should be well below the consumer's ack_wait (None disables heartbeats).
    """
    if batch < 1 or max_concurrency < 1:
        raise ValueError("batch and max_concurrency must be >= 1")
    if fetch_timeout <= 0:
        raise ValueError("fetch_timeout must be > 0")
    runner = _BatchRunner(handler, max_concurrency, ordering_key, heartbeat_interval, retry_backoff)
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
            try:
                msgs = await sub.fetch(batch, timeout=fetch_timeout)
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
            await runner.run_batch(msgs)
    finally:
        with contextlib.suppress(nats.errors.Error, TimeoutError):
            await sub.unsubscribe()
            await bus.client.flush(timeout=2)  # let the last acks reach the server
        log.info("consumer stopped", extra=where)


async def _sleep_unless(stop_event: asyncio.Event, delay: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop_event.wait(), timeout=delay)


class _BatchRunner:
    """Runs one fetched batch: groups by ordering key, bounded concurrency, then settles."""

    def __init__(
        self,
        handler: Handler,
        max_concurrency: int,
        ordering_key: OrderingKey | None,
        heartbeat_interval: float | None,
        retry_backoff: Backoff,
    ) -> None:
        self._handler = handler
        self._slots = asyncio.Semaphore(max_concurrency)
        self._ordering_key = ordering_key
        self._heartbeat_interval = heartbeat_interval
        self._retry_backoff = retry_backoff

    async def run_batch(self, msgs: list[Msg]) -> None:
        groups: dict[object, list[Msg]] = {}
        for index, msg in enumerate(msgs):
            key = self._ordering_key(msg.subject) if self._ordering_key else index
            groups.setdefault(key, []).append(msg)
        async with asyncio.TaskGroup() as group:
            for ordered in groups.values():
                group.create_task(self._run_in_order(ordered))

    async def _run_in_order(self, msgs: list[Msg]) -> None:
        deferred: float | None = None  # nak delay of a failed earlier message with this key
        for msg in msgs:
            if deferred is not None:
                await _settle(msg, "nak", deferred)
                continue
            async with self._slots:
                deferred = await self._handle(msg)

    async def _handle(self, msg: Msg) -> float | None:
        """Run the handler on one message and settle it; return the nak delay if it failed."""
        try:
            delivery = _delivery(msg)
        except nats.errors.NotJSMessageError:
            log.error("not a JetStream delivery, skipped", extra={"subject": msg.subject})
            return None
        heartbeat = self._start_heartbeat(delivery)
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
        finally:
            if heartbeat is not None:
                heartbeat.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await heartbeat
        await _settle(msg, "ack")
        return None

    def _start_heartbeat(self, delivery: Delivery) -> asyncio.Task[None] | None:
        if self._heartbeat_interval is None:
            return None
        return asyncio.create_task(_heartbeat(delivery, self._heartbeat_interval))


async def _heartbeat(delivery: Delivery, interval: float) -> None:
    while True:
        await asyncio.sleep(interval)
        try:
            await delivery.in_progress()
        except nats.errors.Error as exc:
            log.debug(
                "in-progress heartbeat failed", extra={**delivery.log_fields(), "error": repr(exc)}
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
