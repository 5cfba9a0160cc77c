"""Two replicas of every service at once: no double work, no conflicting writes, one rollout;
malformed messages on the internal streams are refused and every service keeps running."""

from __future__ import annotations

import asyncio
import json
import re
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nats
import pytest

from certlc_dev.devenv.stack import ServiceProcess, seed_datastores, seed_tenant
from libs.contracts.partitions import DEFAULT_PARTITIONS, assign, partition_of
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


def scrape(port: int, metric: str) -> float:
    """A metric of the service whose health server listens on `port` (0 when absent)."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as r:
        text = r.read().decode()
    values = [
        float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(metric)
    ]
    return values[0] if values else 0.0


def member_of(process: ServiceProcess) -> str:
    """The member id a lifecycle replica logged when its partitions were last dealt."""
    lines = [json.loads(x) for x in process.log_text().splitlines() if "partitions reassigned" in x]
    return str(lines[-1]["member"])


def requested_by(process: ServiceProcess, tcp: str) -> bool:
    return any(
        json.loads(x).get("tcp") == tcp
        for x in process.log_text().splitlines()
        if "rotation requested" in x
    )


def tenant_in(share: frozenset[int], prefix: str) -> str:
    return next(
        name
        for i in range(10_000)
        if partition_of("default", name := f"{prefix}-{i}", DEFAULT_PARTITIONS) in share
    )


def test_lifecycle_replicas_share_the_fleet_and_one_takes_over_a_killed_ones_share(
    stack: Stack,
) -> None:
    first, second = stack.services.by_name("lifecycle")
    owned = lambda p: scrape(p.port, 'certlc_partitions_owned{service="lifecycle"}')  # noqa: E731
    wait_for(
        lambda: owned(first) + owned(second) == DEFAULT_PARTITIONS and owned(first) > 0,
        15,
        "the two lifecycle replicas to split the partitions",
    )
    shares = assign(DEFAULT_PARTITIONS, [member_of(first), member_of(second)])
    mine, theirs = shares[member_of(first)], shares[member_of(second)]
    assert owned(first) == len(mine) == DEFAULT_PARTITIONS // 2
    # one TCP in each replica's share: each is decided by its owner only
    a, b = tenant_in(mine, "share-a"), tenant_in(theirs, "share-b")
    for name in (a, b):
        seed_tenant(stack.sim, name)
    for name in (a, b):
        stack.first_issued(name)
    assert requested_by(first, a)
    assert not requested_by(second, a)
    assert requested_by(second, b)
    assert not requested_by(first, b)

    # kill the first mid-rotation: its TCP's Secrets are deleted, and the replica dies before
    # (or while) deciding; the second takes the whole fleet over and re-creates them
    completed = stack.rollouts_completed(a)
    stack.kubectl(
        "delete",
        "secret",
        "-l",
        f"kamaji.clastix.io/certificate_lifecycle_controller=x509,kamaji.clastix.io/name={a}",
    )
    first.kill()
    killed = time.monotonic()
    wait_for(lambda: owned(second) == DEFAULT_PARTITIONS, 10, "the survivor to own every partition")
    takeover = time.monotonic() - killed
    assert takeover < 10, f"takeover took {takeover:.1f}s"
    print(f"takeover after a SIGKILL: {takeover:.2f}s")
    stack.settled(a, 13)
    stack.next_rollout(a, completed)
    assert requested_by(second, a)

    # the killed replica comes back and gets its share again
    first.stop()  # it is dead already: this closes its log
    first.start()
    stack.services.wait_ready(60, [first])
    wait_for(
        lambda: owned(first) == owned(second) == DEFAULT_PARTITIONS // 2,
        15,
        "the partitions dealt out again",
    )
