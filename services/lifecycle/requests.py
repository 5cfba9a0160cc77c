"""Answers a rotate request from external tooling. Pure: request + what is known -> verdict.

400 malformed (decoding happens at the edge; here: a target that names nothing sensible),
404 unknown TCP or Secret, 409 a CA rotation of the TCP is open (its record not completed: a
rotation started meanwhile would be signed by a CA about to be replaced, or race the swap), 423
the TCP or Secret is paused.

A phased rotation (`phased`, or the target `sa`) starts with its prepare step; `complete` moves
the open one of that signer on to its next step once the step before is rolled out (404 when
none is open, 409 while a step is under way). A request for a Secret whose signer is being
rotated in phases is a 409 too: its immediate rotation would undo the phases.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import timedelta

from libs.contracts.api import RotateRequest, ServiceErrorCode, Target
from libs.contracts.records import HOLD_FOR_OPERATOR, Phase, RotationRecord
from libs.contracts.targets import target_kinds
from libs.pki.profiles import SecretKind
from libs.pki.steps import DEFAULT_SA_OVERLAP, PHASED_KINDS, RotationStep, step_kinds
from services.lifecycle.policy import (
    TcpState,
    ca_rotation_open,
    evidence_of,
    managed_kinds,
    phased_open,
)


@dataclass(frozen=True, slots=True)
class Rejected:
    code: ServiceErrorCode
    message: str


@dataclass(frozen=True, slots=True)
class Accepted:
    id: str
    kinds: tuple[SecretKind, ...]
    ca_rotation: bool
    evidence: dict[str, str]
    step: RotationStep = RotationStep.NONE  # a phased rotation's step this request starts
    phased: SecretKind | None = None  # the Secret rotated in phases
    holds: tuple[float, float] = (HOLD_FOR_OPERATOR, HOLD_FOR_OPERATOR)
    moves: RotationRecord | None = None  # `complete`: the waiting rotation to move on


def _secret_kind(request: RotateRequest) -> SecretKind | Rejected:
    name = request.secret.strip()
    if not name:
        return Rejected(ServiceErrorCode.BAD_REQUEST, "target 'secret' needs the field 'secret'")
    suffix = name.removeprefix(f"{request.tcp}-")
    try:
        return SecretKind(suffix)
    except ValueError:
        return Rejected(
            ServiceErrorCode.NOT_FOUND,
            f"TenantControlPlane {request.namespace}/{request.tcp} has no Secret {name!r}",
        )


def _targets(
    request: RotateRequest, present: tuple[SecretKind, ...]
) -> tuple[SecretKind, ...] | Rejected:
    kind: SecretKind | None = None
    if request.target is Target.SECRET:
        found = _secret_kind(request)
        if isinstance(found, Rejected):
            return found
        kind = found
    kinds = target_kinds(request.target, kind, present)
    if kind is not None and not kinds:
        return Rejected(
            ServiceErrorCode.NOT_FOUND,
            f"Secret {request.tcp}-{kind.value} is not managed for this TenantControlPlane",
        )
    return kinds


def _paused(
    request: RotateRequest, kinds: tuple[SecretKind, ...], state: TcpState
) -> Rejected | None:
    paused = [k for k in kinds if (s := state.secrets.get(k)) is not None and s.paused]
    if not paused:
        return None
    names = ", ".join(f"{request.tcp}-{k.value}" for k in paused)
    return Rejected(ServiceErrorCode.LOCKED, f"Secret {names} is paused")


def _id(request: RotateRequest, evidence: dict[str, str], *extra: str) -> str:
    where = f"{request.namespace}/{request.tcp}"
    seed = request.request_id or "|".join(f"{k}={v}" for k, v in sorted(evidence.items()))
    text = "|".join(("api", where, request.requester, seed, *extra))
    return hashlib.sha256(text.encode()).hexdigest()[:24]


def _phased_kind(request: RotateRequest) -> SecretKind | Rejected:
    if request.target is Target.CA:
        return SecretKind.CA
    if request.target is Target.SA:
        return SecretKind.SA
    if request.target is Target.SECRET:
        found = _secret_kind(request)
        if isinstance(found, Rejected) or found in PHASED_KINDS:
            return found
    names = ", ".join(k.value for k in PHASED_KINDS)
    return Rejected(
        ServiceErrorCode.BAD_REQUEST,
        f"only the target 'ca', the target 'sa' and the Secrets {names} rotate in phases",
    )


def holds(kind: SecretKind, overlap_seconds: float, sa_overlap: timedelta) -> tuple[float, float]:
    """How long a phased rotation of `kind` waits after prepare and after swap: the overlap
    asked for after each; without one a CA waits for the operator, and the SA key goes on to
    swap once prepare is rolled out and completes after `sa_overlap`."""
    if kind is SecretKind.SA:
        return (0.0, overlap_seconds if overlap_seconds > 0 else sa_overlap.total_seconds())
    if overlap_seconds > 0:
        return (overlap_seconds, overlap_seconds)
    return (HOLD_FOR_OPERATOR, HOLD_FOR_OPERATOR)


def _move_on(
    request: RotateRequest, state: TcpState, kind: SecretKind, ongoing: RotationRecord | None
) -> Accepted | Rejected:
    """`complete` (or `abort`): the open phased rotation of `kind` on to its next step (or the
    step that backs out of it)."""
    name = f"{request.tcp}-{kind.value}"
    present = managed_kinds(state.tcp)
    if ongoing is None:
        return Rejected(ServiceErrorCode.NOT_FOUND, f"no phased rotation of {name} is open")
    following = ongoing.step.abort if request.abort else ongoing.step.next
    if ongoing.phase is not Phase.WAITING or following is None:
        verb = "can be aborted" if request.abort else "moves on"
        return Rejected(
            ServiceErrorCode.CONFLICT,
            f"phased rotation {ongoing.id} of {name} is {ongoing.phase} at step "
            f"{ongoing.step.value}; it {verb} once that step is rolled out",
        )
    kinds = step_kinds(kind, following, present)
    paused = _paused(request, kinds, state)
    if paused is not None:
        return paused
    evidence = {k.value: evidence_of(k, state) for k in kinds}
    return Accepted(
        ongoing.id, kinds, False, evidence, following, kind, ongoing.holds, moves=ongoing
    )


def _resolve_phased(
    request: RotateRequest, state: TcpState, sa_overlap: timedelta
) -> Accepted | Rejected:
    where = f"{request.namespace}/{request.tcp}"
    if request.overlap_seconds < 0:
        return Rejected(ServiceErrorCode.BAD_REQUEST, "overlap_seconds must not be negative")
    if request.complete and request.abort:
        return Rejected(ServiceErrorCode.BAD_REQUEST, "complete and abort contradict each other")
    if request.wait_for_window:  # each step is a rollout: the operator times them
        return Rejected(
            ServiceErrorCode.BAD_REQUEST,
            "wait_for_window applies to immediate rotations; a phased rotation's steps start "
            "when asked (complete) or after its overlap",
        )
    kind = _phased_kind(request)
    if isinstance(kind, Rejected):
        return kind
    present = managed_kinds(state.tcp)
    name = f"{request.tcp}-{kind.value}"
    if kind not in present:
        return Rejected(ServiceErrorCode.NOT_FOUND, f"Secret {name} is not managed for {where}")
    ongoing = phased_open(state, kind)
    if request.complete or request.abort:
        return _move_on(request, state, kind, ongoing)
    if ongoing is not None:
        return Rejected(
            ServiceErrorCode.CONFLICT,
            f"phased rotation {ongoing.id} of {name} is open (step {ongoing.step.value}, "
            f"{ongoing.phase}); move it on with complete",
        )
    kinds = step_kinds(kind, RotationStep.PREPARE, present)
    paused = _paused(request, kinds, state)
    if paused is not None:
        return paused
    evidence = {k.value: evidence_of(k, state) for k in kinds}
    return Accepted(
        _id(request, evidence, "phased"),
        kinds,
        False,
        evidence,
        RotationStep.PREPARE,
        kind,
        holds(kind, request.overlap_seconds, sa_overlap),
    )


def resolve(
    request: RotateRequest, state: TcpState | None, sa_overlap: timedelta = DEFAULT_SA_OVERLAP
) -> Accepted | Rejected:
    """Accept a rotate request (what to re-issue) or reject it with a code and a reason."""
    where = f"{request.namespace}/{request.tcp}"
    if state is None:
        return Rejected(ServiceErrorCode.NOT_FOUND, f"unknown TenantControlPlane {where}")
    if state.tcp.paused:
        return Rejected(ServiceErrorCode.LOCKED, f"TenantControlPlane {where} is paused")
    ongoing = ca_rotation_open(state, scheduled=True)
    if ongoing is not None:
        return Rejected(
            ServiceErrorCode.CONFLICT,
            f"CA rotation {ongoing.id} of {where} is {ongoing.phase}; try again when it completes",
        )
    if request.phased or request.complete or request.abort or request.target is Target.SA:
        return _resolve_phased(request, state, sa_overlap)
    present = managed_kinds(state.tcp)
    kinds = _targets(request, present)
    if isinstance(kinds, Rejected):
        return kinds
    for kind in kinds:
        phased = phased_open(state, kind)
        if phased is not None:
            return Rejected(
                ServiceErrorCode.CONFLICT,
                f"{request.tcp}-{kind.value} is being rotated in phases ({phased.id}, step "
                f"{phased.step.value}); move that rotation on with complete",
            )
    paused = _paused(request, kinds, state)
    if paused is not None:
        return paused
    ca_rotation = SecretKind.CA in kinds
    evidence = {k.value: evidence_of(k, state) for k in kinds}
    return Accepted(_id(request, evidence), kinds, ca_rotation, evidence)


__all__ = ["Accepted", "Rejected", "resolve"]
