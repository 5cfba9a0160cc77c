"""Typed errors of the PKI library: what went wrong, named precisely, never with key material.

Every error raised by `libs.pki` is a `PkiError`. Callers map them onto their own policy
(a bad TenantControlPlane spec is permanent; a bad Secret is re-issued). Messages name the
Secret kind and the data key at fault, never the bytes: a private key must not reach a log
through an exception, so loaders raise these errors `from None` rather than chaining the
parser's exception.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from libs.pki.profiles import SecretKind


__all__ = ["KubeconfigError", "PkiError", "SecretDataError", "SignerError", "SpecError"]


class PkiError(Exception):
    """Base class of every error raised by libs.pki.

    Every PkiError is permanent: the functions are pure, so the same input fails the same way
    again. A handler should not retry it (JetStream `term()`, not `nak()`); it should report it,
    or re-issue the Secret that caused it.
    """

    permanent: bool = True


class SpecError(PkiError):
    """A TenantControlPlane resource (or the spec built from it) cannot shape certificates."""


class SignerError(PkiError):
    """A signer (CA certificate and key) is missing, malformed, not a CA, or mismatched."""


class KubeconfigError(PkiError):
    """A kubeconfig cannot be parsed or lacks the current context's credentials."""


class SecretDataError(PkiError):
    """The data of one Secret is wrong: names the Secret kind and the offending key."""

    def __init__(self, kind: SecretKind, key: str, problem: str) -> None:
        self.kind = kind
        self.key = key
        self.problem = problem
        super().__init__(f"{kind.value} Secret, key {key!r}: {problem}")
