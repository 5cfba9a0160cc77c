"""Lifecycle under maintenance windows: a due renewal waits for a window, one that cannot wait
renews at the latest safe moment and is reported, a missing or invalid Secret never waits, and a
bad window annotation is reported while the fleet's windows apply."""

from __future__ import annotations

from datetime import timedelta

from libs.contracts.messages import Reason
from libs.contracts.windows import parse_windows
from libs.pki.overrides import MAINTENANCE_WINDOW_ANNOTATION
from services.lifecycle.policy import PolicySettings, TcpState, decide, scheduled
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
