"""publish: de-duplication by message id, retries through a restart, clear failures."""

from __future__ import annotations

import asyncio

import pytest

from certlc_dev.devenv import NatsServer
from libs.bus import Bus, PublishError, StreamSpec, connect, ensure_topology, publish

pytestmark = pytest.mark.usefixtures("no_task_leaks")

EVENTS = StreamSpec(name="EVENTS", subjects=("events.>",), duplicate_window=60)


async def test_same_msg_id_is_stored_once(bus: Bus) -> None:
    await ensure_topology(bus, [EVENTS])

    first = await publish(bus, "events.tcp.a", b"rotate", msg_id="tcp-a/serial-1")
    second = await publish(bus, "events.tcp.a", b"rotate", msg_id="tcp-a/serial-1")

    assert first.duplicate is False
    assert second.duplicate is True
    assert second.seq == first.seq
    assert first.stream == "EVENTS"
    info = await bus.js.stream_info("EVENTS")
    assert info.state.messages == 1


async def test_different_ids_and_no_id_are_all_stored(bus: Bus) -> None:
    await ensure_topology(bus, [EVENTS])

    acks = [
        await publish(bus, "events.tcp.a", b"x", msg_id="one"),
        await publish(bus, "events.tcp.a", b"x", msg_id="two"),
        await publish(bus, "events.tcp.a", b"x", msg_id=None),
        await publish(bus, "events.tcp.a", b"x", msg_id=None),
    ]

    assert [ack.seq for ack in acks] == [1, 2, 3, 4]
    assert not any(ack.duplicate for ack in acks)


async def test_headers_reach_the_stream(bus: Bus) -> None:
    await ensure_topology(bus, [EVENTS])
    ack = await publish(bus, "events.h", b"x", msg_id="h", headers={"Certlc-Kind": "issued"})
    stored = await bus.js.get_msg("EVENTS", ack.seq)
    assert stored.headers is not None
    assert stored.headers["Certlc-Kind"] == "issued"
    assert stored.headers["Nats-Msg-Id"] == "h"


async def test_empty_msg_id_is_refused(bus: Bus) -> None:
    with pytest.raises(ValueError, match="msg_id"):
        await publish(bus, "events.x", b"x", msg_id=" ")


async def test_no_stream_for_the_subject_is_a_retryable_error(bus: Bus) -> None:
    with pytest.raises(PublishError) as caught:
        await publish(bus, "nowhere.x", b"x", msg_id="1", ack_timeout=0.2, retry_for=0.5)
    assert caught.value.retryable
    assert caught.value.subject == "nowhere.x"


async def test_wrong_expected_stream_is_rejected_at_once(bus: Bus) -> None:
    await ensure_topology(bus, [EVENTS])
    with pytest.raises(PublishError) as caught:
        await publish(bus, "events.x", b"x", msg_id="1", expected_stream="OTHER")
    assert not caught.value.retryable


async def test_publish_waits_for_a_restarting_server(restartable_nats: NatsServer) -> None:
    bus = await connect(restartable_nats.url, name="publisher", connect_deadline=5)
    try:
        await ensure_topology(bus, [EVENTS])
        await asyncio.to_thread(restartable_nats.stop)

        pending = asyncio.create_task(
            publish(bus, "events.tcp.b", b"x", msg_id="during-outage", ack_timeout=0.5)
        )
        await asyncio.sleep(1.0)
        assert not pending.done()
        await asyncio.to_thread(restartable_nats.start)
        ack = await asyncio.wait_for(pending, timeout=15)

        assert ack.stream == "EVENTS"
        # Retries of a publish that did land are absorbed by the message id.
        info = await bus.js.stream_info("EVENTS")
        assert info.state.messages == 1
    finally:
        await bus.close()
