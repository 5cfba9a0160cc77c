"""`certlc audit` against a real nats-server with a user whose password is in a file: the flags
and the services' variables both log in, a wrong password is exit 5 with a clear message, a
bad setting is exit 2; no message shows the password."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from certlc_dev.devenv import NatsServer
from libs.bus import connect, ensure_topology, resolve_auth
from libs.runtime import topology
from tests.cli.conftest import Result, certlc_run

pytestmark = pytest.mark.timeout(120)

Cli = Callable[..., Result]
USER = "certlc-external"


@pytest.fixture(scope="module")
def password() -> str:
    return secrets.token_hex(16)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, password: str) -> Iterator[NatsServer]:
    """A server whose only user is USER, with certlc's streams in place."""
    directory = tmp_path_factory.mktemp("nats-password")
    conf = directory / "server.conf"
    conf.write_text(f'authorization {{ users: [ {{ user: "{USER}", password: "{password}" }} ] }}')
    nats_server = NatsServer(directory / "jetstream", extra_args=["-c", str(conf)]).start()
    file = directory / "password"
    file.write_text(password + "\n")

    async def create_streams() -> None:
        auth = resolve_auth(nats_server.url, user=USER, password_file=str(file))
        bus = await connect(nats_server.url, name="setup", auth=auth, connect_deadline=10)
        try:
            await ensure_topology(bus, topology.streams(1), [])
        finally:
            await bus.close()

    try:
        asyncio.run(create_streams())
        yield nats_server
    finally:
        nats_server.cleanup()


@pytest.fixture
def password_file(tmp_path: Path, password: str) -> Path:
    path = tmp_path / "password"
    path.write_text(password + "\n")
    return path


def test_flags_log_in(server: NatsServer, password_file: Path, cli: Cli) -> None:
    result = cli(
        "audit",
        "--nats-url",
        server.url,
        "--nats-user",
        USER,
        "--nats-password-file",
        str(password_file),
    )
    assert result == Result(0, "No audit events.\n", "")


def test_the_services_variables_log_in(server: NatsServer, password_file: Path) -> None:
    env = {
        "CERTLC_NATS_URL": server.url,
        "CERTLC_NATS_USER": USER,
        "CERTLC_NATS_PASSWORD_FILE": str(password_file),
    }
    result = certlc_run("audit", "-o", "json", env=env)
    assert result == Result(0, "", "")  # JSON lines: none yet


def test_without_credentials_the_server_refuses(server: NatsServer, cli: Cli) -> None:
    result = cli("audit", "--nats-url", server.url)
    assert result.code == 5
    assert result.err == (
        f"error: NATS at {server.url} refused the credentials (no credentials): "
        "Authorization Violation\n"
    )


def test_a_wrong_password_is_exit_5_and_never_shown(
    server: NatsServer, tmp_path: Path, password: str, cli: Cli
) -> None:
    wrong = tmp_path / "wrong"
    wrong.write_text("not-the-password\n")
    result = cli(
        "audit", "--nats-url", server.url, "--nats-user", USER, "--nats-password-file", str(wrong)
    )
    assert result.code == 5
    assert result.err == (
        f"error: NATS at {server.url} refused the credentials (user '{USER}' with the password "
        f"of {wrong} (--nats-password-file)): Authorization Violation\n"
    )
    assert "not-the-password" not in result.out + result.err
    assert password not in result.out + result.err


def test_bad_settings_are_exit_2(server: NatsServer, tmp_path: Path, cli: Cli) -> None:
    missing = tmp_path / "missing"
    result = cli(
        "audit", "--nats-url", server.url, "--nats-user", USER, "--nats-password-file", str(missing)
    )
    assert result == Result(2, "", f"error: --nats-password-file: {missing} does not exist\n")

    with_password = server.url.replace("nats://", f"nats://{USER}:secret-in-url@")
    result = cli("audit", "--nats-url", with_password, "--nats-nkey", str(missing))
    assert result.code == 2
    assert result.err.startswith("error: --nats-url carries credentials")
    assert "--nats-nkey is set" in result.err
    assert "secret-in-url" not in result.err
