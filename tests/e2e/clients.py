"""Tiny GraphQL clients for the e2e tests: HTTP (httpx) and both websocket protocols (websockets)."""

from __future__ import annotations

import asyncio
import json
from itertools import count
from typing import Any, Self

import httpx
from websockets.asyncio.client import ClientConnection, connect
from websockets.typing import Subprotocol

WAIT = 10.0  # seconds: every wait in these tests is bounded by this
TRANSPORT_WS = "graphql-transport-ws"
LEGACY_WS = "graphql-ws"
_ids = count(1)


async def gql(
    http: httpx.AsyncClient,
    query: str,
    variables: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
) -> dict[str, Any]:
    """POST one operation; return `data`, failing the test on any top-level error."""
    response = await http.post(
        "/graphql", json={"query": query, "variables": variables or {}}, headers=headers
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    assert "errors" not in body, body["errors"]
    data: dict[str, Any] = body["data"]
    return data


def bearer(token: str) -> dict[str, str]:
    """The HTTP header (or connection_init payload) that sends `token`."""
    return {"Authorization": f"Bearer {token}"}


class Subscription:
    """One websocket connection with one subscription, for either protocol; `token` signs it in."""

    def __init__(
        self,
        protocol: str,
        url: str,
        query: str,
        variables: dict[str, Any] | None = None,
        token: str | None = None,
    ) -> None:
        self.protocol = protocol
        self.url = url
        self.query = query
        self.variables = variables or {}
        self.token = token
        self.ws: ClientConnection | None = None
        self.op_id = str(next(_ids))

    async def __aenter__(self) -> Self:
        self.ws = await connect(self.url, subprotocols=[Subprotocol(self.protocol)], open_timeout=WAIT)
        payload = {} if self.token is None else bearer(self.token)
        await self._send({"type": "connection_init", "payload": payload})
        ack = await self._receive()
        assert ack["type"] == "connection_ack", ack
        start = "subscribe" if self.protocol == TRANSPORT_WS else "start"
        operation = {"query": self.query, "variables": self.variables}
        await self._send({"id": self.op_id, "type": start, "payload": operation})
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.ws is not None
        await self.ws.close()

    async def next_message(self) -> dict[str, Any]:
        """Return the next protocol message about the subscription, skipping keep-alives."""
        while True:
            message = await self._receive()
            if message["type"] in ("ka", "ping", "pong"):
                if message["type"] == "ping":
                    await self._send({"type": "pong"})
                continue
            return message

    async def next_data(self) -> dict[str, Any]:
        """Return the `data` of the next result; fail on an error or completion."""
        message = await self.next_message()
        assert message["type"] in ("next", "data"), message
        assert not message["payload"].get("errors"), message
        data: dict[str, Any] = message["payload"]["data"]
        return data

    async def _send(self, message: dict[str, Any]) -> None:
        assert self.ws is not None
        await self.ws.send(json.dumps(message))

    async def _receive(self) -> dict[str, Any]:
        assert self.ws is not None
        async with asyncio.timeout(WAIT):
            raw = await self.ws.recv()
        message: dict[str, Any] = json.loads(raw)
        return message
