"""Kubernetes Events on the TenantControlPlane for what rollout does. Pure: builds the object."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

REPORTING_COMPONENT = "certlc-rollout"


def tcp_event(
    tcp: dict[str, Any], *, reason: str, message: str, warning: bool, now: datetime
) -> dict[str, Any]:
    """A core/v1 Event about `tcp` (reason in CamelCase, as kubectl describe shows it)."""
    meta = tcp.get("metadata") or {}
    name = str(meta.get("name") or "")
    stamp = now.strftime("%Y-%m-%dT%H:%M:%SZ")
    return {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"name": f"{name}.{uuid.uuid4().hex[:16]}", "namespace": meta.get("namespace")},
        "involvedObject": {
            "apiVersion": "kamaji.clastix.io/v1alpha1",
            "kind": "TenantControlPlane",
            "name": name,
            "namespace": meta.get("namespace"),
            "uid": meta.get("uid"),
            "resourceVersion": meta.get("resourceVersion"),
        },
        "reason": reason,
        "message": message[:1024],
        "type": "Warning" if warning else "Normal",
        "source": {"component": REPORTING_COMPONENT},
        "reportingComponent": REPORTING_COMPONENT,
        "firstTimestamp": stamp,
        "lastTimestamp": stamp,
        "count": 1,
    }
