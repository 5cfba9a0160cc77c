"""HTTPS serving and bearer-token authentication; the authorization hook."""

from __future__ import annotations

import json
import ssl
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client
from kubernetes.client.rest import ApiException

from certlc_dev.kubesim import Attributes, Identity, KubeSim
from tests.fixtures.kube import api_client
from tests.kubesim.helpers import admin, secret, status_of


def _client_for(sim: KubeSim, path: Path, token: str | None = None) -> Any:
    return api_client(sim.write_kubeconfig(path, token=token))


def test_requests_without_a_valid_token_get_401(kube_sim: KubeSim, tmp_path: Path) -> None:
    api = _client_for(kube_sim, tmp_path / "kc", token="wrong")
    try:
        with pytest.raises(ApiException) as caught:
            client.CoreV1Api(api).list_namespaced_secret("default")
        assert caught.value.status == 401
        assert status_of(caught.value) == {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": "Unauthorized",
            "reason": "Unauthorized",
            "code": 401,
        }
        version = client.VersionApi(api).get_code()  # /version is public
        assert version.git_version == "v1.32.0-kubesim"
    finally:
        api.close()


def test_tokens_map_to_identities_seen_by_the_authorizer(
    kube_sim_factory: Any, tmp_path: Path
) -> None:
    seen: list[tuple[Identity, Attributes]] = []

    def authorizer(identity: Identity, attrs: Attributes) -> bool:
        seen.append((identity, attrs))
        return not (identity.username == "watcher" and attrs.verb == "delete")

    sim: KubeSim = kube_sim_factory(
        tokens={"t-admin": "admin", "t-watcher": "watcher"}, authorizer=authorizer
    )
    admin = _client_for(sim, tmp_path / "admin", "t-admin")
    watcher = _client_for(sim, tmp_path / "watcher", "t-watcher")
    try:
        client.CoreV1Api(admin).create_namespaced_secret("default", secret("a"))
        assert client.CoreV1Api(watcher).read_namespaced_secret("a", "default")
        with pytest.raises(ApiException) as caught:
            client.CoreV1Api(watcher).delete_namespaced_secret("a", "default")
        assert caught.value.status == 403
        assert status_of(caught.value)["message"] == (
            'secrets "a" is forbidden: User "watcher" cannot delete resource "secrets" in API '
            'group "" in the namespace "default"'
        )
        assert status_of(caught.value)["reason"] == "Forbidden"
    finally:
        admin.close()
        watcher.close()
    assert [(i.username, a.verb, a.resource, a.name) for i, a in seen] == [
        ("admin", "create", "secrets", ""),
        ("watcher", "get", "secrets", "a"),
        ("watcher", "delete", "secrets", "a"),
    ]


def test_the_serving_certificate_verifies_against_the_kubeconfig_ca(
    kube_sim: KubeSim, tmp_path: Path
) -> None:
    path = kube_sim.write_kubeconfig(tmp_path / "kc")
    document = yaml.safe_load(path.read_text())
    assert document["clusters"][0]["cluster"]["server"] == kube_sim.url
    assert "certificate-authority-data" in document["clusters"][0]["cluster"]
    document["clusters"][0]["cluster"]["server"] = kube_sim.url.replace("127.0.0.1", "localhost")
    path.write_text(yaml.safe_dump(document))
    api = api_client(path)
    try:
        assert client.CoreV1Api(api).list_namespace().items
    finally:
        api.close()


def test_plain_http_mode(kube_sim_factory: Any, tmp_path: Path) -> None:
    sim: KubeSim = kube_sim_factory(https=False, require_auth=True)
    assert sim.url.startswith("http://")
    config = yaml.safe_load(sim.kubeconfig())
    assert "certificate-authority-data" not in config["clusters"][0]["cluster"]
    api = _client_for(sim, tmp_path / "kc")
    try:
        created = client.CoreV1Api(api).create_namespaced_secret("default", secret("a"))
        assert created.metadata.name == "a"
        raw = client.CoreV1Api(api).read_namespaced_secret("a", "default", _preload_content=False)
        assert json.loads(raw.data)["metadata"]["name"] == "a"
    finally:
        api.close()


def test_health_endpoints_are_public(kube_sim: KubeSim) -> None:
    for path in ("/healthz", "/livez", "/readyz"):
        context = ssl.create_default_context(cadata=(kube_sim.ca_cert_pem or b"").decode())
        with urllib.request.urlopen(kube_sim.url + path, context=context, timeout=10) as answer:
            assert (answer.status, answer.read()) == (200, b"ok")
    assert admin(kube_sim, "GET", "/_sim/faults")[0] == 200
