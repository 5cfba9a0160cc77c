"""summarize picks the certificate that matters and reports its public facts."""

from __future__ import annotations

import base64
import hashlib
from datetime import timedelta

import pytest
from cryptography import x509

from libs.pki import (
    CA_RESIDUAL_WARNING,
    KeyAlgorithm,
    PkiError,
    SecretDataError,
    SecretKind,
    Signer,
    ca_residual,
    mint_secret_data,
    summarize,
)

from ._support import NOW, TCP, minted

K = SecretKind


def der_sha256(pem: bytes) -> str:
    body = b"".join(line for line in pem.strip().splitlines() if not line.startswith(b"-----"))
    return hashlib.sha256(base64.b64decode(body)).hexdigest()


@pytest.mark.parametrize(
    ("kind", "key", "cn"),
    [
        (K.CA, "ca.crt", "kubernetes"),
        (K.FRONT_PROXY_CA, "front-proxy-ca.crt", "front-proxy-ca"),
        (K.APISERVER, "apiserver.crt", "kube-apiserver"),
        (
            K.APISERVER_KUBELET_CLIENT,
            "apiserver-kubelet-client.crt",
            "kube-apiserver-kubelet-client",
        ),
        (K.FRONT_PROXY_CLIENT, "front-proxy-client.crt", "front-proxy-client"),
        (K.DATASTORE_CERTIFICATE, "server.crt", "default_k8s_126"),
        (K.KONNECTIVITY_CERTIFICATE, "tls.crt", "system:konnectivity-server"),
        (K.ADMIN_KUBECONFIG, "admin.conf", "kubernetes-admin"),
        (
            K.CONTROLLER_MANAGER_KUBECONFIG,
            "controller-manager.conf",
            "system:kube-controller-manager",
        ),
        (K.SCHEDULER_KUBECONFIG, "scheduler.conf", "system:kube-scheduler"),
        (K.KONNECTIVITY_KUBECONFIG, "konnectivity-server.conf", "system:konnectivity-server"),
    ],
)
def test_should_summarize_the_certificate_that_matters_for_each_kind(
    kind: SecretKind, key: str, cn: str
) -> None:
    summary = summarize(kind, minted().secret(kind))
    assert (summary.kind, summary.key, summary.common_name) == (kind, key, cn)
    assert summary.key_matches
    assert summary.is_ca is (kind in (K.CA, K.FRONT_PROXY_CA))
    assert summary.not_before == NOW - timedelta(minutes=5)
    assert summary.key_algorithm == "rsa"
    assert summary.residual(NOW) == summary.not_after - NOW


def test_should_report_serial_names_sans_and_fingerprint_of_the_apiserver() -> None:
    data = minted().secret(K.APISERVER)
    cert = x509.load_pem_x509_certificate(data["apiserver.crt"])
    summary = summarize(K.APISERVER, data)
    assert summary.serial == format(cert.serial_number, "x")
    assert summary.subject == "CN=kube-apiserver"
    assert summary.issuer == "CN=kubernetes"
    assert summary.fingerprint_sha256 == der_sha256(data["apiserver.crt"])
    assert "k8s-126.default.svc.cluster.local" in summary.dns_sans
    assert summary.ip_sans == ("10.96.0.1", "127.0.0.1", "172.18.255.200", "10.0.0.10")
    assert summary.not_after == NOW + timedelta(hours=8760)


def test_should_pick_server_crt_not_ca_crt_in_the_datastore_secret() -> None:
    data = minted().secret(K.DATASTORE_CERTIFICATE)
    summary = summarize(K.DATASTORE_CERTIFICATE, data)
    assert summary.fingerprint_sha256 == der_sha256(data["server.crt"])
    assert summary.fingerprint_sha256 != der_sha256(data["ca.crt"])


def test_should_pick_the_client_certificate_of_a_kubeconfig_not_its_ca() -> None:
    summary = summarize(K.ADMIN_KUBECONFIG, minted().secret(K.ADMIN_KUBECONFIG))
    assert summary.organizations == ("kubeadm:cluster-admins",)
    assert summary.fingerprint_sha256 != der_sha256(minted().ca_pem)
    assert not summary.is_ca


def test_should_say_when_the_key_does_not_match() -> None:
    data = {
        **minted().secret(K.APISERVER),
        "apiserver.key": minted().secret(K.FRONT_PROXY_CLIENT)["front-proxy-client.key"],
    }
    assert not summarize(K.APISERVER, data).key_matches
    del data["apiserver.key"]
    assert not summarize(K.APISERVER, data).key_matches


@pytest.mark.parametrize(
    ("kind", "data", "key", "problem"),
    [
        (K.APISERVER, {}, "apiserver.crt", "is missing"),
        (K.APISERVER, {"apiserver.crt": b"x"}, "apiserver.crt", "not a PEM certificate"),
        (K.ADMIN_KUBECONFIG, {"admin.conf": b"- x"}, "admin.conf", "not a YAML mapping"),
        (K.SA, {}, "sa.key", "holds no certificate"),
        (K.DATASTORE_CONFIG, {}, "-", "holds no certificate"),
    ],
)
def test_should_name_kind_and_key_when_there_is_nothing_to_summarize(
    kind: SecretKind, data: dict[str, bytes], key: str, problem: str
) -> None:
    with pytest.raises(SecretDataError) as caught:
        summarize(kind, data)
    assert (caught.value.kind, caught.value.key) == (kind, key)
    assert problem in str(caught.value)
    assert str(caught.value).startswith(f"{kind.value} Secret, key {key!r}")


def test_should_give_the_residual_time_of_a_ca_for_the_under_a_year_warning() -> None:
    data = minted().secret(K.CA)
    residual = ca_residual(K.CA, data, now=NOW)
    assert residual == timedelta(hours=87600)
    later = NOW + timedelta(hours=87600) - timedelta(days=100)
    assert ca_residual(K.CA, data, now=later) < CA_RESIDUAL_WARNING
    with pytest.raises(PkiError, match="not a CA Secret"):
        ca_residual(K.APISERVER, minted().secret(K.APISERVER), now=NOW)


def test_should_summarize_ecdsa_certificates() -> None:
    data = mint_secret_data(
        K.APISERVER, TCP, now=NOW, signer=minted().signers[Signer.CA], algorithm=KeyAlgorithm.ECDSA
    )
    summary = summarize(K.APISERVER, data)
    assert summary.key_algorithm == "ecdsa"
    assert summary.key_matches
