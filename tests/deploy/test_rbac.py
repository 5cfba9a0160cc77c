"""RBAC of deploy/: per service exactly the rules of expected.RBAC, no wildcard, bound to the
service's own ServiceAccount only; and those rules cover every Kubernetes call its code makes."""

from __future__ import annotations

import re
from collections import defaultdict

import pytest

from tests.deploy.expected import INFORMER_RESOURCES, KUBE_METHODS, RBAC
from tests.deploy.manifests import NAMESPACE, OVERLAYS, REPO, SERVICES, named, of_kind, overlay

Rules = dict[tuple[str, str], frozenset[str]]


def rules_of(role: dict[str, object]) -> Rules:
    """(apiGroup, resource) -> verbs; rejects anything beyond groups, resources and verbs."""
    merged: dict[tuple[str, str], set[str]] = defaultdict(set)
    rules = role.get("rules") or []
    assert isinstance(rules, list)
    for rule in rules:
        assert set(rule) == {"apiGroups", "resources", "verbs"}, f"unexpected keys in {rule}"
        for group in rule["apiGroups"]:
            for resource in rule["resources"]:
                merged[(group, resource)].update(rule["verbs"])
    return {key: frozenset(verbs) for key, verbs in merged.items()}


@pytest.mark.parametrize("name", OVERLAYS)
def test_no_wildcards_anywhere(name: str) -> None:
    for role in of_kind(overlay(name), "ClusterRole") + of_kind(overlay(name), "Role"):
        for rule in role.get("rules") or []:
            for key in ("apiGroups", "resources", "verbs", "resourceNames"):
                assert "*" not in rule.get(key, []), f"{role['metadata']['name']}: {rule}"
            assert "nonResourceURLs" not in rule


@pytest.mark.parametrize("name", OVERLAYS)
@pytest.mark.parametrize("service", SERVICES)
def test_rules_are_exactly_the_allowed_ones(name: str, service: str) -> None:
    roles = [
        role
        for role in of_kind(overlay(name), "ClusterRole")
        if role["metadata"]["name"] == f"certlc-{service}"
    ]
    if not RBAC[service]:
        assert not roles, f"certlc-{service} must have no ClusterRole"
        return
    (role,) = roles
    assert rules_of(role) == RBAC[service]


@pytest.mark.parametrize("name", OVERLAYS)
def test_only_certlc_roles_and_bindings_exist(name: str) -> None:
    objects = overlay(name)
    assert not of_kind(objects, "Role")
    assert not of_kind(objects, "RoleBinding")
    with_rules = {f"certlc-{service}" for service in SERVICES if RBAC[service]}
    assert {r["metadata"]["name"] for r in of_kind(objects, "ClusterRole")} == with_rules
    assert {b["metadata"]["name"] for b in of_kind(objects, "ClusterRoleBinding")} == with_rules


@pytest.mark.parametrize("name", OVERLAYS)
@pytest.mark.parametrize("service", [s for s in SERVICES if RBAC[s]])
def test_each_role_is_bound_to_its_own_service_account_only(name: str, service: str) -> None:
    objects = overlay(name)
    binding = named(objects, "ClusterRoleBinding", f"certlc-{service}")
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "ClusterRole",
        "name": f"certlc-{service}",
    }
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": f"certlc-{service}", "namespace": NAMESPACE}
    ]
    deployment = named(objects, "Deployment", f"certlc-{service}")
    assert deployment["spec"]["template"]["spec"]["serviceAccountName"] == f"certlc-{service}"
    named(objects, "ServiceAccount", f"certlc-{service}")


@pytest.mark.parametrize("name", OVERLAYS)
def test_the_lifecycle_gets_no_token(name: str) -> None:
    objects = overlay(name)
    account = named(objects, "ServiceAccount", "certlc-lifecycle")
    assert account["automountServiceAccountToken"] is False
    pod = named(objects, "Deployment", "certlc-lifecycle")["spec"]["template"]["spec"]
    assert pod["automountServiceAccountToken"] is False
    assert pod["serviceAccountName"] == "certlc-lifecycle"


def kube_calls(service: str) -> set[tuple[str, str, str]]:
    """(group, resource, verb) of every KubeClient method the service's code calls."""
    needed: set[tuple[str, str, str]] = set()
    for path in sorted((REPO / "services" / service).glob("*.py")):
        source = path.read_text()
        for method in re.findall(r"(?:\bself\.|(?<![\w.]))kube\.(\w+)\b", source):
            if method in ("close", "from_kubeconfig"):
                continue
            assert method in KUBE_METHODS, (
                f"{path.name} calls KubeClient.{method}: add its permission to "
                "tests/deploy/expected.py KUBE_METHODS (and RBAC if needed)"
            )
            needed.add(KUBE_METHODS[method])
        # Informers list and watch the resources they are started for.
        for resource in re.findall(r"start_informer\(\s*[\"'](\w+)[\"']", source):
            needed.update((*INFORMER_RESOURCES[resource], v) for v in ("list", "watch"))
        if "start_informer(resource" in source:
            for loop in re.findall(r"for resource in \(([^)]*)\)", source):
                for resource in re.findall(r"[\"'](\w+)[\"']", loop):
                    needed.update((*INFORMER_RESOURCES[resource], v) for v in ("list", "watch"))
    return needed


@pytest.mark.parametrize("service", SERVICES)
def test_rules_cover_every_call_the_code_makes(service: str) -> None:
    granted = {(g, r, v) for (g, r), verbs in RBAC[service].items() for v in verbs}
    needed = kube_calls(service)
    assert needed <= granted, f"certlc-{service} lacks {sorted(needed - granted)}"
    if service == "lifecycle":
        assert not needed
    else:
        assert needed, f"found no Kubernetes call in services/{service}: is the scan broken?"
