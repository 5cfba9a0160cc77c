"""Kubernetes Events on the TenantControlPlane for what rollout does. Pure: builds the object."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Mapping
from datetime import datetime
from typing import Any

REPORTING_COMPONENT = "certlc-rollout"


def event_name(tcp_name: str, key: str | None = None) -> str:
    """`<tcp>.<16 hex digits>`, as kubectl names Events: derived from `key` when given (the same
    occurrence always gets the same name, so recording it twice creates nothing), else random."""
    suffix = hashlib.sha256(key.encode()).hexdigest() if key is not None else uuid.uuid4().hex
    return f"{tcp_name}.{suffix[:16]}"


def tcp_event(
    tcp: Mapping[str, Any],
    *,
    reason: str,
    message: str,
    warning: bool,
    now: datetime,
    key: str | None = None,
) -> dict[str, Any]:
    """A core/v1 Event about `tcp` (reason in CamelCase, as kubectl describe shows it).

    `key` identifies the occurrence reported: with it the Event's name is deterministic."""
    meta = tcp.get("metadata") or {}
    name = str(meta.get("name") or "")
    stamp = now.strftime("%Y-%m-%dT%H:%M:%SZ")
    return {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"name": event_name(name, key), "namespace": meta.get("namespace")},
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
