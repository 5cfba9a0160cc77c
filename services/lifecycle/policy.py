"""Decides, for one TCP, which Secrets must be re-issued and why. Pure: values in, values out.

The decision for one Secret is a chain of small checks, tried in order; the first that fires
gives the reason. The order is the policy:

    missing            the Secret of an existing TCP is gone: re-create it
    rotate-requested   annotation certs.kamaji.clastix.io/rotate is set to ""
    invalid            the watcher found a problem (key mismatch, wrong signer, SAN missing ...)
    not-yet-valid      NotBefore lies in the future
    expiring           NotAfter < now + deadline (never for a CA: CAs are rotated by hand)

Around the chain: a paused TCP or Secret is left alone; Secrets signed by the TCP CA wait while
a CA rotation is in progress; a Secret re-issued too often in a short window trips the loop
guard (Kamaji issue #679) instead of being re-issued again.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from libs.contracts.messages import Reason, SecretObserved, TcpObserved
from libs.pki.profiles import (
    CA_SIGNED_KINDS,
    KONNECTIVITY_KINDS,
    Category,
    SecretKind,
    dependents,
    profile,
)

CA_ROTATING_PHASE = "CertificateAuthorityRotating"


@dataclass(frozen=True, slots=True)
class PolicySettings:
    deadline: timedelta = timedelta(hours=24)
    ca_warning: timedelta = timedelta(days=365)
    loop_window: timedelta = timedelta(minutes=10)
    loop_limit: int = 3
    inflight_ttl: timedelta = timedelta(seconds=60)


@dataclass(frozen=True, slots=True)
class Issued:
    """A rotation this lifecycle already asked for: kind, the evidence it acted on, when."""

    kind: SecretKind
    evidence: str
    at: datetime


@dataclass(frozen=True, slots=True)
class TcpState:
    """Everything known about one TCP when deciding."""

    tcp: TcpObserved
    secrets: Mapping[SecretKind, SecretObserved]
    deleted_versions: Mapping[SecretKind, str] = field(default_factory=dict)
    history: Sequence[Issued] = ()


@dataclass(frozen=True, slots=True)
class Finding:
    kind: SecretKind
    reason: Reason
    detail: str


@dataclass(frozen=True, slots=True)
class Rotation:
    """One rotate command to publish."""

    id: str
    reason: Reason
    kinds: tuple[SecretKind, ...]
    detail: str
    ca_rotation: bool
    evidence: dict[str, str]


@dataclass(frozen=True, slots=True)
class LoopTrip:
    kind: SecretKind
    issued: int
    message: str


@dataclass(frozen=True, slots=True)
class CaWarning:
    kind: SecretKind
    not_after: datetime


@dataclass(frozen=True, slots=True)
class Decision:
    rotations: tuple[Rotation, ...] = ()
    loop_trips: tuple[LoopTrip, ...] = ()
    ca_warnings: tuple[CaWarning, ...] = ()
    next_check: datetime | None = None


# --- the chain for one Secret -----------------------------------------------------------

Check = Callable[
    [SecretKind, SecretObserved | None, TcpState, datetime, PolicySettings], Finding | None
]


def check_missing(
    kind: SecretKind, s: SecretObserved | None, st: TcpState, now: datetime, cfg: PolicySettings
) -> Finding | None:
    if s is None:
        return Finding(kind, Reason.MISSING, f"Secret {st.tcp.name}-{kind.value} does not exist")
    return None


def check_requested(
    kind: SecretKind, s: SecretObserved | None, st: TcpState, now: datetime, cfg: PolicySettings
) -> Finding | None:
    if s is not None and s.rotate_annotation == "":
        return Finding(kind, Reason.REQUESTED, "annotation certs.kamaji.clastix.io/rotate set")
    return None


def check_problems(
    kind: SecretKind, s: SecretObserved | None, st: TcpState, now: datetime, cfg: PolicySettings
) -> Finding | None:
    if s is not None and s.problems:
        return Finding(kind, Reason.INVALID, "; ".join(p.message for p in s.problems))
    return None


def check_not_yet_valid(
    kind: SecretKind, s: SecretObserved | None, st: TcpState, now: datetime, cfg: PolicySettings
) -> Finding | None:
    if s is not None and s.cert is not None and s.cert.not_before > now:
        return Finding(
            kind, Reason.INVALID, f"certificate not valid before {s.cert.not_before.isoformat()}"
        )
    return None


def check_expiring(
    kind: SecretKind, s: SecretObserved | None, st: TcpState, now: datetime, cfg: PolicySettings
) -> Finding | None:
    if s is None or s.cert is None or profile(kind).category is Category.CA:
        return None
    if s.cert.not_after < now + cfg.deadline:
        return Finding(kind, Reason.EXPIRING, f"expires {s.cert.not_after.isoformat()}")
    return None


CHAIN: tuple[Check, ...] = (
    check_missing,  # a managed Secret of an existing TCP is gone
    check_requested,  # an operator or tool asked for it
    check_problems,  # key mismatch, wrong signer, SAN missing, unparseable ...
    check_not_yet_valid,  # NotBefore in the future
    check_expiring,  # NotAfter within the deadline (leaves and kubeconfigs only)
)


def evaluate(
    kind: SecretKind, state: TcpState, now: datetime, cfg: PolicySettings
) -> Finding | None:
    """The first finding of the chain for one Secret, or None when it is fine."""
    observed = state.secrets.get(kind)
    for check in CHAIN:
        finding = check(kind, observed, state, now, cfg)
        if finding is not None:
            return finding
    return None


# --- the whole TCP ---------------------------------------------------------------------


def managed_kinds(tcp: TcpObserved) -> tuple[SecretKind, ...]:
    """The Secrets a TCP has: all thirteen, the konnectivity ones only when enabled."""
    return tuple(k for k in SecretKind if tcp.konnectivity or k not in KONNECTIVITY_KINDS)


def evidence_of(kind: SecretKind, state: TcpState) -> str:
    """What a decision about `kind` is based on: the Secret's resourceVersion, or for a missing
    Secret the resourceVersion of its deletion (or the TCP uid when it never existed)."""
    observed = state.secrets.get(kind)
    if observed is not None:
        return observed.resource_version
    return "deleted@" + state.deleted_versions.get(kind, "tcp:" + state.tcp.uid)


def rotation_id(tcp: TcpObserved, reason: Reason, evidence: Mapping[str, str]) -> str:
    """Deterministic: two lifecycle replicas deciding the same thing publish the same id, and
    JetStream's duplicate window keeps one."""
    text = "|".join([tcp.namespace, tcp.name, tcp.uid, reason.value, *sorted(
        f"{k}={v}" for k, v in evidence.items()
    )])  # fmt: skip
    return hashlib.sha256(text.encode()).hexdigest()[:24]


def _recently_issued(kind: SecretKind, state: TcpState, now: datetime, cfg: PolicySettings) -> int:
    return sum(1 for h in state.history if h.kind is kind and now - h.at < cfg.loop_window)


def _in_flight(
    kind: SecretKind, evidence: str, state: TcpState, now: datetime, cfg: PolicySettings
) -> bool:
    return any(
        h.kind is kind and h.evidence == evidence and now - h.at < cfg.inflight_ttl
        for h in state.history
    )


def _next_check(
    kinds: Sequence[SecretKind], state: TcpState, now: datetime, cfg: PolicySettings
) -> datetime | None:
    """The earliest future moment at which a check's answer changes: a NotBefore passing, a
    leaf entering its renewal deadline, a CA entering its warning period."""
    times: list[datetime] = []
    for kind in kinds:
        s = state.secrets.get(kind)
        if s is None or s.cert is None:
            continue
        if s.cert.not_before > now:
            times.append(s.cert.not_before)
        margin = cfg.ca_warning if profile(kind).category is Category.CA else cfg.deadline
        if s.cert.not_after - margin > now:
            times.append(s.cert.not_after - margin)
    return min(times) if times else None


def decide(state: TcpState, now: datetime, cfg: PolicySettings) -> Decision:
    """Rotations to publish for one TCP, loop-guard trips, CA warnings, and when to look again."""
    tcp = state.tcp
    if tcp.paused or tcp.deleting:
        return Decision()
    kinds = managed_kinds(tcp)
    ca_rotating = tcp.phase == CA_ROTATING_PHASE
    findings: list[Finding] = []
    for kind in kinds:
        observed = state.secrets.get(kind)
        if observed is not None and observed.paused:
            continue
        if ca_rotating and (kind is SecretKind.CA or kind in CA_SIGNED_KINDS):
            continue
        finding = evaluate(kind, state, now, cfg)
        if finding is not None:
            findings.append(finding)

    # Group findings into commands: one per reason, the TCP CA's rotation carrying every
    # Secret it signs (and whatever else shares its reason, so a new TCP is one command and
    # the control plane rolls out once). CA kinds first, so their dependents join them.
    covered: set[SecretKind] = set()
    ca_reason: Reason | None = None
    by_reason: dict[Reason, list[Finding]] = {}
    for finding in sorted(findings, key=lambda f: profile(f.kind).category is not Category.CA):
        if finding.kind in covered:
            continue
        group = (finding.kind, *dependents(finding.kind, kinds))
        covered.update(group)
        if finding.kind is SecretKind.CA:
            ca_reason = finding.reason
        by_reason.setdefault(finding.reason, []).extend(
            finding
            if kind is finding.kind
            else Finding(kind, finding.reason, f"signer {finding.kind.value} re-issued")
            for kind in group
        )
    rotations: list[Rotation] = []
    trips: list[LoopTrip] = []
    for reason, group_findings in sorted(by_reason.items(), key=lambda kv: kv[0] != ca_reason):
        group_kinds = tuple(dict.fromkeys(f.kind for f in group_findings))
        detail = "; ".join(f"{f.kind.value}: {f.detail}" for f in group_findings)
        rotations.extend(
            _rotation(
                state,
                reason=reason,
                kinds=group_kinds,
                detail=detail,
                ca_rotation=reason is ca_reason,
                now=now,
                cfg=cfg,
                trips=trips,
            )
        )

    warnings = tuple(
        CaWarning(kind, s.cert.not_after)
        for kind in (SecretKind.CA, SecretKind.FRONT_PROXY_CA)
        if (s := state.secrets.get(kind)) is not None
        and s.cert is not None
        and s.cert.not_after - now < cfg.ca_warning
    )
    return Decision(tuple(rotations), tuple(trips), warnings, _next_check(kinds, state, now, cfg))


def _rotation(
    state: TcpState,
    *,
    reason: Reason,
    kinds: tuple[SecretKind, ...],
    detail: str,
    ca_rotation: bool,
    now: datetime,
    cfg: PolicySettings,
    trips: list[LoopTrip],
) -> list[Rotation]:
    wanted: list[SecretKind] = []
    evidence: dict[str, str] = {}
    for kind in kinds:
        ev = evidence_of(kind, state)
        if _in_flight(kind, ev, state, now, cfg):
            continue
        count = _recently_issued(kind, state, now, cfg)
        if count >= cfg.loop_limit and reason is not Reason.MISSING:
            trips.append(LoopTrip(kind, count, (
                f"{kind.value} was re-issued {count} times in {cfg.loop_window}; not re-issuing "
                f"again ({reason.value}: {detail}). Fix the cause, then annotate the Secret."
            )))  # fmt: skip
            continue
        wanted.append(kind)
        evidence[kind.value] = ev
    if not wanted or (ca_rotation and SecretKind.CA not in wanted):
        return []
    return [
        Rotation(
            rotation_id(state.tcp, reason, evidence),
            reason,
            tuple(wanted),
            detail,
            ca_rotation,
            evidence,
        )
    ]
