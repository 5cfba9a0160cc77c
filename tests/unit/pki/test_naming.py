"""Secret names <-> kinds, labels, and Kamaji's checksum annotation."""

from __future__ import annotations

import hashlib

import pytest

from libs.pki import (
    CHECKSUM_ANNOTATION,
    LIFECYCLE_LABEL,
    SecretKind,
    checksum,
    kind_from_secret_name,
    secret_annotations,
    secret_labels,
    secret_name,
    split_secret_name,
)

from ._support import TCP

SEED_NAMES = {
    "k8s-126-admin-kubeconfig": SecretKind.ADMIN_KUBECONFIG,
    "k8s-126-api-server-certificate": SecretKind.APISERVER,
    "k8s-126-api-server-kubelet-client-certificate": SecretKind.APISERVER_KUBELET_CLIENT,
    "k8s-126-ca": SecretKind.CA,
    "k8s-126-controller-manager-kubeconfig": SecretKind.CONTROLLER_MANAGER_KUBECONFIG,
    "k8s-126-datastore-certificate": SecretKind.DATASTORE_CERTIFICATE,
    "k8s-126-datastore-config": SecretKind.DATASTORE_CONFIG,
    "k8s-126-front-proxy-ca-certificate": SecretKind.FRONT_PROXY_CA,
    "k8s-126-front-proxy-client-certificate": SecretKind.FRONT_PROXY_CLIENT,
    "k8s-126-konnectivity-certificate": SecretKind.KONNECTIVITY_CERTIFICATE,
    "k8s-126-konnectivity-kubeconfig": SecretKind.KONNECTIVITY_KUBECONFIG,
    "k8s-126-sa-certificate": SecretKind.SA,
    "k8s-126-scheduler-kubeconfig": SecretKind.SCHEDULER_KUBECONFIG,
}


@pytest.mark.parametrize(("name", "kind"), SEED_NAMES.items())
def test_should_map_every_seed_secret_name_to_its_kind_and_back(
    name: str, kind: SecretKind
) -> None:
    assert secret_name("k8s-126", kind) == name
    assert kind_from_secret_name("k8s-126", name) is kind
    assert split_secret_name(name) == ("k8s-126", kind)


@pytest.mark.parametrize(
    ("tcp", "name"),
    [
        ("k8s-126", "k8s-127-ca"),
        ("k8s-126", "k8s-126-"),
        ("k8s-126", "k8s-126-unknown"),
        ("k8s-126", "k8s-126-ca-extra"),
        ("k8s", "k8s-126-ca"),
    ],
)
def test_should_not_claim_a_secret_of_another_tcp_or_kind(tcp: str, name: str) -> None:
    assert kind_from_secret_name(tcp, name) is None


def test_should_split_a_tcp_name_that_contains_a_suffix_word() -> None:
    assert split_secret_name("my-admin-ca") == ("my-admin", SecretKind.CA)
    assert split_secret_name("ca") is None
    assert split_secret_name("random-secret") is None


def test_should_keep_suffixes_unambiguous() -> None:
    suffixes = [k.value for k in SecretKind]
    for a in suffixes:
        for b in suffixes:
            assert a == b or not a.endswith(f"-{b}"), (a, b)


@pytest.mark.parametrize("kind", list(SecretKind))
def test_should_label_every_secret_with_project_name_component_and_lifecycle(
    kind: SecretKind,
) -> None:
    labels = secret_labels(TCP, kind)
    assert labels["kamaji.clastix.io/project"] == "kamaji"
    assert labels["kamaji.clastix.io/name"] == "k8s-126"
    assert labels["kamaji.clastix.io/component"] == kind.value
    expected = {
        SecretKind.APISERVER: "x509",
        SecretKind.APISERVER_KUBELET_CLIENT: "x509",
        SecretKind.FRONT_PROXY_CLIENT: "x509",
        SecretKind.KONNECTIVITY_CERTIFICATE: "x509",
        SecretKind.ADMIN_KUBECONFIG: "kubeconfig",
        SecretKind.CONTROLLER_MANAGER_KUBECONFIG: "kubeconfig",
        SecretKind.SCHEDULER_KUBECONFIG: "kubeconfig",
        SecretKind.KONNECTIVITY_KUBECONFIG: "kubeconfig",
    }.get(kind)
    assert labels.get(LIFECYCLE_LABEL) == expected
    assert LIFECYCLE_LABEL == "kamaji.clastix.io/certificate_lifecycle_controller"
    assert secret_labels("k8s-126", kind) == labels


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ({}, hashlib.md5(b"").hexdigest()),
        ({"b": b"2", "a": b"1"}, hashlib.md5(b"12").hexdigest()),
        ({"tls.key": b"K", "tls.crt": b"C"}, hashlib.md5(b"CK").hexdigest()),
        ({"a": b"x", "B": b"y"}, hashlib.md5(b"yx").hexdigest()),
    ],
)
def test_should_checksum_values_concatenated_in_sorted_key_order(
    data: dict[str, bytes], expected: str
) -> None:
    assert checksum(data) == expected
    assert secret_annotations(data) == {CHECKSUM_ANNOTATION: expected}


def test_should_match_a_known_md5_vector() -> None:
    assert checksum({"k": b"The quick brown fox jumps over the lazy dog"}) == (
        "9e107d9d372bb6826bd81d3542a419d6"
    )
