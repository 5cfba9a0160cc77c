"""End-to-end harness: a real nats-server, the Kubernetes API stand-in over HTTPS, and the four
services as separate processes; plus a tap on `>` that records every message on the bus."""

from __future__ import annotations

import asyncio
import base64
import json
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import nats
from kubernetes import client, config

from certlc_dev.devenv import identities, seed
from certlc_dev.devenv.nats_server import NatsServer
from certlc_dev.devenv.stack import ServiceSet, seed_datastores, seed_tenant
from certlc_dev.kubesim import KubeSim

T = TypeVar("T")


def wait_for(check: Callable[[], T | None], timeout: float = 20.0, what: str = "condition") -> T:
    """Poll `check` until it returns something truthy; fail naming `what` after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(0.1)


class BusTap:
    """Subscribes to `>` on its own thread and keeps (subject, headers, data) of every message
    published. A JetStream consumer's delivery of a stored message reaches a `>` subscriber too,
    under the message's own subject (its reply subject is then `$JS.ACK.<stream>.<consumer>...`):
    it is left out, so that what was published once is kept once, however many consumers read
    it."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.messages: list[tuple[str, dict[str, str], bytes]] = []
        self.received: list[float] = []  # time.monotonic() of each of `messages`
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread = threading.Thread(target=lambda: asyncio.run(self._main()), daemon=True)

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        nc = await nats.connect(self.url, max_reconnect_attempts=-1)

        async def record(msg: Any) -> None:
            if str(msg.reply or "").startswith("$JS.ACK."):
                return  # a consumer's delivery, not a publish
            self.received.append(time.monotonic())
            self.messages.append((msg.subject, dict(msg.headers or {}), bytes(msg.data)))

        await nc.subscribe(">", cb=record)
        await nc.flush()
        self._ready.set()
        await self._stop.wait()
        await nc.drain()

    def start(self) -> BusTap:
        self._thread.start()
        self._ready.wait(10)
        return self

    def stop(self) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)

    def records(self, tcp: str) -> dict[str, dict[str, Any]]:
        """The rotation records of `tcp` as last written (id -> record), from the KV puts."""
        prefix = f"$KV.CERTLC_ROTATIONS.default.{tcp}."
        latest: dict[str, dict[str, Any]] = {}
        for s, _, d in list(self.messages):
            if s.startswith(prefix) and "." not in s.removeprefix(prefix) and d:
                latest[s.removeprefix(prefix)] = json.loads(d)
        return latest

    def audit(self, tcp: str, event: str | None = None) -> list[bytes]:
        prefix = f"certlc.audit.default.{tcp}."
        return [
            d
            for s, _, d in list(self.messages)
            if s.startswith(prefix) and (event is None or s.endswith("." + event))
        ]


def tcp_warnings(stack: Stack, tcp: str, reason: str) -> list[Any]:
    """The Warning Events of `tcp` with `reason`, read with the official client."""
    api = client.CoreV1Api(config.new_client_from_config(str(stack.kubeconfig)))
    return [
        e
        for e in api.list_namespaced_event("default").items
        if e.involved_object.kind == "TenantControlPlane"
        and e.involved_object.name == tcp
        and e.reason == reason
        and e.type == "Warning"
    ]


def openssl_verify(workdir: Path, ca: bytes, cert: bytes) -> None:
    """`openssl verify`: `cert` is signed by `ca` and valid now."""
    ca_file, cert_file = workdir / "verify-ca.pem", workdir / "verify-cert.pem"
    ca_file.write_bytes(ca)
    cert_file.write_bytes(cert)
    out = subprocess.run(
        ["openssl", "verify", "-CAfile", str(ca_file), str(cert_file)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert out.returncode == 0, out.stdout + out.stderr


@dataclass
class Stack:
    nats: NatsServer
    sim: KubeSim
    kubeconfig: Path
    services: ServiceSet
    tap: BusTap
    workdir: Path
    created: list[str] = field(default_factory=list)

    # --- reading the cluster ------------------------------------------------------------

    def secrets(self, tcp: str, namespace: str = "default") -> dict[str, dict[str, Any]]:
        return {
            s["metadata"]["name"]: s
            for s in self.sim.list(
                "secrets", namespace, label_selector=f"kamaji.clastix.io/name={tcp}"
            )
        }

    def data(self, secret: dict[str, Any]) -> dict[str, bytes]:
        return {k: base64.b64decode(v) for k, v in (secret.get("data") or {}).items()}

    def replicasets(self, tcp: str) -> list[str]:
        return sorted(
            r["metadata"]["name"]
            for r in self.sim.list("replicasets", "default")
            if r["metadata"]["name"].startswith(f"{tcp}-")
        )

    def deployment_done(self, tcp: str) -> bool:
        d = self.sim.get("deployments", tcp)
        status = d.get("status") or {}
        want = d["spec"]["replicas"]
        return bool(
            status.get("observedGeneration", 0) >= d["metadata"]["generation"]
            and status.get("updatedReplicas") == want == status.get("availableReplicas")
            and status.get("replicas") == want
        )

    def phase(self, tcp: str) -> str:
        status = self.sim.get("tenantcontrolplanes", tcp).get("status") or {}
        return str(((status.get("kubernetesResources") or {}).get("version") or {}).get("status"))

    def kubectl(self, *args: str) -> str:
        result = subprocess.run(
            ["kubectl", "--kubeconfig", str(self.kubeconfig), *args],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert result.returncode == 0, f"kubectl {' '.join(args)} failed: {result.stderr}"
        return result.stdout

    def certlc(self, *args: str, kube: bool = True) -> str:
        """The certlc CLI against this stack (exit 0 or 1: 1 means "needs attention"); `kube`:
        the command reads the Kubernetes API too (it takes --kubeconfig)."""
        kubeconfig = ["--kubeconfig", str(self.kubeconfig)] if kube else []
        result = subprocess.run(
            [
                sys.executable,
                "-c",
                "from libs.cli.main import run; run()",
                *args,
                *kubeconfig,
                "--nats-url",
                self.nats.url,
            ],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert result.returncode in (0, 1), f"certlc {' '.join(args)}: {result.stderr}"
        assert result.stdout, f"certlc {' '.join(args)} printed nothing: {result.stderr}"
        return result.stdout

    def settled(self, tcp: str, count: int, timeout: float = 30.0) -> dict[str, dict[str, Any]]:
        """Wait until the TCP has `count` Secrets and its Deployment has rolled out."""
        secrets = wait_for(
            lambda: s if len(s := self.secrets(tcp)) == count else None,
            timeout,
            f"{count} Secrets of {tcp}",
        )
        wait_for(lambda: self.deployment_done(tcp), timeout, f"rollout of {tcp}")
        wait_for(lambda: self.rotations_done(tcp), timeout, f"the rotations of {tcp} completed")
        return secrets

    def rotations_done(self, tcp: str) -> bool:
        """Every rotation record of `tcp` completed (rollout notices a finished rollout at its
        next re-check of it)."""
        return all(r["phase"] == "completed" for r in self.tap.records(tcp).values())

    def first_issued(self, tcp: str, timeout: float = 30.0) -> dict[str, dict[str, Any]]:
        """Wait until a new TCP has its 13 Secrets and the rollout of them has completed (its
        `rollout.completed` audit event is on the bus and the Deployment is done)."""
        secrets = self.settled(tcp, 13, timeout)
        wait_for(lambda: self.tap.audit(tcp, "rollout-completed"), timeout, f"the rollout of {tcp}")
        wait_for(lambda: self.deployment_done(tcp), timeout, f"rollout of {tcp}")
        return secrets

    def rollouts_completed(self, tcp: str) -> int:
        """How many `rollout.completed` audit events of `tcp` the tap has seen."""
        return len(self.tap.audit(tcp, "rollout-completed"))

    def next_rollout(self, tcp: str, completed: int, timeout: float = 60.0) -> None:
        """Wait until `tcp` has more than `completed` rollouts completed (a rollout that has
        to come, however loaded the machine: `quiet` alone could end before it starts)."""
        wait_for(
            lambda: self.rollouts_completed(tcp) > completed, timeout, f"a new rollout of {tcp}"
        )

    def quiet(self, tcp: str, seconds: float = 3.0) -> list[str]:
        """Wait until no new ReplicaSet appears for `seconds`; the ReplicaSets then."""
        last, since = self.replicasets(tcp), time.monotonic()
        deadline = time.monotonic() + 60
        while time.monotonic() - since < seconds:
            time.sleep(0.2)
            now = self.replicasets(tcp)
            if now != last:
                last, since = now, time.monotonic()
            assert time.monotonic() < deadline, "ReplicaSets never settled"
        wait_for(lambda: self.deployment_done(tcp), 30, f"rollout of {tcp}")
        return last


def create_tenant(
    stack: Stack, name: str, annotations: dict[str, str], *, replicas: int = 2
) -> None:
    """What Kamaji creates for a TCP (as `seed_tenant`), the TCP carrying `annotations`."""
    stack.sim.create(seed.deployment_object(name, "default", replicas=replicas, konnectivity=True))
    tcp = seed.tcp_object(
        name, "default", address="172.18.255.200", datastore="default", konnectivity=True
    )
    tcp["metadata"].setdefault("annotations", {}).update(annotations)
    stack.sim.create(tcp)
    stack.sim.update_status(
        "tenantcontrolplanes",
        name,
        seed.tcp_status(name, address="172.18.255.200", datastore="default", driver="etcd"),
        namespace="default",
    )


def start_stack(
    workdir: Path,
    serving: Any,
    settings: dict[str, str] | None = None,
    *,
    ready_delay: float = 0.2,
) -> Iterator[Stack]:
    """The stack of a test module; `ready_delay`: how long the stand-in's pods take to become
    ready (how long a rollout takes)."""
    nats_server = NatsServer(workdir / "jetstream")
    nats_server.start()
    # RBAC on: each service runs as its own ServiceAccount with the roles of deploy/, so the
    # suite proves those roles suffice; tests and kubectl use the admin kubeconfig.
    sim = KubeSim(serving=serving, ready_delay=ready_delay, gc=True, rbac=True).start()
    kubeconfig = sim.write_kubeconfig(workdir / "kubeconfig")
    kubeconfigs = identities.install(sim, workdir)
    tap = BusTap(nats_server.url).start()
    services = ServiceSet(
        nats_url=nats_server.url,
        kubeconfig=str(kubeconfig),
        kubeconfigs=kubeconfigs,
        log_dir=workdir / "logs",
        settings={"CERTLC_ROLLOUT_SETTLE": "1s", "CERTLC_SETTLE": "300ms", **(settings or {})},
    )
    stack = Stack(nats_server, sim, kubeconfig, services, tap, workdir)
    try:
        services.start()
        yield stack
    finally:
        codes = services.stop()
        tap.stop()
        sim.stop()
        nats_server.stop()
        crashed = {k: v for k, v in codes.items() if v not in (0, None)}
        assert not crashed, f"services did not stop cleanly: {crashed}\n{services.logs()[-8000:]}"


def start_with_tenants(
    workdir: Path, serving: Any, tenants: Iterable[str], settings: dict[str, str] | None = None
) -> Iterator[Stack]:
    """`start_stack` with the default etcd DataStore and `tenants` created as Kamaji creates
    them, each issued by certlc and rolled out."""
    names = tuple(tenants)
    for s in start_stack(workdir, serving, settings):
        seed_datastores(s.sim, postgres=False)
        for name in names:
            seed_tenant(s.sim, name)
        for name in names:
            s.first_issued(name, timeout=90)
        yield s
