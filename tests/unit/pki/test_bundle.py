"""`ca_bundle`: the CA certificates of a CA Secret, in order, each checked to be a CA."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from libs.pki import SecretKind, TcpSpec, ca_bundle, mint_secret_data, signer_from_secret_data
from libs.pki.errors import PkiError, SecretDataError

NOW = datetime(2026, 6, 1, tzinfo=UTC)
TCP = TcpSpec(name="k8s-126", namespace="default", address="172.18.255.200")


def test_every_ca_of_the_bundle_in_order() -> None:
    old = mint_secret_data(SecretKind.CA, TCP, now=NOW)
    new = mint_secret_data(SecretKind.CA, TCP, now=NOW)
    both = {**old, "ca.crt": old["ca.crt"] + new["ca.crt"]}
    found = ca_bundle(SecretKind.CA, both)
    assert found.pem.count(b"BEGIN CERTIFICATE") == 2
    assert [c.serial for c in found.certificates] == [
        ca_bundle(SecretKind.CA, old).certificates[0].serial,
        ca_bundle(SecretKind.CA, new).certificates[0].serial,
    ]
    assert b"PRIVATE" not in found.pem


def test_the_front_proxy_ca_has_its_own_key() -> None:
    data = mint_secret_data(SecretKind.FRONT_PROXY_CA, TCP, now=NOW)
    (cert,) = ca_bundle(SecretKind.FRONT_PROXY_CA, data).certificates
    assert cert.common_name == "front-proxy-ca"


def test_what_is_not_a_ca_bundle_is_named() -> None:
    ca = mint_secret_data(SecretKind.CA, TCP, now=NOW)
    leaf = mint_secret_data(
        SecretKind.APISERVER, TCP, now=NOW, signer=signer_from_secret_data(SecretKind.CA, ca)
    )
    with pytest.raises(SecretDataError, match="holds CN=kube-apiserver, which is no CA"):
        ca_bundle(SecretKind.CA, {**ca, "ca.crt": ca["ca.crt"] + leaf["apiserver.crt"]})
    with pytest.raises(SecretDataError, match=r"'ca\.crt': is missing"):
        ca_bundle(SecretKind.CA, {})
    with pytest.raises(PkiError, match="api-server-certificate is not a CA Secret"):
        ca_bundle(SecretKind.APISERVER, leaf)
