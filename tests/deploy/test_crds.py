"""deploy/crds: Kamaji's TenantControlPlane and DataStore definitions for clusters without Kamaji.

Beyond their shape (names, scope, status subresource, printer columns of the reference), the
property that matters: the API server keeps, unchanged, every field certlc reads. `stored`
prunes with the stand-in's structural-schema pruning (`certlc_dev.kubesim.pruning`, what the
API server does) and `violations` type-checks; certlc's readers must see the same thing before
and after.
"""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from typing import Any

import pytest

from certlc_dev.devenv import seed
from certlc_dev.kubesim.pruning import prune
from libs.pki import STATUS_PATHS, TcpSpec
from libs.pki.profiles import STATUS_WITHOUT_LAST_UPDATE
from services.rollout.plan import SecretFact, status_patch
from services.watcher.facts import observe_datastore, observe_tcp
from tests.deploy.manifests import render

Obj = dict[str, Any]
NOW = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)

# What rollout writes and a cluster running Kamaji drops: nothing. (Kamaji's
# DataStoreConfigStatus, api/v1alpha1/tenantcontrolplane_status.go, has no lastUpdate, and
# rollout writes none there: STATUS_WITHOUT_LAST_UPDATE.)
DROPPED: tuple[str, ...] = ()

# kubectl get tcp, from the reference (shared/reference/kamaji-certificates.md).
TCP_COLUMNS = [
    ("VERSION", ".spec.kubernetes.version"),
    ("STATUS", ".status.kubernetesResources.version.status"),
    ("CONTROL-PLANE ENDPOINT", ".status.controlPlaneEndpoint"),
    ("KUBECONFIG", ".status.kubeconfig.admin.secretName"),
    ("DATASTORE", ".status.storage.dataStoreName"),
    ("AGE", ".metadata.creationTimestamp"),
]
TCP_PHASES = [
    "Unknown",
    "Provisioning",
    "CertificateAuthorityRotating",
    "Upgrading",
    "Migrating",
    "Ready",
    "NotReady",
    "Sleeping",
    "WriteLimited",
]


def crd(plural: str) -> Obj:
    (found,) = [
        obj for obj in render("crds") if obj["metadata"]["name"] == f"{plural}.kamaji.clastix.io"
    ]
    return found


def version(plural: str) -> Obj:
    versions: list[Obj] = crd(plural)["spec"]["versions"]
    (v,) = versions
    return v


def schema(plural: str) -> Obj:
    s: Obj = version(plural)["schema"]["openAPIV3Schema"]
    return s


# --- a model of the API server's validation --------------------------------------------------


def violations(value: Any, node: Obj, path: str = "") -> list[str]:
    kind = node.get("type")
    problems: list[str] = []
    checks: dict[str, type | tuple[type, ...]] = {
        "object": dict,
        "array": list,
        "string": str,
        "integer": int,
        "boolean": bool,
        "number": (int, float),
    }
    if kind in checks and not isinstance(value, checks[kind]):
        return [f"{path}: {value!r} is not {kind}"]
    if kind == "integer" and isinstance(value, bool):
        return [f"{path}: {value!r} is not integer"]
    if "enum" in node and value not in node["enum"]:
        problems.append(f"{path}: {value!r} not in {node['enum']}")
    if node.get("format") == "date-time":
        try:
            datetime.fromisoformat(value)
        except ValueError:
            problems.append(f"{path}: {value!r} is not RFC 3339")
    if isinstance(value, dict):
        problems += [
            f"{path}.{key}: required" for key in node.get("required", []) if key not in value
        ]
        for key, item in value.items():
            if key in node.get("properties", {}):
                problems += violations(item, node["properties"][key], f"{path}.{key}")
    if isinstance(value, list) and "items" in node:
        for index, item in enumerate(value):
            problems += violations(item, node["items"], f"{path}[{index}]")
    if isinstance(value, list) and len(value) < node.get("minItems", 0):
        problems.append(f"{path}: fewer than {node['minItems']} items")
    return problems


def stored(obj: Obj, plural: str) -> Obj:
    """Validate `obj` as the API server would on create, and return what it would store."""
    top = schema(plural)
    assert violations(obj, top) == []
    result: Obj = prune(top, obj).value
    return result


def structural(node: Obj, path: str = "") -> list[str]:
    """Every node has a type; properties and preserve-unknown only on objects."""
    problems = []
    if "type" not in node:
        problems.append(f"{path}: no type")
    if ("properties" in node or "x-kubernetes-preserve-unknown-fields" in node) and node.get(
        "type"
    ) != "object":
        problems.append(f"{path}: properties on a non-object")
    for key, child in node.get("properties", {}).items():
        problems += structural(child, f"{path}.{key}")
    if "items" in node:
        problems += structural(node["items"], f"{path}[]")
    return problems


# --- a TenantControlPlane with every field certlc reads and writes -------------------------


def full_tcp(*, konnectivity: bool = True) -> Obj:
    obj = seed.tcp_object("k8s-126", "tenant-a", konnectivity=konnectivity)
    obj["metadata"]["uid"] = "0b5a0bd1-6a54-4f4e-9d1f-2b5d3b8a9c10"
    obj["metadata"]["annotations"] = {"kamaji.clastix.io/paused": ""}
    obj["spec"]["dataStoreSchema"] = "tenant_a_k8s_126"
    obj["spec"]["networkProfile"].update(
        {
            "advertiseAddress": "10.0.0.7",
            "certSANs": ["api.tenant-a.example", "192.0.2.10"],
            "clusterDomain": "tenant.local",
            "loadBalancerSourceRanges": ["0.0.0.0/0"],  # Kamaji has more: kept
        }
    )
    status = seed.tcp_status("k8s-126")
    status["storage"]["setup"] = {"user": "tenant_a", "schema": "tenant_a_k8s_126"}
    status["addons"] = {"konnectivity": {"enabled": konnectivity}}  # Kamaji reports the addon
    facts = {
        kind: SecretFact(name=f"k8s-126-{kind.value}", checksum=f"sum-{kind.value}")
        for kind in STATUS_PATHS
    }
    patch = status_patch({"status": status}, facts, NOW, phase="CertificateAuthorityRotating")
    assert patch is not None

    def merge(into: Obj, update: Obj) -> None:
        for key, value in update.items():
            if isinstance(value, dict) and isinstance(into.get(key), dict):
                merge(into[key], value)
            else:
                into[key] = value

    merge(status, patch["status"])
    obj["status"] = status
    return obj


def test_tenantcontrolplane_definition() -> None:
    spec = crd("tenantcontrolplanes")["spec"]
    assert spec["group"] == "kamaji.clastix.io"
    assert spec["scope"] == "Namespaced"
    assert spec["names"]["kind"] == "TenantControlPlane"
    assert spec["names"]["plural"] == "tenantcontrolplanes"
    assert spec["names"]["shortNames"] == ["tcp"]
    v = version("tenantcontrolplanes")
    assert (v["name"], v["served"], v["storage"]) == ("v1alpha1", True, True)
    assert v["subresources"] == {"status": {}}


def test_tenantcontrolplane_printer_columns_are_the_reference_ones() -> None:
    columns = version("tenantcontrolplanes")["additionalPrinterColumns"]
    assert [(c["name"].upper(), c["jsonPath"]) for c in columns] == TCP_COLUMNS
    assert columns[-1]["type"] == "date"


def test_datastore_definition() -> None:
    spec = crd("datastores")["spec"]
    assert spec["group"] == "kamaji.clastix.io"
    assert spec["scope"] == "Cluster"
    assert spec["names"]["kind"] == "DataStore"
    assert spec["names"]["plural"] == "datastores"
    v = version("datastores")
    assert (v["name"], v["served"], v["storage"]) == ("v1alpha1", True, True)
    driver = schema("datastores")["properties"]["spec"]["properties"]["driver"]
    assert driver["enum"] == ["etcd", "MySQL", "PostgreSQL", "NATS"]


@pytest.mark.parametrize("plural", ["tenantcontrolplanes", "datastores"])
def test_schemas_are_structural(plural: str) -> None:
    assert structural(schema(plural)) == []
    top = schema(plural)["properties"]
    # The status is Kamaji's: it keeps no unknown field.
    assert "x-kubernetes-preserve-unknown-fields" not in str(top["status"])


def test_the_phase_enum_is_the_reference_one() -> None:
    status = schema("tenantcontrolplanes")["properties"]["status"]
    phase = status["properties"]["kubernetesResources"]["properties"]["version"]
    assert phase["properties"]["status"]["enum"] == TCP_PHASES


@pytest.mark.parametrize("konnectivity", [True, False])
def test_certlc_reads_a_stored_tcp_as_it_was_written(konnectivity: bool) -> None:
    obj = full_tcp(konnectivity=konnectivity)
    top = schema("tenantcontrolplanes")
    assert violations(obj, top) == []
    kept, dropped = prune(top, copy.deepcopy(obj))
    assert dropped == DROPPED  # everything else certlc or Kamaji wrote is kept
    assert TcpSpec.from_resource(kept) == TcpSpec.from_resource(obj)
    assert TcpSpec.from_resource(kept).konnectivity is konnectivity
    assert observe_tcp(kept, NOW) == observe_tcp(obj, NOW)


def test_every_status_record_of_rollout_has_a_schema() -> None:
    """rollout writes {secretName, checksum, lastUpdate} at STATUS_PATHS and reads back
    secretName and checksum: those two are declared everywhere, lastUpdate all but where
    Kamaji has none (STATUS_WITHOUT_LAST_UPDATE), where rollout writes none."""
    status = schema("tenantcontrolplanes")["properties"]["status"]
    for kind, path in STATUS_PATHS.items():
        node = status
        for part in path:
            assert part in node.get("properties", {}), f"{kind}: status.{'.'.join(path)}"
            node = node["properties"][part]
        declared = set(node["properties"])
        assert {"secretName", "checksum"} <= declared, kind
        assert ("lastUpdate" in declared) is (kind not in STATUS_WITHOUT_LAST_UPDATE), kind


def test_unknown_tcp_phase_and_wrong_types_are_refused() -> None:
    obj = full_tcp()
    obj["status"]["kubernetesResources"]["version"]["status"] = "Rotating"
    obj["spec"]["networkProfile"]["port"] = "6443"
    problems = violations(obj, schema("tenantcontrolplanes"))
    assert len(problems) == 2, problems


def test_printer_columns_show_the_seeded_tcp() -> None:
    obj = stored(full_tcp(), "tenantcontrolplanes")
    obj["metadata"]["creationTimestamp"] = "2026-01-02T03:04:05Z"
    values = []
    for _, path in TCP_COLUMNS:
        node: Any = obj
        for part in path.strip(".").split("."):
            node = node[part]
        values.append(node)
    assert values[:5] == [
        "v1.26.0",
        "CertificateAuthorityRotating",
        "172.18.255.200:6443",
        "k8s-126-admin-kubeconfig",
        "default",
    ]


@pytest.mark.parametrize("make", [seed.etcd_datastore, seed.postgres_datastore])
def test_certlc_reads_a_stored_datastore_as_it_was_written(make: Any) -> None:
    secret, datastore = make(now=NOW)
    assert secret["kind"] == "Secret"
    kept = stored(copy.deepcopy(datastore), "datastores")
    assert kept == datastore
    assert observe_datastore(kept, ca=None, client=None, now=NOW) == observe_datastore(
        datastore, ca=None, client=None, now=NOW
    )


def test_a_datastore_without_endpoints_or_with_an_unknown_driver_is_refused() -> None:
    _, datastore = seed.etcd_datastore(now=NOW)
    datastore["spec"]["driver"] = "sqlite"
    del datastore["spec"]["endpoints"]
    assert len(violations(datastore, schema("datastores"))) == 2
