"""The NATS configuration of deploy/ on a real nats-server: each certlc service, logged in as its
own user, does all it does in production (ensure the topology, publish, follow, consume, ack,
answer the API), and is refused what belongs to the others.

The server runs the nats.conf/auth.conf rendered from deploy/overlays/default, with only the
host-specific paths redirected to a temporary directory (store_dir, pid_file) and the monitor
port off; the client port comes from the command line.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import nats
import nats.errors
import pytest
import pytest_asyncio
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js.api import DeliverPolicy

from certlc_dev.devenv import NatsServer
from libs.bus import (
    Bus,
    Delivery,
    Discovery,
    Outcome,
    connect,
    ensure_topology,
    publish,
    run_consumer,
    serve,
)
from libs.bus.delivery import Request
from libs.bus.replay import follow_stream
from libs.contracts import subjects
from libs.runtime import topology
from tests.deploy.expected import create_subject
from tests.deploy.natsserver import USERS, deployed_server, password, server_password, url

pytestmark = pytest.mark.timeout(120)

SERVICES = topology.SERVICES
TCP = ("tenant-a", "k8s-126")


@pytest_asyncio.fixture
async def buses(server: NatsServer) -> AsyncIterator[dict[str, Bus]]:
    opened: dict[str, Bus] = {}
    try:
        for user in USERS:
            opened[user] = await connect(url(server, user), name=f"test-{user}", connect_deadline=5)
        yield opened
    finally:
        for bus in opened.values():
            await bus.close()


class Violations:
    """A raw client that records the server's permission violations."""

    def __init__(self) -> None:
        self.errors: list[str] = []
        self.client = Client()

    async def on_error(self, exc: Exception) -> None:
        self.errors.append(str(exc))

    async def settle(self) -> list[str]:
        await self.client.flush(timeout=5)
        await asyncio.sleep(0.05)  # the error callback runs as its own task
        found, self.errors = self.errors, []
        return [e for e in found if "permissions violation" in e.lower()]


@contextlib.asynccontextmanager
async def raw(server: NatsServer, user: str) -> AsyncIterator[Violations]:
    violations = Violations()
    await violations.client.connect(
        url(server, user), error_cb=violations.on_error, allow_reconnect=False
    )
    try:
        yield violations
    finally:
        await violations.client.close()


async def eventually(check: Callable[[], Awaitable[bool]], within: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + within
    while not await check():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"{check.__name__}: not true within {within}s")
        await asyncio.sleep(0.05)


async def login(server: NatsServer, user: str, secret: str) -> bytes:
    """The server's answer to a CONNECT with these credentials (the raw protocol)."""
    reader, writer = await asyncio.open_connection(server.host, server.port)
    try:
        info = await reader.readline()
        assert info.startswith(b"INFO ")
        connect = json.dumps({"user": user, "pass": secret, "verbose": False, "protocol": 1})
        writer.write(f"CONNECT {connect}\r\nPING\r\n".encode())
        await writer.drain()
        return await asyncio.wait_for(reader.readline(), 5)
    finally:
        writer.close()
        await writer.wait_closed()


async def test_only_the_right_password_logs_in(server: NatsServer) -> None:
    assert await login(server, "certlc-watcher", password("watcher")) == b"PONG\r\n"
    refused = await login(server, "certlc-watcher", password("issuer"))
    assert refused.startswith(b"-ERR 'Authorization Violation'")
    assert (await login(server, "nobody", "")).startswith(b"-ERR 'Authorization Violation'")


def own_keys(service: str) -> set[str]:
    """The keys of the `ensure_topology` report of the service's own topology."""
    streams, consumers = topology.for_service(service)
    return {f"stream:{s.name}" for s in streams} | {
        f"consumer:{c.stream}/{c.durable}" for c in consumers
    }


async def test_every_service_user_ensures_its_own_topology(buses: dict[str, Bus]) -> None:
    for user in SERVICES:
        report = await ensure_topology(buses[user], *topology.for_service(user), retry_for=5)
        assert set(report.outcomes) == own_keys(user)
    # ... and each reads back what it ensured: together, the whole topology.
    for user in SERVICES:
        streams, consumers = topology.for_service(user)
        for stream in streams:
            info = await buses[user].js.stream_info(stream.name)
            assert info.config.subjects == list(stream.subjects)
        for consumer in consumers:
            found = await buses[user].js.consumer_info(consumer.stream, consumer.durable)
            assert found.config.filter_subject == consumer.filter_subject


async def test_the_server_holds_only_bcrypt_hashes(server: NatsServer) -> None:
    """The server is given hashes (no plaintext-password warning); each user logs in with its
    password, and the hash itself is no password."""
    assert "Plaintext passwords detected" not in server.log_text()
    for user in USERS:
        assert await login(server, f"certlc-{user}", password(user)) == b"PONG\r\n"
    hashed = server_password(password("watcher")).strip('"')
    assert hashed.startswith("$2b$11$")
    refused = await login(server, "certlc-watcher", hashed)
    assert refused.startswith(b"-ERR 'Authorization Violation'")


@pytest.mark.parametrize("service", SERVICES)
async def test_each_service_starts_first_on_an_empty_server(tmp_path: Path, service: str) -> None:
    """Any start order: alone, a service creates every stream and consumer it needs."""
    with deployed_server(tmp_path) as fresh:
        bus = await connect(url(fresh, service), name=f"test-{service}", connect_deadline=5)
        try:
            report = await ensure_topology(bus, *topology.for_service(service), retry_for=5)
            assert report.outcomes == dict.fromkeys(own_keys(service), Outcome.CREATED)
            again = await ensure_topology(bus, *topology.for_service(service), retry_for=5)
            assert set(again.outcomes.values()) == {Outcome.UNCHANGED}
        finally:
            await bus.close()


@pytest.mark.parametrize("service", SERVICES)
async def test_a_service_cannot_ensure_what_it_does_not_own(
    server: NatsServer, service: str
) -> None:
    """Its user is refused reading, creating and updating every other stream and consumer."""
    streams, consumers = topology.for_service(service)
    others = [s for s in topology.streams(1) if s not in streams]
    foreign = [c for c in topology.CONSUMERS if c not in consumers]
    async with raw(server, service) as violations:
        for stream in others:
            for op in ("INFO", "CREATE", "UPDATE"):
                subject = f"$JS.API.STREAM.{op}.{stream.name}"
                errors = await attempt(violations, "pub", subject)
                assert errors, f"certlc-{service} may publish {subject}, it must not"
        for consumer in foreign:
            for subject in (
                create_subject(consumer),
                f"$JS.API.CONSUMER.INFO.{consumer.stream}.{consumer.durable}",
                f"$JS.API.CONSUMER.DURABLE.CREATE.{consumer.stream}.{consumer.durable}",
            ):
                errors = await attempt(violations, "pub", subject)
                assert errors, f"certlc-{service} may publish {subject}, it must not"
    # And through the library: the request gets no answer, ensure_topology gives up.
    if others:
        bus = await connect(url(server, service), name=f"test-{service}", connect_deadline=5)
        try:
            with pytest.raises(nats.errors.TimeoutError):
                await ensure_topology(bus, others[:1], retry_for=1)
        finally:
            await bus.close()


async def test_the_pipeline_runs_with_one_user_per_service(buses: dict[str, Bus]) -> None:
    """watcher -> lifecycle -> issuer -> rollout -> audit, and the rotate API from outside."""
    ns, tcp = TCP
    for user in SERVICES:
        await ensure_topology(buses[user], *topology.for_service(user), retry_for=5)
    stop = asyncio.Event()

    # watcher: a fact on the events stream.
    event_subject = subjects.tcp_event(ns, tcp)
    await publish(buses["watcher"], event_subject, b"tcp-fact", msg_id="fact-1", retry_for=5)

    # lifecycle: follows the events stream (ordered consumer) and answers the API.
    followed: list[str] = []

    async def on_event(subject: str, data: bytes, seq: int) -> None:
        followed.append(subject)

    caught_up = asyncio.Event()

    async def answer(request: Request) -> bytes:
        return b"accepted:" + request.data

    tasks = [
        asyncio.create_task(
            follow_stream(
                buses["lifecycle"],
                subjects.EVENTS_STREAM,
                subjects.EVENTS_SUBJECTS,
                on_event,
                stop_event=stop,
                caught_up=caught_up,
            )
        ),
        asyncio.create_task(
            serve(
                buses["lifecycle"],
                subjects.API_ROTATE,
                answer,
                queue=subjects.API_QUEUE_GROUP,
                stop_event=stop,
            )
        ),
    ]
    try:
        await asyncio.wait_for(caught_up.wait(), 10)
        assert event_subject in followed

        # external: the rotate API (request/reply through the lifecycle's allow_responses).
        async def api_answers() -> bool:
            try:
                reply = await buses["external"].client.request(
                    subjects.API_ROTATE, b"please", timeout=1
                )
            except (nats.errors.TimeoutError, nats.errors.NoRespondersError):
                return False
            assert reply.data == b"accepted:please"
            return True

        await eventually(api_answers)

        # lifecycle -> issuer -> rollout, each acking on its own durable consumer.
        await publish(
            buses["lifecycle"], subjects.rotate(ns, tcp), b"rotate", msg_id="rot-1", retry_for=5
        )
        handled: dict[str, list[str]] = {"issuer": [], "rollout": []}

        async def issuer(delivery: Delivery) -> None:
            handled["issuer"].append(delivery.subject)
            await delivery.in_progress()
            await publish(buses["issuer"], subjects.issued(ns, tcp), b"written", msg_id="iss-1")
            await publish(buses["issuer"], subjects.audit(ns, tcp, "issued"), b"a1", msg_id="aud-1")

        async def rollout(delivery: Delivery) -> None:
            handled["rollout"].append(delivery.subject)
            await publish(
                buses["rollout"], subjects.audit(ns, tcp, "rolled-out"), b"a2", msg_id="aud-2"
            )

        for user, stream, durable, handler in (
            ("issuer", subjects.ROTATE_STREAM, subjects.ISSUER_DURABLE, issuer),
            ("rollout", subjects.ISSUED_STREAM, subjects.ROLLOUT_DURABLE, rollout),
        ):
            tasks.append(
                asyncio.create_task(
                    run_consumer(
                        buses[user], stream, durable, handler, stop_event=stop, fetch_timeout=0.5
                    )
                )
            )

        async def work_queues_drained() -> bool:
            if not (handled["issuer"] and handled["rollout"]):
                return False
            for stream in (subjects.ROTATE_STREAM, subjects.ISSUED_STREAM):
                info = await buses["issuer"].js.stream_info(stream)
                if info.state.messages:  # acked work-queue messages are removed
                    return False
            return True

        await eventually(work_queues_drained)
        assert handled == {
            "issuer": [subjects.rotate(ns, tcp)],
            "rollout": [subjects.issued(ns, tcp)],
        }

        # external: reads the audit stream with its own ordered consumer.
        seen: list[str] = []

        async def on_audit(msg: Msg) -> None:
            seen.append(msg.subject)

        sub = await buses["external"].js.subscribe(
            subjects.AUDIT_SUBJECTS,
            stream=subjects.AUDIT_STREAM,
            ordered_consumer=True,
            deliver_policy=DeliverPolicy.ALL,
            cb=on_audit,
        )

        async def audit_read() -> bool:
            return len(seen) >= 2

        await eventually(audit_read)
        # as the certlc CLI does (libs/bus/read.py): look at the consumer, then just stop
        # listening; the server removes it (deleting it is not allowed)
        info = await sub.consumer_info()
        assert info.config.durable_name is None
        await sub.unsubscribe()
        # (the issuer's audit may land after the rollout's: two publishers, no order between)
        assert sorted(seen) == sorted(
            [subjects.audit(ns, tcp, "issued"), subjects.audit(ns, tcp, "rolled-out")]
        )
    finally:
        stop.set()
        await asyncio.gather(*tasks, return_exceptions=True)


# (user, action, subject): what each user must be refused. Publishing into another service's
# stream, consuming another service's queue, deleting or purging anything.
FAILURES = topology.ROLLOUT_FAILURES_CONSUMER
REFUSED: list[tuple[str, str, str]] = [
    ("watcher", "pub", subjects.rotate(*TCP)),
    ("watcher", "pub", subjects.audit(*TCP, "x")),
    ("watcher", "pub", subjects.API_ROTATE),
    ("watcher", "sub", subjects.EVENTS_SUBJECTS),
    ("watcher", "pub", f"$JS.API.STREAM.DELETE.{subjects.EVENTS_STREAM}"),
    ("lifecycle", "pub", subjects.tcp_event(*TCP)),
    ("lifecycle", "pub", subjects.issued(*TCP)),
    ("lifecycle", "pub", f"$JS.API.CONSUMER.MSG.NEXT.{subjects.ROTATE_STREAM}.issuer"),
    ("lifecycle", "pub", f"$JS.API.STREAM.PURGE.{subjects.EVENTS_STREAM}"),
    ("lifecycle", "sub", subjects.API_ROTATE),  # only in its queue group
    ("lifecycle", "sub", subjects.API_SCHEDULE),  # likewise
    ("issuer", "pub", subjects.rotate(*TCP)),
    ("issuer", "pub", subjects.tcp_event(*TCP)),
    ("issuer", "pub", f"$JS.API.CONSUMER.MSG.NEXT.{subjects.ISSUED_STREAM}.rollout"),
    ("issuer", "pub", f"$JS.API.CONSUMER.DELETE.{subjects.ROTATE_STREAM}.issuer"),
    ("rollout", "pub", subjects.issued(*TCP)),
    ("rollout", "pub", subjects.rotate(*TCP)),
    ("rollout", "pub", f"$JS.API.CONSUMER.MSG.NEXT.{subjects.ROTATE_STREAM}.issuer"),
    ("rollout", "pub", f"$JS.API.STREAM.DELETE.{subjects.ISSUED_STREAM}"),
    ("external", "pub", subjects.tcp_event(*TCP)),
    ("external", "pub", subjects.rotate(*TCP)),
    ("external", "pub", subjects.issued(*TCP)),
    ("external", "pub", subjects.audit(*TCP, "forged")),
    ("external", "pub", f"$JS.API.STREAM.CREATE.{subjects.AUDIT_STREAM}"),
    ("external", "pub", f"$JS.API.STREAM.DELETE.{subjects.AUDIT_STREAM}"),
    ("external", "pub", f"$JS.API.STREAM.PURGE.{subjects.AUDIT_STREAM}"),
    ("external", "pub", f"$JS.API.CONSUMER.CREATE.{subjects.EVENTS_STREAM}"),
    ("external", "pub", f"$JS.API.CONSUMER.MSG.NEXT.{subjects.ROTATE_STREAM}.issuer"),
    ("external", "sub", subjects.ROTATE_SUBJECTS),
    ("external", "sub", subjects.API_ROTATE),
    ("external", "sub", subjects.API_SCHEDULE),
    # certlc's durable consumer on the audit stream: not deleted, fetched from, acknowledged on,
    # created or changed by tooling (nor any consumer deleted: its own ones expire)
    ("external", "pub", f"$JS.API.CONSUMER.DELETE.{FAILURES.stream}.{FAILURES.durable}"),
    ("external", "pub", f"$JS.API.CONSUMER.MSG.NEXT.{FAILURES.stream}.{FAILURES.durable}"),
    ("external", "pub", f"$JS.ACK.{FAILURES.stream}.{FAILURES.durable}.1.1.1.1.1"),
    ("external", "pub", create_subject(FAILURES)),
    ("external", "pub", f"$JS.API.CONSUMER.CREATE.{FAILURES.stream}.{FAILURES.durable}"),
    ("external", "pub", f"$JS.API.CONSUMER.DURABLE.CREATE.{FAILURES.stream}.{FAILURES.durable}"),
    ("external", "pub", f"$JS.API.CONSUMER.DELETE.{subjects.AUDIT_STREAM}.any"),
    ("external", "pub", f"$JS.API.CONSUMER.MSG.NEXT.{subjects.AUDIT_STREAM}.any"),
    ("external", "pub", f"$JS.API.STREAM.MSG.GET.{subjects.AUDIT_STREAM}"),
    ("external", "pub", f"$JS.API.STREAM.UPDATE.{subjects.AUDIT_STREAM}"),
    # the examples of least privilege on the topology (every case: test_a_service_cannot_...)
    ("watcher", "pub", f"$JS.API.STREAM.CREATE.{subjects.ROTATE_STREAM}"),
    ("watcher", "pub", create_subject(topology.ISSUER_CONSUMER)),
    ("issuer", "pub", create_subject(topology.ROLLOUT_CONSUMER)),
    ("issuer", "pub", create_subject(FAILURES)),
    ("lifecycle", "pub", f"$JS.API.STREAM.UPDATE.{subjects.ISSUED_STREAM}"),
]

# And what each may do, as plain publishes and subscriptions (no JetStream involved).
ALLOWED: list[tuple[str, str, str]] = [
    ("watcher", "pub", subjects.secret_event("ns", "tcp", "tcp-ca")),
    ("watcher", "pub", subjects.WATCHER_SYNCED),
    ("lifecycle", "pub", subjects.rotate(*TCP)),
    ("lifecycle", "pub", subjects.audit(*TCP, "x")),
    ("lifecycle", "queue", subjects.API_ROTATE),
    ("lifecycle", "queue", subjects.API_SCHEDULE),
    ("issuer", "pub", subjects.issued(*TCP)),
    ("issuer", "pub", subjects.audit(*TCP, "x")),
    ("rollout", "pub", subjects.audit(*TCP, "x")),
    ("external", "pub", subjects.API_ROTATE),
    ("external", "pub", subjects.API_SCHEDULE),
    ("external", "sub", subjects.AUDIT_SUBJECTS),
    ("external", "sub", subjects.audit_filter("ns")),
    ("external", "pub", f"$JS.API.STREAM.INFO.{subjects.AUDIT_STREAM}"),
    ("external", "pub", f"$JS.API.CONSUMER.CREATE.{subjects.AUDIT_STREAM}"),
]


async def attempt(violations: Violations, action: str, subject: str) -> list[str]:
    client = violations.client
    if action == "pub":
        await client.publish(subject, b"")
    elif action == "queue":
        await client.subscribe(subject, queue=subjects.API_QUEUE_GROUP)
    else:
        await client.subscribe(subject)
    return await violations.settle()


@pytest.mark.parametrize(("user", "action", "subject"), REFUSED)
async def test_refused(server: NatsServer, user: str, action: str, subject: str) -> None:
    async with raw(server, user) as violations:
        errors = await attempt(violations, action, subject)
    assert errors, f"certlc-{user} may {action} {subject}, it must not"


@pytest.mark.parametrize(("user", "action", "subject"), ALLOWED)
async def test_allowed(server: NatsServer, user: str, action: str, subject: str) -> None:
    async with raw(server, user) as violations:
        errors = await attempt(violations, action, subject)
    assert not errors, f"certlc-{user} must be allowed to {action} {subject}: {errors}"


async def test_tooling_discovers_the_rotate_service(buses: dict[str, Bus]) -> None:
    """With deploy/'s permissions: the lifecycle answers $SRV.PING, $SRV.INFO and $SRV.STATS
    (all, by name, by id) and `certlc-external` may ask; no permission violation either side."""
    stop = asyncio.Event()

    async def answer(request: Request) -> bytes:
        return b"ok"

    task = asyncio.create_task(
        serve(
            buses["lifecycle"],
            subjects.API_ROTATE,
            answer,
            queue=subjects.API_QUEUE_GROUP,
            stop_event=stop,
            discovery=Discovery(
                name=subjects.API_SERVICE, version="0.1.0", endpoint=subjects.API_ENDPOINT
            ),
        )
    )
    external = buses["external"].client
    try:

        async def answers() -> bool:
            try:
                await external.request("$SRV.PING.certlc", b"", timeout=1)
            except (nats.errors.TimeoutError, nats.errors.NoRespondersError):
                return False
            return True

        await eventually(answers)
        ping = json.loads((await external.request("$SRV.PING", b"", timeout=2)).data)
        assert ping["name"] == subjects.API_SERVICE
        for verb in ("PING", "INFO", "STATS"):
            for subject in (
                f"$SRV.{verb}",
                f"$SRV.{verb}.certlc",
                f"$SRV.{verb}.certlc.{ping['id']}",
            ):
                reply = json.loads((await external.request(subject, b"", timeout=2)).data)
                assert reply["type"] == f"io.nats.micro.v1.{verb.lower()}_response", subject
                assert reply["id"] == ping["id"]
        await external.request(subjects.API_ROTATE, b"x", timeout=2)
        stats = json.loads((await external.request("$SRV.STATS.certlc", b"", timeout=2)).data)
        assert stats["endpoints"][0]["num_requests"] == 1
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)
