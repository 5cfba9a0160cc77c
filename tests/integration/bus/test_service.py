"""serve: replies, NATS micro error headers, survival of bad input, queue-group sharing."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import msgspec
import pytest
from nats.aio.msg import Msg

from libs.bus import Bus, Request, ServiceError, serve
from libs.bus.service import ERROR_CODE_HEADER, ERROR_HEADER

pytestmark = pytest.mark.usefixtures("no_task_leaks")

SUBJECT = "certlc.api.status"


class StatusQuery(msgspec.Struct, forbid_unknown_fields=False):
    tcp: str


_decode = msgspec.json.Decoder(StatusQuery)


async def status(request: Request) -> bytes:
    query = _decode.decode(request.data)
    if query.tcp == "missing":
        raise ServiceError.not_found(f"no TenantControlPlane {query.tcp!r}")
    if query.tcp == "crash":
        raise RuntimeError("secret internal detail")
    return msgspec.json.encode({"tcp": query.tcp, "ready": True})


@asynccontextmanager
async def responder(
    bus: Bus, handler: Callable[[Request], object] = status, **options: object
) -> AsyncIterator[asyncio.Event]:
    stop = asyncio.Event()
    task = asyncio.create_task(
        serve(
            bus,
            SUBJECT,
            handler,  # type: ignore[arg-type]
            queue="certlc-api",
            stop_event=stop,
            bad_request_errors=(msgspec.DecodeError,),
            **options,  # type: ignore[arg-type]
        )
    )
    await asyncio.sleep(0.1)  # let the subscription reach the server
    await bus.flush()
    try:
        yield stop
    finally:
        stop.set()
        await asyncio.wait_for(task, timeout=10)


async def ask(bus: Bus, payload: bytes) -> Msg:
    return await bus.client.request(SUBJECT, payload, timeout=2)


async def test_replies_with_the_handler_result(bus: Bus) -> None:
    async with responder(bus):
        reply = await ask(bus, b'{"tcp": "tenant-a"}')
    assert msgspec.json.decode(reply.data) == {"tcp": "tenant-a", "ready": True}
    assert not reply.headers or ERROR_HEADER not in reply.headers


async def test_malformed_input_is_a_400_and_the_responder_keeps_working(bus: Bus) -> None:
    async with responder(bus):
        for garbage in (b"not json", b"", b'{"tcp": 42}', b"\xff\xfe"):
            reply = await ask(bus, garbage)
            assert reply.headers is not None
            assert reply.headers[ERROR_CODE_HEADER] == "400"
            assert reply.headers[ERROR_HEADER]
            assert reply.data == b""
        ok = await ask(bus, b'{"tcp": "tenant-b"}')
    assert msgspec.json.decode(ok.data)["tcp"] == "tenant-b"


async def test_service_error_keeps_its_code(bus: Bus) -> None:
    async with responder(bus):
        reply = await ask(bus, b'{"tcp": "missing"}')
    assert reply.headers is not None
    assert reply.headers[ERROR_CODE_HEADER] == "404"
    assert reply.headers[ERROR_HEADER] == "no TenantControlPlane 'missing'"


async def test_a_handler_bug_is_a_generic_500(bus: Bus) -> None:
    async with responder(bus):
        reply = await ask(bus, b'{"tcp": "crash"}')
        after = await ask(bus, b'{"tcp": "tenant-c"}')
    assert reply.headers is not None
    assert reply.headers[ERROR_CODE_HEADER] == "500"
    assert "secret" not in reply.headers[ERROR_HEADER]
    assert msgspec.json.decode(after.data)["tcp"] == "tenant-c"


async def test_a_slow_handler_is_a_504(bus: Bus) -> None:
    async def slow(request: Request) -> bytes:
        await asyncio.sleep(5)
        return b"late"

    async with responder(bus, slow, handler_timeout=0.2):
        reply = await ask(bus, b"{}")
    assert reply.headers is not None
    assert reply.headers[ERROR_CODE_HEADER] == "504"


async def test_replicas_in_a_queue_group_share_requests(bus: Bus) -> None:
    answered_by: list[str] = []

    def replica(name: str) -> Callable[[Request], object]:
        async def handler(request: Request) -> bytes:
            await asyncio.sleep(0.02)
            answered_by.append(name)
            return name.encode()

        return handler

    async with responder(bus, replica("r1")), responder(bus, replica("r2")):
        replies = await asyncio.gather(*(ask(bus, b"{}") for _ in range(30)))

    assert len(replies) == 30
    assert len(answered_by) == 30  # every request answered exactly once
    assert set(answered_by) == {"r1", "r2"}


async def test_stop_answers_requests_in_flight(bus: Bus) -> None:
    started = asyncio.Event()

    async def slowish(request: Request) -> bytes:
        started.set()
        await asyncio.sleep(0.5)
        return b"done"

    async with responder(bus, slowish) as stop:
        pending = asyncio.create_task(ask(bus, b"{}"))
        await started.wait()
        stop.set()
    reply = await pending
    assert reply.data == b"done"
