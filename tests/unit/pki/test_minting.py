"""Minting edge cases: signers, datastore config, external datastore PKI, signer loading."""

from __future__ import annotations

import dataclasses
from datetime import timedelta

import pytest

from libs.pki import (
    PkiError,
    SecretDataError,
    SecretKind,
    Signer,
    SignerError,
    TcpSpec,
    ca_secret_data,
    datastore_certificate_from_external,
    datastore_config_data,
    datastore_connection_string,
    issue_leaf,
    load_signer,
    mint_secret_data,
    signer_from_secret_data,
)
from libs.pki.profiles import CA_KEY_USAGES, LEAF_KEY_USAGES, ExtKeyUsage, KeyUsage

from ._support import NOW, TCP, minted, other_ca

K = SecretKind


@pytest.mark.parametrize(
    "kind",
    [
        K.APISERVER,
        K.APISERVER_KUBELET_CLIENT,
        K.FRONT_PROXY_CLIENT,
        K.DATASTORE_CERTIFICATE,
        K.KONNECTIVITY_CERTIFICATE,
        K.ADMIN_KUBECONFIG,
    ],
)
def test_should_refuse_to_mint_a_signed_kind_without_its_signer(kind: SecretKind) -> None:
    with pytest.raises(SignerError, match=kind.value):
        mint_secret_data(kind, TCP, now=NOW)


def test_should_refuse_a_signer_for_a_self_signed_ca() -> None:
    with pytest.raises(SignerError, match="self-signed"):
        mint_secret_data(K.CA, TCP, now=NOW, signer=other_ca())


def test_should_refuse_a_naive_clock() -> None:
    with pytest.raises(PkiError, match="timezone-aware"):
        mint_secret_data(K.CA, TCP, now=NOW.replace(tzinfo=None))


@pytest.mark.parametrize(
    ("driver", "endpoints", "expected"),
    [
        ("etcd", ["etcd-0:2379", "etcd-1:2379"], "https://etcd-0:2379,https://etcd-1:2379"),
        ("etcd", ["https://etcd-0:2379"], "https://etcd-0:2379"),
        ("MySQL", ["mariadb:3306"], "mariadb:3306"),
        ("PostgreSQL", ["postgres://pg:5432"], "pg:5432"),
        ("NATS", ["nats:4222", " "], "nats:4222"),
    ],
)
def test_should_build_the_connection_string_from_driver_and_endpoints(
    driver: str, endpoints: list[str], expected: str
) -> None:
    assert datastore_connection_string(driver, endpoints) == expected


def test_should_refuse_a_connection_string_without_endpoints() -> None:
    with pytest.raises(PkiError, match="endpoint"):
        datastore_connection_string("etcd", [])


def test_should_fill_datastore_config_with_user_schema_and_a_random_password() -> None:
    first = datastore_config_data(TCP, endpoints=["etcd-0:2379"])
    second = datastore_config_data(TCP, endpoints=["etcd-0:2379"])
    assert first["DB_USER"] == b"default_k8s_126"
    assert first["DB_SCHEMA"] == b"default_k8s_126"
    assert first["DB_CONNECTION_STRING"] == b"https://etcd-0:2379"
    assert len(first["DB_PASSWORD"]) >= 24
    assert first["DB_PASSWORD"] != second["DB_PASSWORD"]
    assert b"DB_PASSWORD" not in first["DB_CONNECTION_STRING"]


def test_should_keep_a_datastore_password_that_is_passed_in() -> None:
    data = mint_secret_data(
        K.DATASTORE_CONFIG, TCP, now=NOW, datastore_endpoints=["a:1"], datastore_password="pw"
    )
    assert data["DB_PASSWORD"] == b"pw"
    assert data["DB_CONNECTION_STRING"] == b"https://a:1"


def _external_pair() -> tuple[bytes, bytes, bytes]:
    ca = minted().signers[Signer.DATASTORE_CA]
    pair = issue_leaf(
        ca,
        common_name="kamaji",
        organizations=(),
        ext_key_usages=(ExtKeyUsage.CLIENT_AUTH,),
        key_usages=LEAF_KEY_USAGES,
        now=NOW,
        validity=timedelta(days=365),
    )
    return ca.cert_pem, pair.cert_pem, pair.key_pem


def test_should_copy_an_external_datastore_certificate_unchanged() -> None:
    ca, cert, key = _external_pair()
    assert datastore_certificate_from_external(ca_pem=ca, cert_pem=cert, key_pem=key) == {
        "ca.crt": ca,
        "server.crt": cert,
        "server.key": key,
    }


@pytest.mark.parametrize(
    ("field", "bad", "key_named"),
    [
        ("ca_pem", b"not a cert", "ca.crt"),
        ("cert_pem", b"not a cert", "server.crt"),
        ("key_pem", b"not a key", "server.key"),
        ("key_pem", "other-key", "server.key"),
    ],
)
def test_should_reject_an_external_datastore_pair_that_does_not_fit(
    field: str, bad: bytes | str, key_named: str
) -> None:
    ca, cert, key = _external_pair()
    other_key = minted().secret(K.APISERVER)["apiserver.key"]
    args = {"ca_pem": ca, "cert_pem": cert, "key_pem": key}
    args[field] = other_key if isinstance(bad, str) else bad
    with pytest.raises(SecretDataError) as caught:
        datastore_certificate_from_external(**args)
    assert caught.value.kind is K.DATASTORE_CERTIFICATE
    assert caught.value.key == key_named
    assert "datastore-certificate" in str(caught.value)


def test_should_load_a_signer_back_from_ca_secret_data() -> None:
    data = minted().secret(K.CA)
    signer = signer_from_secret_data(K.CA, data)
    assert signer.cert_pem == data["ca.crt"]
    assert signer.common_name == "kubernetes"
    assert ca_secret_data(K.CA, signer) == data


def test_should_name_the_missing_key_when_a_ca_secret_cannot_sign() -> None:
    data = minted().secret(K.FRONT_PROXY_CA)
    del data["front-proxy-ca.key"]
    with pytest.raises(SecretDataError, match=r"front-proxy-ca\.key"):
        signer_from_secret_data(K.FRONT_PROXY_CA, data)


@pytest.mark.parametrize(
    ("cert", "key", "message"),
    [
        (b"garbage", "ca", "signer certificate: not a PEM certificate"),
        ("ca", b"garbage", "signer private key"),
        ("ca", "leaf", "does not match"),
        ("leaf", "leaf", "is not a CA"),
    ],
)
def test_should_explain_why_a_signer_cannot_be_loaded(
    cert: bytes | str, key: bytes | str, message: str
) -> None:
    ca = minted().secret(K.CA)
    leaf = minted().secret(K.APISERVER)
    pems = {
        "ca": (ca["ca.crt"], ca["ca.key"]),
        "leaf": (leaf["apiserver.crt"], leaf["apiserver.key"]),
    }
    cert_pem = pems[cert][0] if isinstance(cert, str) else cert
    key_pem = pems[key][1] if isinstance(key, str) else key
    with pytest.raises(SignerError, match=message):
        load_signer(cert_pem, key_pem)


def test_should_default_advertise_address_and_datastore_names_from_the_tcp() -> None:
    tcp = TcpSpec(name="a-b", namespace="ns-1", address="10.0.0.1")
    assert tcp.advertise_address == "10.0.0.1"
    assert tcp.datastore_user == "ns_1_a_b"
    assert tcp.datastore_schema == "ns_1_a_b"
    assert dataclasses.replace(tcp, datastore_user="u").datastore_user == "u"


def test_should_give_ca_profiles_the_cert_sign_usage() -> None:
    assert KeyUsage.CERT_SIGN in CA_KEY_USAGES
    assert KeyUsage.CERT_SIGN not in LEAF_KEY_USAGES
