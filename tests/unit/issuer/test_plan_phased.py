"""The issuer's plan for each step of a phased rotation: what it writes, signed by which CA,
trusting which bundle; a redelivered step changes nothing."""

from __future__ import annotations

import base64
from datetime import UTC, datetime

import pytest

from libs.contracts.messages import Reason, RotateCommand
from libs.pki import SecretKind, TcpSpec, mint_secret_data, renewal_reasons, signer_from_secret_data
from libs.pki.keys import load_certificates
from libs.pki.profiles import kinds_for
from libs.pki.steps import NEXT_KEY, PREVIOUS_KEY, PhaseError, RotationStep, step_kinds
from services.issuer.plan import (
    ROTATION_ANNOTATION,
    Existing,
    Gathered,
    IssueSettings,
    Plan,
    SkipCause,
    plan,
)

K = SecretKind
ST = RotationStep
NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
TCP = TcpSpec(name="k8s-126", namespace="default", address="172.18.255.200", konnectivity=True)
CFG = IssueSettings()
PRESENT = tuple(k for k in kinds_for(konnectivity=True) if k is not K.DATASTORE_CONFIG)
CA_SIGNED = (K.APISERVER, K.APISERVER_KUBELET_CLIENT, K.KONNECTIVITY_CERTIFICATE)


def _decoded(body: dict[str, object]) -> dict[str, bytes]:
    data = body["data"]
    assert isinstance(data, dict)
    return {k: base64.b64decode(v) for k, v in data.items()}


@pytest.fixture(scope="module")
def fleet() -> dict[SecretKind, Existing]:
    """Every Secret of the TCP but datastore ones, minted and signed as the issuer would."""
    data: dict[SecretKind, dict[str, bytes]] = {}
    for kind in (K.CA, K.FRONT_PROXY_CA, K.SA):
        data[kind] = mint_secret_data(kind, TCP, now=NOW)
    signers = {
        K.CA: signer_from_secret_data(K.CA, data[K.CA]),
        K.FRONT_PROXY_CA: signer_from_secret_data(K.FRONT_PROXY_CA, data[K.FRONT_PROXY_CA]),
    }
    for kind in PRESENT:
        if kind in data or kind is K.DATASTORE_CERTIFICATE:
            continue
        signer = signers[K.FRONT_PROXY_CA] if kind is K.FRONT_PROXY_CLIENT else signers[K.CA]
        data[kind] = mint_secret_data(kind, TCP, now=NOW, signer=signer)
    return {k: Existing("1", v, {}, {}, "Opaque") for k, v in data.items()}


def _command(kind: SecretKind, step: RotationStep) -> RotateCommand:
    kinds = step_kinds(kind, step, PRESENT)
    return RotateCommand(
        id="rot-9",
        namespace="default",
        tcp="k8s-126",
        secrets=tuple(k.value for k in kinds),
        reason=Reason.REQUESTED,
        requested_at=NOW,
        resource_versions={k.value: "1" for k in kinds},  # superseded ones are re-issued too
        phased=kind.value,
        step=step,
    )


def _apply(secrets: dict[SecretKind, Existing], result: Plan) -> dict[SecretKind, Existing]:
    out = dict(secrets)
    for w in result.writes:
        meta = w.body["metadata"]
        out[w.kind] = Existing("2", _decoded(w.body), {}, dict(meta["annotations"]), "Opaque")
    return out


def _fingerprints(pem: bytes) -> list[str]:
    return [c.serial_number.to_bytes(16, "big").hex() for c in load_certificates(pem)]


def test_a_phased_ca_rotation_keeps_every_credential_consistent_in_every_step(
    fleet: dict[SecretKind, Existing],
) -> None:
    secrets = {k: Existing("7", v.data, {}, {}, "Opaque") for k, v in fleet.items()}
    old_ca = secrets[K.CA].data["ca.crt"]
    for step in (ST.PREPARE, ST.SWAP, ST.COMPLETE):
        cmd = _command(K.CA, step)
        result = plan(cmd, Gathered(TCP, "u", secrets), NOW, CFG)
        assert [w.kind.value for w in result.writes] == list(cmd.secrets)
        secrets = _apply(secrets, result)
        bundle = secrets[K.CA].data["ca.crt"]
        for kind in PRESENT:
            if kind in (K.FRONT_PROXY_CA, K.FRONT_PROXY_CLIENT, K.SA, K.DATASTORE_CERTIFICATE):
                continue
            reasons = renewal_reasons(kind, secrets[kind].data, TCP, now=NOW, current_ca_pem=bundle)
            assert reasons == (), (step, kind, reasons)
        for write in result.writes:
            assert write.body["metadata"]["annotations"][ROTATION_ANNOTATION] == f"rot-9/{step}"
        if step is ST.PREPARE:
            assert _fingerprints(bundle)[0] == _fingerprints(old_ca)[0]
            assert len(_fingerprints(bundle)) == 2
            assert NEXT_KEY in secrets[K.CA].data
            # a redelivered prepare changes nothing
            again = plan(cmd, Gathered(TCP, "u", secrets), NOW, CFG)
            assert again.writes == ()
            assert {s.cause for s in again.skipped} == {SkipCause.DONE}
        if step is ST.SWAP:
            assert _fingerprints(bundle)[1] == _fingerprints(old_ca)[0]
            assert PREVIOUS_KEY in secrets[K.CA].data
    assert len(_fingerprints(secrets[K.CA].data["ca.crt"])) == 1
    assert _fingerprints(secrets[K.CA].data["ca.crt"]) != _fingerprints(old_ca)
    assert not {NEXT_KEY, PREVIOUS_KEY} & set(secrets[K.CA].data)


def test_a_swap_without_a_prepared_ca_fails_and_names_why(
    fleet: dict[SecretKind, Existing],
) -> None:
    with pytest.raises(PhaseError, match="prepare first"):
        plan(_command(K.CA, ST.SWAP), Gathered(TCP, "u", dict(fleet)), NOW, CFG)


def test_an_ordinary_ca_re_issue_drops_what_a_phased_rotation_kept(
    fleet: dict[SecretKind, Existing],
) -> None:
    prepared = _apply(fleet, plan(_command(K.CA, ST.PREPARE), Gathered(TCP, "u", fleet), NOW, CFG))
    cmd = RotateCommand(
        id="rot-10",
        namespace="default",
        tcp="k8s-126",
        secrets=("ca",),
        reason=Reason.INVALID,
        requested_at=NOW,
        ca_rotation=True,
        resource_versions={"ca": "2"},
    )
    [write] = plan(cmd, Gathered(TCP, "u", prepared), NOW, CFG).writes
    assert NEXT_KEY not in _decoded(write.body)
