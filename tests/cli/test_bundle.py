"""`certlc ca bundle`: the CA certificates to distribute to nodes, as PEM on stdout, checked
with openssl against the certificates the TCP's CA and front-proxy CA signed."""

from __future__ import annotations

import base64
import subprocess
from collections.abc import Callable
from pathlib import Path

from libs.pki import SecretKind, secret_name
from tests.cli.conftest import Result
from tests.e2e.harness import Stack

Cli = Callable[..., Result]


def verify(bundle: Path, cert: bytes, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    leaf = tmp_path / "leaf.crt"
    leaf.write_bytes(cert)
    return subprocess.run(
        ["openssl", "verify", "-CAfile", str(bundle), str(leaf)],
        capture_output=True,
        text=True,
        check=False,
    )


def secret_data(stack: Stack, name: str) -> dict[str, bytes]:
    secret = stack.sim.get("secrets", name)
    return {k: base64.b64decode(v) for k, v in secret["data"].items()}


def test_the_bundles_verify_what_their_cas_signed(
    stack: Stack, tenant: str, cli: Cli, tmp_path: Path
) -> None:
    kubeconfig = str(stack.kubeconfig)
    ca = cli("ca", "bundle", f"default/{tenant}", "--kubeconfig", kubeconfig)
    assert ca.code == 0, ca
    assert ca.out.startswith("-----BEGIN CERTIFICATE-----")
    assert ca.out.count("BEGIN CERTIFICATE") == 1
    assert ca.err.startswith(f"{tenant}-ca: CN=kubernetes, serial ")
    bundle = tmp_path / "ca.pem"
    bundle.write_text(ca.out)
    apiserver = secret_data(stack, secret_name(tenant, SecretKind.APISERVER))["apiserver.crt"]
    assert verify(bundle, apiserver, tmp_path).returncode == 0
    proxy = cli("ca", "bundle", f"default/{tenant}", "--front-proxy", "--kubeconfig", kubeconfig)
    assert proxy.code == 0, proxy
    front = tmp_path / "front-proxy.pem"
    front.write_text(proxy.out)
    client = secret_data(stack, secret_name(tenant, SecretKind.FRONT_PROXY_CLIENT))
    assert verify(front, client["front-proxy-client.crt"], tmp_path).returncode == 0
    # and not the other way round: each bundle is its own CA's
    assert verify(front, apiserver, tmp_path).returncode != 0


def test_an_unknown_tcp_and_a_broken_ca_are_named(stack: Stack, tenant: str, cli: Cli) -> None:
    kubeconfig = str(stack.kubeconfig)
    unknown = cli("ca", "bundle", "default/nope", "--kubeconfig", kubeconfig)
    assert (unknown.code, unknown.out) == (3, "")
    assert unknown.err == "error: TenantControlPlane default/nope not found\n"
    name = secret_name(tenant, SecretKind.CA)
    stack.sim.patch(
        "tenantcontrolplanes",
        tenant,
        {"metadata": {"annotations": {"kamaji.clastix.io/paused": ""}}},
    )
    stack.sim.patch("secrets", name, {"data": {"ca.crt": base64.b64encode(b"garbage").decode()}})
    broken = cli("ca", "bundle", tenant, "--kubeconfig", kubeconfig)
    assert (broken.code, broken.out) == (1, "")
    assert broken.err == (
        f"error: Secret default/{name}: ca Secret, key 'ca.crt': is not a PEM certificate\n"
    )
