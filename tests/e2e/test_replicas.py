"""Two replicas of every service at once: no double work, no conflicting writes, one rollout;
malformed messages on the internal streams are refused and every service keeps running."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nats
import pytest

from certlc_dev.devenv.stack import seed_datastores, seed_tenant
from tests.e2e.harness import Stack, start_stack, wait_for

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, kube_serving: Any) -> Iterator[Stack]:
    workdir = Path(tmp_path_factory.mktemp("e2e-replicas"))
    gen = start_stack(workdir, kube_serving)
    # the harness starts one of each; add a second replica of every service
    for s in gen:
        for name in ("watcher", "lifecycle", "issuer", "rollout"):
            extra = s.services.add_replica(name)
            s.services.wait_ready(60, [extra])
        seed_datastores(s.sim, postgres=False)
        yield s


def test_two_replicas_of_each_service_do_the_work_once(stack: Stack) -> None:
    seed_tenant(stack.sim, "twin")
    stack.first_issued("twin")
    assert len(stack.quiet("twin")) == 2
    before = stack.replicasets("twin")
    completed = stack.rollouts_completed("twin")
    stack.kubectl(
        "delete",
        "secret",
        "-l",
        "kamaji.clastix.io/certificate_lifecycle_controller=x509,kamaji.clastix.io/name=twin",
    )
    stack.settled("twin", 13)
    stack.next_rollout("twin", completed)
    assert len(stack.quiet("twin")) == len(before) + 1
    created = [json.loads(d) for d in stack.tap.audit("twin", "secret-written")]
    # every Secret written once per rotation, though two issuers and two lifecycles ran
    keys = [(e["rotation_id"], e["secret"]) for e in created]
    assert len(keys) == len(set(keys)) == 13 + 4
    for p in stack.services.processes:
        assert "Traceback" not in p.log_text(), f"{p.name}-{p.instance} logged a traceback"


def test_malformed_internal_messages_are_refused_and_nothing_stops(stack: Stack) -> None:
    async def inject() -> None:
        nc = await nats.connect(stack.nats.url)
        js = nc.jetstream()
        await js.publish("certlc.rotate.default.twin", b"{garbage")
        await js.publish(
            "certlc.rotate.default.twin", json.dumps({"type": "rotate.command", "id": 5}).encode()
        )
        await js.publish("certlc.issued.default.twin", b"\x00\x01")
        await js.publish("certlc.events.secret.default.twin.twin-ca", b"[]")
        await nc.close()

    before = {n: s["metadata"]["resourceVersion"] for n, s in stack.secrets("twin").items()}
    asyncio.run(inject())
    logs = lambda: "".join(p.log_text() for p in stack.services.processes)  # noqa: E731
    wait_for(lambda: re.search(r"malformed rotate command", logs()), 10, "the issuer to refuse it")
    wait_for(
        lambda: re.search(r"malformed message on certlc.issued", logs()), 10, "rollout to refuse it"
    )
    assert all(p.running() for p in stack.services.processes)
    # still working: a deletion is repaired
    stack.sim.delete("secrets", "twin-scheduler-kubeconfig")
    wait_for(
        lambda: "twin-scheduler-kubeconfig" in stack.secrets("twin"), 15, "the Secret re-created"
    )
    after = {n: s["metadata"]["resourceVersion"] for n, s in stack.secrets("twin").items()}
    changed = {n for n in after if after[n] != before.get(n)}
    assert changed == {"twin-scheduler-kubeconfig"}
