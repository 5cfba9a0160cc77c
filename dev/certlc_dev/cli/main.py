"""The `certlc-dev` command line: `certlc-dev demo` and `certlc-dev kube-sim`.

Kept apart from `certlc` so the product's command never imports the stand-in.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from certlc_dev.cli import demo, kubesim


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="certlc-dev",
        description="certlc's development kit: the demo and the Kubernetes API stand-in.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    kubesim.register(sub)
    demo.register(sub)
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
