"""The cost gate: cheap operations pass, expensive ones take turns in arrival order, waits are bounded."""

from __future__ import annotations

import asyncio

import pytest

from app.admission.gate import CostGate, GateBusy
from app.settings import Settings


def gate(capacity: int = 1_000, threshold: int = 100, timeout: float = 5.0) -> CostGate:
    return CostGate(capacity, threshold, timeout)


async def test_cheap_operations_pass_while_the_gate_is_full() -> None:
    g = gate()
    async with g.turn(1_000):
        async with asyncio.timeout(1):
            async with g.turn(99):
                assert g.running == 1_000


async def test_expensive_operations_run_while_they_fit_and_then_wait() -> None:
    g = gate()
    order: list[str] = []
    release = asyncio.Event()

    async def run(name: str, cost: int) -> None:
        async with g.turn(cost):
            order.append(f"{name} in")
            await release.wait()
        order.append(f"{name} out")

    tasks = [asyncio.create_task(run(n, c)) for n, c in (("a", 600), ("b", 400), ("c", 300))]
    await asyncio.sleep(0.01)
    assert order == ["a in", "b in"] and g.running == 1_000 and g.waiting == 1
    release.set()
    await asyncio.gather(*tasks)
    assert order.index("c in") > order.index("a out")
    assert g.running == 0 and g.waiting == 0


async def test_a_cost_above_the_capacity_holds_the_whole_gate() -> None:
    g = gate()
    async with g.turn(50_000):
        assert g.running == 1_000


async def test_waiters_get_in_in_arrival_order_even_when_a_later_one_would_fit() -> None:
    g = gate()
    order: list[str] = []
    first = asyncio.Event()

    async def run(name: str, cost: int, hold: asyncio.Event | None = None) -> None:
        async with g.turn(cost):
            order.append(name)
            if hold is not None:
                await hold.wait()

    holder = asyncio.create_task(run("holder", 700, first))
    await asyncio.sleep(0)
    big = asyncio.create_task(run("big", 900))
    await asyncio.sleep(0)
    small = asyncio.create_task(run("small", 200))  # would fit beside the holder, but big came first
    await asyncio.sleep(0.01)
    assert order == ["holder"]
    first.set()
    await asyncio.gather(holder, big, small)
    assert order == ["holder", "big", "small"]


async def test_a_wait_past_the_timeout_is_refused_and_leaves_nothing_held() -> None:
    g = gate(timeout=0.05)
    async with g.turn(1_000):
        with pytest.raises(GateBusy):
            async with g.turn(500):
                pass
        assert g.waiting == 0
    assert g.running == 0


async def test_a_cancelled_waiter_leaves_the_queue_and_the_next_one_runs() -> None:
    g = gate()
    hold = asyncio.Event()

    async def holder() -> None:
        async with g.turn(1_000):
            await hold.wait()

    async def waiter() -> None:
        async with g.turn(1_000):
            pass

    held = asyncio.create_task(holder())
    await asyncio.sleep(0)
    cancelled, after = asyncio.create_task(waiter()), asyncio.create_task(waiter())
    await asyncio.sleep(0.01)
    cancelled.cancel()
    hold.set()
    await asyncio.gather(held, after)
    assert cancelled.cancelled() and g.running == 0 and g.waiting == 0


def test_a_gate_needs_positive_figures() -> None:
    for figures in ((0, 100, 1.0), (1_000, 0, 1.0), (1_000, 100, 0.0), (-1, 100, 1.0)):
        with pytest.raises(ValueError):
            CostGate(*figures)


def test_the_settings_that_are_not_positive_are_named() -> None:
    with pytest.raises(ValueError, match="BOOKWORM_HEAVY_QUERY_WAIT must be positive"):
        CostGate.from_settings(Settings(heavy_query_wait=-1.0))
