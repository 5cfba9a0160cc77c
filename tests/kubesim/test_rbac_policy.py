"""The RBAC decision (`certlc_dev.kubesim.rbac.Policy`) as a pure function of RBAC objects."""

from __future__ import annotations

from typing import Any

import pytest

from certlc_dev.kubesim.auth import Attributes, Identity, service_account_identity
from certlc_dev.kubesim.rbac import Policy, Rule

RBAC = "rbac.authorization.k8s.io"
ROBOT = service_account_identity("apps", "robot")


def attrs(verb: str, resource: str, namespace: str = "apps", **kw: str) -> Attributes:
    return Attributes(
        verb, kw.get("group", ""), resource, namespace, kw.get("name", ""), kw.get("sub", "")
    )


def objects(role_kind: str, binding_kind: str, rules: list[dict[str, Any]], **kw: Any) -> Any:
    namespace = kw.get("namespace", "apps")
    role_meta = {"name": "r", **({"namespace": namespace} if role_kind == "Role" else {})}
    binding_meta = {
        "name": "b",
        **({"namespace": namespace} if binding_kind == "RoleBinding" else {}),
    }
    subjects = kw.get(
        "subjects", [{"kind": "ServiceAccount", "name": "robot", "namespace": "apps"}]
    )
    return [
        {"kind": role_kind, "metadata": role_meta, "rules": rules},
        {
            "kind": binding_kind,
            "metadata": binding_meta,
            "roleRef": {"apiGroup": RBAC, "kind": role_kind, "name": "r"},
            "subjects": subjects,
        },
    ]


SECRETS_GET = [{"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"]}]


def test_superusers_may_do_anything_and_nobody_else_by_default() -> None:
    policy = Policy.from_objects([])
    assert policy.allows(Identity("admin", ("system:masters",)), attrs("delete", "secrets"))
    assert not policy.allows(ROBOT, attrs("get", "secrets"))


@pytest.mark.parametrize(
    ("request_", "allowed"),
    [
        (attrs("get", "secrets"), True),
        (attrs("get", "secrets", namespace="other"), True),
        (attrs("get", "secrets", namespace=""), True),
        (attrs("list", "secrets"), False),
        (attrs("get", "secrets", group="apps"), False),
        (attrs("get", "secrets", sub="status"), False),
    ],
)
def test_cluster_role_binding(request_: Attributes, allowed: bool) -> None:
    policy = Policy.from_objects(objects("ClusterRole", "ClusterRoleBinding", SECRETS_GET))
    assert policy.allows(ROBOT, request_) is allowed


@pytest.mark.parametrize(
    ("request_", "allowed"),
    [
        (attrs("get", "secrets"), True),
        (attrs("get", "secrets", namespace="other"), False),
        (attrs("get", "secrets", namespace=""), False),  # all namespaces, or cluster scope
    ],
)
@pytest.mark.parametrize("role_kind", ["Role", "ClusterRole"])
def test_role_binding_is_confined_to_its_namespace(
    role_kind: str, request_: Attributes, allowed: bool
) -> None:
    policy = Policy.from_objects(objects(role_kind, "RoleBinding", SECRETS_GET))
    assert policy.allows(ROBOT, request_) is allowed


def test_a_role_of_another_namespace_is_not_used() -> None:
    found = objects("Role", "RoleBinding", SECRETS_GET)
    found[0]["metadata"]["namespace"] = "other"
    assert not Policy.from_objects(found).allows(ROBOT, attrs("get", "secrets"))


@pytest.mark.parametrize(
    ("subject", "allowed"),
    [
        ({"kind": "ServiceAccount", "name": "robot"}, True),  # the binding's namespace
        ({"kind": "ServiceAccount", "name": "robot", "namespace": "other"}, False),
        ({"kind": "User", "name": "system:serviceaccount:apps:robot"}, True),
        ({"kind": "Group", "name": "system:serviceaccounts:apps"}, True),
        ({"kind": "Group", "name": "system:serviceaccounts:other"}, False),
        ({"kind": "Robot", "name": "robot"}, False),
    ],
)
def test_subjects(subject: dict[str, str], allowed: bool) -> None:
    policy = Policy.from_objects(objects("Role", "RoleBinding", SECRETS_GET, subjects=[subject]))
    assert policy.allows(ROBOT, attrs("get", "secrets")) is allowed


@pytest.mark.parametrize(
    ("rule", "request_", "allowed"),
    [
        (Rule(("*",), ("*",), ("*",)), attrs("delete", "anything", group="x"), True),
        (
            Rule(("patch",), ("k",), ("tcps/status",)),
            attrs("patch", "tcps", group="k", sub="status"),
            True,
        ),
        (
            Rule(("patch",), ("k",), ("tcps",)),
            attrs("patch", "tcps", group="k", sub="status"),
            False,
        ),
        (
            Rule(("patch",), ("k",), ("*/status",)),
            attrs("patch", "tcps", group="k", sub="status"),
            True,
        ),
        (Rule(("get",), ("",), ("secrets",), ("a",)), attrs("get", "secrets", name="a"), True),
        (Rule(("get",), ("",), ("secrets",), ("a",)), attrs("get", "secrets", name="b"), False),
        (Rule(("list",), ("",), ("secrets",), ("a",)), attrs("list", "secrets"), False),
        (Rule(("create",), ("",), ("secrets",), ("a",)), attrs("create", "secrets"), False),
    ],
)
def test_rule_matching(rule: Rule, request_: Attributes, allowed: bool) -> None:
    assert rule.matches(request_) is allowed
