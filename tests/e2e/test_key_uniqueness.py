"""No private key is ever used twice, over many issuances by a real issuer with its key reserve
(libs/pki/reserve.py): four TCPs issued, then every leaf and kubeconfig of each re-issued
twice (the reserve drained and refilled in between); every public key seen in any Secret at
any round is different from every other, CA certificates embedded in kubeconfigs aside."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from tests.e2e.harness import Stack, start_with_tenants, wait_for

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

TCPS = tuple(f"keys-{i}" for i in range(4))


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, kube_serving: Any) -> Iterator[Stack]:
    # a small reserve, so that the rounds below drain it and it is refilled between them
    settings = {"CERTLC_KEY_RESERVE": "8"}
    workdir = Path(tmp_path_factory.mktemp("e2e-keys"))
    yield from start_with_tenants(workdir, kube_serving, TCPS, settings)


def spki(cert_pem: bytes) -> bytes:
    cert = x509.load_pem_x509_certificate(cert_pem)
    return cert.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def public_keys(stack: Stack, tcp: str) -> dict[tuple[str, str], bytes]:
    """(Secret, where) -> the public key of every key pair the TCP's Secrets hold now."""
    found: dict[tuple[str, str], bytes] = {}
    for name, secret in stack.secrets(tcp).items():
        data = stack.data(secret)
        for key, value in data.items():
            if key.endswith(".crt") and key != "ca.crt":
                found[(name, key)] = spki(value)
            elif key == "sa.pub":
                found[(name, key)] = serialization.load_pem_public_key(value).public_bytes(
                    serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
                )
            elif key.endswith((".conf", ".svc")) or key == "kubeconfig":
                config = yaml.safe_load(value)
                for user in config.get("users") or []:
                    cert = base64.b64decode(user["user"]["client-certificate-data"])
                    found[(name, f"{key}:{user['name']}")] = spki(cert)
    return found


def versions(stack: Stack, tcp: str) -> dict[str, str]:
    return {n: s["metadata"]["resourceVersion"] for n, s in stack.secrets(tcp).items()}


def reissued(stack: Stack, tcp: str, before: dict[str, str]) -> int:
    return sum(v != before.get(n) for n, v in versions(stack, tcp).items())


def wait_reissued(stack: Stack, tcp: str, before: dict[str, str]) -> None:
    """Until the TCP's four x509 Secrets and four kubeconfigs are new, and its rotations done."""
    wait_for(lambda: reissued(stack, tcp, before) >= 8, 60, f"the leaves of {tcp} re-issued")
    wait_for(lambda: stack.rotations_done(tcp), 60, f"the rotations of {tcp}")


def test_no_key_is_ever_handed_out_twice(stack: Stack) -> None:
    seen: list[bytes] = []
    for round_ in range(3):
        before = {t: versions(stack, t) for t in TCPS}
        if round_:
            for tcp in TCPS:
                stack.certlc("rotate", f"default/{tcp}", "x509")
                stack.certlc("rotate", f"default/{tcp}", "kubeconfig")
            for tcp in TCPS:
                wait_reissued(stack, tcp, before[tcp])
        for tcp in TCPS:
            now = versions(stack, tcp)
            # the key pairs of this round: every one at first, then those of re-issued Secrets
            seen.extend(
                key
                for (name, _), key in public_keys(stack, tcp).items()
                if round_ == 0 or now[name] != before[tcp].get(name)
            )
    assert len(seen) > 120, len(seen)  # about 11 per TCP and round
    assert len(set(seen)) == len(seen), f"{len(seen) - len(set(seen))} keys used twice"
