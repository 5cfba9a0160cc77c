"""Names, labels and the checksum annotation of the Secrets of a TenantControlPlane.

Pure functions mapping between a Secret's name and its kind, and computing the metadata Kamaji
puts on every Secret: the `kamaji.clastix.io/*` labels, the lifecycle label, and the checksum
annotation (md5 hex of the data values concatenated in sorted-key order, as Kamaji computes it,
so that our Secrets and Kamaji's compare equal).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping

from libs.pki.profiles import PROFILES, SecretKind
from libs.pki.tcp import TcpSpec

PROJECT_LABEL = "kamaji.clastix.io/project"
PROJECT_VALUE = "kamaji"
NAME_LABEL = "kamaji.clastix.io/name"
COMPONENT_LABEL = "kamaji.clastix.io/component"
LIFECYCLE_LABEL = "kamaji.clastix.io/certificate_lifecycle_controller"
CHECKSUM_ANNOTATION = "kamaji.clastix.io/checksum"
PAUSED_ANNOTATION = "kamaji.clastix.io/paused"
ROTATE_ANNOTATION = "certs.kamaji.clastix.io/rotate"
CERTLC_PREFIX = "certlc.kamaji.clastix.io/"
"""certlc's own TCP annotations (per-TCP settings) begin with this; the watcher passes them on."""

# Longest suffix first, so that a TCP name containing a suffix-like part cannot shadow a kind.
_BY_SUFFIX_LENGTH = sorted(SecretKind, key=lambda k: len(k.value), reverse=True)


def secret_name(tcp_name: str, kind: SecretKind) -> str:
    """`<tcp>-<suffix>`."""
    return f"{tcp_name}-{kind.value}"


def kind_from_secret_name(tcp_name: str, name: str) -> SecretKind | None:
    """The kind of Secret `name` when it belongs to TCP `tcp_name`, else None."""
    prefix = f"{tcp_name}-"
    if not name.startswith(prefix):
        return None
    try:
        return SecretKind(name[len(prefix) :])
    except ValueError:
        return None


def split_secret_name(name: str) -> tuple[str, SecretKind] | None:
    """(tcp name, kind) for a Secret name when the TCP is unknown, else None.

    Prefer `kind_from_secret_name` or the labels when the TCP name is known. This reading is
    unambiguous only because no suffix is a `-`-separated tail of another one (a unit test
    keeps it so); the longest matching suffix wins.
    """
    for kind in _BY_SUFFIX_LENGTH:
        tail = f"-{kind.value}"
        if name.endswith(tail) and len(name) > len(tail):
            return name[: -len(tail)], kind
    return None


def secret_labels(tcp: TcpSpec | str, kind: SecretKind) -> dict[str, str]:
    """The labels of a Secret: project, TCP name, component, and the lifecycle label if any."""
    tcp_name = tcp if isinstance(tcp, str) else tcp.name
    labels = {PROJECT_LABEL: PROJECT_VALUE, NAME_LABEL: tcp_name, COMPONENT_LABEL: kind.value}
    lifecycle = PROFILES[kind].lifecycle
    if lifecycle is not None:
        labels[LIFECYCLE_LABEL] = lifecycle.value
    return labels


def checksum(data: Mapping[str, bytes]) -> str:
    """md5 hex of the values concatenated in sorted-key order (Kamaji's map checksum)."""
    digest = hashlib.md5(usedforsecurity=False)
    for key in sorted(data):
        digest.update(data[key])
    return digest.hexdigest()


def secret_annotations(data: Mapping[str, bytes]) -> dict[str, str]:
    """The annotations of a Secret carrying `data`: the checksum."""
    return {CHECKSUM_ANNOTATION: checksum(data)}
