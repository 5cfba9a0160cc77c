"""ensure_topology: idempotent, race-safe across clients, updates drift, refuses the impossible."""

from __future__ import annotations

import asyncio

import pytest

from certlc_dev.devenv import NatsServer
from libs.bus import (
    Bus,
    ConsumerSpec,
    Outcome,
    Retention,
    Storage,
    StreamSpec,
    TopologyError,
    connect,
    ensure_topology,
)

pytestmark = pytest.mark.usefixtures("no_task_leaks")

EVENTS = StreamSpec(
    name="EVENTS", subjects=("events.>",), max_age=3600, duplicate_window=60, max_msgs_per_subject=5
)
JOBS = StreamSpec(name="JOBS", subjects=("jobs.>",), retention=Retention.WORK_QUEUE)
WATCHER = ConsumerSpec(stream="EVENTS", durable="watcher", filter_subject="events.tcp.>")
ISSUER = ConsumerSpec(
    stream="JOBS", durable="issuer", ack_wait=10, max_deliver=5, backoff=(1.0, 5.0)
)


async def test_creates_everything_then_reports_unchanged(bus: Bus) -> None:
    first = await ensure_topology(bus, [EVENTS, JOBS], [WATCHER, ISSUER])
    assert set(first.outcomes.values()) == {Outcome.CREATED}
    assert len(first.outcomes) == 4

    second = await ensure_topology(bus, [EVENTS, JOBS], [WATCHER, ISSUER])
    assert set(second.outcomes.values()) == {Outcome.UNCHANGED}

    info = await bus.js.stream_info("EVENTS")
    assert info.config.max_age == 3600
    assert info.config.duplicate_window == 60
    assert info.config.max_msgs_per_subject == 5
    consumer = await bus.js.consumer_info("JOBS", "issuer")
    assert consumer.config.backoff == [1.0, 5.0]
    assert consumer.config.max_deliver == 5


async def test_concurrent_declarations_from_several_clients(nats_server: NatsServer) -> None:
    buses = [
        await connect(nats_server.url, name=f"replica-{index}", connect_deadline=5)
        for index in range(4)
    ]
    try:
        reports = await asyncio.gather(
            *(ensure_topology(bus, [EVENTS, JOBS], [WATCHER, ISSUER]) for bus in buses)
        )
    finally:
        for bus in buses:
            await bus.close()
    for key in ("stream:EVENTS", "stream:JOBS", "consumer:EVENTS/watcher", "consumer:JOBS/issuer"):
        outcomes = [report.outcomes[key] for report in reports]
        assert Outcome.UPDATED not in outcomes, (key, outcomes)


async def test_updates_a_stream_and_a_consumer_that_drifted(bus: Bus) -> None:
    await ensure_topology(bus, [EVENTS], [WATCHER])
    longer = StreamSpec(
        name="EVENTS",
        subjects=("events.>", "audit.>"),
        max_age=7200,
        duplicate_window=60,
        max_msgs_per_subject=5,
    )
    slower = ConsumerSpec(
        stream="EVENTS", durable="watcher", filter_subject="events.tcp.>", ack_wait=60
    )

    report = await ensure_topology(bus, [longer], [slower])

    assert report.outcomes == {
        "stream:EVENTS": Outcome.UPDATED,
        "consumer:EVENTS/watcher": Outcome.UPDATED,
    }
    info = await bus.js.stream_info("EVENTS")
    assert sorted(info.config.subjects or []) == ["audit.>", "events.>"]
    assert info.config.max_age == 7200
    consumer = await bus.js.consumer_info("EVENTS", "watcher")
    assert consumer.config.ack_wait == 60


async def test_refuses_a_storage_change_and_names_the_field(bus: Bus) -> None:
    await ensure_topology(bus, [JOBS])
    in_memory = StreamSpec(
        name="JOBS", subjects=("jobs.>",), retention=Retention.WORK_QUEUE, storage=Storage.MEMORY
    )
    with pytest.raises(TopologyError, match="stream JOBS: cannot change storage"):
        await ensure_topology(bus, [in_memory])


async def test_consumer_for_a_missing_stream_is_a_topology_error(bus: Bus) -> None:
    orphan = ConsumerSpec(stream="NOPE", durable="orphan")
    with pytest.raises(TopologyError, match="NOPE"):
        await ensure_topology(bus, [], [orphan], retry_for=1)


def test_specs_reject_what_the_server_would_reject() -> None:
    with pytest.raises(ValueError, match="max_deliver"):
        ConsumerSpec(stream="S", durable="d", backoff=(1.0, 2.0))  # needs finite max_deliver
    with pytest.raises(ValueError, match="duplicate_window"):
        StreamSpec(name="S", subjects=("s.>",), max_age=10, duplicate_window=60)
    with pytest.raises(ValueError, match="name"):
        StreamSpec(name="has.dot", subjects=("s.>",))
    with pytest.raises(ValueError, match="subject"):
        StreamSpec(name="S", subjects=())
