"""Launch a small nats-server cluster with JetStream, for replicated (R3) streams.

A JetStream cluster refuses to start without configured routes, so every member must know every
route port before any of them starts. Client ports stay random (`-p -1`, read from the log);
route ports are picked free by the OS just before start, and the whole start is retried with new
ports if another process grabbed one in between. The cluster is ready when every member answers
a JetStream request (account info), which it does only once it knows a metadata leader: asked,
not read from a log line, which a loaded machine may write late or a log rotation may miss.
"""

from __future__ import annotations

import shutil
import socket
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import Self

from certlc_dev.devenv.nats_server import NatsServer, NatsServerError

_POLL_INTERVAL = 0.2


def free_tcp_ports(count: int, host: str = "127.0.0.1") -> list[int]:
    """Ports that were free a moment ago (all bound at once, so they are distinct)."""
    sockets = [socket.socket(socket.AF_INET, socket.SOCK_STREAM) for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind((host, 0))
        return [int(sock.getsockname()[1]) for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


class NatsCluster:
    """`size` clustered nats-servers named n1..nN, each with its own store under one directory."""

    def __init__(
        self,
        size: int = 3,
        *,
        name: str = "certlc",
        host: str = "127.0.0.1",
        startup_timeout: float = 30.0,
        attempts: int = 3,
    ) -> None:
        if size < 1:
            raise ValueError(f"cluster size must be at least 1, got {size}")
        self.name = name
        self._size = size
        self._host = host
        self._startup_timeout = startup_timeout
        self._attempts = attempts
        self._base_dir = Path(tempfile.mkdtemp(prefix="nats-cluster-"))
        self.servers: list[NatsServer] = []

    @property
    def urls(self) -> list[str]:
        """Client URLs of all members (give them all to the client for failover)."""
        return [server.url for server in self.servers]

    def start(self) -> Self:
        for attempt in range(1, self._attempts + 1):
            try:
                self._start_once()
            except NatsServerError:
                # A route port taken by another process between the pick and the start shows as
                # "address already in use", or as a member that never hears of a leader: both
                # are cured by a fresh start on new ports.
                self.stop()
                if attempt == self._attempts:
                    raise
                for store in self._base_dir.iterdir():  # no half-formed cluster state carried over
                    shutil.rmtree(store, ignore_errors=True)
            else:
                return self
        raise AssertionError("unreachable: the loop returns or raises")

    def _start_once(self) -> None:
        ports = free_tcp_ports(self._size, self._host)
        routes = [f"nats://{self._host}:{port}" for port in ports]
        self.servers = [
            NatsServer(
                self._base_dir / f"n{index}",
                host=self._host,
                server_name=f"n{index}",
                cluster_name=self.name,
                cluster_port=port,
                routes=routes,
                startup_timeout=self._startup_timeout,
            )
            for index, port in enumerate(ports, start=1)
        ]
        for server in self.servers:
            server.start()
        for server in self.servers:
            self.wait_for_meta_leader(server)

    def wait_for_meta_leader(self, server: NatsServer) -> None:
        """Block until `server` answers JetStream requests, so knows a metadata leader (after
        start or restart); NatsServerError naming the member and its last answer if not."""
        deadline = time.monotonic() + self._startup_timeout
        while (answer := server.jetstream_answer()) is not None:
            if not server.is_running:
                raise NatsServerError(f"{server!r} exited while joining the cluster")
            if time.monotonic() >= deadline:
                raise NatsServerError(
                    f"{server!r}: JetStream not answering after {self._startup_timeout}s "
                    f"(no metadata leader?); last: {answer}"
                )
            time.sleep(_POLL_INTERVAL)

    def stop(self) -> None:
        for server in self.servers:
            server.cleanup()

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self._base_dir, ignore_errors=True)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.cleanup()
