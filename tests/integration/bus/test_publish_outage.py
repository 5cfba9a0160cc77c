"""publish_until_acked: a publisher outlives a NATS outage longer than its retry budget."""

from __future__ import annotations

import asyncio

import pytest

from certlc_dev.devenv import NatsServer
from libs.bus import Backoff, Bus, PublishError, connect, publish_until_acked
from tests.integration.bus.helpers import declare, wait_until

pytestmark = pytest.mark.usefixtures("no_task_leaks")


async def test_a_publish_waits_out_an_outage_longer_than_its_budget(
    restartable_nats: NatsServer,
) -> None:
    bus: Bus = await connect(restartable_nats.url, name="outage-test", connect_deadline=5)
    outages: list[PublishError] = []
    try:
        await declare(bus)
        await asyncio.to_thread(restartable_nats.stop)
        sending = asyncio.create_task(
            publish_until_acked(
                bus,
                "orders.during",
                b"x",
                msg_id="during",
                on_outage=outages.append,
                retry_for=1.0,
                backoff=Backoff(initial=0.2, maximum=0.5),
            )
        )
        await wait_until(lambda: len(outages) >= 2, within=20, what="two budgets used up")
        assert not sending.done()
        assert all(outage.retryable for outage in outages)
        await asyncio.to_thread(restartable_nats.start)
        ack = await asyncio.wait_for(sending, timeout=30)
        assert ack.stream == "ORDERS"
        info = await bus.js.stream_info("ORDERS")
        assert info.state.messages == 1
    finally:
        await bus.close()
