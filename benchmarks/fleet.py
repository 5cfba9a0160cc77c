"""Seeding a fleet of TenantControlPlanes straight into the stand-in, already fully certified.

Each TCP gets what Kamaji would have made (the TCP with its provisioned status, optionally its
Deployment) and the 13 Secrets certlc would have written, minted with `libs.pki` exactly as the
issuer mints them (`mint_secret_data`, the issuer's labels, checksum annotation and owner
reference), so that certlc finds every one of them valid and has nothing to do.

Only the private keys are not fresh: RSA-2048 key generation costs ~40 ms, so 13,000 Secrets
would take ~9 minutes of key generation alone. Keys are drawn from a small pool generated once
per run (`KeyPool`); every certificate is still its own (own serial, subject, SANs, signer), and
every Secret passes every check the watcher runs (the key matches the certificate, the signer is
the TCP's CA, the SANs and kubeconfig servers are the TCP's).
"""

from __future__ import annotations

import base64
import itertools
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from certlc_dev.devenv import seed
from libs.pki import (
    CHECKSUM_ANNOTATION,
    KeyAlgorithm,
    SecretKind,
    SignerKeyPair,
    TcpSpec,
    checksum,
    mint_secret_data,
    profile,
    secret_labels,
    secret_name,
    signer_from_secret_data,
)
from libs.pki.keys import KeySource, PrivateKey, generate_private_key

Obj = dict[str, Any]
SIGNED_BY_CA = (
    SecretKind.APISERVER,
    SecretKind.APISERVER_KUBELET_CLIENT,
    SecretKind.KONNECTIVITY_CERTIFICATE,
    SecretKind.ADMIN_KUBECONFIG,
    SecretKind.CONTROLLER_MANAGER_KUBECONFIG,
    SecretKind.SCHEDULER_KUBECONFIG,
    SecretKind.KONNECTIVITY_KUBECONFIG,
)


class KeyPool:
    """`size` RSA-2048 keys, handed out in turn (a key source for `mint_secret_data`): for
    fixtures only; the issuer never reuses a key (libs/pki/reserve.py)."""

    def __init__(self, size: int = 32) -> None:
        self.keys = [generate_private_key(KeyAlgorithm.RSA) for _ in range(size)]
        self._next = itertools.cycle(self.keys)

    def take(self, algorithm: KeyAlgorithm = KeyAlgorithm.RSA) -> PrivateKey:
        if algorithm is not KeyAlgorithm.RSA:
            raise ValueError("the key pool holds RSA keys only")
        return next(self._next)


def _b64(data: Mapping[str, bytes]) -> dict[str, str]:
    return {k: base64.b64encode(v).decode() for k, v in data.items()}


def secret_object(tcp: TcpSpec, kind: SecretKind, data: Mapping[str, bytes]) -> Obj:
    """The Secret as the issuer writes it: labels, checksum annotation, owner, type, data."""
    meta: Obj = {
        "name": secret_name(tcp.name, kind),
        "namespace": tcp.namespace,
        "labels": secret_labels(tcp, kind),
        "annotations": {CHECKSUM_ANNOTATION: checksum(data)},
        "ownerReferences": [
            {
                "apiVersion": "kamaji.clastix.io/v1alpha1",
                "kind": "TenantControlPlane",
                "name": tcp.name,
                "uid": tcp.uid,
                "controller": True,
                "blockOwnerDeletion": True,
            }
        ],
    }
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": meta,
        "type": profile(kind).secret_type,
        "data": _b64(data),
    }


def mint_tcp_secrets(
    tcp: TcpSpec,
    *,
    datastore_signer: SignerKeyPair,
    endpoints: tuple[str, ...],
    now: datetime,
    keys: KeySource = generate_private_key,
) -> list[Obj]:
    """The 13 Secrets of an etcd TCP with konnectivity, CAs first, new keys from `keys`."""
    data: dict[SecretKind, dict[str, bytes]] = {}
    for kind in (SecretKind.CA, SecretKind.FRONT_PROXY_CA, SecretKind.SA):
        data[kind] = mint_secret_data(kind, tcp, now=now, keys=keys)
    ca = signer_from_secret_data(SecretKind.CA, data[SecretKind.CA])
    front_proxy = signer_from_secret_data(
        SecretKind.FRONT_PROXY_CA, data[SecretKind.FRONT_PROXY_CA]
    )
    for kind in SIGNED_BY_CA:
        data[kind] = mint_secret_data(kind, tcp, now=now, signer=ca, keys=keys)
    data[SecretKind.FRONT_PROXY_CLIENT] = mint_secret_data(
        SecretKind.FRONT_PROXY_CLIENT, tcp, now=now, signer=front_proxy, keys=keys
    )
    data[SecretKind.DATASTORE_CERTIFICATE] = mint_secret_data(
        SecretKind.DATASTORE_CERTIFICATE,
        tcp,
        now=now,
        signer=datastore_signer,
        datastore_endpoints=endpoints,
        keys=keys,
    )
    data[SecretKind.DATASTORE_CONFIG] = mint_secret_data(
        SecretKind.DATASTORE_CONFIG, tcp, now=now, datastore_endpoints=endpoints
    )
    return [secret_object(tcp, kind, d) for kind, d in data.items()]


@dataclass(frozen=True)
class Fleet:
    names: tuple[str, ...]
    secrets: int


def _datastore(sim: Any) -> tuple[SignerKeyPair, tuple[str, ...]]:
    """The signer and endpoints of the `default` etcd DataStore (seeded beforehand)."""
    ds = sim.get("datastores", "default", "")
    endpoints = tuple(str(e) for e in ds["spec"].get("endpoints") or ())
    certs = sim.get("secrets", "default-etcd-certs", seed.DATASTORE_NAMESPACE)
    raw = {k: base64.b64decode(v) for k, v in certs["data"].items()}
    return signer_from_secret_data(SecretKind.CA, raw), endpoints


def create_tcp(sim: Any, name: str, *, deployment: bool) -> TcpSpec:
    """The TCP (provisioned status included) and, if asked, its control-plane Deployment."""
    if deployment:
        sim.create(seed.deployment_object(name))
    body = seed.tcp_object(name)
    body["status"] = seed.tcp_status(name)
    created = sim.create(body, keep_status=True)
    return TcpSpec.from_resource(created)


def seed_fleet(
    sim: Any,
    count: int,
    pool: KeyPool,
    *,
    prefix: str = "tcp",
    deployments: bool = False,
    progress: Callable[[int], None] | None = None,
) -> Fleet:
    """`count` TCPs named `<prefix>-0000`..., each with its 13 valid Secrets."""
    signer, endpoints = _datastore(sim)
    now = datetime.now(UTC)
    names: list[str] = []
    secrets = 0
    for i in range(count):
        name = f"{prefix}-{i:04d}"
        tcp = create_tcp(sim, name, deployment=deployments)
        minted = mint_tcp_secrets(
            tcp, datastore_signer=signer, endpoints=endpoints, now=now, keys=pool.take
        )
        for obj in minted:
            sim.create(obj)
            secrets += 1
        names.append(name)
        if progress is not None and (i + 1) % 100 == 0:
            progress(i + 1)
    return Fleet(tuple(names), secrets)
