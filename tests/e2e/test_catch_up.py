"""Catch-up announcements and abandoned subscriptions, through a real server and real websockets."""

from __future__ import annotations

import asyncio
import json
import random
from contextlib import AsyncExitStack
from typing import Any

import httpx
import pytest
import redis.asyncio as aioredis
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus
from websockets.typing import Subprotocol

from app.db import create_pool
from app.eventstore.position import Position
from app.ids import new_id
from app.live.backend import CATCH_UP
from app.live.notices import book_topic
from app.live.notifier import EVERY_TOPIC
from app.settings import Settings
from tests.e2e.clients import LEGACY_WS, TRANSPORT_WS, WAIT, Subscription
from tests.e2e.operations import create_book, update_book
from tests.e2e.test_subscriptions import BOOK_CHANGED

pytestmark = pytest.mark.e2e

SUBSCRIBERS = 30
DROPPED = 300  # websockets opened, subscribed and dropped
AT_ONCE = 20


async def lose_a_change(settings: Settings, book_id: str, after: Position) -> Position:
    """Write a read.changes row for the book that no notice announces: what a worker killed between
    its commit and its publish leaves behind. Its position comes right after `after`, before any later
    event (a later transaction has a higher id)."""
    lost = Position(after.transaction_id, after.global_position + 1)
    pool = await create_pool(settings.database_url or "")
    try:
        await pool.execute(
            "INSERT INTO read.changes (topic, transaction_id, global_position, kind, entity, entity_id)"
            " VALUES ($1, $2, $3, 'UPDATED', 'Book', $4)",
            book_topic(book_id),
            lost.transaction_id,
            lost.global_position,
            book_id,
        )
    finally:
        await pool.close()
    return lost


async def announce_catch_up(settings: Settings) -> None:
    """Send what a consumer that starts leading sends: every subscriber re-reads read.changes."""
    redis = aioredis.Redis.from_url(settings.redis_url or "")
    try:
        assert await redis.publish(settings.changes_channel(EVERY_TOPIC), CATCH_UP) >= 1
    finally:
        await redis.aclose()


async def test_a_catch_up_brings_a_lost_change_to_every_websocket_subscriber_once(
    http: httpx.AsyncClient, refs: dict[str, Any], ws_url: str, e2e_settings: Settings
) -> None:
    created = await create_book(http, refs)
    book_id = created["bookId"]
    variables = {"id": book_id, "after": created["position"]}
    async with AsyncExitStack() as stack:
        subscriptions = [
            await stack.enter_async_context(
                Subscription((TRANSPORT_WS, LEGACY_WS)[i % 2], ws_url, BOOK_CHANGED, variables)
            )
            for i in range(SUBSCRIBERS)
        ]
        updated = await update_book(http, book_id, price="31.00")
        for subscription in subscriptions:  # all live
            assert (await subscription.next_data())["bookChanged"]["position"] == updated["position"]

        lost = await lose_a_change(e2e_settings, book_id, Position.parse(updated["position"]))
        await announce_catch_up(e2e_settings)
        for subscription in subscriptions:
            change = (await subscription.next_data())["bookChanged"]
            assert (change["position"], change["kind"]) == (str(lost), "UPDATED")
            assert change["book"]["price"] == "31.00"

        await announce_catch_up(e2e_settings)  # nothing new: nothing is sent again
        later = await update_book(http, book_id, price="32.00")
        for subscription in subscriptions:
            assert (await subscription.next_data())["bookChanged"]["position"] == later["position"]


async def subscribe_and_drop(ws_url: str, rng: random.Random) -> None:
    """Open a websocket, subscribe to a book's changes, and drop the connection after a random moment."""
    for _ in range(50):  # the server caps connections per address and may not have seen the last drops
        try:
            ws = await connect(ws_url, subprotocols=[Subprotocol(TRANSPORT_WS)], open_timeout=WAIT)
            break
        except InvalidStatus as refused:
            assert refused.response.status_code == 429, refused
            await asyncio.sleep(0.1)
    else:
        raise AssertionError("the server kept refusing connections")
    async with ws:
        await ws.send(json.dumps({"type": "connection_init", "payload": {}}))
        assert json.loads(await asyncio.wait_for(ws.recv(), WAIT))["type"] == "connection_ack"
        operation = {"query": BOOK_CHANGED, "variables": {"id": new_id()}}
        await ws.send(json.dumps({"id": "1", "type": "subscribe", "payload": operation}))
        if rng.random() < 0.7:
            await asyncio.sleep(rng.choice([0.0, rng.uniform(0, 0.02)]))
        if rng.random() < 0.5:
            ws.transport.abort()  # no closing handshake: as a client that vanished


async def test_websockets_dropped_at_any_moment_leave_no_channel_subscribed(
    ws_url: str, e2e_settings: Settings
) -> None:
    seed = random.randrange(2**32)
    rng = random.Random(seed)
    slots = asyncio.Semaphore(AT_ONCE)

    async def cycle() -> None:
        async with slots:
            await subscribe_and_drop(ws_url, rng)

    await asyncio.wait_for(asyncio.gather(*(cycle() for _ in range(DROPPED))), 30 * WAIT)

    redis = aioredis.Redis.from_url(e2e_settings.redis_url or "", decode_responses=True)
    try:
        pattern = e2e_settings.changes_channel(book_topic("*"))
        loop = asyncio.get_running_loop()
        deadline = loop.time() + WAIT
        while channels := await redis.pubsub_channels(pattern):
            assert loop.time() < deadline, f"still subscribed: {channels[:5]} (seed {seed})"
            await asyncio.sleep(0.1)
    finally:
        await redis.aclose()
