"""Make the server's streams and durable consumers match declarative specs, idempotently.

Every service calls `ensure_topology` at start-up, so several processes may do it at the same
moment: each step reads first, creates only what is missing, updates only what drifted, and
treats "already in use" from a lost creation race as "read again and compare". Transient
failures (JetStream not ready yet, a server restarting) are retried until `timeout`. Most consumer
fields (ack_wait, max_deliver, max_ack_pending, backoff, description) are updated in place. A
change the server refuses (e.g. storage type, a consumer's deliver policy, push to pull) raises
`TopologyError` naming the object and the fields, with one exception: a consumer on a work-queue
stream is deleted and created again, since its messages stay in the stream until acked and
nothing else is lost (a message in hand is delivered again). Deleting a consumer on any other
stream is left to an operator, because its ack state would be lost.
"""

from __future__ import annotations

import contextlib
import functools
import logging
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from enum import Enum, StrEnum
from typing import TypeVar

import nats.errors
import nats.js.errors
from nats.js import api
from tenacity import AsyncRetrying, retry_if_exception_type, stop_after_delay, wait_exponential

from libs.bus.connect import Bus
from libs.bus.errors import TopologyError
from libs.bus.specs import ConsumerSpec, StreamSpec

log = logging.getLogger(__name__)
_T = TypeVar("_T")

_STREAM_NAME_IN_USE = 10058
_CONSUMER_ALREADY_EXISTS = (10105, 10148)
_NS = 1_000_000_000
_TRANSIENT = (
    nats.errors.TimeoutError,
    nats.errors.NoRespondersError,
    nats.errors.ConnectionReconnectingError,
    nats.js.errors.ServiceUnavailableError,
)


# The server answers refusals with 400 or 500 (e.g. "can not change storage type").
_REFUSED = nats.js.errors.APIError


def _reraise_transient(exc: nats.js.errors.APIError) -> None:
    if isinstance(exc, nats.js.errors.ServiceUnavailableError):
        raise exc


class Outcome(StrEnum):
    CREATED = "created"
    UPDATED = "updated"
    UNCHANGED = "unchanged"


@dataclass(frozen=True, slots=True)
class TopologyReport:
    """What `ensure_topology` did, keyed "stream:NAME" / "consumer:STREAM/DURABLE"."""

    outcomes: dict[str, Outcome] = field(default_factory=dict)

    def names(self, outcome: Outcome) -> list[str]:
        return [name for name, result in self.outcomes.items() if result is outcome]


async def ensure_topology(
    bus: Bus,
    streams: Iterable[StreamSpec],
    consumers: Iterable[ConsumerSpec] = (),
    *,
    retry_for: float = 30.0,
) -> TopologyReport:
    """Create or update all `streams`, then all `consumers`.

    Transient errors (JetStream not ready, server restarting) are retried for `retry_for` s.
    """
    report = TopologyReport()
    for stream in streams:
        step = functools.partial(ensure_stream, bus, stream)
        report.outcomes[f"stream:{stream.name}"] = await _retrying(retry_for, step)
    for consumer in consumers:
        key = f"consumer:{consumer.stream}/{consumer.durable}"
        step_c = functools.partial(ensure_consumer, bus, consumer)
        report.outcomes[key] = await _retrying(retry_for, step_c)
    return report


async def ensure_stream(bus: Bus, spec: StreamSpec) -> Outcome:
    """Create the stream, or update it if its configuration drifted from `spec`."""
    desired = stream_config(spec)
    for _ in range(3):  # each retry follows a lost creation race
        try:
            info = await bus.js.stream_info(spec.name)
        except nats.js.errors.NotFoundError:
            try:
                await bus.js.add_stream(desired)
            except _REFUSED as exc:
                if exc.err_code == _STREAM_NAME_IN_USE:
                    continue
                _reraise_transient(exc)
                raise TopologyError(
                    f"stream {spec.name}: create refused: {exc.description}"
                ) from exc
            log.info("stream created", extra={"stream": spec.name})
            return Outcome.CREATED
        drift = stream_drift(spec, info.config)
        if not drift:
            return Outcome.UNCHANGED
        try:
            await bus.js.update_stream(desired)
        except _REFUSED as exc:
            _reraise_transient(exc)
            raise TopologyError(
                f"stream {spec.name}: cannot change {', '.join(drift)}: {exc.description}"
            ) from exc
        log.info("stream updated", extra={"stream": spec.name, "fields": drift})
        return Outcome.UPDATED
    raise TopologyError(f"stream {spec.name}: configuration keeps changing under us")


async def ensure_consumer(bus: Bus, spec: ConsumerSpec) -> Outcome:
    """Create the durable consumer, or update it (nats-server >= 2.9 allows some fields)."""
    desired = consumer_config(spec)
    name = f"{spec.stream}/{spec.durable}"
    for _ in range(3):
        try:
            info = await bus.js.consumer_info(spec.stream, spec.durable)
        except nats.js.errors.NotFoundError:
            try:
                await bus.js.add_consumer(spec.stream, desired)
            except nats.js.errors.NotFoundError as exc:
                raise TopologyError(f"consumer {name}: stream {spec.stream} not found") from exc
            except _REFUSED as exc:
                if exc.err_code in _CONSUMER_ALREADY_EXISTS:
                    continue
                _reraise_transient(exc)
                raise TopologyError(f"consumer {name}: create refused: {exc.description}") from exc
            log.info("consumer created", extra={"stream": spec.stream, "consumer": spec.durable})
            return Outcome.CREATED
        drift = consumer_drift(spec, info.config)
        if not drift:
            return Outcome.UNCHANGED
        try:
            await bus.js.add_consumer(spec.stream, desired)
        except _REFUSED as exc:
            _reraise_transient(exc)
            if await _is_work_queue(bus, spec.stream):
                await _recreate_consumer(bus, spec, desired, drift, exc.description)
                return Outcome.UPDATED
            raise TopologyError(
                f"consumer {name}: cannot change {', '.join(drift)} "
                f"(delete and recreate it if intended): {exc.description}"
            ) from exc
        log.info(
            "consumer updated",
            extra={"stream": spec.stream, "consumer": spec.durable, "fields": drift},
        )
        return Outcome.UPDATED
    raise TopologyError(f"consumer {name}: configuration keeps changing under us")


async def _is_work_queue(bus: Bus, stream: str) -> bool:
    info = await bus.js.stream_info(stream)
    return _str(info.config.retention) == api.RetentionPolicy.WORK_QUEUE.value


async def _recreate_consumer(
    bus: Bus, spec: ConsumerSpec, desired: api.ConsumerConfig, drift: list[str], why: str | None
) -> None:
    """Delete and create again a consumer of a work-queue stream whose update was refused."""
    where = {"stream": spec.stream, "consumer": spec.durable, "fields": drift, "refused": why}
    log.warning("consumer update refused; deleting and creating it again", extra=where)
    with contextlib.suppress(nats.js.errors.NotFoundError):  # another process did it first
        await bus.js.delete_consumer(spec.stream, spec.durable)
    try:
        await bus.js.add_consumer(spec.stream, desired)
    except _REFUSED as exc:
        if exc.err_code in _CONSUMER_ALREADY_EXISTS:
            return  # created again by that other process, with the same declaration
        _reraise_transient(exc)
        raise TopologyError(
            f"consumer {spec.stream}/{spec.durable}: re-create refused: {exc.description}"
        ) from exc


def stream_config(spec: StreamSpec) -> api.StreamConfig:
    return api.StreamConfig(
        name=spec.name,
        description=spec.description,
        subjects=list(spec.subjects),
        retention=api.RetentionPolicy(spec.retention.value),
        max_age=spec.max_age or 0,
        duplicate_window=spec.duplicate_window,
        storage=api.StorageType(spec.storage.value),
        num_replicas=spec.replicas,
        max_msgs_per_subject=spec.max_msgs_per_subject,
        max_msgs=spec.max_msgs,
        max_bytes=spec.max_bytes,
        max_msg_size=spec.max_msg_size,
        discard=api.DiscardPolicy(spec.discard.value),
        allow_rollup_hdrs=spec.allow_rollup,
    )


def consumer_config(spec: ConsumerSpec) -> api.ConsumerConfig:
    return api.ConsumerConfig(
        name=spec.durable,
        durable_name=spec.durable,
        description=spec.description,
        deliver_policy=api.DeliverPolicy(spec.deliver_policy.value),
        ack_policy=api.AckPolicy.EXPLICIT,
        ack_wait=spec.ack_wait,
        max_deliver=spec.max_deliver,
        backoff=list(spec.backoff) or None,
        filter_subject=spec.filter_subject,
        max_ack_pending=spec.max_ack_pending,
    )


def stream_drift(spec: StreamSpec, actual: api.StreamConfig) -> list[str]:
    """Names of the fields where the server's stream differs from `spec` (pure)."""
    wanted = {
        "subjects": sorted(spec.subjects),
        "retention": spec.retention.value,
        "max_age": _ns(spec.max_age),
        "duplicate_window": _ns(spec.duplicate_window),
        "storage": spec.storage.value,
        "replicas": spec.replicas,
        "max_msgs_per_subject": spec.max_msgs_per_subject,
        "max_msgs": spec.max_msgs,
        "max_bytes": spec.max_bytes,
        "max_msg_size": spec.max_msg_size,
        "discard": spec.discard.value,
        "allow_rollup": spec.allow_rollup,
        "description": spec.description or "",
    }
    have = {
        "subjects": sorted(actual.subjects or []),
        "retention": _str(actual.retention),
        "max_age": _ns(actual.max_age),
        "duplicate_window": _ns(actual.duplicate_window),
        "storage": _str(actual.storage),
        "replicas": actual.num_replicas or 1,
        "max_msgs_per_subject": actual.max_msgs_per_subject,
        "max_msgs": actual.max_msgs,
        "max_bytes": actual.max_bytes,
        "max_msg_size": actual.max_msg_size,
        "discard": _str(actual.discard),
        "allow_rollup": bool(actual.allow_rollup_hdrs),
        "description": actual.description or "",
    }
    return [key for key, value in wanted.items() if have[key] != value]


def consumer_drift(spec: ConsumerSpec, actual: api.ConsumerConfig) -> list[str]:
    """Names of the fields where the server's consumer differs from `spec` (pure)."""
    wanted = {
        "filter_subject": spec.filter_subject or "",
        # With a backoff list the server replaces ack_wait by its first delay.
        "ack_wait": _ns(spec.backoff[0] if spec.backoff else spec.ack_wait),
        "max_deliver": spec.max_deliver,
        "backoff": [_ns(delay) for delay in spec.backoff],
        "max_ack_pending": spec.max_ack_pending,
        "deliver_policy": spec.deliver_policy.value,
        "ack_policy": api.AckPolicy.EXPLICIT.value,
        "description": spec.description or "",
        "push": False,  # every declared consumer is a pull consumer
    }
    have = {
        "filter_subject": actual.filter_subject or "",
        "ack_wait": _ns(actual.ack_wait),
        "max_deliver": actual.max_deliver,
        "backoff": [_ns(delay) for delay in actual.backoff or []],
        "max_ack_pending": actual.max_ack_pending,
        "deliver_policy": _str(actual.deliver_policy),
        "ack_policy": _str(actual.ack_policy),
        "description": actual.description or "",
        "push": bool(actual.deliver_subject),
    }
    return [key for key, value in wanted.items() if have[key] != value]


def _ns(seconds: float | None) -> int:
    return round((seconds or 0) * _NS)


def _str(value: object) -> str:
    """Server responses carry plain strings; locally built configs carry nats-py enums."""
    return str(value.value) if isinstance(value, Enum) else str(value)


async def _retrying(retry_for: float, step: Callable[[], Awaitable[_T]]) -> _T:
    async for attempt in AsyncRetrying(
        retry=retry_if_exception_type(_TRANSIENT),
        stop=stop_after_delay(retry_for),
        wait=wait_exponential(multiplier=0.1, max=2.0),
        reraise=True,
    ):
        with attempt:
            return await step()
    raise AssertionError("unreachable: tenacity re-raises the last error")
