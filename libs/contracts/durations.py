"""The duration grammar of certlc, for settings and annotations alike: `24h`, `1h30m`, `90s`,
`500ms`, `7d`, `720h` (Go's `time.ParseDuration` units, plus `d`), no sign. Pure."""

from __future__ import annotations

import re
from datetime import timedelta

_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def parse_duration(text: str) -> timedelta:
    """`24h`, `1h30m`, `90s`, `500ms`, `7d` -> timedelta; ValueError otherwise."""
    value = text.strip()
    pos, total = 0, 0.0
    for match in _DURATION.finditer(value):
        if match.start() != pos:
            break
        total += float(match.group(1)) * _UNITS[match.group(2)]
        pos = match.end()
    if pos != len(value) or not value:
        raise ValueError(f"not a duration: {text!r} (use e.g. 24h, 90s, 1h30m)")
    return timedelta(seconds=total)
