"""A core-NATS request/reply responder for external tooling (CLI, dashboards).

Replicas subscribe in one queue group, so each request is answered by exactly one of them.
Failures follow the NATS micro protocol: the reply carries `Nats-Service-Error` (description)
and `Nats-Service-Error-Code` (e.g. "400") headers and an empty body. The responder must outlive
any input: a handler raising `ServiceError` sends that code; an exception type listed in
`bad_request_errors` (e.g. `msgspec.DecodeError`) becomes a 400 with its message; anything else
is logged with its traceback and answered with a generic 500 (internals are not leaked to the
caller); a handler exceeding `handler_timeout` gets a 504. Payloads are never logged.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from types import MappingProxyType

import nats.errors
from nats.aio.msg import Msg

from libs.bus.connect import Bus
from libs.bus.delivery import Request
from libs.bus.errors import ServiceError

log = logging.getLogger(__name__)

ERROR_HEADER = "Nats-Service-Error"
ERROR_CODE_HEADER = "Nats-Service-Error-Code"

RequestHandler = Callable[[Request], Awaitable[bytes]]


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
) -> None:
    """Answer requests on `subject` (in queue group `queue`) until `stop_event` is set.

    On stop, no new requests are taken and the ones in flight are answered before returning.
    """
    if max_concurrency < 1:
        raise ValueError("max_concurrency must be >= 1")
    responder = _Responder(bus, handler, max_concurrency, handler_timeout, bad_request_errors)
    sub = await bus.client.subscribe(subject, queue=queue, cb=responder.on_message)
    log.info("responder started", extra={"subject": subject, "queue": queue})
    try:
        await stop_event.wait()
    finally:
        with contextlib.suppress(nats.errors.Error):
            await sub.unsubscribe()
        await responder.wait_idle()
        log.info("responder stopped", extra={"subject": subject, "queue": queue})


class _Responder:
    def __init__(
        self,
        bus: Bus,
        handler: RequestHandler,
        max_concurrency: int,
        handler_timeout: float | None,
        bad_request_errors: tuple[type[Exception], ...],
    ) -> None:
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
        try:
            request = Request(
                subject=msg.subject,
                data=msg.data,
                headers=MappingProxyType(dict(msg.headers or {})),
            )
            try:
                body: object = await asyncio.wait_for(self._handler(request), timeout=self._timeout)
            except ServiceError as exc:
                await self._reply_error(msg, exc.code, exc.description)
            except TimeoutError:
                log.warning("request handler timed out", extra={"subject": msg.subject})
                await self._reply_error(msg, 504, "handler timed out")
            except self._bad_request_errors as exc:
                await self._reply_error(msg, 400, str(exc) or type(exc).__name__)
            except Exception:  # a handler bug must not kill the responder
                log.exception("request handler failed", extra={"subject": msg.subject})
                await self._reply_error(msg, 500, "internal error")
            else:
                if isinstance(body, bytes | bytearray):
                    await self._reply(msg, bytes(body), None)
                else:
                    log.error("request handler returned non-bytes", extra={"subject": msg.subject})
                    await self._reply_error(msg, 500, "internal error")
        finally:
            self._slots.release()

    async def _reply_error(self, msg: Msg, code: int, description: str) -> None:
        log.info(
            "request answered with error",
            extra={"subject": msg.subject, "code": code, "description": description},
        )
        headers = {ERROR_HEADER: _one_line(description), ERROR_CODE_HEADER: str(code)}
        await self._reply(msg, b"", headers)

    async def _reply(self, msg: Msg, body: bytes, headers: dict[str, str] | None) -> None:
        try:
            await self._bus.client.publish(msg.reply, body, headers=headers)
        except nats.errors.Error as exc:
            log.warning("could not send reply", extra={"subject": msg.subject, "error": repr(exc)})


def _one_line(text: str, limit: int = 1024) -> str:
    """Header values cannot contain CR/LF; keep them short too."""
    return " ".join(text.split())[:limit]
