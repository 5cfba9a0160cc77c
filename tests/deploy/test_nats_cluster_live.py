"""deploy/overlays/cluster on three real nats-servers: the rendered nats.conf, auth.conf and
cluster.conf, with route hosts mapped to local ports. The servers form a JetStream cluster, a
service user creates certlc's streams with three replicas, and clients learn no pod addresses
(no_advertise)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from certlc_dev.devenv import NatsServer, free_tcp_ports
from libs.bus import connect, ensure_topology, publish
from libs.contracts import subjects
from libs.runtime import topology
from tests.deploy.expected import NATS_USERS
from tests.deploy.manifests import NAMESPACE, generated, overlay
from tests.deploy.natsserver import server_password

pytestmark = pytest.mark.timeout(120)
SIZE = 3
PASSWORD = "cluster-test-password"


def write_configs(base: Path, route_ports: list[int]) -> list[Path]:
    data = generated(overlay("cluster"), "ConfigMap", "nats-config")["data"]
    configs = []
    for index, route_port in enumerate(route_ports):
        directory = base / f"nats-{index}"
        directory.mkdir()
        conf = data["nats.conf"]
        for old, new in {
            'store_dir: "/data"': f'store_dir: "{directory / "jetstream"}"',
            'pid_file: "/var/run/nats/nats.pid"': f'pid_file: "{directory / "nats.pid"}"',
            'http: "0.0.0.0:8222"': "",
        }.items():
            assert old in conf, f"nats.conf no longer has {old!r}: update this test"
            conf = conf.replace(old, new)
        cluster = data["cluster.conf"].replace(
            'listen: "0.0.0.0:6222"', f'listen: "127.0.0.1:{route_port}"'
        )
        for peer, peer_port in enumerate(route_ports):
            host = f"nats-{peer}.nats-headless.{NAMESPACE}.svc:6222"
            assert host in cluster, f"cluster.conf has no route to {host}"
            cluster = cluster.replace(host, f"127.0.0.1:{peer_port}")
        (directory / "nats.conf").write_text(conf)
        (directory / "auth.conf").write_text(data["auth.conf"])
        (directory / "cluster.conf").write_text(cluster)
        configs.append(directory / "nats.conf")
    return configs


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[NatsServer]]:
    configs = write_configs(tmp_path_factory.mktemp("nats-cluster"), free_tcp_ports(SIZE))
    servers: list[NatsServer] = []
    try:
        with pytest.MonkeyPatch.context() as env:
            for user in NATS_USERS:
                variable = f"CERTLC_{user.removeprefix('certlc-').upper()}_PASSWORD"
                env.setenv(variable, server_password(PASSWORD))  # a bcrypt hash, as deployed
            for index, conf in enumerate(configs):
                env.setenv("SERVER_NAME", f"nats-{index}")  # as the pod's metadata.name
                server = NatsServer(jetstream=False, extra_args=["-c", str(conf)])
                servers.append(server)
                server.start()
        for server in servers:
            server.wait_for_log(r"metadata leader", timeout=30)
        yield servers
    finally:
        for server in servers:
            server.cleanup()


async def test_streams_are_replicated_on_the_three_servers(cluster: list[NatsServer]) -> None:
    server = cluster[-1]
    bus = await connect(
        f"nats://certlc-watcher:{PASSWORD}@{server.host}:{server.port}",
        name="cluster-test",
        connect_deadline=5,
    )
    try:
        # each service ensures its own part, logged in as itself, and sees it replicated
        replicated: set[str] = set()
        for service in topology.SERVICES:
            own = await connect(
                f"nats://certlc-{service}:{PASSWORD}@{server.host}:{server.port}",
                name=f"cluster-test-{service}",
                connect_deadline=5,
            )
            try:
                streams, consumers = topology.for_service(service, SIZE)
                await ensure_topology(own, streams, consumers, retry_for=30)
                for spec in streams:
                    info = await own.js.stream_info(spec.name)
                    assert info.config.num_replicas == SIZE
                    assert info.cluster is not None
                    leader, replicas = info.cluster.leader, info.cluster.replicas or []
                    members = {leader, *(r.name for r in replicas)}
                    assert members == {f"nats-{i}" for i in range(SIZE)}
                    replicated.add(spec.name)
            finally:
                await own.close()
        assert replicated == {spec.name for spec in topology.streams(SIZE)}
        ack = await publish(bus, subjects.tcp_event("ns", "tcp"), b"fact", msg_id="f1")
        assert ack.stream == subjects.EVENTS_STREAM
        # no_advertise: the client learns no other server's address.
        assert not bus.client._server_info.get("connect_urls")
    finally:
        await bus.close()
