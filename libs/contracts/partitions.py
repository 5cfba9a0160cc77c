"""How replicas of a service share the fleet: fixed partitions of TCPs, and which live replica
owns which partition. Pure: the same inputs give the same answer in every replica.

- A TCP's partition is a hash of its namespace and name, modulo `count` (`partition_of`). It
  never changes while `count` does not, so a TCP's work always goes to the owner of one
  partition, and its decisions are taken in order by one replica at a time.
- A replica is live while it has been heard from within the lease (`live`): each replica judges
  by its own monotonic clock since it last heard a heartbeat, so no two clocks are compared.
- The partitions are dealt among the live replicas by rendezvous hashing, each replica taking
  at most its fair share (`assign`): every replica that sees the same members computes the same
  owners, the shares differ by at most one partition, and a replica that leaves hands over
  (about) only its own partitions; the others keep theirs.

Two replicas may briefly both own a partition (one has not yet heard of the other), or a
partition may be briefly unowned (its owner died, the lease has not run out). Both are safe:
decisions are idempotent (deterministic rotation ids, the duplicate window, conditional writes,
compare-and-set records), so ownership only divides the work; it is not what makes it correct.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping

DEFAULT_PARTITIONS = 64  # fixed for a fleet: every replica must use the same count


def _hash(*parts: str) -> int:
    digest = hashlib.blake2b("\x00".join(parts).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")


def partition_of(namespace: str, tcp: str, count: int = DEFAULT_PARTITIONS) -> int:
    """The partition of TCP `namespace/tcp`, in `range(count)`."""
    if count < 1:
        raise ValueError(f"partition count must be at least 1, got {count}")
    return _hash(namespace, tcp) % count


def live(heard: Mapping[str, float], now: float, lease: float) -> frozenset[str]:
    """The members heard from within `lease` seconds before `now` (one monotonic clock)."""
    return frozenset(member for member, at in heard.items() if now - at <= lease)


def assign(count: int, members: Iterable[str]) -> dict[str, frozenset[int]]:
    """Partition owners: member -> its partitions. Every partition has exactly one owner when
    there is a member; shares differ by at most one."""
    ordered = sorted(set(members))
    if not ordered:
        return {}
    base, extra = divmod(count, len(ordered))  # `extra` members get one more than `base`
    owned: dict[str, set[int]] = {member: set() for member in ordered}
    bigger = 0
    for partition in range(count):
        ranked = sorted(ordered, key=lambda m: (_hash(str(partition), m), m), reverse=True)
        for member in ranked:
            size = len(owned[member])
            if size < base or (size == base and bigger < extra):
                bigger += size == base
                owned[member].add(partition)
                break
    return {member: frozenset(parts) for member, parts in owned.items()}


def owned_by(count: int, members: Iterable[str], me: str) -> frozenset[int]:
    """The partitions `me` owns among `members` (`me` counts as a member)."""
    return assign(count, {*members, me})[me]
