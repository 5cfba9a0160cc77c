"""The schedule API's answers (services/lifecycle/schedule.py): which certificates are listed,
when each renews (the same arithmetic as the decisions), the filters, and pages that together
hold every renewal once."""

from __future__ import annotations

from datetime import timedelta

import pytest

from libs.contracts.api import MAX_SCHEDULE_PAGE, ScheduleRequest
from libs.contracts.messages import Problem, SecretObserved
from libs.contracts.windows import parse_windows
from libs.pki import SecretKind
from services.lifecycle import schedule
from services.lifecycle.policy import PolicySettings, TcpState, decide, managed_kinds
from tests.unit.lifecycle.test_policy import NOW, K, cert, secret, tcp

CFG = PolicySettings(jitter=0)
CA_KINDS = {K.CA, K.FRONT_PROXY_CA}
UNCERTIFIED = {K.SA, K.DATASTORE_CONFIG}


def tenant(name: str, namespace: str = "default", days: float = 300, **kw: object) -> TcpState:
    """A TCP whose every leaf and kubeconfig ends `days` from NOW."""
    t = tcp(name=name, namespace=namespace, uid=f"uid-{namespace}-{name}", **kw)
    secrets: dict[SecretKind, SecretObserved] = {}
    for kind in managed_kinds(t):
        s = secret(kind, namespace=namespace, tcp=name, name=f"{name}-{kind.value}")
        if s.cert is not None and kind not in CA_KINDS:
            s = secret(
                kind,
                namespace=namespace,
                tcp=name,
                name=f"{name}-{kind.value}",
                cert=cert(NOW + timedelta(days=days)),
            )
        secrets[kind] = s
    return TcpState(t, secrets)


def test_every_certificate_renewed_for_its_age_is_listed_and_nothing_else() -> None:
    state = tenant("a")
    listed = schedule.renewals(state, CFG)
    expected = {k.value for k in managed_kinds(state.tcp)} - {
        k.value for k in CA_KINDS | UNCERTIFIED
    }
    assert {r.kind for r in listed} == expected
    assert [r.secret for r in listed] == sorted(r.secret for r in listed)
    for r in listed:
        assert (r.namespace, r.tcp) == ("default", "a")
        assert r.not_after == NOW + timedelta(days=300)
        assert r.due == r.not_after - CFG.deadline
        assert (r.at, r.in_window, r.windows) == (r.due, True, "")


def test_a_paused_tcp_lists_nothing_and_a_paused_secret_is_left_out() -> None:
    assert schedule.renewals(tenant("a", paused=True), CFG) == []
    state = tenant("a")
    name = f"a-{K.ADMIN_KUBECONFIG.value}"
    paused = state.secrets[K.ADMIN_KUBECONFIG]
    state.secrets[K.ADMIN_KUBECONFIG] = secret(
        K.ADMIN_KUBECONFIG, tcp="a", name=name, cert=paused.cert, paused=True
    )
    assert name not in {r.secret for r in schedule.renewals(state, CFG)}


def test_an_invalid_secret_is_re_issued_at_once_and_not_listed() -> None:
    state = tenant("a")
    bad = state.secrets[K.APISERVER]
    state.secrets[K.APISERVER] = secret(
        K.APISERVER,
        tcp="a",
        name=bad.name,
        cert=bad.cert,
        problems=(Problem(code="key-mismatch", message="apiserver.key does not match"),),
    )
    assert bad.name not in {r.secret for r in schedule.renewals(state, CFG)}
    assert len(schedule.renewals(state, CFG)) == len(schedule.renewals(tenant("a"), CFG)) - 1


def test_a_copied_datastore_certificate_is_renewed_by_its_own_pki_and_not_listed() -> None:
    state = tenant("pg", datastore_driver="PostgreSQL")
    assert K.DATASTORE_CERTIFICATE.value not in {r.kind for r in schedule.renewals(state, CFG)}


def test_the_listed_moment_is_the_one_lifecycle_renews_at() -> None:
    """Inside a window the renewal is listed at the window's opening, and decide() renews it
    then and not a minute before."""
    cfg = PolicySettings(jitter=0, windows=parse_windows("0 2 * * * 4h"))
    state = tenant("a", days=1.5)  # due at NOW + 12 h = 00:00 tomorrow; the window opens 02:00
    listed = schedule.renewals(state, cfg)
    at = NOW + timedelta(hours=14)
    assert {(r.at, r.in_window, r.windows) for r in listed} == {(at, True, "0 2 * * * 4h UTC")}
    assert {r.window_opens for r in listed} == {at}
    inside = schedule.renewals(tenant("b", days=1 + 15 / 24), cfg)  # due at 03:00, in the window
    assert {(r.at, r.window_opens) for r in inside} == {(at + timedelta(hours=1), at)}
    assert decide(state, at - timedelta(minutes=1), cfg).rotations == ()
    (rotation,) = decide(state, at, cfg).rotations
    assert {k.value for k in rotation.kinds} == {r.kind for r in listed}


def test_one_that_cannot_wait_for_a_window_is_listed_at_notafter_minus_the_margin() -> None:
    cfg = PolicySettings(jitter=0, windows=parse_windows("0 2 * * 0 1h"))  # Sundays
    state = tenant("a", days=20 / 24)  # NotAfter Tuesday 08:00
    (first, *_) = schedule.renewals(state, cfg)
    assert first.at == first.not_after - cfg.window_margin
    assert (first.in_window, first.window_opens) == (False, None)


def test_filters_by_namespace_tcp_and_period() -> None:
    views = [tenant("a", "ns1"), tenant("b", "ns1", days=10), tenant("a", "ns2")]
    every = schedule.page(views, ScheduleRequest(), CFG, NOW).renewals
    assert {(r.namespace, r.tcp) for r in every} == {("ns1", "a"), ("ns1", "b"), ("ns2", "a")}
    soon = schedule.page(views, ScheduleRequest(until=NOW + timedelta(days=30)), CFG, NOW)
    assert {(r.namespace, r.tcp) for r in soon.renewals} == {("ns1", "b")}
    later = schedule.page(views, ScheduleRequest(since=NOW + timedelta(days=30)), CFG, NOW)
    assert {(r.namespace, r.tcp) for r in later.renewals} == {("ns1", "a"), ("ns2", "a")}
    assert len(soon.renewals) + len(later.renewals) == len(every)


def test_pages_hold_every_renewal_once_in_order() -> None:
    views = [tenant(n, ns) for ns in ("ns1", "ns2") for n in ("a", "b", "c")]
    every = schedule.page(views, ScheduleRequest(), CFG, NOW).renewals
    assert len(every) > 7
    got, after, pages = [], "", 0
    while True:
        cursor = schedule.check(ScheduleRequest(after=after))
        # the caller skips the TCPs before the cursor's, as lifecycle does
        rest = [
            v
            for v in views
            if cursor is None or (v.tcp.namespace, v.tcp.name) >= (cursor.namespace, cursor.tcp)
        ]
        reply = schedule.page(rest, ScheduleRequest(after=after, limit=7), CFG, NOW)
        assert len(reply.renewals) <= 7
        got.extend(reply.renewals)
        pages += 1
        if not reply.more:
            break
        assert reply.more == "/".join(
            (reply.renewals[-1].namespace, reply.renewals[-1].tcp, reply.renewals[-1].secret)
        )
        after = reply.more
    assert got == list(every)
    assert pages == -(-len(every) // 7)


def test_an_exactly_full_last_page_says_there_is_no_more() -> None:
    views = [tenant("a")]
    n = len(schedule.renewals(views[0], CFG))
    reply = schedule.page(views, ScheduleRequest(limit=n), CFG, NOW)
    assert (len(reply.renewals), reply.more) == (n, "")


@pytest.mark.parametrize(
    ("request_", "message"),
    [
        (ScheduleRequest(limit=0), f"'limit' must be within 1 and {MAX_SCHEDULE_PAGE}"),
        (
            ScheduleRequest(limit=MAX_SCHEDULE_PAGE + 1),
            f"'limit' must be within 1 and {MAX_SCHEDULE_PAGE}",
        ),
        (ScheduleRequest(tcp="a"), "'tcp' needs its 'namespace'"),
        (ScheduleRequest(since=NOW, until=NOW), "'until' must come after 'since'"),
        (ScheduleRequest(after="ns/a"), "'after' 'ns/a' is not a cursor of a previous reply"),
        (ScheduleRequest(after="ns//x"), "'after' 'ns//x' is not a cursor of a previous reply"),
    ],
)
def test_a_bad_request_is_refused_naming_what_is_wrong(
    request_: ScheduleRequest, message: str
) -> None:
    with pytest.raises(schedule.BadScheduleRequest) as exc:
        schedule.check(request_)
    assert str(exc.value) == message
    with pytest.raises(schedule.BadScheduleRequest):
        schedule.page([tenant("a")], request_, CFG, NOW)
