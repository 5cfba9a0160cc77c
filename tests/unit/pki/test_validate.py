"""renewal_reasons: each reason when it applies, and its absence when it does not."""

from __future__ import annotations

import base64
import dataclasses
from datetime import timedelta

import pytest
import yaml

from libs.pki import (
    PROFILES,
    Category,
    PkiError,
    SecretKind,
    Signer,
    mint_secret_data,
    only_expiry,
)

from ._checks import LEAF_KINDS, YEAR, K, R, check, codes, kubeconfig_with
from ._support import NOW, TCP, minted, other_ca


@pytest.mark.parametrize("kind", list(SecretKind))
def test_should_find_no_reason_in_a_freshly_minted_secret(kind: SecretKind) -> None:
    assert check(kind) == ()


@pytest.mark.parametrize(
    ("kind", "key"), [(k, key) for k in SecretKind for key in PROFILES[k].data_keys]
)
def test_should_report_missing_key_for_each_absent_or_empty_data_key(
    kind: SecretKind, key: str
) -> None:
    absent = minted().secret(kind)
    del absent[key]
    empty = {**minted().secret(kind), key: b""}
    # an empty value is valid where the profile allows it (Kamaji's etcd connection string)
    cases = (absent,) if key in PROFILES[kind].may_be_empty else (absent, empty)
    for data in cases:
        found = [r for r in check(kind, data) if r.code is R.MISSING_KEY]
        assert [(r.kind, r.key) for r in found] == [(kind, key)]
        assert found[0].message == f"{kind.value}: {key} is missing or empty"


@pytest.mark.parametrize(
    ("kind", "key", "value", "mention"),
    [
        (K.APISERVER, "apiserver.crt", b"garbage", "not a PEM certificate"),
        (K.APISERVER, "apiserver.key", b"garbage", "private key"),
        (K.SA, "sa.key", b"garbage", "private key"),
        (K.SA, "sa.pub", b"garbage", "public key"),
        (K.DATASTORE_CERTIFICATE, "ca.crt", b"garbage", "not a PEM certificate"),
        (K.CA, "ca.crt", b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n", "PEM"),
        (K.ADMIN_KUBECONFIG, "admin.conf", b"{unclosed", "not valid YAML"),
    ],
)
def test_should_report_unparseable_naming_the_key(
    kind: SecretKind, key: str, value: bytes, mention: str
) -> None:
    reasons = check(kind, {**minted().secret(kind), key: value})
    found = [r for r in reasons if r.code is R.UNPARSEABLE]
    assert [r.key for r in found] == [key]
    assert mention in found[0].message
    assert found[0].message.startswith(f"{kind.value}: {key} ")


@pytest.mark.parametrize(
    ("field", "mention"),
    [
        ("client-certificate-data", "client-certificate-data"),
        ("client-key-data", "client-key-data"),
    ],
)
def test_should_report_unparseable_kubeconfig_credentials(field: str, mention: str) -> None:
    data = kubeconfig_with(K.SCHEDULER_KUBECONFIG, **{field.replace("-", "_"): b"junk"})
    reasons = check(K.SCHEDULER_KUBECONFIG, data)
    assert codes(reasons) == {"unparseable"}
    assert mention in reasons[0].message


@pytest.mark.parametrize("kind", LEAF_KINDS)
def test_should_report_expiring_when_not_after_within_deadline(kind: SecretKind) -> None:
    not_after = NOW + YEAR
    assert codes(check(kind, now=not_after - timedelta(hours=1))) == {"expiring"}
    assert check(kind, now=not_after - timedelta(hours=25)) == ()
    assert codes(check(kind, now=not_after - timedelta(days=20), deadline=timedelta(days=30))) == {
        "expiring"
    }


@pytest.mark.parametrize("kind", LEAF_KINDS)
def test_should_report_expired_instead_of_expiring_once_not_after_has_passed(
    kind: SecretKind,
) -> None:
    reasons = check(kind, now=NOW + YEAR + timedelta(seconds=1))
    assert codes(reasons) == {"expired"}
    assert only_expiry(reasons)


@pytest.mark.parametrize("kind", list(SecretKind))
def test_should_report_not_yet_valid_before_not_before(kind: SecretKind) -> None:
    expected = (
        set()
        if PROFILES[kind].category in (Category.KEYPAIR, Category.CONFIG)
        else {"not-yet-valid"}
    )
    assert codes(check(kind, now=NOW - timedelta(minutes=6))) == expected
    assert check(kind, now=NOW - timedelta(minutes=4)) == ()


@pytest.mark.parametrize("kind", [k for k in LEAF_KINDS if PROFILES[k].private_key_key])
def test_should_report_key_mismatch_when_the_key_belongs_to_another_certificate(
    kind: SecretKind,
) -> None:
    key_name = PROFILES[kind].private_key_key
    assert key_name is not None
    foreign = minted().secret(K.APISERVER_KUBELET_CLIENT)["apiserver-kubelet-client.key"]
    if kind is K.APISERVER_KUBELET_CLIENT:
        foreign = minted().secret(K.APISERVER)["apiserver.key"]
    reasons = check(kind, {**minted().secret(kind), key_name: foreign})
    assert codes(reasons) == {"key-mismatch"}
    assert reasons[0].key == key_name


def test_should_report_key_mismatch_inside_a_kubeconfig() -> None:
    foreign = minted().secret(K.APISERVER)["apiserver.key"]
    reasons = check(
        K.ADMIN_KUBECONFIG, kubeconfig_with(K.ADMIN_KUBECONFIG, client_key_data=foreign)
    )
    assert [(r.code, r.key) for r in reasons] == [(R.KEY_MISMATCH, "admin.conf")]


def test_should_report_san_missing_when_a_required_san_is_absent() -> None:
    wider = dataclasses.replace(TCP, cert_sans=(*TCP.cert_sans, "new.example.com", "10.9.9.9"))
    reasons = check(K.APISERVER, tcp=wider)
    assert [(r.code, r.key) for r in reasons] == [(R.SAN_MISSING, "apiserver.crt")]
    assert "new.example.com" in reasons[0].message
    assert "10.9.9.9" in reasons[0].message


def test_should_accept_extra_sans_in_the_apiserver_certificate() -> None:
    narrower = dataclasses.replace(TCP, cert_sans=())
    assert check(K.APISERVER, tcp=narrower) == ()


def test_should_not_loop_on_sans_spelled_differently_from_the_certificate() -> None:
    spelled = dataclasses.replace(TCP, cert_sans=(" API.Example.COM. ", "2001:DB8:0::1"))
    data = mint_secret_data(K.APISERVER, spelled, now=NOW, signer=minted().signers[Signer.CA])
    assert check(K.APISERVER, data, tcp=spelled) == ()


def test_should_report_kubeconfig_ca_mismatch_when_the_current_ca_changed() -> None:
    kind = K.CONTROLLER_MANAGER_KUBECONFIG
    reasons = check(kind, current=other_ca().cert_pem, signer=None)
    assert codes(reasons) == {"kubeconfig-ca-mismatch", "wrong-signer"}
    assert {r.key for r in reasons} == {"controller-manager.conf"}
    assert codes(check(kind, current=other_ca().cert_pem)) == {"kubeconfig-ca-mismatch"}
    embedded_other = kubeconfig_with(kind)
    doc = yaml.safe_load(embedded_other["controller-manager.conf"])
    doc["clusters"][0]["cluster"]["certificate-authority-data"] = base64.b64encode(
        other_ca().cert_pem
    ).decode()
    mismatched = {"controller-manager.conf": yaml.safe_dump(doc).encode()}
    assert codes(check(kind, mismatched)) == {"kubeconfig-ca-mismatch"}


def test_should_report_kubeconfig_server_mismatch_when_the_address_moved() -> None:
    moved = dataclasses.replace(TCP, address="172.18.255.201", advertise_address="")
    assert codes(check(K.ADMIN_KUBECONFIG, tcp=moved)) == {"kubeconfig-server-mismatch"}
    assert check(K.SCHEDULER_KUBECONFIG, tcp=moved) == ()
    assert codes(check(K.APISERVER, tcp=moved)) == {"san-missing"}


def test_should_report_subject_mismatch_when_a_certificate_sits_in_the_wrong_secret() -> None:
    src = minted().secret(K.FRONT_PROXY_CLIENT)
    data = {
        "apiserver-kubelet-client.crt": src["front-proxy-client.crt"],
        "apiserver-kubelet-client.key": src["front-proxy-client.key"],
    }
    reasons = check(
        K.APISERVER_KUBELET_CLIENT, data, signer=minted().signer_pem(K.FRONT_PROXY_CLIENT)
    )
    assert codes(reasons) == {"subject-mismatch"}
    assert "kube-apiserver-kubelet-client" in reasons[0].message


def test_should_report_every_reason_that_applies_at_once() -> None:
    wider = dataclasses.replace(TCP, cert_sans=("new.example.com",))
    foreign = minted().secret(K.APISERVER_KUBELET_CLIENT)["apiserver-kubelet-client.key"]
    data = {**minted().secret(K.APISERVER), "apiserver.key": foreign}
    reasons = check(K.APISERVER, data, tcp=wider, now=NOW + 2 * YEAR, signer=other_ca().cert_pem)
    assert [r.code for r in reasons] == [
        R.EXPIRED,
        R.KEY_MISMATCH,
        R.WRONG_SIGNER,
        R.SAN_MISSING,
    ]
    assert not only_expiry(reasons)
    assert all(r.kind is K.APISERVER and str(r) == r.message for r in reasons)


def test_should_refuse_a_naive_clock() -> None:
    with pytest.raises(PkiError, match="timezone-aware"):
        check(K.APISERVER, now=NOW.replace(tzinfo=None))
