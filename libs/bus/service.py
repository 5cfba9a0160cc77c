"""A core-NATS request/reply responder for external tooling (CLI, dashboards).

Replicas subscribe in one queue group, so each request is answered by exactly one of them.
Failures follow the NATS micro protocol: the reply carries `Nats-Service-Error` (description)
and `Nats-Service-Error-Code` (e.g. "400") headers and an empty body. The responder must outlive
any input: a handler raising `ServiceError` sends that code; an exception type listed in
`bad_request_errors` (e.g. `msgspec.DecodeError`) becomes a 400 with its message; anything else
is logged with its traceback and answered with a generic 500 (internals are not leaked to the
caller); a handler exceeding `handler_timeout` gets a 504. Payloads are never logged.

With `discovery` set, the responder is also a NATS service as the services API defines it
(ADR-32, the protocol of `nats.micro`): every instance answers `$SRV.PING`, `$SRV.INFO` and
`$SRV.STATS` (also `$SRV.<verb>.<name>` and `$SRV.<verb>.<name>.<id>`), with its endpoint's
subject and queue group, request and error counts, processing time and last error; the
responses are nats.micro's own types. The endpoint is served here rather than by
`nats.micro.Service.add_endpoint` because that one handles a subscription's requests one at a
time and answers an unexpected exception with its repr (internals to the caller).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import MappingProxyType

import nats.errors
from nats.aio.msg import Msg
from nats.micro.service import (
    EndpointInfo,
    EndpointStats,
    ServiceInfo,
    ServicePing,
    ServiceStats,
    ServiceVerb,
    control_subject,
)
from nats.nuid import NUID

from libs.bus.connect import Bus
from libs.bus.delivery import Request
from libs.bus.errors import ServiceError

log = logging.getLogger(__name__)

ERROR_HEADER = "Nats-Service-Error"
ERROR_CODE_HEADER = "Nats-Service-Error-Code"

RequestHandler = Callable[[Request], Awaitable[bytes]]


@dataclass(frozen=True, slots=True)
class Discovery:
    """How the responder presents itself to the services API: `name` (A-Z, a-z, 0-9, '-',
    '_'), a semantic `version`, and its one endpoint's name."""

    name: str
    version: str
    endpoint: str
    description: str = ""
    metadata: Mapping[str, str] = field(default_factory=dict)


def discovery_subjects(name: str) -> tuple[str, ...]:
    """The control subjects an instance of service `name` subscribes to (`*`: its id)."""
    return tuple(
        subject
        for verb in ServiceVerb
        for subject in (
            control_subject(verb),
            control_subject(verb, name=name),
            control_subject(verb, name=name, id="*"),
        )
    )


class _Counters:
    """An endpoint's statistics, as `$SRV.STATS` reports them."""

    def __init__(self) -> None:
        self.requests = 0
        self.errors = 0
        self.last_error = ""
        self.processing_ns = 0

    def record(self, started_ns: int, error: str | None) -> None:
        self.requests += 1
        self.processing_ns += time.perf_counter_ns() - started_ns
        if error is not None:
            self.errors += 1
            self.last_error = error


async def serve(
    bus: Bus,
    subject: str,
    handler: RequestHandler,
    *,
    queue: str,
    stop_event: asyncio.Event,
    max_concurrency: int = 16,
    handler_timeout: float | None = 30.0,
    bad_request_errors: tuple[type[Exception], ...] = (),
    discovery: Discovery | None = None,
) -> None:
    """Answer requests on `subject` (in queue group `queue`) until `stop_event` is set.

    On stop, no new requests are taken and the ones in flight are answered before returning.
    """
    if max_concurrency < 1:
        raise ValueError("max_concurrency must be >= 1")
    counters = _Counters()
    responder = _Responder(
        bus, handler, max_concurrency, handler_timeout, bad_request_errors, counters
    )
    sub = await bus.client.subscribe(subject, queue=queue, cb=responder.on_message)
    control = (
        await _Control(bus, discovery, subject, queue, counters).start()
        if discovery is not None
        else None
    )
    log.info("responder started", extra={"subject": subject, "queue": queue})
    try:
        await stop_event.wait()
    finally:
        with contextlib.suppress(nats.errors.Error):
            await sub.unsubscribe()
        await responder.wait_idle()
        if control is not None:
            await control.stop()
        log.info("responder stopped", extra={"subject": subject, "queue": queue})


class _Control:
    """The services API's PING, INFO and STATS for one responder instance."""

    def __init__(
        self, bus: Bus, discovery: Discovery, subject: str, queue: str, counters: _Counters
    ) -> None:
        self.bus = bus
        self.discovery = discovery
        self.subject = subject
        self.queue = queue
        self.counters = counters
        self.id = NUID().next().decode()
        self.started = datetime.now(UTC).replace(tzinfo=None)
        self._subs: list[object] = []

    async def start(self) -> _Control:
        answers = {
            ServiceVerb.PING: self.ping,
            ServiceVerb.INFO: self.info,
            ServiceVerb.STATS: self.stats,
        }
        name = self.discovery.name
        for verb, answer in answers.items():
            for control in (
                control_subject(verb),
                control_subject(verb, name=name),
                control_subject(verb, name=name, id=self.id),
            ):
                self._subs.append(await self.bus.client.subscribe(control, cb=answer))
        return self

    async def stop(self) -> None:
        for sub in self._subs:
            with contextlib.suppress(nats.errors.Error):
                await sub.unsubscribe()  # type: ignore[attr-defined]

    def _metadata(self) -> dict[str, str]:
        return dict(self.discovery.metadata)

    async def _respond(self, msg: Msg, document: dict[str, object]) -> None:
        if not msg.reply:
            return
        try:
            await self.bus.client.publish(msg.reply, json.dumps(document).encode())
        except nats.errors.Error as exc:
            log.warning("could not answer a service request", extra={"error": repr(exc)})

    async def ping(self, msg: Msg) -> None:
        d = self.discovery
        ping = ServicePing(id=self.id, name=d.name, version=d.version, metadata=self._metadata())
        await self._respond(msg, ping.to_dict())

    async def info(self, msg: Msg) -> None:
        d = self.discovery
        endpoint = EndpointInfo(
            name=d.endpoint, subject=self.subject, queue_group=self.queue, metadata={}
        )
        info = ServiceInfo(
            id=self.id,
            name=d.name,
            version=d.version,
            description=d.description,
            endpoints=[endpoint],
            metadata=self._metadata(),
        )
        await self._respond(msg, info.to_dict())

    async def stats(self, msg: Msg) -> None:
        d, c = self.discovery, self.counters
        endpoint = EndpointStats(
            name=d.endpoint,
            subject=self.subject,
            queue_group=self.queue,
            num_requests=c.requests,
            num_errors=c.errors,
            last_error=c.last_error,
            processing_time=c.processing_ns,
            average_processing_time=c.processing_ns // c.requests if c.requests else 0,
        )
        stats = ServiceStats(
            id=self.id,
            name=d.name,
            version=d.version,
            started=self.started,
            endpoints=[endpoint],
            metadata=self._metadata(),
        )
        await self._respond(msg, stats.to_dict())


class _Responder:
    def __init__(
        self,
        bus: Bus,
        handler: RequestHandler,
        max_concurrency: int,
        handler_timeout: float | None,
        bad_request_errors: tuple[type[Exception], ...],
        counters: _Counters,
    ) -> None:
        self._counters = counters
        self._bus = bus
        self._handler = handler
        self._slots = asyncio.Semaphore(max_concurrency)
        self._timeout = handler_timeout
        self._bad_request_errors = bad_request_errors
        self._in_flight: set[asyncio.Task[None]] = set()

    async def on_message(self, msg: Msg) -> None:
        """Subscription callback: wait for a free slot (backpressure), answer in a task."""
        if not msg.reply:
            log.debug("request without reply subject dropped", extra={"subject": msg.subject})
            return
        await self._slots.acquire()
        task = asyncio.create_task(self._answer(msg))
        self._in_flight.add(task)
        task.add_done_callback(self._in_flight.discard)

    async def wait_idle(self) -> None:
        if self._in_flight:
            await asyncio.gather(*self._in_flight, return_exceptions=True)

    async def _answer(self, msg: Msg) -> None:
        started = time.perf_counter_ns()
        error: str | None = None
        try:
            request = Request(
                subject=msg.subject,
                data=msg.data,
                headers=MappingProxyType(dict(msg.headers or {})),
            )
            try:
                body: object = await asyncio.wait_for(self._handler(request), timeout=self._timeout)
            except ServiceError as exc:
                error = await self._reply_error(msg, exc.code, exc.description)
            except TimeoutError:
                log.warning("request handler timed out", extra={"subject": msg.subject})
                error = await self._reply_error(msg, 504, "handler timed out")
            except self._bad_request_errors as exc:
                error = await self._reply_error(msg, 400, str(exc) or type(exc).__name__)
            except Exception:  # a handler bug must not kill the responder
                log.exception("request handler failed", extra={"subject": msg.subject})
                error = await self._reply_error(msg, 500, "internal error")
            else:
                if isinstance(body, bytes | bytearray):
                    await self._reply(msg, bytes(body), None)
                else:
                    log.error("request handler returned non-bytes", extra={"subject": msg.subject})
                    error = await self._reply_error(msg, 500, "internal error")
        finally:
            self._counters.record(started, error)
            self._slots.release()

    async def _reply_error(self, msg: Msg, code: int, description: str) -> str:
        """Send the error reply; the error as `$SRV.STATS` reports it (`code:description`)."""
        log.info(
            "request answered with error",
            extra={"subject": msg.subject, "code": code, "description": description},
        )
        headers = {ERROR_HEADER: _one_line(description), ERROR_CODE_HEADER: str(code)}
        await self._reply(msg, b"", headers)
        return f"{code}:{headers[ERROR_HEADER]}"

    async def _reply(self, msg: Msg, body: bytes, headers: dict[str, str] | None) -> None:
        try:
            await self._bus.client.publish(msg.reply, body, headers=headers)
        except nats.errors.Error as exc:
            log.warning("could not send reply", extra={"subject": msg.subject, "error": repr(exc)})


def _one_line(text: str, limit: int = 1024) -> str:
    """Header values cannot contain CR/LF; keep them short too."""
    return " ".join(text.split())[:limit]
