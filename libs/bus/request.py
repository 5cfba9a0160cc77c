"""The caller's side of a core-NATS request/reply: send one request, read the reply or its error.

The counterpart of `libs.bus.service.serve`: a responder that fails answers with an empty body
and the NATS micro headers `Nats-Service-Error` / `Nats-Service-Error-Code`; `Reply` exposes
them as `error_code` / `error` so callers never parse headers. Nobody listening on the subject
raises `NoResponderError`, no answer within `max_wait` raises `RequestTimeoutError`; both are
`BusError`s, and nats-py types stay inside this module.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

import nats.errors

from libs.bus.connect import Bus
from libs.bus.errors import BusError
from libs.bus.service import ERROR_CODE_HEADER, ERROR_HEADER


class NoResponderError(BusError):
    """No responder is subscribed to the subject (the service is not running)."""


class RequestTimeoutError(BusError):
    """The responder did not answer within the timeout."""


@dataclass(frozen=True, slots=True)
class Reply:
    """A reply: its body and headers; `error_code` is set when the responder reported a failure."""

    data: bytes = field(repr=False)
    headers: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))

    @property
    def error_code(self) -> int | None:
        """The `Nats-Service-Error-Code` header as a number (None: a successful reply)."""
        raw = self.headers.get(ERROR_CODE_HEADER)
        if raw is None:
            return None
        try:
            return int(raw.strip())
        except ValueError:
            return 500  # a responder that cannot spell its code still failed

    @property
    def error(self) -> str:
        """The `Nats-Service-Error` description ("" on success)."""
        return self.headers.get(ERROR_HEADER, "")

    @property
    def ok(self) -> bool:
        return self.error_code is None


async def request(
    bus: Bus,
    subject: str,
    data: bytes,
    *,
    max_wait: float = 5.0,
    headers: Mapping[str, str] | None = None,
) -> Reply:
    """Send `data` to `subject` and wait up to `max_wait` seconds for the reply."""
    try:
        msg = await bus.client.request(
            subject, data, timeout=max_wait, headers=dict(headers) if headers else None
        )
    except nats.errors.NoRespondersError as exc:
        raise NoResponderError(f"no responder on {subject}") from exc
    except nats.errors.TimeoutError as exc:
        raise RequestTimeoutError(f"no reply on {subject} within {max_wait}s") from exc
    except nats.errors.Error as exc:  # connection closed or draining
        raise BusError(f"request on {subject} failed: {exc!r}") from exc
    return Reply(data=bytes(msg.data), headers=MappingProxyType(dict(msg.headers or {})))
