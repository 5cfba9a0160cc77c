"""Structured JSON logs, one object per line, with context fields (tcp, secret, request_id ...).

Pass context with `extra={"tcp": ..., "secret": ...}`. Only whitelisted context fields are
emitted, and every value is scrubbed: PEM armour never reaches a log line.
"""

from __future__ import annotations

import logging
import re
import sys
from datetime import UTC, datetime
from typing import Any

import msgspec

CONTEXT_FIELDS = (
    "service",
    "namespace",
    "tcp",
    "secret",
    "kind",
    "reason",
    "request_id",
    "rotation_id",
    "subject",
    "code",
    "duration_seconds",
)
_PEM = re.compile(r"-----BEGIN [A-Z0-9 ]+-----.*?(-----END [A-Z0-9 ]+-----|$)", re.S)
_encoder = msgspec.json.Encoder()


def scrub(text: str) -> str:
    return _PEM.sub("[pem redacted]", text)


class JsonFormatter(logging.Formatter):
    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "service": self.service,
            "logger": record.name,
            "msg": scrub(record.getMessage()),
        }
        for name in CONTEXT_FIELDS:
            value = record.__dict__.get(name)
            if value is not None:
                entry[name] = scrub(value) if isinstance(value, str) else value
        if record.exc_info:
            entry["error"] = scrub(self.formatException(record.exc_info))
        return _encoder.encode(entry).decode()


def setup_logging(service: str, level: str = "info") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter(service))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for noisy in ("kubernetes", "urllib3", "nats"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
