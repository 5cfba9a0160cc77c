"""TenantControlPlanes and DataStores: status subresource, generation, CR-specific rules."""

from __future__ import annotations

from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.rest import ApiException

from certlc_dev.kubesim import KubeSim
from tests.kubesim.helpers import TCP_API, datastore, status_of, tcp, tcp_status, watching

PLURAL = "tenantcontrolplanes"


@pytest.fixture
def custom(kube_api: Any) -> client.CustomObjectsApi:
    return client.CustomObjectsApi(kube_api)


def _create(custom: client.CustomObjectsApi, body: dict[str, Any]) -> dict[str, Any]:
    created: dict[str, Any] = custom.create_namespaced_custom_object(
        *TCP_API, "default", PLURAL, body
    )
    return created


def test_create_drops_status_and_starts_at_generation_one(custom: client.CustomObjectsApi) -> None:
    body = tcp("t")
    body["status"] = tcp_status("t")
    created = _create(custom, body)
    assert "status" not in created
    assert created["metadata"]["generation"] == 1
    assert created["kind"] == "TenantControlPlane"
    assert created["apiVersion"] == "kamaji.clastix.io/v1alpha1"


def test_status_subresource_rules(custom: client.CustomObjectsApi) -> None:
    created = _create(custom, tcp("t"))
    with_status = custom.patch_namespaced_custom_object_status(
        *TCP_API,
        "default",
        PLURAL,
        "t",
        {"status": tcp_status("t"), "spec": {"kubernetes": {"version": "v9"}}},
    )
    assert with_status["status"] == tcp_status("t")
    assert with_status["spec"]["kubernetes"]["version"] == "v1.30.0"  # ignored
    assert with_status["metadata"]["generation"] == 1
    assert int(with_status["metadata"]["resourceVersion"]) > int(
        created["metadata"]["resourceVersion"]
    )
    main = custom.patch_namespaced_custom_object(
        *TCP_API,
        "default",
        PLURAL,
        "t",
        {"status": {"controlPlaneEndpoint": "ignored"}, "spec": {"kubernetes": {"version": "v2"}}},
    )
    assert main["status"] == tcp_status("t")  # status ignored on the main resource
    assert main["spec"]["kubernetes"]["version"] == "v2"
    assert main["metadata"]["generation"] == 2


def test_generation_moves_on_spec_only(custom: client.CustomObjectsApi) -> None:
    _create(custom, tcp("t"))
    annotated = custom.patch_namespaced_custom_object(
        *TCP_API,
        "default",
        PLURAL,
        "t",
        {"metadata": {"annotations": {"a": "1"}, "labels": {"l": "1"}}},
    )
    assert annotated["metadata"]["generation"] == 1
    respec = custom.patch_namespaced_custom_object(
        *TCP_API, "default", PLURAL, "t", {"spec": {"addons": {"konnectivity": {}}}}
    )
    assert respec["metadata"]["generation"] == 2


def test_status_writes_emit_modified(custom: client.CustomObjectsApi) -> None:
    created = _create(custom, tcp("t"))
    with watching(
        custom.list_namespaced_custom_object,
        *TCP_API,
        "default",
        PLURAL,
        resource_version=created["metadata"]["resourceVersion"],
        timeout_seconds=5,
    ) as stream:
        custom.patch_namespaced_custom_object_status(
            *TCP_API, "default", PLURAL, "t", {"status": tcp_status("t", "Provisioning")}
        )
        event = next(stream)
        assert event["type"] == "MODIFIED"
        assert (
            event["object"]["status"]["kubernetesResources"]["version"]["status"] == "Provisioning"
        )


def test_replace_without_resource_version_is_invalid_for_custom_resources(
    custom: client.CustomObjectsApi,
) -> None:
    _create(custom, tcp("t"))
    with pytest.raises(ApiException) as caught:
        custom.replace_namespaced_custom_object(*TCP_API, "default", PLURAL, "t", tcp("t"))
    status = status_of(caught.value)
    assert caught.value.status == 422
    assert status["message"] == (
        'TenantControlPlane.kamaji.clastix.io "t" is invalid: metadata.resourceVersion: '
        "Invalid value: 0x0: must be specified for an update"
    )
    assert status["details"]["group"] == "kamaji.clastix.io"
    assert status["details"]["kind"] == "TenantControlPlane"


def test_replace_status_with_a_stale_version_conflicts(custom: client.CustomObjectsApi) -> None:
    created = _create(custom, tcp("t"))
    created["status"] = tcp_status("t")
    ok = custom.replace_namespaced_custom_object_status(*TCP_API, "default", PLURAL, "t", created)
    assert ok["status"] == tcp_status("t")
    with pytest.raises(ApiException) as caught:
        custom.replace_namespaced_custom_object_status(*TCP_API, "default", PLURAL, "t", created)
    status = status_of(caught.value)
    assert caught.value.status == 409
    assert status["message"].startswith(
        'Operation cannot be fulfilled on tenantcontrolplanes.kamaji.clastix.io "t": '
    )
    assert status["details"] == {
        "name": "t",
        "group": "kamaji.clastix.io",
        "kind": "tenantcontrolplanes",
    }


def test_not_found_names_the_group(custom: client.CustomObjectsApi) -> None:
    with pytest.raises(ApiException) as caught:
        custom.get_namespaced_custom_object(*TCP_API, "default", PLURAL, "ghost")
    assert status_of(caught.value) == {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": 'tenantcontrolplanes.kamaji.clastix.io "ghost" not found',
        "reason": "NotFound",
        "details": {"name": "ghost", "group": "kamaji.clastix.io", "kind": "tenantcontrolplanes"},
        "code": 404,
    }


def test_datastores_are_cluster_scoped(custom: client.CustomObjectsApi) -> None:
    created = custom.create_cluster_custom_object(*TCP_API, "datastores", datastore("default"))
    assert "namespace" not in created["metadata"]
    listed = custom.list_cluster_custom_object(*TCP_API, "datastores")
    assert [d["metadata"]["name"] for d in listed["items"]] == ["default"]
    assert listed["kind"] == "DataStoreList"
    ready = custom.patch_cluster_custom_object_status(
        *TCP_API, "datastores", "default", {"status": {"ready": True}}
    )
    assert ready["status"] == {"ready": True}
    deleted = custom.delete_cluster_custom_object(*TCP_API, "datastores", "default")
    assert deleted["status"] == "Success"
    assert deleted["details"]["group"] == "kamaji.clastix.io"


def test_finalizers_delay_deletion(custom: client.CustomObjectsApi) -> None:
    body = tcp("t")
    body["metadata"]["finalizers"] = ["kamaji.clastix.io/finalizer"]
    created = _create(custom, body)
    with watching(
        custom.list_namespaced_custom_object,
        *TCP_API,
        "default",
        PLURAL,
        resource_version=created["metadata"]["resourceVersion"],
        timeout_seconds=5,
    ) as stream:
        pending = custom.delete_namespaced_custom_object(*TCP_API, "default", PLURAL, "t")
        assert pending["metadata"]["deletionTimestamp"]
        assert pending["metadata"]["generation"] == 2
        marked = next(stream)
        assert marked["type"] == "MODIFIED"
        assert marked["object"]["metadata"]["deletionTimestamp"]
        again = custom.delete_namespaced_custom_object(*TCP_API, "default", PLURAL, "t")
        assert again["metadata"]["resourceVersion"] == pending["metadata"]["resourceVersion"]
        with pytest.raises(ApiException) as caught:
            custom.patch_namespaced_custom_object(
                *TCP_API,
                "default",
                PLURAL,
                "t",
                {"metadata": {"finalizers": ["kamaji.clastix.io/finalizer", "other/x"]}},
            )
        assert caught.value.status == 422
        custom.patch_namespaced_custom_object(
            *TCP_API, "default", PLURAL, "t", {"metadata": {"finalizers": None}}
        )
        gone = next(stream)
        assert gone["type"] == "DELETED"
    with pytest.raises(ApiException) as missing:
        custom.get_namespaced_custom_object(*TCP_API, "default", PLURAL, "t")
    assert missing.value.status == 404


def test_python_api_seeds_custom_resources_with_status(
    kube_sim: KubeSim, custom: client.CustomObjectsApi
) -> None:
    kube_sim.create(datastore("default"))
    seeded = kube_sim.create({**tcp("t"), "status": tcp_status("t")}, keep_status=True)
    assert seeded["status"] == tcp_status("t")
    kube_sim.update_status("tcp", "t", tcp_status("t", "Upgrading"))
    read = custom.get_namespaced_custom_object(*TCP_API, "default", PLURAL, "t")
    assert read["status"]["kubernetesResources"]["version"]["status"] == "Upgrading"
    assert [d["metadata"]["name"] for d in kube_sim.list("datastores")] == ["default"]
