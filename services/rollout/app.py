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
import time
from datetime import UTC, datetime
from typing import Any

from libs.bus import Bus, Delivery
from libs.bus.errors import PermanentError, TemporaryError
from libs.contracts import subjects
from libs.contracts.api import (
    CaRotationCompleted,
    RolloutCompleted,
    RolloutFailed,
    RolloutStarted,
)
from libs.contracts.codec import MalformedMessage, decode_audit, decode_issued
from libs.contracts.messages import CaRotationBegan, SecretsWritten
from libs.kube import aio
from libs.kube.client import KubeClient
from libs.kube.errors import AlreadyExists, KubeError, NotFound, RetryableKubeError
from libs.pki import CHECKSUM_ANNOTATION, SecretKind, checksum, secret_name
from libs.runtime import metrics
from libs.runtime.config import Settings
from libs.runtime.service import ExtraConsumer, publish_audit, run_consumer_service
from services.rollout.events import tcp_event
from services.rollout.failures import Ignored, failure, failure_event
from services.rollout.plan import (
    CA_ROTATING,
    READY,
    STATUS_PATHS,
    SecretFact,
    deployment_patch,
    rollout_complete,
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
        metrics.ROLLOUT_TIMEOUT.set(self.timeout)

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
                    await self.secrets_written(message, delivery)
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

    async def secrets_written(self, msg: SecretsWritten, delivery: Delivery) -> None:
        ns, name = msg.namespace, msg.tcp
        extra = {"namespace": ns, "tcp": name, "rotation_id": msg.id}
        await asyncio.sleep(self.settle)
        tcp = await self._tcp(ns, name)
        facts = await self._facts(ns, name)
        metrics.ROLLOUT_STARTED.labels(ns, name).set(time.time())
        try:
            rolled = await self.roll(msg, tcp, facts, delivery)
        finally:
            metrics.ROLLOUT_STARTED.remove(ns, name)
        if rolled is False:
            return  # failed: reported, status left as it is
        now = datetime.now(UTC)
        phase_now = ((tcp.get("status") or {}).get("kubernetesResources") or {}).get(
            "version"
        ) or {}
        finishing_ca = msg.ca_rotation or phase_now.get("status") == CA_ROTATING
        patch = status_patch(tcp, facts, now, phase=READY if finishing_ca else None)
        if patch is not None:
            await aio.call(self.kube.patch_tcp_status, ns, name, patch)
        if msg.ca_rotation:
            event = CaRotationCompleted(namespace=ns, tcp=name, rotation_id=msg.id, at=now)
            await publish_audit(self.bus, event, msg.id)
            log.info("CA rotation completed", extra=extra)
            await self.event(
                tcp, "CertificateAuthorityRotated", "the control plane runs with the new CA"
            )

    async def roll(
        self,
        msg: SecretsWritten,
        tcp: dict[str, Any],
        facts: dict[SecretKind, SecretFact],
        delivery: Delivery,
    ) -> bool | None:
        """Patch and wait. True: rolled out; None: nothing to roll; False: failed."""
        ns, name = msg.namespace, msg.tcp
        extra = {"namespace": ns, "tcp": name, "rotation_id": msg.id}
        try:
            deployment = await aio.call(self.kube.get_deployment, ns, name)
        except NotFound:
            log.info("no control-plane Deployment yet; nothing to roll out", extra=extra)
            return None
        patch = deployment_patch(deployment, facts)
        if patch is None:
            log.info("pod template already up to date; no rollout", extra=extra)
            metrics.ROLLOUTS.labels("unchanged").inc()
            return None
        started = time.monotonic()
        changed = tuple(sorted(patch["spec"]["template"]["metadata"]["labels"]))
        await aio.call(self.kube.patch_deployment, ns, name, patch)
        event = RolloutStarted(
            namespace=ns,
            tcp=name,
            rotation_id=msg.id,
            at=datetime.now(UTC),
            deployment=name,
            secrets=tuple(c.rsplit("/", 1)[-1] for c in changed),
        )
        await publish_audit(self.bus, event, f"{msg.id}:{'|'.join(changed)}")
        log.info("rollout started", extra=extra)
        await self.event(tcp, "RolloutStarted", f"new material in {', '.join(event.secrets)}")
        while True:
            await asyncio.sleep(0.2)
            await delivery.in_progress()
            current = await aio.call(self.kube.get_deployment, ns, name)
            if rollout_complete(current):
                break
            if time.monotonic() - started > self.timeout:
                failed = RolloutFailed(
                    namespace=ns,
                    tcp=name,
                    rotation_id=msg.id,
                    at=datetime.now(UTC),
                    deployment=name,
                    message=f"not rolled out after {self.timeout:.0f}s",
                )
                await publish_audit(self.bus, failed, msg.id)
                log.error("rollout did not complete in time", extra=extra)
                await self.event(tcp, "RolloutFailed", failed.message, warning=True)
                metrics.ROLLOUTS.labels("failed").inc()
                return False
        duration = time.monotonic() - started
        metrics.ROLLOUTS.labels("completed").inc()
        metrics.ROLLOUT_DURATION.observe(duration)
        done = RolloutCompleted(
            namespace=ns,
            tcp=name,
            rotation_id=msg.id,
            at=datetime.now(UTC),
            deployment=name,
            duration_seconds=round(duration, 3),
        )
        await publish_audit(self.bus, done, f"{msg.id}:{'|'.join(changed)}")
        log.info("rollout completed", extra={**extra, "duration_seconds": round(duration, 3)})
        await self.event(tcp, "RolloutCompleted", f"rolled out in {duration:.1f}s")
        return True


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
