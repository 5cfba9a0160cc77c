"""run_consumer keeps going across nats-server restarts; stored messages are delivered after."""

from __future__ import annotations

import asyncio

import pytest

from certlc_dev.devenv import NatsServer
from libs.bus import Bus, Delivery, connect, publish
from tests.integration.bus.helpers import RunningConsumer, declare, no_pending_acks, wait_until

pytestmark = pytest.mark.usefixtures("no_task_leaks")


async def test_consumer_survives_restarts_mid_stream(restartable_nats: NatsServer) -> None:
    bus: Bus = await connect(restartable_nats.url, name="restart-test", connect_deadline=5)
    handled: list[str] = []
    gate = asyncio.Event()

    async def handler(delivery: Delivery) -> None:
        if delivery.subject.endswith("held"):
            await gate.wait()
        handled.append(delivery.subject)

    try:
        await declare(bus, ack_wait=5.0)
        # Stored before any consumer runs and before the restart.
        for number in range(3):
            await publish(bus, f"orders.before.{number}", b"x", msg_id=f"before-{number}")
        await asyncio.to_thread(restartable_nats.restart)

        async with RunningConsumer(bus, "ORDERS", "worker", handler, fetch_timeout=0.5) as run:
            await wait_until(lambda: len(handled) == 3, what="messages from before the restart")

            # A handler is busy while the server goes away: its ack is sent after reconnect.
            await publish(bus, "orders.held", b"x", msg_id="held")
            await asyncio.sleep(0.5)
            await asyncio.to_thread(restartable_nats.stop)
            gate.set()
            await asyncio.sleep(1.0)  # the loop now sees fetch errors and backs off
            assert run.task is not None
            assert not run.task.done()
            await asyncio.to_thread(restartable_nats.start)

            for number in range(3):
                await publish(bus, f"orders.after.{number}", b"x", msg_id=f"after-{number}")
            await wait_until(
                lambda: sum(subject.startswith("orders.after") for subject in handled) == 3,
                within=20,
                what="messages published after the restart",
            )
            await wait_until(no_pending_acks(bus), within=20, what="everything acked")

        assert handled[:3] == [f"orders.before.{number}" for number in range(3)]
        assert "orders.held" in handled
    finally:
        await bus.close()
