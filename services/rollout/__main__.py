"""Entry point: `certlc-rollout` / `python -m services.rollout`."""

import sys

from libs.runtime.config import Settings
from libs.runtime.service import run_service
from services.rollout.app import main


def run() -> int:
    return run_service("rollout", Settings, main)


if __name__ == "__main__":
    sys.exit(run())
