"""Membership over a real nats-server: replicas hear each other, split the partitions, and a
replica that leaves or falls silent hands its share over."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import pytest

from libs.bus import Bus
from libs.bus.members import Membership
from libs.contracts.partitions import assign

pytestmark = pytest.mark.usefixtures("no_task_leaks")

SUBJECT = "certlc.members.test"


async def until(check: Callable[[], bool], within: float = 5.0) -> None:
    deadline = time.monotonic() + within
    while not check():
        assert time.monotonic() < deadline, "condition not reached"
        await asyncio.sleep(0.02)


class Clock:
    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.monotonic() + self.offset


async def test_two_replicas_split_the_partitions_and_a_leaver_hands_over_at_once(
    bus: Bus,
) -> None:
    changes: list[frozenset[int]] = []
    a = Membership(bus, SUBJECT, partitions=16, lease=1.0, me="a", on_change=changes.append)
    b = Membership(bus, SUBJECT, partitions=16, lease=1.0, me="b")
    stop_a, stop_b = asyncio.Event(), asyncio.Event()
    tasks = [asyncio.create_task(a.run(stop_a)), asyncio.create_task(b.run(stop_b))]
    try:
        expected = assign(16, ["a", "b"])
        await until(lambda: a.owned == expected["a"] and b.owned == expected["b"])
        assert a.owned | b.owned == frozenset(range(16))
        assert not a.owned & b.owned
        assert changes[0] == frozenset(range(16))  # alone at first: everything
        stop_b.set()
        await tasks[1]
        # b said it was leaving: no lease to wait for
        await until(lambda: a.owned == frozenset(range(16)), within=0.5)
        assert a.members() == {"a"}
    finally:
        stop_a.set()
        stop_b.set()
        await asyncio.gather(*tasks)


async def test_a_silent_replica_loses_its_share_when_its_lease_runs_out(bus: Bus) -> None:
    clock = Clock()
    a = Membership(bus, SUBJECT, partitions=8, lease=1.0, me="a", clock=clock)
    stop = asyncio.Event()
    task = asyncio.create_task(a.run(stop))
    try:
        await a.listening.wait()
        await bus.client.publish(SUBJECT, b"ghost")  # a replica heard once, never again
        await until(lambda: a.owned == assign(8, ["a", "ghost"])["a"])
        clock.offset += 0.4
        await asyncio.sleep(0.3)  # a heartbeat round
        assert "ghost" in a.members()
        assert len(a.owned) == 4
        clock.offset += 0.6
        await until(lambda: a.owned == frozenset(range(8)), within=1.0)
    finally:
        stop.set()
        await task


async def test_a_malformed_heartbeat_is_ignored_and_listening_goes_on(bus: Bus) -> None:
    a = Membership(bus, SUBJECT, partitions=8, lease=1.0, me="a")
    stop = asyncio.Event()
    task = asyncio.create_task(a.run(stop))
    try:
        await a.listening.wait()
        for junk in (b"", b"leaving:", b"*", b"x" * 500, b"\xff\xfe", b"two words"):
            await bus.client.publish(SUBJECT, junk)
        await bus.client.publish(SUBJECT, b"b")
        await until(lambda: "b" in a.members())
        assert a.members() == {"a", "b"}
        assert a.owned == assign(8, ["a", "b"])["a"]
    finally:
        stop.set()
        await task
