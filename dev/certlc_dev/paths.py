"""Where the development kit finds the repository it lives in (deploy/, the product's sources)."""

from __future__ import annotations

from pathlib import Path

#: The repository's top directory: this file is dev/certlc_dev/paths.py.
REPO = Path(__file__).resolve().parents[2]
