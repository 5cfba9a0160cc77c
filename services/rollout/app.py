"""The rollout process: after a TCP's Secrets change, roll its Deployment out once; keep status.

Messages of one TCP are handled in order. A `SecretsWritten` is handled after a settle delay,
reading the Secrets as they are *then*: Secrets written by several commands close together end
up in one pod template, hence one rollout, and a later message finds nothing left to change.
The status phase is `CertificateAuthorityRotating` from `CaRotationBegan` until the rollout
with the new CA has completed, then `Ready`.

A second consumer follows the rotation failures on the audit stream and records each as a
Warning Event on its TCP (the issuer may not write Events); see `failures`.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import logging
from datetime import UTC, datetime, timedelta
from typing import Any, NoReturn

from libs.bus import Bus, Delivery
from libs.bus.errors import PermanentError, TemporaryError
from libs.contracts import subjects
from libs.contracts.api import (
    CaRotationCompleted,
    RolloutCompleted,
    RolloutFailed,
    RolloutStarted,
    RotationStepDone,
)
from libs.contracts.budget import Claim, Slots, entry_key, queue, recheck_after
from libs.contracts.codec import MalformedMessage, decode_audit, decode_issued
from libs.contracts.messages import CaRotationBegan, SecretsWritten
from libs.contracts.records import Phase, RolloutSeen, RolloutState, RotationRecord
from libs.kube import aio
from libs.kube.client import KubeClient
from libs.kube.errors import AlreadyExists, KubeError, NotFound, RetryableKubeError
from libs.pki import CHECKSUM_ANNOTATION, STATUS_PATHS, SecretKind, checksum, secret_name
from libs.pki.steps import RotationStep
from libs.runtime import metrics
from libs.runtime.config import Settings
from libs.runtime.records import RotationStore
from libs.runtime.service import ExtraConsumer, publish_audit, run_consumer_service
from libs.runtime.slots import SlotStore
from services.rollout.events import tcp_event
from services.rollout.failures import Ignored, failure, failure_event
from services.rollout.plan import (
    CA_ROTATING,
    DEADLINE_EXCEEDED,
    READY,
    SecretFact,
    deployment_patch,
    judge,
    recheck_delay,
    status_patch,
)

log = logging.getLogger(__name__)


def secret_fact(obj: dict[str, Any]) -> SecretFact:
    meta = obj.get("metadata") or {}
    value = (meta.get("annotations") or {}).get(CHECKSUM_ANNOTATION)
    if not value:
        data: dict[str, bytes] = {}
        for key, raw in (obj.get("data") or {}).items():
            try:
                data[key] = base64.b64decode(str(raw), validate=True)
            except (binascii.Error, ValueError):
                data[key] = str(raw).encode()
        value = checksum(data)
    return SecretFact(str(meta.get("name") or ""), str(value))


class Rollout:
    def __init__(self, bus: Bus, kube: KubeClient, settings: Settings) -> None:
        self.bus = bus
        self.kube = kube
        self.settle = settings.rollout_settle.total_seconds()
        self.timeout = settings.rollout_timeout.total_seconds()
        self.recheck = settings.rollout_recheck.total_seconds()
        self.recheck_max = settings.rollout_recheck_max.total_seconds()
        self.records = RotationStore(bus, settings.stream_replicas)
        self.budget = settings.rollout_budget_of()
        self.slots = SlotStore(bus, self.budget, settings.stream_replicas)
        metrics.ROLLOUT_TIMEOUT.set(self.timeout)
        metrics.ROLLOUT_BUDGET.labels("fleet").set(self.budget.total)
        metrics.ROLLOUT_BUDGET.labels("namespace").set(self.budget.per_namespace)

    async def handle(self, delivery: Delivery) -> None:
        metrics.CONSUMER_PENDING.labels("rollout").set(delivery.num_pending)
        try:
            message = decode_issued(delivery.data)
        except MalformedMessage as exc:
            raise PermanentError(f"malformed message on {delivery.subject}: {exc}") from None
        try:
            match message:
                case CaRotationBegan():
                    await self.ca_began(message)
                case SecretsWritten():
                    await self.secrets_written(message)
        except RetryableKubeError as exc:
            raise TemporaryError(str(exc), delay=exc.retry_after or 2.0) from None

    async def event(
        self, tcp: dict[str, Any], reason: str, message: str, *, warning: bool = False
    ) -> None:
        """Record a Kubernetes Event on the TCP; failing to do so never fails the work."""
        body = tcp_event(
            tcp, reason=reason, message=message, warning=warning, now=datetime.now(UTC)
        )
        try:
            await aio.call(self.kube.create_event, str(body["metadata"]["namespace"]), body)
        except KubeError as exc:
            log.warning("could not record event %s: %s", reason, exc)

    async def _tcp(self, namespace: str, name: str) -> dict[str, Any]:
        try:
            return await aio.call(self.kube.get_tcp, namespace, name)
        except NotFound:
            raise PermanentError(
                f"TenantControlPlane {namespace}/{name} no longer exists"
            ) from None

    async def ca_began(self, msg: CaRotationBegan) -> None:
        tcp = await self._tcp(msg.namespace, msg.tcp)
        patch = status_patch(tcp, {}, msg.at, phase=CA_ROTATING)
        if patch is not None:
            await aio.call(self.kube.patch_tcp_status, msg.namespace, msg.tcp, patch)
            log.info("CA rotation started", extra={"namespace": msg.namespace, "tcp": msg.tcp})
            await self.event(tcp, "CertificateAuthorityRotating", "the CA is being replaced")

    async def _facts(self, namespace: str, tcp: str) -> dict[SecretKind, SecretFact]:
        facts: dict[SecretKind, SecretFact] = {}
        for kind in STATUS_PATHS:
            try:
                obj = await aio.call(self.kube.get_secret, namespace, secret_name(tcp, kind))
            except NotFound:
                continue
            facts[kind] = secret_fact(obj)
        return facts

    async def secrets_written(self, msg: SecretsWritten) -> None:
        """Patch once, then come back: every visit judges the Deployment as it is and moves the
        rotation record; a rollout still under way gives its slot back (a nak with a delay)
        instead of waiting in it, so one TCP's slow or stuck rollout delays no other."""
        ns, name = msg.namespace, msg.tcp
        now = datetime.now(UTC)
        age = (now - msg.written_at).total_seconds()
        if 0 <= age < self.settle:  # let Secrets written close together join one rollout
            raise TemporaryError("settling", delay=self.settle - age)
        record = await self.records.get(ns, name, msg.id)
        if record is not None and (
            record.phase in (Phase.COMPLETED, Phase.WAITING) or record.step is not msg.step
        ):
            return  # a redelivery of work that is done (or of a step the rotation is past)
        await self.still_waiting(msg, record, now)
        tcp = await self._tcp(ns, name)
        facts = await self._facts(ns, name)
        try:
            deployment = await aio.call(self.kube.get_deployment, ns, name)
        except NotFound:
            log.info("no control-plane Deployment yet; nothing to roll out", extra=self._extra(msg))
            await self.free(msg, now)
            await self.finish(msg, tcp, facts, record, RolloutState.NO_DEPLOYMENT, now)
            return
        patch = deployment_patch(deployment, facts)
        if patch is not None:
            await self.admit(msg, record, tcp, now)
            await self.patch(msg, tcp, patch, now)
            raise TemporaryError("rollout started", delay=self.recheck)
        since = record.rollout_since if record is not None else None
        state, why = judge(deployment, since, now, self.timeout)
        if state in (RolloutState.COMPLETE, RolloutState.UNCHANGED):
            await self.free(msg, now)
            await self.finish(msg, tcp, facts, record, state, now)
            return
        if state is RolloutState.PROGRESSING:
            await self.hold(msg, record, now)
        else:  # paused or failed: it is reported, and holds no slot the fleet needs
            await self.free(msg, now)
        await self.records.advance(ns, name, msg.id, RolloutSeen(state, now, why, msg.step))
        if state is not RolloutState.PROGRESSING and (
            record is None or record.rollout is not state
        ):
            await self.report(msg, tcp, state, why)  # once, when it stops moving
        elapsed = (now - (since or now)).total_seconds()
        delay = recheck_delay(elapsed, self.recheck, self.recheck_max)
        if state is not RolloutState.PROGRESSING:
            delay = self.recheck_max
        raise TemporaryError(f"rollout {state}: {why}", delay=delay)

    def _claim(self, msg: SecretsWritten, record: RotationRecord | None, *, rolling: bool) -> Claim:
        deadline = record.deadline if record is not None else None
        return Claim(msg.namespace, msg.tcp, msg.id, deadline or msg.written_at, rolling=rolling)

    async def admit(
        self, msg: SecretsWritten, record: RotationRecord | None, tcp: dict[str, Any], now: datetime
    ) -> None:
        """A slot of the rollout budget, or back later (a nak with a delay: waiting holds no
        consumer slot); the first time in the queue is a Normal Event on the TCP."""
        if not self.budget.limited:
            return
        verdict = await self.slots.claim(self._claim(msg, record, rolling=False), now)
        self.show(verdict.slots)
        if verdict.granted:
            return
        if verdict.queued:
            log.info(
                "waiting for a rollout slot",
                extra={**self._extra(msg), "position": verdict.position},
            )
            await self.event(
                tcp,
                "RolloutQueued",
                f"waiting for a rollout slot (CERTLC_ROLLOUT_BUDGET): {verdict.position} in the "
                "queue",
            )
        self.wait(verdict.position)

    async def still_waiting(
        self, msg: SecretsWritten, record: RotationRecord | None, now: datetime
    ) -> None:
        """A rollout already in the queue and still not served comes back later at the cost of
        one read of the budget (renewing its place), not a read of the TCP and its Secrets."""
        if not self.budget.limited:
            return
        if entry_key(msg.namespace, msg.tcp) not in (await self.slots.read()).waiting:
            return
        verdict = await self.slots.claim(self._claim(msg, record, rolling=False), now)
        self.show(verdict.slots)
        if not verdict.granted:
            self.wait(verdict.position)

    def wait(self, position: int) -> NoReturn:
        delay = recheck_after(position, self.budget, timedelta(seconds=self.recheck_max))
        raise TemporaryError(
            f"waiting for a rollout slot, {position} in the queue", delay=delay.total_seconds()
        )

    async def hold(self, msg: SecretsWritten, record: RotationRecord | None, now: datetime) -> None:
        """Renew the slot of a rollout under way (counted even if it started unbudgeted)."""
        if self.budget.limited:
            self.show((await self.slots.claim(self._claim(msg, record, rolling=True), now)).slots)

    async def free(self, msg: SecretsWritten, now: datetime) -> None:
        if self.budget.limited:
            self.show(await self.slots.release(msg.namespace, msg.tcp, now))

    @staticmethod
    def show(slots: Slots) -> None:
        waiting = queue(slots)
        metrics.ROLLOUT_SLOTS_IN_USE.set(len(slots.holders))
        metrics.ROLLOUT_QUEUE.set(len(waiting))
        metrics.ROLLOUT_QUEUE_DEADLINE.set(waiting[0].deadline.timestamp() if waiting else 0)

    @staticmethod
    def _extra(msg: SecretsWritten) -> dict[str, str]:
        return {"namespace": msg.namespace, "tcp": msg.tcp, "rotation_id": msg.id}

    async def patch(
        self, msg: SecretsWritten, tcp: dict[str, Any], patch: dict[str, Any], now: datetime
    ) -> None:
        ns, name = msg.namespace, msg.tcp
        changed = tuple(sorted(patch["spec"]["template"]["metadata"]["labels"]))
        await aio.call(self.kube.patch_deployment, ns, name, patch)
        await self.records.advance(
            ns, name, msg.id, RolloutSeen(RolloutState.PROGRESSING, now, step=msg.step)
        )
        metrics.ROLLOUT_STARTED.labels(ns, name).set(now.timestamp())
        event = RolloutStarted(
            namespace=ns,
            tcp=name,
            rotation_id=msg.id,
            at=now,
            deployment=name,
            secrets=tuple(c.rsplit("/", 1)[-1] for c in changed),
        )
        await publish_audit(self.bus, event, f"{msg.round_id}:{'|'.join(changed)}")
        log.info("rollout started", extra=self._extra(msg))
        await self.event(tcp, "RolloutStarted", f"new material in {', '.join(event.secrets)}")

    async def report(
        self, msg: SecretsWritten, tcp: dict[str, Any], state: RolloutState, why: str
    ) -> None:
        """Say once that a rollout stopped moving: paused (Normal), failed (Warning + audit)."""
        ns, name = msg.namespace, msg.tcp
        if state is RolloutState.PAUSED:
            log.info("rollout paused: %s", why, extra=self._extra(msg))
            await self.event(tcp, "RolloutPaused", f"waiting for the Deployment: {why}")
        elif state is RolloutState.FAILED:
            reason = DEADLINE_EXCEEDED if why.startswith(DEADLINE_EXCEEDED) else "RolloutTimeout"
            failed = RolloutFailed(
                namespace=ns,
                tcp=name,
                rotation_id=msg.id,
                at=datetime.now(UTC),
                deployment=name,
                message=why[:1024],
                reason=reason,
            )
            await publish_audit(self.bus, failed, f"{msg.round_id}:{reason}")
            log.error("rollout failed: %s", why, extra=self._extra(msg))
            await self.event(tcp, "RolloutFailed", f"{why}; still watching it", warning=True)
            metrics.ROLLOUTS.labels("failed").inc()

    async def finish(
        self,
        msg: SecretsWritten,
        tcp: dict[str, Any],
        facts: dict[SecretKind, SecretFact],
        record: RotationRecord | None,
        state: RolloutState,
        now: datetime,
    ) -> None:
        """The material is in use: TCP status, the record `completed`, audit and Events."""
        ns, name = msg.namespace, msg.tcp
        patch = status_patch(tcp, facts, now, phase=READY if msg.ca_rotation else None)
        if patch is not None:
            await aio.call(self.kube.patch_tcp_status, ns, name, patch)
        since = record.rollout_since if record is not None else None
        after = await self.records.advance(ns, name, msg.id, RolloutSeen(state, now, step=msg.step))
        metrics.ROLLOUT_STARTED.remove(ns, name)
        if state is RolloutState.COMPLETE and since is not None:
            duration = (now - since).total_seconds()
            metrics.ROLLOUTS.labels("completed").inc()
            metrics.ROLLOUT_DURATION.observe(duration)
            done = RolloutCompleted(
                namespace=ns,
                tcp=name,
                rotation_id=msg.id,
                at=now,
                deployment=name,
                duration_seconds=round(duration, 3),
            )
            await publish_audit(self.bus, done, f"{msg.round_id}:completed")
            log.info("rollout completed", extra={**self._extra(msg), "duration_seconds": duration})
            await self.event(tcp, "RolloutCompleted", f"rolled out in {duration:.1f}s")
        elif state is RolloutState.UNCHANGED:
            log.info("pod template already up to date; no rollout", extra=self._extra(msg))
            metrics.ROLLOUTS.labels("unchanged").inc()
        if (
            after is not None
            and after.step is not RotationStep.NONE
            and after.phase in (Phase.WAITING, Phase.COMPLETED)
        ):
            await self.step_done(msg, tcp, after, now)
        if msg.ca_rotation:
            event = CaRotationCompleted(namespace=ns, tcp=name, rotation_id=msg.id, at=now)
            await publish_audit(self.bus, event, msg.id)
            log.info("CA rotation completed", extra=self._extra(msg))
            aborted = after is not None and after.aborted
            which = "the old CA: the phased rotation was aborted" if aborted else "the new CA"
            await self.event(
                tcp, "CertificateAuthorityRotated", f"the control plane runs with {which}"
            )

    async def step_done(
        self, msg: SecretsWritten, tcp: dict[str, Any], record: RotationRecord, now: datetime
    ) -> None:
        """A phased rotation's step is rolled out: audit event and Event, saying what is next."""
        following = record.step.next
        moves_on = record.moves_on_at()
        event = RotationStepDone(
            namespace=msg.namespace,
            tcp=msg.tcp,
            rotation_id=msg.id,
            at=now,
            secret=record.phased,
            step=record.step.value,
            next_step=following.value if following is not None else "",
            moves_on_at=moves_on,
        )
        await publish_audit(self.bus, event, f"{msg.round_id}:done")
        if following is None:
            then = "the phased rotation is complete"
        elif moves_on is None:
            then = f"{following.value} waits for the operator (certlc rotate ... --complete)"
        else:
            then = f"{following.value} starts at {moves_on.strftime('%Y-%m-%dT%H:%M:%SZ')}"
        log.info(
            "phased rotation: %s rolled out; %s", record.step.value, then, extra=self._extra(msg)
        )
        await self.event(
            tcp, "RotationStepDone", f"{record.phased}: {record.step.value} rolled out; {then}"
        )


class FailureEvents:
    """Records the rotation failures of the audit stream as Warning Events on their TCP.

    Idempotent: the Event's name derives from the failure, so a redelivery (or the other
    replica) finds it already there. A failure whose TCP is gone is acknowledged without one.
    """

    def __init__(self, kube: KubeClient) -> None:
        self.kube = kube

    async def handle(self, delivery: Delivery) -> None:
        metrics.CONSUMER_PENDING.labels(subjects.ROLLOUT_FAILURES_DURABLE).set(delivery.num_pending)
        try:
            event = decode_audit(delivery.data)
        except MalformedMessage as exc:
            raise PermanentError(f"malformed audit event on {delivery.subject}: {exc}") from None
        ns, name = event.namespace, event.tcp
        if subjects.tcp_of(delivery.subject) != (ns, name):
            raise PermanentError(f"audit event about {ns}/{name} on {delivery.subject}")
        extra = {"namespace": ns, "tcp": name, "rotation_id": event.rotation_id}
        found = failure(event, datetime.now(UTC))
        if isinstance(found, Ignored):
            log.info("no Event for this audit event: %s", found.why, extra=extra)
            return
        try:
            tcp = await aio.call(self.kube.get_tcp, ns, name)
            body = failure_event(found, tcp)
            await aio.call(self.kube.create_event, ns, body)
        except NotFound:
            log.info("TenantControlPlane gone; no %s Event", found.reason, extra=extra)
            return
        except AlreadyExists:
            log.info("%s Event already recorded", found.reason, extra=extra)
            return
        except RetryableKubeError as exc:
            raise TemporaryError(str(exc), delay=exc.retry_after or 2.0) from None
        except KubeError as exc:
            raise PermanentError(f"could not record the {found.reason} Event: {exc}") from None
        log.info("%s Event %s recorded", found.reason, body["metadata"]["name"], extra=extra)


async def main(settings: Settings, stop: asyncio.Event) -> None:
    await run_consumer_service(
        "rollout",
        settings,
        stop,
        stream=subjects.ISSUED_STREAM,
        durable=subjects.ROLLOUT_DURABLE,
        make_handler=lambda bus, kube: Rollout(bus, kube, settings).handle,
        extra=(
            ExtraConsumer(
                stream=subjects.AUDIT_STREAM,
                durable=subjects.ROLLOUT_FAILURES_DURABLE,
                make_handler=lambda bus, kube: FailureEvents(kube).handle,
            ),
        ),
    )
