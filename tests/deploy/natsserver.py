"""deploy/'s NATS server for the live tests, as deployed: the rendered nats.conf and auth.conf,
and in CERTLC_<USER>_PASSWORD the quoted bcrypt hash of each user's password (Secret
certlc-nats-server-auth), while the clients log in with the passwords themselves (Secret
certlc-nats-credentials)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from functools import cache
from pathlib import Path

import bcrypt
import pytest

from certlc_dev.devenv import NatsServer
from libs.runtime import topology
from tests.deploy.manifests import generated, overlay

USERS = (*topology.SERVICES, "external")
# As deploy/nats-credentials.sh hashes.
BCRYPT_COST = 11


def password(user: str) -> str:
    return f"test-{user}-0123456789abcdef"


@cache
def server_password(plaintext: str) -> str:
    """The value of a CERTLC_<USER>_PASSWORD variable: a bcrypt hash in double quotes, as
    deploy/nats-credentials.sh writes it (nats-server reads a variable's value as configuration,
    where a bare `$2b$...` would be a variable reference)."""
    hashed = bcrypt.hashpw(plaintext.encode(), bcrypt.gensalt(BCRYPT_COST)).decode()
    return f'"{hashed}"'


def server_config(directory: Path) -> Path:
    """Write the rendered NATS ConfigMap into `directory`, paths redirected; return nats.conf."""
    data = generated(overlay("default"), "ConfigMap", "nats-config")["data"]
    store = directory / "jetstream"
    replacements = {
        'store_dir: "/data"': f'store_dir: "{store}"',
        'pid_file: "/var/run/nats/nats.pid"': f'pid_file: "{directory / "nats.pid"}"',
        'http: "0.0.0.0:8222"': "",
    }
    conf = data["nats.conf"]
    for old, new in replacements.items():
        assert old in conf, f"nats.conf no longer has {old!r}: update this test"
        conf = conf.replace(old, new)
    for name, text in data.items():
        (directory / name).write_text(conf if name == "nats.conf" else text)
    return directory / "nats.conf"


@contextlib.contextmanager
def deployed_server(directory: Path) -> Iterator[NatsServer]:
    """A nats-server on deploy/'s configuration, its JetStream store empty, in `directory`."""
    conf = server_config(directory)
    with pytest.MonkeyPatch.context() as env:
        env.setenv("SERVER_NAME", "certlc-test")
        for user in USERS:
            env.setenv(f"CERTLC_{user.upper()}_PASSWORD", server_password(password(user)))
        nats_server = NatsServer(jetstream=False, extra_args=["-c", str(conf)])
        nats_server.start()
    try:
        yield nats_server
    finally:
        nats_server.cleanup()


def url(server: NatsServer, user: str) -> str:
    return f"nats://certlc-{user}:{password(user)}@{server.host}:{server.port}"
