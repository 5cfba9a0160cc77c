"""NATS authentication against real nats-servers: an nkey user, a user whose password is read
from a file, operator mode with a real `.creds` file, and TLS with a private CA. Each proves
that the right credentials connect and publish to JetStream, and that wrong ones are refused
with a clear error that names the setting and never shows the secret. Then a service process
that takes its credentials from the environment, and one stopped at start by a missing file."""

from __future__ import annotations

import asyncio
import datetime
import logging
import os
import secrets
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import nkeys
import pytest

from certlc_dev.devenv import NatsServer
from libs.bus import (
    BusAuthError,
    BusConnectError,
    NatsAuth,
    StreamSpec,
    connect,
    ensure_topology,
    publish,
    resolve_auth,
)
from libs.contracts import subjects
from libs.pki.serving import ServingMaterial, make_serving_material
from tests.fixtures.nats_keys import (
    KeyPair,
    account_jwt,
    jwt,
    new_keypair,
    operator_jwt,
    user_jwt,
    write_creds,
)
from tests.integration.bus.helpers import wait_until

pytestmark = [pytest.mark.usefixtures("no_task_leaks"), pytest.mark.timeout(120)]

ROOT = Path(__file__).resolve().parents[3]
USER = "certlc-test"
STREAM = StreamSpec(name="AUTHCHECK", subjects=("authcheck.>",))
REFUSAL_DEADLINE = 1.5


def server_with(tmp_path: Path, config: str) -> NatsServer:
    conf = tmp_path / "server.conf"
    conf.write_text(config)
    return NatsServer(tmp_path / "jetstream", extra_args=["-c", str(conf)]).start()


async def stores_in_jetstream(url: str, auth: NatsAuth) -> None:
    """Connect with `auth`, create a stream and publish into it: the server acknowledges."""
    bus = await connect(url, name="auth-test", auth=auth, connect_deadline=10)
    try:
        await ensure_topology(bus, [STREAM], [])
        ack = await publish(bus, "authcheck.one", b"hello", msg_id=secrets.token_hex(8))
        assert ack.stream == STREAM.name
        assert ack.seq >= 1
    finally:
        await bus.close()


async def refused(url: str, auth: NatsAuth, caplog: pytest.LogCaptureFixture) -> str:
    """Connecting with `auth` fails with `BusAuthError`; its message."""
    caplog.set_level(logging.DEBUG)
    with pytest.raises(BusAuthError) as info:
        await connect(url, name="auth-test", auth=auth, connect_deadline=REFUSAL_DEADLINE)
    message = str(info.value)
    assert "refused the credentials" in message
    assert "Authorization Violation" in message
    return message


def logged(caplog: pytest.LogCaptureFixture) -> str:
    return "\n".join(f"{record.getMessage()} {record.__dict__}" for record in caplog.records)


# --- nkey ------------------------------------------------------------------------------------


@pytest.fixture
def nkey_user(tmp_path: Path) -> Iterator[tuple[NatsServer, KeyPair]]:
    user = new_keypair()
    server = server_with(tmp_path, f'authorization {{ users: [ {{ nkey: "{user.public}" }} ] }}\n')
    try:
        yield server, user
    finally:
        server.cleanup()


async def test_an_nkey_user_connects_with_its_seed_file(
    nkey_user: tuple[NatsServer, KeyPair], tmp_path: Path
) -> None:
    server, user = nkey_user
    seed_file = tmp_path / "user.nk"
    seed_file.write_text(user.seed + "\n")
    await stores_in_jetstream(server.url, resolve_auth(server.url, nkey_seed=str(seed_file)))


async def test_an_unknown_nkey_is_refused(
    nkey_user: tuple[NatsServer, KeyPair], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    server, _ = nkey_user
    stranger = new_keypair()
    seed_file = tmp_path / "stranger.nk"
    seed_file.write_text(stranger.seed)
    message = await refused(server.url, resolve_auth(server.url, nkey_seed=str(seed_file)), caplog)
    assert f"nkey seed file {seed_file} (CERTLC_NATS_NKEY_SEED)" in message
    assert stranger.seed not in message
    assert stranger.seed not in logged(caplog)


async def test_without_credentials_an_nkey_server_refuses(
    nkey_user: tuple[NatsServer, KeyPair], caplog: pytest.LogCaptureFixture
) -> None:
    server, _ = nkey_user
    message = await refused(server.url, NatsAuth(), caplog)
    assert "(no credentials)" in message


# --- user and password file ------------------------------------------------------------------


@pytest.fixture
def password() -> str:
    return secrets.token_hex(16)


@pytest.fixture
def password_server(tmp_path: Path, password: str) -> Iterator[NatsServer]:
    server = server_with(tmp_path, password_config(password))
    try:
        yield server
    finally:
        server.cleanup()


def password_config(password: str) -> str:
    return f'authorization {{ users: [ {{ user: "{USER}", password: "{password}" }} ] }}\n'


def password_auth(url: str, path: Path) -> NatsAuth:
    return resolve_auth(url, user=USER, password_file=str(path))


async def test_a_user_connects_with_its_password_file(
    password_server: NatsServer, password: str, tmp_path: Path
) -> None:
    path = tmp_path / "password"
    path.write_text(password + "\n")  # as `kubectl create secret --from-file` keeps it
    await stores_in_jetstream(password_server.url, password_auth(password_server.url, path))


async def test_a_wrong_password_is_refused_and_never_shown(
    password_server: NatsServer, password: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "password"
    wrong = secrets.token_hex(16)
    path.write_text(wrong)
    message = await refused(password_server.url, password_auth(password_server.url, path), caplog)
    assert f"user '{USER}' with the password of {path} (CERTLC_NATS_PASSWORD_FILE)" in message
    assert f"127.0.0.1:{password_server.port}" in message
    for secret in (wrong, password):
        assert secret not in message
        assert secret not in logged(caplog)
    assert any(r.getMessage() == "nats refused the credentials" for r in caplog.records)


async def test_a_rotated_password_file_is_read_again_on_reconnect(
    tmp_path: Path, password: str
) -> None:
    """The server and the file change together (a Secret rotation): the client reconnects
    with the new password, without being restarted."""
    conf = tmp_path / "server.conf"
    conf.write_text(password_config(password))
    server = NatsServer(tmp_path / "jetstream", extra_args=["-c", str(conf)]).start()
    path = tmp_path / "password"
    path.write_text(password)
    try:
        bus = await connect(server.url, name="rotating", auth=password_auth(server.url, path))
        try:
            rotated = secrets.token_hex(16)
            conf.write_text(password_config(rotated))
            path.write_text(rotated + "\n")
            await asyncio.to_thread(server.restart)
            await wait_until(lambda: bus.is_connected, within=20, what="reconnect")
            await ensure_topology(bus, [STREAM], [])
            ack = await publish(bus, "authcheck.rotated", b"x", msg_id="rotated")
            assert ack.seq >= 1
        finally:
            await bus.close()
    finally:
        server.cleanup()


# --- operator mode: JWTs and a .creds file ---------------------------------------------------


@pytest.fixture
def operator_mode(tmp_path: Path) -> Iterator[tuple[NatsServer, KeyPair]]:
    """A server trusting one operator, with a system account and one JetStream account
    preloaded in a memory resolver; yields the server and the account's key pair."""
    operator = new_keypair(nkeys.PREFIX_BYTE_OPERATOR)
    account = new_keypair(nkeys.PREFIX_BYTE_ACCOUNT)
    system = new_keypair(nkeys.PREFIX_BYTE_ACCOUNT)
    operator_file = tmp_path / "operator.jwt"
    operator_file.write_text(operator_jwt(operator))
    system_jwt = jwt(operator, system.public, "SYS", {"type": "account"})
    server = server_with(
        tmp_path,
        f'operator: "{operator_file}"\n'
        f"system_account: {system.public}\n"
        "resolver: MEMORY\n"
        "resolver_preload: {\n"
        f'  {account.public}: "{account_jwt(operator, account)}"\n'
        f'  {system.public}: "{system_jwt}"\n'
        "}\n",
    )
    try:
        yield server, account
    finally:
        server.cleanup()


async def test_a_creds_file_of_the_trusted_account_connects(
    operator_mode: tuple[NatsServer, KeyPair], tmp_path: Path
) -> None:
    server, account = operator_mode
    user = new_keypair()
    creds = write_creds(tmp_path / "user.creds", user_jwt(account, user), user)
    await stores_in_jetstream(server.url, resolve_auth(server.url, credentials=str(creds)))


async def test_a_creds_file_of_an_unknown_account_is_refused(
    operator_mode: tuple[NatsServer, KeyPair], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    server, _ = operator_mode
    user = new_keypair()
    unknown = new_keypair(nkeys.PREFIX_BYTE_ACCOUNT)
    creds = write_creds(tmp_path / "user.creds", user_jwt(unknown, user), user)
    message = await refused(server.url, resolve_auth(server.url, credentials=str(creds)), caplog)
    assert f"credentials file {creds} (CERTLC_NATS_CREDENTIALS)" in message
    assert user.seed not in message
    assert user.seed not in logged(caplog)


async def test_a_creds_file_with_another_users_seed_is_refused(
    operator_mode: tuple[NatsServer, KeyPair], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The JWT alone is not enough: the nonce must be signed with the user's own key."""
    server, account = operator_mode
    user, impostor = new_keypair(), new_keypair()
    creds = write_creds(tmp_path / "user.creds", user_jwt(account, user), impostor)
    await refused(server.url, resolve_auth(server.url, credentials=str(creds)), caplog)


# --- TLS with a private CA -------------------------------------------------------------------


def write_ca(directory: Path, name: str) -> tuple[Path, ServingMaterial]:
    """A private CA with a serving certificate for 127.0.0.1; the CA file and the material."""
    material = make_serving_material(["127.0.0.1"], datetime.datetime.now(datetime.UTC))
    path = directory / f"{name}.crt"
    path.write_bytes(material.ca_cert_pem)
    return path, material


@pytest.fixture
def tls_server(tmp_path: Path) -> Iterator[tuple[NatsServer, Path]]:
    """A server with a certificate for 127.0.0.1 from a private CA; yields it and the CA file."""
    ca_file, material = write_ca(tmp_path, "test-ca")
    (tmp_path / "server.crt").write_bytes(material.cert_pem)
    (tmp_path / "server.key").write_bytes(material.key_pem)
    server = server_with(
        tmp_path,
        f'tls {{ cert_file: "{tmp_path}/server.crt", key_file: "{tmp_path}/server.key" }}\n',
    )
    try:
        yield server, ca_file
    finally:
        server.cleanup()


async def test_tls_with_the_private_ca_connects(tls_server: tuple[NatsServer, Path]) -> None:
    server, ca_file = tls_server
    url = f"tls://127.0.0.1:{server.port}"
    await stores_in_jetstream(url, resolve_auth(url, tls_ca=str(ca_file)))


async def test_tls_with_another_ca_is_not_trusted(
    tls_server: tuple[NatsServer, Path], tmp_path: Path
) -> None:
    server, _ = tls_server
    other_ca, _ = write_ca(tmp_path, "other-ca")
    url = f"tls://127.0.0.1:{server.port}"
    with pytest.raises(BusConnectError, match="CERTIFICATE_VERIFY_FAILED"):
        await connect(
            url,
            name="tls-test",
            auth=resolve_auth(url, tls_ca=str(other_ca)),
            connect_deadline=REFUSAL_DEADLINE,
        )


# --- a service process ---------------------------------------------------------------------


def service_env(**settings: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CERTLC_", "NATS_"))}
    env.update({f"CERTLC_{key.upper()}": value for key, value in settings.items()})
    return env


async def test_a_service_uses_the_credentials_of_its_environment(
    password_server: NatsServer, password: str, tmp_path: Path
) -> None:
    """The lifecycle, given CERTLC_NATS_USER and CERTLC_NATS_PASSWORD_FILE and a URL without
    credentials, connects and creates its streams; the password is in no argument or variable."""
    path = tmp_path / "password"
    path.write_text(password + "\n")
    env = service_env(
        nats_url=password_server.url,
        nats_user=USER,
        nats_password_file=str(path),
        health_port="-1",
    )
    assert all(password not in value for value in env.values())
    log = tmp_path / "lifecycle.log"
    with log.open("wb") as out:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "services.lifecycle",
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        bus = await connect(
            password_server.url, name="observer", auth=password_auth(password_server.url, path)
        )
        try:

            async def streams_created() -> bool:
                names = {info.config.name for info in await bus.js.streams_info()}
                return subjects.EVENTS_STREAM in names and subjects.AUDIT_STREAM in names

            await wait_until(streams_created, within=30, what="the lifecycle's streams")
        finally:
            await bus.close()
    finally:
        process.terminate()
        await asyncio.wait_for(process.wait(), 30)
    text = log.read_text()
    assert password not in text
    assert "refused" not in text


def test_a_service_with_a_missing_password_file_stops_at_start(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-password"
    done = subprocess.run(
        [sys.executable, "-m", "services.lifecycle"],
        cwd=ROOT,
        env=service_env(nats_user=USER, nats_password_file=str(missing), health_port="-1"),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert done.stderr.strip() == f"lifecycle: CERTLC_NATS_PASSWORD_FILE: {missing} does not exist"
