"""Renewal on time: certificates minted to expire soon are renewed at NotAfter - deadline, not
before; a lifecycle restart in between loses no deadline; a CA near its end is not rotated."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from certlc_dev.devenv.stack import seed_datastores, seed_tenant
from libs.pki import SecretKind, TcpSpec, mint_secret_data, secret_labels, summarize
from tests.e2e.harness import Stack, start_stack, wait_for

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

VALIDITY = timedelta(seconds=40)
DEADLINE = timedelta(seconds=25)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, kube_serving: Any) -> Iterator[Stack]:
    settings = {
        "CERTLC_LEAF_VALIDITY": "40s",
        "CERTLC_RENEW_DEADLINE": "25s",
        "CERTLC_LOOP_LIMIT": "1000",  # short-lived certificates renew every 15 s by design here
        "CERTLC_RENEW_JITTER": "0",  # exactly at NotAfter - deadline (test_jitter spreads them)
    }
    for s in start_stack(Path(tmp_path_factory.mktemp("e2e-time")), kube_serving, settings):
        seed_datastores(s.sim, postgres=False)
        yield s


def apiserver_cert(stack: Stack, tcp: str) -> tuple[str, datetime]:
    data = stack.data(stack.sim.get("secrets", f"{tcp}-api-server-certificate"))
    facts = summarize(SecretKind.APISERVER, data)
    return facts.serial, facts.not_after


def test_certificates_are_renewed_at_the_deadline_and_not_before_even_across_a_restart(
    stack: Stack,
) -> None:
    seed_tenant(stack.sim, "short")
    stack.settled("short", 13)
    serial, not_after = apiserver_cert(stack, "short")
    due = not_after - DEADLINE
    assert not_after - datetime.now(UTC) < VALIDITY + timedelta(seconds=1)
    # restart lifecycle: its timers are rebuilt from the events stream
    stack.services.restart("lifecycle")
    # shortly before the deadline nothing has been renewed
    time.sleep(max(0.0, (due - datetime.now(UTC)).total_seconds() - 2.0))
    assert apiserver_cert(stack, "short")[0] == serial, "renewed before NotAfter - deadline"
    renewed_at = wait_for(
        lambda: datetime.now(UTC) if apiserver_cert(stack, "short")[0] != serial else None,
        timeout=15,
        what="renewal at the deadline",
    )
    assert renewed_at >= due - timedelta(seconds=0.5)
    assert renewed_at < not_after, "renewed only after expiry"
    assert renewed_at - due < timedelta(seconds=5)
    events = [json.loads(d) for d in stack.tap.audit("short", "rotation-requested")]
    assert any(e["reason"] == "expiring" for e in events)


def test_a_ca_near_its_end_is_not_rotated_but_warned_about(stack: Stack) -> None:
    now = datetime.now(UTC)
    spec = TcpSpec(name="old-ca", namespace="default", address="172.18.255.201")
    ca = mint_secret_data(SecretKind.CA, spec, now=now, validity=timedelta(seconds=30))
    created = stack.sim.create(
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "type": "Opaque",
            "metadata": {
                "name": "old-ca-ca",
                "namespace": "default",
                "labels": secret_labels(spec, SecretKind.CA),
            },
            "data": {k: base64.b64encode(v).decode() for k, v in ca.items()},
        }
    )
    seed_tenant(stack.sim, "old-ca", address="172.18.255.201")
    stack.settled("old-ca", 13)
    # past NotAfter - deadline, and past NotAfter itself: still the same CA
    time.sleep(max(0.0, 32 - (datetime.now(UTC) - now).total_seconds()))
    current = stack.sim.get("secrets", "old-ca-ca")
    assert current["metadata"]["uid"] == created["metadata"]["uid"]
    assert current["data"] == created["data"]
    assert stack.tap.audit("old-ca", "ca-expiring"), "no warning about the CA's remaining life"
