"""The RBAC of deploy/ enforced by the Kubernetes API stand-in, per service token.

`certlc_dev.devenv.identities` installs deploy/'s ServiceAccounts and roles into a stand-in with
RBAC on and hands each service a kubeconfig with its own token, as the end-to-end suite runs
the services. Here every service's token tries every verb on every resource certlc could
touch, through the official client: exactly the permissions of `expected.RBAC` are granted,
everything else is refused with 403. The end-to-end suite, run under the same tokens, proves
the other half: those permissions are enough.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes.client.rest import ApiException

from certlc_dev.devenv import identities
from certlc_dev.kubesim import KubeSim
from tests.deploy.expected import RBAC
from tests.deploy.manifests import NAMESPACE, SERVICES, render
from tests.fixtures.kube import api_client, run_kubectl

VERBS = ("get", "list", "watch", "create", "update", "patch", "delete", "deletecollection")
# (group, version, resource, namespaced, subresource)
RESOURCES = (
    ("", "v1", "secrets", True, ""),
    ("", "v1", "events", True, ""),
    ("", "v1", "pods", True, ""),
    ("", "v1", "serviceaccounts", True, ""),
    ("", "v1", "namespaces", False, ""),
    ("apps", "v1", "deployments", True, ""),
    ("apps", "v1", "deployments", True, "status"),
    ("apps", "v1", "replicasets", True, ""),
    ("coordination.k8s.io", "v1", "leases", True, ""),
    ("rbac.authorization.k8s.io", "v1", "clusterroles", False, ""),
    ("rbac.authorization.k8s.io", "v1", "rolebindings", True, ""),
    ("kamaji.clastix.io", "v1alpha1", "tenantcontrolplanes", True, ""),
    ("kamaji.clastix.io", "v1alpha1", "tenantcontrolplanes", True, "status"),
    ("kamaji.clastix.io", "v1alpha1", "datastores", False, ""),
)
SUBRESOURCE_VERBS = ("get", "update", "patch")
METHODS = {
    "get": "GET",
    "list": "GET",
    "watch": "GET",
    "create": "POST",
    "update": "PUT",
    "patch": "PATCH",
    "delete": "DELETE",
    "deletecollection": "DELETE",
}
PROBE = "certlc-rbac-probe"  # a name that exists nowhere: allowed requests answer 404 or 422


def requests() -> Iterator[tuple[str, str, str, str, str]]:
    """(verb, group, resource as RBAC names it, method, path) of every probe request."""
    for group, version, plural, namespaced, sub in RESOURCES:
        root = f"/apis/{group}/{version}" if group else f"/api/{version}"
        collection = f"{root}/namespaces/default/{plural}" if namespaced else f"{root}/{plural}"
        for verb in SUBRESOURCE_VERBS if sub else VERBS:
            item = verb not in {"list", "watch", "create", "deletecollection"}
            path = f"{collection}/{PROBE}" if item else collection
            if sub:
                path += f"/{sub}"
            if verb == "watch":
                path += "?watch=true&timeoutSeconds=1"
            resource = f"{plural}/{sub}" if sub else plural
            yield verb, group, resource, METHODS[verb], path


class Caller:
    """Raw requests with one kubeconfig's credentials, through the official client."""

    def __init__(self, kubeconfig: Path) -> None:
        self.client = api_client(kubeconfig)
        configuration = self.client.configuration
        self.host = configuration.host
        self.token = configuration.get_api_key_with_prefix("BearerToken")

    def status(self, method: str, path: str) -> int:
        headers = {"Authorization": self.token}
        body: Any = None
        if method in {"POST", "PUT", "PATCH"}:
            body = {}
            content = "application/merge-patch+json" if method == "PATCH" else "application/json"
            headers["Content-Type"] = content
        try:
            response = self.client.rest_client.request(
                method, self.host + path, headers=headers, body=body
            )
        except ApiException as error:
            return int(error.status)
        return int(response.status)

    def close(self) -> None:
        self.client.close()


@pytest.fixture(scope="module")
def cluster(
    kube_serving: Any, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[KubeSim, dict[str, Path]]]:
    sim = KubeSim(serving=kube_serving, rbac=True, controllers=False).start()
    try:
        yield sim, identities.install(sim, tmp_path_factory.mktemp("identities"))
    finally:
        sim.stop()


def allowed(service: str, group: str, resource: str, verb: str) -> bool:
    return verb in RBAC[service].get((group, resource), frozenset())


def test_identities_read_from_deploy_match_kubectl_kustomize() -> None:
    kinds = ("ServiceAccount", *identities.RBAC_KINDS)
    rendered = sorted(
        (obj for obj in render("base") if obj["kind"] in kinds),
        key=lambda o: (o["kind"], o["metadata"]["name"]),
    )
    read = identities.deploy_identities()
    assert read.namespace == NAMESPACE
    assert sorted(read.objects, key=lambda o: (o["kind"], o["metadata"]["name"])) == rendered


def test_only_services_whose_pods_mount_a_token_get_one(
    cluster: tuple[KubeSim, dict[str, Path]],
) -> None:
    _, kubeconfigs = cluster
    assert set(kubeconfigs) == {"watcher", "issuer", "rollout"}
    assert not RBAC["lifecycle"]


@pytest.mark.parametrize("service", [s for s in SERVICES if s != "lifecycle"])
def test_each_service_token_is_granted_exactly_its_role(
    cluster: tuple[KubeSim, dict[str, Path]], service: str
) -> None:
    _, kubeconfigs = cluster
    caller = Caller(kubeconfigs[service])
    try:
        granted, refused, wrong = [], [], []
        for verb, group, resource, method, path in requests():
            code = caller.status(method, path)
            expected = allowed(service, group, resource, verb)
            if expected:
                granted.append(resource)
            else:
                refused.append(resource)
            if (code != 403) != expected:
                wrong.append(f"{verb} {group or 'core'}/{resource}: {code}")
        assert not wrong, f"certlc-{service}: " + "; ".join(wrong)
        assert granted, "every service with a token needs some permission"
        assert refused
    finally:
        caller.close()


def test_the_lifecycle_service_account_may_do_nothing(
    cluster: tuple[KubeSim, dict[str, Path]], tmp_path: Path
) -> None:
    sim, _ = cluster
    token = sim.service_account_token(NAMESPACE, "certlc-lifecycle")
    caller = Caller(sim.write_kubeconfig(tmp_path / "lifecycle", token=token))
    try:
        codes = {caller.status(method, path) for _, _, _, method, path in requests()}
        assert codes == {403}
    finally:
        caller.close()


# What docs/deploy.md tells an administrator to check on a cluster, run here as written there:
# `kubectl auth can-i VERB RESOURCE --as=system:serviceaccount:certlc-system:certlc-<service>`.
CAN_I = (
    ("watcher", "watch secrets", "yes"),
    ("watcher", "list tenantcontrolplanes.kamaji.clastix.io", "yes"),
    ("watcher", "update secrets", "no"),
    ("issuer", "create secrets", "yes"),
    ("issuer", "delete secrets", "yes"),
    ("issuer", "patch deployments.apps", "no"),
    ("rollout", "patch deployments.apps", "yes"),
    ("rollout", "patch tenantcontrolplanes.kamaji.clastix.io --subresource=status", "yes"),
    ("rollout", "patch tenantcontrolplanes.kamaji.clastix.io", "no"),
    ("rollout", "update secrets", "no"),
    ("lifecycle", "get secrets", "no"),
)


def test_kubectl_auth_can_i_as_each_service_account(
    cluster: tuple[KubeSim, dict[str, Path]], tmp_path: Path
) -> None:
    sim, _ = cluster
    admin = sim.write_kubeconfig(tmp_path / "admin")
    answers = []
    for service, question, _ in CAN_I:
        account = f"--as=system:serviceaccount:{NAMESPACE}:certlc-{service}"
        done = run_kubectl(
            admin, tmp_path, "auth", "can-i", *question.split(), account, "-A", check=False
        )
        answers.append((service, question, done.stdout.strip()))
    assert answers == list(CAN_I)
