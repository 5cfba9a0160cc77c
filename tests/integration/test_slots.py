"""The rollout budget's document on a real nats-server: replicas racing for slots by
compare-and-set never hold more than the budget, and every waiter is served in the end."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from libs.bus import Bus
from libs.contracts.budget import Budget, Claim
from libs.runtime.slots import SlotStore

BUDGET = Budget(total=3, per_namespace=2, lease=timedelta(seconds=30))


async def test_racing_replicas_never_exceed_the_budget_and_serve_everyone(bus: Bus) -> None:
    stores = [SlotStore(bus, BUDGET) for _ in range(4)]  # four rollout replicas
    now = datetime.now(UTC)
    tcps = [(f"ns-{i % 3}", f"tcp-{i}") for i in range(12)]
    done: list[str] = []
    most = 0

    async def rollout(i: int, ns: str, tcp: str) -> None:
        nonlocal most
        store = stores[i % len(stores)]
        request = Claim(ns, tcp, f"r{i}", now + timedelta(minutes=i))
        for _ in range(6000):  # a rollout replica re-checks the budget until served
            if (await store.claim(request, datetime.now(UTC))).granted:
                break
            await asyncio.sleep(0.01)
        else:
            raise AssertionError(f"{tcp} was never given a slot")
        slots = await store.read()
        per_ns = [e.namespace for e in slots.holders.values()]
        assert len(slots.holders) <= BUDGET.total
        assert max(per_ns.count(n) for n in per_ns) <= BUDGET.per_namespace
        most = max(most, len(slots.holders))
        await asyncio.sleep(0.05)  # "rolling out"
        done.append(tcp)
        await store.release(ns, tcp, datetime.now(UTC))

    await asyncio.wait_for(
        asyncio.gather(*(rollout(i, ns, tcp) for i, (ns, tcp) in enumerate(tcps))), 60
    )
    assert sorted(done) == sorted(t for _, t in tcps)
    assert most == BUDGET.total  # the budget was used, not just respected
    final = await stores[0].read()
    assert final.holders == {}
    assert final.waiting == {}


async def test_a_slot_of_a_dead_replica_comes_back_after_the_lease(bus: Bus) -> None:
    short = Budget(total=1, lease=timedelta(seconds=1))
    dead, alive = SlotStore(bus, short), SlotStore(bus, short)
    now = datetime.now(UTC)
    assert (await dead.claim(Claim("n", "held", "r1", now), now)).granted
    waiting = await alive.claim(Claim("n", "next", "r2", now), now)
    assert (waiting.granted, waiting.position) == (False, 1)
    later = now + timedelta(seconds=1.5)  # the holder never renewed
    assert (await alive.claim(Claim("n", "next", "r2", now), later)).granted
