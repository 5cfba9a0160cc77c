"""`certlc plan`'s arithmetic (libs/cli/_plan.py): renewals grouped into rollouts, and the
rollout budget played forward as rollout serves it (deadline order, namespaces passed over)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import msgspec

from libs.cli._plan import (
    PlannedRollout,
    budget_waits,
    estimate_starts,
    per_window,
    render_plan,
    rollouts,
    scheduled_rotations,
)
from libs.cli._status import renewal_text
from libs.contracts.api import ScheduledRenewal
from libs.contracts.messages import Reason, RotateCommand
from libs.contracts.records import Requested, Scheduled, advance

T0 = datetime(2026, 6, 1, 2, 0, tzinfo=UTC)
MINUTE = timedelta(minutes=1)


def renewal(tcp: str, secret: str, at: datetime, not_after: datetime, ns: str = "default",
            in_window: bool = True) -> ScheduledRenewal:  # fmt: skip
    return ScheduledRenewal(
        namespace=ns, tcp=tcp, secret=f"{tcp}-{secret}", kind=secret, not_after=not_after,
        due=at, at=at, in_window=in_window, windows="0 2 * * * 4h UTC",
    )  # fmt: skip


def planned(tcp: str, at: datetime, deadline: datetime, ns: str = "default") -> PlannedRollout:
    return PlannedRollout(
        namespace=ns, tcp=tcp, at=at, deadline=deadline, secrets=(f"{tcp}-x",), in_window=True,
        windows="",
    )  # fmt: skip


def test_the_certificates_of_one_tcp_at_one_moment_are_one_rollout() -> None:
    found = rollouts([
        renewal("a", "api-server-certificate", T0, T0 + timedelta(hours=30)),
        renewal("a", "admin-kubeconfig", T0, T0 + timedelta(hours=26)),
        renewal("a", "scheduler-kubeconfig", T0 + timedelta(days=1), T0 + timedelta(days=2)),
        renewal("b", "admin-kubeconfig", T0, T0 + timedelta(hours=40), in_window=False),
    ])  # fmt: skip
    assert [(p.tcp, p.at, p.secrets) for p in found] == [
        ("a", T0, ("a-admin-kubeconfig", "a-api-server-certificate")),
        ("b", T0, ("b-admin-kubeconfig",)),
        ("a", T0 + timedelta(days=1), ("a-scheduler-kubeconfig",)),
    ]
    assert found[0].deadline == T0 + timedelta(hours=26)  # the earliest NotAfter
    assert (found[0].in_window, found[1].in_window) == (True, False)


def test_without_a_budget_each_starts_at_its_moment() -> None:
    ten = [planned(f"t{i}", T0, T0 + timedelta(hours=24 + i)) for i in range(10)]
    assert [s for _, s in estimate_starts(ten, 0, 0, MINUTE)] == [T0] * 10


def test_a_budget_of_two_serves_ten_in_deadline_order_two_at_a_time() -> None:
    # listed in reverse deadline order: the budget serves the earliest NotAfter first
    ten = [planned(f"t{i}", T0, T0 + timedelta(hours=34 - i)) for i in range(10)]
    started = estimate_starts(ten, 2, 0, MINUTE)
    assert {p.tcp: s for p, s in started} == {
        f"t{9 - i}": T0 + (i // 2) * MINUTE for i in range(10)
    }
    assert [s for _, s in started] == sorted(s for _, s in started)


def test_a_full_namespace_is_passed_over_not_blocking_the_others() -> None:
    # a per-namespace limit of one: ns1's three go one after another, ns2's alongside them
    queue = [planned(f"a{i}", T0, T0 + timedelta(hours=25 + i), ns="ns1") for i in range(3)]
    queue.append(planned("b0", T0, T0 + timedelta(hours=30), ns="ns2"))
    started = {p.tcp: s for p, s in estimate_starts(queue, 4, 1, MINUTE)}
    assert started == {"a0": T0, "b0": T0, "a1": T0 + MINUTE, "a2": T0 + 2 * MINUTE}


def test_a_later_moment_waits_only_for_what_still_runs_then() -> None:
    queue = [
        planned("early", T0, T0 + timedelta(hours=25)),
        planned("late", T0 + 10 * MINUTE, T0 + timedelta(hours=26)),
        planned("urgent", T0 + 10 * MINUTE, T0 + timedelta(hours=24)),
    ]
    started = {p.tcp: s for p, s in estimate_starts(queue, 1, 0, 15 * MINUTE)}
    # early runs 02:00-02:15; at 02:15 the urgent one (earlier deadline) goes first
    assert started == {"early": T0, "urgent": T0 + 15 * MINUTE, "late": T0 + 30 * MINUTE}


def test_the_table_shows_each_rollout_its_wait_and_those_outside_windows() -> None:
    found = rollouts([
        renewal("a", "admin-kubeconfig", T0, T0 + timedelta(hours=26)),
        renewal("b", "admin-kubeconfig", T0, T0 + timedelta(hours=27), in_window=False),
    ])  # fmt: skip
    lines = render_plan(
        estimate_starts(found, 1, 0, 5 * MINUTE), T0 - timedelta(hours=1), (1, 0), 5 * MINUTE,
        (None, T0 + timedelta(days=7)),
    )  # fmt: skip
    assert lines[0].startswith("2 rollout(s) of 2 TCP(s)")
    assert "rollout budget 1 at once, unlimited per namespace" in lines[0]
    rows = {line.split()[3]: line for line in lines if line.startswith("2026-")}
    assert rows["default/a"].rstrip().endswith("-")
    assert rows["default/b"].rstrip().endswith("+5m")
    assert "outside windows (cannot wait)" in rows["default/b"]
    assert any(line.startswith("- default/b: no maintenance window") for line in lines)


def test_nothing_scheduled_says_so() -> None:
    (line,) = render_plan([], T0, (0, 0), MINUTE, (None, T0))
    assert (
        line == "No renewals scheduled from now (what is due included) until 2026-06-01T02:00:00Z."
    )


def test_status_shows_the_budget_wait_of_each_certificate_whose_rollout_would_wait() -> None:
    fleet = [
        renewal("a", "admin-kubeconfig", T0, T0 + timedelta(hours=25)),
        renewal("a", "scheduler-kubeconfig", T0, T0 + timedelta(hours=26)),
        renewal("b", "admin-kubeconfig", T0, T0 + timedelta(hours=27)),
    ]
    waits = budget_waits(fleet, 1, 0, MINUTE)
    assert waits == {("default", "b-admin-kubeconfig"): MINUTE}  # a goes first: earlier NotAfter
    assert budget_waits(fleet, 0, 0, MINUTE) == {}
    now = T0 - timedelta(days=2)
    assert renewal_text(fleet[2], now, waits[("default", "b-admin-kubeconfig")]) == (
        "in 2d (window, +1m budget)"
    )
    assert renewal_text(fleet[0], now) == "in 2d (window)"
    plain = msgspec.structs.replace(fleet[0], windows="")
    assert renewal_text(plain, now, MINUTE) == "in 2d (+1m budget)"
    assert renewal_text(plain, T0) == "due"
    assert renewal_text(None, now) == "-"


def test_the_plan_sums_up_each_window_opening() -> None:
    tomorrow = T0 + timedelta(days=1)
    late = renewal("d", "admin-kubeconfig", T0, T0 + timedelta(hours=3), in_window=False)
    found = rollouts([
        msgspec.structs.replace(r, window_opens=r.at) for r in (
            renewal("a", "admin-kubeconfig", T0, T0 + timedelta(hours=26)),
            renewal("a", "scheduler-kubeconfig", T0, T0 + timedelta(hours=26)),
            renewal("b", "admin-kubeconfig", T0, T0 + timedelta(hours=27)),
            renewal("c", "admin-kubeconfig", tomorrow, tomorrow + timedelta(hours=27)),
        )
    ] + [late])  # fmt: skip
    loads = per_window(estimate_starts(found, 1, 0, MINUTE))
    assert [(w.label, w.rollouts, w.certificates, w.last_start) for w in loads] == [
        ("2026-06-01T02:00:00Z (0 2 * * * 4h UTC)", 2, 3, T0 + 2 * MINUTE),
        ("2026-06-02T02:00:00Z (0 2 * * * 4h UTC)", 1, 1, tomorrow),
        ("outside windows (cannot wait)", 1, 1, T0),  # d: the earliest deadline, served first
    ]


def test_a_requested_rotation_waiting_for_its_window_is_a_rollout_of_the_plan() -> None:
    command = RotateCommand(
        id="req-1", namespace="default", tcp="w", tcp_uid="u", secrets=("admin-kubeconfig",),
        reason=Reason.REQUESTED, requested_at=T0 - MINUTE,
    )  # fmt: skip
    waiting = advance(None, Scheduled(command, {}, T0 - MINUTE, T0)).record
    started = advance(None, Requested(command, {}, T0 - MINUTE)).record
    assert waiting is not None
    assert started is not None
    (planned,) = scheduled_rotations([waiting, started], None, T0 + timedelta(days=7))
    assert (planned.tcp, planned.at, planned.secrets) == ("w", T0, ("w-admin-kubeconfig",))
    assert planned.rotation == "req-1"
    assert scheduled_rotations([waiting], T0 + MINUTE, None) == []  # before the period
    assert scheduled_rotations([waiting], None, T0) == []  # the period ends before it
    lines = render_plan(estimate_starts([planned], 0, 0, MINUTE), T0 - MINUTE, (0, 0), MINUTE,
                        (None, T0 + timedelta(days=7)))  # fmt: skip
    row = next(line for line in lines if "default/w" in line)
    assert "requested, waits for it" in row
    assert any(line.startswith("2026-06-01T02:00:00Z (requested rotation)") for line in lines)
