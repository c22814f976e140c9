"""What the abuse tests send and watch: attackers and a well-behaved bystander, each from its own
loopback address, against one real `bookworm serve` with its workers.

The server listens on 127.0.0.1; a client that binds another loopback address (127.0.0.2, ...) is
another IP to the server, so per-IP limits see attacker and bystander apart, as they would on a network.
"""

from __future__ import annotations

import asyncio
import itertools
import statistics
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import httpx

REQUEST_TIMEOUT = 30.0
BOOK_BY_ID = "query($id: ID!) { book(id: $id) { id name price status version } }"
_addresses = itertools.count(10)


def new_address() -> str:
    """A loopback address no other client of this run has used: a fresh client IP to the server."""
    return f"127.0.0.{next(_addresses)}"


def client(base_url: str, address: str, **headers: str) -> httpx.AsyncClient:
    """An HTTP client whose connections come from `address`."""
    transport = httpx.AsyncHTTPTransport(local_address=address)
    limits = httpx.Limits(max_connections=200, max_keepalive_connections=200)
    return httpx.AsyncClient(
        base_url=base_url, transport=transport, timeout=REQUEST_TIMEOUT, headers=headers, limits=limits
    )


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


@dataclass
class Bystander:
    """A well-behaved anonymous client reading one book at a steady rate, well within its budget."""

    base_url: str
    book_id: str
    rate: float = 20.0
    latencies: list[float] = field(default_factory=list)
    outcomes: Counter[str] = field(default_factory=Counter)
    _task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Bystander:
        self._task = asyncio.create_task(self._run())
        await asyncio.sleep(1.0)  # a warm connection and a few answers before the attack starts
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        body = {"query": BOOK_BY_ID, "variables": {"id": self.book_id}}
        async with client(self.base_url, new_address()) as http:
            tick = loop.time()
            while True:
                start = loop.time()
                try:
                    response = await http.post("/graphql", json=body)
                    ok = response.status_code == 200 and response.json()["data"]["book"]["id"] == self.book_id
                    self.outcomes["ok" if ok else f"status {response.status_code}"] += 1
                except httpx.HTTPError as error:
                    self.outcomes[type(error).__name__] += 1
                self.latencies.append(loop.time() - start)
                tick += 1 / self.rate
                await asyncio.sleep(max(0.0, tick - loop.time()))

    def p99_ms(self) -> float:
        return percentile(self.latencies, 0.99) * 1000

    def summary(self) -> str:
        median = statistics.median(self.latencies) * 1000
        answers = f"{len(self.latencies)} answers, {dict(self.outcomes)}"
        return f"{answers}, p50 {median:.1f} ms, p99 {self.p99_ms():.1f} ms"

    def assert_served(self) -> None:
        """Every answer arrived, was right, and p99 stayed within 100 ms."""
        assert self.latencies, "the bystander sent nothing"
        assert self.outcomes == Counter(ok=len(self.latencies)), self.summary()
        assert self.p99_ms() <= 100.0, self.summary()


def codes(body: dict[str, Any]) -> set[str]:
    """The `extensions.code` of every error in a GraphQL response body."""
    return {error.get("extensions", {}).get("code", "") for error in body.get("errors") or ()}
