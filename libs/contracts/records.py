"""The rotation record: one durable record per rotation, and the pure transitions that move it.

A rotation is not inferred from events, phases or timers: lifecycle writes a record when it asks
for one, and every service moves that record on through `advance(record, observation)`, a pure
function tested as a table. The records live in the KeyValue bucket CERTLC_ROTATIONS (key
`<namespace>.<tcp>.<id>`, see `record_key`); a service that writes one does compare-and-set
against the revision it read, so two replicas never overwrite each other's step.

    requested --issuer takes it--> issuing --Secrets written--> written --patched--> rolling-out
        ^                            |  ^                           |                 |   ^
        |  new cause (lifecycle)     v  | retry after the backoff   | nothing to roll  |   | still
        +------------------------- failed (issue) ------------------+---> completed <-+   | rolling
                                                                                         v   |
                                                                           failed (rollout)

A requested rotation that waits for a maintenance window (`wait_for_window`) starts as
`scheduled`, with `not_before`; lifecycle asks for it (`requested`) when that moment comes, and
refreshes it daily meanwhile.

A phased rotation (libs/pki/phased.py) runs that cycle once per step: prepare, swap, complete.
When the rollout of prepare or swap is done the record is `waiting` (`step_done_at`); lifecycle
asks for the next step (`NextStep`, back to `requested` with the next step's Secrets) when the
operator says so or when the step's hold (`holds`) has passed. Only the complete step ends in
`completed`. Every observation of the issuer and rollout names the step it is about, and one
about another step than the record's changes nothing (a late redelivery of an earlier step).

`failed` is never final: an issuance failure is retried after an exponential backoff (the
issuer's message comes back then), or at once on a new cause (lifecycle re-sends the command when
a signing Secret changed); a failed rollout keeps being checked, and completes when the
Deployment does. The TCP status phase and the Kubernetes Events are written by rollout as a
projection of these records; no service reads them back as state.

Records are facts like every message (no key material) and evolve by the same rules: new fields
have defaults, a field's type never changes.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime, timedelta

import msgspec

from libs.contracts.messages import Fact, Reason, RotateCommand
from libs.pki.steps import WAITING_STEPS, RotationStep, round_id

ROTATIONS_BUCKET = "CERTLC_ROTATIONS"
# Records expire this long after their last write; an open record is rewritten at least once a
# day (REFRESH) by the service that owns its phase, so only finished ones ever expire.
RECORD_TTL = timedelta(days=7)
REFRESH = timedelta(days=1)


class Phase(enum.StrEnum):
    SCHEDULED = "scheduled"  # requested for a maintenance window: lifecycle asks at not_before
    REQUESTED = "requested"  # lifecycle asked; the issuer has not started
    ISSUING = "issuing"  # the issuer is minting and writing
    WRITTEN = "written"  # Secrets written; rollout has not patched yet
    ROLLING_OUT = "rolling-out"  # the Deployment is rolling out the new material
    WAITING = "waiting"  # a phased rotation's step is done: the next waits (operator, or hold)
    COMPLETED = "completed"
    FAILED = "failed"  # see `stage`: retried by backoff, or re-checked


class Stage(enum.StrEnum):
    """Where a failed record failed."""

    NONE = ""
    ISSUE = "issue"
    ROLLOUT = "rollout"


class RolloutState(enum.StrEnum):
    """A Deployment's rollout as `kubectl rollout status` judges it."""

    NONE = ""  # not looked at yet
    PROGRESSING = "progressing"
    PAUSED = "paused"
    FAILED = "failed"  # Progressing=False, ProgressDeadlineExceeded (or certlc's own timeout)
    COMPLETE = "complete"
    UNCHANGED = "unchanged"  # the pod template already had the material: nothing to roll
    NO_DEPLOYMENT = "no-deployment"


class RotationRecord(Fact, frozen=True, kw_only=True):
    id: str
    namespace: str
    tcp: str
    tcp_uid: str = ""
    secrets: tuple[str, ...]
    reason: Reason
    detail: str = ""
    requester: str = ""
    ca_rotation: bool = False
    # kind -> the resourceVersion the decision was based on (the command's condition).
    resource_versions: dict[str, str] = {}  # noqa: RUF012 - msgspec copies defaults
    # signing Secret kind -> its resourceVersion when the rotation was (last) requested: a
    # change is a new cause, and a failed issuance is tried again at once.
    signers: dict[str, str] = {}  # noqa: RUF012 - msgspec copies defaults
    deadline: datetime | None = None  # the command's: the rollout budget serves by it
    phase: Phase
    stage: Stage = Stage.NONE
    attempts: int = 0  # issuance attempts started
    resends: int = 0  # times lifecycle sent the command again while nobody took it up
    last_error: str = ""
    next_retry: datetime | None = None
    rollout: RolloutState = RolloutState.NONE
    requested_at: datetime
    updated_at: datetime
    written_at: datetime | None = None
    rollout_since: datetime | None = None
    completed_at: datetime | None = None
    not_before: datetime | None = None  # a scheduled rotation: the window opening it waits for
    # A phased rotation: the Secret rotated in phases (kind), the step under way or done, and
    # how long to hold after prepare and after swap before the next step (seconds; HOLD_FOR_
    # OPERATOR: until the operator moves it on).
    phased: str = ""
    step: RotationStep = RotationStep.NONE
    holds: tuple[float, float] = (-1.0, -1.0)
    step_done_at: datetime | None = None
    aborted: bool = False  # backed out by the operator (revert, or complete keeping the old)

    def hold(self) -> float:
        """Seconds the current (done) step holds before the next; HOLD_FOR_OPERATOR: no end."""
        match self.step:
            case RotationStep.PREPARE:
                return self.holds[0]
            case RotationStep.SWAP:
                return self.holds[1]
            case _:
                return HOLD_FOR_OPERATOR

    def moves_on_at(self) -> datetime | None:
        """When a waiting phased rotation moves on by itself; None: when the operator says."""
        hold = self.hold()
        if self.phase is not Phase.WAITING or hold < 0 or self.step_done_at is None:
            return None
        return self.step_done_at + timedelta(seconds=hold)

    @property
    def round_id(self) -> str:
        """The id of the current step's round (the rotation id for an unphased rotation)."""
        return round_id(self.id, self.step)

    @property
    def open(self) -> bool:
        """Not completed. A failed record is open too: it is retried or re-checked."""
        return self.phase is not Phase.COMPLETED

    def command(self, now: datetime) -> RotateCommand:
        """The rotate command this record stands for (re-sent on a new cause)."""
        return RotateCommand(
            id=self.id,
            namespace=self.namespace,
            tcp=self.tcp,
            tcp_uid=self.tcp_uid,
            secrets=self.secrets,
            reason=self.reason,
            detail=self.detail,
            requester=self.requester,
            requested_at=now,
            ca_rotation=self.ca_rotation,
            resource_versions=dict(self.resource_versions),
            deadline=self.deadline,
            phased=self.phased,
            step=self.step,
        )


HOLD_FOR_OPERATOR = -1.0


def record_key(namespace: str, tcp: str, rotation_id: str) -> str:
    """KV key of a record. Namespaces have no dots; TCP names may: the id is the last token."""
    return f"{namespace}.{tcp}.{rotation_id}"


def tcp_prefix(namespace: str, tcp: str) -> str:
    return f"{namespace}.{tcp}."


def key_parts(key: str) -> tuple[str, str, str] | None:
    """(namespace, tcp, id) of a record key, None for a key that is not one."""
    namespace, _, rest = key.partition(".")
    tcp, _, rotation_id = rest.rpartition(".")
    if not namespace or not tcp or not rotation_id:
        return None
    return namespace, tcp, rotation_id


# --- observations ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Requested:
    """Lifecycle asks for the rotation (first time, or again on a new cause)."""

    command: RotateCommand
    signers: dict[str, str]
    at: datetime
    holds: tuple[float, float] = (HOLD_FOR_OPERATOR, HOLD_FOR_OPERATOR)  # a phased rotation's


@dataclass(frozen=True, slots=True)
class NextStep:
    """Lifecycle moves a waiting phased rotation from step `after` on to `command`'s step
    (`abort`: backing out of it)."""

    after: RotationStep
    command: RotateCommand
    at: datetime
    abort: bool = False


@dataclass(frozen=True, slots=True)
class Scheduled:
    """A requested rotation to ask for at `not_before`, when a maintenance window opens."""

    command: RotateCommand
    signers: dict[str, str]
    at: datetime
    not_before: datetime


@dataclass(frozen=True, slots=True)
class IssueStarted:
    """The issuer takes the command (a redelivery after a crash counts as another attempt)."""

    command: RotateCommand
    at: datetime


@dataclass(frozen=True, slots=True)
class IssueFailed:
    error: str
    at: datetime
    next_retry: datetime | None  # None: not retried by time (the TCP is gone)
    step: RotationStep = RotationStep.NONE


@dataclass(frozen=True, slots=True)
class Written:
    """The issuer wrote (or found written) the Secrets; `rolls` is False when none changed."""

    at: datetime
    rolls: bool
    step: RotationStep = RotationStep.NONE


@dataclass(frozen=True, slots=True)
class RolloutSeen:
    """Rollout patched or looked at the Deployment."""

    state: RolloutState
    at: datetime
    message: str = ""
    step: RotationStep = RotationStep.NONE


@dataclass(frozen=True, slots=True)
class Superseded:
    """Lifecycle gives up an open phased rotation: its signer is being replaced at once (the
    Secret was deleted or is invalid), so its next step has nothing to build on."""

    why: str
    at: datetime


Observation = (
    Requested
    | Scheduled
    | NextStep
    | Superseded
    | IssueStarted
    | IssueFailed
    | Written
    | RolloutSeen
)


@dataclass(frozen=True, slots=True)
class Step:
    """The record after an observation; `changed` False means nothing to write."""

    record: RotationRecord | None
    changed: bool


def _new(command: RotateCommand, phase: Phase, at: datetime, **fields: object) -> RotationRecord:
    return RotationRecord(
        id=command.id,
        namespace=command.namespace,
        tcp=command.tcp,
        tcp_uid=command.tcp_uid,
        secrets=command.secrets,
        reason=command.reason,
        detail=command.detail,
        requester=command.requester,
        ca_rotation=command.ca_rotation,
        resource_versions=dict(command.resource_versions),
        deadline=command.deadline,
        phased=command.phased,
        step=command.step,
        phase=phase,
        requested_at=command.requested_at,
        updated_at=at,
        **fields,  # type: ignore[arg-type]
    )


def _same(record: RotationRecord, at: datetime) -> Step:
    """Nothing changed; an old open record is still rewritten, so that it does not expire."""
    if record.open and at - record.updated_at >= REFRESH:
        return Step(msgspec.structs.replace(record, updated_at=at), True)
    return Step(record, False)


def advance(record: RotationRecord | None, obs: Observation) -> Step:
    """The pure transition of a rotation record. Phases never go back except through `failed`;
    an observation that does not apply to the phase leaves the record as it is, and so does
    one about another step of a phased rotation than the record's."""
    if record is not None and _step_of(obs) not in (None, record.step):
        return _same(record, obs.at)
    match obs:
        case Requested():
            return _requested(record, obs)
        case Scheduled():
            return _scheduled(record, obs)
        case NextStep():
            return Step(None, False) if record is None else _next_step(record, obs)
        case Superseded():
            return Step(None, False) if record is None else _superseded(record, obs)
        case IssueStarted():
            return _issue_started(record, obs)
        case IssueFailed():
            return _issue_failed(record, obs)
        case Written():
            return _written(record, obs)
        case RolloutSeen():
            return Step(None, False) if record is None else _rollout_seen(record, obs)


def _step_of(obs: Observation) -> RotationStep | None:
    """The step an observation of the issuer or rollout is about (None: lifecycle's own)."""
    match obs:
        case IssueStarted():
            return obs.command.step
        case IssueFailed() | Written() | RolloutSeen():
            return obs.step
        case _:
            return None


def _done(record: RotationRecord, at: datetime, **fields: object) -> RotationRecord:
    """A round is done: the rotation is completed, or waits for its next step."""
    waits = record.step in WAITING_STEPS
    return msgspec.structs.replace(
        record,
        phase=Phase.WAITING if waits else Phase.COMPLETED,
        completed_at=None if waits else at,
        step_done_at=at if waits else record.step_done_at,
        updated_at=at,
        **fields,
    )


def _next_step(record: RotationRecord, obs: NextStep) -> Step:
    if record.phase is not Phase.WAITING or record.step is not obs.after:
        return _same(record, obs.at)
    command = obs.command
    moved = msgspec.structs.replace(
        record,
        phase=Phase.REQUESTED,
        stage=Stage.NONE,
        step=command.step,
        secrets=command.secrets,
        resource_versions=dict(command.resource_versions),
        attempts=0,
        resends=0,
        last_error="",
        next_retry=None,
        rollout=RolloutState.NONE,
        written_at=None,
        rollout_since=None,
        step_done_at=None,
        aborted=record.aborted or obs.abort,
        updated_at=obs.at,
    )
    return Step(moved, True)


def _superseded(record: RotationRecord, obs: Superseded) -> Step:
    if not record.open or not record.phased:
        return _same(record, obs.at)
    given_up = msgspec.structs.replace(
        record,
        phase=Phase.COMPLETED,
        stage=Stage.NONE,
        aborted=True,
        last_error=obs.why[:1024],
        next_retry=None,
        completed_at=obs.at,
        updated_at=obs.at,
    )
    return Step(given_up, True)


def _failed_issuing(record: RotationRecord) -> bool:
    return record.phase is Phase.FAILED and record.stage is Stage.ISSUE


def _scheduled(record: RotationRecord | None, obs: Scheduled) -> Step:
    if record is None:
        new = _new(obs.command, Phase.SCHEDULED, obs.at, signers=obs.signers)
        return Step(msgspec.structs.replace(new, not_before=obs.not_before), True)
    if record.phase is Phase.SCHEDULED and record.not_before != obs.not_before:  # moved on
        return Step(
            msgspec.structs.replace(record, not_before=obs.not_before, updated_at=obs.at), True
        )
    return _same(record, obs.at)


def _requested(record: RotationRecord | None, obs: Requested) -> Step:
    if record is None:
        new = _new(obs.command, Phase.REQUESTED, obs.at, signers=obs.signers, holds=obs.holds)
        return Step(new, True)
    if record.phase is Phase.SCHEDULED:  # its window opened: asked now
        return Step(msgspec.structs.replace(record, phase=Phase.REQUESTED, updated_at=obs.at), True)
    if _failed_issuing(record) and record.signers != obs.signers:  # a new cause: ask again now
        again = msgspec.structs.replace(
            record,
            phase=Phase.REQUESTED,
            stage=Stage.NONE,
            signers=obs.signers,
            next_retry=None,
            updated_at=obs.at,
        )
        return Step(again, True)
    if record.phase is Phase.REQUESTED and obs.at > record.updated_at:  # sent again: note when
        again = msgspec.structs.replace(record, resends=record.resends + 1, updated_at=obs.at)
        return Step(again, True)
    return _same(record, obs.at)


def _issue_started(record: RotationRecord | None, obs: IssueStarted) -> Step:
    if record is None:  # a command without a record (sent by hand, or the record expired)
        return Step(_new(obs.command, Phase.ISSUING, obs.at, attempts=1), True)
    if record.phase in (Phase.SCHEDULED, Phase.REQUESTED, Phase.ISSUING) or _failed_issuing(record):
        started = msgspec.structs.replace(
            record,
            phase=Phase.ISSUING,
            stage=Stage.NONE,
            attempts=record.attempts + 1,
            next_retry=None,
            updated_at=obs.at,
        )
        return Step(started, True)
    return _same(record, obs.at)


def _issue_failed(record: RotationRecord | None, obs: IssueFailed) -> Step:
    if record is None:
        return Step(None, False)
    if record.phase is not Phase.ISSUING:
        return _same(record, obs.at)
    failed = msgspec.structs.replace(
        record,
        phase=Phase.FAILED,
        stage=Stage.ISSUE,
        last_error=obs.error[:1024],
        next_retry=obs.next_retry,
        updated_at=obs.at,
    )
    return Step(failed, True)


def _written(record: RotationRecord | None, obs: Written) -> Step:
    if record is None:
        return Step(None, False)
    if record.phase not in (Phase.SCHEDULED, Phase.REQUESTED, Phase.ISSUING) and not (
        _failed_issuing(record)
    ):
        return _same(record, obs.at)
    if not obs.rolls:  # nothing changed: nothing to roll out
        done = _done(
            record, obs.at, stage=Stage.NONE, last_error="", next_retry=None, written_at=obs.at
        )
        return Step(done, True)
    written = msgspec.structs.replace(
        record,
        phase=Phase.WRITTEN,
        stage=Stage.NONE,
        last_error="",
        next_retry=None,
        written_at=obs.at,
        completed_at=None,
        updated_at=obs.at,
    )
    return Step(written, True)


def _rollout_seen(record: RotationRecord, obs: RolloutSeen) -> Step:
    replace = msgspec.structs.replace
    rolling = record.phase in (Phase.WRITTEN, Phase.ROLLING_OUT) or (
        record.phase is Phase.FAILED and record.stage is Stage.ROLLOUT
    )
    if not rolling:
        return _same(record, obs.at)
    if obs.state in (RolloutState.COMPLETE, RolloutState.UNCHANGED, RolloutState.NO_DEPLOYMENT):
        done = _done(record, obs.at, stage=Stage.NONE, rollout=obs.state, last_error="")
        return Step(done, True)
    since = record.rollout_since or obs.at
    if obs.state is RolloutState.FAILED:
        if record.phase is Phase.FAILED and record.last_error == obs.message:
            return _same(record, obs.at)
        failed = replace(
            record,
            phase=Phase.FAILED,
            stage=Stage.ROLLOUT,
            rollout=obs.state,
            last_error=obs.message[:1024],
            rollout_since=since,
            updated_at=obs.at,
        )
        return Step(failed, True)
    if record.phase is Phase.ROLLING_OUT and record.rollout is obs.state:
        return _same(record, obs.at)
    moving = replace(
        record,
        phase=Phase.ROLLING_OUT,
        stage=Stage.NONE,
        rollout=obs.state,
        last_error="",
        rollout_since=since,
        updated_at=obs.at,
    )
    return Step(moving, True)


__all__ = [
    "HOLD_FOR_OPERATOR",
    "RECORD_TTL",
    "REFRESH",
    "ROTATIONS_BUCKET",
    "IssueFailed",
    "IssueStarted",
    "NextStep",
    "Observation",
    "Phase",
    "Requested",
    "RolloutSeen",
    "RolloutState",
    "RotationRecord",
    "Stage",
    "Step",
    "Superseded",
    "Written",
    "advance",
    "key_parts",
    "record_key",
    "tcp_prefix",
]
