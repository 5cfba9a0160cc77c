from __future__ import annotations

from collections import Counter

import pytest

from libs.contracts.partitions import (
    DEFAULT_PARTITIONS,
    assign,
    live,
    owned_by,
    partition_of,
)

MEMBERS = [f"lifecycle-{i}-{i * 7919:x}" for i in range(6)]


def test_a_tcp_always_has_the_same_partition_in_range() -> None:
    first = partition_of("prod", "cp.team-a")
    assert first == partition_of("prod", "cp.team-a")
    assert 0 <= first < DEFAULT_PARTITIONS
    # namespace and name are not concatenated ambiguously
    assert partition_of("a", "bc", 1 << 20) != partition_of("ab", "c", 1 << 20)


def test_tcps_spread_evenly_over_partitions() -> None:
    counts = Counter(partition_of("ns", f"tcp-{i}", 16) for i in range(16_000))
    assert set(counts) == set(range(16))
    assert max(counts.values()) < 1.1 * 1000
    assert min(counts.values()) > 0.9 * 1000


def test_a_partition_count_below_one_is_refused() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        partition_of("ns", "tcp", 0)


@pytest.mark.parametrize("members", [1, 2, 3, 5, 6])
def test_every_partition_has_one_owner_and_shares_differ_by_at_most_one(members: int) -> None:
    owners = assign(64, MEMBERS[:members])
    assert set(owners) == set(MEMBERS[:members])
    seen = [p for parts in owners.values() for p in parts]
    assert sorted(seen) == list(range(64))
    sizes = [len(parts) for parts in owners.values()]
    assert max(sizes) - min(sizes) <= 1


def test_every_replica_computes_the_same_owners_whatever_the_order_it_heard_them() -> None:
    assert assign(64, MEMBERS) == assign(64, list(reversed(MEMBERS)))
    for me in MEMBERS:
        assert owned_by(64, [m for m in MEMBERS if m != me], me) == assign(64, MEMBERS)[me]


def test_a_replica_that_leaves_hands_over_mostly_its_own_partitions() -> None:
    before = assign(64, MEMBERS[:3])
    after = assign(64, MEMBERS[:2])
    moved = {p for m in MEMBERS[:2] for p in before[m] if p not in after[m]}
    # the leaver's share moves; of the others' partitions only a few are re-dealt to balance
    assert len(moved) <= 4
    assert before[MEMBERS[2]] <= after[MEMBERS[0]] | after[MEMBERS[1]]


def test_nobody_owns_nothing() -> None:
    assert assign(8, []) == {}
    assert owned_by(8, [], "alone") == frozenset(range(8))


def test_a_member_is_live_within_its_lease_by_the_listeners_clock() -> None:
    heard = {"a": 100.0, "b": 96.0, "c": 94.9}
    assert live(heard, 101.0, 5.0) == {"a", "b"}
    assert live(heard, 200.0, 5.0) == frozenset()
