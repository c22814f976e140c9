"""Requests in flight per client: `running` at once, `waiting` more queued in order, the rest refused."""

from __future__ import annotations

import asyncio

import pytest

from app.admission.fairness import FairShare, TooManyWaiting


async def hold(share: FairShare, key: str, log: list[str], name: str, release: asyncio.Event) -> None:
    async with share.turn(key):
        log.append(f"{name} in")
        await release.wait()
    log.append(f"{name} out")


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def test_a_client_runs_its_share_queues_the_next_in_order_and_is_refused_beyond() -> None:
    share = FairShare(running=2, waiting=1)
    log: list[str] = []
    releases = {name: asyncio.Event() for name in "abc"}
    tasks = [asyncio.create_task(hold(share, "ann", log, name, releases[name])) for name in "abc"]
    await settle()

    assert (log, share.holders("ann")) == (["a in", "b in"], 3)
    with pytest.raises(TooManyWaiting):
        async with share.turn("ann"):
            pass
    async with share.turn("bob"):  # another client is not held up
        assert share.holders("bob") == 1
    releases["a"].set()
    await settle()
    assert log == ["a in", "b in", "a out", "c in"]
    releases["b"].set()
    releases["c"].set()
    await asyncio.gather(*tasks)
    assert (share.holders("ann"), share._clients) == (0, {})  # an idle client is forgotten


async def test_a_turn_ended_by_an_error_or_a_cancelled_wait_frees_its_place() -> None:
    share = FairShare(running=1, waiting=1)
    with pytest.raises(ValueError, match="inside"):
        async with share.turn("ann"):
            raise ValueError("raised inside")
    assert share.holders("ann") == 0

    release = asyncio.Event()
    running = asyncio.create_task(hold(share, "ann", [], "a", release))
    await settle()
    waiting = asyncio.create_task(hold(share, "ann", [], "b", asyncio.Event()))
    await settle()
    assert share.holders("ann") == 2
    waiting.cancel()
    await settle()
    assert share.holders("ann") == 1
    release.set()
    await running
    assert share._clients == {}
