"""The `/scale` subresource: an `autoscaling/v1 Scale` view of a replicated object. Pure.

`kubectl scale` and autoscalers read and write replicas through it. The view is built from
the paths a kind declares (`ScalePaths`: Deployments use `.spec.replicas`; Kamaji's
TenantControlPlane `.spec.controlPlane.deployment.replicas`), and writing it changes only
that spec field of the underlying object.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from certlc_dev.kubesim.errors import BadRequest
from certlc_dev.kubesim.resources import ResourceType, ScalePaths
from certlc_dev.kubesim.tables import json_path


def _selector_string(selector: Any) -> str:
    if not isinstance(selector, Mapping):
        return ""
    parts = [f"{k}={v}" for k, v in sorted((selector.get("matchLabels") or {}).items())]
    return ",".join(parts)


def _paths(rt: ResourceType) -> ScalePaths:
    if rt.scale is None:
        raise BadRequest(f"{rt.group_resource} has no scale subresource")
    return rt.scale


def scale_of(rt: ResourceType, obj: Mapping[str, Any]) -> dict[str, Any]:
    """The Scale object for `obj`."""
    paths = _paths(rt)
    meta = obj.get("metadata") or {}
    kept = ("name", "namespace", "uid", "resourceVersion", "creationTimestamp")
    status: dict[str, Any] = {"replicas": int(json_path(obj, paths.status_replicas) or 0)}
    selector = (
        json_path(obj, paths.selector)
        if paths.selector
        else _selector_string((obj.get("spec") or {}).get("selector"))
    )
    if selector:
        status["selector"] = selector
    return {
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": {k: meta[k] for k in kept if k in meta},
        "spec": {"replicas": int(json_path(obj, paths.spec_replicas) or 0)},
        "status": status,
    }


def desired_replicas(scale: Any) -> int:
    """`spec.replicas` of a Scale body; BadRequest when missing or not a whole number."""
    replicas = (scale.get("spec") or {}).get("replicas") if isinstance(scale, Mapping) else None
    if not isinstance(replicas, int) or isinstance(replicas, bool) or replicas < 0:
        raise BadRequest(f"Scale.spec.replicas must be a non-negative integer, got {replicas!r}")
    return replicas


def with_replicas(rt: ResourceType, obj: dict[str, Any], replicas: int) -> dict[str, Any]:
    """`obj` (modified in place) with the spec replicas path set to `replicas`."""
    parts = _paths(rt).spec_replicas.strip(".").split(".")
    target = obj
    for part in parts[:-1]:
        child = target.get(part)
        if not isinstance(child, dict):
            child = target[part] = {}
        target = child
    target[parts[-1]] = replicas
    return obj
