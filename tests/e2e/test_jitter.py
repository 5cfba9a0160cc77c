"""Renewals spread: certificates issued together fall due at moments of their own, within the
jitter span before `NotAfter - deadline`, and a restarted lifecycle schedules the same moments
(read off its renewal-time gauge, as Prometheus would)."""

from __future__ import annotations

import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.e2e.harness import Stack, start_with_tenants, wait_for

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

TCPS = [f"spread-{i}" for i in range(6)]  # 6 x 9 leaf certificates: 54
DEADLINE = 24 * 3600.0
JITTER = 0.25
BUCKETS = 5


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, kube_serving: Any) -> Iterator[Stack]:
    yield from start_with_tenants(Path(tmp_path_factory.mktemp("e2e-jitter")), kube_serving, TCPS)


def gauges(stack: Stack) -> dict[tuple[str, str], tuple[float, float]]:
    """(tcp, secret) -> (NotAfter, scheduled renewal) of every leaf, from lifecycle's /metrics."""
    (lifecycle,) = stack.services.by_name("lifecycle")
    with urllib.request.urlopen(f"http://127.0.0.1:{lifecycle.port}/metrics", timeout=10) as r:
        text = r.read().decode()
    values: dict[str, dict[tuple[str, str], float]] = {"expiration": {}, "renewal": {}}
    for family in text_string_to_metric_families(text):
        for which, found in values.items():
            if family.name == f"certlc_certificate_{which}_timestamp_seconds":
                for sample in family.samples:
                    found[(sample.labels["tcp"], sample.labels["secret"])] = sample.value
    return {
        key: (not_after, values["renewal"][key])
        for key, not_after in values["expiration"].items()
        if key[0] in TCPS and not key[1].endswith(("-ca", "-front-proxy-ca-certificate"))
    }


def test_renewals_issued_together_fall_due_spread_and_the_same_after_a_restart(
    stack: Stack,
) -> None:
    scheduled = wait_for(lambda: g if len(g := gauges(stack)) == 9 * len(TCPS) else None, 30,
                         "the gauges of every leaf")  # fmt: skip
    shares = []
    for (tcp, secret), (not_after, due) in scheduled.items():
        early = not_after - DEADLINE - due  # how much earlier than NotAfter - deadline
        assert 0 <= early <= JITTER * DEADLINE, (tcp, secret, early)
        shares.append(early / (JITTER * DEADLINE))
    # Issued within seconds of each other, yet spread over the whole span.
    occupied = {min(int(share * BUCKETS), BUCKETS - 1) for share in shares}
    assert len(occupied) == BUCKETS, sorted(shares)
    assert len({round(due) for _, due in scheduled.values()}) > 0.9 * len(scheduled)

    (lifecycle,) = stack.services.by_name("lifecycle")
    lifecycle.kill()
    lifecycle.stop()
    lifecycle.start()
    stack.services.wait_ready(60, [lifecycle])
    again = wait_for(lambda: g if len(g := gauges(stack)) == len(scheduled) else None, 30,
                     "the gauges after the restart")  # fmt: skip
    assert again == scheduled
