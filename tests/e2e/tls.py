"""Mutual TLS as OpenSSL sees it: `openssl s_server` with a server certificate and a client-CA
bundle (client certificates required), `openssl s_client` presenting a client certificate and
verifying the server with its own trust. An independent check of what certlc issues."""

from __future__ import annotations

import re
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

_BEGIN = b"-----BEGIN CERTIFICATE-----"


def split_chain(pem: bytes) -> tuple[bytes, bytes]:
    """(the first certificate, the certificates after it) of a PEM bundle."""
    blocks = [_BEGIN + b for b in pem.split(_BEGIN) if b.strip()]
    return blocks[0], b"".join(blocks[1:])


@dataclass(frozen=True)
class Credential:
    """A client credential: its certificate and key, and what it trusts for the server."""

    name: str
    cert: bytes = field(repr=False)
    key: bytes = field(repr=False)
    trust: bytes = field(repr=False)


@dataclass(frozen=True)
class Server:
    """A server: its certificate (with the chain it sends after it), key, and client-CA bundle."""

    cert: bytes = field(repr=False)
    key: bytes = field(repr=False)
    client_ca: bytes = field(repr=False)


@contextmanager
def serving(workdir: Path, server: Server, connections: int) -> Iterator[int]:
    """`openssl s_server` on a free port for `connections` handshakes; yields the port. TLS 1.2,
    so that the server's verdict on the client certificate is part of the handshake."""
    leaf, chain = split_chain(server.cert)
    files = {"srv.crt": leaf, "srv.key": server.key, "client-ca.crt": server.client_ca}
    if chain:
        files["srv-chain.crt"] = chain
    for name, content in files.items():
        (workdir / name).write_bytes(content)
    args = [
        "openssl", "s_server", "-accept", "0", "-naccept", str(connections),
        "-cert", str(workdir / "srv.crt"), "-key", str(workdir / "srv.key"),
        "-CAfile", str(workdir / "client-ca.crt"), "-Verify", "1", "-verify_return_error",
        "-tls1_2",
    ]  # fmt: skip
    if chain:
        args += ["-cert_chain", str(workdir / "srv-chain.crt")]
    log = workdir / "s_server.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(args, stdin=subprocess.PIPE, stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 10
        found = None
        while found is None and proc.poll() is None and time.monotonic() < deadline:
            found = re.search(rb"ACCEPT .*:(\d+)", log.read_bytes())
            time.sleep(0.02)
        assert found is not None, f"openssl s_server did not start: {log.read_text()}"
        yield int(found.group(1))
    finally:
        proc.kill()
        proc.wait(timeout=10)
        if proc.stdin is not None:
            proc.stdin.close()


def handshake(workdir: Path, port: int, cred: Credential) -> tuple[bool, str]:
    """Connect as `cred`, verifying the server (chain and name `kubernetes`) with its trust:
    (succeeded, what OpenSSL said)."""
    for name, content in (("cli.crt", cred.cert), ("cli.key", cred.key), ("trust.crt", cred.trust)):
        (workdir / name).write_bytes(content)
    result = subprocess.run(
        [
            "openssl", "s_client", "-connect", f"127.0.0.1:{port}", "-tls1_2",
            "-cert", str(workdir / "cli.crt"), "-key", str(workdir / "cli.key"),
            "-CAfile", str(workdir / "trust.crt"), "-verify_return_error",
            "-verify_hostname", "kubernetes",
        ],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        timeout=30,
        check=False,
    )  # fmt: skip
    text = (result.stdout + result.stderr).decode(errors="replace")
    ok = result.returncode == 0 and "Verify return code: 0 (ok)" in text
    return ok, text


def handshakes(workdir: Path, server: Server, creds: list[Credential]) -> dict[str, bool]:
    """Each credential's handshake with one server: name -> succeeded."""
    with serving(workdir, server, len(creds)) as port:
        return {c.name: handshake(workdir, port, c)[0] for c in creds}
