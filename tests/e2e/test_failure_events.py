"""Issuer failures become Warning Events on the TenantControlPlane, posted by rollout (the issuer
may not write Events): once per failure, with two rollout replicas sharing the consumer, and a
bad message on that subject is refused without stopping anything."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import nats
import pytest

from certlc_dev.devenv.stack import seed_datastores, seed_tenant
from libs.contracts import subjects
from libs.contracts.api import RotationFailed
from libs.contracts.codec import encode
from libs.pki import PAUSED_ANNOTATION
from tests.e2e.harness import Stack, start_stack, wait_for

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, kube_serving: Any) -> Iterator[Stack]:
    """The stack with two rollout replicas sharing its durable consumers."""
    workdir = Path(tmp_path_factory.mktemp("e2e-failure-events"))
    # A failed issuance waits 10 minutes before its next attempt here: what happens sooner has
    # another cause (a repaired signer).
    for s in start_stack(workdir, kube_serving, {"CERTLC_RETRY_INITIAL": "10m"}):
        s.services.wait_ready(60, [s.services.add_replica("rollout")])
        seed_datastores(s.sim, postgres=False)
        yield s


@pytest.fixture
def tenant(stack: Stack, request: pytest.FixtureRequest) -> str:
    name = f"fail-{request.node.name.split('_')[-1]}"
    seed_tenant(stack.sim, name)
    stack.settled(name, 13)
    stack.quiet(name)
    return name


def events(stack: Stack, tcp: str, reason: str) -> list[dict[str, Any]]:
    """The Events of `tcp` with `reason`, as kubectl reads them from the API."""
    listed = json.loads(stack.kubectl("get", "events", "-n", "default", "-o", "json"))["items"]
    return [
        e
        for e in listed
        if e["involvedObject"].get("name") == tcp
        and e["involvedObject"].get("kind") == "TenantControlPlane"
        and e.get("reason") == reason
    ]


def rollout_logs(stack: Stack) -> str:
    return "".join(p.log_text() for p in stack.services.by_name("rollout"))


def consumer_idle(stack: Stack) -> bool:
    """Every message of rollout's failure consumer delivered and settled (acked or terminated)."""

    async def info() -> bool:
        nc = await nats.connect(stack.nats.url)
        try:
            state = await nc.jetstream().consumer_info(
                subjects.AUDIT_STREAM, subjects.ROLLOUT_FAILURES_DURABLE
            )
        finally:
            await nc.close()
        return state.num_pending == 0 and state.num_ack_pending == 0

    return asyncio.run(info())


def inject(stack: Stack, subject: str, *payloads: bytes) -> None:
    """Publish `payloads` to `subject` on the stream, as a misbehaving publisher could."""

    async def publish() -> None:
        nc = await nats.connect(stack.nats.url)
        try:
            for data in payloads:
                await nc.jetstream().publish(subject, data)
        finally:
            await nc.close()

    asyncio.run(publish())


def rotate_secret(stack: Stack, tcp: str, secret: str) -> dict[str, Any]:
    async def ask() -> dict[str, Any]:
        nc = await nats.connect(stack.nats.url)
        try:
            request = {
                "type": "rotate.request",
                "namespace": "default",
                "tcp": tcp,
                "target": "secret",
                "secret": secret,
                "requester": "e2e",
            }
            msg = await nc.request(subjects.API_ROTATE, json.dumps(request).encode(), timeout=5)
            assert not msg.headers, msg.headers
            reply: dict[str, Any] = json.loads(msg.data)
            return reply
        finally:
            await nc.close()

    return asyncio.run(ask())


def test_a_rotation_that_fails_on_a_broken_ca_is_a_warning_event_on_the_tcp(
    stack: Stack, tenant: str
) -> None:
    tcp = stack.sim.get("tenantcontrolplanes", tenant)
    admin = stack.secrets(tenant)[f"{tenant}-admin-kubeconfig"]["metadata"]["resourceVersion"]
    # Break the CA: pause it (so certlc leaves it alone) and give it a key that is not its own.
    other_key = stack.secrets(tenant)[f"{tenant}-front-proxy-ca-certificate"]["data"][
        "front-proxy-ca.key"
    ]
    ca_key = stack.secrets(tenant)[f"{tenant}-ca"]["data"]["ca.key"]
    stack.sim.patch(
        "secrets",
        f"{tenant}-ca",
        {"metadata": {"annotations": {PAUSED_ANNOTATION: ""}}, "data": {"ca.key": other_key}},
    )
    accepted = rotate_secret(stack, tenant, "admin-kubeconfig")
    assert accepted["type"] == "rotate.accepted"

    failed = wait_for(
        lambda: stack.tap.audit(tenant, "rotation-failed"), 30, "the issuer to report the failure"
    )
    audit = json.loads(failed[0])
    assert audit["rotation_id"] == accepted["id"]
    assert audit["secrets"] == ["admin-kubeconfig"]
    assert audit["retryable"] is True  # a broken signer can be repaired
    assert audit["attempt"] == 1
    next_retry = datetime.fromisoformat(audit["next_retry"])
    assert timedelta(minutes=8) < next_retry - datetime.fromisoformat(audit["at"])

    (event,) = wait_for(lambda: events(stack, tenant, "RotationFailed"), 30, "the Warning Event")
    assert event["type"] == "Warning"
    assert event["involvedObject"]["uid"] == tcp["metadata"]["uid"]
    assert event["involvedObject"]["apiVersion"] == "kamaji.clastix.io/v1alpha1"
    assert event["source"]["component"] == "certlc-rollout"
    assert event["count"] == 1
    message = event["message"]
    assert message.startswith(f"Rotation of {tenant}-admin-kubeconfig failed")
    assert accepted["id"] in message
    assert "will be retried" in message
    assert "signer private key does not match" in message, message
    assert audit["message"] in message
    assert "PRIVATE KEY" not in message
    assert other_key not in message
    # `kubectl describe` shows it with the TCP
    described = stack.kubectl("describe", "tenantcontrolplane", tenant)
    assert re.search(r"Warning\s+RotationFailed", described), described

    # The same audit message delivered again (a redelivery; either replica may get it) posts
    # no second Event: its name derives from the failure.
    inject(stack, subjects.audit("default", tenant, "rotation-failed"), failed[0])
    wait_for(lambda: consumer_idle(stack), 20, "the copy to be handled")
    wait_for(
        lambda: "RotationFailed Event already recorded" in rollout_logs(stack),
        20,
        "rollout to find the Event already there",
    )
    assert [e["metadata"]["name"] for e in events(stack, tenant, "RotationFailed")] == [
        event["metadata"]["name"]
    ]
    # The failed rotation wrote nothing.
    after = stack.secrets(tenant)[f"{tenant}-admin-kubeconfig"]["metadata"]["resourceVersion"]
    assert after == admin
    status = json.loads(stack.certlc("status", tenant, "-o", "json"))
    (open_rotation,) = status["rotations"]
    assert open_rotation["id"] == accepted["id"]
    assert (open_rotation["phase"], open_rotation["stage"]) == ("failed", "issue")
    assert "signer private key does not match" in open_rotation["lastError"]
    assert open_rotation["nextRetry"] is not None

    # The operator repairs the CA: the changed signer is a new cause, tried at once rather than
    # after the ten minutes of backoff.
    stack.sim.patch(
        "secrets",
        f"{tenant}-ca",
        {"metadata": {"annotations": {PAUSED_ANNOTATION: None}}, "data": {"ca.key": ca_key}},
    )
    wait_for(
        lambda: (
            stack.secrets(tenant)[f"{tenant}-admin-kubeconfig"]["metadata"]["resourceVersion"]
            != admin
        ),
        20,
        "the admin kubeconfig re-issued once the CA is repaired",
    )
    done = wait_for(
        lambda: json.loads(stack.certlc("status", tenant, "-o", "json"))["rotations"] == [],
        30,
        "the rotation to complete",
    )
    assert done


def test_bad_messages_on_the_failure_subject_are_refused_and_the_next_failure_is_recorded(
    stack: Stack, tenant: str
) -> None:
    subject = subjects.audit("default", tenant, "rotation-failed")
    now = datetime.now(UTC)
    other_type = {
        "type": "rollout.failed",
        "namespace": "default",
        "tcp": tenant,
        "at": now.isoformat(),
        "deployment": tenant,
        "message": "not a rotation failure",
    }
    stale = RotationFailed(
        namespace="default",
        tcp=tenant,
        rotation_id="stale-1",
        at=now - timedelta(hours=2),
        message="an old failure",
    )
    elsewhere = RotationFailed(
        namespace="default", tcp="someone-else", rotation_id="x-1", at=now, message="misfiled"
    )
    inject(
        stack,
        subject,
        b"{garbage",
        json.dumps({"type": "no.such-event", "namespace": "default", "tcp": tenant}).encode(),
        json.dumps(other_type).encode(),
        encode(stale),
        encode(elsewhere),
    )
    wait_for(lambda: consumer_idle(stack), 20, "the bad messages to be settled")
    logs = rollout_logs(stack)
    wait_for(
        lambda: (
            len(re.findall(rf"malformed audit event on {re.escape(subject)}", logs)) >= 2 or None
        ),
        10,
        "rollout to refuse the garbage and the unknown type",
    )
    assert "handler rejected message, terminated" in logs
    assert f"audit event about default/someone-else on {subject}" in logs
    assert "RolloutFailed is not recorded as an Event" in logs
    assert "the report is older than 1:00:00" in logs
    assert "Traceback" not in logs
    assert all(p.running() for p in stack.services.processes)
    assert not events(stack, tenant, "RotationFailed")
    assert not events(stack, "someone-else", "RotationFailed")

    # Still working: a real failure afterwards is recorded.
    fresh = RotationFailed(
        namespace="default",
        tcp=tenant,
        rotation_id="r-after",
        at=datetime.now(UTC),
        message="Secret fail-recorded-ca is missing; it signs",
        retryable=False,
        secrets=("api-server-certificate",),
    )
    inject(stack, subject, encode(fresh))
    (event,) = wait_for(lambda: events(stack, tenant, "RotationFailed"), 20, "the Warning Event")
    assert event["message"] == (
        f"Rotation of {tenant}-api-server-certificate failed (rotation r-after), not retried: "
        "Secret fail-recorded-ca is missing; it signs"
    )
