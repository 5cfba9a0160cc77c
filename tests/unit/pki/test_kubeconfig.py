"""Kubeconfig rendering per kind, and parse errors that say what is wrong."""

from __future__ import annotations

import base64
from typing import Any

import pytest
import yaml

from libs.pki import (
    KubeconfigError,
    SecretKind,
    TcpSpec,
    kubeconfig_server,
    parse_kubeconfig,
    render_kubeconfig,
)

from ._support import TCP, minted

K = SecretKind


@pytest.mark.parametrize(
    ("kind", "key", "user", "server"),
    [
        (K.ADMIN_KUBECONFIG, "admin.conf", "kubernetes-admin", "https://172.18.255.200:6443"),
        (
            K.CONTROLLER_MANAGER_KUBECONFIG,
            "controller-manager.conf",
            "system:kube-controller-manager",
            "https://127.0.0.1:6443",
        ),
        (
            K.SCHEDULER_KUBECONFIG,
            "scheduler.conf",
            "system:kube-scheduler",
            "https://127.0.0.1:6443",
        ),
        (
            K.KONNECTIVITY_KUBECONFIG,
            "konnectivity-server.conf",
            "system:konnectivity-server",
            "https://localhost:6443",
        ),
    ],
)
def test_should_render_each_kubeconfig_with_tcp_cluster_cn_user_and_current_context(
    kind: SecretKind, key: str, user: str, server: str
) -> None:
    raw = minted().secret(kind)[key]
    doc = yaml.safe_load(raw)
    assert doc["current-context"] == f"{user}@k8s-126"
    assert doc["clusters"][0]["name"] == "k8s-126"
    assert doc["clusters"][0]["cluster"]["server"] == server
    ca_data = base64.b64decode(doc["clusters"][0]["cluster"]["certificate-authority-data"])
    assert ca_data == minted().ca_pem
    assert doc["contexts"] == [
        {"name": f"{user}@k8s-126", "context": {"cluster": "k8s-126", "user": user}}
    ]
    assert doc["users"][0]["name"] == user
    creds = parse_kubeconfig(raw)
    assert (creds.context, creds.cluster_name, creds.user_name) == (
        f"{user}@k8s-126",
        "k8s-126",
        user,
    )
    assert creds.server == server
    assert creds.ca_pem == minted().ca_pem
    assert creds.client_cert_pem.startswith(b"-----BEGIN CERTIFICATE-----")
    assert creds.client_key_pem.startswith(b"-----BEGIN RSA PRIVATE KEY-----")


def test_should_bracket_an_ipv6_address_in_the_server_url() -> None:
    tcp = TcpSpec(name="t", namespace="ns", address="2001:db8::10", port=443)
    assert kubeconfig_server(K.ADMIN_KUBECONFIG, tcp) == "https://[2001:db8::10]:443"
    assert kubeconfig_server(K.SCHEDULER_KUBECONFIG, tcp) == "https://127.0.0.1:443"


def test_should_refuse_a_server_for_a_kind_that_is_no_kubeconfig() -> None:
    with pytest.raises(ValueError, match="not a kubeconfig"):
        kubeconfig_server(K.APISERVER, TCP)


def _doc() -> dict[str, Any]:
    raw = render_kubeconfig(
        cluster_name="c",
        server="https://s:6443",
        ca_pem=b"CA",
        user="u",
        client_cert_pem=b"CERT",
        client_key_pem=b"KEY",
    )
    doc: dict[str, Any] = yaml.safe_load(raw)
    return doc


def _dump(doc: Any) -> bytes:
    return yaml.safe_dump(doc).encode()


def test_should_round_trip_a_rendered_kubeconfig() -> None:
    creds = parse_kubeconfig(_dump(_doc()))
    assert (creds.ca_pem, creds.client_cert_pem, creds.client_key_pem) == (b"CA", b"CERT", b"KEY")


def _set(path: list[Any], value: Any) -> Any:
    def mutate(doc: dict[str, Any]) -> dict[str, Any]:
        target: Any = doc
        for step in path[:-1]:
            target = target[step]
        if value is None:
            del target[path[-1]]
        else:
            target[path[-1]] = value
        return doc

    return mutate


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"key: [unclosed", "not valid YAML"),
        (b"- a list", "not a YAML mapping"),
        (_set(["current-context"], None), "no current-context"),
        (_set(["current-context"], "other@c"), "no context named 'other@c'"),
        (_set(["contexts"], None), "no contexts list"),
        (_set(["contexts", 0, "context", "user"], None), "lacks a cluster or a user"),
        (_set(["clusters", 0, "name"], "x"), "no cluster named 'c'"),
        (_set(["users", 0, "name"], "x"), "no user named 'u'"),
        (_set(["users", 0, "user"], "scalar"), "user 'u' has no body"),
        (_set(["clusters", 0, "cluster", "server"], None), "cluster 'c' has no server"),
        (
            _set(["clusters", 0, "cluster", "certificate-authority-data"], None),
            "cluster 'c' has no certificate-authority-data",
        ),
        (_set(["users", 0, "user", "client-key-data"], None), "user 'u' has no client-key-data"),
        (_set(["users", 0, "user", "client-certificate-data"], "!!notbase64"), "not valid base64"),
        (_set(["users", 0, "user", "client-certificate-data"], 42), "is not a string"),
    ],
)
def test_should_say_what_is_wrong_with_a_kubeconfig(raw: Any, message: str) -> None:
    data = raw if isinstance(raw, bytes) else _dump(raw(_doc()))
    with pytest.raises(KubeconfigError, match=message):
        parse_kubeconfig(data)


def test_should_ask_for_embedded_data_when_a_kubeconfig_refers_to_files() -> None:
    doc = _doc()
    user = doc["users"][0]["user"]
    del user["client-certificate-data"]
    user["client-certificate"] = "/etc/kubernetes/pki/admin.crt"
    with pytest.raises(KubeconfigError, match="refers to the file 'client-certificate'"):
        parse_kubeconfig(_dump(doc))
