"""Entry point: `certlc-watcher` / `python -m services.watcher`."""

import sys

from libs.runtime.config import Settings
from libs.runtime.service import run_service
from services.watcher.app import main


def run() -> int:
    return run_service("watcher", Settings, main)


if __name__ == "__main__":
    sys.exit(run())
