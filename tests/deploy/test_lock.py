"""requirements.lock: no machine-specific lines, and made by the command the README gives."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
LOCK = (REPO / "requirements.lock").read_text()


def test_the_lock_has_no_index_or_find_links_lines() -> None:
    options = [line for line in LOCK.splitlines() if line.startswith("-")]
    assert options == [], options
    assert "file://" not in LOCK


def test_the_readme_gives_the_command_that_made_the_lock() -> None:
    (header,) = re.findall(r"^#    (pip-compile .+)$", LOCK, re.MULTILINE)
    readme = (REPO / "README.md").read_text()
    (block,) = re.findall(r"```sh\n(pip-compile [^`]+)```", readme)
    documented = " ".join(block.replace("\\\n", " ").split())
    assert sorted(documented.split()) == sorted(header.split())
