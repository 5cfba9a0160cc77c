"""Phased rotation of a signing Secret: the TCP CA, the front-proxy CA, the service-account key.

A phased rotation replaces a signer without cutting off anyone who holds the old one. It runs
in three steps, each followed by a rollout of the control plane; between them the rotation
waits (for the operator, or for an overlap to pass):

| step     | `ca.crt` (trust) | `ca.key` (signs) | kept for later                        |
|----------|------------------|------------------|---------------------------------------|
| -        | old              | old              |                                       |
| prepare  | old, new         | old              | `certlc-next.crt`/`.key`: new         |
| swap     | new, old         | new              | `certlc-previous.crt`/`.key`: old,    |
|          |                  |                  | `certlc-cross.crt`: new signed by old |
| complete | new              | new              |                                       |

(for the front-proxy CA read `front-proxy-ca.crt`/`.key`; for the SA keypair read `sa.pub`, the
public keys kube-apiserver verifies tokens with, and `sa.key`, the key it signs them with.)

The first PEM block of the bundle is always the certificate of the key beside it: Kamaji reads
exactly that pair (`internal/crypto/crypto.go`, `ParseCertificateBytes` and
`ParsePublicKeyBytes` decode the first block) and so does kube-controller-manager's signer, so
the Secret is valid for both in every step. What each step re-issues besides the signer is in
`libs/pki/steps.py`, `step_kinds`. Pure: the new signer's data is minted by the caller.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from libs.pki.issue import cross_sign, load_signer
from libs.pki.keys import (
    certificate_pem,
    load_certificate,
    load_certificates,
    load_private_key,
    load_public_key,
    public_key_pem,
)
from libs.pki.profiles import PROFILES, Category, SecretKind
from libs.pki.steps import (
    CROSS_CERT,
    NEXT_CERT,
    NEXT_KEY,
    PHASED_KINDS,
    PREVIOUS_CERT,
    PREVIOUS_KEY,
    PhaseError,
    RotationStep,
)


def _keys(kind: SecretKind) -> tuple[str, str]:
    """(the bundle's data key, the signing key's data key) of a phased kind."""
    if kind not in PHASED_KINDS:
        raise PhaseError(f"{kind.value} cannot be rotated in phases")
    prof = PROFILES[kind]
    bundle = prof.cert_key if prof.category is Category.CA else "sa.pub"
    if bundle is None or prof.private_key_key is None:
        raise PhaseError(f"{kind.value} cannot be rotated in phases")
    return bundle, prof.private_key_key


def _first(kind: SecretKind, bundle: bytes) -> bytes:
    """The first entry of a bundle, normalised: a certificate, or the SA public key."""
    if kind is SecretKind.SA:
        return public_key_pem(load_public_key(bundle))
    return certificate_pem(load_certificates(bundle)[0])


def bundle_entries(kind: SecretKind, bundle: bytes) -> int:
    """How many certificates (or SA public keys) a bundle holds."""
    if kind is SecretKind.SA:
        return bundle.count(b"-----BEGIN PUBLIC KEY-----")
    return len(load_certificates(bundle))


def _public_of(kind: SecretKind, key_pem: bytes) -> bytes:
    if kind is not SecretKind.SA:
        raise PhaseError(f"{kind.value} keeps its certificate next to its key")
    return public_key_pem(load_private_key(key_pem).public_key())


def _with_copies(kind: SecretKind, data: dict[str, bytes]) -> dict[str, bytes]:
    if kind is SecretKind.CA:  # tls.crt/tls.key copy ca.crt/ca.key (Kamaji copies them back)
        data["tls.crt"], data["tls.key"] = data["ca.crt"], data["ca.key"]
    return data


def _promote(
    kind: SecretKind,
    current: Mapping[str, bytes],
    first: bytes,
    kept: tuple[str, str],
    missing: str,
) -> dict[str, bytes]:
    """The signer kept under `kept` (certificate, key data keys) made the one that signs, first
    in the bundle, the current one after it."""
    bundle_key, key_key = _keys(kind)
    kept_cert, kept_key = kept
    if not current.get(kept_key):
        raise PhaseError(f"{kind.value} holds no such signer ({kept_key}): {missing}")
    promoted = current[kept_key]
    promoted_first = (
        _public_of(kind, promoted)
        if kind is SecretKind.SA
        else _first(kind, current.get(kept_cert, b""))
    )
    return {bundle_key: promoted_first + first, key_key: promoted}


def phased_data(
    kind: SecretKind,
    step: RotationStep,
    current: Mapping[str, bytes],
    fresh: Callable[[], Mapping[str, bytes]],
) -> dict[str, bytes]:
    """The signer Secret's data after `step`, from its `current` data; `fresh` mints a new
    signer's data (called at prepare only). Raises PhaseError when the step before is missing:
    swap needs what prepare kept, revert what swap kept. Complete keeps the signer that signs
    now: the new one after swap, the old one after prepare or revert (an abort)."""
    bundle_key, key_key = _keys(kind)
    if not current.get(bundle_key) or not current.get(key_key):
        raise PhaseError(f"{kind.value} has no {bundle_key} and {key_key} to rotate")
    first, key = _first(kind, current[bundle_key]), current[key_key]
    match step:
        case RotationStep.PREPARE:
            new = fresh()
            new_first = _first(kind, new[bundle_key])
            data = {bundle_key: first + new_first, key_key: key, NEXT_KEY: new[key_key]}
            if kind is not SecretKind.SA:
                data[NEXT_CERT] = new_first
            return _with_copies(kind, data)
        case RotationStep.SWAP:
            data = _promote(kind, current, first, (NEXT_CERT, NEXT_KEY), "prepare first")
            data[PREVIOUS_KEY] = key
            if kind is not SecretKind.SA:
                data[PREVIOUS_CERT] = first
            if kind is SecretKind.CA:
                new_ca = load_certificate(data[bundle_key])
                data[CROSS_CERT] = certificate_pem(cross_sign(new_ca, load_signer(first, key)))
            return _with_copies(kind, data)
        case RotationStep.REVERT:  # back to the state after prepare: the old signer signs
            kept = (PREVIOUS_CERT, PREVIOUS_KEY)
            data = _promote(kind, current, first, kept, "nothing to revert to")
            data[NEXT_KEY] = key
            if kind is not SecretKind.SA:
                data[NEXT_CERT] = first
            return _with_copies(kind, data)
        case RotationStep.COMPLETE:
            return _with_copies(kind, {bundle_key: first, key_key: key})
        case _:
            raise PhaseError(f"{step!r} is not a step of a phased rotation")


def phase_of(kind: SecretKind, data: Mapping[str, bytes]) -> RotationStep:
    """Which state the signer Secret's data is in: prepare (a signer kept for later; also after
    revert), swap (the previous signer kept), else NONE (one signer; also after complete)."""
    if data.get(PREVIOUS_KEY):
        return RotationStep.SWAP
    if data.get(NEXT_KEY):
        return RotationStep.PREPARE
    return RotationStep.NONE


__all__ = ["bundle_entries", "phase_of", "phased_data"]
