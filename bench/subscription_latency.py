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
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import websockets

CREATE = """mutation($name: String!) { %s(input: {name: $name}) { __typename ... on %s { %s } } }"""
CREATE_BOOK = """
mutation($input: CreateBookInput!) {
  createBook(input: $input) { __typename ... on CreateBookSuccess { bookId position } }
}"""
SUBSCRIBE = "subscription { catalogChanged { kind position entity entityId } }"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def _server() -> Iterator[str]:
    port = _free_port()
    env = dict(os.environ)
    with tempfile.TemporaryDirectory(prefix="bookworm-bench-") as data_dir:
        env.setdefault("BOOKWORM_DATA_DIR", data_dir)
        env.setdefault("BOOKWORM_LOG_LEVEL", "WARNING")
        cmd = [sys.executable, "-m", "app.cli", "serve", "--host", "127.0.0.1", "--port", str(port)]
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL)
        url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                try:
                    if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if proc.poll() is not None:
                    raise SystemExit("bookworm serve exited before it was ready")
                time.sleep(0.3)
            else:
                raise SystemExit("bookworm serve did not become ready in 120 s")
            yield url
        finally:
            proc.terminate()
            proc.wait(30)


async def _create(client: httpx.AsyncClient, field: str, success: str, id_field: str, name: str) -> str:
    response = await client.post(
        "/graphql", json={"query": CREATE % (field, success, id_field), "variables": {"name": name}}
    )
    payload = response.json()["data"][field]
    assert payload["__typename"] == success, payload
    return str(payload[id_field])


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
        httpx.AsyncClient(base_url=url, timeout=30) as client,
        websockets.connect(ws_url, subprotocols=[websockets.Subprotocol("graphql-transport-ws")]) as ws,
    ):
        await ws.send(json.dumps({"type": "connection_init", "payload": {}}))
        assert json.loads(await ws.recv())["type"] == "connection_ack"
        await ws.send(json.dumps({"id": "1", "type": "subscribe", "payload": {"query": SUBSCRIBE}}))
        arrivals: dict[str, float] = {}
        done = asyncio.Event()
        listener = asyncio.create_task(_listen(ws, arrivals, mutations, done))
        suffix = os.urandom(3).hex()
        author = await _create(
            client, "createAuthor", "CreateAuthorSuccess", "authorId", f"Bench Author {suffix}"
        )
        category = await _create(
            client, "createCategory", "CreateCategorySuccess", "categoryId", f"Bench {suffix}"
        )
        publisher = await _create(
            client, "createPublisher", "CreatePublisherSuccess", "publisherId", f"Bench {suffix}"
        )
        sent: dict[str, float] = {}
        answered: dict[str, float] = {}
        for i in range(mutations):
            book = {
                "name": f"Bench Book {i}",
                "price": "12.50",
                "categoryId": category,
                "publisherId": publisher,
                "authorIds": [author],
            }
            t0 = time.perf_counter()
            response = await client.post(
                "/graphql", json={"query": CREATE_BOOK, "variables": {"input": book}}
            )
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


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def print_table(results: dict[str, list[float]]) -> None:
    header = f"{'measure (ms)':<36}{'n':>6}{'median':>10}{'p90':>10}{'p99':>10}{'max':>10}"
    print(header)
    print("-" * len(header))
    for name, values in results.items():
        print(
            f"{name:<36}{len(values):>6}{statistics.median(values):>10.2f}"
            f"{_percentile(values, 0.9):>10.2f}{_percentile(values, 0.99):>10.2f}{max(values):>10.2f}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mutations", type=int, default=200)
    parser.add_argument("--url", help="a running Bookworm server; default: start one")
    args = parser.parse_args()
    if args.url:
        print_table(asyncio.run(measure(args.url, args.mutations)))
        return
    with _server() as url:
        print_table(asyncio.run(measure(url, args.mutations)))


if __name__ == "__main__":
    main()
