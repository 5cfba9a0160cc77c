"""PATCH: the pure algorithms, then every patch type through the official client."""

from __future__ import annotations

from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.rest import ApiException

from certlc_dev.kubesim.patch import (
    PatchError,
    apply_json_patch,
    apply_merge_patch,
    apply_strategic_merge_patch,
)
from tests.kubesim.helpers import TCP_API, b64, deployment, secret, status_of, tcp

# ---------------------------------------------------------------- pure


@pytest.mark.parametrize(
    ("target", "patch", "result"),
    [  # RFC 7386 appendix A
        ({"a": "b"}, {"a": "c"}, {"a": "c"}),
        ({"a": "b"}, {"b": "c"}, {"a": "b", "b": "c"}),
        ({"a": "b"}, {"a": None}, {}),
        ({"a": "b", "b": "c"}, {"a": None}, {"b": "c"}),
        ({"a": ["b"]}, {"a": "c"}, {"a": "c"}),
        ({"a": "c"}, {"a": ["b"]}, {"a": ["b"]}),
        ({"a": {"b": "c"}}, {"a": {"b": "d", "c": None}}, {"a": {"b": "d"}}),
        ({"a": [{"b": "c"}]}, {"a": [1]}, {"a": [1]}),
        ({"e": None}, {"a": 1}, {"e": None, "a": 1}),
        ({}, {"a": {"bb": {"ccc": None}}}, {"a": {"bb": {}}}),
    ],
)
def test_merge_patch_follows_rfc_7386(target: Any, patch: Any, result: Any) -> None:
    assert apply_merge_patch(target, patch) == result


def test_merge_patch_rejects_a_non_object() -> None:
    with pytest.raises(PatchError) as caught:
        apply_merge_patch({"a": 1}, [{"op": "add"}])
    assert caught.value.status == 400


def test_json_patch_operations() -> None:
    doc = {"a": {"b": [1, 2]}, "c": "x"}
    ops = [
        {"op": "add", "path": "/a/b/-", "value": 3},
        {"op": "add", "path": "/a/b/0", "value": 0},
        {"op": "replace", "path": "/c", "value": "y"},
        {"op": "copy", "from": "/c", "path": "/d"},
        {"op": "move", "from": "/d", "path": "/e~1f"},
        {"op": "remove", "path": "/a/b/1"},
        {"op": "test", "path": "/a/b", "value": [0, 2, 3]},
    ]
    assert apply_json_patch(doc, ops) == {"a": {"b": [0, 2, 3]}, "c": "y", "e/f": "y"}
    assert doc == {"a": {"b": [1, 2]}, "c": "x"}  # input untouched


@pytest.mark.parametrize(
    "ops",
    [
        [{"op": "test", "path": "/c", "value": "other"}],
        [{"op": "remove", "path": "/missing"}],
        [{"op": "replace", "path": "/missing", "value": 1}],
        [{"op": "add", "path": "/a/b/9", "value": 1}],
    ],
)
def test_json_patch_that_does_not_apply_is_422(ops: list[dict[str, Any]]) -> None:
    with pytest.raises(PatchError) as caught:
        apply_json_patch({"a": {"b": []}, "c": "x"}, ops)
    assert caught.value.status == 422


def test_strategic_merge_by_keys() -> None:
    doc = {
        "spec": {
            "containers": [
                {
                    "name": "a",
                    "image": "a:1",
                    "env": [{"name": "X", "value": "1"}],
                    "volumeMounts": [{"name": "v", "mountPath": "/v"}],
                },
                {"name": "b", "image": "b:1"},
            ],
            "volumes": [{"name": "v", "secret": {"secretName": "s"}}],
        },
        "metadata": {"finalizers": ["f1", "f2"], "ownerReferences": [{"uid": "u1", "name": "o1"}]},
    }
    patch = {
        "spec": {
            "containers": [
                {
                    "name": "a",
                    "image": "a:2",
                    "env": [{"name": "Y", "value": "2"}],
                    "volumeMounts": [{"name": "w", "mountPath": "/v"}],
                },
                {"name": "b", "$patch": "delete"},
                {"name": "c", "image": "c:1"},
            ],
            "volumes": [{"name": "w", "emptyDir": {}}],
        },
        "metadata": {
            "finalizers": ["f3"],
            "$deleteFromPrimitiveList/finalizers": ["f1"],
            "ownerReferences": [{"uid": "u1", "name": "renamed"}, {"uid": "u2"}],
        },
    }
    result = apply_strategic_merge_patch(doc, patch)
    containers = result["spec"]["containers"]
    assert [c["name"] for c in containers] == ["a", "c"]
    assert containers[0]["image"] == "a:2"
    assert containers[0]["env"] == [{"name": "X", "value": "1"}, {"name": "Y", "value": "2"}]
    assert containers[0]["volumeMounts"] == [{"name": "w", "mountPath": "/v"}]
    assert [v["name"] for v in result["spec"]["volumes"]] == ["v", "w"]
    assert result["metadata"]["finalizers"] == ["f2", "f3"]
    assert result["metadata"]["ownerReferences"] == [
        {"uid": "u1", "name": "renamed"},
        {"uid": "u2"},
    ]


def test_strategic_merge_directives() -> None:
    doc = {"a": {"x": 1, "y": 2}, "l": [{"name": "p"}], "s": ["x"]}
    assert apply_strategic_merge_patch(doc, {"a": {"$patch": "replace", "z": 3}})["a"] == {"z": 3}
    assert "a" not in apply_strategic_merge_patch(doc, {"a": {"$patch": "delete"}})
    assert apply_strategic_merge_patch(doc, {"a": {"$retainKeys": ["y"], "y": 5}})["a"] == {"y": 5}
    assert apply_strategic_merge_patch(doc, {"s": ["y"]})["s"] == ["y"]  # replaced list


# ---------------------------------------------------------------- through the client


@pytest.fixture
def custom(kube_api: Any) -> client.CustomObjectsApi:
    return client.CustomObjectsApi(kube_api)


def test_a_dict_patch_on_a_secret_is_a_strategic_merge(core: client.CoreV1Api) -> None:
    core.create_namespaced_secret("default", secret("a", {"k": "v"}, labels={"a": "1"}))
    patched = core.patch_namespaced_secret(
        "a", "default", {"metadata": {"labels": {"b": "2", "a": None}}, "data": {"k2": b64("w")}}
    )
    assert patched.metadata.labels == {"b": "2"}
    assert patched.data == {"k": b64("v"), "k2": b64("w")}


def test_a_list_patch_is_a_json_patch_including_test(core: client.CoreV1Api) -> None:
    core.create_namespaced_secret("default", secret("a", {"k": "v"}, labels={"a": "1"}))
    patched = core.patch_namespaced_secret(
        "a",
        "default",
        [
            {"op": "test", "path": "/metadata/labels/a", "value": "1"},
            {"op": "replace", "path": "/metadata/labels/a", "value": "2"},
        ],
    )
    assert patched.metadata.labels == {"a": "2"}
    with pytest.raises(ApiException) as caught:
        core.patch_namespaced_secret(
            "a",
            "default",
            [
                {"op": "test", "path": "/metadata/labels/a", "value": "1"},
                {"op": "remove", "path": "/data/k"},
            ],
        )
    assert caught.value.status == 422
    assert status_of(caught.value)["message"] == (
        "testing value /metadata/labels/a failed: test failed"
    )
    assert core.read_namespaced_secret("a", "default").data == {"k": b64("v")}


def test_a_resource_version_inside_a_patch_is_a_precondition(core: client.CoreV1Api) -> None:
    created = core.create_namespaced_secret("default", secret("a"))
    ok = core.patch_namespaced_secret(
        "a",
        "default",
        {"metadata": {"resourceVersion": created.metadata.resource_version, "labels": {"x": "1"}}},
    )
    assert ok.metadata.labels == {"x": "1"}
    with pytest.raises(ApiException) as caught:
        core.patch_namespaced_secret(
            "a",
            "default",
            {
                "metadata": {
                    "resourceVersion": created.metadata.resource_version,
                    "labels": {"x": "2"},
                }
            },
        )
    assert caught.value.status == 409
    assert status_of(caught.value)["reason"] == "Conflict"


def test_strategic_merge_of_deployment_containers(kube_api: Any) -> None:
    apps = client.AppsV1Api(kube_api)
    apps.create_namespaced_deployment("default", deployment("cp", containers=2))
    patched = apps.patch_namespaced_deployment(
        "cp",
        "default",
        {
            "spec": {
                "template": {
                    "spec": {
                        "containers": [
                            {
                                "name": "kube-apiserver",
                                "image": "registry.k8s.io/kube-apiserver:v2",
                                "env": [{"name": "A", "value": "1"}],
                            }
                        ]
                    }
                }
            }
        },
    )
    containers = patched.spec.template.spec.containers
    assert [c.name for c in containers] == ["kube-apiserver", "kube-controller-manager"]
    assert containers[0].image == "registry.k8s.io/kube-apiserver:v2"
    assert containers[0].env[0].name == "A"
    assert patched.metadata.generation == 2


def test_custom_objects_take_merge_patches(custom: client.CustomObjectsApi) -> None:
    custom.create_namespaced_custom_object(*TCP_API, "default", "tenantcontrolplanes", tcp("t"))
    patched = custom.patch_namespaced_custom_object(
        *TCP_API,
        "default",
        "tenantcontrolplanes",
        "t",
        {"spec": {"kubernetes": {"version": "v1.31.0"}, "dataStore": None}},
    )
    assert patched["spec"]["kubernetes"]["version"] == "v1.31.0"
    assert "dataStore" not in patched["spec"]


def test_custom_objects_take_json_patches_with_the_content_type(
    custom: client.CustomObjectsApi,
) -> None:
    custom.create_namespaced_custom_object(*TCP_API, "default", "tenantcontrolplanes", tcp("t"))
    patched = custom.patch_namespaced_custom_object(
        *TCP_API,
        "default",
        "tenantcontrolplanes",
        "t",
        [{"op": "replace", "path": "/spec/kubernetes/version", "value": "v1.32.0"}],
        _content_type="application/json-patch+json",
    )
    assert patched["spec"]["kubernetes"]["version"] == "v1.32.0"


def test_a_list_sent_as_merge_patch_is_a_bad_request(custom: client.CustomObjectsApi) -> None:
    custom.create_namespaced_custom_object(*TCP_API, "default", "tenantcontrolplanes", tcp("t"))
    with pytest.raises(ApiException) as caught:
        custom.patch_namespaced_custom_object(
            *TCP_API,
            "default",
            "tenantcontrolplanes",
            "t",
            [{"op": "replace", "path": "/spec/kubernetes/version", "value": "v1.32.0"}],
        )
    assert caught.value.status == 400
    assert status_of(caught.value)["reason"] == "BadRequest"


def test_strategic_merge_on_a_custom_resource_is_unsupported(
    custom: client.CustomObjectsApi,
) -> None:
    custom.create_namespaced_custom_object(*TCP_API, "default", "tenantcontrolplanes", tcp("t"))
    with pytest.raises(ApiException) as caught:
        custom.patch_namespaced_custom_object(
            *TCP_API,
            "default",
            "tenantcontrolplanes",
            "t",
            {"spec": {}},
            _content_type="application/strategic-merge-patch+json",
        )
    status = status_of(caught.value)
    assert caught.value.status == 415
    assert status["reason"] == "UnsupportedMediaType"
    assert status["message"] == (
        "the body of the request was in an unknown format - accepted media types include: "
        "application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml"
    )


def test_patching_a_missing_object_is_not_found(core: client.CoreV1Api) -> None:
    with pytest.raises(ApiException) as caught:
        core.patch_namespaced_secret("ghost", "default", {"metadata": {"labels": {"a": "b"}}})
    assert caught.value.status == 404
