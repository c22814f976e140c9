"""Tiny GraphQL clients for the e2e tests: HTTP (httpx) and both websocket protocols (websockets)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
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

    async def keep_alive(self) -> None:
        """Wait for the next keep-alive; fail on any message."""
        async with asyncio.timeout(WAIT):
            message = await self._read()
        assert message is None, message

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


SSE = "text/event-stream"
MULTIPART = "multipart/mixed;subscriptionSpec=1.0,application/json"
BOUNDARY = "\r\n--graphql"


class HTTPSubscription:
    """One operation streamed over plain HTTP: GraphQL over SSE (`accept=SSE`) or multipart (`MULTIPART`).

    Entering sends the request and waits for the response's headers: for a subscription, it is live then.
    `messages()` reads `(kind, payload)` pairs: ("next", result) for each result, ("complete", None) at
    the end, for multipart ("error", errors) for a transport error, and ("end", None) once the response
    has ended; keep-alives are counted apart.
    """

    def __init__(
        self,
        http: httpx.AsyncClient,
        query: str,
        variables: dict[str, Any] | None = None,
        *,
        accept: str = SSE,
        method: str = "POST",
        headers: dict[str, str] | None = None,
    ) -> None:
        payload = {"query": query, "variables": json.dumps(variables or {})}
        request_headers = {"accept": accept, **(headers or {})}
        if method == "GET":
            self.request = http.build_request("GET", "/graphql", params=payload, headers=request_headers)
        else:
            body = {"query": query, "variables": variables or {}}
            self.request = http.build_request("POST", "/graphql", json=body, headers=request_headers)
        self.http = http
        self.accept = accept
        self.keep_alives = 0
        self.response: httpx.Response | None = None
        self._text: AsyncIterator[str] | None = None
        self._buffer = ""

    async def __aenter__(self) -> Self:
        async with asyncio.timeout(WAIT):
            self.response = await self.http.send(self.request, stream=True)
        self._text = self.response.aiter_text()
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.response is not None
        await self.response.aclose()

    @property
    def streaming(self) -> bool:
        assert self.response is not None
        return self.response.status_code == 200 and not self.content_type.startswith("application/")

    @property
    def content_type(self) -> str:
        assert self.response is not None
        return self.response.headers.get("content-type", "")

    async def json(self) -> dict[str, Any]:
        """The body of an answer that is not a stream (a refusal, a request error)."""
        assert self.response is not None
        await self.response.aread()
        body: dict[str, Any] = self.response.json()
        return body

    async def next_message(self) -> tuple[str, Any]:
        """The next message, skipping keep-alives."""
        async with asyncio.timeout(WAIT):
            while True:
                message = await self._read()
                if message is not None:
                    return message

    async def keep_alive(self) -> None:
        """Wait for the next keep-alive; fail on any message."""
        async with asyncio.timeout(WAIT):
            message = await self._read()
        assert message is None, message

    async def next_data(self) -> dict[str, Any]:
        """The `data` of the next result; fail on an error or the end."""
        kind, payload = await self.next_message()
        assert kind == "next" and not payload.get("errors"), (kind, payload)
        data: dict[str, Any] = payload["data"]
        return data

    async def _read(self) -> tuple[str, Any] | None:
        chunk = await self._until("\r\n\r\n" if self.accept == SSE else BOUNDARY)
        if chunk is None:
            return "end", None  # the response ended
        return self._sse(chunk) if self.accept == SSE else self._part(chunk)

    def _sse(self, event: str) -> tuple[str, Any] | None:
        fields: dict[str, str] = {}
        for line in event.split("\r\n"):
            name, _, value = line.partition(":")
            if name:
                fields[name] = value.strip()
        if "event" not in fields:  # a comment only: a keep-alive
            self.keep_alives += 1
            return None
        data = json.loads(fields["data"]) if fields.get("data") else None
        return fields["event"], data

    def _part(self, part: str) -> tuple[str, Any] | None:
        part = part.removeprefix(BOUNDARY.strip())  # the first delimiter opens the stream
        if part.startswith("--"):  # the closing delimiter
            return "complete", None
        if "\r\n\r\n" not in part:  # the text before the first delimiter
            return None
        body = json.loads(part.split("\r\n\r\n", 1)[1])
        if body == {}:
            self.keep_alives += 1
            return None
        if body.get("payload") is None:
            return "error", body["errors"]
        return "next", body["payload"]

    async def _until(self, separator: str) -> str | None:
        assert self._text is not None
        while separator not in self._buffer:
            try:
                self._buffer += await anext(self._text)
            except StopAsyncIteration:
                chunk, self._buffer = self._buffer, ""
                return chunk or None
        chunk, self._buffer = self._buffer.split(separator, 1)
        return chunk
