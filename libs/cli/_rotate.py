"""`certlc rotate`: the target rule, the dry-run plan, and following a rotation to its end.

Which Secrets a target re-issues is decided by lifecycle when it accepts the request; the dry
run cannot ask it without asking for the work, so it applies the same rule
(`libs.contracts.targets`), over the TCP as the cluster shows it.

Which of them restart the control plane is the rollout rule: the pod template carries a
checksum of every Secret the pods mount (`MOUNTED_KINDS`, which rollout uses too). Re-issuing
only `admin-kubeconfig` or `datastore-config` therefore causes no rollout.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, ClassVar

from libs.cli._opsutil import phased_target
from libs.contracts.api import (
    Audit,
    CaRotationCompleted,
    CaRotationStarted,
    LoopGuardTripped,
    RolloutCompleted,
    RolloutFailed,
    RolloutStarted,
    RotateAccepted,
    RotationFailed,
    RotationStepDone,
    SecretWrittenEvent,
    Target,
)
from libs.contracts.targets import target_kinds
from libs.pki import (
    MOUNTED_KINDS,
    PAUSED_ANNOTATION,
    PHASE_CA_ROTATING,
    SecretKind,
    TcpSpec,
    managed_kinds,
    secret_name,
    short_human_duration,
)
from libs.pki.steps import PHASE_KEYS, PHASED_KINDS, RotationStep, step_kinds

TARGET_WORDS = (Target.X509, Target.KUBECONFIG, Target.CA, Target.SA)


class TargetError(ValueError):
    """TARGET is neither a target word nor a Secret of the TCP."""


@dataclass(frozen=True, slots=True)
class TargetSpec:
    target: Target
    secret: str = ""  # the full Secret name when target is SECRET
    kind: SecretKind | None = None


def parse_target(tcp: str, text: str) -> TargetSpec:
    """`x509`, `kubeconfig`, `ca`, `sa`, a Secret name (`<tcp>-<suffix>`) or a suffix."""
    word = text.strip()
    for t in TARGET_WORDS:
        if word == t.value:
            return TargetSpec(t)
    suffix = word.removeprefix(f"{tcp}-")
    try:
        kind = SecretKind(suffix)
    except ValueError:
        words = ", ".join(t.value for t in TARGET_WORDS)
        raise TargetError(
            f"unknown target {text!r}: use {words}, or a Secret of {tcp} "
            f"({tcp}-<suffix>, e.g. {tcp}-admin-kubeconfig, or the suffix alone)"
        ) from None
    return TargetSpec(Target.SECRET, secret_name(tcp, kind), kind)


def spec_kinds(spec: TargetSpec, present: Sequence[SecretKind]) -> tuple[SecretKind, ...]:
    """The Secrets a target re-issues, among the kinds the TCP has (lifecycle's rule)."""
    return target_kinds(spec.target, spec.kind, present)


# --- dry run ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PlannedSecret:
    name: str
    kind: SecretKind
    exists: bool
    paused: bool
    mounted: bool


@dataclass(frozen=True, slots=True)
class DryRun:
    """What a rotate request would do, or why lifecycle would refuse it (`refusal`)."""

    namespace: str
    tcp: str
    target: TargetSpec
    secrets: tuple[PlannedSecret, ...] = ()
    deployment: str | None = None  # None: no control-plane Deployment to roll out
    refusal: tuple[int, str] | None = None  # (HTTP-like code, message), as lifecycle answers

    @property
    def rollout(self) -> tuple[PlannedSecret, ...]:
        return tuple(s for s in self.secrets if s.mounted)


def _annotations(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    return (obj.get("metadata") or {}).get("annotations") or {}


def plan_dry_run(
    spec: TargetSpec,
    tcp: Mapping[str, Any],
    secrets: Mapping[str, Mapping[str, Any]],
    deployment: Mapping[str, Any] | None,
) -> DryRun:
    """Pure: the TCP, its Secrets by name and its Deployment -> the plan (or the refusal)."""
    tcp_spec = TcpSpec.from_resource(tcp)
    ns, name = tcp_spec.namespace, tcp_spec.name
    where = f"{ns}/{name}"
    status = tcp.get("status") or {}
    phase = ((status.get("kubernetesResources") or {}).get("version") or {}).get("status")
    base = DryRun(ns, name, spec, deployment=name if deployment is not None else None)
    if PAUSED_ANNOTATION in _annotations(tcp):
        return _refused(base, 423, f"TenantControlPlane {where} is paused")
    present = managed_kinds(tcp_spec)
    kinds = spec_kinds(spec, present)
    in_phases = [k for k in PHASED_KINDS if _phase_keys(secrets.get(secret_name(name, k)))]
    if phase == PHASE_CA_ROTATING and SecretKind.CA not in in_phases:
        return _refused(base, 409, f"a CA rotation of {where} is in progress; try again later")
    if rotated := [k for k in in_phases if k in kinds]:
        kind = rotated[0]
        return _refused(
            base,
            409,
            f"{secret_name(name, kind)} is being rotated in phases; move that rotation on "
            "with --complete (or --abort)",
        )
    if spec.target is Target.SECRET and not kinds:
        message = f"Secret {spec.secret} is not managed for this TenantControlPlane"
        return _refused(base, 404, message)
    planned = []
    for kind in kinds:
        sname = secret_name(name, kind)
        obj = secrets.get(sname)
        paused = obj is not None and PAUSED_ANNOTATION in _annotations(obj)
        planned.append(PlannedSecret(sname, kind, obj is not None, paused, kind in MOUNTED_KINDS))
    paused_names = [p.name for p in planned if p.paused]
    result = DryRun(ns, name, spec, tuple(planned), base.deployment)
    if paused_names:
        return _refused(result, 423, f"Secret {', '.join(paused_names)} is paused")
    return result


def _phase_keys(secret: Mapping[str, Any] | None) -> bool:
    """A signer Secret that holds what a phased rotation keeps between its steps."""
    return secret is not None and any(k in (secret.get("data") or {}) for k in PHASE_KEYS)


def _refused(plan: DryRun, code: int, message: str) -> DryRun:
    return DryRun(plan.namespace, plan.tcp, plan.target, plan.secrets, plan.deployment,
                  (code, message))  # fmt: skip


def token_warning(tcp: str) -> list[str]:
    """What re-issuing the service-account keypair does to ServiceAccount tokens: certlc
    replaces it at once, without an overlap of old and new public keys."""
    return [
        f"warning: {tcp}-sa-certificate holds the service-account signing key; re-issuing it "
        "replaces the key at once, with no overlap. Once the control plane has rolled out, "
        "kube-apiserver accepts only tokens signed by the new key (sa.pub), so every "
        "ServiceAccount token issued before is refused:",
        "  - pods' projected tokens, until the kubelet requests new ones (it renews a token at "
        "80 % of its lifetime or after 24 h; with kube-apiserver's default token-expiration "
        "extension that can be 24 h): restart the workloads that must keep working (CoreDNS, "
        "konnectivity-agent, controllers) after the rollout;",
        "  - legacy token Secrets (type kubernetes.io/service-account-token) and tokens handed "
        "out with `kubectl create token`, until they are re-created.",
    ]


def phased_kind(spec: TargetSpec) -> SecretKind | None:
    """The signer a phased rotation of TARGET replaces (None: TARGET is no signer)."""
    if spec.target is Target.CA:
        return SecretKind.CA
    if spec.target is Target.SA:
        return SecretKind.SA
    return spec.kind if spec.kind in PHASED_KINDS else None


_SIGNER_WORDS = {
    SecretKind.CA: "CA",
    SecretKind.FRONT_PROXY_CA: "front-proxy CA",
    SecretKind.SA: "service-account key",
}


def _hold_text(kind: SecretKind, step: RotationStep, overlap: timedelta | None, ref: str) -> str:
    target = phased_target(kind.value)
    by_hand = f"`certlc rotate {ref} {target} --complete`"
    if overlap is not None:
        return f"by itself {short_human_duration(overlap)} later, or on {by_hand}"
    if kind is SecretKind.SA:
        if step is RotationStep.PREPARE:
            return "at once"
        return f"by itself after CERTLC_SA_OVERLAP (48h by default), or on {by_hand}"
    return f"on {by_hand}"


def render_phased_dry_run(
    namespace: str, tcp: TcpSpec, kind: SecretKind, overlap: timedelta | None
) -> list[str]:
    """What a phased rotation of `kind` would do, step by step, and for the SA key which
    ServiceAccount tokens stop verifying when."""
    ref = f"{namespace}/{tcp.name}"
    signer = _SIGNER_WORDS[kind]
    present = managed_kinds(tcp)
    what = {
        RotationStep.PREPARE: f"a new {signer} is trusted beside the old one, which still signs",
        RotationStep.SWAP: f"the new {signer} signs; both are still trusted",
        RotationStep.COMPLETE: f"the old {signer} is no longer trusted",
    }
    lines = [f"dry run: rotate {ref} {kind.value} in phases (nothing is published)"]
    for step, text in what.items():
        names = [secret_name(tcp.name, k) for k in step_kinds(kind, step, present)]
        lines.append(f"{step.value}: {text}; re-issues {', '.join(names)}; rolls out")
        if (following := step.next) is not None:
            lines.append(f"  {following.value} starts {_hold_text(kind, step, overlap, ref)}")
    if kind is SecretKind.SA:
        lines += sa_token_plan(overlap)
    return lines


def sa_token_plan(overlap: timedelta | None) -> list[str]:
    """Which ServiceAccount tokens a phased SA rotation invalidates, and when."""
    lasts = short_human_duration(overlap) if overlap is not None else "CERTLC_SA_OVERLAP (48h)"
    lines = [
        "tokens: every ServiceAccount token signed by the old key keeps verifying until "
        f"complete, {lasts} after the swap; from then on it is refused. Tokens signed by the "
        "new key verify from the swap on.",
        "  - pods' projected tokens: the kubelet re-signs them at 80 % of their lifetime or "
        "after 24 h, so they are new by complete when the overlap is at least 24 h;",
        "  - legacy token Secrets (type kubernetes.io/service-account-token) and tokens from "
        "`kubectl create token` issued before the swap stop verifying at complete: re-create "
        "them during the overlap.",
    ]
    if overlap is not None and overlap < timedelta(hours=24):
        lines.append(
            f"warning: an overlap of {lasts} is shorter than the kubelet's 24 h refresh: pods "
            "whose token is older than that are refused until the kubelet renews it"
        )
    return lines


def render_dry_run(plan: DryRun) -> list[str]:
    what = plan.target.secret or plan.target.target.value
    lines = [f"dry run: rotate {plan.namespace}/{plan.tcp} {what} (nothing is published)"]
    if plan.refusal is not None:
        code, message = plan.refusal
        lines.append(f"would be refused: {code} {message}")
        return lines
    lines.append(f"would re-issue {len(plan.secrets)} Secret(s):")
    width = max((len(s.name) for s in plan.secrets), default=0)
    for s in plan.secrets:
        action = "replace" if s.exists else "create"
        mount = "mounted: rolls out" if s.mounted else "not mounted"
        lines.append(f"  {s.name.ljust(width)}   {action:<7}   {mount}")
    rolled = plan.rollout
    if not rolled:
        lines.append("would not roll out: no re-issued Secret is mounted by the control plane")
    elif plan.deployment is None:
        lines.append("would not roll out: the TenantControlPlane has no control-plane Deployment")
    else:
        lines.append(
            f"would roll out Deployment {plan.namespace}/{plan.deployment} once "
            f"({len(rolled)} mounted Secret(s) change)"
        )
    if any(s.kind is SecretKind.SA for s in plan.secrets):
        lines += token_warning(plan.tcp)
    return lines


# --- following a rotation on the audit stream -------------------------------------------------


@dataclass(frozen=True, slots=True)
class Outcome:
    ok: bool
    message: str


Step = tuple[str | None, Outcome | None]


@dataclass
class RotationWatch:
    """Folds the audit events of one TCP into progress lines and, at the end, an outcome.

    The rotation ends with `rollout.completed` (or `ca-rotation.completed` once a CA rotation
    has started); with a final `rotation.failed` it fails. A `rollout.failed` (the Deployment
    did not finish in time) is shown but ends nothing: rollout keeps watching that Deployment
    and reports `rollout.completed` once it finishes, so the wait goes on until that or its
    timeout. When none of its Secrets is mounted there is no rollout: it ends once every Secret
    is written. Rollout folds
    changes written close together into one rollout, published under the id of the rotation
    whose message it was handling: a rollout that starts after one of our Secrets was written
    and carries one of our mounted Secrets is ours too.
    """

    accepted: RotateAccepted
    written: set[str] = field(default_factory=set)
    rollouts: set[str] = field(default_factory=set)
    ca_started: bool = False

    @property
    def phased(self) -> bool:
        """A step of a phased rotation: it ends when that step is rolled out."""
        return bool(self.accepted.step)

    @property
    def kinds(self) -> frozenset[str]:
        return frozenset(self.accepted.secrets)

    @property
    def mounted(self) -> frozenset[str]:
        return frozenset(k.value for k in MOUNTED_KINDS) & self.kinds

    def _ours(self, event: Audit) -> bool:
        return event.rotation_id == self.accepted.id

    def observe(self, event: Audit) -> tuple[list[str], Outcome | None]:
        """Progress lines for `event` and the outcome when the rotation has ended."""
        if event.namespace != self.accepted.namespace or event.tcp != self.accepted.tcp:
            return [], None
        step = self._STEPS.get(type(event))
        if step is None:
            return [], None
        line, outcome = step(self, event, event.at.strftime("%H:%M:%S"))
        return ([line] if line else []), outcome

    def _written(self, e: SecretWrittenEvent, at: str) -> Step:
        if not self._ours(e):
            return None, None
        self.written.add(e.kind)
        line = f"{at}  secret written       {e.secret} ({e.action})"
        if not self.mounted and self.kinds <= self.written and not self.phased:
            return line, Outcome(True, "every Secret written; none is mounted: no rollout")
        return line, None

    def _ca_started(self, e: CaRotationStarted, at: str) -> Step:
        if not self._ours(e):
            return None, None
        self.ca_started = True
        return f"{at}  CA rotation started  {len(e.secrets)} Secret(s)", None

    def _rollout_started(self, e: RolloutStarted, at: str) -> Step:
        if not (self._ours(e) or self._carries_ours(e)):
            return None, None
        self.rollouts.add(e.rotation_id)
        return (
            f"{at}  rollout started      deployment {e.deployment} ({', '.join(e.secrets)})",
            None,
        )

    def _rollout_completed(self, e: RolloutCompleted, at: str) -> Step:
        if e.rotation_id not in self.rollouts:
            return None, None
        line = f"{at}  rollout completed    deployment {e.deployment} in {e.duration_seconds:.1f}s"
        # A CA rotation ends after this, when rollout has set the TCP Ready again.
        ends = not (self.ca_started or self.phased)
        return line, Outcome(True, "rollout completed") if ends else None

    def _rollout_failed(self, e: RolloutFailed, at: str) -> Step:
        if e.rotation_id not in self.rollouts:
            return None, None
        line = (
            f"{at}  rollout failed       deployment {e.deployment}: {e.message} "
            "(certlc keeps watching it)"
        )
        return line, None

    def _ca_completed(self, e: CaRotationCompleted, at: str) -> Step:
        if not self._ours(e):
            return None, None
        return f"{at}  CA rotation completed", Outcome(True, "CA rotation completed")

    def _step_done(self, e: RotationStepDone, at: str) -> Step:
        if not self._ours(e) or e.step != self.accepted.step:
            return None, None
        if not e.next_step:
            then = "the phased rotation is complete"
        elif e.moves_on_at is None:
            then = f"{e.next_step} waits for --complete"
        else:
            then = f"{e.next_step} starts by itself at {e.moves_on_at.strftime('%H:%M:%S')}"
        line = f"{at}  step {e.step} rolled out"
        return line, Outcome(True, f"{e.step} rolled out; {then}")

    def _failed(self, e: RotationFailed, at: str) -> Step:
        if not self._ours(e):
            return None, None
        if e.retryable:
            return f"{at}  rotation failed      {e.message} (retrying)", None
        return f"{at}  rotation failed      {e.message}", Outcome(False, f"failed: {e.message}")

    def _loop_guard(self, e: LoopGuardTripped, at: str) -> Step:
        if e.secret.removeprefix(f"{self.accepted.tcp}-") not in self.kinds:
            return None, None
        return f"{at}  loop guard tripped   {e.secret}: {e.message}", None

    _STEPS: ClassVar[dict[type[Any], Callable[[Any, Any, str], Step]]] = {
        SecretWrittenEvent: _written,
        CaRotationStarted: _ca_started,
        RolloutStarted: _rollout_started,
        RolloutCompleted: _rollout_completed,
        RolloutFailed: _rollout_failed,
        CaRotationCompleted: _ca_completed,
        RotationStepDone: _step_done,
        RotationFailed: _failed,
        LoopGuardTripped: _loop_guard,
    }

    def _carries_ours(self, event: RolloutStarted) -> bool:
        return bool(self.written & self.mounted & set(event.secrets))
