"""Kubernetes objects for the watcher tests: the minted Secrets of the pki tests' TCP."""

from __future__ import annotations

import base64
from typing import Any

from libs.pki import SecretKind, secret_labels, secret_name
from tests.unit.pki._support import TCP, minted, tcp_resource


def secret_object(kind: SecretKind, version: str = "1") -> dict[str, Any]:
    """The Secret `kind` of TCP as the API serves it."""
    data = minted().secret(kind)
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {
            "name": secret_name(TCP.name, kind),
            "namespace": TCP.namespace,
            "uid": f"uid-{kind.value}-{version}",
            "resourceVersion": version,
            "labels": secret_labels(TCP, kind),
        },
        "type": "Opaque",
        "data": {k: base64.b64encode(v).decode() for k, v in data.items()},
    }


def tcp_object(version: str = "1") -> dict[str, Any]:
    obj = tcp_resource(certSANs=["api.example.com", "10.0.0.10"])
    obj["metadata"]["resourceVersion"] = version
    return obj


KINDS = tuple(minted().data)
"""Every kind minted for TCP, CAs first."""
