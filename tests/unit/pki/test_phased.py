"""The signer Secret's data in each step of a phased rotation: bundle order, which key signs,
and what Kamaji reads (the first PEM block, paired with the key beside it)."""

from __future__ import annotations

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from libs.pki import SecretKind, mint_secret_data, renewal_reasons
from libs.pki.issue import load_signer
from libs.pki.keys import certificate_pem, load_certificates, load_private_key, public_key_pem
from libs.pki.phased import bundle_entries, phase_of, phased_data
from libs.pki.profiles import kinds_for
from libs.pki.steps import (
    CROSS_CERT,
    NEXT_CERT,
    NEXT_KEY,
    PREVIOUS_CERT,
    PREVIOUS_KEY,
    PhaseError,
    RotationStep,
    round_id,
    step_kinds,
)
from tests.unit.pki._support import NOW, TCP

K = SecretKind
STEP = RotationStep
ALL = kinds_for(konnectivity=True)


def _fresh(kind: SecretKind) -> dict[str, bytes]:
    return mint_secret_data(kind, TCP, now=NOW)


def _certs(pem: bytes) -> list[bytes]:
    return [c.fingerprint(c.signature_hash_algorithm) for c in load_certificates(pem)]  # type: ignore[arg-type]


def _run(kind: SecretKind) -> tuple[dict[str, bytes], ...]:
    """The Secret's data before, after prepare, after swap, after complete."""
    before = _fresh(kind)
    new = _fresh(kind)
    prepared = phased_data(kind, STEP.PREPARE, before, lambda: new)
    swapped = phased_data(kind, STEP.SWAP, prepared, lambda: pytest.fail("swap mints nothing"))
    done = phased_data(kind, STEP.COMPLETE, swapped, lambda: pytest.fail("complete mints nothing"))
    return before, new, prepared, swapped, done


@pytest.mark.parametrize(
    ("kind", "crt", "key"),
    [(K.CA, "ca.crt", "ca.key"), (K.FRONT_PROXY_CA, "front-proxy-ca.crt", "front-proxy-ca.key")],
)
def test_a_ca_is_trusted_old_and_new_until_complete_and_signs_with_the_first(
    kind: SecretKind, crt: str, key: str
) -> None:
    before, new, prepared, swapped, done = _run(kind)
    old_fp, new_fp = _certs(before[crt])[0], _certs(new[crt])[0]
    assert _certs(prepared[crt]) == [old_fp, new_fp]
    assert prepared[key] == before[key]
    assert _certs(swapped[crt]) == [new_fp, old_fp]
    assert swapped[key] == new[key]
    assert _certs(done[crt]) == [new_fp]
    assert done[key] == new[key]
    for data in (prepared, swapped, done):
        # Kamaji's and kube-controller-manager's reading: the first block with the key
        signer = load_signer(data[crt], data[key])
        assert signer.trust_pem == data[crt]
        assert renewal_reasons(kind, data, TCP, now=NOW) == ()
        if kind is K.CA:
            assert data["tls.crt"] == data["ca.crt"]
            assert data["tls.key"] == data["ca.key"]
    assert prepared[NEXT_KEY] == new[key]
    assert NEXT_CERT in prepared
    assert swapped[PREVIOUS_KEY] == before[key]
    assert PREVIOUS_CERT in swapped
    if kind is K.CA:  # the new CA signed by the old one, for servers to send along
        [cross] = x509.load_pem_x509_certificates(swapped[CROSS_CERT])
        [old, new_ca] = (x509.load_pem_x509_certificate(p) for p in (before[crt], new[crt]))
        cross.verify_directly_issued_by(old)
        assert cross.public_key() == new_ca.public_key()
        assert cross.subject == new_ca.subject
        signer = load_signer(swapped[crt], swapped[key], swapped[CROSS_CERT])
        served = mint_secret_data(K.APISERVER, TCP, now=NOW, signer=signer)["apiserver.crt"]
        leaf, chained = x509.load_pem_x509_certificates(served)
        leaf.verify_directly_issued_by(new_ca)
        assert chained == cross
    else:
        assert CROSS_CERT not in swapped
    assert not set(done) & {NEXT_CERT, NEXT_KEY, PREVIOUS_CERT, PREVIOUS_KEY, CROSS_CERT}
    assert [phase_of(kind, d) for d in (before, prepared, swapped, done)] == [
        STEP.NONE,
        STEP.PREPARE,
        STEP.SWAP,
        STEP.NONE,
    ]
    assert [bundle_entries(kind, d[crt]) for d in (before, prepared, swapped, done)] == [1, 2, 2, 1]


def _public_keys(pem: bytes) -> list[bytes]:
    blocks = [b + b"-----END PUBLIC KEY-----\n" for b in pem.split(b"-----END PUBLIC KEY-----\n")]
    return [
        public_key_pem(serialization.load_pem_public_key(b))  # type: ignore[arg-type]
        for b in blocks
        if b"BEGIN" in b
    ]


def test_the_sa_key_overlaps_old_and_new_public_keys_until_complete() -> None:
    before, new, prepared, swapped, done = _run(K.SA)
    old_pub, new_pub = _public_keys(before["sa.pub"])[0], _public_keys(new["sa.pub"])[0]
    assert _public_keys(prepared["sa.pub"]) == [old_pub, new_pub]
    assert prepared["sa.key"] == before["sa.key"]  # tokens are still signed by the old key
    assert _public_keys(swapped["sa.pub"]) == [new_pub, old_pub]
    assert swapped["sa.key"] == new["sa.key"]
    assert _public_keys(done["sa.pub"]) == [new_pub]
    for data in (prepared, swapped, done):
        # sa.pub's first block is the public half of sa.key (Kamaji's check)
        assert _public_keys(data["sa.pub"])[0] == public_key_pem(
            load_private_key(data["sa.key"]).public_key()
        )
        assert renewal_reasons(K.SA, data, TCP, now=NOW) == ()
    assert [bundle_entries(K.SA, d["sa.pub"]) for d in (before, prepared, swapped, done)] == [
        1,
        2,
        2,
        1,
    ]


def test_swap_without_prepare_names_what_is_missing() -> None:
    with pytest.raises(PhaseError, match=r"certlc-next\.key"):
        phased_data(K.CA, STEP.SWAP, _fresh(K.CA), dict)
    with pytest.raises(PhaseError, match="cannot be rotated in phases"):
        phased_data(K.APISERVER, STEP.PREPARE, {}, dict)
    with pytest.raises(PhaseError, match=r"no sa\.pub and sa\.key"):
        phased_data(K.SA, STEP.PREPARE, {"sa.pub": b""}, dict)


def test_each_step_writes_the_signer_and_what_carries_or_is_signed_by_it() -> None:
    kubeconfigs = {
        K.ADMIN_KUBECONFIG,
        K.CONTROLLER_MANAGER_KUBECONFIG,
        K.SCHEDULER_KUBECONFIG,
        K.KONNECTIVITY_KUBECONFIG,
    }
    prepare = step_kinds(K.CA, STEP.PREPARE, ALL)
    assert prepare[0] is K.CA
    assert set(prepare[1:]) == kubeconfigs
    swap = step_kinds(K.CA, STEP.SWAP, ALL)
    assert swap[0] is K.CA
    assert {K.APISERVER, K.APISERVER_KUBELET_CLIENT, K.KONNECTIVITY_CERTIFICATE} < set(swap)
    assert kubeconfigs < set(swap)
    assert K.FRONT_PROXY_CLIENT not in swap
    assert K.DATASTORE_CERTIFICATE not in swap
    # complete: the kubeconfigs, and the server certificates, served without the cross
    complete = step_kinds(K.CA, STEP.COMPLETE, ALL)
    assert set(complete) == {*prepare, K.APISERVER, K.KONNECTIVITY_CERTIFICATE}
    assert step_kinds(K.FRONT_PROXY_CA, STEP.PREPARE, ALL) == (K.FRONT_PROXY_CA,)
    assert step_kinds(K.FRONT_PROXY_CA, STEP.SWAP, ALL) == (K.FRONT_PROXY_CA, K.FRONT_PROXY_CLIENT)
    assert step_kinds(K.SA, STEP.SWAP, ALL) == (K.SA,)


def test_steps_follow_one_another_and_mark_their_rounds() -> None:
    assert STEP.PREPARE.next is STEP.SWAP
    assert STEP.SWAP.next is STEP.COMPLETE
    assert STEP.COMPLETE.next is None
    assert STEP.NONE.next is None
    assert round_id("r1", STEP.NONE) == "r1"
    assert round_id("r1", STEP.SWAP) == "r1/swap"


def test_a_kubeconfig_carries_the_whole_bundle_and_is_checked_against_it() -> None:
    _, _, prepared, _, _ = _run(K.CA)
    signer = load_signer(prepared["ca.crt"], prepared["ca.key"])
    kubeconfig = mint_secret_data(K.ADMIN_KUBECONFIG, TCP, now=NOW, signer=signer)
    ca = prepared["ca.crt"]
    assert renewal_reasons(K.ADMIN_KUBECONFIG, kubeconfig, TCP, now=NOW, current_ca_pem=ca) == ()
    # the same kubeconfig against the CA alone (after complete) no longer matches
    alone = x509.load_pem_x509_certificates(ca)[0].public_bytes(serialization.Encoding.PEM)
    [reason] = renewal_reasons(K.ADMIN_KUBECONFIG, kubeconfig, TCP, now=NOW, current_ca_pem=alone)
    assert "certificate-authority-data is not the current CA certificate" in reason.message


@pytest.mark.parametrize(("kind", "crt"), [(K.CA, "ca.crt"), (K.SA, "sa.pub")])
def test_an_abort_after_swap_reverts_to_the_old_signer_and_then_drops_the_new(
    kind: SecretKind, crt: str
) -> None:
    before, new, prepared, swapped, _ = _run(kind)
    key = "ca.key" if kind is K.CA else "sa.key"
    reverted = phased_data(kind, STEP.REVERT, swapped, lambda: pytest.fail("revert mints nothing"))
    # the state after prepare: the old signer signs, both are trusted, the new one kept
    assert reverted[key] == before[key]
    assert reverted[NEXT_KEY] == new[key]
    assert phase_of(kind, reverted) is STEP.PREPARE
    if kind is K.CA:
        assert _certs(reverted[crt]) == _certs(prepared[crt])
        assert CROSS_CERT not in reverted
    else:
        assert _public_keys(reverted[crt]) == _public_keys(prepared[crt])
    assert renewal_reasons(kind, reverted, TCP, now=NOW) == ()
    # aborting again: complete keeps the signer that signs, the old one
    dropped = phased_data(kind, STEP.COMPLETE, reverted, dict)
    assert dropped[key] == before[key]
    assert dropped[crt] == (
        certificate_pem(load_certificates(before[crt])[0]) if kind is K.CA else before[crt]
    )
    with pytest.raises(PhaseError, match="nothing to revert to"):
        phased_data(kind, STEP.REVERT, prepared, dict)


def test_abort_backs_out_of_each_waiting_step() -> None:
    assert STEP.PREPARE.abort is STEP.COMPLETE
    assert STEP.SWAP.abort is STEP.REVERT
    assert STEP.REVERT.abort is STEP.COMPLETE
    assert STEP.REVERT.next is STEP.SWAP
    assert STEP.COMPLETE.abort is None
    assert step_kinds(K.CA, STEP.REVERT, ALL) == step_kinds(K.CA, STEP.SWAP, ALL)
