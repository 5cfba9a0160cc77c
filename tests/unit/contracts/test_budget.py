"""The rollout budget's pure transitions: who gets a slot, in which order, and what expires."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from libs.contracts.budget import (
    MAX_WAITING,
    Budget,
    Claim,
    Entry,
    Slots,
    claim,
    entry_key,
    expire,
    queue,
    recheck_after,
    release,
)
from libs.contracts.codec import decode, encode

T0 = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
LEASE = timedelta(seconds=30)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def ask(tcp: str, deadline: float, *, ns: str = "default", rolling: bool = False) -> Claim:
    return Claim(ns, tcp, f"id-{tcp}", at(deadline), rolling=rolling)


def run(budget: Budget, claims: list[tuple[float, Claim]], slots: Slots | None = None) -> Slots:
    current = slots or Slots()
    for now, request in claims:
        current = claim(current, request, at(now), budget).slots
    return current


def holders(slots: Slots) -> set[str]:
    return {e.tcp for e in slots.holders.values()}


def test_the_first_n_get_slots_and_the_rest_queue_in_deadline_order() -> None:
    budget = Budget(total=2, lease=LEASE)
    slots = run(budget, [(0, ask("a", 500)), (0, ask("b", 400)), (0, ask("c", 300))])
    slots = run(budget, [(0, ask("d", 100)), (0, ask("e", 200))], slots)
    assert holders(slots) == {"a", "b"}
    assert [e.tcp for e in queue(slots)] == ["d", "e", "c"]
    verdict = claim(slots, ask("c", 300), at(1), budget)
    assert (verdict.granted, verdict.position, verdict.queued) == (False, 3, False)


def test_a_freed_slot_is_kept_for_the_earliest_deadline_not_the_first_to_ask() -> None:
    budget = Budget(total=1, lease=LEASE)
    slots = run(budget, [(0, ask("a", 900)), (0, ask("late", 800)), (0, ask("urgent", 100))])
    slots = release(slots, "default", "a", at(1)) or slots
    assert not claim(slots, ask("late", 800), at(2), budget).granted
    verdict = claim(slots, ask("urgent", 100), at(3), budget)
    assert verdict.granted
    assert holders(verdict.slots) == {"urgent"}
    assert [e.tcp for e in queue(verdict.slots)] == ["late"]


def test_equal_deadlines_are_served_first_come_first_served() -> None:
    budget = Budget(total=1, lease=LEASE)
    slots = run(budget, [(0, ask("a", 5)), (1, ask("y", 50)), (2, ask("x", 50))])
    assert [e.tcp for e in queue(slots)] == ["y", "x"]


@pytest.mark.parametrize(
    ("total", "per_ns", "want"),
    [
        (0, 1, {"a1", "b1"}),  # one per namespace, no fleet limit
        (3, 1, {"a1", "b1"}),  # namespace a full: b1 served, a2 passed over, not blocking
        (2, 2, {"a1", "a2"}),
        (0, 0, {"a1", "a2", "a3", "b1"}),  # no limit at all
    ],
)
def test_the_per_namespace_share(total: int, per_ns: int, want: set[str]) -> None:
    budget = Budget(total=total, per_namespace=per_ns, lease=LEASE)
    slots = run(
        budget,
        [
            (0, ask("a1", 1, ns="a")),
            (0, ask("a2", 2, ns="a")),
            (0, ask("a3", 3, ns="a")),
            (0, ask("b1", 4, ns="b")),
        ],
    )
    assert holders(slots) == want


def test_a_slot_nobody_renews_comes_back_after_its_lease() -> None:
    budget = Budget(total=1, lease=LEASE)
    slots = run(budget, [(0, ask("dead", 1)), (0, ask("next", 2))])
    assert not claim(slots, ask("next", 2), at(29), budget).granted
    assert holders(run(budget, [(20, ask("next", 2)), (31, ask("next", 2))], slots)) == {"next"}


def test_a_waiter_that_stops_asking_loses_its_place() -> None:
    budget = Budget(total=1, lease=LEASE)
    slots = run(budget, [(0, ask("a", 1)), (0, ask("gone", 2)), (0, ask("b", 3))])
    for t in (10, 20, 30, 40):  # a renews its slot; b keeps asking; "gone" does not
        slots = run(budget, [(t, ask("a", 1)), (t, ask("b", 3))], slots)
    assert [e.tcp for e in queue(slots)] == ["b"]
    slots = release(slots, "default", "a", at(41)) or slots
    assert claim(slots, ask("b", 3), at(42), budget).granted


def test_a_holder_renews_only_past_half_of_its_lease() -> None:
    budget = Budget(total=1, lease=LEASE)
    slots = run(budget, [(0, ask("a", 1))])
    assert not claim(slots, ask("a", 1), at(10), budget).changed
    later = claim(slots, ask("a", 1), at(16), budget)
    assert later.changed
    assert later.slots.holders[entry_key("default", "a")].lease_until == at(46)


def test_a_rollout_already_under_way_is_counted_even_over_the_budget() -> None:
    budget = Budget(total=1, lease=LEASE)
    slots = run(budget, [(0, ask("a", 1)), (0, ask("b", 2)), (1, ask("b", 2, rolling=True))])
    assert holders(slots) == {"a", "b"}
    assert queue(slots) == []
    assert not claim(slots, ask("c", 0), at(2), budget).granted


def test_release_of_a_holder_or_a_waiter_and_of_nothing() -> None:
    budget = Budget(total=1, lease=LEASE)
    slots = run(budget, [(0, ask("a", 1)), (0, ask("b", 2))])
    after = release(slots, "default", "b", at(1))
    assert after is not None
    assert queue(after) == []
    assert holders(after) == {"a"}
    assert release(after, "default", "nobody", at(1)) is None


def test_expire_keeps_the_same_document_when_nothing_expired() -> None:
    slots = run(Budget(total=1, lease=LEASE), [(0, ask("a", 1))])
    assert expire(slots, at(5)) is slots
    assert expire(slots, at(31)).holders == {}


@pytest.mark.parametrize(
    ("position", "total", "want"),
    [(1, 2, 1), (2, 2, 1), (3, 2, 2), (9, 2, 5), (200, 2, 10), (5, 0, 5)],
)
def test_waiters_further_back_look_again_later(position: int, total: int, want: float) -> None:
    budget = Budget(total=total, per_namespace=0 if total else 1, lease=LEASE)
    assert recheck_after(position, budget, timedelta(seconds=10)) == timedelta(seconds=want)


def test_the_document_round_trips_and_refuses_bad_budgets() -> None:
    entry = Entry(
        namespace="n", tcp="t", rotation_id="r", deadline=T0, since=T0, lease_until=at(30)
    )
    slots = Slots(holders={"n/t": entry})
    assert decode(Slots, encode(slots)) == slots
    with pytest.raises(ValueError, match="budget"):
        Budget(total=-1)
    with pytest.raises(ValueError, match="lease"):
        Budget(total=1, lease=timedelta(0))


def test_a_full_queue_keeps_the_earliest_deadlines() -> None:
    budget = Budget(total=1, lease=LEASE)
    slots = run(budget, [(0, ask("holder", 0))])
    waiting = {
        entry_key("default", f"w{i}"): Entry(
            namespace="default", tcp=f"w{i}", rotation_id="r", deadline=at(100 + i), since=T0,
            lease_until=at(30),
        )
        for i in range(MAX_WAITING)
    }  # fmt: skip
    full = Slots(holders=slots.holders, waiting=waiting)
    late = claim(full, ask("late", 100 + MAX_WAITING), at(1), budget)
    assert (late.granted, late.position, late.changed) == (False, MAX_WAITING + 1, False)
    early = claim(full, ask("early", 50), at(1), budget)
    assert early.position == 1
    assert len(early.slots.waiting) == MAX_WAITING
    assert entry_key("default", f"w{MAX_WAITING - 1}") not in early.slots.waiting
    assert len(encode(early.slots)) < 1024 * 1024
