"""Phased rotations in lifecycle: accepting, moving on, refusing, and the waits between steps."""

from __future__ import annotations

from datetime import timedelta

import pytest

from libs.contracts.api import RotateRequest, ServiceErrorCode, Target
from libs.contracts.records import HOLD_FOR_OPERATOR, Phase, RotationRecord
from libs.pki.profiles import SecretKind
from libs.pki.steps import DEFAULT_SA_OVERLAP, RotationStep
from services.lifecycle.policy import (
    PolicySettings,
    TcpState,
    decide,
    next_step_command,
    started,
    waiting_steps,
)
from services.lifecycle.requests import Accepted, Rejected, holds, resolve
from tests.unit.lifecycle.test_policy import NOW, healthy, record, tcp

K = SecretKind
ST = RotationStep
OPERATOR = (HOLD_FOR_OPERATOR, HOLD_FOR_OPERATOR)


def request(target: Target, secret: str = "", **kw: object) -> RotateRequest:
    return RotateRequest(
        namespace="default", tcp="k8s-126", target=target, secret=secret, requester="ops", **kw
    )  # type: ignore[arg-type]


def phased(
    step: RotationStep, phase: Phase, kind: SecretKind = K.CA, **kw: object
) -> RotationRecord:
    return record({kind: "1"}, phase=phase, rid="p1", phased=kind.value, step=step, **kw)


def with_records(*records: RotationRecord) -> TcpState:
    return TcpState(tcp(), healthy(), rotations=records)


@pytest.mark.parametrize(
    ("req", "kind", "first"),
    [
        (request(Target.CA, phased=True), K.CA, K.CA),
        (request(Target.SECRET, "front-proxy-ca-certificate", phased=True), K.FRONT_PROXY_CA,
         K.FRONT_PROXY_CA),
        (request(Target.SA), K.SA, K.SA),
        (request(Target.SECRET, "k8s-126-sa-certificate", phased=True), K.SA, K.SA),
    ],
)  # fmt: skip
def test_a_phased_request_starts_with_prepare(
    req: RotateRequest, kind: SecretKind, first: SecretKind
) -> None:
    verdict = resolve(req, with_records())
    assert isinstance(verdict, Accepted)
    assert verdict.step is ST.PREPARE
    assert verdict.phased is kind
    assert verdict.kinds[0] is first
    assert verdict.ca_rotation is False  # renewals go on between the steps
    if kind is K.CA:  # prepare re-issues the kubeconfigs, which carry the bundle, not the leaves
        assert K.ADMIN_KUBECONFIG in verdict.kinds
        assert K.APISERVER not in verdict.kinds


def test_holds_wait_for_the_operator_unless_an_overlap_is_given() -> None:
    assert holds(K.CA, 0, DEFAULT_SA_OVERLAP) == OPERATOR
    assert holds(K.FRONT_PROXY_CA, 600, DEFAULT_SA_OVERLAP) == (600, 600)
    assert holds(K.SA, 0, timedelta(hours=48)) == (0, 48 * 3600)
    assert holds(K.SA, 60, timedelta(hours=48)) == (0, 60)
    verdict = resolve(request(Target.SA), with_records(), timedelta(hours=5))
    assert isinstance(verdict, Accepted)
    assert verdict.holds == (0, 5 * 3600)


def test_complete_moves_a_waiting_rotation_on_to_its_next_step() -> None:
    waiting = phased(ST.PREPARE, Phase.WAITING)
    verdict = resolve(request(Target.CA, complete=True), with_records(waiting))
    assert isinstance(verdict, Accepted)
    assert verdict.moves == waiting
    assert verdict.id == "p1"
    assert verdict.step is ST.SWAP
    assert K.APISERVER in verdict.kinds  # swap re-issues what the CA signs


@pytest.mark.parametrize(
    ("req", "records", "code", "words"),
    [
        (request(Target.CA, complete=True), (), ServiceErrorCode.NOT_FOUND,
         "no phased rotation of k8s-126-ca is open"),
        (request(Target.CA, complete=True), (phased(ST.SWAP, Phase.ROLLING_OUT),),
         ServiceErrorCode.CONFLICT, "is rolling-out at step swap"),
        (request(Target.CA, phased=True), (phased(ST.PREPARE, Phase.WAITING),),
         ServiceErrorCode.CONFLICT, "phased rotation p1 of k8s-126-ca is open"),
        (request(Target.CA), (phased(ST.PREPARE, Phase.WAITING),), ServiceErrorCode.CONFLICT,
         "k8s-126-ca is being rotated in phases"),
        (request(Target.SECRET, "sa-certificate"), (phased(ST.SWAP, Phase.WAITING, K.SA),),
         ServiceErrorCode.CONFLICT, "k8s-126-sa-certificate is being rotated in phases"),
        (request(Target.X509, phased=True), (), ServiceErrorCode.BAD_REQUEST,
         "rotate in phases"),
        (request(Target.SECRET, "admin-kubeconfig", phased=True), (),
         ServiceErrorCode.BAD_REQUEST, "rotate in phases"),
        (request(Target.SA, overlap_seconds=-1), (), ServiceErrorCode.BAD_REQUEST,
         "must not be negative"),
    ],
)  # fmt: skip
def test_phased_requests_are_refused_with_the_documented_code(
    req: RotateRequest, records: tuple[RotationRecord, ...], code: ServiceErrorCode, words: str
) -> None:
    verdict = resolve(req, with_records(*records))
    assert isinstance(verdict, Rejected)
    assert verdict.code is code
    assert words in verdict.message


def test_a_leaf_rotation_is_accepted_while_a_phased_ca_rotation_waits() -> None:
    verdict = resolve(request(Target.X509), with_records(phased(ST.PREPARE, Phase.WAITING)))
    assert isinstance(verdict, Accepted)


def test_a_waiting_rotation_covers_nothing_and_moves_on_when_its_hold_passes() -> None:
    done_at = NOW - timedelta(minutes=5)
    held = phased(ST.PREPARE, Phase.WAITING, holds=(60.0, -1.0), step_done_at=done_at)
    assert not started(held)
    assert waiting_steps(with_records(held), NOW)[0].move_on
    operator = phased(ST.PREPARE, Phase.WAITING, holds=OPERATOR, step_done_at=done_at)
    assert waiting_steps(with_records(operator), NOW) == ()
    # kept alive once a day while it waits
    old = phased(ST.PREPARE, Phase.WAITING, holds=OPERATOR, updated_at=NOW - timedelta(days=1))
    [keep] = waiting_steps(with_records(old), NOW)
    assert not keep.move_on
    decision = decide(with_records(held), NOW, PolicySettings())
    assert [s.record.id for s in decision.steps] == ["p1"]


def test_the_next_check_comes_when_a_hold_ends() -> None:
    done_at = NOW - timedelta(seconds=30)
    held = phased(ST.PREPARE, Phase.WAITING, holds=(60.0, -1.0), step_done_at=done_at)
    decision = decide(with_records(held), NOW, PolicySettings())
    assert decision.next_check == done_at + timedelta(seconds=60)


def test_the_next_step_command_names_that_steps_secrets_on_current_evidence() -> None:
    waiting = phased(ST.SWAP, Phase.WAITING)
    command = next_step_command(waiting, with_records(waiting), NOW)
    assert command.step is ST.COMPLETE
    assert command.round_id == "p1/complete"
    assert command.secrets[0] == "ca"
    assert (
        "api-server-kubelet-client-certificate" not in command.secrets
    )  # a client: not at complete
    assert set(command.resource_versions) == set(command.secrets)
    with pytest.raises(ValueError, match="no step after"):
        next_step_command(phased(ST.COMPLETE, Phase.WAITING), with_records(), NOW)


@pytest.mark.parametrize(
    ("step", "back"), [(ST.PREPARE, ST.COMPLETE), (ST.SWAP, ST.REVERT), (ST.REVERT, ST.COMPLETE)]
)
def test_abort_backs_a_waiting_rotation_out(step: RotationStep, back: RotationStep) -> None:
    waiting = phased(step, Phase.WAITING)
    verdict = resolve(request(Target.CA, abort=True), with_records(waiting))
    assert isinstance(verdict, Accepted)
    assert verdict.step is back
    assert verdict.moves == waiting
    command = next_step_command(waiting, with_records(waiting), NOW, abort=True)
    assert command.step is back


@pytest.mark.parametrize(
    ("req", "words"),
    [
        (request(Target.CA, abort=True, complete=True), "contradict"),
        (request(Target.CA, abort=True, wait_for_window=True), "wait_for_window"),
        (request(Target.SA, wait_for_window=True), "wait_for_window applies to immediate"),
    ],
)
def test_contradictory_moves_are_malformed(req: RotateRequest, words: str) -> None:
    verdict = resolve(req, with_records(phased(ST.PREPARE, Phase.WAITING)))
    assert isinstance(verdict, Rejected)
    assert verdict.code is ServiceErrorCode.BAD_REQUEST
    assert words in verdict.message


def test_abort_while_a_step_is_under_way_is_a_conflict() -> None:
    verdict = resolve(request(Target.CA, abort=True), with_records(phased(ST.SWAP, Phase.ISSUING)))
    assert isinstance(verdict, Rejected)
    assert verdict.code is ServiceErrorCode.CONFLICT
    assert "can be aborted once that step is rolled out" in verdict.message


def test_a_deleted_ca_supersedes_its_phased_rotation() -> None:
    waiting = phased(ST.PREPARE, Phase.WAITING)
    secrets = healthy()
    del secrets[K.CA]
    decision = decide(TcpState(tcp(), secrets, rotations=(waiting,)), NOW, PolicySettings())
    assert any(K.CA in r.kinds and not r.step for r in decision.rotations)  # at once
    assert decision.superseded == (waiting,)
    # a front-proxy CA rotation of the same TCP goes on
    other = phased(ST.PREPARE, Phase.WAITING, K.FRONT_PROXY_CA)
    decision = decide(TcpState(tcp(), secrets, rotations=(other,)), NOW, PolicySettings())
    assert decision.superseded == ()
