"""Entry point: `certlc-issuer` / `python -m services.issuer`."""

import sys

from libs.runtime.config import Settings
from libs.runtime.service import run_service
from services.issuer.app import main


def run() -> int:
    return run_service("issuer", Settings, main)


if __name__ == "__main__":
    sys.exit(run())
