"""Subscription fan-out at a steady change rate: latency commit -> subscriber, CPU per delivery, idle memory.

Usage:
    python bench/cohorts.py [--subscribers 1000] [--rate 50] [--duration 10]
        [--idle 1000,10000]

Starts `bookworm serve --no-workers` with one API process plus one `bookworm worker` (all subscribers
on the API process measured; `--api-processes N` runs N, CPU and memory summed), its per-IP websocket
cap raised. `--subscribers` sockets follow
`catalogChanged` over graphql-transport-ws; createAuthor mutations arrive at `--rate` per second for
`--duration` seconds. The commit of each change falls between the mutation's send and its answer, so
latency commit -> subscriber is given between two bounds: from the answer to each subscriber's message
naming the new author (a lower bound; below zero when a message is read before the answer, as happens on
a loaded machine) and from the send (an upper bound: it adds the mutation's own work before its commit).
CPU per delivery is the API process's CPU during the run less its CPU for the same mutations with no
subscriber, over the deliveries. Before the run, on the fresh API process, `--idle` counts of sockets
subscribe and wait: the API's memory per socket is read.

The client is lean: a raw websocket protocol per socket (no task, no JSON parsing of what arrives),
so 50,000 messages a second do not take the cores the server is measured on.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import re
import resource
import struct
import time
from dataclasses import dataclass, field

import httpx
from _cpu import children
from _graphql import SUBSCRIBE_CATALOG
from _load import client, sign_in
from _server import SEPARATE_WORKER, bookworm_server, percentile
from subscription_memory import rss_mib

from app.supervisor import API_COMMAND

CREATE_AUTHOR = "mutation($name: String!) { createAuthor(input: {name: $name}) { __typename } }"
CREATE_AUTHOR_ID = (
    "mutation($name: String!) { createAuthor(input: {name: $name}) "
    "{ __typename ... on CreateAuthorSuccess { authorId } } }"
)
_ENTITY_ID = re.compile(rb'"entityId":\s*"([^"]+)"')
DELIVERY_TIMEOUT = 30.0
SETTLE = 2.0
OPEN_TIMEOUT = 120.0
IN_FLIGHT = 16


@dataclass
class Arrivals:
    """Every socket's messages, as (entity id, arrival time): shared by all sockets, appended to only."""

    seen: list[tuple[bytes, float]] = field(default_factory=list)
    acked: int = 0


class LeanSocket(asyncio.Protocol):
    """A client websocket reading server frames by hand: pings answered, text frames recorded."""

    def __init__(
        self, arrivals: Arrivals, upgraded: asyncio.Future[None], acked: asyncio.Future[None]
    ) -> None:
        self.arrivals = arrivals
        self.on_upgrade = upgraded
        self.acked = acked
        self.transport: asyncio.Transport | None = None
        self.buffer = b""
        self.upgraded = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def send_text(self, text: str) -> None:
        assert self.transport is not None
        payload = text.encode()
        mask = os.urandom(4)
        length = len(payload)
        if length < 126:
            head = struct.pack("!BB", 0x81, 0x80 | length)
        else:
            head = struct.pack("!BBH", 0x81, 0x80 | 126, length)
        self.transport.write(head + mask + _masked(payload, mask))

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        if not self.upgraded:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            if b" 101 " not in self.buffer[:end]:
                self.on_upgrade.set_exception(RuntimeError(self.buffer[:end].decode(errors="replace")))
                return
            self.upgraded, self.buffer = True, self.buffer[end + 4 :]
            self.on_upgrade.set_result(None)
        self._frames()

    def _frames(self) -> None:
        now = time.perf_counter()
        buffer, at = self.buffer, 0
        while len(buffer) - at >= 2:
            opcode, length = buffer[at] & 0x0F, buffer[at + 1] & 0x7F
            start = at + 2
            if length == 126:
                if len(buffer) - at < 4:
                    break
                (length,) = struct.unpack_from("!H", buffer, start)
                start += 2
            elif length == 127:
                if len(buffer) - at < 10:
                    break
                (length,) = struct.unpack_from("!Q", buffer, start)
                start += 8
            if len(buffer) < start + length:
                break
            self._frame(opcode, buffer[start : start + length], now)
            at = start + length
        self.buffer = buffer[at:]

    def _frame(self, opcode: int, payload: bytes, now: float) -> None:
        if opcode == 0x9:  # ping: pong with the same payload
            assert self.transport is not None
            mask = os.urandom(4)
            self.transport.write(bytes([0x8A, 0x80 | len(payload)]) + mask + _masked(payload, mask))
        elif opcode == 0x1:
            match = _ENTITY_ID.search(payload)
            if match:
                self.arrivals.seen.append((match.group(1), now))
            elif b'"connection_ack"' in payload:
                self.arrivals.acked += 1
                if not self.acked.done():
                    self.acked.set_result(None)
            elif b'"ping"' in payload:
                self.send_text('{"type":"pong"}')


def _masked(payload: bytes, mask: bytes) -> bytes:
    repeated = (mask * (len(payload) // 4 + 1))[: len(payload)]
    return (int.from_bytes(payload, "big") ^ int.from_bytes(repeated, "big")).to_bytes(len(payload), "big")


async def open_socket(host: str, port: int, arrivals: Arrivals) -> LeanSocket:
    """Open a graphql-transport-ws socket and subscribe to catalogChanged."""
    loop = asyncio.get_running_loop()
    upgraded: asyncio.Future[None] = loop.create_future()
    acked: asyncio.Future[None] = loop.create_future()
    _, protocol = await loop.create_connection(lambda: LeanSocket(arrivals, upgraded, acked), host, port)
    key = base64.b64encode(os.urandom(16)).decode()
    assert protocol.transport is not None
    protocol.transport.write(
        (
            f"GET /graphql HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
            "Sec-WebSocket-Protocol: graphql-transport-ws\r\n\r\n"
        ).encode()
    )
    await upgraded
    protocol.send_text('{"type":"connection_init","payload":{}}')
    await acked
    subscribe = {"id": "1", "type": "subscribe", "payload": {"query": SUBSCRIBE_CATALOG}}
    protocol.send_text(json.dumps(subscribe))
    return protocol


async def open_sockets(url: str, count: int, arrivals: Arrivals) -> list[LeanSocket]:
    host, port = url.removeprefix("http://").split(":")
    sockets: list[LeanSocket] = []
    for start in range(0, count, 200):
        batch = [open_socket(host, int(port), arrivals) for _ in range(min(200, count - start))]
        sockets += await asyncio.wait_for(asyncio.gather(*batch), OPEN_TIMEOUT)
    return sockets


async def live(http: httpx.AsyncClient, arrivals: Arrivals, count: int) -> None:
    """Wait until a change reaches every socket: every subscription is live."""
    for _ in range(100):
        answered = await create(http, f"Warm {os.urandom(4).hex()}")
        if not answered[0]:
            continue
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            if sum(1 for entity, _ in arrivals.seen if entity == answered[0]) >= count:
                return
            await asyncio.sleep(0.1)
    raise SystemExit("the subscriptions never all went live")


async def create(http: httpx.AsyncClient, name: str) -> tuple[bytes, float]:
    """Create an author; return its id (b"" if the mutation failed) and when the answer came."""
    response = await http.post("/graphql", json={"query": CREATE_AUTHOR_ID, "variables": {"name": name}})
    author = (response.json().get("data") or {}).get("createAuthor") or {}
    return author.get("authorId", "").encode(), time.perf_counter()


@dataclass(frozen=True)
class Change:
    """When a mutation was sent and when its answer came: its commit lies between."""

    sent: float
    answered: float


async def produce(url: str, rate: float, duration: float) -> dict[bytes, Change]:
    """createAuthor at `rate` per second for `duration` seconds (at most IN_FLIGHT unanswered at once);
    return when each created id's mutation was sent and answered."""
    answered: dict[bytes, Change] = {}
    slots = asyncio.Semaphore(IN_FLIGHT)
    prefix = os.urandom(4).hex()
    async with client(url) as http:

        async def one(number: int) -> None:
            sent = time.perf_counter()
            try:
                entity, at = await create(http, f"Cohort {prefix} {number}")
            except httpx.HTTPError:
                return
            finally:
                slots.release()
            if entity:
                answered[entity] = Change(sent, at)

        tasks = []
        start = time.perf_counter()
        for number in range(int(rate * duration)):
            await asyncio.sleep(max(0.0, start + number / rate - time.perf_counter()))
            await slots.acquire()
            tasks.append(asyncio.create_task(one(number)))
        await asyncio.gather(*tasks)
    return answered


def api_cpu(pids: list[int]) -> float:
    """CPU seconds the API processes have used."""
    total = 0
    for pid in pids:
        fields = open(f"/proc/{pid}/stat").read().rpartition(")")[2].split()
        total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def api_rss(pids: list[int]) -> float:
    return sum(rss_mib(pid) for pid in pids)


async def fanout(
    url: str, api: list[int], subscribers: int, rate: float, duration: float
) -> dict[str, float]:
    """Return the figures of one run at `rate` with `subscribers` sockets."""
    arrivals = Arrivals()
    sockets = await open_sockets(url, subscribers, arrivals)
    if subscribers:
        async with client(url) as http:
            await live(http, arrivals, subscribers)
    arrivals.seen.clear()
    before, t0 = api_cpu(api), time.perf_counter()
    answered = await produce(url, rate, duration)
    expected = len(answered) * subscribers
    deadline = time.monotonic() + DELIVERY_TIMEOUT
    while time.monotonic() < deadline:
        if sum(1 for entity, _ in arrivals.seen if entity in answered) >= expected:
            break
        await asyncio.sleep(0.2)
    cpu, wall = api_cpu(api) - before, time.perf_counter() - t0
    arrived = [(answered[entity], at) for entity, at in arrivals.seen if entity in answered]
    lower = [(at - change.answered) * 1000 for change, at in arrived]
    upper = [(at - change.sent) * 1000 for change, at in arrived]
    for socket in sockets:
        assert socket.transport is not None
        socket.transport.close()
    await asyncio.sleep(SETTLE)
    return {
        "failed": int(rate * duration) - len(answered),
        "changes": len(answered),
        "deliveries": len(lower),
        "missing": expected - len(lower),
        "p50_ms": percentile(lower, 0.5) if lower else float("nan"),
        "p99_ms": percentile(lower, 0.99) if lower else float("nan"),
        "max_ms": max(lower, default=float("nan")),
        "p50_sent_ms": percentile(upper, 0.5) if upper else float("nan"),
        "p99_sent_ms": percentile(upper, 0.99) if upper else float("nan"),
        "max_sent_ms": max(upper, default=float("nan")),
        "cpu_s": cpu,
        "wall_s": wall,
    }


async def idle(url: str, api: list[int], count: int) -> dict[str, float]:
    """Return the API's RSS growth per idle subscribed socket."""
    await asyncio.sleep(SETTLE)
    start = api_rss(api)
    arrivals = Arrivals()
    sockets = await open_sockets(url, count, arrivals)
    async with client(url) as http:
        await live(http, arrivals, count)
    await asyncio.sleep(SETTLE)
    grown = api_rss(api) - start
    for socket in sockets:
        assert socket.transport is not None
        socket.transport.close()
    await asyncio.sleep(SETTLE * 2)
    return {"sockets": count, "rss_mib": grown, "kib_each": grown * 1024 / count}


async def measure(url: str, api: list[int], args: argparse.Namespace) -> None:
    for count in args.idle:
        figures = await idle(url, api, count)
        print(
            f"{count} idle subscribers: API RSS +{figures['rss_mib']:.1f} MiB, "
            f"{figures['kib_each']:.1f} KiB each",
            flush=True,
        )
    base = await fanout(url, api, 0, args.rate, args.duration)
    run = await fanout(url, api, args.subscribers, args.rate, args.duration)
    per = (run["cpu_s"] - base["cpu_s"]) / max(run["deliveries"], 1) * 1e6
    print(
        f"catalogChanged, {args.subscribers} subscribers, {args.rate:g} changes/s for {args.duration:g} s: "
        f"{run['changes']:.0f} changes ({run['failed']:.0f} mutations failed), "
        f"{run['deliveries']:.0f} deliveries ({run['missing']:.0f} missing), "
        f"{run['deliveries'] / run['wall_s']:.0f}/s; commit -> subscriber, from the answer to from the send: "
        f"p50 {run['p50_ms']:.1f} to {run['p50_sent_ms']:.1f} ms, p99 {run['p99_ms']:.1f} to "
        f"{run['p99_sent_ms']:.1f} ms, max {run['max_ms']:.1f} to {run['max_sent_ms']:.1f} ms; "
        f"API CPU {run['cpu_s']:.2f} s "
        f"({base['cpu_s']:.2f} s without subscribers): {per:.1f} µs per delivery",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subscribers", type=int, default=1000)
    parser.add_argument("--rate", type=float, default=50)
    parser.add_argument("--duration", type=float, default=10)
    parser.add_argument("--idle", default="1000,10000", help="comma-separated counts; empty: none")
    parser.add_argument("--api-processes", type=int, default=1, help="their CPU and memory are summed")
    args = parser.parse_args()
    args.idle = [int(n) for n in args.idle.split(",") if n]
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    os.environ[SEPARATE_WORKER] = "1"
    os.environ["BOOKWORM_API_PROCESSES"] = str(args.api_processes)
    os.environ.setdefault("BOOKWORM_MAX_WS_CONNECTIONS", "20000")
    os.environ.setdefault("BOOKWORM_MAX_WS_CONNECTIONS_PER_IP", "20000")
    os.environ.setdefault("BOOKWORM_MAX_SUBSCRIPTIONS_PER_USER", "20000")
    with bookworm_server() as server:
        sign_in(server.admin_token())
        api = children(server.pid, API_COMMAND)
        asyncio.run(measure(server.url, api, args))


if __name__ == "__main__":
    main()
