"""Publish to JetStream with a message id, retrying through server restarts.

Every event certlc publishes carries a stable `Nats-Msg-Id` (derived by the caller from the
facts it describes), so a publish retried after a timeout, or repeated by a handler that runs
twice on a redelivered message, is stored once: the server answers `duplicate=True` inside the
stream's duplicate window. Timeouts, "no responders" and JetStream-unavailable answers are
retried with backoff for `retry_for` seconds, because they are what a restarting server looks
like. A rejection (wrong stream, bad headers) is raised at once as a non-retryable
`PublishError`. `publish_until_acked` goes on after that budget, for as long as NATS is away,
for publishers that must never drop a message. Payloads are never logged.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import nats.errors
import nats.js.errors
from nats.js import api
from tenacity import (
    AsyncRetrying,
    RetryError,
    retry_if_exception_type,
    stop_after_delay,
    wait_exponential,
    wait_random,
)

from libs.bus.backoff import Backoff
from libs.bus.connect import Bus
from libs.bus.errors import PublishError

log = logging.getLogger(__name__)

MSG_ID_HEADER = "Nats-Msg-Id"
EXPECTED_STREAM_HEADER = "Nats-Expected-Stream"
_RETRYABLE = (
    nats.errors.TimeoutError,
    nats.errors.NoRespondersError,
    nats.errors.ConnectionReconnectingError,
    nats.errors.OutboundBufferLimitError,
    nats.js.errors.NoStreamResponseError,
    nats.js.errors.ServiceUnavailableError,
)


@dataclass(frozen=True, slots=True)
class PublishAck:
    """Where the message was stored. `duplicate`: an earlier publish with this id was kept."""

    stream: str
    seq: int
    duplicate: bool


async def publish(
    bus: Bus,
    subject: str,
    data: bytes,
    *,
    msg_id: str | None,
    headers: Mapping[str, str] | None = None,
    expected_stream: str | None = None,
    ack_timeout: float = 2.0,
    retry_for: float = 30.0,
) -> PublishAck:
    """Publish `data` to `subject` and wait for the stream's acknowledgement.

    `msg_id` is required on purpose: pass None only for messages where a duplicate is harmless.
    `expected_stream` makes the server reject the publish if another stream owns `subject`.
    Each attempt waits `ack_timeout` seconds for the ack; attempts continue for `retry_for`
    seconds, then `PublishError(retryable=True)` is raised.
    """
    all_headers = dict(headers or {})
    if msg_id is not None:
        if not msg_id.strip():
            raise ValueError("msg_id must be a non-empty string (or None for no de-duplication)")
        all_headers[MSG_ID_HEADER] = msg_id
    if expected_stream is not None:
        all_headers[EXPECTED_STREAM_HEADER] = expected_stream
    try:
        ack = await _publish_with_retry(bus, subject, data, all_headers, ack_timeout, retry_for)
    except RetryError as exc:
        last = exc.last_attempt.exception()
        raise PublishError(
            subject, f"no acknowledgement within {retry_for}s ({last!r})", retryable=True
        ) from last
    except nats.js.errors.APIError as exc:
        raise PublishError(subject, f"rejected: {exc.description}", retryable=False) from exc
    except nats.errors.Error as exc:  # e.g. the connection was closed by us
        raise PublishError(subject, repr(exc), retryable=False) from exc
    result = PublishAck(stream=ack.stream, seq=ack.seq, duplicate=bool(ack.duplicate))
    log.debug(
        "published",
        extra={
            "subject": subject,
            "msg_id": msg_id,
            "stream": result.stream,
            "seq": result.seq,
            "duplicate": result.duplicate,
            "size": len(data),
        },
    )
    return result


async def _publish_with_retry(
    bus: Bus,
    subject: str,
    data: bytes,
    headers: dict[str, str],
    ack_timeout: float,
    retry_for: float,
) -> api.PubAck:
    # The first attempt runs without tenacity: almost every publish succeeds at once, and a
    # retrying object per message is measurable CPU at fleet scale.
    started = time.monotonic()
    try:
        return await _attempt(bus, subject, data, headers, ack_timeout)
    except _RETRYABLE:
        pass  # the server may be restarting: retry with backoff for what is left of retry_for
    attempts = AsyncRetrying(
        retry=retry_if_exception_type(_RETRYABLE),
        stop=stop_after_delay(max(0.0, retry_for - (time.monotonic() - started))),
        wait=wait_exponential(multiplier=0.05, max=2.0) + wait_random(0, 0.1),
    )
    async for attempt in attempts:
        with attempt:
            number = attempt.retry_state.attempt_number + 1
            log.info("retrying publish", extra={"subject": subject, "attempt": number})
            return await _attempt(bus, subject, data, headers, ack_timeout)
    raise AssertionError("unreachable: tenacity raises RetryError when it gives up")


async def _attempt(
    bus: Bus, subject: str, data: bytes, headers: dict[str, str], ack_timeout: float
) -> api.PubAck:
    # A fresh dict each time: nats-py may add headers to the one it is given.
    return await bus.js.publish(subject, data, timeout=ack_timeout, headers=dict(headers) or None)


DEFAULT_OUTAGE_BACKOFF = Backoff(initial=1.0, maximum=15.0)


async def publish_until_acked(
    bus: Bus,
    subject: str,
    data: bytes,
    *,
    msg_id: str | None,
    headers: Mapping[str, str] | None = None,
    on_outage: Callable[[PublishError], None] | None = None,
    backoff: Backoff = DEFAULT_OUTAGE_BACKOFF,
    retry_for: float = 30.0,
) -> PublishAck:
    """`publish`, and when it gives up on a retryable failure (NATS away longer than
    `retry_for`), call `on_outage` and try again after `backoff`, for as long as it takes.

    For a publisher that must not lose a message to an outage of any length; a rejection, or a
    connection closed by us, is raised as `publish` raises it. Each later attempt is de-duplicated
    by `msg_id` as usual.
    """
    outages = 0
    while True:
        try:
            return await publish(
                bus, subject, data, msg_id=msg_id, headers=headers, retry_for=retry_for
            )
        except PublishError as exc:
            if not exc.retryable or bus.is_closed:
                raise
            outages += 1
            if on_outage is not None:
                on_outage(exc)
            delay = backoff.delay(outages)
            log.warning(
                "publish still failing, trying again",
                extra={"subject": subject, "attempt": outages, "delay": delay, "error": exc.reason},
            )
            await asyncio.sleep(delay)
