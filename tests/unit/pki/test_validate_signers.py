"""renewal_reasons for CAs, the SA keypair, the datastore, and the choice of signer."""

from __future__ import annotations

import dataclasses
from datetime import timedelta

import pytest

from libs.pki import (
    PROFILES,
    SecretKind,
    SignerError,
    mint_ca,
    mint_secret_data,
    reason_codes,
)

from ._checks import K, R, check, codes
from ._support import NOW, TCP, minted, other_ca


def test_should_report_key_mismatch_when_sa_pub_is_not_the_half_of_sa_key() -> None:
    other = mint_secret_data(K.SA, TCP, now=NOW)
    reasons = check(K.SA, {**minted().secret(K.SA), "sa.pub": other["sa.pub"]})
    assert [(r.code, r.key) for r in reasons] == [(R.KEY_MISMATCH, "sa.pub")]


@pytest.mark.parametrize(
    ("kind", "wrong_signer"),
    [
        (K.APISERVER, "other"),
        (K.FRONT_PROXY_CLIENT, "ca"),
        (K.DATASTORE_CERTIFICATE, "ca"),
        (K.KONNECTIVITY_CERTIFICATE, "other"),
    ],
)
def test_should_report_wrong_signer_when_not_signed_by_the_profile_ca(
    kind: SecretKind, wrong_signer: str
) -> None:
    pem = other_ca().cert_pem if wrong_signer == "other" else minted().ca_pem
    reasons = check(kind, signer=pem)
    assert R.WRONG_SIGNER in reason_codes(reasons)
    assert next(r for r in reasons if r.code is R.WRONG_SIGNER).key == PROFILES[kind].cert_key


def test_should_fall_back_to_the_current_ca_as_signer_of_ca_signed_kinds() -> None:
    data = mint_secret_data(K.APISERVER, TCP, now=NOW, signer=other_ca())
    assert codes(check(K.APISERVER, data, signer=None)) == {"wrong-signer"}
    assert check(K.APISERVER, data, signer=None, current=None) == ()


def test_should_skip_the_signer_check_when_the_signer_is_unknown() -> None:
    assert check(K.FRONT_PROXY_CLIENT, signer=None) == ()


def test_should_report_the_datastore_ca_crt_that_is_not_the_datastore_ca() -> None:
    data = {**minted().secret(K.DATASTORE_CERTIFICATE), "ca.crt": other_ca().cert_pem}
    reasons = check(K.DATASTORE_CERTIFICATE, data)
    assert [(r.code, r.key) for r in reasons] == [(R.WRONG_SIGNER, "ca.crt")]


def test_should_check_the_datastore_server_crt_not_its_ca_crt() -> None:
    short_ca = mint_ca("datastore-ca", now=NOW, validity=timedelta(hours=2))
    data = mint_secret_data(K.DATASTORE_CERTIFICATE, TCP, now=NOW, signer=short_ca)
    later = NOW + timedelta(hours=1)
    assert check(K.DATASTORE_CERTIFICATE, data, now=later, signer=short_ca.cert_pem) == ()
    expiring = mint_secret_data(
        K.DATASTORE_CERTIFICATE, TCP, now=NOW, signer=short_ca, validity=timedelta(hours=3)
    )
    reasons = check(K.DATASTORE_CERTIFICATE, expiring, now=later, signer=short_ca.cert_pem)
    assert [(r.code, r.key) for r in reasons] == [(R.EXPIRING, "server.crt")]


def test_should_not_judge_the_subject_of_an_external_datastore_certificate() -> None:
    external = dataclasses.replace(TCP, datastore_driver="PostgreSQL", datastore_user="someone")
    assert check(K.DATASTORE_CERTIFICATE, tcp=external) == ()
    assert codes(
        check(K.DATASTORE_CERTIFICATE, tcp=dataclasses.replace(TCP, datastore_user="x"))
    ) == {"subject-mismatch"}


@pytest.mark.parametrize("kind", [K.CA, K.FRONT_PROXY_CA])
def test_should_not_report_expiring_for_a_ca_but_report_it_expired(kind: SecretKind) -> None:
    not_after = NOW + timedelta(hours=87600)
    assert check(kind, now=not_after - timedelta(hours=1)) == ()
    assert codes(check(kind, now=not_after)) == {"expired"}


def test_should_report_a_leaf_certificate_posing_as_a_ca() -> None:
    leaf = minted().secret(K.APISERVER)
    data = {"ca.crt": leaf["apiserver.crt"], "ca.key": leaf["apiserver.key"]}
    data |= {"tls.crt": data["ca.crt"], "tls.key": data["ca.key"]}
    assert codes(check(K.CA, data)) == {"not-ca", "wrong-signer", "subject-mismatch"}


def test_should_report_ca_copy_mismatch_when_tls_keys_differ_from_ca_keys() -> None:
    other = mint_secret_data(K.CA, TCP, now=NOW)
    data = {**minted().secret(K.CA), "tls.crt": other["ca.crt"], "tls.key": other["ca.key"]}
    reasons = check(K.CA, data)
    assert [(r.code, r.key) for r in reasons] == [
        (R.CA_COPY_MISMATCH, "tls.crt"),
        (R.CA_COPY_MISMATCH, "tls.key"),
    ]


def test_should_raise_a_signer_error_for_an_unparseable_current_ca() -> None:
    with pytest.raises(SignerError, match="current CA certificate"):
        check(K.APISERVER, current=b"garbage")
