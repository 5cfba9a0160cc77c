"""The vocabulary of renewal: named reason codes and the `Reason` value that carries one.

A reason names the Secret kind and the data key at fault, with a message for humans; the code
is what policies match on (the lifecycle service maps codes to actions, the CLI to a status).
Kept apart from the checks so that services can import the vocabulary alone.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

from libs.pki.profiles import SecretKind


class ReasonCode(StrEnum):
    """Why a Secret must be re-issued (or, for a CA, why it is broken)."""

    MISSING_KEY = "missing-key"  # a data key of the profile is absent or empty
    UNPARSEABLE = "unparseable"  # a certificate, key or kubeconfig does not parse
    NOT_YET_VALID = "not-yet-valid"  # NotBefore is in the future
    EXPIRED = "expired"  # NotAfter has passed
    EXPIRING = "expiring"  # NotAfter < now + deadline (the day before, by default)
    KEY_MISMATCH = "key-mismatch"  # the private key is not the certificate's (or sa.pub's)
    WRONG_SIGNER = "wrong-signer"  # not signed by the CA the profile names, as it is now
    NOT_CA = "not-ca"  # a CA Secret whose certificate says CA:FALSE
    CA_COPY_MISMATCH = "ca-copy-mismatch"  # tls.crt/tls.key differ from ca.crt/ca.key
    SUBJECT_MISMATCH = "subject-mismatch"  # CN or O differ from the profile
    SAN_MISSING = "san-missing"  # a required SAN is absent (extra SANs are fine)
    KUBECONFIG_CA_MISMATCH = "kubeconfig-ca-mismatch"  # embedded CA is not the current CA
    KUBECONFIG_SERVER_MISMATCH = "kubeconfig-server-mismatch"  # server URL is not the profile's
    EXTERNAL_COPY_MISMATCH = "external-copy-mismatch"  # not the DataStore's client certificate


EXPIRY_CODES = frozenset({ReasonCode.EXPIRED, ReasonCode.EXPIRING})
"""Codes about time alone: re-issuing with the same inputs fixes them."""


@dataclass(frozen=True, slots=True)
class Reason:
    """One reason, naming the Secret kind and the data key; `message` is for humans."""

    code: ReasonCode
    kind: SecretKind
    key: str
    message: str

    def __str__(self) -> str:
        return self.message


def reason_codes(reasons: Iterable[Reason]) -> frozenset[ReasonCode]:
    """The set of codes among `reasons`."""
    return frozenset(r.code for r in reasons)


def only_expiry(reasons: Iterable[Reason]) -> bool:
    """True when there are reasons and all of them are about time alone."""
    codes = reason_codes(reasons)
    return bool(codes) and codes <= EXPIRY_CODES
