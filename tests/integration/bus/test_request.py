"""request: replies, service error headers, no responders, timeouts."""

from __future__ import annotations

import asyncio

import pytest

from libs.bus import Bus, Request, ServiceError, serve
from libs.bus.request import NoResponderError, RequestTimeoutError, request

pytestmark = pytest.mark.usefixtures("no_task_leaks")

SUBJECT = "test.api.echo"


async def handler(req: Request) -> bytes:
    if req.data == b"missing":
        raise ServiceError.not_found("no such thing\nreally")
    if req.data == b"slow":
        await asyncio.sleep(2)
    return b"echo:" + req.data


async def test_reply_and_error_headers(bus: Bus) -> None:
    stop = asyncio.Event()
    task = asyncio.create_task(serve(bus, SUBJECT, handler, queue="q", stop_event=stop))
    try:
        await asyncio.sleep(0.1)
        await bus.flush()
        ok = await request(bus, SUBJECT, b"hi")
        assert ok.ok
        assert ok.error_code is None
        assert ok.data == b"echo:hi"
        assert ok.error == ""
        failed = await request(bus, SUBJECT, b"missing")
        assert not failed.ok
        assert failed.error_code == 404
        assert failed.error == "no such thing really"
        assert failed.data == b""
        with pytest.raises(RequestTimeoutError):
            await request(bus, SUBJECT, b"slow", max_wait=0.3)
    finally:
        stop.set()
        await asyncio.wait_for(task, timeout=10)


async def test_no_responders(bus: Bus) -> None:
    with pytest.raises(NoResponderError, match="no responder"):
        await request(bus, "test.api.nobody", b"x", max_wait=2)
