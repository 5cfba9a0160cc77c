"""`certlc-dev kube-sim`: run the Kubernetes API stand-in until SIGINT/SIGTERM.

Writes a kubeconfig for kubectl and the Python client, prints one line
`kube-sim listening on <url>` once it accepts connections, and exits 0 after a clean stop
(saving the snapshot when `--snapshot` is given).
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from pathlib import Path
from types import FrameType
from typing import Any

from certlc_dev.kubesim import KubeSim
from certlc_dev.kubesim.snapshot import SnapshotError


def _token(value: str) -> tuple[str, str]:
    name, sep, token = value.partition("=")
    if not sep or not name or not token:
        raise argparse.ArgumentTypeError(f"expected NAME=TOKEN, got {value!r}")
    return name, token


def register(subparsers: Any) -> None:
    """Add the `kube-sim` command."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "kube-sim",
        help="run the Kubernetes API stand-in",
        description="Run certlc's Kubernetes API stand-in (kubectl and the official client "
        "can talk to it) until interrupted.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--port", type=int, default=0, help="port (0: a random free port)")
    parser.add_argument(
        "--kubeconfig", type=Path, required=True, help="where to write the kubeconfig for clients"
    )
    scheme = parser.add_mutually_exclusive_group()
    scheme.add_argument(
        "--https",
        dest="https",
        action="store_true",
        default=True,
        help="serve HTTPS with a generated CA (default)",
    )
    scheme.add_argument(
        "--http",
        dest="https",
        action="store_false",
        help="serve plain HTTP (no authentication unless --token is given)",
    )
    parser.add_argument("--snapshot", type=Path, help="load state from / save state to FILE")
    parser.add_argument(
        "--snapshot-interval",
        type=float,
        default=None,
        metavar="SECONDS",
        help="also save the snapshot periodically",
    )
    parser.add_argument(
        "--gc", action="store_true", help="delete dependents of deleted owners (garbage collector)"
    )
    parser.add_argument(
        "--ready-delay",
        type=float,
        default=0.2,
        metavar="SECONDS",
        help="how long simulated pods take to become ready",
    )
    parser.add_argument(
        "--token",
        type=_token,
        action="append",
        default=[],
        metavar="NAME=TOKEN",
        help="accept TOKEN as user NAME (repeatable; the first one goes into "
        "the kubeconfig; default: one random admin token)",
    )
    parser.add_argument(
        "--rbac",
        action="store_true",
        help="authorize requests with RBAC: the Roles, ClusterRoles and bindings stored in the "
        "stand-in (the default admin token is in system:masters and may do anything)",
    )
    parser.add_argument("--log-level", default="WARNING", help="logging level")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Start, announce, wait for a signal, stop."""
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    tokens = {token: name for name, token in args.token} or None
    require_auth = True if args.token else None
    sim = KubeSim(
        host=args.host,
        port=args.port,
        https=args.https,
        tokens=tokens,
        require_auth=require_auth,
        gc=args.gc,
        rbac=args.rbac,
        ready_delay=args.ready_delay,
        snapshot=args.snapshot,
        snapshot_interval=args.snapshot_interval,
    )
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        try:
            sim.start()
        except (OSError, SnapshotError) as error:
            print(f"kube-sim: cannot start: {error}", file=sys.stderr)
            return 1
        try:
            first_token = args.token[0][1] if args.token else None
            sim.write_kubeconfig(args.kubeconfig, token=first_token)
            print(f"kube-sim listening on {sim.url}", flush=True)
            stop.wait()
        finally:
            sim.stop()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 0
