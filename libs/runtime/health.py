"""A small HTTP endpoint per service: `/healthz` (the process runs), `/readyz` (connected to
NATS and Kubernetes, consumers in place) and `/metrics` (Prometheus text format)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest

from libs.runtime import metrics

log = logging.getLogger(__name__)

ReadyCheck = Callable[[], tuple[bool, str]]


class HealthServer:
    def __init__(
        self,
        ready: ReadyCheck,
        *,
        host: str = "0.0.0.0",  # noqa: S104 - probes come from the kubelet, off-host
        port: int = 8080,
        registry: CollectorRegistry = REGISTRY,
    ) -> None:
        self.ready = ready
        self.host = host
        self.port = port
        self.registry = registry
        self._server: asyncio.Server | None = None
        if registry is REGISTRY:  # certlc_ready follows the readiness check, read at scrape
            metrics.READY.set_function(lambda: 1.0 if self.ready()[0] else 0.0)

    async def start(self) -> int:
        self._server = await asyncio.start_server(self._handle, self.host, self.port)
        self.port = self._server.sockets[0].getsockname()[1]
        return self.port

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            request = await asyncio.wait_for(reader.readline(), 5)
            while (await asyncio.wait_for(reader.readline(), 5)) not in (b"\r\n", b"\n", b""):
                pass
            parts = request.decode("latin-1").split()
            path = parts[1].split("?", 1)[0] if len(parts) >= 2 else ""
            status, ctype, body = self._route(path)
            head = (
                f"HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\n"
                f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
            )
            writer.write(head.encode() + body)
            await writer.drain()
        except (TimeoutError, ConnectionError) as exc:
            log.debug("health request dropped: %s", exc)
        finally:
            writer.close()

    def _route(self, path: str) -> tuple[str, str, bytes]:
        if path == "/healthz":
            return "200 OK", "text/plain", b"ok\n"
        if path == "/readyz":
            ok, why = self.ready()
            return (
                ("200 OK" if ok else "503 Service Unavailable"),
                "text/plain",
                (why + "\n").encode(),
            )
        if path == "/metrics":
            return "200 OK", CONTENT_TYPE_LATEST, generate_latest(self.registry)
        return "404 Not Found", "text/plain", b"not found\n"
