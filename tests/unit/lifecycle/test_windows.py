"""Lifecycle under maintenance windows: a due renewal waits for a window, one that cannot wait
renews at the latest safe moment and is reported, a missing or invalid Secret never waits, and a
bad window annotation is reported while the fleet's windows apply."""

from __future__ import annotations

from datetime import datetime, timedelta

from libs.contracts.api import RotateRequest, Target
from libs.contracts.messages import Reason, RotateCommand
from libs.contracts.records import RotationRecord, Scheduled, advance
from libs.contracts.windows import parse_windows
from libs.pki.overrides import MAINTENANCE_WINDOW_ANNOTATION
from services.lifecycle.policy import PolicySettings, TcpState, decide, scheduled
from services.lifecycle.requests import Rejected, resolve
from tests.unit.lifecycle.test_policy import NOW, K, cert, healthy, secret, tcp

# NOW is 2026-06-01 12:00 UTC; the fleet's window opens at 02:00 UTC for four hours
CFG = PolicySettings(
    jitter=0, windows=parse_windows("0 2 * * * 4h"), window_margin=timedelta(hours=2)
)
TOMORROW_2AM = NOW + timedelta(hours=14)


def test_a_due_renewal_outside_the_windows_waits_for_the_next_one() -> None:
    due = secret(K.APISERVER, cert=cert(NOW + timedelta(hours=23)))  # due an hour ago
    decision = decide(TcpState(tcp(), healthy(APISERVER=due)), NOW, CFG)
    assert decision.rotations == ()
    assert decision.next_check == TOMORROW_2AM
    assert scheduled(K.APISERVER, due, CFG, windows=CFG.windows) == TOMORROW_2AM
    at_two = decide(TcpState(tcp(), healthy(APISERVER=due)), TOMORROW_2AM, CFG)
    assert [(r.reason, r.kinds) for r in at_two.rotations] == [(Reason.EXPIRING, (K.APISERVER,))]
    assert "in a maintenance window from" in at_two.rotations[0].detail
    assert at_two.outside_window == ()


def test_certificates_due_apart_before_a_window_renew_together_in_it() -> None:
    secrets = healthy(
        APISERVER=secret(K.APISERVER, cert=cert(NOW + timedelta(hours=23))),
        APISERVER_KUBELET_CLIENT=secret(
            K.APISERVER_KUBELET_CLIENT, cert=cert(NOW + timedelta(hours=30))
        ),
    )
    (rotation,) = decide(TcpState(tcp(), secrets), TOMORROW_2AM, CFG).rotations
    assert set(rotation.kinds) == {K.APISERVER, K.APISERVER_KUBELET_CLIENT}  # one rollout


def test_one_that_cannot_wait_renews_at_the_latest_safe_moment_and_says_so() -> None:
    # NotAfter 13:30 tomorrow would wait for 02:00, but a weekly window opens too late
    cfg = PolicySettings(
        jitter=0, windows=parse_windows("0 2 * * 0 1h"), window_margin=CFG.window_margin
    )
    ends = NOW + timedelta(hours=20)  # Tuesday 08:00; due Monday 08:00; latest Tuesday 06:00
    due = secret(K.APISERVER, cert=cert(ends))
    waiting = decide(TcpState(tcp(), healthy(APISERVER=due)), NOW, cfg)
    assert waiting.rotations == ()
    assert waiting.next_check == ends - cfg.window_margin
    late = decide(TcpState(tcp(), healthy(APISERVER=due)), ends - cfg.window_margin, cfg)
    assert [r.kinds for r in late.rotations] == [(K.APISERVER,)]
    (report,) = late.outside_window
    assert report.kinds == (K.APISERVER,)
    assert report.not_after == ends
    assert "no maintenance window (0 2 * * 0 1h UTC) opened before" in report.message
    assert report.message.endswith("renewed outside the windows: k8s-126-api-server-certificate")


def test_missing_and_invalid_secrets_never_wait() -> None:
    secrets = healthy(APISERVER=None)
    decision = decide(TcpState(tcp(), secrets), NOW, CFG)
    assert [(r.reason, r.kinds) for r in decision.rotations] == [(Reason.MISSING, (K.APISERVER,))]


def test_a_tcp_annotation_replaces_the_fleet_windows_and_empty_means_any_time() -> None:
    due = secret(K.APISERVER, cert=cert(NOW + timedelta(hours=23)))
    now_open = tcp(annotations={MAINTENANCE_WINDOW_ANNOTATION: "0 11 * * * 2h"})
    assert decide(TcpState(now_open, healthy(APISERVER=due)), NOW, CFG).rotations != ()
    any_time = tcp(annotations={MAINTENANCE_WINDOW_ANNOTATION: ""})
    assert decide(TcpState(any_time, healthy(APISERVER=due)), NOW, CFG).rotations != ()


def test_a_bad_window_annotation_is_reported_and_the_fleet_windows_apply() -> None:
    due = secret(K.APISERVER, cert=cert(NOW + timedelta(hours=23)))
    bad = tcp(annotations={MAINTENANCE_WINDOW_ANNOTATION: "0 25 * * * 1h"})
    decision = decide(TcpState(bad, healthy(APISERVER=due)), NOW, CFG)
    assert decision.rotations == ()  # the fleet's window, not yet open
    assert decision.next_check == TOMORROW_2AM
    (rejected,) = decision.rejected
    assert rejected.annotation == MAINTENANCE_WINDOW_ANNOTATION
    assert "bad cron expression '0 25 * * *'" in rejected.message


# --- a requested rotation that waits for a window (rotate request `wait_for_window`) ---------


def waiting(
    not_before: datetime, *, at: datetime = NOW, ca: bool = False, kinds: tuple[K, ...] = ()
) -> RotationRecord:
    kinds = kinds or ((K.CA, K.APISERVER) if ca else (K.ADMIN_KUBECONFIG,))
    command = RotateCommand(
        id="req-1",
        namespace="default",
        tcp="k8s-126",
        tcp_uid="uid-1",
        secrets=tuple(k.value for k in kinds),
        reason=Reason.REQUESTED,
        requested_at=at,
        ca_rotation=ca,
        resource_versions={k.value: "10" for k in kinds},
    )
    record = advance(None, Scheduled(command, {}, at, not_before)).record
    assert record is not None
    return record


def test_a_scheduled_rotation_waits_and_is_asked_for_when_its_window_opens() -> None:
    record = waiting(TOMORROW_2AM)
    before = decide(TcpState(tcp(), healthy(), rotations=(record,)), NOW, CFG)
    assert (before.resends, before.reschedules) == ((), ())
    assert before.next_check == TOMORROW_2AM
    (resend,) = decide(TcpState(tcp(), healthy(), rotations=(record,)), TOMORROW_2AM, CFG).resends
    assert resend.record.id == "req-1"
    assert resend.why == "its maintenance window is open"


def test_one_whose_moment_passed_outside_every_window_moves_to_the_next_opening() -> None:
    # lifecycle was down from before 02:00 until after 06:00: the window was missed
    record = waiting(NOW - timedelta(hours=10), at=NOW - timedelta(hours=11))
    decision = decide(TcpState(tcp(), healthy(), rotations=(record,)), NOW, CFG)
    assert decision.resends == ()
    assert decision.reschedules == ((record, TOMORROW_2AM),)
    assert decision.next_check is not None
    assert NOW < decision.next_check <= TOMORROW_2AM
    # and when the TCP's windows are gone meanwhile, it is asked for at once
    no_windows = tcp(annotations={MAINTENANCE_WINDOW_ANNOTATION: ""})
    (resend,) = decide(TcpState(no_windows, healthy(), rotations=(record,)), NOW, CFG).resends
    assert resend.record.id == "req-1"


def test_a_long_wait_rewrites_the_record_daily() -> None:
    record = waiting(NOW + timedelta(days=5), at=NOW - timedelta(days=1, seconds=1))
    decision = decide(TcpState(tcp(), healthy(), rotations=(record,)), NOW, CFG)
    assert decision.reschedules == ((record, NOW + timedelta(days=5)),)


def test_a_scheduled_rotation_covers_nothing_until_it_starts() -> None:
    """A missing Secret is re-created at once although a scheduled rotation names it, and a
    scheduled CA rotation does not hold back the repair of what the CA signs; another CA
    rotation is refused meanwhile (409), as while one runs."""
    record = waiting(TOMORROW_2AM, kinds=(K.APISERVER,))
    missing = decide(TcpState(tcp(), healthy(APISERVER=None), rotations=(record,)), NOW, CFG)
    assert [(r.reason, r.kinds) for r in missing.rotations] == [(Reason.MISSING, (K.APISERVER,))]
    ca = waiting(TOMORROW_2AM, ca=True)
    repaired = decide(TcpState(tcp(), healthy(APISERVER=None), rotations=(ca,)), NOW, CFG)
    assert [(r.reason, r.kinds) for r in repaired.rotations] == [(Reason.MISSING, (K.APISERVER,))]
    verdict = resolve(
        RotateRequest(namespace="default", tcp="k8s-126", target=Target.CA),
        TcpState(tcp(), healthy(), rotations=(ca,)),
    )
    assert isinstance(verdict, Rejected)
    assert verdict.code == 409
    assert "is scheduled" in verdict.message
