"""Entry point: `certlc-lifecycle` / `python -m services.lifecycle`."""

import sys

from libs.runtime.config import Settings
from libs.runtime.service import run_service
from services.lifecycle.app import main


def run() -> int:
    return run_service("lifecycle", Settings, main)


if __name__ == "__main__":
    sys.exit(run())
