"""The `certlc` command line: one entry point, one sub-command module per area.

Each area module exposes `register(subparsers)`, which adds its commands and sets `func` on
the parsed namespace. Modules are imported here, once, so `certlc --help` lists everything.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from libs.cli import certs, ops


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="certlc",
        description="Certificate lifecycle for Kamaji TenantControlPlanes.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    certs.register(sub)
    ops.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    result: int = args.func(args)
    return result


def run() -> None:
    """Console-script entry point."""
    sys.exit(main())


if __name__ == "__main__":
    run()
