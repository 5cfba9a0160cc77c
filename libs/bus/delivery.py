"""What handlers see: `Delivery` (a JetStream message), `Request` (a request/reply call).

Handlers get facts (subject, bytes, headers, delivery count, stream sequence) and no way to ack:
acknowledgement belongs to the consumer loop, which acks only after the handler returns, so
"ack after success" holds by construction. This module never imports `nats`, so service unit
tests can build these values by hand. `repr()` never shows a payload.
"""

from __future__ import annotations

import datetime
from collections.abc import Awaitable, Callable, Hashable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

MSG_ID_HEADER = "Nats-Msg-Id"

OrderingKey = Callable[[str], Hashable]
"""Maps a subject to the key whose messages must be handled one at a time, in order."""


def by_subject(subject: str) -> Hashable:
    """Messages on the same subject are handled in order (the default ordering key)."""
    return subject


def by_tokens(start: int, stop: int | None = None) -> OrderingKey:
    """Order by a slice of the dot-separated subject tokens, e.g. namespace and name."""

    def key(subject: str) -> Hashable:
        return tuple(subject.split(".")[start:stop])

    return key


async def _no_progress() -> None:
    return None


def _epoch() -> datetime.datetime:
    return datetime.datetime.fromtimestamp(0, datetime.UTC)


@dataclass(frozen=True, slots=True, kw_only=True)
class Delivery:
    """One delivery of a stream message to a durable consumer."""

    subject: str
    data: bytes = field(repr=False)
    headers: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    num_delivered: int = 1
    stream: str = ""
    consumer: str = ""
    stream_seq: int = 0
    consumer_seq: int = 0
    num_pending: int = 0
    timestamp: datetime.datetime = field(default_factory=_epoch)
    progress: Callable[[], Awaitable[None]] = field(default=_no_progress, repr=False)

    @property
    def msg_id(self) -> str | None:
        """The publisher's de-duplication id, if it set one."""
        return self.headers.get(MSG_ID_HEADER)

    @property
    def is_redelivery(self) -> bool:
        return self.num_delivered > 1

    async def in_progress(self) -> None:
        """Tell the server we are still working on it: resets the ack_wait timer."""
        await self.progress()

    def log_fields(self) -> dict[str, object]:
        """Structured logging fields that identify this delivery (never the payload)."""
        return {
            "subject": self.subject,
            "stream": self.stream,
            "consumer": self.consumer,
            "stream_seq": self.stream_seq,
            "num_delivered": self.num_delivered,
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class Request:
    """One core-NATS request to a responder; the handler returns the reply bytes."""

    subject: str
    data: bytes = field(repr=False)
    headers: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
