"""Kill points at every step boundary of a phased CA rotation and of an SA key rotation: the
issuer SIGKILLed while it writes a step (some Secrets of the step written, not all), rollout
while it rolls a step out or just after it was written, lifecycle while the rotation waits
between two steps (and while an overlap runs). After each restart the step finishes, the
rotation waits in (or completes with) the right step, the old signer is still there until
complete, and every credential works as OpenSSL sees it (tests/e2e/tls.py)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from certlc_dev.devenv.stack import seed_datastores, seed_tenant
from services.issuer.plan import ROTATION_ANNOTATION
from tests.e2e.harness import Stack, start_stack, wait_for
from tests.e2e.phased import (
    api_server,
    certificates_in,
    client_credentials,
    rotation_id,
    secret_data,
    sign_token,
    verifies,
    wait_step,
)
from tests.e2e.tls import handshakes

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

TCP = "phased-kill"


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, kube_serving: Any) -> Iterator[Stack]:
    for s in start_stack(Path(tmp_path_factory.mktemp("e2e-kill-phased")), kube_serving):
        seed_datastores(s.sim, postgres=False)
        seed_tenant(s.sim, TCP)
        s.first_issued(TCP, timeout=60)
        # Slow Secret replaces, so that a kill lands while a step is being written.
        s.sim.faults.delay(0.2, verb="update", resource="secrets")
        yield s


def kill_when(stack: Stack, service: str, condition: Callable[[], bool], what: str) -> None:
    """SIGKILL `service` once `condition` holds, and start it again."""
    wait_for(condition, 60, what)
    victims = stack.services.by_name(service)
    for process in victims:
        process.kill()
        process.stop()
    for process in victims:
        process.start()
    stack.services.wait_ready(60, victims)


def record(stack: Stack, rid: str) -> dict[str, Any]:
    return stack.tap.records(TCP).get(rid) or {}


def at(stack: Stack, rid: str, step: str, *phases: str) -> Callable[[], bool]:
    def there() -> bool:
        r = record(stack, rid)
        return r.get("step") == step and r.get("phase") in phases

    return there


def mid_write(stack: Stack, rid: str, step: str) -> Callable[[], bool]:
    """The step's round has written some of its Secrets, not all."""

    def there() -> bool:
        r = record(stack, rid)
        if r.get("step") != step or r.get("phase") != "issuing":
            return False
        marks = [
            (s["metadata"].get("annotations") or {}).get(ROTATION_ANNOTATION)
            for name, s in stack.secrets(TCP).items()
            if name.removeprefix(f"{TCP}-") in r["secrets"]
        ]
        done = sum(m == f"{rid}/{step}" for m in marks)
        return 0 < done < len(r["secrets"])

    return there


def all_work(stack: Stack, workdir: Path, creds: list[Any]) -> None:
    results = handshakes(workdir, api_server(stack, TCP), creds)
    assert all(results.values()), results


def complete(stack: Stack, target: str) -> None:
    stack.certlc("rotate", f"default/{TCP}", target, "--complete", kube=False)


def test_a_phased_ca_rotation_survives_a_kill_at_every_step_boundary(
    stack: Stack, tmp_path: Path
) -> None:
    before = client_credentials(stack, TCP, "before")
    # first rotation: issuer mid-write of prepare, rollout while swap rolls out, issuer
    # mid-write of complete; lifecycle killed while the rotation waits after prepare
    rid = rotation_id(stack.certlc("rotate", f"default/{TCP}", "ca", "--phased", kube=False))
    kill_when(stack, "issuer", mid_write(stack, rid, "prepare"), "prepare half written")
    wait_step(stack, TCP, rid, "prepare")
    assert certificates_in(secret_data(stack, TCP, "ca")["ca.crt"]) == 2
    all_work(stack, tmp_path, before + client_credentials(stack, TCP, "now"))
    kill_when(stack, "lifecycle", at(stack, rid, "prepare", "waiting"), "waiting after prepare")
    wait_for(lambda: "swap waits" in stack.certlc("status", f"default/{TCP}"), 30, "status")
    complete(stack, "ca")
    kill_when(
        stack, "rollout", at(stack, rid, "swap", "written", "rolling-out"), "swap rolling out"
    )
    wait_step(stack, TCP, rid, "swap")
    all_work(stack, tmp_path, before + client_credentials(stack, TCP, "now"))
    complete(stack, "ca")
    kill_when(stack, "issuer", mid_write(stack, rid, "complete"), "complete half written")
    wait_step(stack, TCP, rid, "complete", "completed")
    assert certificates_in(secret_data(stack, TCP, "ca")["ca.crt"]) == 1
    now = client_credentials(stack, TCP, "now")
    all_work(stack, tmp_path, now)
    assert not any(handshakes(tmp_path, api_server(stack, TCP), before).values())
    wait_for(lambda: stack.phase(TCP) == "Ready", 60, "the TCP Ready again")

    # second rotation: rollout while prepare rolls out, issuer mid-write of swap (the CA
    # already new, some leaves not yet), rollout just after complete was written
    before = now
    rid = rotation_id(stack.certlc("rotate", f"default/{TCP}", "ca", "--phased", kube=False))
    kill_when(
        stack, "rollout", at(stack, rid, "prepare", "written", "rolling-out"), "prepare rolling out"
    )
    wait_step(stack, TCP, rid, "prepare")
    complete(stack, "ca")
    kill_when(stack, "issuer", mid_write(stack, rid, "swap"), "swap half written")
    wait_step(stack, TCP, rid, "swap")
    assert certificates_in(secret_data(stack, TCP, "ca")["ca.crt"]) == 2  # the old CA kept
    all_work(stack, tmp_path, before + client_credentials(stack, TCP, "now"))
    complete(stack, "ca")
    kill_when(stack, "rollout", at(stack, rid, "complete", "written"), "complete written")
    wait_step(stack, TCP, rid, "complete", "completed")
    all_work(stack, tmp_path, client_credentials(stack, TCP, "now"))
    wait_for(lambda: stack.phase(TCP) == "Ready", 60, "the TCP Ready again")


def test_an_sa_rotation_survives_a_kill_at_every_step_boundary(
    stack: Stack, tmp_path: Path
) -> None:
    old = secret_data(stack, TCP, "sa-certificate")
    old_token = sign_token(tmp_path, old["sa.key"], "system:serviceaccount:kube-system:coredns")
    # the one write of prepare held up, so that the issuer is killed while it is under way
    stack.sim.faults.delay(
        2.0, verb="update", resource="secrets", name=f"{TCP}-sa-certificate", times=1
    )
    out = stack.certlc("rotate", f"default/{TCP}", "sa", "--overlap", "4s", kube=False)
    rid = rotation_id(out)
    kill_when(
        stack,
        "issuer",
        at(stack, rid, "prepare", "issuing", "written", "rolling-out"),
        "prepare under way",
    )
    # rollout killed while swap rolls out; lifecycle during the overlap after swap
    kill_when(
        stack, "rollout", at(stack, rid, "swap", "written", "rolling-out"), "swap rolling out"
    )
    kill_when(stack, "lifecycle", at(stack, rid, "swap", "waiting"), "the overlap after swap")
    swapped = secret_data(stack, TCP, "sa-certificate")
    if record(stack, rid).get("phase") == "waiting":  # still in the overlap
        assert verifies(tmp_path, swapped["sa.pub"], old_token)
    new_token = sign_token(tmp_path, swapped["sa.key"], "system:serviceaccount:default:app")
    wait_step(stack, TCP, rid, "complete", "completed")  # by itself, after the overlap
    done = secret_data(stack, TCP, "sa-certificate")
    assert not verifies(tmp_path, done["sa.pub"], old_token)
    assert verifies(tmp_path, done["sa.pub"], new_token)
