"""No private key appears in the repr, str or error of any value that holds or reads one."""

from __future__ import annotations

import base64
from datetime import timedelta

import pytest

from libs.pki import (
    KubeconfigError,
    PkiError,
    SecretDataError,
    SecretKind,
    Signer,
    SignerError,
    datastore_certificate_from_external,
    expiration_report,
    issue_leaf,
    load_signer,
    parse_kubeconfig,
    renewal_reasons,
    summarize,
)
from libs.pki.material import gather
from libs.pki.profiles import LEAF_KEY_USAGES, ExtKeyUsage

from ._support import NOW, TCP, minted

K = SecretKind


def key_fragments(pem: bytes) -> list[str]:
    """Pieces of a key that must never leak: a body line, and the base64 of the whole PEM."""
    lines = [line for line in pem.decode().splitlines() if not line.startswith("-----")]
    return [lines[1], base64.b64encode(pem).decode()[20:60], "PRIVATE KEY"]


def assert_no_key(text: str, pem: bytes) -> None:
    for fragment in key_fragments(pem):
        assert fragment not in text


def key_pem_of(kind: SecretKind, data: dict[str, bytes]) -> bytes:
    """The private key held by a Secret (a kubeconfig's embedded client key)."""
    if kind is K.ADMIN_KUBECONFIG:
        return parse_kubeconfig(data["admin.conf"]).client_key_pem
    return next(v for k, v in data.items() if k.endswith(".key"))


def test_should_hide_the_key_of_a_signer() -> None:
    signer = minted().signers[Signer.CA]
    for text in (repr(signer), str(signer)):
        assert_no_key(text, signer.key_pem)
    assert "private_key" not in repr(signer)


def test_should_hide_the_key_of_an_issued_pair() -> None:
    pair = issue_leaf(
        minted().signers[Signer.CA],
        common_name="x",
        organizations=(),
        ext_key_usages=(ExtKeyUsage.CLIENT_AUTH,),
        key_usages=LEAF_KEY_USAGES,
        now=NOW,
        validity=timedelta(days=1),
    )
    assert_no_key(repr(pair), pair.key_pem)
    assert_no_key(str(pair), pair.key_pem)


def test_should_hide_the_key_of_parsed_kubeconfig_credentials() -> None:
    creds = parse_kubeconfig(minted().secret(K.ADMIN_KUBECONFIG)["admin.conf"])
    assert_no_key(repr(creds), creds.client_key_pem)
    assert_no_key(str(creds), creds.client_key_pem)


@pytest.mark.parametrize("kind", [K.APISERVER, K.ADMIN_KUBECONFIG, K.SA, K.CA])
def test_should_hide_the_key_of_gathered_material(kind: SecretKind) -> None:
    data = minted().secret(kind)
    material = gather(kind, data)
    assert material.private_key is not None
    assert_no_key(repr(material), key_pem_of(kind, data))
    assert_no_key(str(material), key_pem_of(kind, data))


@pytest.mark.parametrize("kind", [K.APISERVER, K.ADMIN_KUBECONFIG, K.CA])
def test_should_keep_keys_out_of_summaries_reasons_and_reports(kind: SecretKind) -> None:
    data = minted().secret(kind)
    key_pem = key_pem_of(kind, data)
    later = NOW.replace(year=NOW.year + 20)
    texts = [repr(summarize(kind, data))]
    texts += [repr(r) for r in renewal_reasons(kind, data, TCP, now=later)]
    report = expiration_report(TCP, {kind: data}, now=later)
    texts += [repr(report)]
    for text in texts:
        assert_no_key(text, key_pem)


def test_should_keep_a_damaged_key_out_of_errors() -> None:
    key_pem = minted().secret(K.APISERVER)["apiserver.key"]
    damaged = key_pem.replace(b"\n", b"\n!", 3)
    cert = minted().secret(K.APISERVER)["apiserver.crt"]
    errors: list[PkiError] = []
    for call in (
        lambda: load_signer(minted().ca_pem, damaged),
        lambda: datastore_certificate_from_external(ca_pem=cert, cert_pem=cert, key_pem=damaged),
        lambda: parse_kubeconfig(b"users: " + damaged),
    ):
        with pytest.raises((SignerError, SecretDataError, KubeconfigError)) as caught:
            call()
        errors.append(caught.value)
    for error in errors:
        assert_no_key(str(error), key_pem)
        assert_no_key(repr(error), key_pem)
        assert error.__cause__ is None


def test_should_keep_a_damaged_key_out_of_reasons() -> None:
    key_pem = minted().secret(K.APISERVER)["apiserver.key"]
    damaged = key_pem[:200] + b"!" + key_pem[201:]
    reasons = renewal_reasons(
        K.APISERVER, {**minted().secret(K.APISERVER), "apiserver.key": damaged}, TCP, now=NOW
    )
    assert [r.code.value for r in reasons] == ["unparseable"]
    assert_no_key(repr(reasons), key_pem)
