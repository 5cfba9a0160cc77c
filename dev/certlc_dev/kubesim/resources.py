"""The registry of kinds the stand-in serves, and the facts each one carries.

A `ResourceType` says where a kind lives (group, version, plural, scope), which verbs clients
may use, whether it has a `/status` subresource, how `metadata.generation` moves, whether it
follows custom-resource rules (PUT needs a resourceVersion, no strategic merge patch) and what
a successful DELETE returns. Discovery, routing, errors and tables all read from here, so a
kind is described once.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from enum import Enum


class Generation(Enum):
    """When `metadata.generation` increments."""

    NONE = "none"  # the kind has no generation (Secrets, Leases, Pods, ...)
    SPEC = "spec"  # built-ins: a change of `spec`
    SPEC_OR_ANNOTATIONS = "spec+annotations"  # Deployments
    NON_METADATA = "non-metadata"  # custom resources: anything but metadata and status


RBAC_GROUP = "rbac.authorization.k8s.io"
READ_VERBS = ("get", "list", "watch")
ALL_VERBS = ("create", "delete", "deletecollection", "get", "list", "patch", "update", "watch")


@dataclass(frozen=True, slots=True)
class PrinterColumn:
    """A CRD `additionalPrinterColumns` entry (simple `.a.b.c` JSONPaths only)."""

    name: str
    type: str
    json_path: str
    description: str = ""
    priority: int = 0
    format: str = ""


@dataclass(frozen=True, slots=True)
class ScalePaths:
    """Where a `/scale` subresource reads and writes (CRD `subresources.scale`)."""

    spec_replicas: str
    status_replicas: str
    selector: str  # a status path holding a selector string, or "" to derive spec.selector


@dataclass(frozen=True, slots=True)
class ResourceType:
    """One served resource: identity, scope, verbs and write rules."""

    group: str
    version: str
    kind: str
    plural: str
    singular: str
    namespaced: bool
    verbs: tuple[str, ...] = ALL_VERBS
    short_names: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    status_subresource: bool = False
    custom: bool = False
    generation: Generation = Generation.NONE
    return_deleted_object: bool = False
    field_labels: tuple[str, ...] = ()
    printer_columns: tuple[PrinterColumn, ...] = field(default=())
    scale: ScalePaths | None = None
    token_subresource: bool = False  # ServiceAccounts: POST .../<name>/token (TokenRequest)
    review: bool = False  # create-only and never stored: the answer is about the caller

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def group_resource(self) -> str:
        """`secrets`, `deployments.apps`: how error messages name the resource."""
        return f"{self.plural}.{self.group}" if self.group else self.plural

    @property
    def qualified_kind(self) -> str:
        """`Secret`, `Deployment.apps`: how Invalid messages name the kind."""
        return f"{self.kind}.{self.group}" if self.group else self.kind

    @property
    def list_kind(self) -> str:
        return f"{self.kind}List"

    @property
    def key(self) -> str:
        """A stable identifier: `group/plural` (`/secrets` for the core group)."""
        return f"{self.group}/{self.plural}"

    def allows(self, verb: str) -> bool:
        return verb in self.verbs


_AGE = PrinterColumn("Age", "date", ".metadata.creationTimestamp", "Age")

BUILTINS: tuple[ResourceType, ...] = (
    ResourceType(
        "",
        "v1",
        "Namespace",
        "namespaces",
        "namespace",
        False,
        short_names=("ns",),
        status_subresource=True,
        return_deleted_object=True,
        field_labels=("status.phase",),
        verbs=("create", "delete", "get", "list", "patch", "update", "watch"),
    ),
    ResourceType("", "v1", "Secret", "secrets", "secret", True, field_labels=("type",)),
    ResourceType(
        "",
        "v1",
        "ServiceAccount",
        "serviceaccounts",
        "serviceaccount",
        True,
        short_names=("sa",),
        return_deleted_object=True,
        token_subresource=True,
    ),
    ResourceType(
        "",
        "v1",
        "Event",
        "events",
        "event",
        True,
        short_names=("ev",),
        field_labels=(
            "involvedObject.kind",
            "involvedObject.namespace",
            "involvedObject.name",
            "involvedObject.uid",
            "reason",
            "type",
            "source",
        ),
    ),
    ResourceType(
        "",
        "v1",
        "Pod",
        "pods",
        "pod",
        True,
        short_names=("po",),
        categories=("all",),
        verbs=("delete", "deletecollection", "get", "list", "watch"),
        status_subresource=True,
        return_deleted_object=True,
        field_labels=("spec.nodeName", "status.phase", "status.podIP"),
    ),
    ResourceType(
        "apps",
        "v1",
        "Deployment",
        "deployments",
        "deployment",
        True,
        short_names=("deploy",),
        categories=("all",),
        status_subresource=True,
        generation=Generation.SPEC_OR_ANNOTATIONS,
        scale=ScalePaths(".spec.replicas", ".status.replicas", ""),
    ),
    ResourceType(
        "apps",
        "v1",
        "ReplicaSet",
        "replicasets",
        "replicaset",
        True,
        short_names=("rs",),
        categories=("all",),
        verbs=READ_VERBS,
        status_subresource=True,
        generation=Generation.SPEC,
    ),
    ResourceType("coordination.k8s.io", "v1", "Lease", "leases", "lease", True),
    ResourceType(RBAC_GROUP, "v1", "ClusterRole", "clusterroles", "clusterrole", False),
    ResourceType(
        RBAC_GROUP, "v1", "ClusterRoleBinding", "clusterrolebindings", "clusterrolebinding", False
    ),
    ResourceType(RBAC_GROUP, "v1", "Role", "roles", "role", True),
    ResourceType(RBAC_GROUP, "v1", "RoleBinding", "rolebindings", "rolebinding", True),
    ResourceType(
        "authorization.k8s.io",
        "v1",
        "SelfSubjectAccessReview",
        "selfsubjectaccessreviews",
        "selfsubjectaccessreview",
        False,
        verbs=("create",),
        review=True,
    ),
    ResourceType(
        "authentication.k8s.io",
        "v1",
        "SelfSubjectReview",
        "selfsubjectreviews",
        "selfsubjectreview",
        False,
        verbs=("create",),
        review=True,
    ),
    ResourceType(
        "kamaji.clastix.io",
        "v1alpha1",
        "TenantControlPlane",
        "tenantcontrolplanes",
        "tenantcontrolplane",
        True,
        short_names=("tcp",),
        categories=("kamaji",),
        status_subresource=True,
        custom=True,
        generation=Generation.NON_METADATA,
        scale=ScalePaths(
            ".spec.controlPlane.deployment.replicas",
            ".status.kubernetesResources.deployment.replicas",
            ".status.kubernetesResources.deployment.selector",
        ),
        printer_columns=(
            PrinterColumn("Version", "string", ".spec.kubernetes.version", "Kubernetes version"),
            PrinterColumn(
                "Status", "string", ".status.kubernetesResources.version.status", "Status"
            ),
            PrinterColumn(
                "Control-Plane endpoint",
                "string",
                ".status.controlPlaneEndpoint",
                "Tenant Control Plane Endpoint (API server)",
            ),
            PrinterColumn(
                "Kubeconfig",
                "string",
                ".status.kubeconfig.admin.secretName",
                "Secret which contains admin kubeconfig",
            ),
            PrinterColumn(
                "Datastore", "string", ".status.storage.dataStoreName", "DataStore actually used"
            ),
            _AGE,
        ),
    ),
    ResourceType(
        "kamaji.clastix.io",
        "v1alpha1",
        "DataStore",
        "datastores",
        "datastore",
        False,
        categories=("kamaji",),
        status_subresource=True,
        custom=True,
        generation=Generation.NON_METADATA,
        printer_columns=(
            PrinterColumn("Driver", "string", ".spec.driver", "Kamaji data store driver"),
            PrinterColumn(
                "Ready", "boolean", ".status.ready", "DataStore validated and ready for use"
            ),
            _AGE,
        ),
    ),
)


class Registry:
    """Look-ups over a set of resource types."""

    def __init__(self, types: Iterable[ResourceType] = BUILTINS) -> None:
        self._types = tuple(types)
        self._by_path: dict[tuple[str, str, str], ResourceType] = {}
        self._aliases: dict[str, ResourceType] = {}
        for rt in self._types:
            self._by_path[(rt.group, rt.version, rt.plural)] = rt
            names = (rt.plural, rt.singular, rt.kind.lower(), *rt.short_names)
            for alias in names:
                self._aliases.setdefault(alias, rt)
                self._aliases.setdefault(f"{alias}.{rt.group}" if rt.group else alias, rt)

    def __iter__(self) -> Iterator[ResourceType]:
        return iter(self._types)

    def by_path(self, group: str, version: str, plural: str) -> ResourceType | None:
        return self._by_path.get((group, version, plural))

    def resolve(self, name: str) -> ResourceType:
        """A type by plural, singular, kind, short name or `plural.group`; KeyError if unknown."""
        rt = self._aliases.get(name) or self._aliases.get(name.lower())
        if rt is None:
            raise KeyError(f"unknown resource {name!r}")
        return rt

    def for_object(self, api_version: str, kind: str) -> ResourceType:
        """The type of an object body; KeyError if unknown."""
        for rt in self._types:
            if rt.api_version == api_version and rt.kind == kind:
                return rt
        raise KeyError(f"unknown kind {api_version}/{kind}")

    def groups(self) -> list[tuple[str, str]]:
        """(group, version) pairs in registration order, core first."""
        seen: list[tuple[str, str]] = []
        for rt in self._types:
            if (rt.group, rt.version) not in seen:
                seen.append((rt.group, rt.version))
        return seen

    def in_group(self, group: str, version: str) -> list[ResourceType]:
        return [rt for rt in self._types if rt.group == group and rt.version == version]
