"""The rotation record's transitions, as a table: (record, observation) -> record'."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import msgspec
import pytest

from libs.contracts.codec import MalformedMessage, decode, encode
from libs.contracts.messages import KeyMaterialError, Reason, RotateCommand
from libs.contracts.records import (
    HOLD_FOR_OPERATOR,
    REFRESH,
    IssueFailed,
    IssueStarted,
    NextStep,
    Observation,
    Phase,
    Requested,
    RolloutSeen,
    RolloutState,
    RotationRecord,
    Scheduled,
    Stage,
    Superseded,
    Written,
    advance,
    key_parts,
    record_key,
)
from libs.pki.steps import RotationStep

T0 = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
T1 = T0 + timedelta(seconds=10)
CMD = RotateCommand(
    id="r1",
    namespace="default",
    tcp="k8s-126",
    tcp_uid="uid-1",
    secrets=("api-server-certificate",),
    reason=Reason.MISSING,
    requested_at=T0,
    resource_versions={"api-server-certificate": "deleted@5"},
)
P = Phase
S = Stage
R = RolloutState


def rec(phase: Phase, **kw: object) -> RotationRecord:
    base = advance(None, Requested(CMD, {"ca": "1"}, T0)).record
    assert base is not None
    return msgspec.structs.replace(base, phase=phase, **kw)


T2 = T0 + timedelta(hours=14)  # a window opening
SCHEDULED = rec(P.SCHEDULED, not_before=T2)
FAILED_ISSUE = rec(P.FAILED, stage=S.ISSUE, attempts=2, last_error="boom", next_retry=T1)
FAILED_ROLLOUT = rec(P.FAILED, stage=S.ROLLOUT, rollout=R.FAILED, last_error="deadline")


@pytest.mark.parametrize(
    ("record", "obs", "phase", "stage", "attempts"),
    [
        # lifecycle asks
        (None, Requested(CMD, {"ca": "1"}, T0), P.REQUESTED, S.NONE, 0),
        (FAILED_ISSUE, Requested(CMD, {"ca": "2"}, T1), P.REQUESTED, S.NONE, 2),  # new cause
        (FAILED_ISSUE, Requested(CMD, {"ca": "1"}, T1), P.FAILED, S.ISSUE, 2),  # same cause
        (rec(P.ISSUING, attempts=1), Requested(CMD, {"ca": "1"}, T1), P.ISSUING, S.NONE, 1),
        (rec(P.REQUESTED), Requested(CMD, {"ca": "1"}, T1), P.REQUESTED, S.NONE, 0),  # re-sent
        # a requested rotation that waits for a maintenance window, then is asked for
        (None, Scheduled(CMD, {"ca": "1"}, T0, T2), P.SCHEDULED, S.NONE, 0),
        (SCHEDULED, Scheduled(CMD, {"ca": "1"}, T1, T2), P.SCHEDULED, S.NONE, 0),  # a retry
        (SCHEDULED, Requested(CMD, {"ca": "1"}, T2), P.REQUESTED, S.NONE, 0),  # window open
        (SCHEDULED, IssueStarted(CMD, T2), P.ISSUING, S.NONE, 1),  # sent, then a crash
        (rec(P.ISSUING, attempts=1), Scheduled(CMD, {}, T1, T2), P.ISSUING, S.NONE, 1),
        (rec(P.COMPLETED), Scheduled(CMD, {}, T1, T2), P.COMPLETED, S.NONE, 0),
        # the issuer takes it, fails, retries
        (rec(P.REQUESTED), IssueStarted(CMD, T1), P.ISSUING, S.NONE, 1),
        (rec(P.ISSUING, attempts=1), IssueStarted(CMD, T1), P.ISSUING, S.NONE, 2),  # crashed
        (FAILED_ISSUE, IssueStarted(CMD, T1), P.ISSUING, S.NONE, 3),
        (None, IssueStarted(CMD, T1), P.ISSUING, S.NONE, 1),  # a command without a record
        (rec(P.WRITTEN, attempts=1), IssueStarted(CMD, T1), P.WRITTEN, S.NONE, 1),  # duplicate
        (rec(P.COMPLETED, attempts=1), IssueStarted(CMD, T1), P.COMPLETED, S.NONE, 1),
        (rec(P.ISSUING, attempts=1), IssueFailed("500", T1, T1), P.FAILED, S.ISSUE, 1),
        (rec(P.WRITTEN), IssueFailed("late", T1, T1), P.WRITTEN, S.NONE, 0),
        (rec(P.ISSUING, attempts=1), Written(T1, rolls=True), P.WRITTEN, S.NONE, 1),
        (rec(P.ISSUING, attempts=1), Written(T1, rolls=False), P.COMPLETED, S.NONE, 1),
        (rec(P.ROLLING_OUT), Written(T1, rolls=True), P.ROLLING_OUT, S.NONE, 0),
        # rollout patches and follows
        (rec(P.WRITTEN), RolloutSeen(R.PROGRESSING, T1), P.ROLLING_OUT, S.NONE, 0),
        (rec(P.WRITTEN), RolloutSeen(R.UNCHANGED, T1), P.COMPLETED, S.NONE, 0),
        (rec(P.WRITTEN), RolloutSeen(R.NO_DEPLOYMENT, T1), P.COMPLETED, S.NONE, 0),
        (rec(P.ROLLING_OUT), RolloutSeen(R.PAUSED, T1), P.ROLLING_OUT, S.NONE, 0),
        (rec(P.ROLLING_OUT), RolloutSeen(R.FAILED, T1, "deadline"), P.FAILED, S.ROLLOUT, 0),
        (rec(P.ROLLING_OUT), RolloutSeen(R.COMPLETE, T1), P.COMPLETED, S.NONE, 0),
        (FAILED_ROLLOUT, RolloutSeen(R.COMPLETE, T1), P.COMPLETED, S.NONE, 0),  # it recovered
        (FAILED_ROLLOUT, RolloutSeen(R.PROGRESSING, T1), P.ROLLING_OUT, S.NONE, 0),
        (FAILED_ISSUE, RolloutSeen(R.COMPLETE, T1), P.FAILED, S.ISSUE, 2),  # not rolling
        (rec(P.COMPLETED), RolloutSeen(R.FAILED, T1, "late"), P.COMPLETED, S.NONE, 0),
    ],
)  # fmt: skip
def test_should_move_a_record_only_as_the_table_says(
    record: RotationRecord | None, obs: Observation, phase: Phase, stage: Stage, attempts: int
) -> None:
    step = advance(record, obs)
    assert step.record is not None
    assert (step.record.phase, step.record.stage, step.record.attempts) == (phase, stage, attempts)
    moved = record is None or (record.phase, record.stage, record.attempts) != (
        phase,
        stage,
        attempts,
    )
    if moved:
        assert step.changed
        assert step.record.updated_at == obs.at


def test_should_keep_when_a_scheduled_rotation_starts_and_move_it_to_a_later_window() -> None:
    created = advance(None, Scheduled(CMD, {"ca": "1"}, T0, T2)).record
    assert created is not None
    assert (created.not_before, created.signers, created.open) == (T2, {"ca": "1"}, True)
    later = T2 + timedelta(days=1)
    moved = advance(created, Scheduled(CMD, {"ca": "1"}, T2, later))
    assert moved.changed
    assert moved.record is not None
    assert (moved.record.not_before, moved.record.updated_at) == (later, T2)
    assert not advance(created, Scheduled(CMD, {"ca": "1"}, T1, T2)).changed  # same moment
    refreshed = advance(created, Scheduled(CMD, {"ca": "1"}, T0 + REFRESH, T2))
    assert refreshed.changed  # a day old: rewritten so that it does not expire
    assert refreshed.record is not None
    assert refreshed.record.updated_at == T0 + REFRESH
    asked = advance(created, Requested(CMD, {"ca": "1"}, T2)).record
    assert asked is not None
    assert (asked.phase, asked.not_before, asked.resends) == (P.REQUESTED, T2, 0)


def test_should_count_the_copies_of_a_command_nobody_took_up() -> None:
    again = advance(rec(P.REQUESTED), Requested(CMD, {"ca": "1"}, T1)).record
    assert again is not None
    assert (again.resends, again.updated_at) == (1, T1)


def test_should_keep_the_error_and_the_next_retry_of_a_failed_issuance() -> None:
    step = advance(rec(P.ISSUING, attempts=3), IssueFailed("API 500", T1, T1 + timedelta(40)))
    assert step.record is not None
    assert step.record.last_error == "API 500"
    assert step.record.next_retry == T1 + timedelta(40)
    started = advance(step.record, IssueStarted(CMD, T1)).record
    assert started is not None
    assert started.next_retry is None
    assert started.last_error == "API 500"  # kept until the rotation succeeds
    done = advance(started, Written(T1, rolls=True)).record
    assert done is not None
    assert done.last_error == ""


def test_should_keep_when_the_rollout_began_while_it_pauses_fails_and_completes() -> None:
    rolling = advance(rec(P.WRITTEN), RolloutSeen(R.PROGRESSING, T0)).record
    assert rolling is not None
    assert rolling.rollout_since == T0
    for state in (R.PAUSED, R.FAILED, R.PROGRESSING, R.COMPLETE):
        step = advance(rolling, RolloutSeen(state, T1, "why"))
        assert step.record is not None
        assert step.record.rollout_since == T0
        rolling = step.record
    assert rolling.phase is P.COMPLETED
    assert rolling.completed_at == T1


def test_should_write_nothing_when_nothing_changed_but_refresh_an_old_open_record() -> None:
    paused = advance(rec(P.WRITTEN), RolloutSeen(R.PAUSED, T0)).record
    assert paused is not None
    assert not advance(paused, RolloutSeen(R.PAUSED, T1)).changed
    later = T0 + REFRESH
    step = advance(paused, RolloutSeen(R.PAUSED, later))
    assert step.changed  # rewritten, so that the bucket's TTL never expires an open record
    assert step.record is not None
    assert step.record.updated_at == later
    done = rec(P.COMPLETED)
    assert not advance(done, RolloutSeen(R.PAUSED, later)).changed


def test_should_rebuild_the_command_it_stands_for() -> None:
    record = advance(None, Requested(CMD, {}, T0)).record
    assert record is not None
    again = record.command(T1)
    assert again == msgspec.structs.replace(CMD, requested_at=T1)


def test_should_round_trip_through_the_codec_and_refuse_key_material() -> None:
    record = rec(P.FAILED, stage=S.ISSUE, last_error="x")
    assert decode(RotationRecord, encode(record)) == record
    with pytest.raises(KeyMaterialError):
        rec(P.FAILED, last_error="-----BEGIN RSA PRIVATE KEY-----")
    raw = encode(record).replace(b'"x"', b'"-----BEGIN PRIVATE KEY-----"')
    with pytest.raises(MalformedMessage, match="PEM"):
        decode(RotationRecord, raw)


@pytest.mark.parametrize(
    ("namespace", "tcp", "rid"), [("default", "k8s-126", "ab12"), ("ns", "tcp.with.dots", "x")]
)
def test_should_name_a_record_by_namespace_tcp_and_id(namespace: str, tcp: str, rid: str) -> None:
    assert key_parts(record_key(namespace, tcp, rid)) == (namespace, tcp, rid)


@pytest.mark.parametrize("key", ["", "onlyone", "ns.", "ns..id"])
def test_should_refuse_a_key_that_is_not_a_record_key(key: str) -> None:
    assert key_parts(key) is None


# --- phased rotations ------------------------------------------------------------------------


ST = RotationStep
PHASED_CMD = msgspec.structs.replace(
    CMD, secrets=("ca", "admin-kubeconfig"), phased="ca", step=ST.PREPARE
)
SWAP_CMD = msgspec.structs.replace(
    PHASED_CMD, secrets=("ca", "api-server-certificate"), step=ST.SWAP
)


def phased(phase: Phase, step: RotationStep = ST.PREPARE, **kw: object) -> RotationRecord:
    base = advance(None, Requested(PHASED_CMD, {}, T0, holds=(60.0, HOLD_FOR_OPERATOR))).record
    assert base is not None
    return msgspec.structs.replace(base, phase=phase, step=step, **kw)


def test_a_phased_record_keeps_its_step_and_holds() -> None:
    record = phased(P.REQUESTED)
    assert (record.phased, record.step, record.holds) == ("ca", ST.PREPARE, (60.0, -1.0))
    assert record.command(T1).step is ST.PREPARE
    assert record.round_id == "r1/prepare"


@pytest.mark.parametrize(
    ("record", "obs", "phase"),
    [
        # a step's rollout done: waiting, not completed (prepare and swap)
        (phased(P.ROLLING_OUT), RolloutSeen(R.COMPLETE, T1, step=ST.PREPARE), P.WAITING),
        (
            phased(P.ROLLING_OUT, ST.SWAP),
            RolloutSeen(R.NO_DEPLOYMENT, T1, step=ST.SWAP),
            P.WAITING,
        ),
        (phased(P.ISSUING), Written(T1, rolls=False, step=ST.PREPARE), P.WAITING),
        # complete ends it
        (
            phased(P.ROLLING_OUT, ST.COMPLETE),
            RolloutSeen(R.COMPLETE, T1, step=ST.COMPLETE),
            P.COMPLETED,
        ),
        # an observation about another step changes nothing (a late redelivery)
        (phased(P.REQUESTED, ST.SWAP), Written(T1, rolls=True, step=ST.PREPARE), P.REQUESTED),
        (phased(P.REQUESTED, ST.SWAP), IssueStarted(PHASED_CMD, T1), P.REQUESTED),
        (
            phased(P.ROLLING_OUT, ST.SWAP),
            RolloutSeen(R.COMPLETE, T1, step=ST.PREPARE),
            P.ROLLING_OUT,
        ),
        # a waiting record takes no issuance
        (phased(P.WAITING), IssueStarted(PHASED_CMD, T1), P.WAITING),
        # moving on: from the step it waits after only
        (phased(P.WAITING), NextStep(ST.PREPARE, SWAP_CMD, T1), P.REQUESTED),
        (phased(P.WAITING, ST.SWAP), NextStep(ST.PREPARE, SWAP_CMD, T1), P.WAITING),
        (phased(P.ROLLING_OUT), NextStep(ST.PREPARE, SWAP_CMD, T1), P.ROLLING_OUT),
    ],
)
def test_phased_transitions(record: RotationRecord, obs: Observation, phase: Phase) -> None:
    after = advance(record, obs).record
    assert after is not None
    assert after.phase is phase


def test_moving_on_starts_the_next_round_afresh() -> None:
    waiting = phased(
        P.WAITING,
        attempts=2,
        resends=1,
        rollout=R.COMPLETE,
        written_at=T0,
        rollout_since=T0,
        step_done_at=T0,
    )
    moved = advance(waiting, NextStep(ST.PREPARE, SWAP_CMD, T1)).record
    assert moved is not None
    assert moved.step is ST.SWAP
    assert moved.secrets == SWAP_CMD.secrets
    assert (moved.attempts, moved.resends, moved.rollout) == (0, 0, R.NONE)
    assert moved.written_at is None
    assert moved.rollout_since is None
    assert moved.step_done_at is None
    assert moved.round_id == "r1/swap"


def test_a_waiting_record_moves_on_after_its_hold_or_when_the_operator_says() -> None:
    done = advance(phased(P.ROLLING_OUT), RolloutSeen(R.COMPLETE, T1, step=ST.PREPARE)).record
    assert done is not None
    assert done.step_done_at == T1
    assert done.moves_on_at() == T1 + timedelta(seconds=60)
    swap_done = msgspec.structs.replace(done, step=ST.SWAP)
    assert swap_done.moves_on_at() is None  # the hold after swap is the operator's
    assert msgspec.structs.replace(done, phase=P.ROLLING_OUT).moves_on_at() is None
    assert done.open


def test_a_waiting_record_is_kept_alive_by_a_repeated_request() -> None:
    waiting = phased(P.WAITING, updated_at=T0)
    later = T0 + REFRESH
    step = advance(waiting, Requested(waiting.command(later), {}, later))
    assert step.changed
    assert step.record is not None
    assert step.record.phase is P.WAITING
    assert step.record.updated_at == later


def test_an_abort_marks_the_record_and_reverts_then_completes() -> None:
    waiting = phased(P.WAITING, ST.SWAP)
    revert = msgspec.structs.replace(SWAP_CMD, step=ST.REVERT)
    reverting = advance(waiting, NextStep(ST.SWAP, revert, T1, abort=True)).record
    assert reverting is not None
    assert reverting.aborted
    assert reverting.step is ST.REVERT
    done = advance(
        msgspec.structs.replace(reverting, phase=P.ROLLING_OUT),
        RolloutSeen(R.COMPLETE, T1, step=ST.REVERT),
    ).record
    assert done is not None
    assert done.phase is P.WAITING  # after revert it waits for the operator
    assert done.moves_on_at() is None


def test_a_superseded_phased_rotation_is_given_up_with_why() -> None:
    given_up = advance(phased(P.WAITING), Superseded("k8s-126-ca is replaced", T1)).record
    assert given_up is not None
    assert given_up.phase is P.COMPLETED
    assert given_up.aborted
    assert given_up.last_error == "k8s-126-ca is replaced"
    unphased = rec(P.ROLLING_OUT)
    assert advance(unphased, Superseded("x", T1)).record == unphased
