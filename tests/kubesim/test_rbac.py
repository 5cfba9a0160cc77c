"""RBAC enforcement and the TokenRequest API, through the official client and kubectl.

A stand-in started with `rbac=True` authorizes every resource request from the Roles,
ClusterRoles and their bindings stored in it, as kube-apiserver's RBAC authorizer does; the
admin token (group `system:masters`) may do anything. ServiceAccount tokens come from
`POST .../serviceaccounts/<name>/token`.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.rest import ApiException

from certlc_dev.kubesim import KubeSim
from tests.fixtures.kube import api_client, run_kubectl
from tests.kubesim.helpers import secret, status_of

RBAC = "rbac.authorization.k8s.io"
SA_USER = "system:serviceaccount:default:robot"


class Clock:
    """A settable clock for token expiry."""

    def __init__(self) -> None:
        self.now = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def sim(kube_sim_factory: Callable[..., KubeSim], clock: Clock) -> KubeSim:
    return kube_sim_factory(rbac=True, clock=clock)


@pytest.fixture
def admin_api(sim: KubeSim, tmp_path: Path) -> Iterator[Any]:
    api = api_client(sim.write_kubeconfig(tmp_path / "admin"))
    try:
        yield api
    finally:
        api.close()


def service_account(api: Any, name: str = "robot", namespace: str = "default") -> None:
    client.CoreV1Api(api).create_namespaced_service_account(namespace, {"metadata": {"name": name}})


def request_token(api: Any, name: str = "robot", namespace: str = "default", **spec: Any) -> Any:
    body = {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": spec}
    return client.CoreV1Api(api).create_namespaced_service_account_token(name, namespace, body)


@pytest.fixture
def robot(sim: KubeSim, admin_api: Any, tmp_path: Path) -> Iterator[Any]:
    """An API client authenticated as ServiceAccount default/robot (no permissions yet)."""
    service_account(admin_api)
    token = request_token(admin_api).status.token
    api = api_client(sim.write_kubeconfig(tmp_path / "robot", token=token))
    try:
        yield api
    finally:
        api.close()


def cluster_role(name: str, rules: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "apiVersion": f"{RBAC}/v1",
        "kind": "ClusterRole",
        "metadata": {"name": name},
        "rules": rules,
    }


def rule(groups: list[str], resources: list[str], verbs: list[str], **extra: Any) -> dict[str, Any]:
    return {"apiGroups": groups, "resources": resources, "verbs": verbs, **extra}


def sa_subject(name: str = "robot", namespace: str = "default") -> dict[str, str]:
    return {"kind": "ServiceAccount", "name": name, "namespace": namespace}


def binding(
    name: str, role: str, *, kind: str = "ClusterRole", subjects: list[dict[str, str]] | None = None
) -> dict[str, Any]:
    return {
        "metadata": {"name": name},
        "roleRef": {"apiGroup": RBAC, "kind": kind, "name": role},
        "subjects": subjects if subjects is not None else [sa_subject()],
    }


def grant_cluster_wide(api: Any, name: str, rules: list[dict[str, Any]]) -> None:
    rbac = client.RbacAuthorizationV1Api(api)
    rbac.create_cluster_role(cluster_role(name, rules))
    rbac.create_cluster_role_binding(binding(name, name))


def denied(call: Callable[[], Any]) -> dict[str, Any]:
    """The Status of a call that must be refused with 403."""
    with pytest.raises(ApiException) as caught:
        call()
    assert caught.value.status == 403, caught.value.body
    return status_of(caught.value)


# ---------------------------------------------------------------------------- TokenRequest


def test_token_request_returns_a_token_that_authenticates_as_the_service_account(
    sim: KubeSim, admin_api: Any, clock: Clock, tmp_path: Path
) -> None:
    service_account(admin_api)
    answer = request_token(admin_api, expirationSeconds=7200, audiences=["api"])
    assert answer.kind == "TokenRequest"
    assert answer.spec.expiration_seconds == 7200
    assert answer.spec.audiences == ["api"]
    assert answer.status.expiration_timestamp == (clock.now + timedelta(seconds=7200)).replace(
        microsecond=0
    )
    robot = api_client(sim.write_kubeconfig(tmp_path / "robot", token=answer.status.token))
    try:
        status = denied(lambda: client.CoreV1Api(robot).list_namespaced_secret("default"))
        assert status["message"] == (
            f'secrets is forbidden: User "{SA_USER}" cannot list resource "secrets" in API '
            'group "" in the namespace "default"'
        )
        assert status["reason"] == "Forbidden"
        assert status["details"] == {"kind": "secrets"}
    finally:
        robot.close()


def test_token_request_defaults_to_one_hour(admin_api: Any) -> None:
    service_account(admin_api)
    answer = request_token(admin_api)
    assert answer.spec.expiration_seconds == 3600
    assert answer.spec.audiences == ["https://kubernetes.default.svc.cluster.local"]


def test_token_request_refuses_short_durations_and_unknown_accounts(admin_api: Any) -> None:
    service_account(admin_api)
    with pytest.raises(ApiException) as caught:
        request_token(admin_api, expirationSeconds=599)
    assert caught.value.status == 422
    assert status_of(caught.value)["message"] == (
        'TokenRequest.authentication.k8s.io "robot" is invalid: spec.expirationSeconds: '
        "Invalid value: 599: may not specify a duration less than 10 minutes"
    )
    with pytest.raises(ApiException) as caught:
        request_token(admin_api, name="nobody")
    assert caught.value.status == 404
    assert status_of(caught.value)["message"] == 'serviceaccounts "nobody" not found'


def test_a_token_stops_working_when_it_expires_or_its_account_is_deleted(
    sim: KubeSim, admin_api: Any, clock: Clock, tmp_path: Path
) -> None:
    grant_cluster_wide(admin_api, "read-secrets", [rule([""], ["secrets"], ["list"])])
    service_account(admin_api)
    short = request_token(admin_api, expirationSeconds=600).status.token
    long = request_token(admin_api, expirationSeconds=3600).status.token
    short_api = api_client(sim.write_kubeconfig(tmp_path / "short", token=short))
    long_api = api_client(sim.write_kubeconfig(tmp_path / "long", token=long))
    try:
        client.CoreV1Api(short_api).list_namespaced_secret("default")
        clock.now += timedelta(seconds=601)
        with pytest.raises(ApiException) as caught:
            client.CoreV1Api(short_api).list_namespaced_secret("default")
        assert caught.value.status == 401
        client.CoreV1Api(long_api).list_namespaced_secret("default")
        # A new ServiceAccount of the same name does not revive tokens of the deleted one.
        client.CoreV1Api(admin_api).delete_namespaced_service_account("robot", "default")
        service_account(admin_api)
        with pytest.raises(ApiException) as caught:
            client.CoreV1Api(long_api).list_namespaced_secret("default")
        assert caught.value.status == 401
    finally:
        short_api.close()
        long_api.close()


def test_kubectl_create_token_and_use_it(sim: KubeSim, admin_api: Any, tmp_path: Path) -> None:
    service_account(admin_api)
    grant_cluster_wide(admin_api, "read-secrets", [rule([""], ["secrets"], ["get", "list"])])
    admin_config = tmp_path / "admin"
    made = run_kubectl(admin_config, tmp_path, "create", "token", "robot", "--duration=20m")
    token = made.stdout.strip()
    robot_config = sim.write_kubeconfig(tmp_path / "robot", token=token)
    listed = run_kubectl(robot_config, tmp_path, "get", "secrets", "-o", "json")
    assert json.loads(listed.stdout)["kind"] == "List"
    refused = run_kubectl(robot_config, tmp_path, "delete", "secret", "anything", check=False)
    assert refused.returncode == 1
    assert refused.stderr.strip() == (
        f'Error from server (Forbidden): secrets "anything" is forbidden: User "{SA_USER}" '
        'cannot delete resource "secrets" in API group "" in the namespace "default"'
    )


# ---------------------------------------------------------------------------- authorization


def test_without_bindings_a_service_account_may_do_nothing(robot: Any) -> None:
    core = client.CoreV1Api(robot)
    denied(lambda: core.read_namespaced_secret("x", "default"))
    denied(core.list_secret_for_all_namespaces)
    status = denied(lambda: core.create_namespaced_secret("default", secret("x")))
    assert "cannot create resource" in status["message"]
    denied(lambda: client.AppsV1Api(robot).list_namespaced_deployment("default"))


def test_cluster_role_binding_grants_exactly_its_verbs_everywhere(
    admin_api: Any, robot: Any
) -> None:
    grant_cluster_wide(admin_api, "secret-reader", [rule([""], ["secrets"], ["get", "list"])])
    client.CoreV1Api(admin_api).create_namespaced_secret("kube-system", secret("s", {"a": "b"}))
    core = client.CoreV1Api(robot)
    assert core.read_namespaced_secret("s", "kube-system").data == {"a": "Yg=="}
    assert core.list_secret_for_all_namespaces().items
    status = denied(lambda: core.delete_namespaced_secret("s", "kube-system"))
    assert status["message"] == (
        f'secrets "s" is forbidden: User "{SA_USER}" cannot delete resource "secrets" in API '
        'group "" in the namespace "kube-system"'
    )
    assert status["details"] == {"name": "s", "kind": "secrets"}
    denied(core.list_namespace)


def test_role_binding_grants_only_inside_its_namespace(admin_api: Any, robot: Any) -> None:
    rbac = client.RbacAuthorizationV1Api(admin_api)
    rbac.create_namespaced_role(
        "default",
        {"metadata": {"name": "reader"}, "rules": [rule([""], ["secrets"], ["list"])]},
    )
    rbac.create_namespaced_role_binding("default", binding("reader", "reader", kind="Role"))
    core = client.CoreV1Api(robot)
    core.list_namespaced_secret("default")
    denied(lambda: core.list_namespaced_secret("kube-system"))
    denied(core.list_secret_for_all_namespaces)  # cluster-wide needs a ClusterRole


def test_role_binding_to_a_cluster_role_is_namespaced(admin_api: Any, robot: Any) -> None:
    rbac = client.RbacAuthorizationV1Api(admin_api)
    rbac.create_cluster_role(cluster_role("lister", [rule([""], ["secrets"], ["list"])]))
    rbac.create_namespaced_role_binding("kube-system", binding("lister", "lister"))
    core = client.CoreV1Api(robot)
    core.list_namespaced_secret("kube-system")
    denied(lambda: core.list_namespaced_secret("default"))


def test_subresources_resource_names_and_groups_are_matched_exactly(
    admin_api: Any, robot: Any
) -> None:
    grant_cluster_wide(
        admin_api,
        "narrow",
        [
            rule(["apps"], ["deployments"], ["get"], resourceNames=["web"]),
            rule(["kamaji.clastix.io"], ["tenantcontrolplanes/status"], ["patch"]),
        ],
    )
    apps = client.AppsV1Api(robot)
    with pytest.raises(ApiException) as caught:  # allowed, and then not found
        apps.read_namespaced_deployment("web", "default")
    assert caught.value.status == 404
    denied(lambda: apps.read_namespaced_deployment("other", "default"))
    denied(lambda: apps.list_namespaced_deployment("default"))  # resourceNames never list
    custom = client.CustomObjectsApi(robot)
    with pytest.raises(ApiException) as caught:
        custom.patch_namespaced_custom_object_status(
            "kamaji.clastix.io", "v1alpha1", "default", "tenantcontrolplanes", "t", {"status": {}}
        )
    assert caught.value.status == 404
    status = denied(
        lambda: custom.patch_namespaced_custom_object(
            "kamaji.clastix.io", "v1alpha1", "default", "tenantcontrolplanes", "t", {"spec": {}}
        )
    )
    assert status["details"] == {
        "name": "t",
        "group": "kamaji.clastix.io",
        "kind": "tenantcontrolplanes",
    }


def test_groups_users_and_wildcards(sim: KubeSim, admin_api: Any, robot: Any) -> None:
    rbac = client.RbacAuthorizationV1Api(admin_api)
    rbac.create_cluster_role(cluster_role("all-leases", [rule(["*"], ["leases"], ["*"])]))
    rbac.create_cluster_role_binding(
        binding(
            "sa-group",
            "all-leases",
            subjects=[{"kind": "Group", "name": "system:serviceaccounts:default"}],
        )
    )
    stored = rbac.read_cluster_role_binding("sa-group")
    assert stored.subjects[0].api_group == RBAC  # defaulted, as the API server does
    coordination = client.CoordinationV1Api(robot)
    coordination.list_namespaced_lease("default")
    lease = {"metadata": {"name": "l"}, "spec": {"holderIdentity": "me"}}
    coordination.create_namespaced_lease("default", lease)
    coordination.delete_namespaced_lease("l", "default")


def test_revoking_a_binding_takes_effect_at_once(admin_api: Any, robot: Any) -> None:
    grant_cluster_wide(admin_api, "secret-reader", [rule([""], ["secrets"], ["list"])])
    core = client.CoreV1Api(robot)
    core.list_namespaced_secret("default")
    client.RbacAuthorizationV1Api(admin_api).delete_cluster_role_binding("secret-reader")
    denied(lambda: core.list_namespaced_secret("default"))


def test_a_binding_to_a_missing_role_grants_nothing(admin_api: Any, robot: Any) -> None:
    client.RbacAuthorizationV1Api(admin_api).create_cluster_role_binding(
        binding("dangling", "does-not-exist")
    )
    denied(lambda: client.CoreV1Api(robot).list_namespaced_secret("default"))


# ---------------------------------------------------------------------------- validation


def invalid(call: Callable[[], Any]) -> str:
    with pytest.raises(ApiException) as caught:
        call()
    assert caught.value.status == 422, caught.value.body
    return str(status_of(caught.value)["message"])


def test_rbac_objects_are_validated(admin_api: Any) -> None:
    rbac = client.RbacAuthorizationV1Api(admin_api)
    message = invalid(
        lambda: rbac.create_cluster_role(
            cluster_role("bad", [{"apiGroups": [""], "resources": ["secrets"], "verbs": []}])
        )
    )
    assert message == (
        'ClusterRole.rbac.authorization.k8s.io "bad" is invalid: rules[0].verbs: Required '
        "value: verbs must contain at least one value"
    )
    message = invalid(
        lambda: rbac.create_cluster_role_binding(
            {
                "metadata": {"name": "bad"},
                "roleRef": {"apiGroup": RBAC, "kind": "Role", "name": "x"},
                "subjects": [{"kind": "ServiceAccount", "name": "robot"}],
            }
        )
    )
    assert message == (
        'ClusterRoleBinding.rbac.authorization.k8s.io "bad" is invalid: [roleRef.kind: '
        'Unsupported value: "Role": supported values: "ClusterRole", subjects[0].namespace: '
        "Required value]"
    )


def test_the_role_of_a_binding_cannot_change(admin_api: Any) -> None:
    rbac = client.RbacAuthorizationV1Api(admin_api)
    rbac.create_namespaced_role_binding("default", binding("b", "first"))
    message = invalid(
        lambda: rbac.patch_namespaced_role_binding(
            "b", "default", {"roleRef": {"apiGroup": RBAC, "kind": "ClusterRole", "name": "second"}}
        )
    )
    assert message == (
        'RoleBinding.rbac.authorization.k8s.io "b" is invalid: roleRef: Invalid value: '
        'rbac.RoleRef{APIGroup:"rbac.authorization.k8s.io", Kind:"ClusterRole", Name:"second"}: '
        "cannot change roleRef"
    )


# ---------------------------------------------------------------------------- self reviews


def access_review(api: Any, **attributes: str) -> Any:
    body = {"spec": {"resourceAttributes": attributes}}
    return client.AuthorizationV1Api(api).create_self_subject_access_review(body)


def test_self_subject_access_review_answers_with_the_authorizer(admin_api: Any, robot: Any) -> None:
    grant_cluster_wide(admin_api, "secret-reader", [rule([""], ["secrets"], ["get"])])
    allowed = access_review(robot, verb="get", resource="secrets", namespace="default")
    assert allowed.kind == "SelfSubjectAccessReview"
    assert allowed.status.allowed is True
    assert access_review(robot, verb="delete", resource="secrets").status.allowed is False
    assert access_review(admin_api, verb="delete", resource="secrets").status.allowed is True


def test_self_subject_review_names_the_caller(robot: Any) -> None:
    review = client.AuthenticationV1Api(robot).create_self_subject_review({})
    assert review.status.user_info.username == SA_USER
    assert review.status.user_info.groups == [
        "system:serviceaccounts",
        "system:serviceaccounts:default",
        "system:authenticated",
    ]


def test_kubectl_auth_can_i_and_whoami_with_impersonation(
    sim: KubeSim, admin_api: Any, tmp_path: Path
) -> None:
    service_account(admin_api)
    grant_cluster_wide(admin_api, "secret-writer", [rule([""], ["secrets"], ["create"])])
    config = tmp_path / "admin"
    sim.write_kubeconfig(config)
    as_robot = f"--as={SA_USER}"
    yes = run_kubectl(config, tmp_path, "auth", "can-i", "create", "secrets", as_robot)
    assert yes.stdout.strip() == "yes"
    no = run_kubectl(config, tmp_path, "auth", "can-i", "delete", "secrets", as_robot, check=False)
    assert (no.returncode, no.stdout.strip()) == (1, "no")
    whoami = run_kubectl(config, tmp_path, "auth", "whoami", as_robot, "-o", "json")
    assert json.loads(whoami.stdout)["status"]["userInfo"]["username"] == SA_USER
    refused = run_kubectl(config, tmp_path, "get", "secrets", as_robot, check=False)
    assert refused.returncode == 1
    assert f'User "{SA_USER}" cannot list resource "secrets"' in refused.stderr


def test_impersonation_needs_the_impersonate_verb(
    sim: KubeSim, admin_api: Any, robot: Any, tmp_path: Path
) -> None:
    service_account(admin_api, "other")
    robot.set_default_header("Impersonate-User", "system:serviceaccount:default:other")
    status = denied(lambda: client.AuthenticationV1Api(robot).create_self_subject_review({}))
    assert status["message"] == (
        f'serviceaccounts "other" is forbidden: User "{SA_USER}" cannot impersonate resource '
        '"serviceaccounts" in API group "" in the namespace "default"'
    )
    grant_cluster_wide(
        admin_api,
        "impersonator",
        [rule([""], ["serviceaccounts"], ["impersonate"], resourceNames=["other"])],
    )
    review = client.AuthenticationV1Api(robot).create_self_subject_review({})
    assert review.status.user_info.username == "system:serviceaccount:default:other"
    robot.set_default_header("Impersonate-User", "someone")  # a user, not the allowed account
    denied(lambda: client.AuthenticationV1Api(robot).create_self_subject_review({}))
