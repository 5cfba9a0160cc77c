"""Decides the Deployment patch and the TCP status patch. Pure: current objects in, patches out.

The pod template carries one label per mounted Secret, `component.kamaji.clastix.io/<suffix>`,
holding that Secret's checksum (md5 of its data, as Kamaji computes it). A rollout is therefore
idempotent: the same content gives the same labels, the same template, and no new ReplicaSet.
Unlike Kamaji, the konnectivity Secrets and the datastore certificate are hashed too, so
rotating them restarts what mounts them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from libs.contracts.records import RolloutState
from libs.pki.profiles import (
    KONNECTIVITY_KINDS,
    MOUNTED_KINDS,
    STATUS_PATHS,
    STATUS_WITHOUT_LAST_UPDATE,
    SecretKind,
)
from libs.pki.tcp import PHASE_CA_ROTATING, PHASE_READY

LABEL_PREFIX = "component.kamaji.clastix.io/"
READY = PHASE_READY
CA_ROTATING = PHASE_CA_ROTATING
DEADLINE_EXCEEDED = "ProgressDeadlineExceeded"

MOUNTED = MOUNTED_KINDS


@dataclass(frozen=True, slots=True)
class SecretFact:
    name: str
    checksum: str


def template_labels(secrets: Mapping[SecretKind, SecretFact]) -> dict[str, str]:
    """The pod-template labels for the mounted Secrets that exist."""
    return {
        LABEL_PREFIX + kind.value: secrets[kind].checksum
        for kind in MOUNTED
        if kind in secrets and secrets[kind].checksum
    }


def deployment_patch(
    deployment: Mapping[str, Any], secrets: Mapping[SecretKind, SecretFact]
) -> dict[str, Any] | None:
    """A strategic-merge patch of the pod-template labels, or None when they already match."""
    template = (deployment.get("spec") or {}).get("template") or {}
    current = (template.get("metadata") or {}).get("labels") or {}
    wanted = template_labels(secrets)
    changed = {k: v for k, v in wanted.items() if current.get(k) != v}
    if not changed:
        return None
    return {"spec": {"template": {"metadata": {"labels": changed}}}}


def rollout_state(deployment: Mapping[str, Any]) -> tuple[RolloutState, str]:
    """The Deployment's rollout as `kubectl rollout status` judges it, and why.

    Complete once the controller has observed the current generation and every replica runs
    the current template and is available, with no old replica left; failed when the
    controller reports `Progressing=False` with `ProgressDeadlineExceeded`; paused when
    `spec.paused` keeps an incomplete rollout from moving; progressing otherwise.
    """
    meta = deployment.get("metadata") or {}
    spec = deployment.get("spec") or {}
    status = deployment.get("status") or {}
    generation = int(meta.get("generation", 0))
    if int(status.get("observedGeneration", 0)) < generation:
        return (
            RolloutState.PROGRESSING,
            f"waiting for the controller to observe generation {generation}",
        )
    for condition in status.get("conditions") or ():
        if condition.get("type") == "Progressing" and condition.get("reason") == DEADLINE_EXCEEDED:
            detail = condition.get("message") or "progress deadline exceeded"
            return RolloutState.FAILED, f"{DEADLINE_EXCEEDED}: {detail}"
    wanted = int(spec.get("replicas", 1))
    updated = int(status.get("updatedReplicas", 0))
    replicas = int(status.get("replicas", 0))
    available = int(status.get("availableReplicas", 0))
    waiting = ""
    if updated < wanted:
        waiting = f"{updated} of {wanted} new replicas have been updated"
    elif replicas > updated:
        waiting = f"{replicas - updated} old replicas are pending termination"
    elif available < updated:
        waiting = f"{available} of {updated} updated replicas are available"
    if not waiting:
        return RolloutState.COMPLETE, f"{wanted} of {wanted} updated replicas are available"
    if spec.get("paused"):
        return RolloutState.PAUSED, f"the Deployment is paused (spec.paused); {waiting}"
    return RolloutState.PROGRESSING, waiting


def judge(
    deployment: Mapping[str, Any], since: datetime | None, now: datetime, timeout: float
) -> tuple[RolloutState, str]:
    """What a rotation's rollout is now. `since`: when this rotation patched the Deployment
    (None: it did not, the template already had its material). A rollout under way for longer
    than `timeout` seconds has failed, as one past its progress deadline has."""
    state, why = rollout_state(deployment)
    if state is RolloutState.COMPLETE and since is None:
        return RolloutState.UNCHANGED, why
    elapsed = (now - since).total_seconds() if since is not None else 0.0
    if state is RolloutState.PROGRESSING and elapsed > timeout:
        return RolloutState.FAILED, f"not rolled out after {timeout:.0f}s: {why}"
    return state, why


def recheck_delay(elapsed: float, initial: float, maximum: float) -> float:
    """Seconds until a rollout in progress is looked at again: a quarter of the time it has
    taken so far, within [initial, maximum]: quick for the usual rollout, rare for a slow one."""
    return max(initial, min(maximum, elapsed / 4))


def _get(obj: Mapping[str, Any], path: tuple[str, ...]) -> Mapping[str, Any]:
    for part in path:
        obj = obj.get(part) or {}
    return obj


def status_patch(
    tcp: Mapping[str, Any],
    secrets: Mapping[SecretKind, SecretFact],
    now: datetime,
    phase: str | None = None,
) -> dict[str, Any] | None:
    """A merge patch of `.status` recording each Secret (name, checksum, lastUpdate) and,
    when given, the phase; None when the status already says all that.

    lastUpdate changes only with the checksum, so repeating a patch changes nothing. Only
    fields of Kamaji's status schema are written (a real API server prunes the others):
    `storage.config` has no lastUpdate, and `addons.konnectivity` requires `enabled`, which is
    true whenever its Secrets exist (api/v1alpha1/tenantcontrolplane_status.go).
    """
    status = tcp.get("status") or {}
    patch: dict[str, Any] = {}
    stamp = now.strftime("%Y-%m-%dT%H:%M:%SZ")
    for kind, fact in secrets.items():
        path = STATUS_PATHS.get(kind)
        if path is None:
            continue
        current = _get(status, path)
        if current.get("secretName") == fact.name and current.get("checksum") == fact.checksum:
            continue
        node = patch
        for part in path[:-1]:
            node = node.setdefault(part, {})
        entry = {"secretName": fact.name, "checksum": fact.checksum}
        if kind not in STATUS_WITHOUT_LAST_UPDATE:
            entry["lastUpdate"] = stamp
        node[path[-1]] = entry
        if kind in KONNECTIVITY_KINDS and _get(status, path[:-1]).get("enabled") is not True:
            node["enabled"] = True
    if phase is not None:
        current_phase = _get(status, ("kubernetesResources", "version")).get("status")
        if current_phase != phase:
            patch.setdefault("kubernetesResources", {}).setdefault("version", {})["status"] = phase
    return {"status": patch} if patch else None
