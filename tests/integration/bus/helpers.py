"""Shared helpers for the libs.bus integration tests: polling, topology, a managed consumer."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import Any, Self

from libs.bus import Bus, ConsumerSpec, StreamSpec, ensure_topology, run_consumer
from libs.bus.consume import Handler


async def wait_until(
    predicate: Callable[[], bool | Awaitable[bool]],
    *,
    within: float = 10.0,
    interval: float = 0.05,
    what: str = "condition",
) -> None:
    """Poll `predicate` (sync or async) until true; fail after `within` seconds."""
    deadline = time.monotonic() + within
    while True:
        result = predicate()
        if not isinstance(result, bool):
            result = await result
        if result:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not reached within {within}s")
        await asyncio.sleep(interval)


async def declare(
    bus: Bus,
    stream: str = "ORDERS",
    durable: str = "worker",
    *,
    subjects: tuple[str, ...] | None = None,
    **consumer: Any,
) -> tuple[StreamSpec, ConsumerSpec]:
    stream_spec = StreamSpec(name=stream, subjects=subjects or (f"{stream.lower()}.>",))
    consumer_spec = ConsumerSpec(stream=stream, durable=durable, **consumer)
    await ensure_topology(bus, [stream_spec], [consumer_spec])
    return stream_spec, consumer_spec


def no_pending_acks(
    bus: Bus, stream: str = "ORDERS", durable: str = "worker"
) -> Callable[[], Awaitable[bool]]:
    """A `wait_until` predicate: the consumer has no delivered-but-unacked messages."""

    async def check() -> bool:
        info = await bus.js.consumer_info(stream, durable)
        return not info.num_ack_pending

    return check


class RunningConsumer:
    """`async with RunningConsumer(...)`: run_consumer in a task, stopped and awaited on exit."""

    def __init__(
        self, bus: Bus, stream: str, durable: str, handler: Handler, **options: Any
    ) -> None:
        self.stop_event = asyncio.Event()
        self._args = (bus, stream, durable, handler)
        self._options = options
        self.task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Self:
        self.task = asyncio.create_task(
            run_consumer(*self._args, stop_event=self.stop_event, **self._options)
        )
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop_event.set()
        assert self.task is not None
        await asyncio.wait_for(self.task, timeout=15)
