"""Connect to NATS once per process and keep the connection alive forever.

Services must survive NATS restarts and rolling upgrades without restarting themselves, so the
client reconnects forever with exponential backoff (not nats-py's fixed wait), buffers outgoing
data while disconnected, and reports every disconnect/reconnect through `logging` with structured
`extra` fields. `Bus.close()` drains: in-flight subscriptions finish and buffered publishes are
flushed before the socket closes.

Authentication (libs.bus.auth): a `.creds` file, an nkey seed file, or a user with a password
file, handed to nats-py as callbacks that read the file at every (re)connect (the seed file as a
path nats-py reads likewise), so no secret is ever in a URL, an argument list or a log line.
Each caller passes its settings' `auth`; without one the connection carries no credentials
(or those of the URL).
"""

from __future__ import annotations

import asyncio
import base64
import logging
from collections.abc import Sequence
from types import TracebackType
from typing import Any, Self

import nats
import nats.errors
import nkeys
from nats.aio.client import Client, ReconnectToServerHandler, Server
from nats.js import JetStreamContext

from libs.bus.auth import (
    AuthMethod,
    NatsAuth,
    NatsAuthError,
    check_files,
    read_credentials,
    read_password,
    tls_context,
)
from libs.bus.backoff import Backoff
from libs.bus.errors import BusAuthError, BusConnectError

log = logging.getLogger(__name__)

DEFAULT_RECONNECT_BACKOFF = Backoff(initial=0.1, maximum=5.0)


class Bus:
    """A connected NATS client plus its JetStream context; the handle every bus function takes.

    `client` and `js` are the raw nats-py objects, for code inside `libs.bus` and for tests.
    """

    def __init__(self, client: Client, *, name: str, js_timeout: float) -> None:
        self.client = client
        self.name = name
        self.js: JetStreamContext = client.jetstream(timeout=js_timeout)

    @property
    def is_connected(self) -> bool:
        return bool(self.client.is_connected)

    @property
    def is_closed(self) -> bool:
        return bool(self.client.is_closed)

    async def flush(self, max_wait: float = 5.0) -> None:
        """Wait until the server has processed everything sent so far (a PING/PONG)."""
        await self.client.flush(timeout=max_wait)  # type: ignore[arg-type]

    async def close(self) -> None:
        """Drain subscriptions and pending publishes, then close. Safe to call twice."""
        if self.client.is_closed:
            return
        try:
            await self.client.drain()
        except (nats.errors.ConnectionReconnectingError, nats.errors.Error, OSError) as exc:
            # Not connected right now, nothing to drain to: just close.
            log.debug("drain skipped, closing", extra={"client_name": self.name, "reason": exc})
            await self.client.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()


async def connect(
    servers: str | Sequence[str],
    *,
    name: str,
    auth: NatsAuth | None = None,
    connect_timeout: float = 2.0,
    connect_deadline: float | None = None,
    reconnect_backoff: Backoff = DEFAULT_RECONNECT_BACKOFF,
    ping_interval: float = 20.0,
    max_outstanding_pings: int = 3,
    reconnect_buffer_bytes: int = 8 * 1024 * 1024,
    drain_timeout: float = 10.0,
    js_timeout: float = 5.0,
) -> Bus:
    """Connect to NATS (`servers`: one URL or several for failover) and return a `Bus`.

    The first connect retries until `connect_deadline` seconds pass (None: forever), then raises
    `BusConnectError` (`BusAuthError` when the server refused the credentials). Once connected
    the client reconnects forever. `name` shows up in the server's connection list and in our
    logs. `auth` (default: none) is checked first: a missing or unusable file
    raises `NatsAuthError` naming its setting, before any connection is tried.
    """
    if isinstance(servers, str):  # "nats://a:4222,nats://b:4222" as in CERTLC_NATS_URL
        urls = [u.strip() for u in servers.split(",") if u.strip()]
    else:
        urls = list(servers)
    if not urls:
        raise ValueError("connect needs at least one server URL")
    auth = NatsAuth() if auth is None else auth
    options = _auth_options(auth)
    client = Client()
    callbacks = _Callbacks(client, name)
    attempt = client.connect(
        urls,
        name=name,
        **options,
        connect_timeout=connect_timeout,  # type: ignore[arg-type]
        allow_reconnect=True,
        max_reconnect_attempts=-1,
        # Used only between first-connect attempts; reconnects use the backoff handler below.
        reconnect_time_wait=reconnect_backoff.maximum,  # type: ignore[arg-type]
        reconnect_to_server_handler=_backoff_handler(reconnect_backoff),
        ping_interval=ping_interval,  # type: ignore[arg-type]
        max_outstanding_pings=max_outstanding_pings,
        pending_size=reconnect_buffer_bytes,
        drain_timeout=drain_timeout,  # type: ignore[arg-type]
        error_cb=callbacks.error,
        disconnected_cb=callbacks.disconnected,
        reconnected_cb=callbacks.reconnected,
        closed_cb=callbacks.closed,
    )
    try:
        await asyncio.wait_for(attempt, timeout=connect_deadline)
    except TimeoutError as exc:
        await client.close()
        where = ", ".join(_redact(u) for u in urls)
        if callbacks.refused:
            raise BusAuthError(
                f"NATS at {where} refused the credentials ({auth.describe()}): {callbacks.refused}"
            ) from exc
        last = f" (last error: {callbacks.last_error})" if callbacks.last_error else ""
        raise BusConnectError(
            f"no NATS server reachable at {where} within {connect_deadline}s{last}"
        ) from exc
    log.info("connected to nats", extra={"client_name": name, "server": _server_url(client)})
    return Bus(client, name=name, js_timeout=js_timeout)


def _auth_options(auth: NatsAuth) -> dict[str, Any]:
    """nats-py `connect` keywords for `auth`, after checking its files (`NatsAuthError`)."""
    check_files(auth)
    options: dict[str, Any] = {}
    if auth.method is AuthMethod.CREDENTIALS:
        creds = _CredentialsFile(auth)
        options["user_jwt_cb"] = creds.user_jwt
        options["signature_cb"] = creds.sign
    elif auth.method is AuthMethod.NKEY:
        options["nkeys_seed"] = str(auth.nkey_seed)  # nats-py reads it at each connect
    elif auth.method is AuthMethod.PASSWORD:
        options["user"] = auth.user
        options["password"] = _PasswordFile(auth)
    tls = tls_context(auth)
    if tls is not None:
        options["tls"] = tls
    return options


class _PasswordFile:
    """nats-py's password callback: the file is read at every (re)connect, so a rotated
    password is used without a restart; if it cannot be read then, the last one read is."""

    def __init__(self, auth: NatsAuth) -> None:
        self._auth = auth
        self._last = read_password(auth)

    def __call__(self) -> str:
        try:
            self._last = read_password(self._auth)
        except NatsAuthError as exc:  # the message names the setting and path, no secret
            log.warning("using the NATS password read before: %s", exc)
        return self._last

    def __repr__(self) -> str:
        return f"<password of {self._auth.password_file}>"


class _CredentialsFile:
    """nats-py's JWT and signature callbacks for a `.creds` file, read (and checked) at every
    (re)connect, so a rotated file is used without a restart; if it cannot be read then, or is
    malformed, the last good one is."""

    def __init__(self, auth: NatsAuth) -> None:
        assert auth.credentials is not None
        self._path, self._label = auth.credentials, auth.label("credentials")
        self._jwt, self._seed = read_credentials(self._path, self._label)

    def _reload(self) -> None:
        try:
            self._jwt, self._seed = read_credentials(self._path, self._label)
        except NatsAuthError as exc:  # the message names the setting and path, no secret
            log.warning("using the NATS credentials read before: %s", exc)

    def sign(self, nonce: str) -> bytes:  # called first, then user_jwt
        self._reload()
        keypair = nkeys.from_seed(bytearray(self._seed.encode()))
        try:
            return base64.b64encode(keypair.sign(nonce.encode()))
        finally:
            keypair.wipe()

    def user_jwt(self) -> bytearray:
        return bytearray(self._jwt.encode())

    def __repr__(self) -> str:
        return f"<credentials of {self._path}>"


def _is_refusal(exc: BaseException) -> bool:
    """The server refused the client's credentials (or its JWT expired)."""
    if isinstance(exc, nats.errors.AuthorizationError):
        return True
    text = str(exc).lower()
    return "authorization violation" in text or "authentication expired" in text


def _backoff_handler(backoff: Backoff) -> ReconnectToServerHandler:
    """Pick the server with the fewest failed attempts; wait exponentially longer each time."""

    def choose(servers: list[Server], _info: dict[str, Any]) -> tuple[Server | None, float]:
        if not servers:
            return None, backoff.maximum
        best = min(servers, key=lambda server: server.reconnects)
        return best, backoff.delay(best.reconnects + 1)

    return choose


def _server_url(client: Client) -> str | None:
    """host:port of the server, never the credentials a URL may carry."""
    url = client.connected_url
    if url is None:
        return None
    return f"{url.hostname}:{url.port}" if url.port else url.hostname


def _redact(url: str) -> str:
    """A server URL for logs and errors: user and password removed."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        scheme, rest = "", url
    host = rest.rsplit("@", 1)[-1]
    return f"{scheme}{sep}{host}"


class _Callbacks:
    """nats-py connection callbacks that only log (structured, no payloads)."""

    def __init__(self, client: Client, name: str) -> None:
        self._client = client
        self._name = name
        self.refused = ""  # the server's refusal of the credentials, if it refused them
        self.last_error = ""

    async def error(self, exc: Exception) -> None:
        reason = str(exc).removeprefix("nats: ").strip("'") or type(exc).__name__
        self.last_error = reason
        extra = {"client_name": self._name, "error": repr(exc)}
        if _is_refusal(exc):
            # Sticky: the server then drops the connection, and that error follows this one.
            self.refused = reason
            # Retried like an outage (in a rotation the server or the file may change next),
            # but logged as an error: an operator has to look at it.
            log.error(
                "nats refused the credentials",
                extra={"client_name": self._name, "reason": reason},
            )
        elif isinstance(exc, OSError | asyncio.TimeoutError | nats.errors.StaleConnectionError):
            # Expected while a server is down; the disconnect/reconnect lines tell the story.
            log.debug("nats connection attempt failed", extra=extra)
        else:
            log.warning("nats client error", extra=extra)

    async def disconnected(self) -> None:
        if self._client.is_closed:  # our own close(), not an outage
            return
        log.warning("disconnected from nats, reconnecting", extra={"client_name": self._name})

    async def reconnected(self) -> None:
        server = _server_url(self._client)
        log.info("reconnected to nats", extra={"client_name": self._name, "server": server})

    async def closed(self) -> None:
        log.info("nats connection closed", extra={"client_name": self._name})
