"""Loading private keys: fully checked to sign, consistency-checked to inspect."""

from __future__ import annotations

from unittest import mock

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from libs.pki import PkiError, SecretKind, renewal_reasons, summarize
from libs.pki import keys as keys_module
from libs.pki.keys import load_private_key, load_private_key_for_inspection, private_key_pem
from tests.unit.pki._support import NOW, TCP, minted


def apiserver_key() -> rsa.RSAPrivateKey:
    key = load_private_key(minted().secret(SecretKind.APISERVER)["apiserver.key"])
    assert isinstance(key, rsa.RSAPrivateKey)
    return key


def tampered_pem() -> bytes:
    """The apiserver key with its private exponent changed: parses, but does not add up."""
    numbers = apiserver_key().private_numbers()
    broken = rsa.RSAPrivateNumbers(
        p=numbers.p,
        q=numbers.q,
        d=numbers.d + 2,
        dmp1=numbers.dmp1,
        dmq1=numbers.dmq1,
        iqmp=numbers.iqmp,
        public_numbers=numbers.public_numbers,
    )
    key = broken.private_key(unsafe_skip_rsa_key_validation=True)
    return private_key_pem(key)


def test_should_load_a_key_for_inspection_that_matches_the_full_load() -> None:
    pem = minted().secret(SecretKind.APISERVER)["apiserver.key"]
    inspected = load_private_key_for_inspection(pem)
    assert inspected.private_numbers() == load_private_key(pem).private_numbers()  # type: ignore[union-attr]


def test_should_refuse_an_inconsistent_key_for_inspection_too() -> None:
    with pytest.raises(PkiError, match="not a consistent RSA private key"):
        load_private_key_for_inspection(tampered_pem())


def test_should_refuse_an_inconsistent_key_to_sign_with() -> None:
    with pytest.raises(PkiError):
        load_private_key(tampered_pem())


def test_should_report_a_tampered_key_as_unusable_and_not_matching() -> None:
    data = minted().secret(SecretKind.APISERVER)
    data["apiserver.key"] = tampered_pem()
    assert summarize(SecretKind.APISERVER, data).key_matches is False
    reasons = renewal_reasons(SecretKind.APISERVER, data, TCP, now=NOW)
    assert {r.code.value for r in reasons} == {"unparseable"}


def test_should_fully_check_a_signing_key_once_per_distinct_pem() -> None:
    pem = minted().secret(SecretKind.APISERVER_KUBELET_CLIENT)["apiserver-kubelet-client.key"]
    keys_module._validated.clear()
    real = serialization.load_pem_private_key
    with mock.patch.object(keys_module.serialization, "load_pem_private_key", wraps=real) as load:
        load_private_key(pem)
        load_private_key(pem)
    skipped = [c.kwargs["unsafe_skip_rsa_key_validation"] for c in load.call_args_list]
    assert skipped == [False, True]


def test_should_remember_digests_only_and_forget_the_oldest() -> None:
    memory = keys_module._ValidatedDigests(capacity=2)
    for digest in (b"a", b"b", b"c"):
        memory.add(digest)
    assert b"a" not in memory
    assert b"b" in memory
    assert b"c" in memory
