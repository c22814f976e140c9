"""Closed-loop load: C workers each send one request after another; latencies, errors and a table."""

from __future__ import annotations

import asyncio
import statistics
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import httpx
from _cpu import CpuProbe, CpuShare
from _server import percentile

NO_SERVER = CpuProbe(None)  # only this process and the machine
# Sent with every request: set once per run by sign_in(), since every measure changes the catalog.
_headers: dict[str, str] = {}

# One request: send request number n on the worker's client; return what went wrong, or None.
Operation = Callable[[httpx.AsyncClient, int], Awaitable[str | None]]


@dataclass
class Sample:
    """What one load phase observed."""

    latencies_ms: list[float] = field(default_factory=list)  # successful requests only
    errors: Counter[str] = field(default_factory=Counter)
    elapsed: float = 0.0
    cpu: CpuShare | None = None

    @property
    def sent(self) -> int:
        return len(self.latencies_ms) + sum(self.errors.values())


@dataclass(frozen=True)
class Row:
    """One line of the results table; None prints as '-'."""

    measure: str
    concurrency: int
    n: int
    errors: int
    ops_per_s: float | None
    median_ms: float | None
    p99_ms: float | None
    cpu: CpuShare | None = None

    @classmethod
    def of(cls, measure: str, concurrency: int, sample: Sample) -> Row:
        """Summarise a sample: n is every request sent; ops/s and latencies count the successful ones."""
        ok = sample.latencies_ms
        return cls(
            measure=measure,
            concurrency=concurrency,
            n=sample.sent,
            errors=sum(sample.errors.values()),
            ops_per_s=len(ok) / sample.elapsed if sample.elapsed else None,
            median_ms=statistics.median(ok) if ok else None,
            p99_ms=percentile(ok, 0.99) if ok else None,
            cpu=sample.cpu,
        )


def sign_in(token: str) -> None:
    """Send `token` as the bearer token of every client made from now on."""
    _headers["Authorization"] = f"Bearer {token}"


def client(url: str) -> httpx.AsyncClient:
    """Return an HTTP client for one worker: it keeps its connection alive between requests."""
    return httpx.AsyncClient(base_url=url, timeout=30, headers=_headers)


async def run_load(
    url: str,
    operation: Operation,
    *,
    concurrency: int,
    duration: float = float("inf"),
    count: int | None = None,
    probe: CpuProbe = NO_SERVER,
) -> Sample:
    """Run `concurrency` workers sending `operation` back to back for `duration` s or `count` requests.

    Each worker has its own client: one httpx.AsyncClient shared by 32 workers spent most of a core on
    its connection pool and tripled the p99 it measured (bench/README.md).
    """
    sample = Sample()
    numbers = iter(range(count if count is not None else 1 << 62))
    clients = [client(url) for _ in range(concurrency)]
    cpu_before = probe.read()
    start = cpu_before.at
    deadline = start + duration

    async def worker(http: httpx.AsyncClient) -> None:
        while time.perf_counter() < deadline and (number := next(numbers, None)) is not None:
            t0 = time.perf_counter()
            try:
                problem = await operation(http, number)
            except httpx.HTTPError as exc:  # timeouts, refused or reset connections
                problem = type(exc).__name__
            if problem is None:
                sample.latencies_ms.append((time.perf_counter() - t0) * 1000)
            else:
                sample.errors[problem] += 1

    try:
        await asyncio.gather(*(worker(http) for http in clients))
        # Until the last in-flight request returned: requests started before the deadline all count.
        cpu_after = probe.read()
    finally:
        await asyncio.gather(*(http.aclose() for http in clients))
    sample.elapsed = cpu_after.at - start
    sample.cpu = CpuShare.between(cpu_before, cpu_after)
    return sample


def print_table(rows: list[Row]) -> None:
    """Print the results table; the CPU columns are percent of one core during the measure."""
    header = (
        f"{'measure':<46}{'conc':>5}{'n':>7}{'errors':>7}{'ops/s':>9}{'median ms':>10}{'p99 ms':>9}"
        f"{'cpu% client':>12}{'server':>7}{'db':>6}{'machine':>8}"
    )
    print(header)
    print("-" * len(header))
    for row in rows:
        cpu = row.cpu
        print(
            f"{row.measure:<46}{row.concurrency:>5}{row.n:>7}{row.errors:>7}{_cell(row.ops_per_s, 1):>9}"
            f"{_cell(row.median_ms, 2):>10}{_cell(row.p99_ms, 2):>9}"
            f"{_cell(cpu.client if cpu else None, 0):>12}{_cell(cpu.server if cpu else None, 0):>7}"
            f"{_cell(cpu.database if cpu else None, 0):>6}{_cell(cpu.machine if cpu else None, 0):>8}"
        )


def _cell(value: float | None, digits: int) -> str:
    return "-" if value is None else f"{value:.{digits}f}"
