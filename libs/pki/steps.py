"""The steps of a phased rotation, and what each writes. Pure and free of cryptography: the
contracts and the lifecycle policy use it; the Secret data of each step is libs/pki/phased.py.

A phased rotation replaces a signer (the TCP CA, the front-proxy CA, the service-account key)
in steps, each rolled out before the next: prepare (the new signer trusted beside the old one,
which still signs), swap (the new one signs), complete (the old one dropped). Backing out
(abort): after prepare (or revert) it completes with the old signer kept; after swap it reverts
(the old signer signs again, both still trusted: the state after prepare).
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from datetime import timedelta

from libs.pki.errors import PkiError
from libs.pki.profiles import ExtKeyUsage, Lifecycle, SecretKind, dependents, profile

NEXT_CERT = "certlc-next.crt"
NEXT_KEY = "certlc-next.key"
PREVIOUS_CERT = "certlc-previous.crt"
PREVIOUS_KEY = "certlc-previous.key"
CROSS_CERT = "certlc-cross.crt"  # the new CA signed by the old one, served along (swap)
PHASE_KEYS = (NEXT_CERT, NEXT_KEY, PREVIOUS_CERT, PREVIOUS_KEY, CROSS_CERT)
"""Data keys a phased rotation keeps in the signer's Secret between its steps."""

PHASED_KINDS = (SecretKind.CA, SecretKind.FRONT_PROXY_CA, SecretKind.SA)
"""The Secrets that can be rotated in phases."""

DEFAULT_SA_OVERLAP = timedelta(hours=48)
"""How long both SA public keys stay trusted after the switch (CERTLC_SA_OVERLAP). Tokens
signed by the old key stop verifying at complete. A pod's projected token is re-signed by the
kubelet at 80 % of its lifetime or after 24 h, whichever comes first (kube-apiserver extends a
pod's 1 h token to a year with --service-account-extend-token-expiration, its default, so the
24 h bound is the one that applies); 48 h covers that twice. Legacy token Secrets and other
long-lived tokens are not covered: see docs/operations.md."""


class RotationStep(enum.StrEnum):
    """The step of a phased rotation a command or record stands for ("" for any other)."""

    NONE = ""
    PREPARE = "prepare"
    SWAP = "swap"
    COMPLETE = "complete"
    REVERT = "revert"  # an abort after swap: back to the state after prepare

    @property
    def next(self) -> RotationStep | None:
        """The step after this one (forward); None after complete."""
        return _FORWARD.get(self)

    @property
    def abort(self) -> RotationStep | None:
        """The step that backs out of a rotation waiting after this one; None after complete."""
        return _BACK.get(self)


_FORWARD = {
    RotationStep.PREPARE: RotationStep.SWAP,
    RotationStep.REVERT: RotationStep.SWAP,
    RotationStep.SWAP: RotationStep.COMPLETE,
}
_BACK = {
    RotationStep.PREPARE: RotationStep.COMPLETE,
    RotationStep.REVERT: RotationStep.COMPLETE,
    RotationStep.SWAP: RotationStep.REVERT,
}
WAITING_STEPS = frozenset(_FORWARD)
"""Steps after which a rotation waits (for the operator, or its hold) before the next."""


def round_id(rotation_id: str, step: RotationStep) -> str:
    """One step's round of a phased rotation, "<id>/<step>": it marks that step's writes and
    messages apart from the other steps' (the rotation id alone for an unphased rotation)."""
    return f"{rotation_id}/{step.value}" if step is not RotationStep.NONE else rotation_id


class PhaseError(PkiError):
    """A step cannot be taken from what the Secret holds (the step before it is not there)."""


def step_kinds(
    kind: SecretKind, step: RotationStep, present: Sequence[SecretKind]
) -> tuple[SecretKind, ...]:
    """The Secrets step `step` of the phased rotation of `kind` writes, among `present`: the
    signer itself always; at swap and revert everything it signs (re-issued by the signer that
    now signs); at prepare and complete the kubeconfigs it signs, whose certificate-authority-
    data is the bundle, and at complete of the TCP CA its server certificates too (served
    without the cross-signed CA again)."""
    if kind not in PHASED_KINDS:
        raise PhaseError(f"{kind.value} cannot be rotated in phases")
    signed = dependents(kind, present)
    if step in (RotationStep.SWAP, RotationStep.REVERT):
        return (kind, *signed)
    carries = [k for k in signed if profile(k).lifecycle is Lifecycle.KUBECONFIG]
    if step is RotationStep.COMPLETE and kind is SecretKind.CA:
        carries += [k for k in signed if ExtKeyUsage.SERVER_AUTH in profile(k).ext_key_usages]
    return (kind, *sorted(carries, key=signed.index))


__all__ = [
    "CROSS_CERT",
    "DEFAULT_SA_OVERLAP",
    "NEXT_CERT",
    "NEXT_KEY",
    "PHASED_KINDS",
    "PHASE_KEYS",
    "PREVIOUS_CERT",
    "PREVIOUS_KEY",
    "WAITING_STEPS",
    "PhaseError",
    "RotationStep",
    "round_id",
    "step_kinds",
]
