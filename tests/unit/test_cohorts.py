"""Cohorts: subscribers of one document and variables share one execution and one encoded payload."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncGenerator, Callable
from types import SimpleNamespace
from typing import Any

from app.eventstore.position import START, Position
from app.identity import ANONYMOUS
from app.live.cohorts import Cohorts, Frame, Resume
from app.live.notices import ChangeNotice
from app.schema import build_schema
from app.schema.subscriptions import DIRECT, DirectOperation, deliver
from tests.unit.test_subscription_memory import UnlimitedBudgets

CATALOG_CHANGED = "subscription { catalogChanged { kind position entity entityId } }"
BOOK_CHANGED = "subscription($id: ID!) { bookChanged(id: $id) { kind position bookId } }"
WAIT = 5.0


class FeedHub:
    """Stands in for the hub: every subscription gets what publish() is given; counts subscriptions."""

    def __init__(self, queue_size: int = 64) -> None:
        self.cohorts = Cohorts(self, queue_size)  # type: ignore[arg-type]
        self.feeds: list[tuple[str, asyncio.Queue[ChangeNotice]]] = []
        self.resumed: list[tuple[Position | None, str | None]] = []
        self.joined = asyncio.Event()

    async def subscribe(
        self,
        topic: str,
        after: Position | None = None,
        *,
        after_entity: str | None = None,
        delivered: bool = False,
        started: Callable[[Position], None] | None = None,
    ) -> AsyncGenerator[ChangeNotice, None]:
        feed: asyncio.Queue[ChangeNotice] = asyncio.Queue()
        self.feeds.append((topic, feed))
        self.resumed.append((after, after_entity))
        self.joined.set()
        if started is not None:
            started(after or START)
        try:
            while True:
                yield await feed.get()
        finally:
            self.feeds.remove((topic, feed))

    def publish(self, notice: ChangeNotice) -> None:
        for topic, feed in self.feeds:
            if topic == notice.topic:
                feed.put_nowait(notice)


def notice(number: int, topic: str = "catalog", entity_id: str | None = None) -> ChangeNotice:
    return ChangeNotice(
        position=Position(number, number),
        topic=topic,
        kind="CREATED",
        entity="Book",
        entity_id=entity_id or f"b{number}",
    )


class Client:
    """One websocket subscription's sent payloads, subscribed through the schema as the handler does."""

    def __init__(self, hub: FeedHub, query: str, variables: dict[str, object] | None = None) -> None:
        self.hub, self.query, self.variables = hub, query, variables
        self.payloads: list[dict[str, Any]] = []
        self.arrived = asyncio.Event()
        self.task: asyncio.Task[None] | None = None
        self.gate: asyncio.Event | None = None  # set: sends wait for it (a slow client)

    async def send(self, payload: str) -> None:
        if self.gate is not None:
            await self.gate.wait()
        self.payloads.append(json.loads(payload))
        self.arrived.set()

    async def _run(self) -> None:
        direct = DirectOperation(self.query, None, self.variables, self.send)
        DIRECT.set(direct)
        container = SimpleNamespace(
            hub=self.hub, budgets=UnlimitedBudgets(), settings=SimpleNamespace(max_response_bytes=1_000_000)
        )
        context = SimpleNamespace(container=container, principal=ANONYMOUS, client_key="ip:test")
        results = await build_schema().subscribe(self.query, self.variables, context_value=context)
        assert isinstance(results, AsyncGenerator), results
        async for result in results:
            raise AssertionError(f"handed back to the handler, not run by strawberry: {result}")
        assert direct.handoff is not None
        await deliver(direct.handoff, self.send)

    def start(self) -> Client:
        self.task = asyncio.create_task(self._run())
        return self

    async def wait_for(self, count: int) -> None:
        async with asyncio.timeout(WAIT):
            while len(self.payloads) < count:
                self.arrived.clear()
                await self.arrived.wait()

    async def stop(self) -> None:
        assert self.task is not None
        self.task.cancel()
        await asyncio.gather(self.task, return_exceptions=True)


async def subscribed(hub: FeedHub, topics: int) -> None:
    async with asyncio.timeout(WAIT):
        while len(hub.feeds) < topics:
            hub.joined.clear()
            await hub.joined.wait()


def entity_ids(client: Client, field: str = "catalogChanged") -> list[str]:
    key = "entityId" if field == "catalogChanged" else "bookId"
    return [payload["data"][field][key] for payload in client.payloads]


async def test_two_subscribers_of_one_document_share_one_execution() -> None:
    hub = FeedHub()
    first, second = Client(hub, CATALOG_CHANGED).start(), Client(hub, CATALOG_CHANGED).start()
    await subscribed(hub, 1)
    await asyncio.sleep(0.05)  # the second joins the first's cohort
    for number in (1, 2, 3):
        hub.publish(notice(number))
    await first.wait_for(3)
    await second.wait_for(3)

    assert len(hub.feeds) == 1  # one hub subscription for both
    (cohort_key,) = hub.cohorts._cohorts
    cohort = hub.cohorts.get(cohort_key)
    assert cohort is not None and cohort.executions == 3 and len(cohort.members) == 2
    assert first.payloads == second.payloads
    assert first.payloads[0] == {
        "data": {
            "catalogChanged": {
                "kind": "CREATED",
                "position": str(Position(1, 1)),
                "entity": "Book",
                "entityId": "b1",
            }
        }
    }
    await first.stop()
    await second.stop()
    await asyncio.sleep(0)
    assert len(hub.cohorts) == 0


async def test_different_variables_do_not_share() -> None:
    hub = FeedHub()
    b1, b2 = str(uuid.uuid4()), str(uuid.uuid4())
    one = Client(hub, BOOK_CHANGED, {"id": b1}).start()
    other = Client(hub, BOOK_CHANGED, {"id": b2}).start()
    same = Client(hub, BOOK_CHANGED, {"id": b1}).start()
    await subscribed(hub, 2)
    await asyncio.sleep(0.05)
    hub.publish(notice(1, f"book:{b1}", b1))
    hub.publish(notice(2, f"book:{b2}", b2))
    await one.wait_for(1)
    await other.wait_for(1)
    await same.wait_for(1)

    assert len(hub.cohorts) == 2 and len(hub.feeds) == 2
    assert entity_ids(one, "bookChanged") == entity_ids(same, "bookChanged") == [b1]
    assert entity_ids(other, "bookChanged") == [b2]
    for client in (one, other, same):
        await client.stop()


async def test_a_slow_member_does_not_delay_the_others_and_then_catches_up_alone() -> None:
    hub = FeedHub(queue_size=3)
    slow, quick = Client(hub, CATALOG_CHANGED), Client(hub, CATALOG_CHANGED).start()
    slow.gate = asyncio.Event()
    slow.start()
    await subscribed(hub, 1)
    await asyncio.sleep(0.05)
    hub.publish(notice(1))
    await asyncio.sleep(0.05)  # the slow one is sending b1, stuck
    for number in range(2, 6):
        hub.publish(notice(number))
        await asyncio.sleep(0.01)
    await quick.wait_for(5)  # all five, while the slow one has sent nothing

    assert slow.payloads == []
    slow.gate.set()
    await subscribed(hub, 2)  # its queue overflowed: it resumes alone, after the last one it sent
    assert hub.resumed[-1] == (Position(1, 1), "b1")  # the hub replays b2... from read.changes
    hub.publish(notice(6))
    await slow.wait_for(2)
    assert entity_ids(slow) == ["b1", "b6"]
    for client in (slow, quick):
        await client.stop()


async def test_a_member_that_leaves_resumes_after_the_last_change_it_sent() -> None:
    hub = FeedHub(queue_size=1)
    member = asyncio.Event()
    sent: list[str] = []

    async def send(payload: str) -> None:
        sent.append(payload)
        if len(sent) == 2:
            await member.wait()

    async def render(change: ChangeNotice) -> str:
        return change.entity_id

    following = asyncio.create_task(hub.cohorts.follow("key", "catalog", render, send))
    await subscribed(hub, 1)
    for number in range(1, 5):
        hub.publish(notice(number))
        await asyncio.sleep(0.01)
    member.set()
    async with asyncio.timeout(WAIT):
        resume = await following
    assert sent == ["b1", "b2"]
    assert resume == Resume(Position(2, 2), "b2")


class FakeWire:
    """A member's socket that takes frames while `open` (the leader writes them), else refuses."""

    def __init__(self) -> None:
        self.open = True
        self.written: list[str] = []

    def write(self, frame: Frame) -> bool:
        if self.open:
            self.written.append(frame.payload)
        return self.open


async def test_the_leader_writes_to_a_members_wire_and_queues_in_order_while_it_refuses() -> None:
    hub = FeedHub(queue_size=8)
    wire, sent = FakeWire(), []
    sending = asyncio.Event()
    sending.set()

    async def send(payload: str) -> None:
        await sending.wait()
        sent.append(payload)

    async def render(change: ChangeNotice) -> str:
        return change.entity_id

    following = asyncio.create_task(hub.cohorts.follow("key", "catalog", render, send, wire))
    await subscribed(hub, 1)
    hub.publish(notice(1))
    await asyncio.sleep(0.01)
    assert (wire.written, sent) == (["b1"], [])  # written by the leader: the member's task never woke

    wire.open, sending = False, asyncio.Event()  # the socket is past its high-water mark
    hub.publish(notice(2))
    await asyncio.sleep(0.01)  # b2 is queued, and the member's task is sending it
    wire.open = True  # the socket drained: b3 must still wait behind b2
    hub.publish(notice(3))
    await asyncio.sleep(0.01)
    assert (wire.written, sent) == (["b1"], [])
    sending.set()
    await asyncio.sleep(0.01)
    assert sent == ["b2", "b3"]
    hub.publish(notice(4))  # the queue has drained: the wire again
    await asyncio.sleep(0.01)
    assert (wire.written, sent) == (["b1", "b4"], ["b2", "b3"])

    following.cancel()
    await asyncio.gather(following, return_exceptions=True)


async def test_a_member_whose_wire_refuses_overflows_and_resumes_after_the_last_frame_it_wrote() -> None:
    hub = FeedHub(queue_size=2)
    wire = FakeWire()
    stuck = asyncio.Event()

    async def send(payload: str) -> None:
        await stuck.wait()

    async def render(change: ChangeNotice) -> str:
        return change.entity_id

    following = asyncio.create_task(hub.cohorts.follow("key", "catalog", render, send, wire))
    await subscribed(hub, 1)
    hub.publish(notice(1))
    await asyncio.sleep(0.01)
    wire.open = False
    for number in (2, 3, 4):  # b2 is being sent, b3 waits, b4 overflows the queue of two
        hub.publish(notice(number))
        await asyncio.sleep(0.01)
    stuck.set()
    async with asyncio.timeout(WAIT):
        resume = await following
    assert wire.written == ["b1"]
    assert resume == Resume(Position(2, 2), "b2")
