"""The rollout budget end to end: ten TCPs fall due at once with a budget of two; a watch on
the Deployments (the official client) sees at most two rolling at any moment, all ten done, the
queue served earliest NotAfter first; the same with two rollout replicas, one killed mid-way."""

from __future__ import annotations

import json
import random
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client, config, watch

from certlc_dev.devenv.stack import seed_datastores
from libs.pki.overrides import LEAF_VALIDITY_ANNOTATION, RENEW_BEFORE_ANNOTATION
from tests.e2e.harness import Stack, create_tenant, start_stack, wait_for

pytestmark = [pytest.mark.slow, pytest.mark.timeout(420)]

BUDGET = 2
COUNT = 10


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, kube_serving: Any) -> Iterator[Stack]:
    settings = {
        "CERTLC_ROLLOUT_BUDGET": str(BUDGET),
        "CERTLC_KEY_ALGORITHM": "ECDSA-P256",  # fast issuance: the rollouts are what is measured
        "CERTLC_RENEW_DEADLINE": "1h",
        "CERTLC_RENEW_JITTER": "0",
    }
    workdir = Path(tmp_path_factory.mktemp("e2e-budget"))
    for s in start_stack(workdir, kube_serving, settings, ready_delay=1.0):
        seed_datastores(s.sim, postgres=False)
        yield s


def rolling(d: Any) -> bool:
    """Whether a Deployment is rolling out, as `kubectl rollout status` judges it."""
    spec, status = d.spec.replicas or 0, d.status
    if (status.observed_generation or 0) < (d.metadata.generation or 0):
        return True
    updated = status.updated_replicas or 0
    return (
        updated < spec
        or (status.replicas or 0) > updated
        or (status.available_replicas or 0) < updated
    )


@dataclass
class Watcher:
    """Watches the Deployments of `names` from its own thread: when each started and stopped
    rolling, and the most rolling at once."""

    stack: Stack
    names: set[str]
    rolling: set[str] = field(default_factory=set)
    starts: dict[str, float] = field(default_factory=dict)
    ends: dict[str, float] = field(default_factory=dict)
    most: int = 0
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        api = client.AppsV1Api(config.new_client_from_config(str(self.stack.kubeconfig)))
        while not self.stop.is_set():
            w = watch.Watch()
            for event in w.stream(api.list_namespaced_deployment, "default", timeout_seconds=5):
                d = event["object"]
                name = d.metadata.name
                if name not in self.names:
                    continue
                now = time.monotonic()
                if rolling(d):
                    self.rolling.add(name)
                    self.starts.setdefault(name, now)
                elif name in self.rolling:
                    self.rolling.discard(name)
                    self.ends[name] = now
                self.most = max(self.most, len(self.rolling))
                if self.stop.is_set():
                    w.stop()

    def __enter__(self) -> Watcher:
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(15)


def written_at(stack: Stack, tcp: str, reason: str) -> float | None:
    """When the record of `tcp`'s rotation for `reason` reached `written` (the tap's clock)."""
    prefix = f"$KV.CERTLC_ROTATIONS.default.{tcp}."
    seen = zip(list(stack.tap.messages), list(stack.tap.received), strict=False)
    for (subject, _, data), at in seen:
        if subject.startswith(prefix) and data:
            record = json.loads(data)
            if record["reason"] == reason and record["phase"] == "written":
                return at
    return None


def fall_due_together(stack: Stack, prefix: str) -> dict[str, int]:
    """Ten TCPs, first issued with validities 70 min + 2k min (k shuffled: their NotAfter order
    is not their creation order); then one annotate gives them all a one-day validity and a
    two-hour renew-before, so every one is due at once, its deadline its NotAfter."""
    order = list(range(COUNT))
    random.Random(prefix).shuffle(order)
    names = {f"{prefix}-{i}": k for i, k in enumerate(order)}
    for name, k in names.items():
        create_tenant(stack, name, {LEAF_VALIDITY_ANNOTATION: f"{70 + 2 * k}m"})
    for name in names:
        stack.first_issued(name, timeout=120)
    wait_for(lambda: all(stack.rotations_done(n) for n in names), 120, "the first rollouts")
    return names


def renew_all(stack: Stack, names: dict[str, int]) -> None:
    stack.kubectl(
        "annotate", "tenantcontrolplanes", *names, "--overwrite",
        f"{LEAF_VALIDITY_ANNOTATION}=24h", f"{RENEW_BEFORE_ANNOTATION}=2h",
    )  # fmt: skip


def check(stack: Stack, names: dict[str, int], seen: Watcher, *, order: bool = True) -> None:
    assert seen.most <= BUDGET, f"{seen.most} Deployments rolled out at once"
    assert seen.most == BUDGET, "the budget was never used in full"
    assert set(seen.starts) == set(names), "not every TCP rolled out"
    assert set(seen.ends) == set(names), "not every rollout completed"
    if not order:
        return
    # Whenever a slot was given, no TCP already waiting had an earlier deadline. "Waiting":
    # its Secrets were written more than a second before (rollout's settle delay). Two slots
    # that free together are given together: a start within a second counts as the same turn.
    started = sorted(seen.starts, key=seen.starts.__getitem__)
    for position, name in enumerate(started):
        if position < BUDGET:
            continue  # a free slot at once: nobody to be served before
        at = seen.starts[name]
        waiting = [
            other
            for other in started[position + 1 :]
            if (w := written_at(stack, other, "expiring")) is not None
            and w < at - 1.5
            and seen.starts[other] > at + 1.0
        ]
        earlier = [o for o in waiting if names[o] < names[name]]
        assert not earlier, f"{name} rolled out before {earlier}, whose deadlines come first"


def test_ten_due_at_once_roll_out_two_at_a_time_in_deadline_order(stack: Stack) -> None:
    names = fall_due_together(stack, "queued")
    with Watcher(stack, set(names)) as seen:
        renew_all(stack, names)
        # the queue, as `certlc status` shows it: served earliest deadline first
        queue = wait_for(lambda: q if len(q := waiting(stack)) >= 3 else None, 60, "a queue")
        assert [names[w["tcp"]] for w in queue] == sorted(names[w["tcp"]] for w in queue)
        assert [w["position"] for w in queue] == list(range(1, len(queue) + 1))
        wait_for(lambda: len(seen.ends) == COUNT, 180, "every rollout to complete")
    check(stack, names, seen)
    table = stack.certlc("status")
    assert "rollout budget: 2 at once, no limit per namespace" in table


def waiting(stack: Stack) -> list[dict[str, Any]]:
    data = json.loads(stack.certlc("status", "-o", "json"))
    assert data["rolloutQueue"]["budget"] == BUDGET
    assert len(data["rolloutQueue"]["rolling"]) <= BUDGET
    return list(data["rolloutQueue"]["waiting"])


def test_the_budget_holds_with_two_rollout_replicas_one_killed(stack: Stack) -> None:
    extra = stack.services.add_replica("rollout")
    stack.services.wait_ready(60, [extra])
    names = fall_due_together(stack, "replicated")
    (first, *_) = stack.services.by_name("rollout")
    try:
        with Watcher(stack, set(names)) as seen:
            renew_all(stack, names)
            wait_for(lambda: len(seen.starts) > BUDGET, 120, "a third rollout")
            first.kill()  # mid-way: it may hold slots and messages
            wait_for(lambda: len(seen.ends) == COUNT, 180, "every rollout to complete")
        # Not in deadline order here: a waiter whose message the killed replica held comes back
        # after the consumer's ack wait, its slot kept for it meanwhile; the others go on.
        check(stack, names, seen, order=False)
    finally:
        first.stop()
        first.start()
        stack.services.wait_ready(60, [first])
