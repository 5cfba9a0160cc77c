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
from dataclasses import dataclass
from datetime import datetime
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


def waiting_statuses(
    containers: Sequence[Mapping[str, Any]], reason: str, message: str = ""
) -> list[dict[str, Any]]:
    """Container statuses of containers not running yet, waiting for `reason` (`message` may
    name the container's `{image}`)."""
    statuses = []
    for c in containers:
        waiting: dict[str, Any] = {"reason": reason}
        if message:
            waiting["message"] = message.format(image=c.get("image"))
        statuses.append(
            {
                "name": c.get("name"),
                "image": c.get("image"),
                "imageID": "",
                "ready": False,
                "restartCount": 0,
                "started": False,
                "state": {"waiting": waiting},
            }
        )
    return statuses


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
            "containerStatuses": waiting_statuses(containers, "ContainerCreating"),
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


def never_ready(pod: Mapping[str, Any]) -> bool:
    """A pod whose image comes from a registry host under `.invalid` (RFC 2606: a name that
    never resolves) never becomes Ready: its image cannot be pulled. A test's knob for a
    rollout that never completes."""
    for container in (pod.get("spec") or {}).get("containers") or []:
        image = str(container.get("image") or "")
        host = image.split("/", 1)[0] if "/" in image else ""
        if host.split(":", 1)[0].endswith(".invalid"):
            return True
    return False


def image_pull_backoff(pod: Mapping[str, Any]) -> dict[str, Any]:
    """The status of `pod` when its image cannot be pulled."""
    status = dict(pod.get("status") or {})
    containers = (pod.get("spec") or {}).get("containers") or []
    status["containerStatuses"] = waiting_statuses(
        containers, "ImagePullBackOff", 'Back-off pulling image "{image}"'
    )
    return status


def _scaled(value: Any, desired: int, round_up: bool) -> int:
    if isinstance(value, str) and value.endswith("%"):
        exact = desired * int(value[:-1]) / 100
        return math.ceil(exact) if round_up else math.floor(exact)
    return int(value)


def rollout_bounds(spec: Mapping[str, Any], desired: int) -> tuple[int, int]:
    """(maxSurge, maxUnavailable) of a RollingUpdate, as the controller resolves them:
    percentages of `desired`, surge rounded up, unavailable down, defaults 25% each; when both
    come out 0, one pod may be unavailable (else no rollout could ever progress)."""
    rolling = (spec.get("strategy") or {}).get("rollingUpdate") or {}
    surge = _scaled(rolling.get("maxSurge", "25%"), desired, round_up=True)
    unavailable = _scaled(rolling.get("maxUnavailable", "25%"), desired, round_up=False)
    if surge == 0 and unavailable == 0:
        unavailable = 1
    return surge, unavailable


def _max_unavailable(spec: Mapping[str, Any], desired: int) -> int:
    if (spec.get("strategy") or {}).get("type") == "Recreate":
        return desired
    return rollout_bounds(spec, desired)[1]


@dataclass(frozen=True)
class SetState:
    """One ReplicaSet as the controller sees it: its spec.replicas, and its live pods."""

    replicas: int
    pods: int
    ready: int


def plan_rollout(
    spec: Mapping[str, Any], new: SetState, old: Sequence[SetState]
) -> tuple[int, list[int]]:
    """The next spec.replicas of the new ReplicaSet and of each old one (same order), one step
    of the deployment controller's sync: Recreate removes every old pod before the new ones are
    created; RollingUpdate stays within maxSurge pods above and maxUnavailable below the
    desired count, removing unhealthy old pods first."""
    desired = int(spec.get("replicas", 1))
    if (spec.get("strategy") or {}).get("type") == "Recreate":
        if any(o.replicas or o.pods for o in old):
            return new.replicas if new.pods else 0, [0 for _ in old]
        return desired, [0 for _ in old]
    surge, unavailable = rollout_bounds(spec, desired)
    old_total = sum(o.replicas for o in old)
    if new.replicas > desired:
        new_target = desired
    else:
        room = max(0, desired + surge - (new.replicas + old_total))
        new_target = min(desired, new.replicas + room)
    targets = [o.replicas for o in old]
    if not old:
        return new_target, targets
    minimum_available = desired - unavailable
    new_unavailable = max(0, new_target - new.ready)
    budget = new_target + old_total - minimum_available - new_unavailable
    # First the old pods that are not ready: removing them costs no availability.
    for i, o in enumerate(old):
        if budget <= 0:
            break
        unhealthy = max(0, min(targets[i], o.pods) - o.ready)
        cut = min(unhealthy, budget)
        targets[i] -= cut
        budget -= cut
    # Then ready ones, as far as the pods available above the minimum allow.
    available = new.ready + sum(min(o.ready, t) for o, t in zip(old, targets, strict=True))
    budget = min(budget, available - minimum_available)
    for i in range(len(old)):
        if budget <= 0:
            break
        cut = min(targets[i], budget)
        targets[i] -= cut
        budget -= cut
    return new_target, targets


def _condition(
    old: Sequence[Mapping[str, Any]],
    kind: str,
    status: str,
    reason: str,
    message: str,
    now: str,
    *,
    touch: bool = False,
) -> dict[str, Any]:
    """A condition; lastUpdateTime moves when anything changed (or `touch`: progress was
    made), lastTransitionTime when the status changed."""
    previous = next((c for c in old if c.get("type") == kind), None)
    same = previous is not None and previous.get("status") == status
    unchanged = (
        same
        and previous is not None
        and previous.get("reason") == reason
        and previous.get("message") == message
        and not touch
    )
    return {
        "type": kind,
        "status": status,
        "lastUpdateTime": previous.get("lastUpdateTime", now) if unchanged and previous else now,
        "lastTransitionTime": previous.get("lastTransitionTime", now) if same and previous else now,
        "reason": reason,
        "message": message,
    }


def _seconds_between(earlier: Any, later: str) -> float | None:
    try:
        start = datetime.fromisoformat(str(earlier).replace("Z", "+00:00"))
        end = datetime.fromisoformat(later.replace("Z", "+00:00"))
    except ValueError:
        return None
    return (end - start).total_seconds()


DEFAULT_PROGRESS_DEADLINE = 600
PAUSED, DEADLINE_EXCEEDED = "DeploymentPaused", "ProgressDeadlineExceeded"


def progress_deadline(spec: Mapping[str, Any]) -> int:
    return int(spec.get("progressDeadlineSeconds", DEFAULT_PROGRESS_DEADLINE))


def deployment_status(
    deployment: Mapping[str, Any],
    new_rs: str | None,
    created: bool,
    all_pods: Sequence[Mapping[str, Any]],
    new_pods: int,
    now: str,
) -> dict[str, Any]:
    """Replica counts and conditions, as the deployment controller reports them.

    Progressing: `DeploymentPaused` (Unknown) while paused, `DeploymentResumed` after;
    `NewReplicaSetCreated`, `ReplicaSetUpdated` whenever the rollout progressed (more updated,
    ready or available pods, fewer old ones), `NewReplicaSetAvailable` once complete; False with
    `ProgressDeadlineExceeded` when it made no progress for `progressDeadlineSeconds`.
    """
    spec, meta = deployment["spec"], deployment["metadata"]
    before = deployment.get("status") or {}
    old = before.get("conditions") or []
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
    progressed = (
        new_pods > int(before.get("updatedReplicas", 0))
        or replicas - new_pods
        < int(before.get("replicas", 0)) - int(before.get("updatedReplicas", 0))
        or ready > int(before.get("readyReplicas", 0))
        or available > int(before.get("availableReplicas", 0))
    )
    previous: Mapping[str, Any] = next((c for c in old if c.get("type") == "Progressing"), {})
    rs_name = new_rs or meta["name"]
    complete = new_rs is not None and new_pods == desired == available == replicas
    status_value, touch = "True", False
    if spec.get("paused"):
        status_value, reason, message = "Unknown", PAUSED, "Deployment is paused"
    elif complete:
        reason, message = (
            "NewReplicaSetAvailable",
            f'ReplicaSet "{rs_name}" has successfully progressed.',
        )
    elif created:
        reason, message = "NewReplicaSetCreated", f'Created new replica set "{rs_name}"'
    elif previous.get("reason") == PAUSED:
        reason, message = "DeploymentResumed", "Deployment is resumed"
    elif progressed:
        reason, message, touch = (
            "ReplicaSetUpdated",
            f'ReplicaSet "{rs_name}" is progressing.',
            True,
        )
    elif previous.get("reason") == DEADLINE_EXCEEDED or (
        (elapsed := _seconds_between(previous.get("lastUpdateTime"), now)) is not None
        and elapsed >= progress_deadline(spec)
    ):
        status_value, reason = "False", DEADLINE_EXCEEDED
        message = f'ReplicaSet "{rs_name}" has timed out progressing.'
    else:
        reason = str(previous.get("reason") or "ReplicaSetUpdated")
        message = str(previous.get("message") or f'ReplicaSet "{rs_name}" is progressing.')
    progressing = _condition(old, "Progressing", status_value, reason, message, now, touch=touch)
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
