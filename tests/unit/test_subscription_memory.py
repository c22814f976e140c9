"""A long-lived subscription keeps no state per event delivered (graphql-core 3.3.2 shares a memo)."""

from __future__ import annotations

import gc
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from types import SimpleNamespace

from graphql.execution.collect_fields import FieldDetails

from app.admission.budget import Charge
from app.eventstore.position import Position
from app.identity import ANONYMOUS
from app.live.notices import ChangeNotice
from app.schema import build_schema

CATALOG_CHANGED = "subscription { catalogChanged { kind position entity entityId } }"


class UnlimitedBudgets:
    """Stands in for the Redis budgets: every charge is allowed."""

    async def charge(self, key: str, cost: int, writes: int = 0) -> Charge:
        return Charge(allowed=True, cost=cost, remaining=1000, capacity=1000, refill_rate=100.0)


class EndlessHub:
    """Stands in for the hub: the subscription's source, one new book per notice, forever."""

    async def subscribe(
        self, topic: str, after: Position | None, started: Callable[[Position], None] | None = None
    ) -> AsyncGenerator[ChangeNotice, None]:
        number = 0
        while True:
            number += 1
            yield ChangeNotice(
                position=Position(number, number),
                topic=topic,
                kind="CREATED",
                entity="Book",
                entity_id=f"b{number}",
            )


def live_field_details() -> int:
    """How many graphql-core field groupings are alive: the executor's memo keeps them."""
    gc.collect()
    return sum(isinstance(o, FieldDetails) for o in gc.get_objects())


async def receive(results: AsyncIterator[object], count: int) -> None:
    for _ in range(count):
        result = await anext(results)
        assert not getattr(result, "errors", None), result


async def test_a_subscription_does_not_grow_with_the_events_it_delivers() -> None:
    container = SimpleNamespace(hub=EndlessHub(), budgets=UnlimitedBudgets())
    context = SimpleNamespace(container=container, principal=ANONYMOUS, client_key="ip:test")
    results = await build_schema().subscribe(CATALOG_CHANGED, context_value=context)
    assert isinstance(results, AsyncGenerator)
    try:
        first = await anext(results)
        assert first.data == {
            "catalogChanged": {
                "kind": "CREATED",
                "position": str(Position(1, 1)),
                "entity": "Book",
                "entityId": "b1",
            }
        }
        await receive(results, 100)
        after_a_hundred = live_field_details()
        await receive(results, 300)
        assert live_field_details() == after_a_hundred  # it was 5 more per event, about 1.5 KiB
    finally:
        await results.aclose()
