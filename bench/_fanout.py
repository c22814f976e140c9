"""Subscription fan-out: N catalogChanged subscribers over graphql-transport-ws, M createBook mutations."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field

import httpx
import websockets
from _cpu import CpuProbe, CpuShare, CpuTimes
from _graphql import CREATE_BOOK, SUBSCRIBE_CATALOG, create_refs, failure
from _load import Row, Sample, client, run_load

DELIVERY_TIMEOUT = 30.0


@dataclass
class Subscriber:
    """One websocket's arrival times, by created entity id."""

    arrivals: dict[str, float] = field(default_factory=dict)
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    async def listen(self, ws: websockets.ClientConnection) -> None:
        """Record when each CREATED change arrives."""
        async for raw in ws:
            message = json.loads(raw)
            if message.get("type") == "next":
                change = message["payload"]["data"]["catalogChanged"]
                if change["kind"] == "CREATED":
                    self.arrivals.setdefault(change["entityId"], time.perf_counter())
                    self.changed.set()

    async def wait_for(self, ids: set[str]) -> None:
        """Return once every id in `ids` has arrived."""
        while not ids <= self.arrivals.keys():
            self.changed.clear()
            await self.changed.wait()


@asynccontextmanager
async def _subscribed(url: str, count: int) -> AsyncIterator[list[Subscriber]]:
    ws_url = url.replace("http", "ws", 1) + "/graphql"
    protocol = [websockets.Subprotocol("graphql-transport-ws")]
    async with AsyncExitStack() as stack:
        subscribers: list[Subscriber] = []
        tasks: list[asyncio.Task[None]] = []
        for _ in range(count):
            ws = await stack.enter_async_context(websockets.connect(ws_url, subprotocols=protocol))
            await ws.send(json.dumps({"type": "connection_init", "payload": {}}))
            assert json.loads(await ws.recv())["type"] == "connection_ack"
            subscribe = {"id": "1", "type": "subscribe", "payload": {"query": SUBSCRIBE_CATALOG}}
            await ws.send(json.dumps(subscribe))
            subscriber = Subscriber()
            subscribers.append(subscriber)
            tasks.append(asyncio.create_task(subscriber.listen(ws)))
        try:
            yield subscribers
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)


async def measure_fanout(
    url: str, *, subscribers: int, mutations: int, concurrency: int, probe: CpuProbe
) -> tuple[Row, Sample]:
    """Return the deliveries row (latency: mutation sent -> message received) and the mutations' sample."""
    async with client(url) as http, _subscribed(url, subscribers) as subs:
        refs = await create_refs(http)
        # The refs' own CREATED changes reaching everyone proves every subscription is live.
        warm = {refs.author, refs.category, refs.publisher}
        await asyncio.wait_for(asyncio.gather(*(s.wait_for(warm) for s in subs)), DELIVERY_TIMEOUT)
        sent: dict[str, float] = {}
        suffix = str(time.time_ns())

        async def create(worker: httpx.AsyncClient, number: int) -> str | None:
            variables = {"input": refs.book_input(f"Fan-out {suffix} {number}")}
            t0 = time.perf_counter()
            response = await worker.post("/graphql", json={"query": CREATE_BOOK, "variables": variables})
            problem = failure(response, "createBook", "CreateBookSuccess")
            if problem is None:
                sent[response.json()["data"]["createBook"]["bookId"]] = t0
            return problem

        before = probe.read()
        mutation_sample = await run_load(url, create, concurrency=concurrency, count=mutations, probe=probe)
        expected = set(sent)
        try:
            await asyncio.wait_for(asyncio.gather(*(s.wait_for(expected) for s in subs)), DELIVERY_TIMEOUT)
        except TimeoutError:
            pass  # counted below as missing deliveries
        after = probe.read()
    return _deliveries(subs, sent, before, after), mutation_sample


def _deliveries(subs: list[Subscriber], sent: dict[str, float], before: CpuTimes, after: CpuTimes) -> Row:
    """Latency from each mutation sent to its message at each subscriber; rate until the last one."""
    latencies = [
        (sub.arrivals[book] - t0) * 1000 for sub in subs for book, t0 in sent.items() if book in sub.arrivals
    ]
    last = max((sub.arrivals[b] for sub in subs for b in sent if b in sub.arrivals), default=before.at)
    sample = Sample(latencies_ms=latencies, elapsed=last - before.at, cpu=CpuShare.between(before, after))
    missing = len(subs) * len(sent) - len(latencies)
    if missing:
        sample.errors["not delivered"] = missing
    return Row.of(f"catalogChanged deliveries ({len(subs)} subscribers)", len(subs), sample)
