"""Resident memory of the API process as catalogChanged subscribers receive change after change.

Usage:
    python bench/subscription_memory.py [--rounds 3] [--changes 2000] [--subscribers 2]

Starts `bookworm serve --no-workers` with one API process (BOOKWORM_API_PROCESSES=1) plus one
`bookworm worker` (BENCH_SEPARATE_WORKER=1) on a free port: against BOOKWORM_DATABASE_URL /
BOOKWORM_REDIS_URL when they are set, else on embedded servers in a throw-away data directory.
`--subscribers` websockets follow catalogChanged; each round creates
`--changes` books and waits until every subscriber has received all of them, then reads the API's
VmRSS. Memory that keeps growing round after round is held per change (a leak); allocator high-water
shows as growth in the first round only.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
from pathlib import Path

import httpx
import websockets
from _cpu import children
from _graphql import CREATE_BOOK, SUBSCRIBE_CATALOG, Refs, create_refs, failure
from _load import client, run_load, sign_in
from _server import SEPARATE_WORKER, bookworm_server

from app.supervisor import API_COMMAND

CONCURRENCY = 8
DELIVERY_TIMEOUT = 120.0  # seconds every subscriber may take to receive a round's last change
SETTLE = 1.0  # seconds between the last delivery and the reading, for the server to finish its sends


class Counter:
    """Count the catalog's created books reaching one subscriber."""

    def __init__(self) -> None:
        self.books = 0
        self.changed = asyncio.Event()

    async def listen(self, ws: websockets.ClientConnection) -> None:
        async for raw in ws:
            message = json.loads(raw)
            if message["type"] == "ping":
                await ws.send(json.dumps({"type": "pong"}))
            elif message["type"] == "next":
                change = message["payload"]["data"]["catalogChanged"]
                if change["entity"] == "Book" and change["kind"] == "CREATED":
                    self.books += 1
                    self.changed.set()

    async def wait_for(self, books: int) -> None:
        while self.books < books:
            self.changed.clear()
            await self.changed.wait()


def rss_mib(pid: int) -> float:
    """Resident memory of process `pid` now (Linux /proc)."""
    match = re.search(r"VmRSS:\s+(\d+) kB", Path(f"/proc/{pid}/status").read_text())
    assert match, f"no VmRSS for process {pid}"
    return int(match.group(1)) / 1024


async def subscribe(url: str) -> websockets.ClientConnection:
    ws = await websockets.connect(
        url.replace("http", "ws", 1) + "/graphql",
        subprotocols=[websockets.Subprotocol("graphql-transport-ws")],
    )
    await ws.send(json.dumps({"type": "connection_init", "payload": {}}))
    assert json.loads(await ws.recv())["type"] == "connection_ack"
    await ws.send(json.dumps({"id": "1", "type": "subscribe", "payload": {"query": SUBSCRIBE_CATALOG}}))
    return ws


async def create_books(url: str, refs: Refs, first: int, count: int) -> None:
    """Create books number first..first+count-1; stop the run on any failed mutation."""

    async def create(http: httpx.AsyncClient, number: int) -> str | None:
        variables = {"input": refs.book_input(f"Memory {first + number}")}
        response = await http.post("/graphql", json={"query": CREATE_BOOK, "variables": variables})
        return failure(response, "createBook", "CreateBookSuccess")

    sample = await run_load(url, create, concurrency=CONCURRENCY, count=count)
    if sample.errors:
        raise SystemExit(f"createBook failed: {dict(sample.errors)}")


async def measure(url: str, pid: int, rounds: int, changes: int, subscribers: int) -> list[tuple[int, float]]:
    """Return (books delivered to each subscriber, API RSS in MiB) before and after each round."""
    sockets = [await subscribe(url) for _ in range(subscribers)]
    counters = [Counter() for _ in sockets]
    listeners = [asyncio.create_task(c.listen(ws)) for c, ws in zip(counters, sockets, strict=True)]
    try:
        async with client(url) as http:
            refs = await create_refs(http)
        await asyncio.sleep(SETTLE)
        table = [(0, rss_mib(pid))]
        for round_ in range(rounds):
            await create_books(url, refs, round_ * changes, changes)
            delivered = (round_ + 1) * changes
            await asyncio.wait_for(
                asyncio.gather(*(c.wait_for(delivered) for c in counters)), DELIVERY_TIMEOUT
            )
            await asyncio.sleep(SETTLE)
            table.append((delivered, rss_mib(pid)))
            print(f"round {round_ + 1} of {rounds}: {delivered} changes delivered", flush=True)
        return table
    finally:
        for listener in listeners:
            listener.cancel()
        for ws in sockets:
            await ws.close()


def print_table(table: list[tuple[int, float]], subscribers: int) -> None:
    header = f"{'changes delivered':>18}{'API RSS MiB':>13}{'since start':>13}{'KiB/change':>12}"
    print(f"\n{subscribers} catalogChanged subscribers")
    print(header)
    print("-" * len(header))
    start = table[0][1]
    for delivered, rss in table:
        per_change = f"{(rss - start) * 1024 / delivered:.2f}" if delivered else "-"
        print(f"{delivered:>18}{rss:>13.1f}{rss - start:>+13.1f}{per_change:>12}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--changes", type=int, default=2000, help="books created per round")
    parser.add_argument("--subscribers", type=int, default=2)
    args = parser.parse_args()
    os.environ[SEPARATE_WORKER] = "1"  # the API process alone: no relay nor projections in its memory
    os.environ["BOOKWORM_API_PROCESSES"] = "1"  # every subscriber on the one API process measured
    with bookworm_server() as server:
        sign_in(server.admin_token())
        (api,) = children(server.pid, API_COMMAND)
        table = asyncio.run(measure(server.url, api, args.rounds, args.changes, args.subscribers))
    print_table(table, args.subscribers)


if __name__ == "__main__":
    main()
