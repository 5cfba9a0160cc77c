"""HTTP/1.1 transport: a threading server (optionally TLS) and the request handler.

One thread per connection with keep-alive, as the official clients pool connections. The
handler reads the body (Content-Length or chunked, at most 3 MiB like the API server),
hands a `Request` to the application and writes a `Response`, or a chunked stream flushed
after every write for watches. The server tracks open connections so that `close()` can
shut them down and join their threads: a test that stops the server leaves nothing behind.
"""

from __future__ import annotations

import contextlib
import logging
import select
import socket
import ssl
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from certlc_dev.kubesim.errors import ApiError, InternalError, RequestEntityTooLarge
from certlc_dev.kubesim.wire import AbruptClose, Request, Response, Result, StreamResponse

log = logging.getLogger("kubesim.http")

MAX_BODY = 3 * 1024 * 1024
DRAIN_LIMIT = 64 * 1024 * 1024
HANDSHAKE_TIMEOUT = 10.0


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: SimHTTPServer

    def setup(self) -> None:
        if isinstance(self.request, ssl.SSLSocket):
            self.request.settimeout(HANDSHAKE_TIMEOUT)
            try:
                self.request.do_handshake()
            except (OSError, ssl.SSLError) as error:
                log.debug("TLS handshake failed: %s", error)
                raise ConnectionAbortedError from None
            self.request.settimeout(None)
        super().setup()

    def handle(self) -> None:
        self.server.track(self.request, add=True)
        try:
            super().handle()
        except (ConnectionError, ssl.SSLError, TimeoutError):
            self.close_connection = True
        finally:
            self.server.track(self.request, add=False)

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s - %s", self.address_string(), format % args)

    # every verb goes through the same path
    def do_GET(self) -> None:
        self._serve()

    def do_HEAD(self) -> None:
        self._serve()

    def do_POST(self) -> None:
        self._serve()

    def do_PUT(self) -> None:
        self._serve()

    def do_PATCH(self) -> None:
        self._serve()

    def do_DELETE(self) -> None:
        self._serve()

    def _read_body(self) -> bytes:
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            parts: list[bytes] = []
            size = 0
            while True:
                line = self.rfile.readline(65537)
                length = int(line.split(b";")[0].strip() or b"0", 16)
                if length == 0:
                    self.rfile.readline()
                    break
                size += length
                if size > MAX_BODY:
                    raise RequestEntityTooLarge(f"Request entity too large: limit is {MAX_BODY}")
                parts.append(self.rfile.read(length))
                self.rfile.readline()
            return b"".join(parts)
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY:
            self.close_connection = True
            if length <= DRAIN_LIMIT:  # read it so the client gets to see our answer
                while length > 0:
                    length -= len(self.rfile.read(min(length, 1 << 20)) or b"x" * length)
            raise RequestEntityTooLarge(f"Request entity too large: limit is {MAX_BODY}")
        return self.rfile.read(length) if length else b""

    def _serve(self) -> None:
        split = urlsplit(self.path)
        try:
            body = self._read_body()
        except ApiError as error:
            self._send(Response.error(error))
            return
        headers = {name.lower(): value for name, value in self.headers.items()}
        request = Request(
            self.command, split.path, parse_qs(split.query, keep_blank_values=True), headers, body
        )
        try:
            result: Result = self.server.application.handle(request)
        except Exception as error:  # a bug: answer 500 and keep serving
            log.exception("internal error serving %s %s", self.command, self.path)
            result = Response.error(InternalError(f"{type(error).__name__}: {error}"))
        if isinstance(result, StreamResponse):
            self._stream(result)
        else:
            self._send(result)

    def _send(self, response: Response) -> None:
        chunks = response.body if isinstance(response.body, list) else [response.body]
        self.send_response(response.status)
        self.send_header("Content-Type", response.content_type)
        self.send_header("Content-Length", str(sum(len(c) for c in chunks)))
        self.send_header("Cache-Control", "no-cache, private")
        for name, value in response.headers.items():
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            for chunk in chunks:
                self.wfile.write(chunk)

    def _client_gone(self) -> bool:
        try:
            readable, _, _ = select.select([self.connection], [], [], 0)
        except (OSError, ValueError):
            return True
        return bool(readable)

    def _stream(self, response: StreamResponse) -> None:
        self.send_response(response.status)
        self.send_header("Content-Type", response.content_type)
        self.send_header("Transfer-Encoding", "chunked")
        self.send_header("Cache-Control", "no-cache, private")
        self.end_headers()

        def write(data: bytes) -> None:
            if data:
                self.wfile.write(b"%x\r\n%b\r\n" % (len(data), data))

        try:
            response.run(write, self._client_gone)
        except AbruptClose:
            self.close_connection = True
            with contextlib.suppress(OSError):
                self.connection.shutdown(socket.SHUT_RDWR)
            return
        self.wfile.write(b"0\r\n\r\n")


class SimHTTPServer(ThreadingHTTPServer):
    """A ThreadingHTTPServer that knows its application, TLS context and connections."""

    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(
        self, address: tuple[str, int], application: Any, ssl_context: ssl.SSLContext | None
    ) -> None:
        self.application = application
        self.ssl_context = ssl_context
        self._connections: set[socket.socket] = set()
        self._conn_lock = threading.Lock()
        self._conn_threads: list[threading.Thread] = []
        super().__init__(address, _Handler)

    def get_request(self) -> tuple[socket.socket, Any]:
        sock, address = super().get_request()
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if self.ssl_context is not None:
            sock = self.ssl_context.wrap_socket(
                sock, server_side=True, do_handshake_on_connect=False
            )
        return sock, address

    def process_request(self, request: Any, client_address: Any) -> None:
        thread = threading.Thread(
            target=self.process_request_thread,
            args=(request, client_address),
            daemon=True,
            name="kubesim-conn",
        )
        with self._conn_lock:
            self._conn_threads = [t for t in self._conn_threads if t.is_alive()]
            self._conn_threads.append(thread)
        thread.start()

    def handle_error(self, request: Any, client_address: Any) -> None:
        log.debug("connection error from %s", client_address, exc_info=True)

    def track(self, sock: socket.socket, *, add: bool) -> None:
        with self._conn_lock:
            if add:
                self._connections.add(sock)
            else:
                self._connections.discard(sock)

    def close_connections(self, timeout: float = 5.0) -> None:
        """Shut down every open connection and wait for the handler threads."""
        with self._conn_lock:
            connections = list(self._connections)
            threads = list(self._conn_threads)
        for sock in connections:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        for thread in threads:
            thread.join(timeout)
