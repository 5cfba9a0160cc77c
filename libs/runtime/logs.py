"""Structured JSON logs, one object per line, with context fields (tcp, secret, request_id ...).

Pass context with `extra={"tcp": ..., "secret": ...}`. Only whitelisted context fields are
emitted, and every value is scrubbed: PEM armour (which covers the blocks of a NATS `.creds`
file), nkey seeds and the credentials of a URL (`nats://user:password@host`) never reach a log
line.
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
    "member",
    "members",
    "partitions_owned",
)
_PEM = re.compile(r"-----BEGIN [A-Z0-9 ]+-----.*?(-----END [A-Z0-9 ]+-----|$)", re.S)
# An nkey seed: "S", the key type, 56 base32 characters.
_NKEY_SEED = re.compile(r"\bS[AOUNCX][A-Z2-7]{56}\b")
_URL_CREDENTIALS = re.compile(r"\b([a-z][a-z0-9+.-]*://)[^\s/@'\"]+@", re.I)
_encoder = msgspec.json.Encoder()


def scrub(text: str) -> str:
    text = _PEM.sub("[pem redacted]", text)
    text = _NKEY_SEED.sub("[nkey seed redacted]", text)
    return _URL_CREDENTIALS.sub(r"\1[credentials redacted]@", text)


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
