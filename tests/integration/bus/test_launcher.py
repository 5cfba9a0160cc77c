"""The nats-server launcher: random port from the log, restarts keep port and JetStream data."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import pytest
from nats.aio.client import Client

from certlc_dev.devenv import (
    NATS_SERVER_BIN_ENV,
    NatsCluster,
    NatsServer,
    NatsServerError,
    NatsServerNotFoundError,
    find_nats_server_binary,
)
from libs.bus import StreamSpec, connect, ensure_topology, publish

pytestmark = pytest.mark.usefixtures("no_task_leaks")


def test_port_is_the_one_the_server_logged(nats_server: NatsServer) -> None:
    logged = re.search(
        r"Listening for client connections on 127\.0\.0\.1:(\d+)", nats_server.log_text()
    )
    assert logged is not None
    assert nats_server.port == int(logged.group(1))
    assert nats_server.port != 4222
    assert nats_server.url == f"nats://127.0.0.1:{nats_server.port}"
    assert nats_server.is_running


def test_two_servers_get_different_ports(tmp_path: Path) -> None:
    with NatsServer(tmp_path / "a") as first, NatsServer(tmp_path / "b") as second:
        assert first.port != second.port


def test_stop_is_idempotent_and_port_is_sticky(nats_server: NatsServer) -> None:
    port = nats_server.port
    assert nats_server.stop() == 1  # what nats-server returns after a graceful SIGTERM
    assert "Server Exiting" in nats_server.log_text()
    assert nats_server.stop() is None
    assert not nats_server.is_running
    nats_server.start()
    assert nats_server.port == port


def test_missing_binary_is_a_clear_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv(NATS_SERVER_BIN_ENV, str(tmp_path / "no-such-nats-server"))
    with pytest.raises(NatsServerNotFoundError, match=NATS_SERVER_BIN_ENV):
        find_nats_server_binary()
    with pytest.raises(NatsServerNotFoundError):
        NatsServer(tmp_path / "store")


def test_startup_failure_shows_the_log(tmp_path: Path) -> None:
    server = NatsServer(tmp_path / "store", extra_args=["--no-such-flag"], startup_timeout=5)
    with pytest.raises(NatsServerError, match="exited with code"):
        server.start()
    assert not server.is_running
    server.cleanup()


async def test_restart_keeps_port_and_jetstream_data(restartable_nats: NatsServer) -> None:
    stream = StreamSpec(name="KEEP", subjects=("keep.>",))
    bus = await connect(restartable_nats.url, name="launcher-test", connect_deadline=5)
    try:
        await ensure_topology(bus, [stream])
        await publish(bus, "keep.one", b"1", msg_id="one")
        port = restartable_nats.port

        await asyncio.to_thread(restartable_nats.restart)

        assert restartable_nats.port == port
        info = await bus.js.stream_info("KEEP")  # the same client reconnected by itself
        assert info.state.messages == 1
        again = await publish(bus, "keep.one", b"1", msg_id="one")
        assert again.duplicate  # the de-duplication state survived too
    finally:
        await bus.close()


async def test_kill_then_start_recovers_the_store(restartable_nats: NatsServer) -> None:
    bus = await connect(restartable_nats.url, name="launcher-test", connect_deadline=5)
    try:
        await ensure_topology(bus, [StreamSpec(name="CRASH", subjects=("crash.>",))])
        await publish(bus, "crash.a", b"a", msg_id="a")
        await asyncio.to_thread(restartable_nats.kill)
        assert not restartable_nats.is_running
        await asyncio.to_thread(restartable_nats.start)
        info = await bus.js.stream_info("CRASH")
        assert info.state.messages == 1
    finally:
        await bus.close()


async def test_cluster_serves_replicated_streams(nats_cluster: NatsCluster) -> None:
    assert len(set(nats_cluster.urls)) == 3
    bus = await connect(nats_cluster.urls, name="cluster-test", connect_deadline=10)
    try:
        spec = StreamSpec(name="REPLICATED", subjects=("rep.>",), replicas=3)
        await ensure_topology(bus, [spec])
        ack = await publish(bus, "rep.x", b"x", msg_id="x")
        assert ack.stream == "REPLICATED"
        info = await bus.js.stream_info("REPLICATED")
        assert info.config.num_replicas == 3
        assert info.cluster is not None
        assert len(info.cluster.replicas or []) == 2  # plus the leader
    finally:
        await bus.close()


async def test_nc_fixture_is_connected_to_the_test_server(
    nc: Client, nats_server: NatsServer
) -> None:
    assert nc.is_connected
    assert nc.connected_url is not None
    assert nc.connected_url.port == nats_server.port
    info = await nc.jetstream().account_info()
    assert info.streams == 0  # a fresh store for every test


_module_ports: set[int] = set()


@pytest.mark.parametrize("round_", [1, 2])
def test_module_server_is_shared(nats_server_module: NatsServer, round_: int) -> None:
    _module_ports.add(nats_server_module.port)
    assert nats_server_module.is_running
    assert len(_module_ports) == 1
