"""The lifecycle process: follows the events stream, decides per TCP, publishes rotate commands.

Events and rotation records are folded into `FleetState`; a TCP that changed is evaluated
after a short settle delay (several Secrets deleted together become one rotation). Each decision
also says when the TCP must be looked at again (a certificate reaching its renewal deadline, a
command not yet taken up); one timer task sleeps until the earliest such moment. Rotate commands
carry deterministic ids, so replicas and restarts publish nothing twice within the duplicate
window.

A rotation is recorded (CERTLC_ROTATIONS, `requested`) before its command is published: a
publish that fails leaves the record, and the TCP is evaluated again until the command is out.
As a safety net every TCP is evaluated again each CERTLC_REEVALUATE, from memory.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import heapq
import logging
from datetime import UTC, datetime, timedelta

from libs.bus import Bus, Discovery, ServiceError, connect, ensure_topology, publish, serve
from libs.bus.delivery import Request
from libs.bus.members import Membership
from libs.bus.replay import follow_stream
from libs.contracts import subjects
from libs.contracts.api import (
    AnnotationRejected,
    CaExpiring,
    ExternalCertificateExpiring,
    LoopGuardTripped,
    RenewalOutsideWindow,
    RotateAccepted,
    RotationRejected,
    RotationRequested,
)
from libs.contracts.codec import (
    MalformedMessage,
    decode_event,
    decode_request,
    decode_schedule_request,
    encode,
)
from libs.contracts.messages import (
    DataStoreDeleted,
    DataStoreObserved,
    Reason,
    RotateCommand,
    TcpDeleted,
)
from libs.contracts.partitions import partition_of
from libs.contracts.records import (
    ROTATIONS_BUCKET,
    NextStep,
    Phase,
    Requested,
    RotationRecord,
    Scheduled,
    Superseded,
    key_parts,
)
from libs.contracts.windows import Window
from libs.pki import SecretKind
from libs.runtime import metrics, topology
from libs.runtime.config import Settings
from libs.runtime.health import HealthServer
from libs.runtime.records import RotationStore, decode_record
from libs.runtime.service import package_version, publish_audit
from services.lifecycle import schedule
from services.lifecycle.deadline import rotation_deadline
from services.lifecycle.policy import (
    Decision,
    OutsideWindow,
    PolicySettings,
    Resend,
    Rotation,
    StepDue,
    TcpState,
    decide,
    effective_deadline,
    next_step_command,
    renewed_here,
    scheduled,
    signer_versions,
    tcp_windows,
    window_later,
)
from services.lifecycle.requests import Rejected, resolve
from services.lifecycle.state import FleetState, TcpKey

log = logging.getLogger(__name__)

RETRY_EVALUATION = timedelta(seconds=5)  # after an evaluation failed (NATS away, ...)
REEVALUATION_SLICES = 30  # a re-evaluation period is spread over this many short bursts


def spread_of(key: TcpKey) -> float:
    """A fixed number in [0, 1) per TCP: where in each re-evaluation period it comes."""
    digest = hashlib.sha256(f"{key[0]}/{key[1]}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def export_datastore(event: DataStoreObserved | DataStoreDeleted) -> None:
    """The NotAfter of the client certificate a DataStore lends its TCPs (MySQL, PostgreSQL,
    NATS), which certlc copies but cannot renew; the series goes with the certificate."""
    gauge = metrics.DATASTORE_CLIENT_EXPIRATION
    client = event.client_cert if isinstance(event, DataStoreObserved) else None
    if client is not None:
        gauge.labels(event.name).set(client.not_after.timestamp())
    else:
        with contextlib.suppress(KeyError):  # never exported
            gauge.remove(event.name)


def now_utc() -> datetime:
    return datetime.now(UTC)


class Lifecycle:
    def __init__(self, bus: Bus, settings: Settings) -> None:
        self.bus = bus
        self.settings = settings
        self.policy = PolicySettings(
            deadline=settings.renew_deadline,
            ca_warning=settings.ca_warning,
            loop_window=settings.loop_window,
            loop_limit=settings.loop_limit,
            resend_after=settings.resend_after,
            jitter=settings.renew_jitter,
            leaf_validity=settings.fleet_profile().leaf_validity,
            windows=settings.fleet_profile().windows,
            window_margin=settings.window_margin,
        )
        self.sa_overlap = settings.sa_overlap
        # The partitions of the fleet this replica decides for (all of them until it hears
        # other replicas: libs/bus/members.py). Every replica folds every event, so a partition
        # it takes over is decided at once, from memory.
        self.owned: frozenset[int] = frozenset(range(settings.partitions))
        self.state = FleetState()
        self.store = RotationStore(bus, settings.stream_replicas)
        self.caught_up = asyncio.Event()
        self.records_caught_up = asyncio.Event()
        self.wakeup = asyncio.Event()
        self.due: dict[TcpKey, datetime] = {}  # settle: evaluate at
        self.timers: list[tuple[datetime, TcpKey]] = []  # heap of next checks
        self.warned: set[tuple[TcpKey, str, datetime]] = set()
        self.rejections: set[tuple[str, str, str]] = set()  # (TCP uid, annotation, value)
        self.lock = asyncio.Lock()
        self.wake_at: datetime | None = None  # when the evaluator wakes up by itself
        self.exported: dict[TcpKey, set[tuple[str, str]]] = {}  # metric label sets per TCP
        # per TCP: what its gauges show, (kind, serial, renew-before) of each certificate, and
        # the maintenance windows that placed the renewals
        self.exported_serials: dict[
            TcpKey, tuple[tuple[tuple[SecretKind, str, timedelta], ...], tuple[Window, ...]]
        ] = {}

    # --- events --------------------------------------------------------------------------

    async def on_event(self, subject: str, data: bytes, seq: int) -> None:
        try:
            event = decode_event(data)
        except MalformedMessage as exc:
            log.warning("ignoring malformed event: %s", exc, extra={"subject": subject})
            return
        if isinstance(event, TcpDeleted):
            self.export((event.namespace, event.name), None)
        key = self.state.apply(event)
        when = now_utc() + self.settings.settle
        if isinstance(event, DataStoreObserved | DataStoreDeleted):
            export_datastore(event)
        if isinstance(event, DataStoreObserved):  # its CA may be a signer of a failed rotation
            for tcp_key, tcp in list(self.state.tcps.items()):
                if tcp.datastore == event.name:
                    self.schedule(tcp_key, when)
        elif key is not None or self.state.synced is not None:
            self.schedule(key, when)

    async def on_record(self, subject: str, data: bytes, seq: int) -> None:
        """A rotation record changed (or was deleted: no data)."""
        parts = key_parts(subject.removeprefix(f"$KV.{ROTATIONS_BUCKET}."))
        if parts is None:
            log.warning("ignoring a record with an unexpected key", extra={"subject": subject})
            return
        if not data:
            key = self.state.drop_record(*parts)
        else:
            try:
                record = decode_record(data)
            except MalformedMessage as exc:
                log.warning(
                    "ignoring an unreadable rotation record: %s", exc, extra={"subject": subject}
                )
                return
            key = self.state.put_record(record)
        if key in self.state.tcps:
            self.schedule(key, now_utc() + self.settings.settle)

    async def run_reevaluation(self, stop: asyncio.Event) -> None:
        """The safety net: every TCP decided again from memory, each CERTLC_REEVALUATE; a missed
        event or a lost command is healed here when every other mechanism failed."""
        period = self.settings.reevaluate.total_seconds()
        if period <= 0:
            return
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=period)
            if stop.is_set() or not self.ready():
                continue
            now = now_utc()
            dropped = self.state.prune(now, max(self.policy.loop_window, self.settings.reevaluate))
            log.debug("re-evaluating every TCP", extra={"pruned_records": dropped})
            # Each TCP in its own slice of the period: a fleet is re-evaluated a thirtieth at a
            # time, never in one burst that would delay the events arriving meanwhile.
            slice_length = self.settings.reevaluate / REEVALUATION_SLICES
            for key in list(self.state.tcps):
                self.schedule(key, now + slice_length * int(REEVALUATION_SLICES * spread_of(key)))

    def schedule(self, key: TcpKey | None, when: datetime) -> None:
        """Decide TCP `key` (None: every TCP) at `when`, if it is in this replica's share."""
        keys = [key] if key is not None else list(self.state.tcps)
        for k in keys:
            if not self.owns(k):  # its owner decides it; on_partitions when it becomes ours
                continue
            current = self.due.get(k)
            if current is None or when < current:
                self.due[k] = when
        if self.ready() and (self.wake_at is None or when < self.wake_at):
            self.wakeup.set()

    def owns(self, key: TcpKey) -> bool:
        return partition_of(*key, self.settings.partitions) in self.owned

    def on_partitions(self, owned: frozenset[int]) -> None:
        """This replica's share changed: TCPs it gained are decided now; the gauges of those it
        lost are removed (their new owner exports them)."""
        gained = owned - self.owned
        self.owned = owned
        metrics.PARTITIONS_OWNED.labels("lifecycle").set(len(owned))
        now = now_utc()
        for key in list(self.state.tcps):
            partition = partition_of(*key, self.settings.partitions)
            if partition in gained:
                self.schedule(key, now)
            elif partition not in owned:
                self.due.pop(key, None)
                self.export(key, None)

    def ready(self) -> bool:
        return (
            self.caught_up.is_set()
            and self.records_caught_up.is_set()
            and self.state.synced is not None
        )

    # --- evaluation loop -------------------------------------------------------------------

    async def run_evaluator(self, stop: asyncio.Event) -> None:
        await self.caught_up.wait()
        while not stop.is_set():
            now = now_utc()
            while self.timers and self.timers[0][0] <= now:
                _, key = heapq.heappop(self.timers)
                # now, even when a later moment is already due for it (a re-evaluation slot):
                # keeping that one would delay what this timer is for until then
                if (current := self.due.get(key)) is None or now < current:
                    self.due[key] = now
            nearest = None
            if self.ready():
                for key in [k for k, t in self.due.items() if t <= now]:
                    if (due := self.due.get(key)) is None or due > now:
                        continue  # dropped or put off while an earlier one was decided
                    del self.due[key]
                    if not self.owns(key):  # another replica's share
                        continue
                    try:
                        await self.evaluate(key)
                    except Exception:  # keep deciding for every other TCP; this one again soon
                        log.exception(
                            "evaluation failed; trying again",
                            extra={"namespace": key[0], "tcp": key[1]},
                        )
                        self.due.setdefault(key, now_utc() + RETRY_EVALUATION)
                    # A decision that publishes nothing never gives the loop up: without this a
                    # burst (a fleet caught up, a share taken over) would starve the heartbeats,
                    # the health checks and the events for as long as it lasts.
                    await asyncio.sleep(0)
                nearest = min([*self.due.values(), *(t for t, _ in self.timers[:1])], default=None)
            timeout = None if nearest is None else max(0.0, (nearest - now_utc()).total_seconds())
            self.wake_at = nearest
            self.wakeup.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(
                    self.wakeup.wait(), timeout=3600.0 if timeout is None else min(timeout, 3600.0)
                )

    async def evaluate(self, key: TcpKey) -> None:
        async with self.lock:
            view = self.state.view(key)
            self.export(key, view)
            if view is None:
                return
            metrics.EVALUATIONS.labels("lifecycle").inc()
            now = now_utc()
            decision = decide(view, now, self.policy)
            await self.act(key, decision, now)

    def export(self, key: TcpKey, view: TcpState | None) -> None:
        """Certificate gauges for the TCP's Secrets; series of vanished ones are removed.
        Nothing is written when the certificates and their renew-before are those already
        exported (a re-evaluation of an unchanged TCP)."""
        ns, name = key
        # (kind, Secret, renew-before) of each certificate: the renew-before once per export
        certs = (
            [(k, s, effective_deadline(view.tcp, s, self.policy)) for k, s in view.secrets.items()]
            if view is not None
            else []
        )
        windows = tcp_windows(view.tcp, self.policy) if view is not None else ()
        serials = tuple((k, s.cert.serial, before) for k, s, before in certs if s.cert)
        seen = (serials, windows)
        if self.exported_serials.get(key) == seen:
            return
        if serials:
            self.exported_serials[key] = seen
        else:
            self.exported_serials.pop(key, None)
        current: set[tuple[str, str]] = set()
        for kind, observed, before in certs:
            if observed.cert is None or view is None:
                continue
            labels = (ns, name, observed.name, kind.value)
            current.add((observed.name, kind.value))
            metrics.CERT_EXPIRATION.labels(*labels).set(observed.cert.not_after.timestamp())
            metrics.CERT_NOT_BEFORE.labels(*labels).set(observed.cert.not_before.timestamp())
            due = scheduled(kind, observed, self.policy, before, windows)
            if due is not None and renewed_here(kind, view):
                metrics.CERT_RENEWAL.labels(*labels).set(due.timestamp())
        for secret, kind_name in self.exported.get(key, set()) - current:
            for gauge in (metrics.CERT_EXPIRATION, metrics.CERT_NOT_BEFORE, metrics.CERT_RENEWAL):
                gauge.remove(ns, name, secret, kind_name)
        if current:
            self.exported[key] = current
        else:
            self.exported.pop(key, None)

    async def act(self, key: TcpKey, decision: Decision, now: datetime) -> None:
        ns, name = key
        tcp = self.state.tcps[key]
        for rotation in decision.rotations:
            await self.send(key, rotation, now, requester="certlc-lifecycle")
        for resend in decision.resends:
            await self.resend(resend, now)
        for record, not_before in decision.reschedules:
            await self.reschedule(record, not_before, now)
        await self.phased(key, decision, now)
        for trip in decision.loop_trips:
            metrics.LOOP_GUARD_TRIPS.labels(trip.kind.value).inc()
            log.warning(
                trip.message, extra={"namespace": ns, "tcp": name, "secret": trip.kind.value}
            )
            event = LoopGuardTripped(
                namespace=ns,
                tcp=name,
                at=now,
                secret=f"{name}-{trip.kind.value}",
                issued=trip.issued,
                window_seconds=self.policy.loop_window.total_seconds(),
                message=trip.message,
            )
            await publish_audit(self.bus, event, f"{tcp.uid}:{trip.kind.value}:{trip.issued}")
        for warning in decision.ca_warnings:
            mark = (key, warning.kind.value, warning.not_after)
            if mark in self.warned:
                continue
            self.warned.add(mark)
            log.warning(
                "CA expires within the warning period",
                extra={"namespace": ns, "tcp": name, "secret": warning.kind.value},
            )
            warn = CaExpiring(
                namespace=ns,
                tcp=name,
                at=now,
                secret=f"{name}-{warning.kind.value}",
                not_after=warning.not_after,
            )
            mark_id = f"{tcp.uid}:{warning.kind.value}:{warning.not_after.isoformat()}"
            await publish_audit(self.bus, warn, mark_id)
        for rejected in decision.rejected:
            seen = (tcp.uid, rejected.annotation, rejected.value)
            if seen in self.rejections:
                continue
            self.rejections.add(seen)
            log.warning(
                "annotation %s=%r ignored: %s; the fleet setting applies",
                rejected.annotation,
                rejected.value,
                rejected.message,
                extra={"namespace": ns, "tcp": name},
            )
            rejection = AnnotationRejected(
                namespace=ns,
                tcp=name,
                at=now,
                annotation=rejected.annotation,
                value=rejected.value[:256],
                message=rejected.message[:1024],
            )
            digest = hashlib.sha256("|".join(seen).encode()).hexdigest()[:24]
            await publish_audit(self.bus, rejection, f"{tcp.uid}:{digest}")
        external = decision.external_warning
        if external is not None and self.first_warning(
            key, (key, "external", external.not_after), external.message
        ):
            ext = ExternalCertificateExpiring(
                namespace=ns,
                tcp=name,
                at=now,
                datastore=external.datastore,
                not_after=external.not_after,
                message=external.message,
            )
            mark_id = f"{tcp.uid}:external:{external.not_after.isoformat()}"
            await publish_audit(self.bus, ext, mark_id)
        for outside in decision.outside_window:
            await self.report_outside_window(key, tcp.uid, outside, now)
        if decision.next_check is not None:
            heapq.heappush(self.timers, (decision.next_check, key))

    def first_warning(self, key: TcpKey, mark: tuple[TcpKey, str, datetime], message: str) -> bool:
        """Log a warning the first time `mark` is seen (re-evaluations repeat it); whether it
        was the first time, and so whether to publish its audit event."""
        if mark in self.warned:
            return False
        self.warned.add(mark)
        log.warning(message, extra={"namespace": key[0], "tcp": key[1]})
        return True

    async def report_outside_window(
        self, key: TcpKey, uid: str, outside: OutsideWindow, now: datetime
    ) -> None:
        """A renewal that could not wait for a window: logged, and one audit event for it."""
        ns, name = key
        which = ",".join(k.value for k in outside.kinds)
        if not self.first_warning(
            key, (key, "window:" + which, outside.not_after), outside.message
        ):
            return
        late = RenewalOutsideWindow(
            namespace=ns,
            tcp=name,
            at=now,
            secrets=tuple(f"{name}-{k.value}" for k in outside.kinds),
            not_after=outside.not_after,
            message=outside.message[:1024],
        )
        digest = hashlib.sha256(which.encode()).hexdigest()[:12]
        mark_id = f"{uid}:window:{digest}:{outside.not_after.isoformat()}"
        await publish_audit(self.bus, late, mark_id)

    async def phased(self, key: TcpKey, decision: Decision, now: datetime) -> None:
        """Waiting phased rotations moved on or kept; those whose signer is replaced at once
        given up."""
        ns, name = key
        for due in decision.steps:
            await self.keep_or_move_on(key, due, now)
        for record in decision.superseded:
            why = f"{name}-{record.phased} is replaced at once (missing or invalid)"
            given_up = await self.store.advance(ns, name, record.id, Superseded(why, now))
            if given_up is not None:
                self.state.put_record(given_up)
            log.warning(
                "phased rotation given up at step %s: %s",
                record.step.value,
                why,
                extra={"namespace": ns, "tcp": name, "rotation_id": record.id},
            )

    async def keep_or_move_on(self, key: TcpKey, due: StepDue, now: datetime) -> None:
        """A waiting phased rotation whose hold has passed moves on; one that waits for the
        operator is written again, so that it does not expire."""
        view = self.state.view(key)
        record = due.record
        if due.move_on and view is not None:
            await self.next_step(record, view, now)
            return
        kept = await self.store.advance(
            record.namespace,
            record.tcp,
            record.id,
            Requested(record.command(now), dict(record.signers), now),
        )
        if kept is not None:
            self.state.put_record(kept)

    async def reschedule(self, record: RotationRecord, not_before: datetime, now: datetime) -> None:
        """Write a scheduled rotation again: moved to `not_before`, or refreshed."""
        observation = Scheduled(record.command(now), dict(record.signers), now, not_before)
        moved = await self.store.advance(record.namespace, record.tcp, record.id, observation)
        if moved is not None:
            self.state.put_record(moved)
        if not_before != record.not_before:
            log.info(
                "scheduled rotation moved to the next maintenance window, %s",
                not_before.isoformat(),
                extra={"namespace": record.namespace, "tcp": record.tcp, "rotation_id": record.id},
            )

    async def send(
        self,
        key: TcpKey,
        rotation: Rotation,
        now: datetime,
        *,
        requester: str,
        not_before: datetime | None = None,
    ) -> None:
        """Record the rotation and publish its command; with `not_before`, only record it
        (`scheduled`): the TCP's evaluation at that moment asks for it."""
        ns, name = key
        tcp = self.state.tcps[key]
        command = RotateCommand(
            id=rotation.id,
            namespace=ns,
            tcp=name,
            tcp_uid=tcp.uid,
            secrets=tuple(k.value for k in rotation.kinds),
            reason=rotation.reason,
            detail=rotation.detail[:1024],
            requester=requester,
            requested_at=now,
            ca_rotation=rotation.ca_rotation,
            resource_versions=rotation.evidence,
            deadline=rotation_deadline(
                rotation.reason, rotation.kinds, self.state.secrets.get(key, {}), now
            ),
            phased=rotation.phased,
            step=rotation.step,
        )
        # The record first: if the publish below fails, the record says what is owed.
        observation = (
            Requested(command, rotation.signers, now, rotation.holds)
            if not_before is None
            else Scheduled(command, rotation.signers, now, not_before)
        )
        record = await self.store.advance(ns, name, rotation.id, observation)
        if record is not None:
            self.state.put_record(record)
        if not_before is None:
            ack = await publish(
                self.bus, subjects.rotate(ns, name), encode(command), msg_id=command.round_id
            )
            if ack.duplicate:
                return
        else:
            if record is not None and record.not_before != not_before:
                return  # a retried request of one already scheduled (or started)
            self.schedule(key, not_before)  # wakes the evaluator if it sleeps past that
        metrics.ROTATIONS_REQUESTED.labels(rotation.reason.value).inc()
        log.info(
            "rotation requested: %s",
            ", ".join(command.secrets),
            extra={
                "namespace": ns,
                "tcp": name,
                "reason": rotation.reason.value,
                "rotation_id": rotation.id,
            },
        )
        audit = RotationRequested(
            namespace=ns,
            tcp=name,
            rotation_id=rotation.id,
            at=now,
            secrets=command.secrets,
            reason=rotation.reason,
            detail=command.detail,
            requester=requester,
            ca_rotation=rotation.ca_rotation,
            not_before=not_before,
            phased=rotation.phased,
            step=rotation.step.value,
        )
        await publish_audit(self.bus, audit, command.round_id)

    async def next_step(
        self, record: RotationRecord, view: TcpState, now: datetime, *, abort: bool = False
    ) -> str:
        """Move a waiting phased rotation on to its next step (or back out of it, `abort`): the
        record, then the command (a lost publish is sent again like any requested rotation's).
        The step started."""
        command = next_step_command(record, view, now, abort=abort)
        moved = await self.store.advance(
            record.namespace, record.tcp, record.id, NextStep(record.step, command, now, abort)
        )
        if moved is None or moved.step is not command.step or moved.phase is not Phase.REQUESTED:
            return moved.step.value if moved is not None else ""  # moved on by someone else
        self.state.put_record(moved)
        await publish(
            self.bus,
            subjects.rotate(record.namespace, record.tcp),
            encode(command),
            msg_id=command.round_id,
        )
        extra = {"namespace": record.namespace, "tcp": record.tcp, "rotation_id": record.id}
        log.info(
            "phased rotation of %s: step %s requested", record.phased, command.step, extra=extra
        )
        audit = RotationRequested(
            namespace=record.namespace,
            tcp=record.tcp,
            rotation_id=record.id,
            at=now,
            secrets=command.secrets,
            reason=record.reason,
            detail=record.detail,
            requester=record.requester,
            phased=record.phased,
            step=command.step.value,
        )
        await publish_audit(self.bus, audit, command.round_id)
        return command.step.value

    async def resend(self, resend: Resend, now: datetime) -> None:
        record = resend.record
        command = record.command(now)
        moved = await self.store.advance(
            record.namespace, record.tcp, record.id, Requested(command, resend.signers, now)
        )
        if moved is not None:
            self.state.put_record(moved)
        msg_id = f"{record.round_id}:{resend.token}" if resend.token else record.round_id
        await publish(
            self.bus, subjects.rotate(record.namespace, record.tcp), encode(command), msg_id=msg_id
        )
        log.info(
            "rotation sent again: %s",
            resend.why,
            extra={"namespace": record.namespace, "tcp": record.tcp, "rotation_id": record.id},
        )

    # --- the public rotate API -------------------------------------------------------------

    async def on_request(self, request: Request) -> bytes:
        try:
            req = decode_request(request.data)
        except MalformedMessage as exc:
            raise ServiceError(400, str(exc)) from None
        if not self.ready():
            raise ServiceError(503, "lifecycle is starting; try again shortly")
        key = (req.namespace, req.tcp)
        async with self.lock:
            view = self.state.view(key)
            verdict = resolve(req, view, self.sa_overlap)
            now = now_utc()
            if isinstance(verdict, Rejected):
                if view is not None:
                    event = RotationRejected(
                        namespace=req.namespace,
                        tcp=req.tcp,
                        at=now,
                        code=int(verdict.code),
                        message=verdict.message,
                        requester=req.requester,
                    )
                    await publish_audit(
                        self.bus, event, f"{req.request_id or now.isoformat()}:{verdict.code}"
                    )
                raise ServiceError(int(verdict.code), verdict.message)
            if verdict.moves is not None and view is not None:
                step = await self.next_step(verdict.moves, view, now, abort=req.abort)
                return encode(
                    RotateAccepted(
                        id=verdict.id,
                        namespace=req.namespace,
                        tcp=req.tcp,
                        secrets=tuple(k.value for k in verdict.kinds),
                        phased=verdict.phased.value if verdict.phased else "",
                        step=step,
                    )
                )
            rotation = Rotation(
                id=verdict.id,
                reason=Reason.REQUESTED,
                kinds=verdict.kinds,
                detail=req.note or f"requested by {req.requester}",
                ca_rotation=verdict.ca_rotation,
                evidence=verdict.evidence,
                signers=signer_versions(verdict.kinds, view) if view is not None else {},
                step=verdict.step,
                phased=verdict.phased.value if verdict.phased else "",
                holds=verdict.holds,
            )
            not_before = (
                window_later(view, now, self.policy)
                if req.wait_for_window and view is not None
                else None
            )
            await self.send(key, rotation, now, requester=req.requester, not_before=not_before)
            if not_before is not None:  # a retried request: the moment first chosen
                record = self.state.rotations.get(key, {}).get(rotation.id)
                if record is not None:
                    not_before = record.not_before
        accepted = RotateAccepted(
            id=verdict.id,
            namespace=req.namespace,
            tcp=req.tcp,
            secrets=tuple(k.value for k in verdict.kinds),
            ca_rotation=verdict.ca_rotation,
            not_before=not_before,
            phased=verdict.phased.value if verdict.phased else "",
            step=verdict.step.value,
        )
        return encode(accepted)

    # --- the schedule API ----------------------------------------------------------------

    async def on_schedule(self, request: Request) -> bytes:
        """The renewals scheduled (services/lifecycle/schedule.py), one page."""
        try:
            req = decode_schedule_request(request.data)
            after = schedule.check(req)
        except (MalformedMessage, schedule.BadScheduleRequest) as exc:
            raise ServiceError(400, str(exc)) from None
        if not self.ready():
            raise ServiceError(503, "lifecycle is starting; try again shortly")
        keys = sorted(
            k
            for k in self.state.tcps
            if (not req.namespace or k[0] == req.namespace)
            and (not req.tcp or k[1] == req.tcp)
            and (after is None or k >= (after.namespace, after.tcp))
        )
        views = (v for k in keys if (v := self.state.view(k)) is not None)
        return encode(schedule.page(views, req, self.policy, now_utc()))


async def main(settings: Settings, stop: asyncio.Event) -> None:
    bus = await connect(settings.nats_url, name="certlc-lifecycle", auth=settings.nats_auth())
    try:
        await ensure_topology(bus, *topology.for_service("lifecycle", settings.stream_replicas))
        app = Lifecycle(bus, settings)
        await app.store.bucket()  # created if missing: its stream is followed below
        health = HealthServer(
            lambda: (app.ready() and bus.is_connected, "ready" if app.ready() else "catching up"),
            port=settings.health_port,
        )
        if settings.health_port >= 0:
            await health.start()
        membership = Membership(
            bus,
            subjects.members("lifecycle"),
            partitions=settings.partitions,
            lease=settings.member_lease.total_seconds(),
            on_change=app.on_partitions,
        )
        metrics.MEMBERS.labels("lifecycle").set_function(lambda: len(membership.members()))
        tasks = [
            asyncio.create_task(membership.run(stop)),
            asyncio.create_task(
                follow_stream(
                    bus,
                    subjects.EVENTS_STREAM,
                    subjects.EVENTS_SUBJECTS,
                    app.on_event,
                    stop_event=stop,
                    caught_up=app.caught_up,
                )
            ),
            asyncio.create_task(
                follow_stream(
                    bus,
                    topology.RECORDS_STREAM,
                    topology.RECORDS_SUBJECTS,
                    app.on_record,
                    stop_event=stop,
                    caught_up=app.records_caught_up,
                )
            ),
            asyncio.create_task(app.run_evaluator(stop)),
            asyncio.create_task(app.run_reevaluation(stop)),
            asyncio.create_task(
                serve(
                    bus,
                    subjects.API_ROTATE,
                    app.on_request,
                    queue=subjects.API_QUEUE_GROUP,
                    stop_event=stop,
                    discovery=Discovery(
                        name=subjects.API_SERVICE,
                        version=package_version(),
                        endpoint=subjects.API_ENDPOINT,
                        description="certlc rotate requests (certlc.api.v1.rotate)",
                    ),
                )
            ),
            asyncio.create_task(
                serve(
                    bus,
                    subjects.API_SCHEDULE,
                    app.on_schedule,
                    queue=subjects.API_QUEUE_GROUP,
                    stop_event=stop,
                )
            ),
        ]
        log.info("lifecycle running", extra={"subject": subjects.API_ROTATE})
        await stop.wait()
        app.wakeup.set()
        await asyncio.gather(*tasks, return_exceptions=True)
        await health.stop()
    finally:
        await bus.close()
