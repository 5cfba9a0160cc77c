"""open_reader: an ephemeral filtered consumer from the start, a time, a sequence or now."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from certlc_dev.devenv import NatsServer
from libs.bus import Bus, StreamSpec, connect, ensure_topology, publish
from libs.bus.read import StreamNotFoundError, last_sequence, open_reader

pytestmark = pytest.mark.usefixtures("no_task_leaks")

STREAM = "LOG"


async def _declare(bus: Bus) -> None:
    await ensure_topology(bus, [StreamSpec(name=STREAM, subjects=("log.>",))])


async def _put(bus: Bus, subject: str, text: str) -> int:
    ack = await publish(bus, subject, text.encode(), msg_id=None)
    return ack.seq


async def test_reads_backlog_in_order_filtered_then_caught_up(bus: Bus) -> None:
    await _declare(bus)
    for i in range(5):
        await _put(bus, f"log.a.{i}", f"a{i}")
        await _put(bus, f"log.b.{i}", f"b{i}")
    async with await open_reader(bus, STREAM, "log.a.>") as reader:
        caught_up_at_open = reader.caught_up
        got = await reader.read_available()
        assert [m.data for m in got] == [f"a{i}".encode() for i in range(5)]
        assert [m.subject for m in got] == [f"log.a.{i}" for i in range(5)]
        assert got == sorted(got, key=lambda m: m.seq)
        assert not caught_up_at_open
        assert reader.caught_up
        assert all(m.time.tzinfo is not None for m in got)
        # Nothing more now; a new message arrives live.
        assert await reader.next(0.3) is None
        await _put(bus, "log.a.9", "a9")
        live = await reader.next(5)
        assert live is not None
        assert live.data == b"a9"
        assert "a9" not in repr(live)


async def test_empty_selection_is_caught_up_at_once(bus: Bus) -> None:
    await _declare(bus)
    await _put(bus, "log.a.1", "x")
    async with await open_reader(bus, STREAM, "log.none.>") as reader:
        assert reader.caught_up
        assert await reader.read_available() == []


async def test_since_starts_at_a_time(bus: Bus) -> None:
    await _declare(bus)
    await _put(bus, "log.a.1", "old")
    await asyncio.sleep(0.5)
    middle = datetime.now(UTC)
    await asyncio.sleep(0.2)
    await _put(bus, "log.a.2", "new")
    async with await open_reader(bus, STREAM, "log.>", since=middle) as reader:
        assert [m.data for m in await reader.read_available()] == [b"new"]
    future = datetime.now(UTC) + timedelta(hours=1)
    async with await open_reader(bus, STREAM, "log.>", since=future) as reader:
        assert await reader.read_available() == []


async def test_after_seq_and_only_new(bus: Bus) -> None:
    await _declare(bus)
    first = await _put(bus, "log.a.1", "one")
    await _put(bus, "log.a.2", "two")
    assert await last_sequence(bus, STREAM) == first + 1
    async with await open_reader(bus, STREAM, "log.>", after_seq=first) as reader:
        assert [m.data for m in await reader.read_available()] == [b"two"]
    async with await open_reader(bus, STREAM, "log.>", only_new=True) as reader:
        assert reader.caught_up
        assert await reader.next(0.3) is None
        await _put(bus, "log.a.3", "three")
        got = await reader.next(5)
        assert got is not None
        assert got.data == b"three"


async def test_closing_removes_the_consumer(bus: Bus) -> None:
    """Without a delete request: the server removes it `inactive_threshold` after the close."""
    await _declare(bus)
    reader = await open_reader(bus, STREAM, "log.>", inactive_threshold=1.0)
    info = await bus.js.stream_info(STREAM)
    assert info.state.consumer_count == 1
    await reader.close()
    await reader.close()  # twice is fine
    for _ in range(50):
        info = await bus.js.stream_info(STREAM)
        if info.state.consumer_count == 0:
            break
        await asyncio.sleep(0.1)
    assert info.state.consumer_count == 0


async def test_bad_start_and_missing_stream(bus: Bus) -> None:
    await _declare(bus)
    with pytest.raises(ValueError, match="at most one"):
        await open_reader(bus, STREAM, "log.>", after_seq=1, only_new=True)
    with pytest.raises(ValueError, match="timezone"):
        await open_reader(bus, STREAM, "log.>", since=datetime(2020, 1, 1))
    with pytest.raises(StreamNotFoundError):
        await open_reader(bus, "NOPE", "nope.>")
    with pytest.raises(StreamNotFoundError):
        await last_sequence(bus, "NOPE")


async def test_reader_survives_a_server_restart(restartable_nats: NatsServer) -> None:
    bus = await connect(restartable_nats.url, name="reader-restart", connect_deadline=10)
    try:
        await _declare(bus)
        await _put(bus, "log.a.1", "before")
        async with await open_reader(bus, STREAM, "log.>", idle_heartbeat=0.5) as reader:
            assert [m.data for m in await reader.read_available()] == [b"before"]
            await asyncio.to_thread(restartable_nats.restart)
            for _ in range(100):
                if bus.is_connected:
                    break
                await asyncio.sleep(0.1)
            await _put(bus, "log.a.2", "after")
            got = await reader.next(20)
            assert got is not None
            assert got.data == b"after"
            assert await reader.next(1.5) is None  # no replay of "before"
    finally:
        await bus.close()
