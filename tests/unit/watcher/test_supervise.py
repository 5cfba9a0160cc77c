"""The watcher's supervisor: a task that dies, or ends before stop, ends the process."""

from __future__ import annotations

import asyncio

import pytest

from services.watcher.app import supervise


async def test_a_task_that_fails_stops_the_others_with_its_error() -> None:
    stop = asyncio.Event()
    cancelled: list[str] = []

    async def forever() -> None:
        try:
            await asyncio.Event().wait()
        finally:
            cancelled.append("forever")

    async def broken() -> None:
        raise ValueError("publish gave up")

    with pytest.raises(ValueError, match="publish gave up"):
        await asyncio.wait_for(supervise(stop, publisher=broken(), resync=forever()), 5)
    assert cancelled == ["forever"]


async def test_a_task_that_ends_before_stop_is_an_error_but_the_starter_may() -> None:
    stop = asyncio.Event()

    async def done() -> None:
        return None

    with pytest.raises(RuntimeError, match="publisher ended unexpectedly"):
        await asyncio.wait_for(supervise(stop, starter=done(), publisher=done()), 5)

    async def until_stopped() -> None:
        await stop.wait()

    async def stop_soon() -> None:
        await asyncio.sleep(0.05)
        stop.set()

    await asyncio.wait_for(
        supervise(stop, starter=stop_soon(), publisher=until_stopped(), other=until_stopped()), 5
    )
    assert stop.is_set()
