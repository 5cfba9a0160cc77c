"""Safe encoding of Kubernetes names into NATS subject tokens.

Kubernetes object names are DNS-1123 subdomains (lower-case letters, digits, '-' and '.'),
namespaces are DNS-1123 labels. A '.' separates NATS subject tokens, so it cannot appear in a
token. '_' never appears in a Kubernetes name, which makes '.' -> '_' a reversible mapping.
Anything that is not a valid Kubernetes name is refused here rather than smuggled into a subject
(a '*' or '>' would turn a subject into a wildcard).
"""

from __future__ import annotations

import re

_NAME = re.compile(r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")
_TOKEN = re.compile(r"^[a-z0-9]([-a-z0-9_]*[a-z0-9])?$")
MAX_NAME_LENGTH = 253


class InvalidNameError(ValueError):
    """A value that is not a Kubernetes object name was about to become a subject token."""


def is_kube_name(name: str) -> bool:
    """True for a DNS-1123 subdomain, the form of every object name certlc handles."""
    return 0 < len(name) <= MAX_NAME_LENGTH and bool(_NAME.match(name))


def encode_token(name: str) -> str:
    """Kubernetes name -> one NATS subject token."""
    if not is_kube_name(name):
        raise InvalidNameError(f"not a Kubernetes object name: {name!r}")
    return name.replace(".", "_")


def decode_token(token: str) -> str:
    """One NATS subject token -> the Kubernetes name it encodes."""
    if not _TOKEN.match(token):
        raise InvalidNameError(f"not an encoded Kubernetes name: {token!r}")
    return token.replace("_", ".")
