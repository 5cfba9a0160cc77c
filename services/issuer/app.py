"""The issuer process: consumes rotate commands, mints, writes each Secret in one write.

record `issuing` -> gather (reads) -> plan (pure, minting on a worker thread) -> write ->
publish -> record `written` -> ack. The ack comes last: a crash anywhere before it redelivers
the command (within the consumer's ack_wait), and the plan then skips what the first attempt
already wrote (each Secret records the rotation id), so nothing is done twice.

A failed attempt moves the rotation record to `failed` with the error and the time of the next
attempt, emits a `rotation.failed` audit event (rollout records it as a Warning Event), and
gives the message back to the server with that delay: an exponential backoff from
CERTLC_RETRY_INITIAL doubling up to CERTLC_RETRY_MAX, counted by the record's attempts (durable,
unlike a delivery count). Only a command whose TCP is gone, or that does not decode, is final.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import UTC, datetime, timedelta
from typing import Any

from libs.bus import Bus, Delivery, publish
from libs.bus.backoff import Backoff
from libs.bus.errors import PermanentError, TemporaryError
from libs.contracts import subjects
from libs.contracts.api import (
    CaRotationStarted,
    CertificateIssued,
    RotationFailed,
    SecretWrittenEvent,
)
from libs.contracts.codec import MalformedMessage, decode_command, encode
from libs.contracts.messages import CaRotationBegan, RotateCommand, SecretsWritten, WrittenSecret
from libs.contracts.records import IssueFailed, IssueStarted, Phase, RotationRecord, Written
from libs.kube import aio
from libs.kube.client import KubeClient
from libs.kube.errors import AlreadyExists, Conflict, KubeError, NotFound, RetryableKubeError
from libs.pki import CA_SIGNED_KINDS, KeyAlgorithm, PkiError, SecretKind, summarize
from libs.pki.overrides import tcp_profile
from libs.pki.reserve import KeyReserve
from libs.pki.steps import RotationStep
from libs.runtime import metrics
from libs.runtime.config import Settings
from libs.runtime.records import RotationStore
from libs.runtime.service import publish_audit, run_consumer_service
from services.issuer.gather import Gone, gather
from services.issuer.plan import Gathered, IssueSettings, Plan, PlanError, SkipCause, Write, plan

log = logging.getLogger(__name__)

PAST_ISSUING = frozenset({Phase.WRITTEN, Phase.ROLLING_OUT, Phase.WAITING, Phase.COMPLETED})


async def _discard(task: asyncio.Future[Any]) -> None:
    """Cancel work no longer needed, and let it end (its error, if any, no longer matters)."""
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError, Exception):
        await task


class Replan(TemporaryError):
    """A Secret changed while this attempt wrote: plan again at once (not a failure)."""


class Issuer:
    def __init__(
        self, bus: Bus, kube: KubeClient, settings: Settings, keys: KeyReserve | None = None
    ) -> None:
        self.bus = bus
        self.kube = kube
        self.cfg = IssueSettings(fleet=settings.fleet_profile())
        self.keys = keys or KeyReserve(0)
        self.records = RotationStore(bus, settings.stream_replicas)
        self.backoff = Backoff(
            initial=settings.retry_initial.total_seconds(),
            maximum=settings.retry_max.total_seconds(),
            jitter=0.1,
        )

    async def handle(self, delivery: Delivery) -> None:
        try:
            cmd = decode_command(delivery.data)
        except MalformedMessage as exc:
            raise PermanentError(f"malformed rotate command on {delivery.subject}: {exc}") from None
        extra = {"namespace": cmd.namespace, "tcp": cmd.tcp, "rotation_id": cmd.id}
        metrics.CONSUMER_PENDING.labels("issuer").set(delivery.num_pending)
        # The record's step and the reads overlap: neither waits for the other.
        reads = asyncio.ensure_future(gather(self.kube, cmd))
        try:
            record = await self.records.advance(
                cmd.namespace, cmd.tcp, cmd.id, IssueStarted(cmd, datetime.now(UTC))
            )
        except BaseException:
            await _discard(reads)
            raise
        if record is not None and record.phase in PAST_ISSUING:
            await _discard(reads)
            log.info("rotation already written (%s); nothing to do", record.phase, extra=extra)
            return
        if record is not None and record.step is not cmd.step:
            await _discard(reads)
            log.info(
                "a command for step %r; the rotation is at step %r: nothing to do",
                cmd.step.value,
                record.step.value,
                extra=extra,
            )
            return
        outcome = metrics.ROTATIONS.labels(cmd.reason.value, "failed")
        try:
            await self.rotate(cmd, await reads, delivery)
            outcome = metrics.ROTATIONS.labels(cmd.reason.value, "success")
        except Replan:
            outcome = metrics.ROTATIONS.labels(cmd.reason.value, "retried")
            raise
        except Gone as exc:
            log.error("rotation abandoned: %s", exc, extra=extra)
            await self.failed(cmd, record, str(exc), final=True)
            raise PermanentError(str(exc)) from None
        except (TemporaryError, PermanentError, PlanError, PkiError, RetryableKubeError) as exc:
            outcome = metrics.ROTATIONS.labels(cmd.reason.value, "retried")
            raise await self.failed(cmd, record, str(exc)) from None
        finally:
            outcome.inc()

    async def failed(
        self,
        cmd: RotateCommand,
        record: RotationRecord | None,
        message: str,
        *,
        final: bool = False,
    ) -> TemporaryError:
        """Record the failure (record, audit event), and the nak that retries it."""
        now = datetime.now(UTC)
        attempt = record.attempts if record is not None else 1
        delay = self.backoff.delay(attempt)
        next_retry = None if final else now + timedelta(seconds=delay)
        log.error(
            "rotation failed (attempt %d): %s%s",
            attempt,
            message,
            "" if next_retry is None else f"; next attempt in {delay:.0f}s",
            extra={"namespace": cmd.namespace, "tcp": cmd.tcp, "rotation_id": cmd.id},
        )
        await self.records.advance(
            cmd.namespace, cmd.tcp, cmd.id, IssueFailed(message, now, next_retry, cmd.step)
        )
        event = RotationFailed(
            namespace=cmd.namespace,
            tcp=cmd.tcp,
            rotation_id=cmd.id,
            at=now,
            message=message[:1024],
            retryable=not final,
            secrets=cmd.secrets,
            attempt=attempt,
            next_retry=next_retry,
        )
        await publish_audit(self.bus, event, f"{cmd.round_id}:{attempt}")
        return TemporaryError(message, delay=delay)

    async def rotate(self, cmd: RotateCommand, gathered: Gathered, delivery: Delivery) -> None:
        now = datetime.now(UTC)
        for rejected in tcp_profile(gathered.annotations, self.cfg.fleet)[1]:
            # lifecycle reports it (audit event, Warning Event); here only the log says why
            log.warning(
                "annotation %s=%r ignored: %s; the fleet setting applies",
                rejected.annotation,
                rejected.value,
                rejected.message,
                extra={"namespace": cmd.namespace, "tcp": cmd.tcp, "rotation_id": cmd.id},
            )
        result: Plan = await asyncio.to_thread(plan, cmd, gathered, now, self.cfg, self.keys.take)
        await delivery.in_progress()
        # A CA replaced under existing certificates is a rotation; a first CA is not.
        rotating = cmd.ca_rotation and any(k in gathered.secrets for k in CA_SIGNED_KINDS)
        phased_ca = cmd.phased == SecretKind.CA.value
        begins = rotating or (phased_ca and cmd.step is RotationStep.PREPARE)
        if begins and any(w.kind is SecretKind.CA for w in result.writes):
            began = CaRotationBegan(id=cmd.id, namespace=cmd.namespace, tcp=cmd.tcp, at=now)
            await publish(
                self.bus,
                subjects.issued(cmd.namespace, cmd.tcp),
                encode(began),
                msg_id=f"ca-began:{cmd.id}",
            )
            started = CaRotationStarted(
                namespace=cmd.namespace,
                tcp=cmd.tcp,
                rotation_id=cmd.id,
                at=now,
                secrets=cmd.secrets,
            )
            await publish_audit(self.bus, started, cmd.id)
        written: list[WrittenSecret] = []
        for write in result.writes:
            outcome = await self.write(cmd, write)
            written.append(outcome)
            await self.audit_write(cmd, write, outcome, now)
        done = [s for s in result.skipped if s.cause is SkipCause.DONE]
        written.extend(
            WrittenSecret(
                name=f"{cmd.tcp}-{s.kind.value}",
                kind=s.kind.value,
                checksum=gathered.secrets[s.kind].annotations.get("kamaji.clastix.io/checksum", ""),
                resource_version=gathered.secrets[s.kind].resource_version,
                action="unchanged",
            )
            for s in done
        )
        for skip in result.skipped:
            log.info(
                "not re-issued: %s",
                skip.why,
                extra={"namespace": cmd.namespace, "tcp": cmd.tcp, "secret": skip.kind.value},
            )
        if written:
            message = SecretsWritten(
                id=cmd.id,
                namespace=cmd.namespace,
                tcp=cmd.tcp,
                secrets=tuple(written),
                reason=cmd.reason,
                # the TCP is Ready again once this is rolled out (phased: the complete step)
                ca_rotation=rotating or (phased_ca and cmd.step is RotationStep.COMPLETE),
                written_at=datetime.now(UTC),
                step=cmd.step,
            )
            await publish(
                self.bus,
                subjects.issued(cmd.namespace, cmd.tcp),
                encode(message),
                msg_id=f"written:{cmd.round_id}",
            )
        # Only now: a crash before this line leaves the record `issuing`, and the redelivered
        # command finishes the work.
        await self.records.advance(
            cmd.namespace,
            cmd.tcp,
            cmd.id,
            Written(datetime.now(UTC), rolls=bool(written), step=cmd.step),
        )

    async def write(self, cmd: RotateCommand, w: Write) -> WrittenSecret:
        """One Secret, in one write."""
        ns = cmd.namespace
        try:
            if w.delete_first:
                with contextlib.suppress(NotFound):
                    await aio.call(self.kube.delete_secret, ns, w.name)
            if w.replace_version is None:
                obj = await aio.call(self.kube.create_secret, ns, w.body)
                action = "created"
            else:
                body = {
                    **w.body,
                    "metadata": {**w.body["metadata"], "resourceVersion": w.replace_version},
                }
                obj = await aio.call(self.kube.replace_secret, ns, w.name, body)
                action = "replaced"
        except (AlreadyExists, Conflict, NotFound) as exc:
            # Changed under us: plan again from a fresh read. The plan skips what was
            # superseded meanwhile and what this rotation already wrote.
            raise Replan(
                f"{w.name} changed while writing ({exc.reason}); re-planning", delay=0.3
            ) from exc
        except KubeError as exc:
            if isinstance(exc, RetryableKubeError):
                raise
            raise PermanentError(f"writing Secret {ns}/{w.name}: {exc}") from exc
        version = str((obj.get("metadata") or {}).get("resourceVersion") or "")
        metrics.SECRETS_WRITTEN.labels(w.kind.value, action).inc()
        log.info(
            "Secret %s",
            action,
            extra={"namespace": ns, "tcp": cmd.tcp, "secret": w.name, "rotation_id": cmd.id},
        )
        return WrittenSecret(
            name=w.name,
            kind=w.kind.value,
            checksum=w.checksum,
            resource_version=version,
            action=action,
        )

    async def audit_write(
        self, cmd: RotateCommand, w: Write, out: WrittenSecret, now: datetime
    ) -> None:
        try:
            facts = summarize(w.kind, w.data)
        except PkiError:
            facts = None  # SA keypair, datastore-config: no certificate
        if facts is not None:
            issued = CertificateIssued(
                namespace=cmd.namespace,
                tcp=cmd.tcp,
                rotation_id=cmd.id,
                at=now,
                secret=w.name,
                kind=w.kind.value,
                serial=facts.serial,
                not_before=facts.not_before,
                not_after=facts.not_after,
                fingerprint_sha256=facts.fingerprint_sha256,
                signer=facts.issuer,
            )
            await publish_audit(self.bus, issued, f"{cmd.round_id}:{w.kind.value}")
        written = SecretWrittenEvent(
            namespace=cmd.namespace,
            tcp=cmd.tcp,
            rotation_id=cmd.id,
            at=now,
            secret=w.name,
            kind=w.kind.value,
            checksum=out.checksum,
            resource_version=out.resource_version,
            action=out.action,
        )
        await publish_audit(self.bus, written, f"{cmd.round_id}:{w.kind.value}")


IDLE_BEFORE_REFILL = 0.25  # seconds without a key taken before the reserve is refilled


def reserve_for(settings: Settings) -> KeyReserve:
    """The key reserve: the fleet's key algorithm, and RSA-2048 for service-account keys
    (services/issuer/plan.py `key_algorithm`); others join when a TCP's profile asks."""
    fleet = settings.fleet_profile().key_algorithm
    return KeyReserve(settings.key_reserve, dict.fromkeys((fleet, KeyAlgorithm.RSA_2048)))


async def keep_reserve(keys: KeyReserve, stop: asyncio.Event) -> None:
    """Refill the reserve one key at a time on a worker thread, once no key has been taken for
    IDLE_BEFORE_REFILL seconds; sleep while it is full, until a key is taken."""
    loop = asyncio.get_running_loop()
    taken = asyncio.Event()
    last = loop.time() - IDLE_BEFORE_REFILL

    def mark() -> None:
        nonlocal last
        last = loop.time()
        taken.set()

    def on_take(reserved: bool) -> None:  # on the thread that took the key
        metrics.KEYS_TAKEN.labels("reserve" if reserved else "on-demand").inc()
        with contextlib.suppress(RuntimeError):  # the loop is closing
            loop.call_soon_threadsafe(mark)

    def export() -> None:
        for algorithm in keys.algorithms():
            metrics.RESERVED_KEYS.labels(algorithm.value).set(keys.held(algorithm))

    keys.on_take = on_take
    export()
    while not stop.is_set():
        quiet = loop.time() - last
        if quiet < IDLE_BEFORE_REFILL:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), IDLE_BEFORE_REFILL - quiet)
            continue
        taken.clear()
        if await asyncio.to_thread(keys.refill_one):
            export()
            continue
        export()
        waits = [asyncio.ensure_future(taken.wait()), asyncio.ensure_future(stop.wait())]
        try:
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiting in waits:
                waiting.cancel()


async def main(settings: Settings, stop: asyncio.Event) -> None:
    keys = reserve_for(settings)
    async with asyncio.TaskGroup() as group:
        # with CERTLC_KEY_RESERVE=0 it holds nothing, and only counts the keys taken
        group.create_task(keep_reserve(keys, stop))
        group.create_task(
            run_consumer_service(
                "issuer",
                settings,
                stop,
                stream=subjects.ROTATE_STREAM,
                durable=subjects.ISSUER_DURABLE,
                make_handler=lambda bus, kube: Issuer(bus, kube, settings, keys).handle,
            )
        )
