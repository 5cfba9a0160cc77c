"""Maintenance windows end to end, with a window that opens each minute for 20 s: a missing
Secret outside the window is re-created at once; a due renewal outside it waits and happens in
it, at the moment the renewal-time gauge showed; one whose TCP's window cannot open before
NotAfter - margin renews at that moment with a Warning Event and an audit event; a bad window
annotation is a Warning Event naming it."""

from __future__ import annotations

import json
import time
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from certlc_dev.devenv.stack import seed_datastores
from libs.pki import SecretKind, summarize
from libs.pki.overrides import (
    LEAF_VALIDITY_ANNOTATION,
    MAINTENANCE_WINDOW_ANNOTATION,
    RENEW_BEFORE_ANNOTATION,
)
from tests.e2e.harness import Stack, create_tenant, start_stack, tcp_warnings, wait_for

pytestmark = [pytest.mark.slow, pytest.mark.timeout(400)]

OPEN = timedelta(seconds=20)  # the fleet's window: each minute, from second 0 to second 20
DEADLINE = timedelta(seconds=100)  # with a leaf validity of 150 s: due 50 s after issue
MARGIN = timedelta(seconds=10)
LATE = "win-late"  # its window (January 1st) never opens in time
BAD = "win-bad"


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, kube_serving: Any) -> Iterator[Stack]:
    settings = {
        "CERTLC_MAINTENANCE_WINDOW": "* * * * * 20s",
        "CERTLC_LEAF_VALIDITY": "150s",
        "CERTLC_RENEW_DEADLINE": "100s",
        "CERTLC_RENEW_JITTER": "0",
        "CERTLC_WINDOW_MARGIN": "10s",
        "CERTLC_LOOP_LIMIT": "1000",  # short-lived certificates renew again and again here
    }
    for s in start_stack(Path(tmp_path_factory.mktemp("e2e-windows")), kube_serving, settings):
        seed_datastores(s.sim, postgres=False)
        # Started first, so that their clocks run while the first test waits.
        create_tenant(
            s,
            LATE,
            {
                MAINTENANCE_WINDOW_ANNOTATION: "0 0 1 1 * 1h Europe/Berlin",
                LEAF_VALIDITY_ANNOTATION: "60s",
                RENEW_BEFORE_ANNOTATION: "30s",
            },
        )
        create_tenant(s, BAD, {MAINTENANCE_WINDOW_ANNOTATION: "0 25 * * * 1h"})
        yield s


def apiserver(stack: Stack, tcp: str) -> tuple[str, datetime]:
    data = stack.data(stack.sim.get("secrets", f"{tcp}-api-server-certificate"))
    facts = summarize(SecretKind.APISERVER, data)
    return facts.serial, facts.not_after


def at_second(second: int) -> datetime:
    """Wait for `second` of the minute (the window's clock: it has no other); the time then."""
    now = datetime.now(UTC)
    time.sleep((second - now.second - now.microsecond / 1e6) % 60)
    return datetime.now(UTC)


def in_window(moment: datetime) -> bool:
    return moment.second + moment.microsecond / 1e6 < OPEN.total_seconds()


def requested_at(stack: Stack, tcp: str) -> list[tuple[datetime, str]]:
    """(when lifecycle decided, reason) of each rotation.requested audit event of `tcp`."""
    found = []
    for data in stack.tap.audit(tcp, "rotation-requested"):
        event = json.loads(data)
        found.append((datetime.fromisoformat(event["at"]), event["reason"]))
    return found


def renewal_gauge(stack: Stack, tcp: str, secret: str) -> float | None:
    (lifecycle,) = stack.services.by_name("lifecycle")
    with urllib.request.urlopen(f"http://127.0.0.1:{lifecycle.port}/metrics", timeout=10) as r:
        text = r.read().decode()
    for family in text_string_to_metric_families(text):
        if family.name == "certlc_certificate_renewal_timestamp_seconds":
            for sample in family.samples:
                if sample.labels["tcp"] == tcp and sample.labels["secret"] == secret:
                    return float(sample.value)
    return None


def test_a_missing_secret_is_created_at_once_and_a_due_renewal_waits_for_the_window(
    stack: Stack,
) -> None:
    # Create the TCP at second 40 of a minute: outside the window, and so that its renewal
    # falls due (50 s later, second 30) outside the window too.
    created = at_second(40)
    assert not in_window(created)
    create_tenant(stack, "win-wait", {})
    stack.first_issued("win-wait", timeout=60)
    ((first_at, first_reason),) = requested_at(stack, "win-wait")
    assert first_reason == "missing"
    assert first_at - created < timedelta(seconds=15), "a missing Secret waited"
    assert not in_window(first_at), f"issued at {first_at}: inside the window, nothing shown"

    serial, not_after = apiserver(stack, "win-wait")
    due = not_after - DEADLINE
    assert not in_window(due), f"due {due}: inside the window, nothing to wait for"
    opens = due.replace(second=0, microsecond=0) + timedelta(minutes=1)
    gauge = wait_for(
        lambda: renewal_gauge(stack, "win-wait", "win-wait-api-server-certificate"),
        30,
        "the renewal-time gauge",
    )
    assert gauge == opens.timestamp(), (datetime.fromtimestamp(gauge, UTC), opens)
    # `certlc plan` and `certlc status` show the same moment, read from lifecycle
    plan = json.loads(stack.certlc("plan", "default/win-wait", "-o", "json", kube=False))
    (rollout,) = plan["rollouts"]
    assert (rollout["tcp"], rollout["inWindow"]) == ("win-wait", True)
    assert datetime.fromisoformat(rollout["renewsAt"]) == opens
    assert datetime.fromisoformat(rollout["windowOpens"]) == opens
    ((window),) = plan["windows"]
    assert (window["windows"], window["rollouts"]) == ("* * * * * 20s UTC", 1)
    planned = {c["secret"]: c for c in rollout["certificates"]}
    assert "win-wait-api-server-certificate" in planned
    assert "win-wait-ca" not in planned  # a CA is rotated by hand
    rows = {
        r["secret"]: r
        for r in json.loads(stack.certlc("status", "default/win-wait", "-o", "json"))[
            "tenantControlPlanes"
        ][0]["certificates"]
    }
    assert datetime.fromisoformat(rows["win-wait-api-server-certificate"]["renewsAt"]) == opens
    assert rows["win-wait-api-server-certificate"]["renewsInWindow"] is True
    assert rows["win-wait-ca"]["renewsAt"] is None
    assert "RENEWAL" in stack.certlc("status", "default/win-wait").splitlines()[0]

    wait_for(lambda: apiserver(stack, "win-wait")[0] != serial, 150, "the renewal")
    renewals = [(at, r) for at, r in requested_at(stack, "win-wait") if r == "expiring"]
    assert renewals, requested_at(stack, "win-wait")
    at = renewals[0][0]
    assert opens <= at < opens + OPEN, f"due {due}, window from {opens}, renewed at {at}"
    assert not tcp_warnings(stack, "win-wait", "RenewalOutsideWindow")


def test_a_renewal_that_cannot_wait_happens_in_time_with_a_warning(stack: Stack) -> None:
    stack.first_issued(LATE, timeout=60)
    warnings = wait_for(
        lambda: tcp_warnings(stack, LATE, "RenewalOutsideWindow"),
        120,
        "the RenewalOutsideWindow Warning Event",
    )
    assert all(f"{LATE}-api-server-certificate" in w.message for w in warnings)
    assert "0 0 1 1 * 1h Europe/Berlin" in warnings[0].message
    # The first renewal (it renews every 50 s from then on): the audit event names the
    # certificates and the first NotAfter.
    first = json.loads(stack.tap.audit(LATE, "renewal-outside-window")[0])
    assert f"{LATE}-api-server-certificate" in first["secrets"]
    not_after = datetime.fromisoformat(first["not_after"])
    renewals = [at for at, reason in requested_at(stack, LATE) if reason == "expiring"]
    # decided at the latest safe moment (not at NotAfter - 30 s, when it fell due)
    assert not_after - MARGIN <= renewals[0] < not_after, (renewals[0], not_after)
    # and the new certificate was written before the old one ended
    issued = [
        (datetime.fromisoformat(e["at"]), datetime.fromisoformat(e["not_after"]))
        for e in map(json.loads, stack.tap.audit(LATE, "certificate-issued"))
        if e["secret"] == f"{LATE}-api-server-certificate"
    ]
    renewed = min(at for at, ends in issued if ends > not_after)
    assert renewed < not_after, (renewed, not_after)


def test_a_bad_window_annotation_is_a_warning_event_that_names_it(stack: Stack) -> None:
    stack.first_issued(BAD, timeout=60)
    warnings = wait_for(
        lambda: tcp_warnings(stack, BAD, "AnnotationRejected"),
        30,
        "the AnnotationRejected Warning Event",
    )
    assert len(warnings) == 1
    assert MAINTENANCE_WINDOW_ANNOTATION in warnings[0].message
    assert "bad cron expression '0 25 * * *'" in warnings[0].message


def test_a_requested_rotation_may_wait_for_the_window(stack: Stack) -> None:
    """`certlc rotate --wait-for-window` outside the window: accepted at once, recorded as
    scheduled (certlc status), issued once the window opens and not before."""
    tcp = "win-req"
    # a leaf validity of an hour: nothing falls due by age meanwhile
    create_tenant(stack, tcp, {LEAF_VALIDITY_ANNOTATION: "1h"})
    stack.first_issued(tcp, timeout=60)
    stack.quiet(tcp)
    asked = at_second(30)  # the window closed
    assert not in_window(asked)
    out = stack.certlc("rotate", f"default/{tcp}", "admin-kubeconfig", "--wait-for-window")
    rotation = out.split()[1]
    opens = asked.replace(second=0, microsecond=0) + timedelta(minutes=1)
    assert f"waiting for the maintenance window that opens at {opens:%Y-%m-%dT%H:%M:%SZ}" in out
    (record,) = json.loads(stack.certlc("status", f"default/{tcp}", "-o", "json"))["rotations"]
    assert (record["id"], record["phase"]) == (rotation, "scheduled")
    # and `certlc plan` has it as a rollout at the window opening
    plan = json.loads(stack.certlc("plan", f"default/{tcp}", "-o", "json", kube=False))
    (planned,) = [r for r in plan["rollouts"] if r["rotation"] == rotation]
    assert datetime.fromisoformat(planned["renewsAt"]) == opens
    assert [c["secret"] for c in planned["certificates"]] == [f"{tcp}-admin-kubeconfig"]
    requested = [json.loads(d) for d in stack.tap.audit(tcp, "rotation-requested")]
    assert [r["not_before"] for r in requested if r["rotation_id"] == rotation] == [
        f"{opens:%Y-%m-%dT%H:%M:%SZ}"
    ]

    def issued() -> list[datetime]:
        return [
            datetime.fromisoformat(e["at"])
            for e in map(json.loads, stack.tap.audit(tcp, "certificate-issued"))
            if e["rotation_id"] == rotation
        ]

    (at,) = wait_for(issued, 90, "the requested rotation issued")
    # In a window and not before the first one opened: in that one unless lifecycle was held up
    # past it (a loaded machine), when it moves on to the next opening, never outside a window.
    assert opens <= at, f"asked {asked}, window from {opens}, issued at {at}"
    assert in_window(at), f"asked {asked}, window from {opens}, issued at {at}"
    wait_for(lambda: stack.rotations_done(tcp), 60, "the requested rotation completed")
