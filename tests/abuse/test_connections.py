"""Websockets are capped per IP, per connection and per user; a socket that never says hello is closed;
a message larger than the limit closes its connection; nothing of it starves another client."""

from __future__ import annotations

import asyncio
import json
from collections import Counter

import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import InvalidStatus, WebSocketException
from websockets.typing import Subprotocol

from app.settings import Settings
from tests.abuse.conftest import Shop, record
from tests.abuse.harness import Bystander, new_address
from tests.e2e.clients import LEGACY_WS, TRANSPORT_WS, bearer
from tests.faults.cluster import customer_token

pytestmark = pytest.mark.usefixtures("unharmed")
DEFAULTS = Settings()
SOCKETS = 2_000  # the attack used 20,000; the per-IP cap refuses all but the first 100 either way
OPENING = 10  # handshakes the attacker keeps under way at once


async def _open(
    shop: Shop, address: str, protocol: str, opening: asyncio.Semaphore
) -> ClientConnection | str:
    async with opening:
        return await _handshake(shop, address, protocol)


async def _handshake(shop: Shop, address: str, protocol: str) -> ClientConnection | str:
    try:
        return await connect(
            shop.ws_url, subprotocols=[Subprotocol(protocol)], local_addr=(address, 0), open_timeout=30
        )
    except InvalidStatus as refused:
        return f"refused {refused.response.status_code}"
    except (OSError, WebSocketException, TimeoutError) as error:
        return type(error).__name__


async def test_sockets_that_never_initialise_are_capped_and_closed(shop: Shop) -> None:
    address = new_address()
    async with Bystander(shop.url, shop.book_id) as bystander:
        opening = asyncio.Semaphore(OPENING)
        opened = await asyncio.gather(*(_open(shop, address, LEGACY_WS, opening) for _ in range(SOCKETS)))
        sockets = [ws for ws in opened if isinstance(ws, ClientConnection)]
        refused = Counter(outcome for outcome in opened if isinstance(outcome, str))
        # A bystander's own websocket still gets in and is answered.
        async with await connect(
            shop.ws_url, subprotocols=[Subprotocol(TRANSPORT_WS)], local_addr=(new_address(), 0)
        ) as ws:
            await ws.send(json.dumps({"type": "connection_init", "payload": {}}))
            assert json.loads(await asyncio.wait_for(ws.recv(), 10))["type"] == "connection_ack"
        # Nothing said hello: the server closes every one after the init timeout.
        closed = await asyncio.gather(*(asyncio.wait_for(ws.wait_closed(), 15) for ws in sockets))
    assert len(sockets) == DEFAULTS.max_ws_connections_per_ip, refused
    assert len(closed) == len(sockets)
    lines = [line for line in shop.log().splitlines() if "refused" in line and address in line]
    record(
        f"{SOCKETS} legacy sockets without connection_init, one IP",
        accepted=len(sockets),
        refused=dict(refused),
        refusal_log_lines=len(lines),
        bystander=bystander.summary(),
    )
    assert 1 <= len(lines) <= 50
    bystander.assert_served()


async def test_subscriptions_are_capped_per_user_and_per_connection(shop: Shop) -> None:
    token = customer_token("mallory")
    address = new_address()
    outcomes: Counter[str] = Counter()
    connections: list[ClientConnection] = []
    async with Bystander(shop.url, shop.book_id) as bystander:
        for _ in range(10):
            ws = await connect(shop.ws_url, subprotocols=[Subprotocol(TRANSPORT_WS)], local_addr=(address, 0))
            connections.append(ws)
            await ws.send(json.dumps({"type": "connection_init", "payload": bearer(token)}))
            assert json.loads(await ws.recv())["type"] == "connection_ack"
            for n in range(DEFAULTS.max_operations_per_connection + 5):
                subscribe = {"query": "subscription { catalogChanged { kind } }"}
                await ws.send(json.dumps({"id": str(n), "type": "subscribe", "payload": subscribe}))
        for ws in connections:
            try:
                while True:
                    message = json.loads(await asyncio.wait_for(ws.recv(), 2))
                    if message["type"] == "error":
                        outcomes[message["payload"][0]["extensions"]["code"]] += 1
            except TimeoutError:
                pass
        for ws in connections:
            await ws.close()
    record(
        "10 connections x 105 subscriptions, one user", errors=dict(outcomes), bystander=bystander.summary()
    )
    sent = 10 * (DEFAULTS.max_operations_per_connection + 5)
    assert sum(outcomes.values()) == sent - DEFAULTS.max_subscriptions_per_user, outcomes
    bystander.assert_served()


async def test_an_oversized_websocket_message_closes_its_connection(shop: Shop) -> None:
    document = "{ " + " ".join(f"a{i}: __typename" for i in range(200_000)) + " }"  # ~3.9 MB
    async with Bystander(shop.url, shop.book_id) as bystander:
        ws = await connect(
            shop.ws_url,
            subprotocols=[Subprotocol(TRANSPORT_WS)],
            max_size=None,
            local_addr=(new_address(), 0),
        )
        await ws.send(json.dumps({"type": "connection_init", "payload": {}}))
        assert json.loads(await ws.recv())["type"] == "connection_ack"
        await ws.send(json.dumps({"id": "1", "type": "subscribe", "payload": {"query": document}}))
        await asyncio.wait_for(ws.wait_closed(), 10)
    assert ws.close_code == 1009
    record(
        f"{len(document) / 1e6:.1f} MB document over a websocket",
        close_code=ws.close_code,
        bystander=bystander.summary(),
    )
    bystander.assert_served()
