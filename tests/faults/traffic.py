"""What the fault scenarios send and watch: a steady mutation load and subscribers that resume.

`Load` sends catalog mutations at a fixed rate from concurrent HTTP clients and counts every answer by
kind. `Watcher` follows `catalogChanged`, reconnecting with `after: <last position>` whenever its
connection or its server goes away; `check_exactly_once` compares what it received with read.changes.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import random
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import httpx
from websockets.asyncio.client import connect
from websockets.exceptions import WebSocketException
from websockets.typing import Subprotocol

from app.eventstore import Position
from tests.e2e.clients import TRANSPORT_WS, bearer

REQUEST_TIMEOUT = 30.0
SETTLE = 60.0  # seconds a subscriber may take to receive the last changes

REFS = """mutation($n: String!) {
  a: createAuthor(input: {name: $n}) { ... on CreateAuthorSuccess { authorId position } }
  c: createCategory(input: {name: $n}) { ... on CreateCategorySuccess { categoryId } }
  p: createPublisher(input: {name: $n}) { ... on CreatePublisherSuccess { publisherId } } }"""
CREATE_BOOK = """mutation($input: CreateBookInput!) { createBook(input: $input) {
  __typename ... on CreateBookSuccess { bookId position } ... on UserError { code } } }"""
UPDATE_BOOK = """mutation($input: UpdateBookInput!) { updateBook(input: $input) {
  __typename ... on UpdateBookSuccess { bookId position } ... on UserError { code } } }"""
CATALOG_CHANGED = """subscription($after: String) { catalogChanged(after: $after) {
  kind position entity entityId } }"""


@dataclass(frozen=True)
class Refs:
    """An author, a category and a publisher that books refer to, and the position they were made at."""

    author_id: str
    category_id: str
    publisher_id: str
    position: str


async def make_refs(url: str, token: str) -> Refs:
    async with httpx.AsyncClient(base_url=url, headers=bearer(token), timeout=REQUEST_TIMEOUT) as http:
        response = await http.post("/graphql", json={"query": REFS, "variables": {"n": "Fault Scenario"}})
        data = response.json()["data"]
        return Refs(
            data["a"]["authorId"], data["c"]["categoryId"], data["p"]["publisherId"], data["a"]["position"]
        )


@dataclass
class Load:
    """createBook (and updateBook of an earlier book, one in four) at `rate` per second over `urls`."""

    urls: list[str]
    token: str
    refs: Refs
    rate: float
    clients: int = 16
    outcomes: Counter[str] = field(default_factory=Counter)
    book_ids: list[str] = field(default_factory=list)
    elapsed: float = 0.0  # seconds from the first request to the last answer

    @property
    def succeeded(self) -> int:
        return self.outcomes["ok"]

    def summary(self) -> str:
        """What was sent and how fast it really went (the schedule only says what was asked for)."""
        sent = sum(self.outcomes.values())
        achieved = sent / self.elapsed if self.elapsed else 0.0
        return (
            f"{self.succeeded} of {sent} succeeded, asked {self.rate:g}/s, "
            f"sent in {self.elapsed:.1f} s ({achieved:.0f}/s)"
        )

    def failures(self) -> dict[str, int]:
        return {kind: n for kind, n in self.outcomes.items() if kind != "ok"}

    async def run(self, seconds: float) -> None:
        """Send mutations on a fixed schedule for `seconds` (late requests go out at once, never skipped)."""
        loop = asyncio.get_running_loop()
        start, total = loop.time(), int(self.rate * seconds)
        slots = iter(range(total))

        async def client(n: int) -> None:
            url = self.urls[n % len(self.urls)]
            async with httpx.AsyncClient(
                base_url=url, headers=bearer(self.token), timeout=REQUEST_TIMEOUT
            ) as http:
                for slot in slots:
                    await asyncio.sleep(max(0.0, start + slot / self.rate - loop.time()))
                    self.outcomes[await self._send(http, slot)] += 1

        await asyncio.gather(*(client(n) for n in range(self.clients)))
        self.elapsed = loop.time() - start

    async def _send(self, http: httpx.AsyncClient, slot: int) -> str:
        if slot % 4 == 3 and self.book_ids:
            field_, body = "updateBook", self._update(random.choice(self.book_ids), slot)
        else:
            field_, body = "createBook", self._create(slot)
        try:
            response = await http.post("/graphql", json=body)
        except httpx.TransportError as exc:
            return f"transport: {type(exc).__name__}"
        return self._outcome(response, field_)

    def _outcome(self, response: httpx.Response, field_: str) -> str:
        try:
            payload = response.json()
        except json.JSONDecodeError:
            return f"http {response.status_code}: not JSON"
        if payload.get("errors"):
            codes = {e.get("extensions", {}).get("code", "no code") for e in payload["errors"]}
            return f"http {response.status_code}: {','.join(sorted(codes))}"
        result = payload["data"][field_]
        if result["__typename"].endswith("Success"):
            if field_ == "createBook":
                self.book_ids.append(result["bookId"])
            return "ok"
        return f"{result['__typename']}: {result.get('code')}"

    def _create(self, slot: int) -> dict[str, Any]:
        refs = self.refs
        book = {"name": f"Fault book {slot}", "price": f"{5 + slot % 50}.50", "categoryId": refs.category_id,
                "publisherId": refs.publisher_id, "authorIds": [refs.author_id]}  # fmt: skip
        return {"query": CREATE_BOOK, "variables": {"input": book}}

    def _update(self, book_id: str, slot: int) -> dict[str, Any]:
        return {"query": UPDATE_BOOK, "variables": {"input": {"id": book_id, "price": f"{7 + slot % 40}.25"}}}


Change = tuple[str, str, str, str]  # position, kind, entity, entity id


@dataclass
class Watcher:
    """A `catalogChanged` subscriber that resumes after its last position whenever it is cut off."""

    urls: list[str]
    after: str | None
    received: list[Change] = field(default_factory=list)
    reconnects: int = 0
    _urls: itertools.cycle[str] = field(init=False)

    def __post_init__(self) -> None:
        self._urls = itertools.cycle(self.urls)

    async def run(self) -> None:
        """Follow until cancelled; on any failure wait a moment and resume from the last position."""
        while True:
            try:
                await self._follow(next(self._urls))
            except (OSError, WebSocketException, TimeoutError, ResumeRefused):
                self.reconnects += 1
                await asyncio.sleep(0.2)

    async def _follow(self, url: str) -> None:
        async with connect(url, subprotocols=[Subprotocol(TRANSPORT_WS)], open_timeout=10) as ws:
            await ws.send(json.dumps({"type": "connection_init", "payload": {}}))
            ack = json.loads(await asyncio.wait_for(ws.recv(), 10))
            assert ack["type"] == "connection_ack", ack
            operation = {"query": CATALOG_CHANGED, "variables": {"after": self.last_position}}
            await ws.send(json.dumps({"id": "1", "type": "subscribe", "payload": operation}))
            async for raw in ws:
                message = json.loads(raw)
                if message["type"] == "ping":
                    await ws.send(json.dumps({"type": "pong"}))
                elif message["type"] == "next":
                    self._take(message["payload"])
                elif message["type"] in ("error", "complete"):
                    raise ResumeRefused(str(message))

    def _take(self, payload: dict[str, Any]) -> None:
        if payload.get("errors"):
            raise ResumeRefused(str(payload["errors"]))
        change = payload["data"]["catalogChanged"]
        self.received.append((change["position"], change["kind"], change["entity"], change["entityId"]))

    @property
    def last_position(self) -> str | None:
        return self.received[-1][0] if self.received else self.after


async def wait_received(watcher: Watcher, count: int, limit: float = SETTLE) -> None:
    """Wait until the watcher holds `count` changes or `limit` seconds pass (the check then fails)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + limit
    while len(watcher.received) < count and loop.time() < deadline:  # noqa: ASYNC110 - polls a list
        await asyncio.sleep(0.1)


async def check_watched(database_url: str, watcher: Watcher, after: str) -> list[Change]:
    """Wait for the catalog changes logged after `after` to reach the watcher; check each came once."""
    expected = await logged_changes(database_url, after)
    await wait_received(watcher, len(expected))
    check_exactly_once(watcher.received, expected)
    return expected


class ResumeRefused(Exception):
    """The server ended or refused the subscription (say, while PostgreSQL restarts): resume later."""


_CHANGES = """
SELECT transaction_id, global_position, upper(kind), entity, entity_id FROM read.changes
WHERE topic = 'catalog' AND (transaction_id, global_position) > ($1::bigint, $2)
ORDER BY transaction_id, global_position
"""


async def logged_changes(database_url: str, after: str) -> list[Change]:
    """The catalog changes read.changes holds after `after`, in commit order."""
    start = Position.parse(after)
    conn = await asyncpg.connect(database_url)
    try:
        rows = await conn.fetch(_CHANGES, start.transaction_id, start.global_position)
    finally:
        await conn.close()
    return [(str(Position(r[0], r[1])), r[2], r[3], r[4]) for r in rows]


def check_exactly_once(received: list[Change], expected: list[Change]) -> None:
    """Every change once (no gap, no duplicate), positions never going back."""
    positions = [Position.parse(change[0]) for change in received]
    assert positions == sorted(positions), "changes arrived out of order"
    duplicates = [change for change, n in Counter(received).items() if n > 1]
    assert not duplicates, f"{len(duplicates)} changes arrived twice, e.g. {duplicates[:3]}"
    missing = Counter(expected) - Counter(received)
    extra = Counter(received) - Counter(expected)
    assert not missing, f"{sum(missing.values())} changes never arrived, e.g. {list(missing)[:3]}"
    assert not extra, (
        f"{sum(extra.values())} changes arrived that read.changes does not hold: {list(extra)[:3]}"
    )
