"""Launch a real `nats-server` process for tests and the local demo.

Why a real server: redelivery, nak delays, de-duplication and reconnects are only trustworthy
against the real thing, so tests never mock NATS. The server always binds a random client port
(`-p -1`); the port is read from the server log, never guessed. `restart()` reuses the same port
and store directory so clients reconnect and JetStream state (streams, consumers, acks) survives.

Readiness means: the log says "Server is ready" and a TCP connect receives the protocol `INFO`
line (with `"jetstream": true` when JetStream is on). No NATS client library is needed here.
The API is synchronous (it manages an OS process); from async code call it through
`asyncio.to_thread` so the event loop keeps serving clients while the server restarts.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import IO, Self

NATS_SERVER_BIN_ENV = "NATS_SERVER_BIN"
_FALLBACK_BINARY = "/usr/sbin/nats-server"
_CLIENT_LISTEN_RE = re.compile(r"Listening for client connections on ([0-9.]+):(\d+)")
_READY_MARKER = "Server is ready"
_POLL_INTERVAL = 0.02


class NatsServerError(RuntimeError):
    """The nats-server process could not be found, started or stopped as asked."""


class NatsServerNotFoundError(NatsServerError):
    """No nats-server binary: set NATS_SERVER_BIN, put it on PATH, or install it."""


def find_nats_server_binary() -> str:
    """Return the nats-server path from $NATS_SERVER_BIN, then PATH, then /usr/sbin."""
    configured = os.environ.get(NATS_SERVER_BIN_ENV)
    if configured:
        if Path(configured).is_file() and os.access(configured, os.X_OK):
            return configured
        raise NatsServerNotFoundError(
            f"{NATS_SERVER_BIN_ENV}={configured!r} is not an executable file"
        )
    on_path = shutil.which("nats-server")
    if on_path:
        return on_path
    if os.access(_FALLBACK_BINARY, os.X_OK):
        return _FALLBACK_BINARY
    raise NatsServerNotFoundError(
        "nats-server not found: set NATS_SERVER_BIN, add it to PATH, "
        "or install it (Debian: apt-get install nats-server)"
    )


class NatsServer:
    """One nats-server process with JetStream, on 127.0.0.1 and a random (then sticky) port.

    `store_dir` (and `log_path`) default to a fresh temporary directory that `cleanup()`
    removes; caller-given paths are never deleted (the demo keeps its JetStream state).
    Cluster mode: pass `cluster_port` (a real port: a JetStream cluster needs every route known
    up front, see `NatsCluster`), `cluster_name`, `routes` and `server_name`.
    """

    def __init__(
        self,
        store_dir: str | Path | None = None,
        *,
        port: int | None = None,
        host: str = "127.0.0.1",
        jetstream: bool = True,
        server_name: str | None = None,
        cluster_name: str | None = None,
        cluster_port: int | None = None,
        routes: Sequence[str] = (),
        extra_args: Sequence[str] = (),
        binary: str | None = None,
        log_path: str | Path | None = None,
        startup_timeout: float = 10.0,
        stop_timeout: float = 10.0,
    ) -> None:
        # Resolve the binary first: a missing nats-server fails before anything is created.
        self._binary = binary or find_nats_server_binary()
        self._workdir = Path(tempfile.mkdtemp(prefix="nats-server-"))
        self.store_dir = Path(store_dir) if store_dir is not None else self._workdir / "store"
        self.log_path = (
            Path(log_path) if log_path is not None else self._workdir / "nats-server.log"
        )
        self.host = host
        self._port = port
        self._jetstream = jetstream
        self.server_name = server_name
        self._cluster_name = cluster_name
        self.cluster_port = cluster_port
        self._routes = tuple(routes)
        self._extra_args = tuple(extra_args)
        self._startup_timeout = startup_timeout
        self._stop_timeout = stop_timeout
        self._process: subprocess.Popen[bytes] | None = None
        self._log_file: IO[bytes] | None = None
        self._log_offset = 0

    # -- properties -------------------------------------------------------------------------

    @property
    def port(self) -> int:
        """The client port, known once the server has started (sticky across restarts)."""
        if self._port is None:
            raise NatsServerError("nats-server has not been started yet: no port")
        return self._port

    @property
    def url(self) -> str:
        return f"nats://{self.host}:{self.port}"

    @property
    def route_url(self) -> str:
        if self.cluster_port is None:
            raise NatsServerError("nats-server is not clustered: no route URL")
        return f"nats://{self.host}:{self.cluster_port}"

    @property
    def pid(self) -> int | None:
        return self._process.pid if self.is_running and self._process else None

    @property
    def is_running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def log_text(self, *, since_start: bool = False) -> str:
        """The server log (all of it, or only what the current process wrote)."""
        if not self.log_path.exists():
            return ""
        with self.log_path.open("rb") as fh:
            if since_start:
                fh.seek(self._log_offset)
            return fh.read().decode("utf-8", errors="replace")

    # -- lifecycle --------------------------------------------------------------------------

    def start(self) -> Self:
        """Start the process and block until it accepts clients (and JetStream is up)."""
        if self.is_running:
            raise NatsServerError(f"nats-server already running (pid {self.pid})")
        self.store_dir.mkdir(parents=True, exist_ok=True)
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log_offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        self._log_file = self.log_path.open("ab")
        self._process = subprocess.Popen(  # noqa: S603 - argv list, binary resolved above
            [self._binary, *self._arguments()],
            stdin=subprocess.DEVNULL,
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
        )
        try:
            self._wait_until_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self, timeout: float | None = None) -> int | None:
        """SIGTERM, wait up to `timeout` (default: stop_timeout), then SIGKILL. Idempotent.

        Returns the exit code (None if nothing was running); nats-server exits with 1 after a
        graceful SIGTERM shutdown, -9 means it had to be killed.
        """
        process, self._process = self._process, None
        code: int | None = None
        if process is not None:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
                try:
                    process.wait(timeout=self._stop_timeout if timeout is None else timeout)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
            code = process.returncode
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None
        return code

    def kill(self) -> None:
        """SIGKILL the server (a crash, no graceful shutdown); `start()` brings it back."""
        if self._process is not None and self._process.poll() is None:
            self._process.kill()
        self.stop(timeout=self._stop_timeout)

    def restart(self) -> Self:
        """Stop, then start on the same port and store directory: JetStream state survives."""
        self.stop()
        return self.start()

    def cleanup(self) -> None:
        """Stop the server and delete its log and, if we created it, its store directory."""
        self.stop()
        # The work directory holds the log and, only when we created it, the store.
        shutil.rmtree(self._workdir, ignore_errors=True)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.cleanup()

    def __repr__(self) -> str:
        state = f"pid={self.pid}" if self.is_running else "stopped"
        return f"NatsServer({self.host}:{self._port}, {state}, store={self.store_dir})"

    # -- internals --------------------------------------------------------------------------

    def _arguments(self) -> list[str]:
        port = -1 if self._port is None else self._port
        args = ["-a", self.host, "-p", str(port)]
        if self._jetstream:
            args += ["-js", "-sd", str(self.store_dir)]
        if self.server_name:
            args += ["-n", self.server_name]
        if self.cluster_port is not None:
            args += ["--cluster", f"nats://{self.host}:{self.cluster_port}"]
            if self._cluster_name:
                args += ["--cluster_name", self._cluster_name]
            if self._routes:
                args += ["--routes", ",".join(self._routes)]
        return args + list(self._extra_args)

    def _wait_until_ready(self) -> None:
        deadline = time.monotonic() + self._startup_timeout
        while time.monotonic() < deadline:
            assert self._process is not None
            if self._process.poll() is not None:
                raise NatsServerError(
                    f"nats-server exited with code {self._process.returncode} during startup; "
                    f"log tail:\n{self._log_tail()}"
                )
            log = self.log_text(since_start=True)
            match = _CLIENT_LISTEN_RE.search(log)
            if match and _READY_MARKER in log and self._accepts_clients(int(match.group(2))):
                self._port = int(match.group(2))
                return
            time.sleep(_POLL_INTERVAL)
        raise NatsServerError(
            f"nats-server not ready after {self._startup_timeout}s; log tail:\n{self._log_tail()}"
        )

    def _accepts_clients(self, port: int) -> bool:
        """Connect and read the INFO line; with JetStream on, INFO must advertise it."""
        try:
            with socket.create_connection((self.host, port), timeout=1.0) as sock:
                line = sock.makefile("rb").readline(64 * 1024)
        except OSError:
            return False
        if not line.startswith(b"INFO "):
            return False
        try:
            info = json.loads(line[5:])
        except ValueError:
            return False
        return isinstance(info, dict) and (not self._jetstream or bool(info.get("jetstream")))

    def jetstream_answer(self, timeout: float = 2.0) -> str | None:
        """Ask this member for its JetStream account info (`$JS.API.INFO`) over the client
        protocol: None once it answers with the info, else what it said or why it did not (a
        member of a cluster answers only once it knows a metadata leader)."""
        try:
            return _jetstream_info(self.host, self.port, timeout)
        except (OSError, ValueError) as exc:
            return f"no answer: {exc!r}"

    def _log_tail(self, lines: int = 20) -> str:
        return "\n".join(self.log_text(since_start=True).splitlines()[-lines:])

    def wait_for_log(self, pattern: str, timeout: float = 10.0) -> re.Match[str]:
        """Block until `pattern` (a regex) appears in this process's log; return the match."""
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout
        while True:
            match = regex.search(self.log_text(since_start=True))
            if match:
                return match
            if time.monotonic() >= deadline:
                raise NatsServerError(f"{pattern!r} not in nats-server log after {timeout}s")
            time.sleep(_POLL_INTERVAL)


def _jetstream_info(host: str, port: int, timeout: float) -> str | None:
    """One `$JS.API.INFO` request over a raw client connection (no auth): None on success."""
    inbox = "_INBOX.certlc-dev-ready"
    with socket.create_connection((host, port), timeout=timeout) as sock:
        reader = sock.makefile("rb")
        if not reader.readline(64 * 1024).startswith(b"INFO "):
            return "no INFO from the server"
        sock.sendall(
            b'CONNECT {"verbose":false,"pedantic":false,"headers":false}\r\n'
            + f"SUB {inbox} 1\r\nPUB $JS.API.INFO {inbox} 0\r\n\r\n".encode()
        )
        while True:
            line = reader.readline(64 * 1024)
            if not line:
                return "connection closed"
            if line.startswith(b"PING"):
                sock.sendall(b"PONG\r\n")
            elif line.startswith(b"-ERR"):
                return line.decode(errors="replace").strip()
            elif line.startswith(b"MSG "):
                size = int(line.split()[-1])
                answer = json.loads(reader.read(size + 2)[:size] or b"{}")
                if isinstance(answer, dict) and "error" not in answer:
                    return None
                return f"answered {answer!r}"
