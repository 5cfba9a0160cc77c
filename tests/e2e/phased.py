"""What the phased-rotation tests read and check: a TCP's credentials as OpenSSL uses them,
its API server, its rotation records, and RS256 tokens against `sa.pub`."""

from __future__ import annotations

import base64
import json
import re
import subprocess
from pathlib import Path

import yaml

from tests.e2e.harness import Stack, wait_for
from tests.e2e.tls import Credential, Server


def secret_data(stack: Stack, tcp: str, suffix: str) -> dict[str, bytes]:
    return stack.data(stack.secrets(tcp)[f"{tcp}-{suffix}"])


def client_credentials(stack: Stack, tcp: str, when: str) -> list[Credential]:
    """Every kubeconfig of the TCP and the kubelet client certificate, as they are now."""
    creds: list[Credential] = []
    for name, secret in sorted(stack.secrets(tcp).items()):
        if not name.endswith("kubeconfig"):
            continue
        for key, value in sorted(stack.data(secret).items()):
            config = yaml.safe_load(value)
            if not isinstance(config, dict) or "users" not in config:
                continue
            user = config["users"][0]["user"]
            creds.append(
                Credential(
                    f"{when}:{name}/{key}",
                    base64.b64decode(user["client-certificate-data"]),
                    base64.b64decode(user["client-key-data"]),
                    base64.b64decode(
                        config["clusters"][0]["cluster"]["certificate-authority-data"]
                    ),
                )
            )
    kubelet = secret_data(stack, tcp, "api-server-kubelet-client-certificate")
    creds.append(
        Credential(
            f"{when}:kubelet-client",
            kubelet["apiserver-kubelet-client.crt"],
            kubelet["apiserver-kubelet-client.key"],
            secret_data(stack, tcp, "ca")["ca.crt"],
        )
    )
    return creds


def front_proxy_credential(stack: Stack, tcp: str, when: str) -> Credential:
    client = secret_data(stack, tcp, "front-proxy-client-certificate")
    return Credential(
        f"{when}:front-proxy-client",
        client["front-proxy-client.crt"],
        client["front-proxy-client.key"],
        secret_data(stack, tcp, "ca")["ca.crt"],  # verifies the server (the API server here)
    )


def api_server(stack: Stack, tcp: str, client_ca: str = "ca") -> Server:
    served = secret_data(stack, tcp, "api-server-certificate")
    bundle_key = "ca.crt" if client_ca == "ca" else "front-proxy-ca.crt"
    bundle = secret_data(stack, tcp, client_ca)[bundle_key]
    return Server(served["apiserver.crt"], served["apiserver.key"], bundle)


def certificates_in(pem: bytes) -> int:
    return pem.count(b"-----BEGIN CERTIFICATE-----")


def rotation_id(output: str) -> str:
    found = re.search(r"rotation (\w+) accepted", output)
    assert found, output
    return found.group(1)


def wait_step(stack: Stack, tcp: str, rid: str, step: str, phase: str = "waiting") -> None:
    def there() -> bool:
        record = stack.tap.records(tcp).get(rid) or {}
        return record.get("step") == step and record.get("phase") == phase

    wait_for(there, 120, f"{tcp}: rotation {rid} {phase} after {step}")


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def sign_token(workdir: Path, key: bytes, subject: str) -> tuple[bytes, bytes]:
    """An RS256 JWT signed with `key` by openssl: (signing input, signature)."""
    header = _b64url(json.dumps({"alg": "RS256", "typ": "JWT"}).encode())
    payload = _b64url(
        json.dumps({"sub": subject, "iss": "https://kubernetes.default.svc"}).encode()
    )
    signing_input = f"{header}.{payload}".encode()
    (workdir / "sa.key").write_bytes(key)
    (workdir / "input").write_bytes(signing_input)
    signature = subprocess.run(
        ["openssl", "dgst", "-sha256", "-sign", str(workdir / "sa.key"), str(workdir / "input")],
        capture_output=True,
        check=True,
    ).stdout
    return signing_input, signature


def verifies(workdir: Path, sa_pub: bytes, token: tuple[bytes, bytes]) -> bool:
    """kube-apiserver's rule: a token verifies if any public key of the file verifies it."""
    (workdir / "input").write_bytes(token[0])
    (workdir / "sig").write_bytes(token[1])
    end = b"-----END PUBLIC KEY-----\n"
    keys = [block + end for block in sa_pub.split(end) if b"BEGIN" in block]
    assert keys, "sa.pub holds no public key"
    for index, key in enumerate(keys):
        path = workdir / f"pub-{index}.pem"
        path.write_bytes(key)
        out = subprocess.run(
            ["openssl", "dgst", "-sha256", "-verify", str(path), "-signature",
             str(workdir / "sig"), str(workdir / "input")],
            capture_output=True,
            check=False,
        )  # fmt: skip
        if out.returncode == 0:
            return True
    return False


def fingerprints(pem: bytes) -> list[bytes]:
    return [c.encode() for c in re.findall(r"-----BEGIN CERTIFICATE-----[^-]+", pem.decode())]
