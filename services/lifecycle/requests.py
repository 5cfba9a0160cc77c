"""Answers a rotate request from external tooling. Pure: request + what is known -> verdict.

400 malformed (decoding happens at the edge; here: a target that names nothing sensible),
404 unknown TCP or Secret, 409 a CA rotation of the TCP is open (its record not completed: a
rotation started meanwhile would be signed by a CA about to be replaced, or race the swap), 423
the TCP or Secret is paused.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from libs.contracts.api import RotateRequest, ServiceErrorCode, Target
from libs.contracts.targets import target_kinds
from libs.pki.profiles import SecretKind
from services.lifecycle.policy import TcpState, ca_rotation_open, evidence_of, managed_kinds


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


def resolve(request: RotateRequest, state: TcpState | None) -> Accepted | Rejected:
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
    present = managed_kinds(state.tcp)
    kinds = _targets(request, present)
    if isinstance(kinds, Rejected):
        return kinds
    paused = [k for k in kinds if (s := state.secrets.get(k)) is not None and s.paused]
    if paused:
        names = ", ".join(f"{request.tcp}-{k.value}" for k in paused)
        return Rejected(ServiceErrorCode.LOCKED, f"Secret {names} is paused")
    ca_rotation = SecretKind.CA in kinds
    evidence = {k.value: evidence_of(k, state) for k in kinds}
    seed = request.request_id or "|".join(f"{k}={v}" for k, v in sorted(evidence.items()))
    digest = hashlib.sha256(f"api|{where}|{request.requester}|{seed}".encode()).hexdigest()[:24]
    return Accepted(digest, kinds, ca_rotation, evidence)


__all__ = ["Accepted", "Rejected", "resolve"]
