"""RBAC authorization, as kube-apiserver's RBAC authorizer decides it.

`Policy` is pure: built from Roles, ClusterRoles, RoleBindings and ClusterRoleBindings, it
answers whether an identity may perform a request. The rules are Kubernetes' own:

- a ClusterRoleBinding grants its ClusterRole everywhere (cluster-scoped requests, every
  namespace, lists across all namespaces); a RoleBinding grants its Role, or a ClusterRole,
  only inside the binding's namespace;
- a rule matches when its `verbs`, `apiGroups` and `resources` each hold the request's value
  or `*`; a subresource request matches `resource/subresource` or `*/subresource`; a rule with
  `resourceNames` matches only requests naming one of them (never list, watch or create);
- subjects match a `User` by name, a `Group` by membership, a `ServiceAccount` by the username
  `system:serviceaccount:<namespace>:<name>` (the binding's namespace when the subject has
  none); a binding to a role that does not exist grants nothing;
- members of `system:masters` may do anything, as the API server's superuser group.

`RbacAuthorizer` keeps a `Policy` compiled from the store and rebuilds it only when an RBAC
object changed. Not modelled (docs/kube-stand-in.md): aggregated ClusterRoles, the
escalation check on writes of RBAC objects, the bootstrap `system:*` roles, and authorization
of non-resource URLs (discovery and health are open to every authenticated client).
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from certlc_dev.kubesim.auth import Attributes, Identity, service_account_username
from certlc_dev.kubesim.resources import RBAC_GROUP, Registry
from certlc_dev.kubesim.store import Store

SUPERUSER_GROUP = "system:masters"
ALL = "*"
# Verbs that never name one object, so a rule restricted by resourceNames cannot match them.
UNNAMED_VERBS = frozenset({"list", "watch", "create", "deletecollection"})

Obj = Mapping[str, Any]


def _strings(value: Any) -> tuple[str, ...]:
    if not isinstance(value, Sequence) or isinstance(value, str):
        return ()
    return tuple(str(v) for v in value)


@dataclass(frozen=True, slots=True)
class Rule:
    verbs: tuple[str, ...]
    api_groups: tuple[str, ...]
    resources: tuple[str, ...]
    resource_names: tuple[str, ...] = ()

    @classmethod
    def from_object(cls, rule: Obj) -> Rule:
        return cls(
            _strings(rule.get("verbs")),
            _strings(rule.get("apiGroups")),
            _strings(rule.get("resources")),
            _strings(rule.get("resourceNames")),
        )

    def matches(self, attrs: Attributes) -> bool:
        if ALL not in self.verbs and attrs.verb not in self.verbs:
            return False
        if ALL not in self.api_groups and attrs.group not in self.api_groups:
            return False
        if not self._resource_matches(attrs):
            return False
        if self.resource_names:
            return attrs.verb not in UNNAMED_VERBS and attrs.name in self.resource_names
        return True

    def _resource_matches(self, attrs: Attributes) -> bool:
        if ALL in self.resources:
            return True
        if not attrs.subresource:
            return attrs.resource in self.resources
        combined = f"{attrs.resource}/{attrs.subresource}"
        return combined in self.resources or f"*/{attrs.subresource}" in self.resources


@dataclass(frozen=True, slots=True)
class Subject:
    kind: str
    name: str
    namespace: str

    @classmethod
    def from_object(cls, subject: Obj) -> Subject:
        return cls(
            str(subject.get("kind", "")),
            str(subject.get("name", "")),
            str(subject.get("namespace", "") or ""),
        )

    def applies_to(self, identity: Identity, binding_namespace: str) -> bool:
        if self.kind == "User":
            return identity.username == self.name
        if self.kind == "Group":
            return self.name in identity.groups
        if self.kind == "ServiceAccount":
            namespace = self.namespace or binding_namespace
            return bool(namespace) and identity.username == service_account_username(
                namespace, self.name
            )
        return False


@dataclass(frozen=True, slots=True)
class Grant:
    """One binding resolved to the rules it grants. `namespace` "" means everywhere."""

    binding: str
    namespace: str
    subjects: tuple[Subject, ...]
    rules: tuple[Rule, ...]

    def allows(self, identity: Identity, attrs: Attributes) -> bool:
        if self.namespace and attrs.namespace != self.namespace:
            return False
        if not any(s.applies_to(identity, self.namespace) for s in self.subjects):
            return False
        return any(rule.matches(attrs) for rule in self.rules)


def _rules(role: Obj | None) -> tuple[Rule, ...]:
    if role is None:
        return ()
    return tuple(Rule.from_object(r) for r in role.get("rules") or () if isinstance(r, Mapping))


def _name(obj: Obj) -> str:
    return str((obj.get("metadata") or {}).get("name", ""))


def _namespace(obj: Obj) -> str:
    return str((obj.get("metadata") or {}).get("namespace", "") or "")


def _subjects(binding: Obj) -> tuple[Subject, ...]:
    return tuple(
        Subject.from_object(s) for s in binding.get("subjects") or () if isinstance(s, Mapping)
    )


class Policy:
    """Every grant of a set of RBAC objects. Pure."""

    def __init__(self, grants: Iterable[Grant]) -> None:
        self.grants = tuple(grants)

    @classmethod
    def from_objects(cls, objects: Iterable[Obj]) -> Policy:
        """A policy from RBAC objects of the four kinds (others are ignored)."""
        cluster_roles: dict[str, Obj] = {}
        roles: dict[tuple[str, str], Obj] = {}
        bindings: list[Obj] = []
        for obj in objects:
            kind = obj.get("kind")
            if kind == "ClusterRole":
                cluster_roles[_name(obj)] = obj
            elif kind == "Role":
                roles[(_namespace(obj), _name(obj))] = obj
            elif kind in {"RoleBinding", "ClusterRoleBinding"}:
                bindings.append(obj)
        grants = []
        for binding in bindings:
            ref = binding.get("roleRef") or {}
            ref_kind, ref_name = str(ref.get("kind", "")), str(ref.get("name", ""))
            if binding.get("kind") == "ClusterRoleBinding":
                namespace = ""
                role = cluster_roles.get(ref_name) if ref_kind == "ClusterRole" else None
            else:
                namespace = _namespace(binding)
                if ref_kind == "ClusterRole":
                    role = cluster_roles.get(ref_name)
                else:
                    role = roles.get((namespace, ref_name)) if ref_kind == "Role" else None
            grants.append(Grant(_name(binding), namespace, _subjects(binding), _rules(role)))
        return cls(grants)

    def allows(self, identity: Identity, attrs: Attributes) -> bool:
        if SUPERUSER_GROUP in identity.groups:
            return True
        return any(grant.allows(identity, attrs) for grant in self.grants)


class RbacAuthorizer:
    """An `Authorizer` over the RBAC objects in the store; recompiled when they change."""

    KINDS = ("clusterroles", "clusterrolebindings", "roles", "rolebindings")

    def __init__(self, store: Store, registry: Registry) -> None:
        self._store = store
        self._types = tuple(registry.by_path(RBAC_GROUP, "v1", plural) for plural in self.KINDS)
        self._lock = threading.Lock()
        self._revision: tuple[int, ...] = ()
        self._policy = Policy(())

    def policy(self) -> Policy:
        types = [rt for rt in self._types if rt is not None]
        revision = tuple(self._store.type_revision(rt) for rt in types)
        with self._lock:
            if revision != self._revision:
                objects = [s.obj for rt in types for s in self._store.objects(rt)[0]]
                self._policy = Policy.from_objects(objects)
                self._revision = revision
            return self._policy

    def __call__(self, identity: Identity, attrs: Attributes) -> bool:
        return self.policy().allows(identity, attrs)
