"""ensure_topology: idempotent, race-safe across clients, updates drift, refuses the impossible."""

from __future__ import annotations

import asyncio

import pytest
from nats.js import api

from certlc_dev.devenv import NatsServer
from libs.bus import (
    Bus,
    ConsumerSpec,
    DeliverPolicy,
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


async def test_a_long_ack_wait_of_an_existing_consumer_becomes_the_declared_one(bus: Bus) -> None:
    old = ConsumerSpec(stream="JOBS", durable="worker", ack_wait=60)
    await ensure_topology(bus, [JOBS], [old])
    new = ConsumerSpec(stream="JOBS", durable="worker", ack_wait=6)

    report = await ensure_topology(bus, [JOBS], [new])

    assert report.outcomes["consumer:JOBS/worker"] is Outcome.UPDATED
    assert (await bus.js.consumer_info("JOBS", "worker")).config.ack_wait == 6


async def test_a_refused_consumer_change_on_a_work_queue_recreates_it(bus: Bus) -> None:
    """A push consumer left by an older deployment cannot become a pull consumer in place; on
    a work queue it is created again, and the messages it had not acked are still delivered."""
    await ensure_topology(bus, [JOBS])
    await bus.js.add_consumer(
        "JOBS",
        api.ConsumerConfig(
            durable_name="worker", deliver_subject="old.push", ack_policy=api.AckPolicy.EXPLICIT
        ),
    )
    await bus.js.publish("jobs.a", b"kept")

    report = await ensure_topology(bus, [JOBS], [ConsumerSpec(stream="JOBS", durable="worker")])

    assert report.outcomes["consumer:JOBS/worker"] is Outcome.UPDATED
    info = await bus.js.consumer_info("JOBS", "worker")
    assert not info.config.deliver_subject
    assert info.config.ack_wait == 30
    assert info.num_pending == 1


async def test_a_refused_consumer_change_elsewhere_names_the_field(bus: Bus) -> None:
    await ensure_topology(bus, [EVENTS], [WATCHER])
    newer = ConsumerSpec(
        stream="EVENTS",
        durable="watcher",
        filter_subject="events.tcp.>",
        deliver_policy=DeliverPolicy.LAST,
    )
    with pytest.raises(TopologyError, match="EVENTS/watcher: cannot change deliver_policy"):
        await ensure_topology(bus, [EVENTS], [newer])
