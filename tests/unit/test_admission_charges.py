"""What admission charges, and when: a document seen before (parsed and analysed) is charged once."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from app.admission.budget import Charge
from app.identity import Principal
from app.schema import build_schema
from app.settings import Settings

TYPES = "{ __schema { types { name } } }"  # 6 points: a list of types (5 estimated, by default) and its field
PADDED = "#" + "x" * 4_000 + "\n{ __typename }"  # 5 points of text before a cost of 1
TOO_MANY_ALIASES = (
    "{ " + " ".join(f"a{i}: __typename" for i in range(Settings().max_query_aliases + 1)) + " }"
)

SCHEMA = build_schema()  # one schema: admission keeps what it learns about a document per schema
CALLER = Principal(subject="test")  # signed in: introspection is allowed whatever the settings


class RecordingBudgets:
    """Stands in for the Redis budgets: records each charge, and allows those within `capacity`."""

    def __init__(self, capacity: int = 1_000) -> None:
        self.capacity = capacity
        self.charges: list[int] = []

    async def charge(self, key: str, cost: int, writes: int = 0) -> Charge:
        self.charges.append(cost)
        allowed = cost <= self.capacity
        if allowed:
            self.capacity -= cost
        return Charge(allowed=allowed, cost=cost, remaining=self.capacity, capacity=1_000, refill_rate=0.1)


async def run(query: str, budgets: RecordingBudgets) -> tuple[list[int], Any]:
    """Run `query` once; return the charges it made and its result."""
    budgets.charges = []
    container = SimpleNamespace(budgets=budgets)
    context = SimpleNamespace(container=container, principal=CALLER, client_key="ip:test", request=None)
    result = await SCHEMA.execute(query, context_value=context)
    return budgets.charges, result


def codes(result: Any) -> list[str]:
    return [error.extensions["code"] for error in result.errors or ()]


async def test_a_new_document_pays_its_text_before_parsing_and_the_rest_after_its_analysis() -> None:
    query = TYPES + " # new"  # text no other test sends
    charges, _ = await run(query, RecordingBudgets())
    assert charges == [1, 5]


async def test_a_document_seen_before_is_charged_once_for_its_text_and_the_rest() -> None:
    budgets = RecordingBudgets()
    await run(TYPES, budgets)
    charges, _ = await run(TYPES, budgets)
    assert charges == [6]
    await run(PADDED, budgets)
    charges, result = await run(PADDED, budgets)
    assert charges == [5]
    assert result.data == {"__typename": "Query"}


async def test_a_document_seen_before_that_is_refused_still_pays_for_its_text() -> None:
    budgets = RecordingBudgets()
    await run(TOO_MANY_ALIASES, budgets)
    charges, result = await run(TOO_MANY_ALIASES, budgets)
    assert charges == [1 + len(TOO_MANY_ALIASES) // 1_000]
    assert codes(result) == ["QUERY_TOO_COMPLEX"]


async def test_a_document_seen_before_is_refused_whole_when_its_caller_cannot_afford_it() -> None:
    budgets = RecordingBudgets()
    await run(TYPES, budgets)
    budgets.capacity = 5
    charges, result = await run(TYPES, budgets)
    assert charges == [6]
    assert codes(result) == ["RATE_LIMITED"]
    assert result.data is None
    assert budgets.capacity == 5  # nothing taken: no part of a refused charge is kept
