"""Run certlc locally: the four services as separate processes (as separate pods would run),
against a nats-server and a Kubernetes API (the stand-in, or any kubeconfig).

Used by the demo (`certlc-dev demo`) and by the end-to-end tests. Each service gets its own free
health port; `start()` returns once every service answers `/readyz`.
"""

from __future__ import annotations

import os
import secrets
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO, Any

from certlc_dev.devenv import seed
from certlc_dev.paths import REPO

SERVICES = ("watcher", "lifecycle", "issuer", "rollout")


LISTEN_PORTS = range(20000, 32768)
"""Where `free_port` picks from: below Linux's ephemeral range (32768-60999 by default), so that
no outgoing connection and no `bind(0)` elsewhere is handed the port between the moment it is
picked and the moment the service binds it."""


def free_port() -> int:
    """A port nothing listens on now (any address), for a service to bind shortly."""
    for _ in range(500):
        port = secrets.choice(LISTEN_PORTS)
        with socket.socket() as s:
            try:
                s.bind(("", port))
            except OSError:
                continue
        return port
    raise RuntimeError(f"no free port in {LISTEN_PORTS.start}-{LISTEN_PORTS.stop - 1}")


def service_ready(port: int) -> bool:
    """Whether the service whose health server listens on `port` answers /readyz with 200."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=1) as r:
            return bool(r.status == 200)
    except (urllib.error.URLError, OSError):
        return False


class ServiceProcess:
    def __init__(
        self,
        name: str,
        instance: int,
        env: Mapping[str, str],
        log_dir: Path,
        port: int | None = None,
    ) -> None:
        """`port` is the health and metrics port (default: a free one)."""
        self.name = name
        self.instance = instance
        self.port = free_port() if port is None else port
        self.env = {**env, "CERTLC_HEALTH_PORT": str(self.port)}
        self.log_path = log_dir / f"{name}-{instance}.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    def start(self) -> None:
        self._log = self.log_path.open("ab")
        self.proc = subprocess.Popen(  # noqa: S603 - our own interpreter and module
            [sys.executable, "-m", f"services.{self.name}"],
            env=self.env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )

    def ready(self) -> bool:
        return service_ready(self.port)

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout: float = 10.0) -> int | None:
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self._log is not None:
            self._log.close()
        return self.proc.returncode

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


class ServiceSet:
    """The four services (optionally several replicas each) as child processes."""

    def __init__(
        self,
        *,
        nats_url: str,
        kubeconfig: str,
        log_dir: Path,
        settings: Mapping[str, str] | None = None,
        replicas: Mapping[str, int] | None = None,
        services: Sequence[str] = SERVICES,
        kubeconfigs: Mapping[str, str | Path] | None = None,
        ports: Mapping[str, int] | None = None,
    ) -> None:
        """`kubeconfig` is every service's, unless `kubeconfigs` is given: then each service
        uses its own entry there (its ServiceAccount's token, `identities.install`), and a
        service without one gets no Kubernetes credentials, as a pod without a token.
        `ports` gives the health port of a service's first instance (default: a free one)."""
        self.log_dir = log_dir
        log_dir.mkdir(parents=True, exist_ok=True)
        base = {k: v for k, v in os.environ.items() if not k.startswith("CERTLC_")}
        root = str(REPO)
        base["PYTHONPATH"] = os.pathsep.join(filter(None, [root, base.get("PYTHONPATH", "")]))
        base.update({"CERTLC_NATS_URL": nats_url, "CERTLC_KUBECONFIG": kubeconfig})
        base.update(settings or {})
        self.env = base
        self.kubeconfigs = None if kubeconfigs is None else dict(kubeconfigs)
        counts = replicas or {}
        fixed = ports or {}
        self.processes = [
            ServiceProcess(name, i, self.env_for(name), log_dir, None if i else fixed.get(name))
            for name in services
            for i in range(counts.get(name, 1))
        ]

    def env_for(self, name: str) -> dict[str, str]:
        """The environment of service `name`."""
        if self.kubeconfigs is None:
            return dict(self.env)
        own = self.kubeconfigs.get(name)
        return {**self.env, "CERTLC_KUBECONFIG": "" if own is None else str(own)}

    def start(self, timeout: float = 60.0) -> ServiceSet:
        for p in self.processes:
            p.start()
        self.wait_ready(timeout)
        return self

    def wait_ready(
        self, timeout: float = 60.0, processes: Sequence[ServiceProcess] | None = None
    ) -> None:
        deadline = time.monotonic() + timeout
        pending = list(processes or self.processes)
        while pending:
            for p in list(pending):
                if not p.running():
                    raise RuntimeError(f"{p.name} exited early:\n{p.log_text()[-4000:]}")
                if p.ready():
                    pending.remove(p)
            if pending and time.monotonic() > deadline:
                names = ", ".join(p.name for p in pending)
                raise TimeoutError(f"not ready after {timeout:.0f}s: {names}")
            if pending:
                time.sleep(0.1)

    def add_replica(self, name: str) -> ServiceProcess:
        """Start one more instance of service `name`."""
        process = ServiceProcess(name, len(self.by_name(name)), self.env_for(name), self.log_dir)
        self.processes.append(process)
        process.start()
        return process

    def by_name(self, name: str) -> list[ServiceProcess]:
        return [p for p in self.processes if p.name == name]

    def restart(self, name: str, timeout: float = 60.0) -> None:
        for p in self.by_name(name):
            p.stop()
            p.start()
        self.wait_ready(timeout, self.by_name(name))

    def stop(self) -> dict[str, int | None]:
        return {f"{p.name}-{p.instance}": p.stop() for p in reversed(self.processes)}

    def logs(self) -> str:
        return "\n".join(f"--- {p.name}-{p.instance}\n{p.log_text()}" for p in self.processes)


def seed_tenant(
    sim: Any,
    name: str = "k8s-126",
    namespace: str = "default",
    *,
    datastore: str = "default",
    driver: str = "etcd",
    konnectivity: bool = True,
    address: str = "172.18.255.200",
    replicas: int = 2,
) -> dict[str, Any]:
    """Create what Kamaji would have created for a TCP before certlc's work: the Deployment and
    the TCP (with its provisioned status). The DataStore must exist (see `seed_datastores`)."""
    sim.create(
        seed.deployment_object(name, namespace, replicas=replicas, konnectivity=konnectivity)
    )
    tcp = seed.tcp_object(
        name,
        namespace,
        address=address,
        datastore=datastore,
        konnectivity=konnectivity,
        replicas=replicas,
    )
    created = sim.create(tcp)
    sim.update_status(
        "tenantcontrolplanes",
        name,
        seed.tcp_status(name, address=address, datastore=datastore, driver=driver),
        namespace=namespace,
    )
    return dict(created)


def seed_datastores(sim: Any, *, postgres: bool = True) -> None:
    """The `default` etcd DataStore (and a `postgres` one) with their Secrets."""
    if sim.try_get("namespaces", seed.DATASTORE_NAMESPACE) is None:
        namespace = {"metadata": {"name": seed.DATASTORE_NAMESPACE}}
        sim.create({"apiVersion": "v1", "kind": "Namespace", **namespace})
    objects = seed.etcd_datastore("default")
    if postgres:
        objects += seed.postgres_datastore("postgres")
    for obj in objects:
        sim.create(obj)
