"""Rollout's consumer of rotation failures (CERTLC_AUDIT/rollout-failures) on a real nats-server
with deploy/'s users: rollout creates, fetches and acknowledges on it; the other services can
neither create it (each ensures only its own topology) nor take its messages; tooling
(certlc-external) reads the audit stream through its own ordered consumers, `certlc audit`
included, and can neither delete, fetch from, nor create that consumer."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import pytest_asyncio

from certlc_dev.devenv import NatsServer
from libs.bus import Bus, Delivery, connect, ensure_topology, run_consumer
from libs.bus.read import open_reader
from libs.contracts import subjects
from libs.contracts.api import RotationFailed
from libs.runtime import topology
from libs.runtime.service import publish_audit
from tests.cli.conftest import certlc_run
from tests.deploy.expected import create_subject
from tests.deploy.natsserver import password, url
from tests.deploy.test_nats_live import attempt, eventually, raw

pytestmark = pytest.mark.timeout(120)

FAILURES = topology.ROLLOUT_FAILURES_CONSUMER


@pytest_asyncio.fixture
async def buses(server: NatsServer) -> AsyncIterator[dict[str, Bus]]:
    opened: dict[str, Bus] = {}
    try:
        for user in ("issuer", "rollout", "external"):
            opened[user] = await connect(url(server, user), name=f"test-{user}", connect_deadline=5)
        yield opened
    finally:
        for bus in opened.values():
            await bus.close()


async def test_rollout_takes_and_acknowledges_the_rotation_failures(
    buses: dict[str, Bus],
) -> None:
    report = await ensure_topology(buses["rollout"], *topology.for_service("rollout"), retry_for=5)
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


@pytest.mark.parametrize("user", ["watcher", "lifecycle", "issuer", "external"])
async def test_no_other_user_may_take_create_or_delete_the_rotation_failures(
    server: NatsServer, user: str
) -> None:
    async with raw(server, user) as violations:
        for subject in (
            f"$JS.API.CONSUMER.MSG.NEXT.{FAILURES.stream}.{FAILURES.durable}",
            f"$JS.ACK.{FAILURES.stream}.{FAILURES.durable}.1.1.1.1.1",
            create_subject(FAILURES),
            f"$JS.API.CONSUMER.DURABLE.CREATE.{FAILURES.stream}.{FAILURES.durable}",
            f"$JS.API.CONSUMER.DELETE.{FAILURES.stream}.{FAILURES.durable}",
        ):
            errors = await attempt(violations, "pub", subject)
            assert errors, f"certlc-{user} may publish {subject}, it must not"


async def ensure_audit(buses: dict[str, Bus]) -> None:
    await ensure_topology(buses["rollout"], *topology.for_service("rollout"), retry_for=5)


async def test_tooling_reads_the_audit_stream_with_its_own_ordered_consumer(
    buses: dict[str, Bus],
) -> None:
    """libs.bus.read, as `certlc audit` uses it: no delete, the server removes the consumer."""
    await ensure_audit(buses)
    failed = RotationFailed(
        namespace="tenant-r", tcp="k8s-127", rotation_id="r-2", at=datetime.now(UTC), message="x"
    )
    await publish_audit(buses["issuer"], failed, failed.rotation_id)
    external = buses["external"]
    reader = await open_reader(
        external,
        subjects.AUDIT_STREAM,
        subjects.audit_filter("tenant-r"),
        inactive_threshold=1.0,
    )
    async with reader:
        got = await reader.read_available()
    assert [m.subject for m in got] == [subjects.audit("tenant-r", "k8s-127", "rotation-failed")]

    async def only_the_durable_left() -> bool:
        info = await buses["rollout"].js.stream_info(FAILURES.stream)
        return info.state.consumer_count == 1

    await eventually(only_the_durable_left)
    await buses["rollout"].js.consumer_info(FAILURES.stream, FAILURES.durable)


async def test_tooling_cannot_take_over_the_durable_through_the_ephemeral_create(
    buses: dict[str, Bus],
) -> None:
    """The one create subject tooling has makes server-named consumers only: a durable name
    there (or a name already in use) is refused, and rollout's consumer stays as declared."""
    await ensure_audit(buses)
    before = await buses["rollout"].js.consumer_info(FAILURES.stream, FAILURES.durable)
    client = buses["external"].client
    for config in (
        {"durable_name": FAILURES.durable, "ack_policy": "explicit", "deliver_policy": "all"},
        {"name": FAILURES.durable, "ack_policy": "none", "deliver_subject": "_INBOX.x"},
    ):
        request = {"stream_name": FAILURES.stream, "config": config}
        reply = await client.request(
            f"$JS.API.CONSUMER.CREATE.{FAILURES.stream}", json.dumps(request).encode(), timeout=5
        )
        assert "error" in json.loads(reply.data), reply.data
    after = await buses["rollout"].js.consumer_info(FAILURES.stream, FAILURES.durable)
    assert after.config == before.config
    assert after.created == before.created


async def test_certlc_audit_runs_as_the_external_user(
    server: NatsServer, buses: dict[str, Bus], tmp_path: Path
) -> None:
    """The CLI, logged in as certlc-external: lists the audit trail, exit 0, promptly."""
    await ensure_audit(buses)
    failed = RotationFailed(
        namespace="tenant-c", tcp="k8s-128", rotation_id="r-3", at=datetime.now(UTC), message="x"
    )
    await publish_audit(buses["issuer"], failed, failed.rotation_id)
    password_file = tmp_path / "password"
    password_file.write_text(password("external") + "\n")
    started = time.monotonic()
    result = await asyncio.to_thread(
        certlc_run,
        "audit",
        "tenant-c/k8s-128",
        "-o",
        "json",
        "--nats-url",
        f"nats://{server.host}:{server.port}",
        "--nats-user",
        "certlc-external",
        "--nats-password-file",
        str(password_file),
    )
    assert result.code == 0, result
    assert time.monotonic() - started < 5  # closing the reader waits for no refused request
    (event,) = [json.loads(line) for line in result.out.splitlines()]
    assert (event["namespace"], event["tcp"], event["type"]) == (
        "tenant-c",
        "k8s-128",
        "rotation.failed",
    )
