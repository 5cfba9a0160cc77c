"""The kill-point suite's moves: a rotation is started (the four x509 Secrets of a TCP deleted),
one service is SIGKILLed when the rotation's record reaches a phase (or before the deletion,
to be down while it happens), and restarted. Then every Secret must be back and valid (openssl),
the TCP Ready, at most one rollout more than needed, within 15 s of the restart."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from certlc_dev.devenv.stack import seed_datastores, seed_tenant
from libs.pki import SecretKind, profile, secret_name
from libs.pki.profiles import Signer
from tests.e2e.harness import Stack, openssl_verify, start_stack, wait_for

LABEL = "kamaji.clastix.io/certificate_lifecycle_controller"
TCP = "victim"
RECOVERY = 15.0  # seconds from the restart to every Secret back, valid and rolled out
ORDER = ["requested", "issuing", "written", "rolling-out", "completed"]
DOWN = "down"  # the service is killed before the deletion and restarted after it
POINTS = [DOWN, "requested", "issuing", "writing", "written", "rolling-out", "completed"]
# The CA Secret of each signer of the x509 Secrets.
SIGNER_SECRETS = {Signer.CA: SecretKind.CA, Signer.FRONT_PROXY_CA: SecretKind.FRONT_PROXY_CA}


def kill_point_stack(workdir: Path, serving: Any) -> Iterator[Stack]:
    for stack in start_stack(workdir, serving):
        seed_datastores(stack.sim, postgres=False)
        seed_tenant(stack.sim, TCP)
        stack.first_issued(TCP, timeout=60)
        # Slow Secret creates a little, so that a kill can land while the issuer writes.
        stack.sim.faults.delay(0.25, verb="create", resource="secrets")
        yield stack


def x509(stack: Stack) -> dict[str, str]:
    return {
        name: s["metadata"]["uid"]
        for name, s in stack.secrets(TCP).items()
        if (s["metadata"].get("labels") or {}).get(LABEL) == "x509"
    }


def reached(
    record: dict[str, Any] | None, point: str, before: dict[str, str], stack: Stack
) -> bool:
    if record is None:
        return False
    phase = str(record["phase"])
    if point == "writing":  # some of the Secrets re-created, not all
        now = x509(stack)
        return phase == "issuing" and any(n in now and now[n] != u for n, u in before.items())
    if phase == "failed":
        return True
    return phase in ORDER and ORDER.index(phase) >= ORDER.index(point)


def new_record(stack: Stack, known: set[str]) -> dict[str, Any] | None:
    fresh = [r for i, r in stack.tap.records(TCP).items() if i not in known]
    return max(fresh, key=lambda r: str(r["requested_at"])) if fresh else None


def run_point(stack: Stack, service: str, point: str) -> None:
    """One kill point; asserts the recovery."""
    assert point in POINTS
    wait_for(lambda: stack.deployment_done(TCP), 30, "a settled TCP before the point")
    before = x509(stack)
    assert len(before) == 4, sorted(before)
    known = set(stack.tap.records(TCP))
    rollouts = stack.rollouts_completed(TCP)
    victims = stack.services.by_name(service)
    if point == DOWN:
        for process in victims:
            process.kill()
            process.stop()
    stack.kubectl(
        "delete", "secret", "-n", "default", "-l", f"{LABEL}=x509,kamaji.clastix.io/name={TCP}"
    )
    if point != DOWN:
        wait_for(
            lambda: reached(new_record(stack, known), point, before, stack),
            30,
            f"the rotation to reach {point}",
        )
        for process in victims:
            process.kill()
            process.stop()
    else:
        time.sleep(1.0)  # down while the deletion happens: the others go on meanwhile
    restarted = time.monotonic()
    for process in victims:
        process.start()
    stack.services.wait_ready(60, victims)

    def recovered() -> bool:
        now = x509(stack)
        return (
            set(before) <= set(now)
            and all(now[n] != u for n, u in before.items())
            and stack.deployment_done(TCP)
            and stack.rollouts_completed(TCP) > rollouts
        )

    wait_for(recovered, 45, f"recovery after killing {service} at {point}")
    took = time.monotonic() - restarted
    assert took < RECOVERY, f"{service} killed at {point}: recovered in {took:.1f}s"
    assert stack.phase(TCP) == "Ready"
    # One rollout for the rotation; at most one more.
    assert stack.rollouts_completed(TCP) - rollouts <= 2
    secrets = stack.secrets(TCP)
    assert len(secrets) == 13
    for name in before:
        kind = SecretKind(name.removeprefix(f"{TCP}-"))
        ca_kind = SIGNER_SECRETS[profile(kind).signer]
        ca_cert = stack.data(secrets[secret_name(TCP, ca_kind)])[str(profile(ca_kind).cert_key)]
        cert = stack.data(secrets[name])[str(profile(kind).cert_key)]
        openssl_verify(stack.workdir, ca_cert, cert)


def points(*services: str) -> Any:
    return pytest.mark.parametrize(("service", "point"), [(s, p) for s in services for p in POINTS])
