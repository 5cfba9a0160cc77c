"""Error types for message handlers and the bus; this module never imports `nats`.

Handlers (in services) raise `TemporaryError(delay)` for "try again later" and `PermanentError`
for "this message can never succeed"; the consumer loop maps them onto JetStream `nak(delay)` and
`term()`. Request/reply handlers raise `ServiceError(code, description)`, sent back as NATS micro
error headers. Handler code imports them from `libs.bus.errors`, which has no `nats` import, so
import-linter sees no path from a handler module to the NATS client.
"""

from __future__ import annotations


class HandlerError(Exception):
    """Base of the errors a message handler raises on purpose."""


class TemporaryError(HandlerError):
    """Retry this message later: the consumer loop naks it with `delay` seconds."""

    def __init__(self, message: str, *, delay: float = 5.0) -> None:
        if delay < 0:
            raise ValueError(f"TemporaryError delay must be >= 0, got {delay}")
        super().__init__(message)
        self.delay = delay


class PermanentError(HandlerError):
    """This message can never be handled: the consumer loop terminates it (no redelivery)."""


class ServiceError(Exception):
    """A request/reply failure sent to the caller as `Nats-Service-Error(-Code)` headers."""

    def __init__(self, code: int, description: str) -> None:
        if not 100 <= code <= 599:
            raise ValueError(f"ServiceError code must be an HTTP-like status, got {code}")
        super().__init__(f"{code}: {description}")
        self.code = code
        self.description = description

    @classmethod
    def bad_request(cls, description: str) -> ServiceError:
        return cls(400, description)

    @classmethod
    def not_found(cls, description: str) -> ServiceError:
        return cls(404, description)


class BusError(Exception):
    """The messaging layer failed (connection, topology, publish); see the subclasses."""


class BusConnectError(BusError):
    """Could not connect to any NATS server within the allowed time."""


class BusAuthError(BusConnectError):
    """The NATS server refused the client's credentials (wrong password, unknown nkey, a JWT
    not signed by a trusted account, ...). The message names the method, never the secret."""


class TopologyError(BusError):
    """A stream or consumer could not be created or brought to the declared configuration."""


class PublishError(BusError):
    """A JetStream publish was rejected or not acknowledged within the retry budget."""

    def __init__(self, subject: str, reason: str, *, retryable: bool) -> None:
        super().__init__(f"publish to {subject!r} failed: {reason}")
        self.subject = subject
        self.reason = reason
        self.retryable = retryable


class KeyConflictError(BusError):
    """A KeyValue write lost an optimistic-locking race (key exists / revision moved on)."""

    def __init__(self, bucket: str, key: str, detail: str) -> None:
        super().__init__(f"{bucket}/{key}: {detail}")
        self.bucket = bucket
        self.key = key
