"""`certlc-dev demo`: the whole system on one machine, on embedded defaults.

Starts a nats-server (JetStream, a store under the work directory), the Kubernetes API stand-in
with a TenantControlPlane `k8s-126` (its Deployment, an etcd DataStore, konnectivity on), and the
four services as separate processes, each with its own ServiceAccount token and the RBAC of
deploy/ enforced by the stand-in. When everything is ready it prints `export KUBECONFIG=...`
and `export NATS_URL=...` (also written to `<workdir>/env`), so the seed walkthrough can be
followed with kubectl in another terminal. Ctrl-C stops everything.

One demo per work directory: a second one is refused (a lock held for the demo's lifetime, so a
crashed demo never blocks the next). The ports of nats-server, the stand-in and each service's
health and metrics server are kept in `<workdir>/ports.json` and reused at the next start when
they are free; a port that had to change is announced. The whole state (the stand-in's snapshot,
the JetStream store, the logs) lives in the work directory: delete it to start from scratch.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import fcntl
import json
import os
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import IO, Any

from certlc_dev.devenv import identities
from certlc_dev.devenv.nats_server import NatsServer
from certlc_dev.devenv.stack import SERVICES, ServiceSet, free_port, seed_datastores, seed_tenant
from certlc_dev.kubesim import KubeSim
from libs.pki import SecretKind

# What gets a port, in the order they are announced.
PORT_NAMES = ("nats", "kube", *SERVICES)
EXIT_ALREADY_RUNNING = 2
# What the stand-in's deployment controller does (docs/kube-stand-in.md), in one line.
STAND_IN_PODS = (
    "Note: the stand-in's pods are simulated: Ready after --ready-delay seconds, never crashing; "
    "a rollout replaces them one step at a time (maxSurge/maxUnavailable), as a cluster does."
)


class DemoAlreadyRunning(Exception):
    """Another demo holds the work directory's lock."""


@contextlib.contextmanager
def workdir_lock(workdir: Path) -> Iterator[None]:
    """Hold `<workdir>/demo.lock` (flock) for the block; the file records the holder's pid.

    The kernel drops the lock when its holder dies, so a crashed demo never blocks the next.
    """
    path = workdir / "demo.lock"
    handle: IO[str] = path.open("a+")
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno not in (errno.EAGAIN, errno.EACCES):
                raise
            handle.seek(0)
            holder = handle.read().strip() or "unknown"
            raise DemoAlreadyRunning(
                f"a demo is already running in {workdir} (pid {holder}): stop it (Ctrl-C), "
                "or give this one another --workdir"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"{os.getpid()}\n")
        handle.flush()
        yield
    finally:
        handle.close()


def port_is_free(port: int) -> bool:
    """Whether `port` can be bound on 127.0.0.1 now."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def plan_ports(
    previous: Mapping[str, int],
    names: Sequence[str],
    is_free: Callable[[int], bool],
    pick: Callable[[], int],
) -> tuple[dict[str, int], list[str]]:
    """Each name's port: the previous one when free, else a new one; and a line per change."""
    chosen: dict[str, int] = {}
    changes: list[str] = []
    for name in names:
        old = previous.get(name)
        if old is not None and old not in chosen.values() and is_free(old):
            chosen[name] = old
            continue
        new = pick()
        while new in chosen.values():
            new = pick()
        chosen[name] = new
        if old is not None:
            changes.append(f"{name}: port {old} is taken, now {new}")
    return chosen, changes


def load_ports(path: Path) -> dict[str, int]:
    """The ports of the last run (empty when there was none or the file is unreadable)."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    if not isinstance(data, dict):
        return {}
    return {str(k): v for k, v in data.items() if isinstance(v, int) and 0 < v < 65536}


def env_file(kubeconfig: Path, nats_url: str, bin_dir: Path) -> str:
    """`<workdir>/env`: kubectl and certlc pointed at the demo, certlc on PATH."""
    return (
        f"export KUBECONFIG={kubeconfig}\n"
        f"export NATS_URL={nats_url}\n"
        f'export PATH="{bin_dir}:$PATH"\n'
    )


def register(sub: Any) -> None:
    parser: argparse.ArgumentParser = sub.add_parser(
        "demo",
        help="run certlc locally: nats-server, the Kubernetes API stand-in, the four services",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--workdir", default=".demo", help="state and logs (default: .demo)")
    parser.add_argument("--kube-port", type=int, default=0, help="stand-in port (default: any)")
    parser.add_argument("--tcp", default="k8s-126", help="name of the seeded TenantControlPlane")
    parser.add_argument(
        "--ready-delay", type=float, default=3.0, help="seconds before a new pod is Ready"
    )
    parser.add_argument(
        "--duration", type=float, default=0.0, help="stop after this many seconds (0: until Ctrl-C)"
    )
    parser.add_argument(
        "--replicas",
        type=int,
        default=1,
        help="processes of each service (2: replicas share the work, as deployed for HA)",
    )
    parser.set_defaults(func=run)


def _wait_for_secrets(sim: KubeSim, tcp: str, timeout: float = 90.0) -> None:
    """Until certlc has issued the TCP's Secrets (the walkthrough starts by listing them); a
    demo that is slow to get there says so and goes on."""
    deadline = time.monotonic() + timeout
    selector = f"kamaji.clastix.io/name={tcp}"
    while time.monotonic() < deadline:
        if len(sim.list("secrets", "default", label_selector=selector)) >= len(SecretKind):
            return
        time.sleep(0.2)
    print(f"NOTE: the Secrets of {tcp} are not all there after {timeout:.0f}s; see the logs")


def _announce(services: ServiceSet, workdir: Path, env: str) -> None:
    print(f"certlc is running: watcher, lifecycle, issuer, rollout (logs in {workdir / 'logs'})")
    for process in services.processes:
        base = f"http://127.0.0.1:{process.port}"
        name = process.name if process.instance == 0 else f"{process.name}-{process.instance}"
        print(f"  {name:<11} health {base}/readyz  metrics {base}/metrics")
    print(STAND_IN_PODS)
    print(f"To start from scratch: stop the demo, then rm -rf {workdir}")
    print("In another terminal:\n")
    print(env)
    print(f"or: source {workdir / 'env'}; then kubectl get secret; kubectl get tcp -w")
    print("Ctrl-C stops everything.", flush=True)


def run(args: argparse.Namespace) -> int:
    workdir = Path(args.workdir).resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    try:
        with workdir_lock(workdir):
            return _run_locked(args, workdir)
    except DemoAlreadyRunning as exc:
        print(f"certlc-dev demo: {exc}", file=sys.stderr)
        return EXIT_ALREADY_RUNNING


def _run_locked(args: argparse.Namespace, workdir: Path) -> int:
    ports_path = workdir / "ports.json"
    previous = load_ports(ports_path)
    if args.kube_port:
        previous["kube"] = args.kube_port
    ports, changes = plan_ports(previous, PORT_NAMES, port_is_free, free_port)
    for change in changes:
        print(f"NOTE: {change} (update what you configured from the last run)", flush=True)
    ports_path.write_text(json.dumps(ports, indent=2) + "\n")
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())

    nats = NatsServer(
        workdir / "jetstream", port=ports["nats"], log_path=workdir / "logs" / "nats-server.log"
    )
    (workdir / "logs").mkdir(exist_ok=True)
    sim = KubeSim(
        port=ports["kube"],
        ready_delay=args.ready_delay,
        gc=True,
        rbac=True,
        snapshot=workdir / "cluster.json",
        snapshot_interval=10.0,
    )
    services: ServiceSet | None = None
    try:
        nats.start()
        sim.start()
        kubeconfig = sim.write_kubeconfig(workdir / "kubeconfig")
        if sim.try_get("datastores", "default") is None:
            seed_datastores(sim)
        if sim.try_get("tenantcontrolplanes", args.tcp) is None:
            seed_tenant(sim, args.tcp)
        print(f"nats-server on {nats.url}; Kubernetes API stand-in on {sim.url}", flush=True)
        # Each service runs as its own ServiceAccount, with the RBAC of deploy/ enforced.
        service_kubeconfigs = identities.install(sim, workdir)
        services = ServiceSet(
            nats_url=nats.url,
            kubeconfig=str(kubeconfig),
            kubeconfigs=service_kubeconfigs,
            log_dir=workdir / "logs",
            ports={name: ports[name] for name in SERVICES},
            replicas=dict.fromkeys(SERVICES, max(1, args.replicas)),
        )
        services.start()
        _wait_for_secrets(sim, args.tcp)
        env = env_file(kubeconfig, nats.url, Path(sys.executable).parent)
        (workdir / "env").write_text(env)
        _announce(services, workdir, env)
        deadline = time.monotonic() + args.duration if args.duration > 0 else None
        while not stop.wait(0.5):
            if deadline is not None and time.monotonic() > deadline:
                break
            crashed = [p.name for p in services.processes if not p.running()]
            if crashed:
                print(f"service stopped unexpectedly: {', '.join(crashed)}", file=sys.stderr)
                return 1
        return 0
    finally:
        print("stopping ...", flush=True)
        if services is not None:
            services.stop()
        sim.stop()
        nats.stop()
