"""The rotate responder is a NATS service (services API, ADR-32): $SRV.PING, $SRV.INFO and
$SRV.STATS, for all services, by name and by id, answered by every instance; STATS counts
requests and errors. Responses are parsed with nats.micro's own types (from_dict)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress

import msgspec
import nats.errors
import pytest
from nats.micro.service import ServiceInfo, ServicePing, ServiceStats

from libs.bus import Bus, Discovery, Request, ServiceError, serve
from libs.contracts import subjects
from tests.integration.bus.helpers import wait_until

pytestmark = pytest.mark.usefixtures("no_task_leaks")

SUBJECT = subjects.API_ROTATE
DISCOVERY = Discovery(
    name=subjects.API_SERVICE,
    version="1.2.3",
    endpoint=subjects.API_ENDPOINT,
    description="rotate requests",
    metadata={"component": "lifecycle"},
)


async def handler(request: Request) -> bytes:
    if request.data == b"missing":
        raise ServiceError.not_found("no TenantControlPlane 'missing'")
    if request.data == b"bad":
        raise msgspec.DecodeError("not JSON")
    return b"ok"


@asynccontextmanager
async def instances(bus: Bus, count: int = 1) -> AsyncIterator[None]:
    stop = asyncio.Event()
    tasks = [
        asyncio.create_task(
            serve(
                bus,
                SUBJECT,
                handler,
                queue=subjects.API_QUEUE_GROUP,
                stop_event=stop,
                bad_request_errors=(msgspec.DecodeError,),
                discovery=DISCOVERY,
            )
        )
        for _ in range(count)
    ]

    async def all_answer() -> bool:
        return len(await gather(bus, "$SRV.PING.certlc", expect=count, within=0.5)) == count

    try:
        await wait_until(all_answer, what=f"{count} instances answering PING")
        yield
    finally:
        stop.set()
        await asyncio.wait_for(asyncio.gather(*tasks), timeout=10)


async def gather(
    bus: Bus, subject: str, expect: int = 1, within: float = 2.0
) -> list[dict[str, object]]:
    """The answers to one request on `subject`: as soon as `expect` have come, else all that
    came within `within` seconds (a scatter-gather, as `nats micro ls` does)."""
    inbox = bus.client.new_inbox()
    answers: list[dict[str, object]] = []
    done = asyncio.Event()

    async def collect(msg: object) -> None:
        answers.append(json.loads(msg.data))  # type: ignore[attr-defined]
        if len(answers) >= expect:
            done.set()

    sub = await bus.client.subscribe(inbox, cb=collect)
    await bus.client.publish(subject, b"", reply=inbox)
    await bus.flush()
    with suppress(TimeoutError):
        await asyncio.wait_for(done.wait(), within)
    await sub.unsubscribe()
    return answers


async def test_ping_by_all_name_and_id(bus: Bus) -> None:
    async with instances(bus):
        (everyone,) = await gather(bus, "$SRV.PING")
        ping = ServicePing.from_dict(everyone)
        assert everyone["type"] == "io.nats.micro.v1.ping_response"
        assert (ping.name, ping.version, ping.metadata) == ("certlc", "1.2.3", DISCOVERY.metadata)
        (by_name,) = await gather(bus, "$SRV.PING.certlc")
        (by_id,) = await gather(bus, f"$SRV.PING.certlc.{ping.id}")
        assert by_name == by_id == everyone
        assert await gather(bus, "$SRV.PING.other", within=0.5) == []


async def test_info_names_the_endpoint(bus: Bus) -> None:
    async with instances(bus):
        (document,) = await gather(bus, "$SRV.INFO.certlc")
        assert document["type"] == "io.nats.micro.v1.info_response"
        info = ServiceInfo.from_dict(document)
        assert info.description == "rotate requests"
        (endpoint,) = info.endpoints
        assert (endpoint.name, endpoint.subject, endpoint.queue_group) == (
            "rotate",
            "certlc.api.v1.rotate",
            "certlc-lifecycle",
        )


async def test_stats_count_requests_and_errors(bus: Bus) -> None:
    async with instances(bus):
        for payload in (b"tcp", b"tcp", b"missing", b"bad"):
            await bus.client.request(SUBJECT, payload, timeout=2)
        (document,) = await gather(bus, "$SRV.STATS.certlc")
        assert document["type"] == "io.nats.micro.v1.stats_response"
        stats = ServiceStats.from_dict(document)
        (endpoint,) = stats.endpoints
        assert endpoint.num_requests == 4
        assert endpoint.num_errors == 2
        assert endpoint.last_error == "400:not JSON"
        assert endpoint.processing_time > 0
        assert 0 < endpoint.average_processing_time <= endpoint.processing_time
        assert endpoint.subject == SUBJECT


async def test_every_instance_answers_and_requests_are_shared(bus: Bus) -> None:
    async with instances(bus, count=2):
        pings = await gather(bus, "$SRV.PING.certlc", expect=2)
        assert len({p["id"] for p in pings}) == 2
        for _ in range(6):
            await bus.client.request(SUBJECT, b"tcp", timeout=2)
        answers = await gather(bus, "$SRV.STATS.certlc", expect=2)
        stats = [ServiceStats.from_dict(d) for d in answers]
        assert sum(s.endpoints[0].num_requests for s in stats) == 6
    # once stopped, nobody answers
    with pytest.raises(nats.errors.NoRespondersError):
        await bus.client.request("$SRV.PING.certlc", b"", timeout=1)
