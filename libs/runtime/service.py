"""Process plumbing shared by the services: signals, the stop event, publishing helpers.

A service's `__main__` loads its settings, sets up logging, and hands an `async main(stop)` to
`run_service`, which sets `stop` on SIGINT/SIGTERM and returns the exit code.
"""

from __future__ import annotations

import asyncio
import importlib.metadata
import logging
import os
import signal
import sys
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

import msgspec

from libs.bus import Bus, Handler, connect, ensure_topology, publish, run_consumer
from libs.bus.auth import NatsAuthError, check_files
from libs.contracts import subjects
from libs.contracts.api import AuditEvent, audit_token
from libs.contracts.cloudevents import cloudevent_headers
from libs.contracts.codec import encode
from libs.kube.client import KubeClient
from libs.runtime import topology
from libs.runtime.config import Settings as Config
from libs.runtime.health import HealthServer
from libs.runtime.logs import setup_logging
from libs.runtime.settings import SettingsError, load_settings

log = logging.getLogger(__name__)
S = TypeVar("S", bound=msgspec.Struct)


def package_version() -> str:
    """certlc's version as installed (the image, an editable install); 0.0.0 when not installed."""
    try:
        return importlib.metadata.version("certlc")
    except importlib.metadata.PackageNotFoundError:
        return "0.0.0"


async def publish_audit(bus: Bus, event: AuditEvent, msg_id: str) -> None:
    """Publish one audit event on `certlc.audit.<ns>.<tcp>.<event>`, de-duplicated by id, and
    a CloudEvent in binary mode (`libs.contracts.cloudevents`: `ce-id` is the message id)."""
    subject = subjects.audit(event.namespace, event.tcp, audit_token(event))
    full_id = f"audit:{audit_token(event)}:{msg_id}"
    headers = cloudevent_headers(event, msg_id=full_id, service=bus.name)
    await publish(bus, subject, encode(event), msg_id=full_id, headers=headers)


@dataclass(frozen=True, slots=True)
class ExtraConsumer:
    """A further durable consumer a consumer service runs beside its main one."""

    stream: str
    durable: str
    make_handler: Callable[[Bus, KubeClient], Handler]


def run_service(
    name: str,
    settings_cls: type[S],
    main: Callable[[S, asyncio.Event], Awaitable[None]],
    *,
    shared: frozenset[str] = frozenset(),
) -> int:
    """Load settings, log JSON, run `main` until SIGINT/SIGTERM; 2 on bad settings.

    The NATS authentication of the settings is checked here (its files read once), so a missing
    or unusable credentials file stops the service at start with a message naming it."""
    try:
        settings = load_settings(settings_cls, os.environ, shared=shared)
        if isinstance(settings, Config):
            check_files(settings.nats_auth())
    except (SettingsError, NatsAuthError) as exc:
        print(f"{name}: {exc}", file=sys.stderr)
        return 2
    setup_logging(name, getattr(settings, "log_level", "info"))

    async def runner() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await main(settings, stop)

    try:
        asyncio.run(runner())
    except Exception:
        log.exception("%s stopped on an error", name)
        return 1
    log.info("%s stopped", name)
    return 0


async def run_consumer_service(
    name: str,
    settings: Config,
    stop: asyncio.Event,
    *,
    stream: str,
    durable: str,
    make_handler: Callable[[Bus, KubeClient], Handler],
    extra: Sequence[ExtraConsumer] = (),
) -> None:
    """The body of a service that consumes a durable with a Kubernetes client (issuer,
    rollout): connect, ensure its part of the topology (`topology.for_service(name)`, which
    must own every consumer consumed here), serve health, consume until `stop`.

    `extra` consumers run concurrently on the same connection and client; one that fails
    stops the others, and the service with them."""
    own_streams, own_consumers = topology.for_service(name, settings.stream_replicas)
    owned = {(spec.stream, spec.durable) for spec in own_consumers}
    consumed = {(stream, durable), *((e.stream, e.durable) for e in extra)}
    if not consumed <= owned:
        raise ValueError(f"{name} consumes {sorted(consumed - owned)}, not in its topology")
    kube = KubeClient.from_kubeconfig(settings.kubeconfig or None)
    bus = await connect(settings.nats_url, name=f"certlc-{name}", auth=settings.nats_auth())
    try:
        await ensure_topology(bus, own_streams, own_consumers)
        handler = make_handler(bus, kube)
        health = HealthServer(lambda: (bus.is_connected, "nats"), port=settings.health_port)
        if settings.health_port >= 0:
            await health.start()
        consumers = [(stream, durable, handler)]
        consumers.extend((e.stream, e.durable, e.make_handler(bus, kube)) for e in extra)
        log.info("%s running", name)
        async with asyncio.TaskGroup() as group:
            for consumer_stream, consumer_durable, consumer_handler in consumers:
                group.create_task(
                    run_consumer(
                        bus,
                        consumer_stream,
                        consumer_durable,
                        consumer_handler,
                        stop_event=stop,
                        max_concurrency=settings.max_concurrency,
                    )
                )
        await health.stop()
    finally:
        await bus.close()
        kube.close()
