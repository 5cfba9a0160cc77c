"""Converging from any state: a paused rollout during a CA rotation holds up no other TCP, an API
that fails every write for a minute, and nats-server away for 45 seconds, before and after a
deletion. The services run as processes, against a real nats-server and the stand-in."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from certlc_dev.devenv.stack import seed_datastores, seed_tenant, service_ready
from tests.e2e.harness import Stack, start_stack, wait_for

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

LABEL = "kamaji.clastix.io/certificate_lifecycle_controller"
NATS_OUTAGE = 45.0  # seconds nats-server stays away: longer than every publish budget
API_OUTAGE = 60.0  # seconds the API answers 500 to every Secret create


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, kube_serving: Any) -> Iterator[Stack]:
    settings = {
        # One rollout at a time: a rollout that held its slot while waiting would stop all.
        "CERTLC_MAX_CONCURRENCY": "1",
        # A quick retry schedule (2s, 4s, 8s, 8s ...) and re-check of paused rollouts.
        "CERTLC_RETRY_INITIAL": "2s",
        "CERTLC_RETRY_MAX": "8s",
        "CERTLC_ROLLOUT_RECHECK_MAX": "2s",
    }
    for s in start_stack(Path(tmp_path_factory.mktemp("e2e-converge")), kube_serving, settings):
        seed_datastores(s.sim, postgres=False)
        for name in ("held", "free"):
            seed_tenant(s.sim, name)
        for name in ("held", "free"):
            s.first_issued(name, timeout=60)
        yield s


def x509(stack: Stack, tcp: str) -> dict[str, str]:
    """The x509 Secrets of `tcp`: name -> uid."""
    return {
        name: s["metadata"]["uid"]
        for name, s in stack.secrets(tcp).items()
        if (s["metadata"].get("labels") or {}).get(LABEL) == "x509"
    }


def replaced(stack: Stack, tcp: str, before: dict[str, str]) -> bool:
    now = x509(stack, tcp)
    return set(before) <= set(now) and all(now[n] != uid for n, uid in before.items())


def warning_events(stack: Stack, tcp: str, reason: str) -> list[dict[str, Any]]:
    listed = json.loads(stack.kubectl("get", "events", "-n", "default", "-o", "json"))["items"]
    return [
        e for e in listed if e["involvedObject"].get("name") == tcp and e.get("reason") == reason
    ]


def open_rotations(stack: Stack, tcp: str) -> list[dict[str, Any]]:
    rotations: list[dict[str, Any]] = json.loads(stack.certlc("status", tcp, "-o", "json"))[
        "rotations"
    ]
    return rotations


def ready(stack: Stack) -> dict[str, bool]:
    return {f"{p.name}-{p.instance}": service_ready(p.port) for p in stack.services.processes}


def test_a_paused_rollout_during_a_ca_rotation_holds_up_no_other_tcp(stack: Stack) -> None:
    stack.sim.patch("deployments", "held", {"spec": {"paused": True}})
    before = stack.rollouts_completed("free")
    stack.sim.delete("secrets", "held-ca")  # the seed's CA rotation
    wait_for(lambda: stack.phase("held") == "CertificateAuthorityRotating", 30, "the rotation")
    wait_for(lambda: warning_events(stack, "held", "RolloutPaused"), 30, "a RolloutPaused Event")
    (rotation,) = [r for r in open_rotations(stack, "held") if r["caRotation"]]
    assert (rotation["phase"], rotation["rollout"]) == ("rolling-out", "paused")

    # Another TCP rolls out normally meanwhile, with a single rollout slot.
    free = x509(stack, "free")
    stack.kubectl(
        "delete", "secret", "-n", "default", "-l", f"{LABEL}=x509,kamaji.clastix.io/name=free"
    )
    wait_for(lambda: replaced(stack, "free", free), 30, "the free TCP's Secrets")
    stack.next_rollout("free", before, timeout=30)
    # A Secret of the held TCP deleted during its CA rotation is re-created meanwhile.
    uid = stack.secrets("held")["held-api-server-certificate"]["metadata"]["uid"]
    stack.sim.delete("secrets", "held-api-server-certificate")
    wait_for(
        lambda: (
            (s := stack.secrets("held").get("held-api-server-certificate")) is not None
            and s["metadata"]["uid"] != uid
        ),
        30,
        "the deleted Secret of the held TCP",
    )
    assert stack.phase("held") == "CertificateAuthorityRotating"

    # Unpaused, the held TCP finishes by itself.
    stack.sim.patch("deployments", "held", {"spec": {"paused": False}})
    wait_for(lambda: stack.phase("held") == "Ready", 60, "the held TCP to become Ready")
    wait_for(lambda: stack.deployment_done("held"), 30, "the held rollout")
    wait_for(lambda: open_rotations(stack, "held") == [], 30, "every rotation completed")


def test_an_api_failing_every_write_for_a_minute_is_visible_then_healed(stack: Stack) -> None:
    rule = stack.sim.faults.fail(500, verb="create", resource="secrets", times=None)
    started = time.monotonic()
    stack.sim.delete("secrets", "free-scheduler-kubeconfig")
    try:
        # Visible meanwhile: audit events, a Warning Event, and certlc status.
        # (dict.fromkeys: the tap sees a publish that was sent twice, the stream keeps one.)
        failed = wait_for(
            lambda: (
                len(a := list(dict.fromkeys(stack.tap.audit("free", "rotation-failed")))) >= 2 and a
            ),
            30,
            "two failed attempts",
        )
        attempts = [json.loads(f) for f in failed]
        assert [a["attempt"] for a in attempts[:2]] == [1, 2]
        assert all(a["retryable"] and a["next_retry"] for a in attempts)
        assert wait_for(lambda: warning_events(stack, "free", "RotationFailed"), 30, "a Warning")
        rotation = wait_for(
            lambda: next(
                (r for r in open_rotations(stack, "free") if r["phase"] == "failed"), None
            ),
            30,
            "a failed rotation in certlc status",
        )
        assert rotation["attempts"] >= 1
        assert "500" in rotation["lastError"] or "Internal" in rotation["lastError"]
        assert rotation["nextRetry"] is not None
        wait_for(lambda: time.monotonic() - started >= API_OUTAGE, API_OUTAGE + 5, "the minute")
    finally:
        stack.sim.faults.remove(rule.id)
    healed = time.monotonic()
    # The retry schedule tops out at CERTLC_RETRY_MAX (8s here): back within that and a margin.
    wait_for(lambda: "free-scheduler-kubeconfig" in stack.secrets("free"), 20, "the Secret back")
    assert time.monotonic() - healed < 20
    wait_for(lambda: open_rotations(stack, "free") == [], 30, "the rotation completed")


def nats_away(stack: Stack) -> None:
    """Stop nats-server; meanwhile every service says it is not ready."""
    stack.nats.stop()
    wait_for(lambda: not any(ready(stack).values()), 20, "every service not ready")


def nats_back(stack: Stack) -> float:
    stack.nats.start()
    return time.monotonic()


def test_nats_away_for_45s_just_after_a_deletion(stack: Stack) -> None:
    before = x509(stack, "free")
    stack.kubectl(
        "delete", "secret", "-n", "default", "-l", f"{LABEL}=x509,kamaji.clastix.io/name=free"
    )
    nats_away(stack)
    time.sleep(NATS_OUTAGE)  # the outage itself is the scenario
    returned = nats_back(stack)
    wait_for(lambda: replaced(stack, "free", before), 30, "the Secrets back after NATS returned")
    assert time.monotonic() - returned < 30
    wait_for(lambda: all(ready(stack).values()), 30, "every service ready again")
    # ... and healing goes on: a Secret of another TCP deleted now comes back as usual.
    uid = stack.secrets("held")["held-admin-kubeconfig"]["metadata"]["uid"]
    stack.sim.delete("secrets", "held-admin-kubeconfig")
    wait_for(
        lambda: (
            (s := stack.secrets("held").get("held-admin-kubeconfig")) is not None
            and s["metadata"]["uid"] != uid
        ),
        30,
        "a Secret deleted after NATS returned",
    )


def test_nats_away_for_45s_before_a_deletion(stack: Stack) -> None:
    before = x509(stack, "held")
    nats_away(stack)
    stack.kubectl(
        "delete", "secret", "-n", "default", "-l", f"{LABEL}=x509,kamaji.clastix.io/name=held"
    )
    time.sleep(NATS_OUTAGE)  # the outage itself is the scenario
    returned = nats_back(stack)
    wait_for(lambda: replaced(stack, "held", before), 30, "the Secrets back after NATS returned")
    assert time.monotonic() - returned < 30
    wait_for(lambda: all(ready(stack).values()), 30, "every service ready again")
    wait_for(lambda: stack.deployment_done("held"), 30, "the rollout of the new Secrets")
