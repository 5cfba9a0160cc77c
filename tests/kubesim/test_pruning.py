"""Structural-schema pruning of custom resources: the pure function, the CRD schemas it reads,
and every write path through the official client and kubectl."""

from __future__ import annotations

import copy
import json
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from certlc_dev.kubesim import KubeSim
from certlc_dev.kubesim.crds import load_schemas, schemas_of
from certlc_dev.kubesim.errors import BadRequest
from certlc_dev.kubesim.pruning import Schema, prune
from certlc_dev.kubesim.resources import Registry
from certlc_dev.kubesim.writes import FieldValidation, warning_header
from tests.kubesim.helpers import TCP_API, datastore, status_of, tcp, tcp_status

Kubectl = Callable[..., subprocess.CompletedProcess[str]]
Obj = dict[str, Any]
TCP = "tenantcontrolplanes"
DS = "datastores"

STRING: Schema = {"type": "string"}
OBJECT: Schema = {
    "type": "object",
    "properties": {
        "spec": {
            "type": "object",
            "properties": {
                "known": STRING,
                "nested": {"type": "object", "properties": {"a": STRING}},
                "list": {
                    "type": "array",
                    "items": {"type": "object", "properties": {"name": STRING}},
                },
                "labels": {"type": "object", "additionalProperties": STRING},
                "refs": {
                    "type": "object",
                    "additionalProperties": {"type": "object", "properties": {"name": STRING}},
                },
                "open": {
                    "type": "object",
                    "x-kubernetes-preserve-unknown-fields": True,
                    "properties": {"closed": {"type": "object", "properties": {"a": STRING}}},
                },
                "openList": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "x-kubernetes-preserve-unknown-fields": True,
                        "properties": {"closed": {"type": "object", "properties": {"a": STRING}}},
                    },
                },
                "template": {
                    "type": "object",
                    "x-kubernetes-embedded-resource": True,
                    "properties": {"spec": {"type": "object", "properties": {"a": STRING}}},
                },
                "anything": {"type": "object"},
            },
        },
        "status": {"type": "object", "properties": {"phase": STRING}},
    },
}

# (case, input, what is stored, the unknown-field paths the API server reports)
CASES: list[tuple[str, Obj, Obj, tuple[str, ...]]] = [
    (
        "known fields stay as they are",
        {"spec": {"known": "x", "nested": {"a": "1"}}, "status": {"phase": "Ready"}},
        {"spec": {"known": "x", "nested": {"a": "1"}}, "status": {"phase": "Ready"}},
        (),
    ),
    (
        "an unknown top-level field is dropped, apiVersion and kind are not",
        {"apiVersion": "g/v1", "kind": "K", "extra": 1, "spec": {}},
        {"apiVersion": "g/v1", "kind": "K", "spec": {}},
        ("extra",),
    ),
    (
        "unknown fields are dropped at every depth",
        {"spec": {"known": "x", "bogus": 1, "nested": {"a": "1", "b": {"c": 2}}}},
        {"spec": {"known": "x", "nested": {"a": "1"}}},
        ("spec.bogus", "spec.nested.b"),
    ),
    (
        "an unknown status field is dropped, known ones stay",
        {"status": {"phase": "Ready", "madeUp": "x"}},
        {"status": {"phase": "Ready"}},
        ("status.madeUp",),
    ),
    (
        "array items are pruned by `items`",
        {"spec": {"list": [{"name": "a", "x": 1}, {"name": "b"}]}},
        {"spec": {"list": [{"name": "a"}, {"name": "b"}]}},
        ("spec.list[0].x",),
    ),
    (
        "additionalProperties keeps every key and prunes each value by its schema",
        {"spec": {"labels": {"a": "1", "b": "2"}, "refs": {"r": {"name": "n", "x": 1}}}},
        {"spec": {"labels": {"a": "1", "b": "2"}, "refs": {"r": {"name": "n"}}}},
        ("spec.refs.r.x",),
    ),
    (
        "preserve-unknown-fields keeps unknown fields but prunes the declared ones",
        {"spec": {"open": {"free": {"deep": 1}, "closed": {"a": "1", "b": 2}}}},
        {"spec": {"open": {"free": {"deep": 1}, "closed": {"a": "1"}}}},
        ("spec.open.closed.b",),
    ),
    (
        "preserve-unknown-fields on array items",
        {"spec": {"openList": [{"free": 1, "closed": {"a": "1", "b": 2}}]}},
        {"spec": {"openList": [{"free": 1, "closed": {"a": "1"}}]}},
        ("spec.openList[0].closed.b",),
    ),
    (
        "an object without properties keeps nothing",
        {"spec": {"anything": {"a": 1}}},
        {"spec": {"anything": {}}},
        ("spec.anything.a",),
    ),
    (
        "an embedded resource keeps apiVersion, kind and ObjectMeta, and is pruned below",
        {
            "spec": {
                "template": {
                    "apiVersion": "v1",
                    "kind": "Pod",
                    "metadata": {"name": "p", "labels": {"a": "b"}, "bogus": 1},
                    "spec": {"a": "1", "b": 2},
                    "extra": 3,
                }
            }
        },
        {
            "spec": {
                "template": {
                    "apiVersion": "v1",
                    "kind": "Pod",
                    "metadata": {"name": "p", "labels": {"a": "b"}},
                    "spec": {"a": "1"},
                }
            }
        },
        ("spec.template.extra", "spec.template.metadata.bogus", "spec.template.spec.b"),
    ),
    (
        "metadata keeps the standard ObjectMeta fields and nothing else",
        {
            "metadata": {
                "name": "t",
                "namespace": "default",
                "labels": {"a": "b"},
                "annotations": {"c": "d"},
                "finalizers": ["f"],
                "ownerReferences": [
                    {"apiVersion": "v1", "kind": "Secret", "name": "s", "uid": "u", "x": 1}
                ],
                "resourceVersion": "5",
                "clusterName": "gone since 1.25",
                "madeUp": {"a": 1},
            }
        },
        {
            "metadata": {
                "name": "t",
                "namespace": "default",
                "labels": {"a": "b"},
                "annotations": {"c": "d"},
                "finalizers": ["f"],
                "ownerReferences": [
                    {"apiVersion": "v1", "kind": "Secret", "name": "s", "uid": "u"}
                ],
                "resourceVersion": "5",
            }
        },
        ("metadata.clusterName", "metadata.madeUp", "metadata.ownerReferences[0].x"),
    ),
    (
        "scalars are not type-checked (that is validation)",
        {"spec": {"known": 5, "nested": "not an object"}},
        {"spec": {"known": 5, "nested": "not an object"}},
        (),
    ),
]


@pytest.mark.parametrize(("case", "given", "stored", "unknown"), CASES, ids=[c[0] for c in CASES])
def test_prune(case: str, given: Obj, stored: Obj, unknown: tuple[str, ...]) -> None:
    before = copy.deepcopy(given)
    result = prune(OBJECT, given)
    assert result.value == stored
    assert result.unknown == unknown
    assert given == before  # a pure function: the input is untouched


def test_a_preserving_root_keeps_everything_but_unknown_metadata() -> None:
    schema: Schema = {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
    given = {"kind": "K", "metadata": {"name": "n", "x": 1}, "spec": {"a": [{"b": 1}]}, "c": 2}
    result = prune(schema, given)
    assert result.value == {
        "kind": "K",
        "metadata": {"name": "n"},
        "spec": {"a": [{"b": 1}]},
        "c": 2,
    }
    assert result.unknown == ("metadata.x",)


def _crd(plural: str, versions: list[Obj]) -> Obj:
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.example.com"},
        "spec": {"group": "example.com", "names": {"plural": plural}, "versions": versions},
    }


def test_every_served_version_has_its_own_schema() -> None:
    v1 = {"name": "v1", "served": True, "schema": {"openAPIV3Schema": OBJECT}}
    v2 = {"name": "v2", "served": True, "schema": {"openAPIV3Schema": {"type": "object"}}}
    old = {"name": "v0", "served": False, "schema": {"openAPIV3Schema": {"type": "object"}}}
    found = schemas_of([_crd("things", [v1, v2, old]), {"kind": "Namespace"}])
    assert found == {
        ("example.com", "v1", "things"): OBJECT,
        ("example.com", "v2", "things"): {"type": "object"},
    }
    with pytest.raises(ValueError, match="no openAPIV3Schema"):
        schemas_of([_crd("things", [{"name": "v1", "served": True}])])


def test_the_stand_in_prunes_by_deploy_crds() -> None:
    schemas = load_schemas()
    assert set(schemas) == {
        ("kamaji.clastix.io", "v1alpha1", TCP),
        ("kamaji.clastix.io", "v1alpha1", DS),
    }


def test_what_certlc_seeds_is_kept_whole() -> None:
    schemas = load_schemas()
    body = {**tcp("t"), "status": tcp_status("t")}
    assert prune(schemas[("kamaji.clastix.io", "v1alpha1", TCP)], body) == (body, ())
    store = datastore("d")
    assert prune(schemas[("kamaji.clastix.io", "v1alpha1", DS)], store) == (store, ())


def test_field_validation_directives() -> None:
    datastores = Registry().resolve("datastores")
    unknown = ["spec.a", "status.b"]
    ignore = FieldValidation.parse("Ignore")
    ignore.unknown_fields(datastores, unknown, patch=False)
    assert ignore.warnings == []
    warn = FieldValidation.parse(None)  # the API server's default
    warn.unknown_fields(datastores, unknown, patch=False)
    assert warn.warnings == ['unknown field "spec.a"', 'unknown field "status.b"']
    assert warning_header(warn.warnings) == (
        '299 - "unknown field \\"spec.a\\"", 299 - "unknown field \\"status.b\\""'
    )
    strict = FieldValidation.parse("Strict")
    strict.unknown_fields(datastores, [], patch=False)  # nothing unknown: fine
    with pytest.raises(BadRequest) as created:
        strict.unknown_fields(datastores, unknown, patch=False)
    assert created.value.message == (
        'DataStore in version "v1alpha1" cannot be handled as a DataStore: strict decoding '
        'error: unknown field "spec.a", unknown field "status.b"'
    )
    with pytest.raises(BadRequest) as patched:
        strict.unknown_fields(datastores, unknown, patch=True)
    assert patched.value.message == (
        'strict decoding error: unknown field "spec.a", unknown field "status.b"'
    )
    with pytest.raises(BadRequest, match="fieldValidation: Unsupported value"):
        FieldValidation.parse("strict")


# --- through the official client ------------------------------------------------------------


@pytest.fixture
def custom(kube_api: Any) -> client.CustomObjectsApi:
    return client.CustomObjectsApi(kube_api)


def _unknown_status(name: str) -> Obj:
    status = tcp_status(name)
    status["madeUp"] = "lost"
    status["kubernetesResources"]["version"]["alsoMadeUp"] = 1
    status["storage"]["config"] = {"secretName": "c", "checksum": "s", "lastUpdate": "x"}
    return status


def _known(status: Obj) -> Obj:
    kept = copy.deepcopy(status)
    del kept["madeUp"], kept["kubernetesResources"]["version"]["alsoMadeUp"]
    del kept["storage"]["config"]["lastUpdate"]  # Kamaji's DataStoreConfigStatus has none
    return kept


def _read(custom: client.CustomObjectsApi, name: str) -> Obj:
    got: Obj = custom.get_namespaced_custom_object(*TCP_API, "default", TCP, name)
    return got


def test_status_merge_patch_drops_unknown_fields(custom: client.CustomObjectsApi) -> None:
    custom.create_namespaced_custom_object(*TCP_API, "default", TCP, tcp("t"))
    status = _unknown_status("t")
    patched = custom.patch_namespaced_custom_object_status(
        *TCP_API, "default", TCP, "t", {"status": status}
    )
    assert patched["status"] == _known(status)
    assert _read(custom, "t")["status"] == _known(status)


def test_status_replace_drops_unknown_fields(custom: client.CustomObjectsApi) -> None:
    created = custom.create_namespaced_custom_object(*TCP_API, "default", TCP, tcp("t"))
    status = _unknown_status("t")
    replaced = custom.replace_namespaced_custom_object_status(
        *TCP_API, "default", TCP, "t", {**created, "status": status}
    )
    assert replaced["status"] == _known(status)
    assert _read(custom, "t")["status"] == _known(status)


def test_status_json_patch_drops_unknown_fields(custom: client.CustomObjectsApi) -> None:
    custom.create_namespaced_custom_object(*TCP_API, "default", TCP, tcp("t"))
    custom.patch_namespaced_custom_object_status(
        *TCP_API, "default", TCP, "t", {"status": tcp_status("t")}
    )
    ops = [
        {"op": "add", "path": "/status/madeUp", "value": "lost"},
        {"op": "replace", "path": "/status/controlPlaneEndpoint", "value": "10.0.0.9:6443"},
    ]
    custom.patch_namespaced_custom_object_status(
        *TCP_API, "default", TCP, "t", ops, _content_type="application/json-patch+json"
    )
    status = _read(custom, "t")["status"]
    assert "madeUp" not in status
    assert status == {**tcp_status("t"), "controlPlaneEndpoint": "10.0.0.9:6443"}


def test_main_resource_writes_are_pruned(custom: client.CustomObjectsApi) -> None:
    body = datastore("d")
    body["spec"]["madeUp"] = 1
    body["spec"]["tlsConfig"] = {
        "certificateAuthority": {"certificate": {"content": "Zg==", "x": 1}}
    }
    body["metadata"]["labels"] = {"a": "b"}
    body["metadata"]["madeUp"] = "x"
    body["extra"] = True
    created = custom.create_cluster_custom_object(*TCP_API, DS, body)
    expected_spec = {
        "driver": "etcd",
        "endpoints": ["etcd-0:2379"],
        "tlsConfig": {"certificateAuthority": {"certificate": {"content": "Zg=="}}},
    }
    assert created["spec"] == expected_spec
    assert "extra" not in created
    assert "madeUp" not in created["metadata"]
    assert created["metadata"]["labels"] == {"a": "b"}
    patched = custom.patch_cluster_custom_object(
        *TCP_API, DS, "d", {"spec": {"endpoints": ["e:1"], "bogus": {"a": 1}}}
    )
    assert patched["spec"] == {**expected_spec, "endpoints": ["e:1"]}
    patched["spec"]["another"] = 2
    replaced = custom.replace_cluster_custom_object(*TCP_API, DS, "d", patched)
    assert replaced["spec"] == {**expected_spec, "endpoints": ["e:1"]}
    # an update that only adds unknown fields changes nothing
    assert replaced["metadata"]["resourceVersion"] == patched["metadata"]["resourceVersion"]


def test_strict_field_validation_refuses_unknown_fields(custom: client.CustomObjectsApi) -> None:
    body = {**datastore("d"), "extra": 1}
    with pytest.raises(client.ApiException) as refused:
        custom.create_cluster_custom_object(*TCP_API, DS, body, field_validation="Strict")
    assert refused.value.status == 400
    assert status_of(refused.value)["message"] == (
        'DataStore in version "v1alpha1" cannot be handled as a DataStore: strict decoding '
        'error: unknown field "extra"'
    )
    custom.create_cluster_custom_object(*TCP_API, DS, datastore("d"), field_validation="Strict")
    with pytest.raises(client.ApiException) as patch_refused:
        custom.patch_cluster_custom_object_status(
            *TCP_API, DS, "d", {"status": {"ready": True, "madeUp": 1}}, field_validation="Strict"
        )
    assert status_of(patch_refused.value)["message"] == (
        'strict decoding error: unknown field "status.madeUp"'
    )
    assert "status" not in custom.get_cluster_custom_object(*TCP_API, DS, "d")


def test_tcp_spec_keeps_unknown_fields_where_the_schema_preserves_them(
    custom: client.CustomObjectsApi,
) -> None:
    body = tcp("t", controlPlane={"deployment": {"replicas": 3, "extraArgs": ["--v=4"]}})
    body["spec"]["kubernetes"]["kubelet"] = {"cgroupfs": "systemd"}
    created = custom.create_namespaced_custom_object(*TCP_API, "default", TCP, {**body, "x": 1})
    assert created["spec"] == body["spec"]
    assert "x" not in created


def test_dry_run_and_seeding_are_pruned(kube_sim: KubeSim, custom: client.CustomObjectsApi) -> None:
    dry = custom.create_namespaced_custom_object(
        *TCP_API, "default", TCP, {**tcp("t"), "x": 1}, dry_run="All"
    )
    assert "x" not in dry
    seeded = kube_sim.create({**tcp("s"), "status": _unknown_status("s")}, keep_status=True)
    assert seeded["status"] == _known(_unknown_status("s"))
    kube_sim.update_status("tcp", "s", _unknown_status("s"))
    assert kube_sim.get("tcp", "s")["status"] == _known(_unknown_status("s"))


def test_scale_keeps_the_status_kamaji_declares(
    kube_sim: KubeSim, custom: client.CustomObjectsApi
) -> None:
    deployment = {"name": "t", "namespace": "default", "replicas": 2, "selector": "a=b"}
    status = {"kubernetesResources": {"deployment": {**deployment, "x": 1}}}
    kube_sim.create({**tcp("t"), "status": status}, keep_status=True)
    scale = custom.patch_namespaced_custom_object_scale(
        *TCP_API, "default", TCP, "t", {"spec": {"replicas": 3}}
    )
    assert (scale["spec"]["replicas"], scale["status"]["replicas"]) == (3, 2)
    stored = kube_sim.get("tcp", "t")
    assert stored["spec"]["controlPlane"] == {"deployment": {"replicas": 3}}
    assert stored["status"] == {"kubernetesResources": {"deployment": deployment}}


# --- through kubectl ------------------------------------------------------------------------


def test_kubectl_status_patch_loses_an_unknown_field(kubectl: Kubectl, kube_sim: KubeSim) -> None:
    kube_sim.create({**tcp("k8s-126"), "status": tcp_status("k8s-126")}, keep_status=True)
    patch = {"status": {"controlPlaneEndpoint": "10.0.0.7:6443", "madeUp": "lost"}}
    patched = kubectl(
        "patch", "tcp", "k8s-126", "--subresource=status", "--type=merge", "-p", json.dumps(patch)
    )
    assert patched.stderr == 'Warning: unknown field "status.madeUp"\n'  # the default: Warn
    stored = json.loads(kubectl("get", "tcp", "k8s-126", "-o", "json").stdout)
    assert stored["status"] == {**tcp_status("k8s-126"), "controlPlaneEndpoint": "10.0.0.7:6443"}
    columns = kubectl("get", "tcp", "k8s-126", "--no-headers").stdout.split()
    assert "10.0.0.7:6443" in columns


def test_kubectl_apply_stores_the_pruned_object(
    kubectl: Kubectl, kube_sim: KubeSim, tmp_path: Path
) -> None:
    body = datastore("d")
    body["spec"]["basicAuth"] = {"username": {"content": "dXNlcg==", "x": 1}}
    manifest = tmp_path / "datastore.json"
    manifest.write_text(json.dumps(body))
    refused = kubectl("apply", "-f", str(manifest), check=False)  # --validate=strict by default
    assert refused.returncode == 1
    assert refused.stderr.strip().endswith(
        'DataStore in version "v1alpha1" cannot be handled as a DataStore: strict decoding '
        'error: unknown field "spec.basicAuth.username.x"'
    )
    assert kube_sim.try_get("datastores", "d") is None
    kubectl("apply", "-f", str(manifest), "--validate=false")
    stored = kube_sim.get("datastores", "d")
    assert stored["spec"]["basicAuth"] == {"username": {"content": "dXNlcg=="}}
