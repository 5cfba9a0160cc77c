"""The `certlc` command line: one entry point, one sub-command module per area.

Each area module exposes `register(subparsers)`, which adds its commands and sets `func` on
the parsed namespace. Modules are imported here, once, so `certlc --help` lists everything.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from libs.cli import certs, ops


def build_parser(prog: str = "certlc") -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog,
        description="Certificate lifecycle for Kamaji TenantControlPlanes.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    certs.register(sub)
    ops.register(sub)
    return parser


def main(argv: Sequence[str] | None = None, *, prog: str = "certlc") -> int:
    parser = build_parser(prog)
    args = parser.parse_args(argv)
    result: int = args.func(args)
    return result


def run() -> None:
    """Console-script entry point."""
    sys.exit(main())


def run_kubectl_plugin() -> None:
    """`kubectl-certlc` on PATH makes `kubectl certlc status` work: kubectl runs the plugin with
    the words after `certlc` (kubectl's own flags before `certlc` are not passed on; give the
    plugin `--kubeconfig` after it, or set $KUBECONFIG)."""
    sys.exit(main(prog="kubectl certlc"))


if __name__ == "__main__":
    run()
