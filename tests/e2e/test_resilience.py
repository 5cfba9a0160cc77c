"""Faults on both sides: the nats-server restarts under the running services, the Kubernetes
API answers 500/429/409, watches are cut and their history compacted (410). Nothing is lost."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from certlc_dev.devenv.stack import seed_datastores, seed_tenant
from tests.e2e.harness import Stack, start_stack, wait_for

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, kube_serving: Any) -> Iterator[Stack]:
    # Failed issuances are retried after CERTLC_RETRY_INITIAL, doubling: 1s here, so the three
    # injected failures below cost 1 + 2 + 4 seconds (5 + 10 + 20 with the default).
    settings = {"CERTLC_RETRY_INITIAL": "1s"}
    for s in start_stack(Path(tmp_path_factory.mktemp("e2e-faults")), kube_serving, settings):
        seed_datastores(s.sim, postgres=False)
        seed_tenant(s.sim, "sturdy")
        s.settled("sturdy", 13)
        s.quiet("sturdy")
        yield s


def test_a_nats_server_restart_loses_nothing(stack: Stack) -> None:
    stack.nats.restart()
    stack.sim.delete("secrets", "sturdy-admin-kubeconfig")
    wait_for(
        lambda: "sturdy-admin-kubeconfig" in stack.secrets("sturdy"),
        45,
        "re-creation after the restart",
    )
    assert all(p.running() for p in stack.services.processes)


def test_api_errors_are_retried_until_the_secret_is_written(stack: Stack) -> None:
    stack.sim.faults.fail(500, verb="create", resource="secrets", times=2)
    stack.sim.faults.fail(429, verb="create", resource="secrets", times=1, retry_after=1)
    stack.sim.delete("secrets", "sturdy-scheduler-kubeconfig")
    wait_for(
        lambda: "sturdy-scheduler-kubeconfig" in stack.secrets("sturdy"),
        30,
        "re-creation through 500s and a 429",
    )
    assert stack.sim.faults.rules() == [], "every injected fault was hit"


def test_a_conflict_during_a_write_is_not_fatal(stack: Stack) -> None:
    stack.sim.faults.fail(409, verb="update", resource="secrets", times=1)
    stack.sim.patch(
        "secrets",
        "sturdy-front-proxy-client-certificate",
        {"metadata": {"annotations": {"certs.kamaji.clastix.io/rotate": ""}}},
    )
    wait_for(
        lambda: (
            stack.secrets("sturdy")["sturdy-front-proxy-client-certificate"]["metadata"][
                "annotations"
            ]["certs.kamaji.clastix.io/rotate"]
            != ""
        ),
        30,
        "the requested rotation, after a 409",
    )
    assert all(p.running() for p in stack.services.processes)


def test_cut_watches_and_expired_history_are_recovered_by_re_listing(stack: Stack) -> None:
    stack.sim.faults.compact()
    stack.sim.faults.cut_watches()
    time.sleep(0.5)
    stack.sim.delete("secrets", "sturdy-controller-manager-kubeconfig")
    wait_for(
        lambda: "sturdy-controller-manager-kubeconfig" in stack.secrets("sturdy"),
        30,
        "re-creation after the watch was cut",
    )
    wait_for(lambda: stack.deployment_done("sturdy"), 30, "the rollout")
    written = [json.loads(d) for d in stack.tap.audit("sturdy", "secret-written")]
    assert any(e["secret"] == "sturdy-controller-manager-kubeconfig" for e in written)
