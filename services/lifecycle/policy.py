"""Decides, for one TCP, which Secrets must be re-issued and why. Pure: values in, values out.

The decision for one Secret is a chain of small checks, tried in order; the first that fires
gives the reason. The order is the policy:

    missing            the Secret of an existing TCP is gone: re-create it
    rotate-requested   annotation certs.kamaji.clastix.io/rotate is set to ""
    invalid            the watcher found a problem (key mismatch, wrong signer, SAN missing ...)
    not-yet-valid      NotBefore lies in the future
    expiring           now >= NotAfter - deadline, earlier by up to `jitter` of the deadline
                       by an amount fixed per certificate (never for a CA: rotated by hand;
                       never for a datastore-certificate copied from a MySQL, PostgreSQL or
                       NATS DataStore: its own PKI renews it, and a copy near its end is
                       reported instead, `external_warning`)

Around the chain: a paused TCP or Secret is left alone; while a CA rotation is open (its
rotation record not completed) the Secrets it re-issues wait for it, except a missing one; a
Secret that an open rotation record already covers, on the same evidence, is not asked for
again; a Secret re-issued too often in a short window trips the loop guard (Kamaji issue #679)
instead of being re-issued again. The rotation records are the memory of what was asked: they
are durable, so a restarted lifecycle knows what is in flight.

Besides new rotations, a decision re-sends what the records say is stuck: a command nobody took
up within `resend_after` (its publish was lost), and a failed issuance whose signing Secret
changed since it failed (a new cause: the operator repaired the CA, so try now, not after the
backoff).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import msgspec

from libs.contracts.messages import CertFacts, Reason, RotateCommand, SecretObserved, TcpObserved
from libs.contracts.records import REFRESH, Phase, RotationRecord, Stage
from libs.contracts.windows import Slot, Window, next_open, open_at, slot
from libs.pki.overrides import FleetProfile, Rejected, tcp_profile
from libs.pki.profiles import (
    CA_SIGNED_KINDS,
    LEAF_VALIDITY,
    Category,
    SecretKind,
    Signer,
    dependents,
    kinds_for,
    profile,
)
from libs.pki.steps import RotationStep, step_kinds
from libs.pki.tcp import COPYING_DRIVERS


@dataclass(frozen=True, slots=True)
class PolicySettings:
    deadline: timedelta = timedelta(hours=24)
    ca_warning: timedelta = timedelta(days=365)
    loop_window: timedelta = timedelta(minutes=10)
    loop_limit: int = 3
    resend_after: timedelta = timedelta(seconds=30)
    jitter: float = 0.25  # renewals spread over this share of the deadline, earlier
    leaf_validity: timedelta = LEAF_VALIDITY  # the fleet's, which profile checks compare with
    windows: tuple[Window, ...] = ()  # the fleet's maintenance windows; none: whenever due
    window_margin: timedelta = timedelta(hours=2)  # no window fits: renew at NotAfter - this

    # The fleet profile a TCP's profile annotations override (libs/pki/overrides.py): built
    # once, since every certificate's deadline is looked up through it.
    fleet: FleetProfile = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        profile = FleetProfile(
            leaf_validity=self.leaf_validity,
            renew_before=self.deadline,
            jitter=self.jitter,
            windows=self.windows,
        )
        object.__setattr__(self, "fleet", profile)


@dataclass(frozen=True, slots=True)
class TcpState:
    """Everything known about one TCP when deciding: the watcher's facts and the rotation
    records of this TCP (this uid)."""

    tcp: TcpObserved
    secrets: Mapping[SecretKind, SecretObserved]
    deleted_versions: Mapping[SecretKind, str] = field(default_factory=dict)
    rotations: Sequence[RotationRecord] = ()
    datastore_version: str = ""  # resourceVersion of the TCP's DataStore, "" when unknown
    datastore_observed_at: datetime | None = None  # when the watcher last saw it
    # The client certificate the DataStore references, when the TCP's datastore-certificate is
    # a copy of it (MySQL, PostgreSQL, NATS): its own PKI renews it, certlc copies and reports.
    datastore_client: CertFacts | None = None


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
    signers: dict[str, str] = field(default_factory=dict)
    # the first step of a phased rotation of `phased`, and its holds (RotationRecord.holds)
    step: RotationStep = RotationStep.NONE
    phased: str = ""
    holds: tuple[float, float] = (-1.0, -1.0)


@dataclass(frozen=True, slots=True)
class StepDue:
    """A waiting phased rotation to move on (its hold has passed), or else to write again so
    that it does not expire while it waits."""

    record: RotationRecord
    move_on: bool


@dataclass(frozen=True, slots=True)
class Resend:
    """A recorded rotation to send again, and why; `token` makes the message id new when the
    cause is new (a repeated publish of a lost one keeps the id, for de-duplication)."""

    record: RotationRecord
    signers: dict[str, str]
    why: str
    token: str


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
class ExternalWarning:
    """The copied datastore client certificate comes near its end: only its own PKI can renew
    it, so certlc says so (audit event, Warning Event) instead of re-issuing."""

    datastore: str
    not_after: datetime
    message: str


@dataclass(frozen=True, slots=True)
class OutsideWindow:
    """A due renewal for which no maintenance window opened before NotAfter - window_margin:
    renewed at that latest safe moment instead, and reported (audit event, Warning Event)."""

    kinds: tuple[SecretKind, ...]
    not_after: datetime  # the earliest of their NotAfters
    message: str


Reschedule = tuple[RotationRecord, datetime]  # a scheduled rotation and its (new) not_before


@dataclass(frozen=True, slots=True)
class Decision:
    rotations: tuple[Rotation, ...] = ()
    loop_trips: tuple[LoopTrip, ...] = ()
    ca_warnings: tuple[CaWarning, ...] = ()
    next_check: datetime | None = None
    resends: tuple[Resend, ...] = ()
    external_warning: ExternalWarning | None = None
    rejected: tuple[Rejected, ...] = ()  # profile annotations ignored, to report
    outside_window: tuple[OutsideWindow, ...] = ()  # renewals that could not wait, to report
    reschedules: tuple[Reschedule, ...] = ()  # scheduled rotations' records to write again
    steps: tuple[StepDue, ...] = ()  # waiting phased rotations to move on or keep
    superseded: tuple[RotationRecord, ...] = ()  # phased rotations whose signer is replaced


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


def spread(s: SecretObserved) -> float:
    """A number in [0, 1) that only this certificate of this Secret has: the share of the jitter
    span by which its renewal comes early. Derived from its identity (namespace, name, serial),
    so every lifecycle replica, and a restarted one, computes the same moment, while
    certificates issued together (the same NotAfter) fall due apart."""
    serial = s.cert.serial if s.cert is not None else ""
    digest = hashlib.sha256(f"{s.namespace}/{s.name}/{serial}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def effective_deadline(tcp: TcpObserved, s: SecretObserved, cfg: PolicySettings) -> timedelta:
    """The renew-before of this certificate: its TCP's profile (annotations over the fleet's
    deadline), a percentage being of the certificate's own lifetime."""
    if s.cert is None:
        return cfg.deadline
    return tcp_profile(tcp.annotations, cfg.fleet)[0].deadline(s.cert.not_after - s.cert.not_before)


def renew_at(
    kind: SecretKind, s: SecretObserved, cfg: PolicySettings, deadline: timedelta | None = None
) -> datetime | None:
    """When a certificate falls due: `NotAfter - deadline` (`cfg.deadline` unless the TCP's
    is passed), earlier by up to `jitter` of the deadline (a CA never: it is rotated by hand);
    None without a certificate."""
    if s.cert is None or profile(kind).category is Category.CA:
        return None
    return s.cert.not_after - (deadline or cfg.deadline) * (1 + cfg.jitter * spread(s))


def tcp_windows(tcp: TcpObserved, cfg: PolicySettings) -> tuple[Window, ...]:
    """The maintenance windows of a TCP: its annotation's, else the fleet's."""
    return tcp_profile(tcp.annotations, cfg.fleet)[0].windows


def renew_slot(
    kind: SecretKind,
    s: SecretObserved,
    cfg: PolicySettings,
    deadline: timedelta | None = None,
    windows: tuple[Window, ...] = (),
) -> Slot | None:
    """When a due certificate is renewed: its `renew_at`, moved on to the first moment a
    maintenance window is open, unless that comes later than NotAfter - `window_margin`; then
    at that latest safe moment, outside a window (`in_window` False: reported)."""
    due = renew_at(kind, s, cfg, deadline)
    if due is None or s.cert is None:
        return None
    return slot(windows, due, s.cert.not_after - cfg.window_margin)


def scheduled(
    kind: SecretKind,
    s: SecretObserved,
    cfg: PolicySettings,
    deadline: timedelta | None = None,
    windows: tuple[Window, ...] = (),
) -> datetime | None:
    """The moment that matters for a certificate: a leaf's renewal (`renew_slot`, windows
    applied), a CA's entry into its warning period. The renewal-time gauge shows it."""
    if s.cert is None:
        return None
    at = renew_slot(kind, s, cfg, deadline, windows)
    return at.at if at is not None else s.cert.not_after - cfg.ca_warning


def renewed_here(kind: SecretKind, st: TcpState) -> bool:
    """Whether certlc renews `kind` when it falls due: not a datastore-certificate copied from
    the DataStore's client certificate (a new copy would be as old; see `external_warning`)."""
    return not (
        kind is SecretKind.DATASTORE_CERTIFICATE and st.tcp.datastore_driver in COPYING_DRIVERS
    )


def external_warning(st: TcpState, now: datetime, cfg: PolicySettings) -> ExternalWarning | None:
    """A warning when the DataStore's client certificate, which this TCP uses a copy of, is
    within the renewal deadline of its NotAfter (or past it)."""
    cert = st.datastore_client
    if st.tcp.datastore_driver not in COPYING_DRIVERS or cert is None:
        return None
    if now < cert.not_after - cfg.deadline:
        return None
    verb = "expired" if cert.not_after <= now else "expires"
    return ExternalWarning(
        st.tcp.datastore,
        cert.not_after,
        f"DataStore {st.tcp.datastore}: the client certificate copied to "
        f"{st.tcp.name}-{SecretKind.DATASTORE_CERTIFICATE.value} {verb} "
        f"{cert.not_after.isoformat()}; only its own PKI can renew it, and certlc copies the "
        "renewed one",
    )


def check_expiring(
    kind: SecretKind, s: SecretObserved | None, st: TcpState, now: datetime, cfg: PolicySettings
) -> Finding | None:
    if s is None or s.cert is None or not renewed_here(kind, st):
        return None
    at = renew_slot(kind, s, cfg, effective_deadline(st.tcp, s, cfg), tcp_windows(st.tcp, cfg))
    if at is None or now < at.at:
        return None
    due = renew_at(kind, s, cfg, effective_deadline(st.tcp, s, cfg))
    when = f"renewal due {due.isoformat()}" if due is not None else "renewal due"
    if at.at != due:
        when += (
            f", in a maintenance window from {at.at.isoformat()}"
            if at.in_window
            else f", no maintenance window before {at.at.isoformat()}"
        )
    return Finding(kind, Reason.EXPIRING, f"expires {s.cert.not_after.isoformat()} ({when})")


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
    return kinds_for(konnectivity=tcp.konnectivity)


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
    return sum(
        1
        for r in state.rotations
        if kind.value in r.secrets and now - r.requested_at < cfg.loop_window
    )


def started(record: RotationRecord) -> bool:
    """Open and asked for: not completed, not a requested rotation still waiting for its
    maintenance window (which covers nothing until then: a missing Secret does not wait), and
    not a phased rotation waiting between two steps (renewals go on meanwhile)."""
    return record.open and record.phase not in (Phase.SCHEDULED, Phase.WAITING)


def phased_open(state: TcpState, kind: SecretKind) -> RotationRecord | None:
    """The TCP's phased rotation of `kind` that has not completed, if any."""
    return next((r for r in state.rotations if r.open and r.phased == kind.value), None)


def next_step_command(
    record: RotationRecord, state: TcpState, now: datetime, *, abort: bool = False
) -> RotateCommand:
    """The command of the step after the one a waiting phased rotation has done (forward, or
    backing out with `abort`): that step's Secrets (libs/pki/steps.py, `step_kinds`), on the
    evidence of now."""
    following = record.step.abort if abort else record.step.next
    if following is None:
        raise ValueError(f"rotation {record.id} has no step after {record.step.value!r}")
    kinds = step_kinds(SecretKind(record.phased), following, managed_kinds(state.tcp))
    return msgspec.structs.replace(
        record.command(now),
        secrets=tuple(k.value for k in kinds),
        resource_versions={k.value: evidence_of(k, state) for k in kinds},
        step=following,
    )


def waiting_steps(state: TcpState, now: datetime) -> tuple[StepDue, ...]:
    """Waiting phased rotations whose hold has passed (to move on), and those not written for a
    day (to keep: a record expires a week after its last write)."""
    due: list[StepDue] = []
    for r in state.rotations:
        if r.phase is not Phase.WAITING:
            continue
        moves_on = r.moves_on_at()
        if moves_on is not None and moves_on <= now:
            due.append(StepDue(r, move_on=True))
        elif now - r.updated_at >= REFRESH:
            due.append(StepDue(r, move_on=False))
    return tuple(due)


def _in_flight(kind: SecretKind, evidence: str, state: TcpState) -> bool:
    """A started rotation (failed ones included: they are retried) already covers this."""
    return any(
        started(r) and r.resource_versions.get(kind.value) == evidence for r in state.rotations
    )


def ca_rotation_open(state: TcpState, *, scheduled: bool = False) -> RotationRecord | None:
    """The TCP's CA rotation that has started and not completed, if any (a first CA is one
    too); with `scheduled`, also one waiting for its maintenance window."""
    return next(
        (r for r in state.rotations if r.ca_rotation and (started(r) or (scheduled and r.open))),
        None,
    )


SIGNER_KINDS = {Signer.CA: SecretKind.CA, Signer.FRONT_PROXY_CA: SecretKind.FRONT_PROXY_CA}


def signer_versions(kinds: Sequence[SecretKind], state: TcpState) -> dict[str, str]:
    """The resourceVersions of what signs `kinds` (the CA Secrets, the DataStore): when one
    changes, a failed issuance of them has a new chance."""
    versions: dict[str, str] = {}
    for kind in kinds:
        signer = profile(kind).signer
        if signer is Signer.DATASTORE_CA:
            versions["datastore"] = state.datastore_version
        elif (signer_kind := SIGNER_KINDS.get(signer)) is not None and signer_kind not in kinds:
            observed = state.secrets.get(signer_kind)
            versions[signer_kind.value] = observed.resource_version if observed else ""
    return versions


def signers_seen_at(kinds: Sequence[SecretKind], state: TcpState) -> datetime | None:
    """When the watcher last saw what signs `kinds` (the latest of them); None if unknown."""
    seen: list[datetime | None] = []
    for kind in kinds:
        signer = profile(kind).signer
        if signer is Signer.DATASTORE_CA:
            seen.append(state.datastore_observed_at)
        elif (signer_kind := SIGNER_KINDS.get(signer)) is not None and signer_kind not in kinds:
            observed = state.secrets.get(signer_kind)
            seen.append(observed.observed_at if observed else None)
    if not seen or any(at is None for at in seen):
        return None
    return max(at for at in seen if at is not None)


def resends(state: TcpState, now: datetime, cfg: PolicySettings) -> tuple[Resend, ...]:
    """Recorded rotations to send again: lost, or failed with a new cause."""
    found: list[Resend] = []
    for record in state.rotations:
        if record.phase is Phase.SCHEDULED and now >= (record.not_before or now):
            if window_later(state, now, cfg) is None:
                why = "its maintenance window is open"
                found.append(Resend(record, dict(record.signers), why, token=""))
        elif record.phase is Phase.REQUESTED and now >= resend_due(record, cfg):
            why = f"not taken up within {now - record.updated_at}"
            found.append(Resend(record, dict(record.signers), why, token=""))
        elif record.phase is Phase.FAILED and record.stage is Stage.ISSUE:
            kinds = [k for k in (kind_of(s) for s in record.secrets) if k is not None]
            signers = signer_versions(kinds, state)
            # A change seen after the failure is a new cause; one seen before is what the
            # failed attempt already used (lifecycle may learn of it later than the issuer).
            seen = signers_seen_at(kinds, state)
            if signers != record.signers and (seen is None or seen > record.updated_at):
                token = hashlib.sha256(repr(sorted(signers.items())).encode()).hexdigest()[:12]
                found.append(Resend(record, signers, "a signing Secret changed", token))
    return tuple(found)


def resend_due(record: RotationRecord, cfg: PolicySettings) -> datetime:
    """When a command nobody took up is sent again: `resend_after`, doubling with each resend
    (at most 4096 times as long), so that a long backlog (a mass renewal) is not flooded."""
    return record.updated_at + cfg.resend_after * (1 << min(record.resends, 12))


def kind_of(value: str) -> SecretKind | None:
    try:
        return SecretKind(value)
    except ValueError:
        return None


def _next_check(
    kinds: Sequence[SecretKind], state: TcpState, now: datetime, cfg: PolicySettings
) -> datetime | None:
    """The earliest future moment at which a check's answer changes: a NotBefore passing, a
    leaf entering its renewal deadline, a CA entering its warning period."""
    times: list[datetime] = []
    windows = tcp_windows(state.tcp, cfg)
    for kind in kinds:
        s = state.secrets.get(kind)
        if s is None or s.cert is None:
            continue
        if s.cert.not_before > now:
            times.append(s.cert.not_before)
        due = scheduled(kind, s, cfg, effective_deadline(state.tcp, s, cfg), windows)
        if due is not None and due > now and renewed_here(kind, state):
            times.append(due)
    client = state.datastore_client
    if client is not None and client.not_after - cfg.deadline > now:
        times.append(client.not_after - cfg.deadline)
    times.extend(resend_due(r, cfg) for r in state.rotations if r.phase is Phase.REQUESTED)
    for r in state.rotations:
        if r.phase is Phase.SCHEDULED:  # asked for at its moment, and kept meanwhile
            at = r.not_before or now
            if at <= now:  # its moment came outside the windows: the next opening
                at = window_later(state, now, cfg) or now
            # never in the past: a write that failed is tried again a second later
            times.append(max(min(at, r.updated_at + REFRESH), now + timedelta(seconds=1)))
        elif r.phase is Phase.WAITING:  # moved on when its hold passes, and kept meanwhile
            at = min(r.moves_on_at() or r.updated_at + REFRESH, r.updated_at + REFRESH)
            times.append(max(at, now + timedelta(seconds=1)))
    return min(times) if times else None


def window_later(state: TcpState, now: datetime, cfg: PolicySettings) -> datetime | None:
    """When the TCP's next maintenance window opens, if none is open `now` (None: one is open,
    the TCP has none, or none ever opens again)."""
    windows = tcp_windows(state.tcp, cfg)
    if open_at(windows, now):
        return None
    later = next_open(windows, now)
    return later if later is not None and later > now else None


def reschedules(state: TcpState, now: datetime, cfg: PolicySettings) -> tuple[Reschedule, ...]:
    """The scheduled rotations to write again rather than ask for: one whose moment came while
    no window is open (lifecycle was down through the window, or the TCP's windows changed)
    moves to the next opening; one still waiting is rewritten daily, so that a long wait does
    not let its record expire (libs/contracts/records.py)."""
    found: list[Reschedule] = []
    for r in state.rotations:
        if r.phase is not Phase.SCHEDULED:
            continue
        at = r.not_before or now
        if now >= at:
            later = window_later(state, now, cfg)
            if later is not None:
                found.append((r, later))
        elif now - r.updated_at >= REFRESH:
            found.append((r, at))
    return tuple(found)


def decide(state: TcpState, now: datetime, cfg: PolicySettings) -> Decision:
    """Rotations to publish for one TCP, loop-guard trips, CA warnings, and when to look again."""
    tcp = state.tcp
    if tcp.paused or tcp.deleting:
        return Decision()
    kinds = managed_kinds(tcp)
    ca_rotating = ca_rotation_open(state) is not None
    findings: list[Finding] = []
    for kind in kinds:
        observed = state.secrets.get(kind)
        if observed is not None and observed.paused:
            continue
        if (
            ca_rotating
            and observed is not None
            and (kind is SecretKind.CA or kind in CA_SIGNED_KINDS)
        ):
            continue  # the CA rotation re-issues it; a missing one is re-created meanwhile
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
    return Decision(
        tuple(rotations),
        tuple(trips),
        warnings,
        _next_check(kinds, state, now, cfg),
        resends(state, now, cfg),
        external_warning(state, now, cfg),
        rejected=tcp_profile(tcp.annotations, cfg.fleet)[1],
        outside_window=outside_windows(rotations, state, cfg),
        reschedules=reschedules(state, now, cfg),
        steps=waiting_steps(state, now),
        superseded=superseded(state, rotations),
    )


def superseded(state: TcpState, rotations: Sequence[Rotation]) -> tuple[RotationRecord, ...]:
    """Open phased rotations whose signer one of `rotations` replaces at once (a deleted or
    invalid CA Secret): given up, since their next step has nothing to build on."""
    replaced = {k.value for rotation in rotations if not rotation.step for k in rotation.kinds}
    return tuple(r for r in state.rotations if r.open and r.phased and r.phased in replaced)


def outside_windows(
    rotations: Sequence[Rotation], state: TcpState, cfg: PolicySettings
) -> tuple[OutsideWindow, ...]:
    """The renewals among `rotations` that happen outside every maintenance window: one report
    per rotation, naming its certificates that could not wait."""
    windows = tcp_windows(state.tcp, cfg)
    if not windows:
        return ()
    found: list[OutsideWindow] = []
    for rotation in rotations:
        if rotation.reason is not Reason.EXPIRING:
            continue
        late: list[tuple[SecretKind, datetime]] = []
        for kind in rotation.kinds:
            s = state.secrets.get(kind)
            if s is None or s.cert is None:
                continue
            at = renew_slot(kind, s, cfg, effective_deadline(state.tcp, s, cfg), windows)
            if at is not None and not at.in_window:
                late.append((kind, s.cert.not_after))
        if late:
            first = min(end for _, end in late)
            names = ", ".join(f"{state.tcp.name}-{kind.value}" for kind, _ in late)
            found.append(OutsideWindow(tuple(kind for kind, _ in late), first, (
                f"no maintenance window ({'; '.join(map(str, windows))}) opened before "
                f"NotAfter - {cfg.window_margin} (the first NotAfter: {first.isoformat()}): "
                f"renewed outside the windows: {names}"
            )))  # fmt: skip
    return tuple(found)


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
        if _in_flight(kind, ev, state):
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
            signer_versions(wanted, state),
        )
    ]
