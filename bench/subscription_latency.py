"""Latency from a createBook mutation's response to the catalogChanged subscriber's message.

Usage:
    python bench/subscription_latency.py [--mutations 200] [--url http://127.0.0.1:8000]

Without --url it starts `bookworm serve` on a free port: against BOOKWORM_DATABASE_URL /
BOOKWORM_REDIS_URL when they are set, else on embedded servers in a throw-away data directory.
Mutations are sent one at a time, so the figure is latency, not throughput. Prints a results table.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import time

import websockets
from _graphql import CREATE_BOOK, SUBSCRIBE_CATALOG, create_refs
from _load import client, sign_in
from _server import admin_token, bookworm_server, percentile


async def _listen(
    ws: websockets.ClientConnection, arrivals: dict[str, float], expected: int, done: asyncio.Event
) -> None:
    async for raw in ws:
        message = json.loads(raw)
        if message.get("type") == "next":
            change = message["payload"]["data"]["catalogChanged"]
            if change["entity"] == "Book" and change["kind"] == "CREATED":
                arrivals[change["entityId"]] = time.perf_counter()
                if len(arrivals) >= expected:
                    done.set()


async def measure(url: str, mutations: int) -> dict[str, list[float]]:
    ws_url = url.replace("http", "ws", 1) + "/graphql"
    async with (
        client(url) as http,
        websockets.connect(ws_url, subprotocols=[websockets.Subprotocol("graphql-transport-ws")]) as ws,
    ):
        await ws.send(json.dumps({"type": "connection_init", "payload": {}}))
        assert json.loads(await ws.recv())["type"] == "connection_ack"
        await ws.send(json.dumps({"id": "1", "type": "subscribe", "payload": {"query": SUBSCRIBE_CATALOG}}))
        arrivals: dict[str, float] = {}
        done = asyncio.Event()
        listener = asyncio.create_task(_listen(ws, arrivals, mutations, done))
        refs = await create_refs(http)
        sent: dict[str, float] = {}
        answered: dict[str, float] = {}
        for i in range(mutations):
            book = refs.book_input(f"Bench Book {i}")
            t0 = time.perf_counter()
            response = await http.post("/graphql", json={"query": CREATE_BOOK, "variables": {"input": book}})
            t1 = time.perf_counter()
            book_id = response.json()["data"]["createBook"]["bookId"]
            sent[book_id], answered[book_id] = t0, t1
        try:
            await asyncio.wait_for(done.wait(), 30)
        except TimeoutError:
            pass
        listener.cancel()
    missing = [b for b in sent if b not in arrivals]
    if missing:
        raise SystemExit(f"{len(missing)} of {len(sent)} changes never reached the subscriber")
    return {
        "response -> subscriber message": [(arrivals[b] - answered[b]) * 1000 for b in sent],
        "request sent -> subscriber message": [(arrivals[b] - sent[b]) * 1000 for b in sent],
        "mutation round trip": [(answered[b] - sent[b]) * 1000 for b in sent],
    }


def print_table(results: dict[str, list[float]]) -> None:
    header = f"{'measure (ms)':<36}{'n':>6}{'median':>10}{'p90':>10}{'p99':>10}{'max':>10}"
    print(header)
    print("-" * len(header))
    for name, values in results.items():
        print(
            f"{name:<36}{len(values):>6}{statistics.median(values):>10.2f}"
            f"{percentile(values, 0.9):>10.2f}{percentile(values, 0.99):>10.2f}{max(values):>10.2f}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mutations", type=int, default=200)
    parser.add_argument("--url", help="a running Bookworm server; default: start one")
    args = parser.parse_args()
    if args.url:
        sign_in(admin_token(os.environ))
        print_table(asyncio.run(measure(args.url, args.mutations)))
        return
    with bookworm_server() as server:
        sign_in(server.admin_token())
        print_table(asyncio.run(measure(server.url, args.mutations)))


if __name__ == "__main__":
    main()
