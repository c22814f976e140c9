"""Scenario 6: a subscriber that reads nothing for a while must not grow the server nor be dropped.

The slow client is a real websocket client that stops reading its socket: its receive queue is tiny,
so the websockets library stops reading from TCP, the kernel buffers fill, uvicorn's send blocks, the
subscription's generator stops taking notices from its hub queue, the queue (BOOKWORM's
subscriber_queue_size) overflows, and the hub switches that subscriber to catch-up from read.changes
(docs/architecture.md, "Live"). When it reads again it must receive every change, in order, once, on
the same connection.

Its cohort variant (6b): a stalled member of a cohort, whose frames the cohort's leader writes straight
to its socket until uvicorn's transport refuses them, must then queue, overflow and catch up alone, while
the other members of its cohort keep receiving.
"""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import httpx
from websockets.asyncio.client import ClientConnection, connect
from websockets.typing import Subprotocol

from app.eventstore import Position
from tests.e2e.clients import TRANSPORT_WS, bearer
from tests.faults.cluster import Cluster, Proc, admin_token
from tests.faults.conftest import Profile, record
from tests.faults.traffic import (
    CATALOG_CHANGED,
    Change,
    Load,
    Watcher,
    check_exactly_once,
    logged_changes,
    make_refs,
    wait_received,
)

MARGIN = 1.01  # a few more mutations than changes wanted: an update that repeats a price changes nothing
READ_LIMIT = 120.0  # seconds the slow client may take to read everything once it reads again
RECEIVE_BUFFER = 16 * 1024  # bytes: the slow client's kernel buffer, so backpressure reaches the server soon
SAMPLE_EVERY = 0.2  # seconds between two samples of the API's resident memory
# MiB the watched API may grow by. The hub holds at most subscriber_queue_size (256) queued and one
# page (500) of caught-up notices per subscriber, well under 1 MiB, and uvicorn stops at its 64 KiB
# write buffer; a few MiB of warm-up remain. Growing with the changes would exceed it: graphql-core's
# per-event memo (fixed by PerEventExecutor) grew by about 3 KiB per change, +29 MiB for 10,000.
MEMORY_BOUND = 16.0
WARM = "mutation($n: String!) { createAuthor(input: {name: $n}) { ... on CreateAuthorSuccess { position } } }"


@dataclass
class SlowSubscriber:
    """A catalogChanged subscription on a connection whose owner does not read until read() is called."""

    ws: ClientConnection
    received: list[Change] = field(default_factory=list)

    async def run(self) -> None:
        """Read (answering pings) until cancelled; a closed connection ends it with an error."""
        while True:
            message = json.loads(await self.ws.recv())
            if message["type"] == "ping":
                await self.ws.send(json.dumps({"type": "pong"}))
                continue
            assert message["type"] == "next", message
            assert not message["payload"].get("errors"), message
            change = message["payload"]["data"]["catalogChanged"]
            self.received.append((change["position"], change["kind"], change["entity"], change["entityId"]))

    async def read(self, reading: asyncio.Task[None], count: int) -> None:
        """Wait until `count` changes arrived; fail at once if the connection was lost meanwhile."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + READ_LIMIT
        while len(self.received) < count and not reading.done():
            assert loop.time() < deadline, f"the slow subscriber has {len(self.received)} of {count}"
            await asyncio.sleep(0.1)
        if reading.done():
            reading.result()  # raises what ended it


@asynccontextmanager
async def slow_subscriber(
    url: str, after: str | None, query: str = CATALOG_CHANGED
) -> AsyncIterator[SlowSubscriber]:
    """Subscribe to catalogChanged after `after` on a connection that buffers almost nothing."""
    address = urlsplit(url)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RECEIVE_BUFFER)  # before connect: fixes the window
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, (address.hostname, address.port))
    # max_queue: past 4 frames the library pauses reading the socket. No keepalive pings of its own: a
    # client that does not read cannot see the pong, and would drop the connection itself.
    async with connect(
        url, sock=sock, subprotocols=[Subprotocol(TRANSPORT_WS)], max_queue=4, ping_interval=None
    ) as ws:
        await ws.send(json.dumps({"type": "connection_init", "payload": {}}))
        ack = json.loads(await asyncio.wait_for(ws.recv(), 10))
        assert ack["type"] == "connection_ack", ack
        operation = {"query": query, "variables": {"after": after}}
        await ws.send(json.dumps({"id": "slow", "type": "subscribe", "payload": operation}))
        yield SlowSubscriber(ws)


@dataclass
class MemorySampler:
    """The resident memory of one process, sampled until cancelled."""

    proc: Proc
    samples: list[float] = field(default_factory=list)

    async def run(self) -> None:
        while True:
            self.samples.append(self.proc.rss_mib())
            await asyncio.sleep(SAMPLE_EVERY)


async def test_a_slow_subscriber_is_neither_dropped_nor_buffered(cluster: Cluster, profile: Profile) -> None:
    cluster.worker()
    # The load goes through another API, so the watched one's memory moves with its subscribers only.
    watched = cluster.api("api-watched")
    writer = cluster.api("api-writes")
    token = admin_token()
    refs = await make_refs(writer.url, token)
    watcher = Watcher([watched.ws_url], after=refs.position)
    watching = asyncio.create_task(watcher.run())
    database = cluster.settings.database_url or ""
    async with slow_subscriber(watched.ws_url, refs.position) as slow:
        memory = MemorySampler(watched)
        sampling = asyncio.create_task(memory.run())
        load = Load([writer.url], token, refs, profile.slow_changes / profile.slow_seconds, profile.clients)
        loading = asyncio.create_task(load.run(profile.slow_seconds * MARGIN))
        await stall(profile.slow_seconds, watcher, database, refs.position)
        reading = asyncio.create_task(slow.run())
        flowed = len(await logged_changes(database, refs.position))
        await loading
        await cluster.caught_up()
        expected = await logged_changes(database, refs.position)
        await slow.read(reading, len(expected))
        reading.cancel()
        sampling.cancel()
    await wait_received(watcher, len(expected))
    watching.cancel()

    check_exactly_once(slow.received, expected)
    check_exactly_once(watcher.received, expected)
    assert watcher.reconnects == 0
    assert load.failures() == {}, load.outcomes
    verified = await cluster.verify()
    written = await cluster.count("SELECT count(*) FROM eventstore.events")
    baseline, peak = memory.samples[0], max(memory.samples)
    assert peak - baseline < MEMORY_BOUND, f"the API grew from {baseline:.0f} to {peak:.0f} MiB"
    record(
        "6 slow subscriber",
        changes_while_it_read_nothing=f"{flowed} in {profile.slow_seconds:g} s",
        changes_received=f"{len(slow.received)} of {len(expected)}",
        events_written=written,
        events_verified=verified,
        api_memory=f"{baseline:.0f} MiB before, peak {peak:.0f} MiB (+{peak - baseline:.1f})",
    )


async def stall(seconds: float, watcher: Watcher, database: str, after: str) -> None:
    """Let `seconds` pass; meanwhile the normal watcher must receive every change logged by half-time."""
    loop = asyncio.get_running_loop()
    end = loop.time() + seconds
    await asyncio.sleep(seconds / 2)
    logged = len(await logged_changes(database, after))
    while len(watcher.received) < logged:
        assert loop.time() < end, f"the normal watcher fell behind: {len(watcher.received)} of {logged}"
        await asyncio.sleep(0.1)
    await asyncio.sleep(end - loop.time())


# Padded with aliases (within the limit of 50) to about 2.4 KB a frame. Linux lets a socket's send buffer
# grow to 4 MiB (net.ipv4.tcp_wmem), however little its reader takes: before uvicorn's transport passes
# its high-water mark and the member has to queue, about 4 MiB must be on the way. The stalled member
# misses twice the slow profile's changes, about 10 MB.
PADDED = (
    "subscription($after: String) { catalogChanged(after: $after) { kind position entity entityId "
    + " ".join(f"p{n}: entityId" for n in range(48))
    + " } }"
)
STALLED_LOAD = 2  # times the slow profile's changes and seconds
MEMBERS = 3
WARM_ATTEMPTS = 20


async def follow(url: str, into: list[Change]) -> None:
    """A cohort member that reads every frame: catalogChanged (padded) without `after`, until cancelled."""
    async with connect(url, subprotocols=[Subprotocol(TRANSPORT_WS)], open_timeout=10) as ws:
        await ws.send(json.dumps({"type": "connection_init", "payload": {}}))
        assert json.loads(await asyncio.wait_for(ws.recv(), 10))["type"] == "connection_ack"
        operation = {"query": PADDED, "variables": {"after": None}}
        await ws.send(json.dumps({"id": "1", "type": "subscribe", "payload": operation}))
        async for raw in ws:
            message = json.loads(raw)
            if message["type"] == "ping":
                await ws.send(json.dumps({"type": "pong"}))
                continue
            assert message["type"] == "next", message
            change = message["payload"]["data"]["catalogChanged"]
            into.append((change["position"], change["kind"], change["entity"], change["entityId"]))


async def all_live(writer: str, token: str, lists: list[list[Change]]) -> str:
    """Make catalog changes until one reaches every list; return its position."""
    async with httpx.AsyncClient(base_url=writer, headers=bearer(token), timeout=30) as http:
        for attempt in range(WARM_ATTEMPTS):
            body = {"query": WARM, "variables": {"n": f"Warm {attempt}"}}
            response = await http.post("/graphql", json=body)
            position = response.json()["data"]["createAuthor"]["position"]
            for _ in range(50):
                if all(any(change[0] == position for change in received) for received in lists):
                    return str(position)
                await asyncio.sleep(0.1)
    raise AssertionError("the cohort's members never all went live")


def after(position: str, received: list[Change]) -> list[Change]:
    start = Position.parse(position)
    return [change for change in received if Position.parse(change[0]) > start]


async def test_a_stalled_cohort_member_queues_then_catches_up_while_the_others_keep_receiving(
    cluster: Cluster, profile: Profile
) -> None:
    # Cohort members take their frames straight from the leader while their socket takes them
    # (docs/architecture.md, "Live"); a stalled one must fall back to its bounded queue, overflow it and
    # catch up alone, and the other members must not wait for it.
    cluster.worker()
    watched = cluster.api("api-watched", BOOKWORM_SUBSCRIBER_QUEUE_SIZE="16")
    writer = cluster.api("api-writes")
    token = admin_token()
    refs = await make_refs(writer.url, token)
    members: list[list[Change]] = [[] for _ in range(MEMBERS)]
    following = [asyncio.create_task(follow(watched.ws_url, received)) for received in members]
    async with slow_subscriber(watched.ws_url, None, PADDED) as slow:
        reading = asyncio.create_task(slow.run())
        start = await all_live(writer.url, token, [*members, slow.received])
        reading.cancel()  # from here on the stalled member reads nothing
        await asyncio.gather(reading, return_exceptions=True)
        memory = MemorySampler(watched)
        sampling = asyncio.create_task(memory.run())
        load = Load([writer.url], token, refs, profile.slow_changes / profile.slow_seconds, profile.clients)
        await load.run(profile.slow_seconds * STALLED_LOAD * MARGIN)
        await cluster.caught_up()
        expected = await logged_changes(cluster.settings.database_url or "", start)
        for received in members:  # every other member has everything while the stalled one still waits
            while len(after(start, received)) < len(expected):
                assert not any(task.done() for task in following), "a member's connection ended"
                await asyncio.sleep(0.1)
        sampling.cancel()
        reading = asyncio.create_task(slow.run())
        await slow.read(reading, len(slow.received) + len(expected))
        reading.cancel()
    for task in following:
        task.cancel()

    for received in [*members, slow.received]:
        check_exactly_once(after(start, received), expected)
    assert load.failures() == {}, load.outcomes
    baseline, peak = memory.samples[0], max(memory.samples)
    assert peak - baseline < MEMORY_BOUND, f"the API grew from {baseline:.0f} to {peak:.0f} MiB"
    record(
        "6b stalled cohort member",
        changes_while_it_read_nothing=len(expected),
        api_memory=f"{baseline:.0f} MiB before, peak {peak:.0f} MiB (+{peak - baseline:.1f})",
    )
