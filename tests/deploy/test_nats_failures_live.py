"""Rollout's consumer of rotation failures (CERTLC_AUDIT/rollout-failures) on a real nats-server
with deploy/'s users: rollout creates, fetches and acknowledges on it; the other services can
create it (every service ensures the whole topology) but not take its messages."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime

import pytest
import pytest_asyncio

from libs.bus import Bus, Delivery, connect, ensure_topology, run_consumer
from libs.contracts import subjects
from libs.contracts.api import RotationFailed
from libs.devenv import NatsServer
from libs.runtime import topology
from libs.runtime.service import publish_audit
from tests.deploy.test_nats_live import (
    USERS,
    attempt,
    eventually,
    password,
    raw,
    server_config,
    url,
)

pytestmark = pytest.mark.timeout(120)

FAILURES = topology.ROLLOUT_FAILURES_CONSUMER


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NatsServer]:
    conf = server_config(tmp_path_factory.mktemp("nats-auth-failures"))
    with pytest.MonkeyPatch.context() as env:
        env.setenv("SERVER_NAME", "certlc-test")
        for user in USERS:
            env.setenv(f"CERTLC_{user.upper()}_PASSWORD", password(user))
        nats_server = NatsServer(jetstream=False, extra_args=["-c", str(conf)])
        nats_server.start()
    try:
        yield nats_server
    finally:
        nats_server.cleanup()


@pytest_asyncio.fixture
async def buses(server: NatsServer) -> AsyncIterator[dict[str, Bus]]:
    opened: dict[str, Bus] = {}
    try:
        for user in ("issuer", "rollout"):
            opened[user] = await connect(url(server, user), name=f"test-{user}", connect_deadline=5)
        yield opened
    finally:
        for bus in opened.values():
            await bus.close()


async def test_rollout_takes_and_acknowledges_the_rotation_failures(
    buses: dict[str, Bus],
) -> None:
    report = await ensure_topology(
        buses["rollout"], topology.streams(1), topology.CONSUMERS, retry_for=5
    )
    assert f"consumer:{FAILURES.stream}/{FAILURES.durable}" in report.outcomes
    failed = RotationFailed(
        namespace="tenant-a", tcp="k8s-126", rotation_id="r-1", at=datetime.now(UTC), message="x"
    )
    await publish_audit(buses["issuer"], failed, failed.rotation_id)
    seen: list[str] = []

    async def handler(delivery: Delivery) -> None:
        seen.append(delivery.subject)

    stop = asyncio.Event()
    task = asyncio.create_task(
        run_consumer(
            buses["rollout"],
            FAILURES.stream,
            FAILURES.durable,
            handler,
            stop_event=stop,
            fetch_timeout=0.5,
        )
    )
    try:

        async def acknowledged() -> bool:
            info = await buses["rollout"].js.consumer_info(FAILURES.stream, FAILURES.durable)
            return bool(seen) and info.num_pending == 0 and info.num_ack_pending == 0

        await eventually(acknowledged)
        assert seen == [subjects.audit("tenant-a", "k8s-126", "rotation-failed")]
    finally:
        stop.set()
        await task


@pytest.mark.parametrize("user", ["watcher", "lifecycle", "issuer"])
async def test_no_other_service_may_take_the_rotation_failures(
    server: NatsServer, user: str
) -> None:
    async with raw(server, user) as violations:
        for subject in (
            f"$JS.API.CONSUMER.MSG.NEXT.{FAILURES.stream}.{FAILURES.durable}",
            f"$JS.ACK.{FAILURES.stream}.{FAILURES.durable}.1.1.1.1.1",
        ):
            errors = await attempt(violations, "pub", subject)
            assert errors, f"certlc-{user} may publish {subject}, it must not"
