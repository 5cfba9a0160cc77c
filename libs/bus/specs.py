"""Declarative stream and durable pull-consumer specifications; this module never imports `nats`.

Topology is data: a service declares the streams and consumers it needs as `StreamSpec` and
`ConsumerSpec` values and `libs.bus.topology.ensure_topology` makes the server match them.
Names and subjects come from the caller (certlc spells them in `libs.contracts`); nothing here
knows certlc subjects. Only features of nats-server 2.9 are offered (one `filter_subject` per
consumer, no per-message TTL, no stream metadata), because newer ones are silently ignored there.
Durations are in seconds.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum

_NAME_RE = re.compile(r"^[A-Za-z0-9_-]+$")


class Retention(StrEnum):
    LIMITS = "limits"  # keep until max_age/max_msgs/max_bytes: replayable history
    INTEREST = "interest"  # keep while some consumer has not acked it
    WORK_QUEUE = "workqueue"  # delete on ack: each message handled once by one consumer


class Storage(StrEnum):
    FILE = "file"
    MEMORY = "memory"


class Discard(StrEnum):
    OLD = "old"  # when full, drop the oldest messages
    NEW = "new"  # when full, reject new publishes


class DeliverPolicy(StrEnum):
    ALL = "all"
    NEW = "new"
    LAST = "last"
    LAST_PER_SUBJECT = "last_per_subject"


def _check_name(kind: str, name: str) -> None:
    if not _NAME_RE.match(name):
        raise ValueError(f"{kind} name {name!r} must match {_NAME_RE.pattern}")


@dataclass(frozen=True, slots=True)
class StreamSpec:
    """A JetStream stream as it should exist. `max_age=None` keeps messages forever."""

    name: str
    subjects: tuple[str, ...]
    retention: Retention = Retention.LIMITS
    max_age: float | None = None
    duplicate_window: float = 120.0
    storage: Storage = Storage.FILE
    replicas: int = 1
    max_msgs_per_subject: int = -1
    max_msgs: int = -1
    max_bytes: int = -1
    max_msg_size: int = -1
    discard: Discard = Discard.OLD
    allow_rollup: bool = False
    description: str | None = None

    def __post_init__(self) -> None:
        _check_name("stream", self.name)
        if not self.subjects or any(not subject.strip() for subject in self.subjects):
            raise ValueError(f"stream {self.name}: needs at least one non-empty subject")
        if not 1 <= self.replicas <= 5:
            raise ValueError(f"stream {self.name}: replicas must be 1..5, got {self.replicas}")
        if self.duplicate_window < 0:
            raise ValueError(f"stream {self.name}: duplicate_window must be >= 0")
        if self.max_age is not None:
            if self.max_age <= 0:
                raise ValueError(f"stream {self.name}: max_age must be > 0 or None (forever)")
            if self.duplicate_window > self.max_age:
                raise ValueError(f"stream {self.name}: duplicate_window exceeds max_age")


@dataclass(frozen=True, slots=True)
class ConsumerSpec:
    """A durable pull consumer with explicit acks on `stream`.

    `ack_wait`: seconds before an unacked delivery is redelivered (the consumer loop sends
    in-progress heartbeats for long handlers). `max_deliver=-1`: unlimited. `backoff`:
    server-side redelivery delays for ack timeouts (the server then uses `backoff[0]` as
    ack_wait; needs a finite `max_deliver` larger than its length).
    """

    stream: str
    durable: str
    filter_subject: str | None = None
    ack_wait: float = 30.0
    max_deliver: int = -1
    backoff: tuple[float, ...] = ()
    max_ack_pending: int = 1000
    deliver_policy: DeliverPolicy = DeliverPolicy.ALL
    description: str | None = None

    def __post_init__(self) -> None:
        _check_name("stream", self.stream)
        _check_name("consumer", self.durable)
        if self.ack_wait <= 0:
            raise ValueError(f"consumer {self.durable}: ack_wait must be > 0")
        if self.max_deliver == 0 or self.max_deliver < -1:
            raise ValueError(f"consumer {self.durable}: max_deliver must be -1 or >= 1")
        if self.backoff and self.max_deliver <= len(self.backoff):  # the server's rule
            raise ValueError(f"consumer {self.durable}: backoff needs max_deliver > len(backoff)")
        if any(delay <= 0 for delay in self.backoff):
            raise ValueError(f"consumer {self.durable}: backoff delays must be > 0")
        if self.filter_subject is not None and not self.filter_subject.strip():
            raise ValueError(f"consumer {self.durable}: filter_subject must not be empty")


@dataclass(frozen=True, slots=True)
class BucketSpec:
    """A JetStream KeyValue bucket. `ttl=None` keeps keys forever; `history` is 1..64."""

    name: str
    history: int = 1
    ttl: float | None = None
    storage: Storage = Storage.FILE
    replicas: int = 1
    max_value_size: int = -1
    description: str | None = None

    def __post_init__(self) -> None:
        _check_name("bucket", self.name)
        if not 1 <= self.history <= 64:
            raise ValueError(f"bucket {self.name}: history must be 1..64, got {self.history}")
        if not 1 <= self.replicas <= 5:
            raise ValueError(f"bucket {self.name}: replicas must be 1..5, got {self.replicas}")
        if self.ttl is not None and self.ttl <= 0:
            raise ValueError(f"bucket {self.name}: ttl must be > 0 or None (forever)")
