"""What the simulated deployment controller writes: pure builders and status arithmetic.

`pod_template_hash` follows the Kubernetes scheme (FNV-32a of the pod template, printed in
decimal and mapped onto the alphabet `bcdfghjklmnpqrstvwxz2456789`, here always 10
characters). The builders make the ReplicaSet and Pod documents the kube-controller-manager
would create; `deployment_status` computes replica counts and the Available/Progressing
conditions from the pods. No I/O, no clock: `now` is an argument.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import msgspec

SAFE_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"
HASH_LABEL = "pod-template-hash"
REVISION = "deployment.kubernetes.io/revision"
NODE_NAME = "kube-sim-node"
HOST_IP = "10.0.0.10"

_canonical = msgspec.json.Encoder(order="sorted")


def pod_template_hash(template: Mapping[str, Any]) -> str:
    """A 10-character hash of a pod template, stable across processes."""
    value = 0x811C9DC5
    for byte in _canonical.encode(template):
        value ^= byte
        value = (value * 0x01000193) & 0xFFFFFFFF
    return "".join(SAFE_ALPHABET[ord(c) % len(SAFE_ALPHABET)] for c in f"{value:010d}")


def controller_ref(owner: Mapping[str, Any], api_version: str, kind: str) -> dict[str, Any]:
    meta = owner["metadata"]
    return {
        "apiVersion": api_version,
        "kind": kind,
        "name": meta["name"],
        "uid": meta["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }


def controller_uid(obj: Mapping[str, Any]) -> str | None:
    for ref in (obj.get("metadata") or {}).get("ownerReferences") or []:
        if ref.get("controller"):
            return str(ref.get("uid"))
    return None


def replica_set(deployment: Mapping[str, Any], template_hash: str, revision: int) -> dict[str, Any]:
    """The ReplicaSet a Deployment owns for one pod template."""
    meta, spec = deployment["metadata"], deployment["spec"]
    template = msgspec.json.decode(msgspec.json.encode(spec["template"]))
    template.setdefault("metadata", {}).setdefault("labels", {})[HASH_LABEL] = template_hash
    selector = msgspec.json.decode(msgspec.json.encode(spec["selector"]))
    selector.setdefault("matchLabels", {})[HASH_LABEL] = template_hash
    replicas = int(spec.get("replicas", 1))
    return {
        "metadata": {
            "name": f"{meta['name']}-{template_hash}",
            "namespace": meta["namespace"],
            "labels": dict(template["metadata"]["labels"]),
            "annotations": {
                REVISION: str(revision),
                "deployment.kubernetes.io/desired-replicas": str(replicas),
                "deployment.kubernetes.io/max-replicas": str(replicas + 1),
            },
            "ownerReferences": [controller_ref(deployment, "apps/v1", "Deployment")],
        },
        "spec": {"replicas": replicas, "selector": selector, "template": template},
    }


def pending_pod(rs: Mapping[str, Any], now: str) -> dict[str, Any]:
    """A new Pod of `rs`: scheduled, containers still being created."""
    meta, template = rs["metadata"], rs["spec"]["template"]
    spec = msgspec.json.decode(msgspec.json.encode(template.get("spec") or {}))
    spec["nodeName"] = NODE_NAME
    containers = spec.get("containers") or []
    return {
        "metadata": {
            "generateName": f"{meta['name']}-",
            "namespace": meta["namespace"],
            "labels": dict((template.get("metadata") or {}).get("labels") or {}),
            "annotations": dict((template.get("metadata") or {}).get("annotations") or {}),
            "ownerReferences": [controller_ref(rs, "apps/v1", "ReplicaSet")],
        },
        "spec": spec,
        "status": {
            "phase": "Pending",
            "conditions": [
                {
                    "type": "PodScheduled",
                    "status": "True",
                    "lastProbeTime": None,
                    "lastTransitionTime": now,
                }
            ],
            "hostIP": HOST_IP,
            "startTime": now,
            "qosClass": "BestEffort",
            "containerStatuses": [
                {
                    "name": c.get("name"),
                    "image": c.get("image"),
                    "imageID": "",
                    "ready": False,
                    "restartCount": 0,
                    "started": False,
                    "state": {"waiting": {"reason": "ContainerCreating"}},
                }
                for c in containers
            ],
        },
    }


def ready_status(pod: Mapping[str, Any], now: str, ip: str) -> dict[str, Any]:
    """The status of `pod` once all its containers run and are ready."""
    containers = (pod.get("spec") or {}).get("containers") or []
    conditions = [
        {"type": kind, "status": "True", "lastProbeTime": None, "lastTransitionTime": now}
        for kind in ("Initialized", "Ready", "ContainersReady", "PodScheduled")
    ]
    status = dict(pod.get("status") or {})
    status.update(
        {
            "phase": "Running",
            "conditions": conditions,
            "podIP": ip,
            "podIPs": [{"ip": ip}],
            "containerStatuses": [
                {
                    "name": c.get("name"),
                    "image": c.get("image"),
                    "imageID": f"docker.io/library/{c.get('image')}",
                    "containerID": f"containerd://{'0' * 64}",
                    "ready": True,
                    "restartCount": 0,
                    "started": True,
                    "state": {"running": {"startedAt": now}},
                }
                for c in containers
            ],
        }
    )
    return status


def pod_ready(pod: Mapping[str, Any]) -> bool:
    return any(
        c.get("type") == "Ready" and c.get("status") == "True"
        for c in (pod.get("status") or {}).get("conditions") or []
    )


def _max_unavailable(spec: Mapping[str, Any], desired: int) -> int:
    value = ((spec.get("strategy") or {}).get("rollingUpdate") or {}).get("maxUnavailable", "25%")
    if isinstance(value, str) and value.endswith("%"):
        return math.floor(desired * int(value[:-1]) / 100)
    return int(value)


def _condition(
    old: Sequence[Mapping[str, Any]], kind: str, status: str, reason: str, message: str, now: str
) -> dict[str, Any]:
    previous = next((c for c in old if c.get("type") == kind), None)
    same = previous is not None and previous.get("status") == status
    unchanged = (
        same
        and previous is not None
        and previous.get("reason") == reason
        and previous.get("message") == message
    )
    return {
        "type": kind,
        "status": status,
        "lastUpdateTime": previous.get("lastUpdateTime", now) if unchanged and previous else now,
        "lastTransitionTime": previous.get("lastTransitionTime", now) if same and previous else now,
        "reason": reason,
        "message": message,
    }


def deployment_status(
    deployment: Mapping[str, Any],
    new_rs: str,
    created: bool,
    all_pods: Sequence[Mapping[str, Any]],
    new_pods: int,
    now: str,
) -> dict[str, Any]:
    """Replica counts and conditions, as the deployment controller reports them."""
    spec, meta = deployment["spec"], deployment["metadata"]
    old = (deployment.get("status") or {}).get("conditions") or []
    desired = int(spec.get("replicas", 1))
    replicas = len(all_pods)
    ready = sum(1 for p in all_pods if pod_ready(p))
    available = ready
    unavailable = max(0, desired - available)
    minimum = available >= desired - _max_unavailable(spec, desired)
    available_cond = _condition(
        old,
        "Available",
        "True" if minimum else "False",
        "MinimumReplicasAvailable" if minimum else "MinimumReplicasUnavailable",
        "Deployment has minimum availability."
        if minimum
        else "Deployment does not have minimum availability.",
        now,
    )
    if new_pods == desired and available == desired and replicas == desired:
        reason, message = (
            "NewReplicaSetAvailable",
            f'ReplicaSet "{new_rs}" has successfully progressed.',
        )
    elif created:
        reason, message = "NewReplicaSetCreated", f'Created new replica set "{new_rs}"'
    else:
        reason, message = "ReplicaSetUpdated", f'ReplicaSet "{new_rs}" is progressing.'
    progressing = _condition(old, "Progressing", "True", reason, message, now)
    status: dict[str, Any] = {"observedGeneration": int(meta.get("generation", 1))}
    for key, value in (
        ("replicas", replicas),
        ("updatedReplicas", new_pods),
        ("readyReplicas", ready),
        ("availableReplicas", available),
        ("unavailableReplicas", unavailable),
    ):
        if value:
            status[key] = value
    status["conditions"] = [available_cond, progressing]
    return status


def replica_set_status(rs: Mapping[str, Any], pods: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    ready = sum(1 for p in pods if pod_ready(p))
    status: dict[str, Any] = {"replicas": len(pods)}
    if pods:
        status["fullyLabeledReplicas"] = len(pods)
    if ready:
        status["readyReplicas"] = ready
        status["availableReplicas"] = ready
    status["observedGeneration"] = int((rs.get("metadata") or {}).get("generation", 1))
    return status
