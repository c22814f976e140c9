"""What the abuse tests send and watch: attackers and a well-behaved bystander, each from its own
loopback address, against one real `bookworm serve` with its workers.

The server listens on 127.0.0.1; a client that binds another loopback address (127.0.0.2, ...) is
another IP to the server, so per-IP limits see attacker and bystander apart, as they would on a network.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import statistics
import sys
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import httpx

from tests.conftest import ROOT

REQUEST_TIMEOUT = 30.0
MIN_SECONDS = 2.0
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
    """A well-behaved anonymous client reading one book at a steady rate, well within its budget.

    It runs in a process of its own (`python -m tests.abuse.bystander`), so what it measures is the
    server, not the attacker's client work sharing its event loop.
    """

    base_url: str
    book_id: str
    # 50 reads a second (half its budget's refill): an attack of a few seconds then yields a few hundred
    # answers, enough for a p99 that is not simply the slowest one.
    rate: float = 50.0
    latencies: list[float] = field(default_factory=list)
    outcomes: Counter[str] = field(default_factory=Counter)
    _process: asyncio.subprocess.Process | None = None
    _ready_at: float = 0.0

    async def __aenter__(self) -> Bystander:
        self._process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "tests.abuse.bystander",
            self.base_url,
            self.book_id,
            str(self.rate),
            new_address(),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            cwd=ROOT,
        )
        assert self._process.stdout is not None
        ready = await asyncio.wait_for(self._process.stdout.readline(), 30)
        assert ready.strip() == b"ready", ready  # a warm connection and a few answers before the attack
        self._ready_at = asyncio.get_running_loop().time()
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._process is not None and self._process.stdin is not None
        # A short attack still gets a measure: the bystander reads for MIN_SECONDS at least.
        loop = asyncio.get_running_loop()
        await asyncio.sleep(max(0.0, self._ready_at + MIN_SECONDS - loop.time()))
        self._process.stdin.close()
        output, _ = await asyncio.wait_for(self._process.communicate(), 30)
        measured = json.loads(output)
        self.latencies = measured["latencies"]
        self.outcomes = Counter(measured["outcomes"])

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
