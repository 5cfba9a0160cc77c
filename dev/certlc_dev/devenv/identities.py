"""Each service's own Kubernetes identity, from deploy/: its ServiceAccount, its RBAC and, for
the services whose pods mount a token, a kubeconfig holding that token.

`deploy_identities()` reads `deploy/base` the way `kubectl kustomize` renders it for these
kinds (the kustomization's namespace set on ServiceAccounts, Roles and RoleBindings, its
labels added); a deploy test checks that both agree. `install()` creates those objects in
the Kubernetes API stand-in, which then authorizes every service request against them
(`KubeSim(rbac=True)`), and asks the TokenRequest API for each service's token, as the
kubelet does for a pod.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from certlc_dev.paths import REPO

DEPLOY_BASE = REPO / "deploy" / "base"
RBAC_KINDS = ("ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding")
NAMESPACED_KINDS = frozenset({"ServiceAccount", "Role", "RoleBinding"})
SERVICE_PREFIX = "certlc-"
# Tokens of the local stack outlive a long demo; in a cluster the kubelet refreshes them.
TOKEN_SECONDS = 30 * 24 * 3600

Obj = dict[str, Any]


@dataclass(frozen=True)
class DeployIdentities:
    """What deploy/base says about identities: objects to create, and who mounts a token."""

    namespace: str
    objects: tuple[Obj, ...]  # ServiceAccounts, then RBAC objects
    token_mounted: Mapping[str, bool]  # ServiceAccount name -> does its pod mount a token

    def service_accounts(self) -> list[str]:
        return [o["metadata"]["name"] for o in self.objects if o["kind"] == "ServiceAccount"]


def _documents(base: Path, kustomization: Mapping[str, Any]) -> Iterator[Obj]:
    for resource in kustomization.get("resources") or []:
        for doc in yaml.safe_load_all((base / resource).read_text()):
            if isinstance(doc, dict):
                yield doc


def _mounts_token(pod_spec: Mapping[str, Any], account: Mapping[str, Any] | None) -> bool:
    """Pod setting first, then the ServiceAccount's, then Kubernetes' default (true)."""
    if "automountServiceAccountToken" in pod_spec:
        return bool(pod_spec["automountServiceAccountToken"])
    if account is not None and "automountServiceAccountToken" in account:
        return bool(account["automountServiceAccountToken"])
    return True


def _common_labels(kustomization: Mapping[str, Any]) -> dict[str, str]:
    """The kustomization's `labels` pairs (added to every object's metadata.labels)."""
    labels: dict[str, str] = {}
    for entry in kustomization.get("labels") or []:
        labels.update({str(k): str(v) for k, v in (entry.get("pairs") or {}).items()})
    return labels


def deploy_identities(base: Path = DEPLOY_BASE) -> DeployIdentities:
    """The ServiceAccounts and RBAC of `base` with the kustomization's namespace and labels."""
    kustomization = yaml.safe_load((base / "kustomization.yaml").read_text())
    namespace = str(kustomization.get("namespace") or "default")
    accounts: list[Obj] = []
    rbac: list[Obj] = []
    pods: dict[str, Mapping[str, Any]] = {}
    for doc in _documents(base, kustomization):
        kind = doc.get("kind")
        if kind == "ServiceAccount":
            accounts.append(doc)
        elif kind in RBAC_KINDS:
            rbac.append(doc)
        elif kind == "Deployment":
            spec = doc["spec"]["template"]["spec"]
            pods[str(spec.get("serviceAccountName", "default"))] = spec
    common = _common_labels(kustomization)
    for obj in accounts + rbac:
        if obj["kind"] in NAMESPACED_KINDS:
            obj["metadata"]["namespace"] = namespace
        if common:
            obj["metadata"]["labels"] = {**(obj["metadata"].get("labels") or {}), **common}
    by_name = {a["metadata"]["name"]: a for a in accounts}
    mounted = {name: _mounts_token(spec, by_name.get(name)) for name, spec in pods.items()}
    return DeployIdentities(namespace, tuple(accounts + rbac), mounted)


def install(sim: Any, workdir: Path, base: Path = DEPLOY_BASE) -> dict[str, Path]:
    """Create deploy/'s identities in the stand-in `sim`; write one kubeconfig per service whose
    pod mounts a token. Returns service name (`issuer`) -> kubeconfig path."""
    identities = deploy_identities(base)
    if sim.try_get("namespaces", identities.namespace) is None:
        sim.create(
            {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": identities.namespace}}
        )
    for obj in identities.objects:
        namespace = obj["metadata"].get("namespace", "")
        if sim.try_get(obj["kind"], obj["metadata"]["name"], namespace=namespace) is None:
            sim.create(obj)
    kubeconfigs: dict[str, Path] = {}
    for account in identities.service_accounts():
        if not identities.token_mounted.get(account, False):
            continue
        token = sim.service_account_token(
            identities.namespace, account, expiration_seconds=TOKEN_SECONDS
        )
        service = account.removeprefix(SERVICE_PREFIX)
        kubeconfigs[service] = sim.write_kubeconfig(
            workdir / f"kubeconfig-{service}", token=token, namespace=identities.namespace
        )
    return kubeconfigs
