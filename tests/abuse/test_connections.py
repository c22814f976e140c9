"""Websockets are capped per IP, per connection and per user; a socket that never says hello is closed;
a message larger than the limit closes its connection; nothing of it starves another client."""

from __future__ import annotations

import asyncio
import base64
import json
import os
from collections import Counter
from dataclasses import dataclass, field

import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import InvalidStatus
from websockets.typing import Subprotocol

from app.settings import Settings
from tests.abuse.conftest import Shop, record
from tests.abuse.harness import Bystander, new_address
from tests.e2e.clients import LEGACY_WS, TRANSPORT_WS, bearer
from tests.faults.cluster import customer_token

pytestmark = pytest.mark.usefixtures("unharmed")
DEFAULTS = Settings()
SOCKETS = 5_000  # with --soak, 20,000 as in the attack; the per-IP cap refuses all but 100 at a time
OPENING = 50  # handshakes the attacker keeps under way at once


@dataclass
class Flood:
    """Bare websocket upgrades that never say anything, as a flood tool sends them (no client library's
    work on the test machine's CPU). Counts how many the server holds open at once."""

    url: str
    address: str
    protocol: str
    opening: asyncio.Semaphore = field(default_factory=lambda: asyncio.Semaphore(OPENING))
    outcomes: Counter[str] = field(default_factory=Counter)
    held: int = 0
    most_held: int = 0
    closes: list[asyncio.Task[None]] = field(default_factory=list)

    async def upgrade(self) -> None:
        host, port = self.url.removeprefix("http://").split(":")
        key = base64.b64encode(os.urandom(16)).decode()
        request = (
            f"GET /graphql HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
            f"Sec-WebSocket-Protocol: {self.protocol}\r\n\r\n"
        )
        async with self.opening:
            try:
                reader, writer = await asyncio.open_connection(host, int(port), local_addr=(self.address, 0))
                writer.write(request.encode())
                head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 30)
                status = head.split(b"\r\n", 1)[0].split()
            except (OSError, TimeoutError, asyncio.IncompleteReadError) as error:
                self.outcomes[type(error).__name__] += 1
                return
        if status[1:2] != [b"101"]:
            writer.close()
            self.outcomes[f"refused {status[1].decode() if len(status) > 1 else '?'}"] += 1
            return
        self.outcomes["accepted"] += 1
        self.held += 1
        self.most_held = max(self.most_held, self.held)
        self.closes.append(asyncio.create_task(self._until_closed(reader, writer)))

    async def _until_closed(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(1)  # the first byte of the server's close frame
        self.held -= 1
        writer.close()


async def test_sockets_that_never_initialise_are_capped_and_closed(
    shop: Shop, request: pytest.FixtureRequest
) -> None:
    sockets = 20_000 if request.config.getoption("--soak") else SOCKETS
    flood = Flood(shop.url, new_address(), LEGACY_WS)
    async with Bystander(shop.url, shop.book_id) as bystander:
        await asyncio.gather(*(flood.upgrade() for _ in range(sockets)))
        # A bystander's own websocket still gets in and is answered.
        async with await connect(
            shop.ws_url, subprotocols=[Subprotocol(TRANSPORT_WS)], local_addr=(new_address(), 0)
        ) as ws:
            await ws.send(json.dumps({"type": "connection_init", "payload": {}}))
            assert json.loads(await asyncio.wait_for(ws.recv(), 10))["type"] == "connection_ack"
        # Nothing said hello: the server closes every one after the init timeout.
        await asyncio.wait_for(asyncio.gather(*flood.closes), 15)
    lines = [line for line in shop.log().splitlines() if "refused" in line and flood.address in line]
    record(
        f"{sockets:,} legacy sockets without connection_init, one IP",
        outcomes=dict(flood.outcomes),
        most_held_at_once=flood.most_held,
        refusal_log_lines=len(lines),
        bystander=bystander.summary(),
    )
    # The server frees a slot as it sends its close frame, which reaches us a moment later.
    cap = DEFAULTS.max_ws_connections_per_ip
    assert cap <= flood.most_held <= cap + OPENING
    assert set(flood.outcomes) == {"accepted", "refused 429"}
    assert flood.held == 0
    assert 1 <= len(lines) <= 50
    bystander.assert_served()


async def _subscribe(
    url: str, address: str, token: str, count: int, outcomes: Counter[str]
) -> ClientConnection | None:
    """Open one connection and ask for `count` subscriptions on it at once; None if it is refused."""
    try:
        ws = await connect(url, subprotocols=[Subprotocol(TRANSPORT_WS)], local_addr=(address, 0))
    except InvalidStatus as refused:
        outcomes[f"connection refused {refused.response.status_code}"] += 1
        return None
    await ws.send(json.dumps({"type": "connection_init", "payload": bearer(token)}))
    assert json.loads(await ws.recv())["type"] == "connection_ack"
    subscribe = {"query": "subscription { catalogChanged { kind } }"}
    for n in range(count):
        await ws.send(json.dumps({"id": str(n), "type": "subscribe", "payload": subscribe}))
    return ws


async def _count_errors(ws: ClientConnection, outcomes: Counter[str]) -> None:
    """Count the error codes a connection is answered with until it has been quiet for 2 s; close it."""
    async with ws:
        try:
            while True:
                message = json.loads(await asyncio.wait_for(ws.recv(), 2))
                if message["type"] == "error":
                    outcomes[message["payload"][0]["extensions"]["code"]] += 1
        except TimeoutError:
            pass


async def test_subscriptions_are_capped_per_user_and_per_address(shop: Shop) -> None:
    connections, each = 200, 100  # the attack: 200 connections x 100 subscriptions, one user
    outcomes: Counter[str] = Counter()
    address, token = new_address(), customer_token("mallory")
    async with Bystander(shop.url, shop.book_id) as bystander:
        opened = [await _subscribe(shop.ws_url, address, token, each, outcomes) for _ in range(connections)]
        await asyncio.gather(*(_count_errors(ws, outcomes) for ws in opened if ws is not None))
    record(
        f"{connections} connections x {each} subscriptions, one user",
        outcomes=dict(outcomes),
        bystander=bystander.summary(),
    )
    accepted = DEFAULTS.max_ws_connections_per_ip
    assert outcomes["connection refused 429"] == connections - accepted
    refused = outcomes["TOO_MANY_OPERATIONS"] + outcomes["TOO_MANY_SUBSCRIPTIONS"]
    assert refused == accepted * each - DEFAULTS.max_subscriptions_per_user
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
