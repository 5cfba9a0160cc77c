"""Secrets through the official client: identity, concurrency, Secret-specific validation."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.rest import ApiException

from certlc_dev.kubesim import KubeSim
from tests.kubesim.helpers import b64, secret, status_of, tcp

RFC3339 = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")


def test_create_assigns_uid_timestamp_and_a_string_resource_version(
    core: client.CoreV1Api, kube_api: Any
) -> None:
    created = core.create_namespaced_secret("default", secret("a", {"k": "v"}))
    raw = json.loads(core.read_namespaced_secret("a", "default", _preload_content=False).data)
    assert re.fullmatch(r"[0-9a-f-]{36}", created.metadata.uid)
    assert RFC3339.match(raw["metadata"]["creationTimestamp"])
    assert isinstance(raw["metadata"]["resourceVersion"], str)
    assert created.metadata.generation is None  # Secrets have no generation
    assert created.type == "Opaque"
    assert created.data == {"k": b64("v")}


def test_resource_version_is_one_global_counter_across_kinds(
    core: client.CoreV1Api, kube_api: Any
) -> None:
    first = int(core.create_namespaced_secret("default", secret("a")).metadata.resource_version)
    custom = client.CustomObjectsApi(kube_api).create_namespaced_custom_object(
        "kamaji.clastix.io", "v1alpha1", "default", "tenantcontrolplanes", tcp("t1")
    )
    second = int(core.create_namespaced_secret("default", secret("b")).metadata.resource_version)
    assert int(custom["metadata"]["resourceVersion"]) == first + 1
    assert second == first + 2
    listed = core.list_namespaced_secret("default")
    assert listed.metadata.resource_version == str(second)
    assert [s.metadata.name for s in listed.items] == ["a", "b"]


def test_get_missing_is_a_not_found_status(core: client.CoreV1Api) -> None:
    with pytest.raises(ApiException) as caught:
        core.read_namespaced_secret("nope", "default")
    assert caught.value.status == 404
    assert status_of(caught.value) == {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": 'secrets "nope" not found',
        "reason": "NotFound",
        "details": {"name": "nope", "kind": "secrets"},
        "code": 404,
    }


def test_creating_an_existing_name_is_already_exists(core: client.CoreV1Api) -> None:
    core.create_namespaced_secret("default", secret("a"))
    with pytest.raises(ApiException) as caught:
        core.create_namespaced_secret("default", secret("a"))
    status = status_of(caught.value)
    assert caught.value.status == 409
    assert status["reason"] == "AlreadyExists"
    assert status["message"] == 'secrets "a" already exists'
    assert status["details"] == {"name": "a", "kind": "secrets"}


def test_stale_replace_is_a_conflict_with_the_exact_message(core: client.CoreV1Api) -> None:
    created = core.create_namespaced_secret("default", secret("a", {"k": "1"}))
    created.data = {"k": b64("2")}
    core.replace_namespaced_secret("a", "default", created)
    created.data = {"k": b64("3")}
    with pytest.raises(ApiException) as caught:
        core.replace_namespaced_secret("a", "default", created)
    status = status_of(caught.value)
    assert caught.value.status == 409
    assert status["reason"] == "Conflict"
    assert status["message"] == (
        'Operation cannot be fulfilled on secrets "a": the object has been modified; please '
        "apply your changes to the latest version and try again"
    )


def test_replace_without_resource_version_is_unconditional_for_built_ins(
    core: client.CoreV1Api,
) -> None:
    core.create_namespaced_secret("default", secret("a", {"k": "1"}))
    replaced = core.replace_namespaced_secret("a", "default", secret("a", {"k": "2"}))
    assert replaced.data == {"k": b64("2")}


def test_replace_of_a_missing_object_is_not_found(core: client.CoreV1Api) -> None:
    with pytest.raises(ApiException) as caught:
        core.replace_namespaced_secret("ghost", "default", secret("ghost"))
    assert caught.value.status == 404


def test_a_write_that_changes_nothing_keeps_the_resource_version(
    core: client.CoreV1Api, kube_sim: KubeSim
) -> None:
    created = core.create_namespaced_secret("default", secret("a", {"k": "v"}))
    before = kube_sim.resource_version()
    same = core.replace_namespaced_secret("a", "default", created)
    patched = core.patch_namespaced_secret("a", "default", {"data": {"k": b64("v")}})
    assert same.metadata.resource_version == created.metadata.resource_version
    assert patched.metadata.resource_version == created.metadata.resource_version
    assert kube_sim.resource_version() == before


def test_string_data_is_merged_into_data_and_never_returned(core: client.CoreV1Api) -> None:
    body = secret("a", {"keep": "1", "over": "old"}, stringData={"over": "new", "plain": "p"})
    created = core.create_namespaced_secret("default", body)
    assert created.data == {"keep": b64("1"), "over": b64("new"), "plain": b64("p")}
    assert created.string_data is None
    updated = core.patch_namespaced_secret("a", "default", {"stringData": {"keep": "2"}})
    assert updated.data["keep"] == b64("2")
    assert updated.string_data is None


def test_invalid_base64_is_a_bad_request(core: client.CoreV1Api) -> None:
    body = secret("a")
    body["data"] = {"k": "not base64!"}
    with pytest.raises(ApiException) as caught:
        core.create_namespaced_secret("default", body)
    status = status_of(caught.value)
    assert caught.value.status == 400
    assert status["reason"] == "BadRequest"
    assert "illegal base64 data at input byte 3" in status["message"]


def test_type_is_immutable(core: client.CoreV1Api) -> None:
    core.create_namespaced_secret("default", secret("a", {"k": "v"}))
    with pytest.raises(ApiException) as caught:
        core.patch_namespaced_secret("a", "default", {"type": "example.com/other"})
    status = status_of(caught.value)
    assert caught.value.status == 422
    assert status["reason"] == "Invalid"
    assert status["message"] == (
        'Secret "a" is invalid: type: Invalid value: "example.com/other": field is immutable'
    )
    assert status["details"]["kind"] == "Secret"
    assert status["details"]["causes"] == [
        {
            "reason": "FieldValueInvalid",
            "field": "type",
            "message": 'Invalid value: "example.com/other": field is immutable',
        }
    ]


def test_immutable_secret_refuses_data_changes(core: client.CoreV1Api) -> None:
    core.create_namespaced_secret("default", secret("a", {"k": "v"}, immutable=True))
    with pytest.raises(ApiException) as caught:
        core.patch_namespaced_secret("a", "default", {"data": {"k": b64("w")}})
    assert caught.value.status == 422
    assert (
        "data: Forbidden: field is immutable when `immutable` is set"
        in status_of(caught.value)["message"]
    )
    with pytest.raises(ApiException) as caught:
        core.patch_namespaced_secret("a", "default", {"immutable": False})
    assert caught.value.status == 422
    labelled = core.patch_namespaced_secret("a", "default", {"metadata": {"labels": {"x": "1"}}})
    assert labelled.metadata.labels == {"x": "1"}


def test_tls_secrets_need_both_keys(core: client.CoreV1Api) -> None:
    with pytest.raises(ApiException) as caught:
        core.create_namespaced_secret(
            "default", secret("t", {"tls.crt": "c"}, type_="kubernetes.io/tls")
        )
    status = status_of(caught.value)
    assert caught.value.status == 422
    assert status["message"] == 'Secret "t" is invalid: data[tls.key]: Required value'
    ok = core.create_namespaced_secret(
        "default", secret("t", {"tls.crt": "c", "tls.key": "k"}, type_="kubernetes.io/tls")
    )
    assert ok.type == "kubernetes.io/tls"


def test_secrets_larger_than_one_mebibyte_are_invalid(core: client.CoreV1Api) -> None:
    with pytest.raises(ApiException) as caught:
        core.create_namespaced_secret("default", secret("big", {"k": "x" * (1024 * 1024 + 1)}))
    assert caught.value.status == 422
    assert "data: Too long" in status_of(caught.value)["message"]


def test_invalid_data_keys_are_rejected(core: client.CoreV1Api) -> None:
    with pytest.raises(ApiException) as caught:
        core.create_namespaced_secret("default", secret("a", {"bad key": "v"}))
    assert caught.value.status == 422
    assert (
        "a valid config key must consist of alphanumeric characters"
        in status_of(caught.value)["message"]
    )


def test_generate_name_appends_a_random_suffix(core: client.CoreV1Api) -> None:
    body = secret("")
    body["metadata"] = {"generateName": "gen-"}
    created = core.create_namespaced_secret("default", body)
    assert re.fullmatch(r"gen-[bcdfghjklmnpqrstvwxz2456789]{5}", created.metadata.name)


def test_a_name_is_required(core: client.CoreV1Api) -> None:
    with pytest.raises(ApiException) as caught:
        core.create_namespaced_secret("default", {"metadata": {}})
    status = status_of(caught.value)
    assert caught.value.status == 422
    assert status["message"] == (
        'Secret "" is invalid: metadata.name: Required value: name or generateName is required'
    )


def test_names_must_be_dns_subdomains(core: client.CoreV1Api) -> None:
    with pytest.raises(ApiException) as caught:
        core.create_namespaced_secret("default", secret("Bad_Name"))
    assert caught.value.status == 422
    assert "a lowercase RFC 1123 subdomain" in status_of(caught.value)["message"]


def test_namespace_in_body_must_match_the_path(core: client.CoreV1Api) -> None:
    body = secret("a")
    body["metadata"]["namespace"] = "other"
    with pytest.raises(ApiException) as caught:
        core.create_namespaced_secret("default", body)
    status = status_of(caught.value)
    assert caught.value.status == 400
    assert status["message"] == (
        "the namespace of the provided object does not match the namespace sent on the request"
    )


def test_creating_in_a_missing_namespace_is_not_found(core: client.CoreV1Api) -> None:
    with pytest.raises(ApiException) as caught:
        core.create_namespaced_secret("nowhere", secret("a"))
    status = status_of(caught.value)
    assert caught.value.status == 404
    assert status["message"] == 'namespaces "nowhere" not found'


def test_dry_run_validates_without_persisting(core: client.CoreV1Api, kube_sim: KubeSim) -> None:
    before = kube_sim.resource_version()
    created = core.create_namespaced_secret("default", secret("a", {"k": "v"}), dry_run="All")
    assert created.metadata.uid
    with pytest.raises(ApiException):
        core.read_namespaced_secret("a", "default")
    with pytest.raises(ApiException) as caught:
        core.create_namespaced_secret(
            "default", secret("t", type_="kubernetes.io/tls"), dry_run="All"
        )
    assert caught.value.status == 422
    assert kube_sim.resource_version() == before


def test_list_across_namespaces_and_delete_returns_a_success_status(core: client.CoreV1Api) -> None:
    core.create_namespace({"metadata": {"name": "other"}})
    core.create_namespaced_secret("default", secret("a"))
    core.create_namespaced_secret("other", secret("b"))
    everywhere = core.list_secret_for_all_namespaces()
    assert [(s.metadata.namespace, s.metadata.name) for s in everywhere.items] == [
        ("default", "a"),
        ("other", "b"),
    ]
    result = core.delete_namespaced_secret("a", "default")
    assert result["kind"] == "Status"
    assert result["status"] == "Success"
    assert result["details"]["name"] == "a"
    assert result["details"]["kind"] == "secrets"
    assert [s.metadata.name for s in core.list_namespaced_secret("default").items] == []


def test_resource_version_must_not_be_set_on_create(core: client.CoreV1Api) -> None:
    body = secret("a")
    body["metadata"]["resourceVersion"] = "12"
    with pytest.raises(ApiException) as caught:
        core.create_namespaced_secret("default", body)
    assert caught.value.status == 500
    assert (
        "resourceVersion should not be set on objects to be created"
        in status_of(caught.value)["message"]
    )


def test_dry_run_patch_and_delete_change_nothing(core: client.CoreV1Api, kube_sim: KubeSim) -> None:
    core.create_namespaced_secret("default", secret("a", {"k": "v"}))
    before = kube_sim.resource_version()
    preview = core.patch_namespaced_secret(
        "a", "default", {"metadata": {"labels": {"x": "1"}}}, dry_run="All"
    )
    assert preview.metadata.labels == {"x": "1"}
    core.delete_namespaced_secret("a", "default", dry_run="All")
    assert core.read_namespaced_secret("a", "default").metadata.labels is None
    assert kube_sim.resource_version() == before


def test_the_name_in_the_body_must_match_the_url(core: client.CoreV1Api) -> None:
    core.create_namespaced_secret("default", secret("a"))
    with pytest.raises(ApiException) as caught:
        core.replace_namespaced_secret("a", "default", secret("b"))
    assert caught.value.status == 400
    assert status_of(caught.value)["message"] == (
        "the name of the object (b) does not match the name on the URL (a)"
    )
