"""Lifecycle follows a TCP's profile annotations: its renew-before (absolute, or a share of
each certificate's own lifetime), and reports what it ignores; a profile change alone re-issues
nothing."""

from __future__ import annotations

from datetime import timedelta

from libs.contracts.messages import Reason
from libs.pki.overrides import (
    KEY_ALGORITHM_ANNOTATION,
    LEAF_VALIDITY_ANNOTATION,
    RENEW_BEFORE_ANNOTATION,
    RENEW_BEFORE_PERCENTAGE_ANNOTATION,
)
from services.lifecycle.policy import PolicySettings, TcpState, decide, effective_deadline
from tests.unit.lifecycle.test_policy import NOW, K, cert, healthy, secret, tcp

CFG = PolicySettings(jitter=0)


def test_an_absolute_renew_before_of_the_tcp_replaces_the_fleet_deadline() -> None:
    soon = secret(K.APISERVER, cert=cert(NOW + timedelta(hours=47)))
    fleet = decide(TcpState(tcp(), healthy(APISERVER=soon)), NOW, CFG)
    assert fleet.rotations == ()
    assert fleet.next_check == NOW + timedelta(hours=23)
    own = tcp(annotations={RENEW_BEFORE_ANNOTATION: "48h"})
    decision = decide(TcpState(own, healthy(APISERVER=soon)), NOW, CFG)
    assert [(r.reason, r.kinds) for r in decision.rotations] == [(Reason.EXPIRING, (K.APISERVER,))]
    assert decision.rejected == ()


def test_a_percentage_is_of_each_certificate_own_lifetime() -> None:
    own = tcp(annotations={RENEW_BEFORE_PERCENTAGE_ANNOTATION: "10"})
    # issued 30 days ago for 40 days: 4 days before NotAfter it falls due, 6 days from now
    issued = secret(K.APISERVER, cert=cert(NOW + timedelta(days=10), NOW - timedelta(days=30)))
    assert effective_deadline(own, issued, CFG) == timedelta(days=4)
    decision = decide(TcpState(own, healthy(APISERVER=issued)), NOW, CFG)
    assert decision.rotations == ()
    assert decision.next_check == NOW + timedelta(days=6)


def test_a_bad_or_contradictory_annotation_is_reported_and_the_fleet_value_applies() -> None:
    own = tcp(annotations={RENEW_BEFORE_ANNOTATION: "48h", RENEW_BEFORE_PERCENTAGE_ANNOTATION: "5"})
    soon = secret(K.APISERVER, cert=cert(NOW + timedelta(hours=47)))
    decision = decide(TcpState(own, healthy(APISERVER=soon)), NOW, CFG)
    assert decision.rotations == ()  # neither applies: the fleet's 24h does
    assert [r.annotation for r in decision.rejected] == [
        RENEW_BEFORE_ANNOTATION,
        RENEW_BEFORE_PERCENTAGE_ANNOTATION,
    ]
    assert effective_deadline(own, soon, CFG) == CFG.deadline


def test_a_profile_change_alone_re_issues_nothing() -> None:
    """Certificates of another key algorithm or validity are not invalid: they are renewed
    with the new profile when they fall due."""
    changed = tcp(
        annotations={KEY_ALGORITHM_ANNOTATION: "ECDSA-P384", LEAF_VALIDITY_ANNOTATION: "720h"}
    )
    decision = decide(TcpState(changed, healthy()), NOW, CFG)
    assert decision.rotations == ()
    assert decision.rejected == ()


def test_the_fleet_leaf_validity_bounds_a_tcp_renew_before() -> None:
    cfg = PolicySettings(leaf_validity=timedelta(days=30), jitter=0)
    own = tcp(annotations={RENEW_BEFORE_ANNOTATION: "30d"})
    assert [r.annotation for r in decide(TcpState(own, healthy()), NOW, cfg).rejected] == [
        RENEW_BEFORE_ANNOTATION
    ]
