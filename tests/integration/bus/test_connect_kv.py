"""connect: deadline, reconnect logging, close; kv: compare-and-set for leader-free replicas."""

from __future__ import annotations

import asyncio
import logging

import pytest

from certlc_dev.devenv import NatsServer, free_tcp_ports
from libs.bus import BucketSpec, Bus, BusConnectError, KeyConflictError, connect, ensure_bucket
from tests.integration.bus.helpers import wait_until

pytestmark = pytest.mark.usefixtures("no_task_leaks")


async def test_first_connect_gives_up_at_the_deadline() -> None:
    (port,) = free_tcp_ports(1)  # nobody listens there
    with pytest.raises(BusConnectError, match=str(port)):
        await connect(f"nats://127.0.0.1:{port}", name="nobody-home", connect_deadline=0.5)


async def test_reconnects_and_logs_it(
    restartable_nats: NatsServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="libs.bus")
    bus = await connect(restartable_nats.url, name="reconnector", connect_deadline=5)
    try:
        await asyncio.to_thread(restartable_nats.restart)
        await wait_until(lambda: bus.is_connected, what="reconnect")
        await wait_until(
            lambda: any(r.getMessage() == "reconnected to nats" for r in caplog.records),
            what="reconnect log line",
        )
        messages = [record.getMessage() for record in caplog.records]
        assert "disconnected from nats, reconnecting" in messages
        reconnected = next(r for r in caplog.records if r.getMessage() == "reconnected to nats")
        assert reconnected.__dict__["client_name"] == "reconnector"
    finally:
        await bus.close()
    assert bus.is_closed
    await bus.close()  # idempotent


async def test_close_does_not_log_a_disconnect(
    nats_server: NatsServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="libs.bus")
    async with await connect(nats_server.url, name="short-lived") as bus:
        assert bus.is_connected
    messages = [record.getMessage() for record in caplog.records]
    assert "disconnected from nats, reconnecting" not in messages
    assert "nats connection closed" in messages


async def test_kv_create_is_won_by_exactly_one_writer(bus: Bus) -> None:
    spec = BucketSpec(name="locks", history=5)
    buckets = await asyncio.gather(*(ensure_bucket(bus, spec) for _ in range(3)))

    results = await asyncio.gather(
        *(bucket.create("rotation.tenant-a", f"r{n}".encode()) for n, bucket in enumerate(buckets)),
        return_exceptions=True,
    )

    winners = [result for result in results if isinstance(result, int)]
    losers = [result for result in results if isinstance(result, KeyConflictError)]
    assert len(winners) == 1
    assert len(losers) == 2
    entry = await buckets[0].get("rotation.tenant-a")
    assert entry is not None
    assert entry.revision == winners[0]


async def test_kv_update_needs_the_current_revision(bus: Bus) -> None:
    bucket = await ensure_bucket(bus, BucketSpec(name="state"))
    assert await bucket.get("tcp.a") is None

    first = await bucket.create("tcp.a", b"v1")
    second = await bucket.update("tcp.a", b"v2", revision=first)
    with pytest.raises(KeyConflictError, match="stale"):
        await bucket.update("tcp.a", b"v3", revision=first)

    entry = await bucket.get("tcp.a")
    assert entry is not None
    assert (entry.value, entry.revision) == (b"v2", second)

    with pytest.raises(KeyConflictError):
        await bucket.delete("tcp.a", revision=first)
    await bucket.delete("tcp.a", revision=second)
    assert await bucket.get("tcp.a") is None
    assert await bucket.create("tcp.a", b"again") > second  # deleted keys can be re-created
    assert await bucket.put("tcp.a", b"blind") > 0
