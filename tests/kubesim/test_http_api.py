"""HTTP-level behaviour through the official client: discovery, views, errors, lifecycle."""

from __future__ import annotations

import json
import threading
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.rest import ApiException

from certlc_dev.kubesim import KubeSim
from tests.fixtures.kube import api_client
from tests.kubesim.helpers import TCP_API, secret, status_of, tcp, watching

TABLE = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json"
PARTIAL = "application/json;as=PartialObjectMetadataList;v=v1;g=meta.k8s.io,application/json"


def test_legacy_discovery(kube_api: Any) -> None:
    assert client.CoreApi(kube_api).get_api_versions().versions == ["v1"]
    groups = {g.name: g for g in client.ApisApi(kube_api).get_api_versions().groups}
    assert set(groups) == {
        "apps",
        "coordination.k8s.io",
        "rbac.authorization.k8s.io",
        "authorization.k8s.io",
        "authentication.k8s.io",
        "kamaji.clastix.io",
    }
    assert (
        groups["kamaji.clastix.io"].preferred_version.group_version == "kamaji.clastix.io/v1alpha1"
    )
    core = {r.name: r for r in client.CoreV1Api(kube_api).get_api_resources().resources}
    assert core["secrets"].namespaced is True
    assert core["namespaces"].namespaced is False
    assert core["pods"].verbs == ["delete", "deletecollection", "get", "list", "watch"]
    apps = {r.name: r for r in client.AppsV1Api(kube_api).get_api_resources().resources}
    assert apps["deployments"].short_names == ["deploy"]
    assert "deployments/status" in apps
    assert client.AppsApi(kube_api).get_api_group().name == "apps"


def test_plain_json_unless_a_table_is_asked_for(core: client.CoreV1Api) -> None:
    core.create_namespaced_secret("default", secret("a", {"k": "v"}))
    plain = json.loads(core.list_namespaced_secret("default", _preload_content=False).data)
    assert plain["kind"] == "SecretList"
    table = json.loads(
        core.list_namespaced_secret(
            "default", _preload_content=False, _headers={"Accept": TABLE}
        ).data
    )
    assert table["kind"] == "Table"
    assert table["apiVersion"] == "meta.k8s.io/v1"
    assert [c["name"] for c in table["columnDefinitions"]] == ["Name", "Type", "Data", "Age"]
    assert table["rows"][0]["cells"][:3] == ["a", "Opaque", 1]
    assert table["rows"][0]["object"]["kind"] == "PartialObjectMetadata"
    one = json.loads(
        core.read_namespaced_secret(
            "a", "default", _preload_content=False, _headers={"Accept": TABLE}
        ).data
    )
    assert len(one["rows"]) == 1
    partial = json.loads(
        core.list_namespaced_secret(
            "default", _preload_content=False, _headers={"Accept": PARTIAL}
        ).data
    )
    assert partial["kind"] == "PartialObjectMetadataList"
    assert "data" not in partial["items"][0]
    assert partial["items"][0]["metadata"]["name"] == "a"


def test_table_watch_sends_column_definitions_once(core: client.CoreV1Api) -> None:
    core.create_namespaced_secret("default", secret("a"))
    core.create_namespaced_secret("default", secret("b"))
    raw = core.list_namespaced_secret(
        "default", watch=True, timeout_seconds=1, _preload_content=False, _headers={"Accept": TABLE}
    )
    events = [json.loads(line) for line in raw.data.decode().splitlines()]
    assert [e["object"]["kind"] for e in events] == ["Table", "Table"]
    assert "columnDefinitions" in events[0]["object"]
    assert "columnDefinitions" not in events[1]["object"]
    assert events[1]["object"]["rows"][0]["cells"][0] == "b"


def test_send_initial_events_ends_with_an_annotated_bookmark(core: client.CoreV1Api) -> None:
    core.create_namespaced_secret("default", secret("a"))
    raw = core.list_namespaced_secret(
        "default",
        watch=True,
        timeout_seconds=1,
        allow_watch_bookmarks=True,
        send_initial_events=True,
        resource_version_match="NotOlderThan",
        _preload_content=False,
    )
    events = [json.loads(line) for line in raw.data.decode().splitlines()]
    assert events[0]["type"] == "ADDED"
    assert events[1]["type"] == "BOOKMARK"
    assert events[1]["object"]["metadata"]["annotations"] == {"k8s.io/initial-events-end": "true"}


def test_unknown_paths_and_refused_verbs(kube_api: Any) -> None:
    generic = client.CustomObjectsApi(kube_api)
    with pytest.raises(ApiException) as caught:
        generic.list_namespaced_custom_object("example.com", "v1", "default", "widgets")
    assert caught.value.status == 404
    assert status_of(caught.value)["message"] == "the server could not find the requested resource"
    with pytest.raises(ApiException) as caught:
        generic.create_namespaced_custom_object(
            "apps", "v1", "default", "replicasets", {"metadata": {"name": "x"}}
        )
    assert caught.value.status == 405
    assert status_of(caught.value)["reason"] == "MethodNotAllowed"


def test_request_bodies_over_three_mebibytes_are_refused(core: client.CoreV1Api) -> None:
    with pytest.raises(ApiException) as caught:
        core.create_namespaced_secret("default", secret("big", {"k": "x" * (3 * 1024 * 1024)}))
    assert caught.value.status == 413
    assert status_of(caught.value)["reason"] == "RequestEntityTooLarge"


def test_owner_references_are_stored_and_orphaning_keeps_dependents(
    kube_sim_factory: Any, tmp_path: Any
) -> None:
    sim: KubeSim = kube_sim_factory(gc=True)
    owner = sim.create(tcp("t"))
    ref = {
        "apiVersion": "kamaji.clastix.io/v1alpha1",
        "kind": "TenantControlPlane",
        "name": "t",
        "uid": owner["metadata"]["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }
    body = secret("t-ca")
    body["metadata"]["ownerReferences"] = [ref]
    stored = sim.create(body)
    assert stored["metadata"]["ownerReferences"] == [ref]
    sim.delete("tcp", "t", propagation="Orphan")
    orphan = sim.wait_for("secrets", "t-ca", lambda s: not s["metadata"].get("ownerReferences"))
    assert orphan["metadata"]["name"] == "t-ca"
    second = sim.create(tcp("u"))
    body = secret("u-ca")
    body["metadata"]["ownerReferences"] = [{**ref, "name": "u", "uid": second["metadata"]["uid"]}]
    sim.create(body)
    sim.delete("tcp", "u")
    sim.wait_for_deletion("secrets", "u-ca")
    assert sim.try_get("secrets", "u-ca") is None


def test_stop_ends_watches_and_leaves_no_threads(kube_sim_factory: Any, tmp_path: Any) -> None:
    before = {t.ident for t in threading.enumerate()}
    sim: KubeSim = kube_sim_factory()
    api = api_client(sim.write_kubeconfig(tmp_path / "kc"))
    try:
        core = client.CoreV1Api(api)
        core.create_namespaced_secret("default", secret("a"))
        with watching(core.list_namespaced_secret, "default") as stream:
            assert next(stream)["type"] == "ADDED"
            sim.stop()  # with a watch open and a keep-alive connection in the pool
    finally:
        api.close()
    leftovers = [
        t.name
        for t in threading.enumerate()
        if t.ident not in before and t.name.startswith("kubesim")
    ]
    assert leftovers == []


def test_custom_resource_list_kind_and_items(kube_api: Any) -> None:
    generic = client.CustomObjectsApi(kube_api)
    generic.create_namespaced_custom_object(*TCP_API, "default", "tenantcontrolplanes", tcp("a"))
    listed = generic.list_cluster_custom_object(*TCP_API, "tenantcontrolplanes")
    assert listed["kind"] == "TenantControlPlaneList"
    assert listed["apiVersion"] == "kamaji.clastix.io/v1alpha1"
    assert [i["metadata"]["name"] for i in listed["items"]] == ["a"]


def test_table_include_object_none(core: client.CoreV1Api) -> None:
    core.create_namespaced_secret("default", secret("a"))
    api = core.api_client
    response = api.call_api(
        "GET",
        f"{api.configuration.host}/api/v1/namespaces/default/secrets?includeObject=None",
        header_params={
            "Accept": TABLE,
            "Authorization": api.configuration.get_api_key_with_prefix("BearerToken"),
        },
    )
    table = json.loads(response.read())
    assert "object" not in table["rows"][0]
    assert table["rows"][0]["cells"][0] == "a"


def test_delete_preconditions(core: client.CoreV1Api) -> None:
    created = core.create_namespaced_secret("default", secret("a"))
    with pytest.raises(ApiException) as caught:
        core.delete_namespaced_secret(
            "a",
            "default",
            body=client.V1DeleteOptions(preconditions=client.V1Preconditions(uid="not-the-uid")),
        )
    assert caught.value.status == 409
    assert (
        "Precondition failed: UID in precondition: not-the-uid"
        in status_of(caught.value)["message"]
    )
    core.delete_namespaced_secret(
        "a",
        "default",
        body=client.V1DeleteOptions(preconditions=client.V1Preconditions(uid=created.metadata.uid)),
    )
