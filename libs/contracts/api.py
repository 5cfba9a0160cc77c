"""The public contract for external tooling: rotate requests and the audit events.

External tooling sends a `RotateRequest` to `certlc.api.v1.rotate` (request/reply) and gets a
`RotateAccepted`, or an empty reply whose headers carry `Nats-Service-Error` and
`Nats-Service-Error-Code` (400 malformed, 404 unknown TCP or Secret, 409 CA rotation in progress,
423 paused). Audit events are published to `certlc.audit.<ns>.<tcp>.<event>` and kept in the
CERTLC_AUDIT stream.
"""

from __future__ import annotations

import enum
from datetime import datetime

from libs.contracts.messages import Fact, Message, Reason


class Target(enum.StrEnum):
    """What a rotate request asks for."""

    SECRET = "secret"  # one Secret, named by `secret` (full name or profile suffix)
    X509 = "x509"  # every Secret labelled certificate_lifecycle_controller=x509
    KUBECONFIG = "kubeconfig"  # every Secret labelled certificate_lifecycle_controller=kubeconfig
    CA = "ca"  # the TCP's CA, then everything it signs
    SA = "sa"  # the service-account signing key, in phases with an overlap (libs/pki/phased.py)


class RotateRequest(Message, frozen=True, kw_only=True, tag="rotate.request"):
    namespace: str
    tcp: str
    target: Target
    secret: str = ""
    note: str = ""
    requester: str = "anonymous"
    request_id: str = ""  # optional idempotency key chosen by the caller
    # Start it only when one of the TCP's maintenance windows is open (at once without any).
    wait_for_window: bool = False
    # Rotate the signer in phases (prepare, swap, complete; libs/pki/phased.py): the target
    # `ca`, or the Secret `ca`, `front-proxy-ca-certificate` or `sa-certificate`; `sa` always is.
    phased: bool = False
    # Move the open phased rotation of that signer on to its next step (no new rotation).
    complete: bool = False
    # Back out of the open phased rotation of that signer: after prepare, drop the new signer;
    # after swap, sign with the old one again (then abort again to drop the new one).
    abort: bool = False
    # Seconds each wait between steps lasts before the next step starts by itself; 0: the
    # default (a CA waits for `complete`; the SA key moves to swap at once and completes after
    # CERTLC_SA_OVERLAP).
    overlap_seconds: float = 0.0


class RotateAccepted(Message, frozen=True, kw_only=True, tag="rotate.accepted"):
    id: str
    namespace: str
    tcp: str
    secrets: tuple[str, ...]
    ca_rotation: bool = False
    not_before: datetime | None = None  # waits for a maintenance window opening then; None: now
    phased: str = ""  # a phased rotation of this Secret (profile suffix)
    step: str = ""  # the step this request started: prepare, swap or complete


MAX_SCHEDULE_PAGE = 1000
"""Renewals in one schedule reply at most: about 350 bytes each, well within NATS's 1 MB."""


class ScheduleRequest(Message, frozen=True, kw_only=True, tag="schedule.request"):
    """The renewals lifecycle has scheduled (`certlc.api.v1.schedule`), for one namespace or
    TCP or the fleet, those renewed within [since, until) (None: unbounded), one page at a
    time: `after` is the `more` of the previous reply."""

    namespace: str = ""
    tcp: str = ""
    since: datetime | None = None
    until: datetime | None = None
    after: str = ""
    limit: int = MAX_SCHEDULE_PAGE


class ScheduledRenewal(Fact, frozen=True, kw_only=True):
    """One certificate's next renewal as lifecycle will do it."""

    namespace: str
    tcp: str
    secret: str
    kind: str
    not_after: datetime
    due: datetime  # NotAfter - renew-before, earlier by the jitter
    at: datetime  # when it is renewed: `due`, moved into the first open maintenance window
    in_window: bool = True  # False: no window opened in time; renewed at NotAfter - margin
    windows: str = ""  # the TCP's maintenance windows ("" none: whenever due)
    window_opens: datetime | None = None  # when the window it renews in opened (None: none)


class ScheduleReply(Message, frozen=True, kw_only=True, tag="schedule.reply"):
    renewals: tuple[ScheduledRenewal, ...] = ()
    more: str = ""  # the cursor of the next page; "" when this was the last
    now: datetime


class ServiceErrorCode(enum.IntEnum):
    BAD_REQUEST = 400
    NOT_FOUND = 404
    CONFLICT = 409
    LOCKED = 423
    INTERNAL = 500


# --- audit events (CERTLC_AUDIT) ---------------------------------------------------------


class AuditEvent(Message, frozen=True, kw_only=True):
    """Common fields: which TCP, which rotation (if any), when."""

    namespace: str
    tcp: str
    rotation_id: str = ""
    at: datetime


class RotationRequested(AuditEvent, frozen=True, kw_only=True, tag="rotation.requested"):
    secrets: tuple[str, ...]
    reason: Reason
    detail: str = ""
    requester: str = ""
    ca_rotation: bool = False
    not_before: datetime | None = None  # a requested rotation waiting for a maintenance window
    phased: str = ""  # a step of a phased rotation of this Secret (profile suffix)
    step: str = ""  # that step: prepare, swap or complete


class RotationStepDone(AuditEvent, frozen=True, kw_only=True, tag="rotation.step-done"):
    """A step of a phased rotation is rolled out. `next_step` is "" after complete; the next
    step starts at `moves_on_at`, or when the operator says (`certlc rotate ... --complete`)
    when that is None."""

    secret: str  # the Secret rotated in phases (profile suffix)
    step: str
    next_step: str = ""
    moves_on_at: datetime | None = None


class RotationRejected(AuditEvent, frozen=True, kw_only=True, tag="rotation.rejected"):
    code: int
    message: str
    requester: str = ""


class CertificateIssued(AuditEvent, frozen=True, kw_only=True, tag="certificate.issued"):
    secret: str
    kind: str
    serial: str
    not_before: datetime
    not_after: datetime
    fingerprint_sha256: str
    signer: str = ""


class SecretWrittenEvent(AuditEvent, frozen=True, kw_only=True, tag="secret.written"):
    secret: str
    kind: str
    checksum: str
    resource_version: str
    action: str


class RotationFailed(AuditEvent, frozen=True, kw_only=True, tag="rotation.failed"):
    message: str
    retryable: bool = True
    secrets: tuple[str, ...] = ()  # the Secrets the rotation was to write (profile suffixes)
    attempt: int = 0  # the issuance attempt that failed (1 = the first); 0: not known
    next_retry: datetime | None = None  # when the issuer tries again; None: not by time


class RolloutStarted(AuditEvent, frozen=True, kw_only=True, tag="rollout.started"):
    deployment: str
    secrets: tuple[str, ...] = ()


class RolloutCompleted(AuditEvent, frozen=True, kw_only=True, tag="rollout.completed"):
    deployment: str
    duration_seconds: float


class RolloutFailed(AuditEvent, frozen=True, kw_only=True, tag="rollout.failed"):
    deployment: str
    message: str
    reason: str = ""  # ProgressDeadlineExceeded, or RolloutTimeout (CERTLC_ROLLOUT_TIMEOUT)


class CaRotationStarted(AuditEvent, frozen=True, kw_only=True, tag="ca-rotation.started"):
    secrets: tuple[str, ...] = ()


class CaRotationCompleted(AuditEvent, frozen=True, kw_only=True, tag="ca-rotation.completed"):
    pass


class LoopGuardTripped(AuditEvent, frozen=True, kw_only=True, tag="loop-guard.tripped"):
    secret: str
    issued: int
    window_seconds: float
    message: str


class CaExpiring(AuditEvent, frozen=True, kw_only=True, tag="ca.expiring"):
    secret: str
    not_after: datetime


class ExternalCertificateExpiring(
    AuditEvent, frozen=True, kw_only=True, tag="datastore.external-certificate-expiring"
):
    datastore: str
    not_after: datetime
    message: str


class AnnotationRejected(AuditEvent, frozen=True, kw_only=True, tag="annotation.rejected"):
    """A certlc annotation on the TCP does not parse or contradicts another one: it is ignored
    and the fleet default applies. `message` names the error."""

    annotation: str
    value: str
    message: str


class RenewalOutsideWindow(AuditEvent, frozen=True, kw_only=True, tag="renewal.outside-window"):
    """A due renewal for which no maintenance window of the TCP opened before NotAfter minus
    the safety margin: renewed at that latest safe moment, outside the windows. `secrets` are
    the Secrets of the rotation that could not wait, `not_after` the earliest of their ends."""

    secrets: tuple[str, ...]
    not_after: datetime
    message: str


Audit = (
    RotationRequested
    | RotationRejected
    | RotationStepDone
    | CertificateIssued
    | SecretWrittenEvent
    | RotationFailed
    | RolloutStarted
    | RolloutCompleted
    | RolloutFailed
    | CaRotationStarted
    | CaRotationCompleted
    | LoopGuardTripped
    | CaExpiring
    | ExternalCertificateExpiring
    | AnnotationRejected
    | RenewalOutsideWindow
)


def audit_type_token(kind: type[AuditEvent]) -> str:
    """The last subject token of the audit events of type `kind`: its tag with '.' made '-'."""
    tag = kind.__struct_config__.tag
    assert isinstance(tag, str)
    return tag.replace(".", "-")


def audit_token(event: AuditEvent) -> str:
    """The last subject token of an audit event: its tag with '.' made '-'."""
    return audit_type_token(type(event))
