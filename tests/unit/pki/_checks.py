"""Helpers of the renewal_reasons tests: one call with the minted set's defaults."""

from __future__ import annotations

import base64
from datetime import datetime, timedelta
from typing import Any

import yaml

from libs.pki import PROFILES, Category, Reason, ReasonCode, SecretKind, TcpSpec, renewal_reasons

from ._support import NOW, TCP, minted

K = SecretKind
R = ReasonCode
YEAR = timedelta(hours=8760)
LEAF_KINDS = [k for k, p in PROFILES.items() if p.category in (Category.X509, Category.KUBECONFIG)]
UNSET: Any = object()


def check(  # the kind's Secret from the minted set unless `data` is given
    kind: SecretKind,
    data: dict[str, bytes] | None = None,
    *,
    now: datetime = NOW,
    tcp: TcpSpec = TCP,
    deadline: timedelta = timedelta(hours=24),
    current: bytes | None = UNSET,
    signer: bytes | None = UNSET,
) -> tuple[Reason, ...]:
    return renewal_reasons(
        kind,
        minted().secret(kind) if data is None else data,
        tcp,
        now=now,
        deadline=deadline,
        current_ca_pem=minted().ca_pem if current is UNSET else current,
        signer_ca_pem=minted().signer_pem(kind) if signer is UNSET else signer,
    )


def codes(reasons: tuple[Reason, ...]) -> set[str]:
    return {r.code.value for r in reasons}


def kubeconfig_with(kind: SecretKind, **user_fields: bytes) -> dict[str, bytes]:
    key = PROFILES[kind].kubeconfig_key
    assert key is not None
    doc = yaml.safe_load(minted().secret(kind)[key])
    for field, value in user_fields.items():
        doc["users"][0]["user"][field.replace("_", "-")] = base64.b64encode(value).decode()
    return {key: yaml.safe_dump(doc).encode()}
