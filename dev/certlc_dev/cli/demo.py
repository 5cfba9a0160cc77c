"""`certlc-dev demo`: the whole system on one machine, on embedded defaults.

Starts a nats-server (JetStream, a store under the work directory), the Kubernetes API stand-in
with a TenantControlPlane `k8s-126` (its Deployment, an etcd DataStore, konnectivity on), and the
four services as separate processes, each with its own ServiceAccount token and the RBAC of
deploy/ enforced by the stand-in. When everything is ready it prints `export KUBECONFIG=...`
and `export NATS_URL=...` (also written to `<workdir>/env`), so the seed walkthrough can be
followed with kubectl in another terminal. Ctrl-C stops everything.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

from certlc_dev.devenv import identities
from certlc_dev.devenv.nats_server import NatsServer
from certlc_dev.devenv.stack import ServiceSet, seed_datastores, seed_tenant
from certlc_dev.kubesim import KubeSim


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
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    workdir = Path(args.workdir).resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())

    nats = NatsServer(workdir / "jetstream", log_path=workdir / "logs" / "nats-server.log")
    (workdir / "logs").mkdir(exist_ok=True)
    sim = KubeSim(
        port=args.kube_port,
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
        )
        services.start()
        env = f"export KUBECONFIG={kubeconfig}\nexport NATS_URL={nats.url}\n"
        (workdir / "env").write_text(env)
        print(
            f"certlc is running: watcher, lifecycle, issuer, rollout (logs in {workdir / 'logs'})"
        )
        print("In another terminal:\n")
        print(env)
        print(f"or: source {workdir / 'env'}; then kubectl get secret; kubectl get tcp -w")
        print("Ctrl-C stops everything.", flush=True)
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
