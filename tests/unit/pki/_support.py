"""Shared values for the libs.pki unit tests: a fixed clock, a TCP, and one minted set.

Minting RSA keys costs tens of milliseconds each, so the full set of a TCP is minted once per
session (`functools.cache`) and handed out as copies that tests may mutate.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from libs.pki import (
    PROFILES,
    SecretKind,
    Signer,
    SignerKeyPair,
    TcpSpec,
    managed_kinds,
    mint_ca,
    mint_secret_data,
    signer_from_secret_data,
)

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
ENDPOINTS = ("etcd-0.etcd.kamaji-system.svc:2379",)


def tcp_resource(**network: Any) -> dict[str, Any]:
    """A TenantControlPlane object like the seed's k8s-126, konnectivity on."""
    return {
        "apiVersion": "kamaji.clastix.io/v1alpha1",
        "kind": "TenantControlPlane",
        "metadata": {"name": "k8s-126", "namespace": "default", "uid": "0b0e-uid"},
        "spec": {
            "dataStore": "default",
            "networkProfile": {"address": "172.18.255.200", "port": 6443, **network},
            "addons": {"konnectivity": {"server": {"port": 8132}}},
        },
    }


TCP = TcpSpec.from_resource(tcp_resource(certSANs=["api.example.com", "10.0.0.10"]))


@dataclass(frozen=True)
class MintedSet:
    """Every Secret of TCP, minted at NOW, with the three signers."""

    data: dict[SecretKind, dict[str, bytes]]
    signers: dict[Signer, SignerKeyPair]

    def secret(self, kind: SecretKind) -> dict[str, bytes]:
        """A copy of one Secret's data, safe to mutate."""
        return dict(self.data[kind])

    def signer_pem(self, kind: SecretKind) -> bytes | None:
        """The certificate of the CA that signs `kind`, or None."""
        signer = self.signers.get(PROFILES[kind].signer)
        return signer.cert_pem if signer else None

    @property
    def ca_pem(self) -> bytes:
        return self.signers[Signer.CA].cert_pem


@functools.cache
def minted() -> MintedSet:
    """The full set of TCP (konnectivity on, etcd datastore), minted once."""
    data: dict[SecretKind, dict[str, bytes]] = {}
    signers: dict[Signer, SignerKeyPair] = {Signer.DATASTORE_CA: mint_ca("datastore-ca", now=NOW)}
    for kind in managed_kinds(TCP):
        prof = PROFILES[kind]
        data[kind] = mint_secret_data(
            kind, TCP, now=NOW, signer=signers.get(prof.signer), datastore_endpoints=ENDPOINTS
        )
        if kind is SecretKind.CA:
            signers[Signer.CA] = signer_from_secret_data(kind, data[kind])
        if kind is SecretKind.FRONT_PROXY_CA:
            signers[Signer.FRONT_PROXY_CA] = signer_from_secret_data(kind, data[kind])
    return MintedSet(data, signers)


@functools.cache
def other_ca() -> SignerKeyPair:
    """A CA that signs nothing of TCP: for wrong-signer cases."""
    return mint_ca("kubernetes", now=NOW)


CERT_KINDS = tuple(
    k for k, p in PROFILES.items() if p.cert_key is not None or p.kubeconfig_key is not None
)
"""Kinds that carry a certificate (all but sa-certificate and datastore-config)."""
