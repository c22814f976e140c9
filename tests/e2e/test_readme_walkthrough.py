"""The README's walkthrough, block by block, on a server that `bookworm seed` filled first.

Each ```graphql block of "Try it in GraphiQL" (as an admin) and "Shop as a customer" (as Alice) runs in
order; a "…" takes the id an earlier block returned, as the reader pastes it. Every answer must be free of
errors and of typed errors (a `Conflict` with a seeded name, say), so the README and the seed cannot drift
apart. A subscription runs as written plus `after:` the position the walkthrough started at, so it has
something to deliver without waiting for a later block: its first change must arrive without errors.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator, Callable
from functools import partial
from typing import Any

import httpx
import pytest

from app.eventstore import Position
from app.settings import Settings
from tests.doc_examples import README, Block, compact, operation, read_blocks, root_fields, user_errors
from tests.e2e.clients import TRANSPORT_WS, Subscription, bearer
from tests.faults.cluster import Cluster, admin_token, customer_token

pytestmark = pytest.mark.e2e

# As the README signs in: an admin for the catalog, then Alice (`bookworm token --sub alice ...`).
SECTIONS = {"Try it in GraphiQL": admin_token, "Shop as a customer": lambda: customer_token("alice")}
# The seed's catalog, customers and orders are what collide with the walkthrough; its books do not.
SEED_BOOKS = 30
PLACEHOLDER = re.compile(r'(\w+):\s*"…"')
NEWEST_EVENT = """
SELECT transaction_id::text::bigint, global_position FROM eventstore.events
ORDER BY transaction_id DESC, global_position DESC LIMIT 1
"""


@pytest.fixture(scope="module")
async def seeded(
    make_settings: Callable[[], Settings], tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Cluster]:
    """`bookworm seed`, then `bookworm serve` on the same new database."""
    cluster = Cluster(make_settings(), tmp_path_factory.mktemp("readme"))
    try:
        seeding = await cluster.cli("seed", "--books", str(SEED_BOOKS))
        assert seeding.status == 0, seeding.stderr
        cluster.api("serve", workers=True)
        yield cluster
    finally:
        cluster.stop()


def walkthrough() -> list[tuple[Block, Block | None, Callable[[], str]]]:
    """Each ```graphql block of the walkthrough, the ```json variables right after it, and who sends it."""
    blocks = [b for b in read_blocks(README) if b.section in SECTIONS]
    steps = []
    for index, block in enumerate(blocks):
        if block.lang != "graphql":
            continue
        following = blocks[index + 1] if index + 1 < len(blocks) else None
        variables = following if following is not None and following.lang == "json" else None
        steps.append((block, variables, SECTIONS[block.section]))
    return steps


class Walkthrough:
    """The ids the blocks returned so far, pasted where a later block says "…"."""

    def __init__(self) -> None:
        self.ids: dict[str, str] = {}

    def fill(self, block: Block) -> str:
        """The block's text with each "…" replaced by the id it stands for."""
        text, pieces, done = block.text, [], 0
        for field in root_fields(text):
            assert field.loc is not None
            # A bare `id` (or `streamId`) is the entity the field is about: an order's, else the book's.
            entity = "orderId" if "order" in field.name.value.lower() else "bookId"
            pieces.append(text[done : field.loc.start])
            span = text[field.loc.start : field.loc.end]
            pieces.append(PLACEHOLDER.sub(partial(self._pasted, entity=entity, block=block), span))
            done = field.loc.end
        return "".join(pieces) + text[done:]

    def variables(self, block: Block | None) -> dict[str, Any]:
        given: dict[str, Any] = {} if block is None else json.loads(block.text)
        return {name: self._id(name, block) if value == "…" else value for name, value in given.items()}

    def record(self, data: dict[str, Any]) -> None:
        """Keep the ids a mutation's payload names (`authorId`, `bookId`, `orderId`, ...)."""
        for payload in data.values():
            if isinstance(payload, dict):
                self.ids.update({k: v for k, v in payload.items() if k.endswith("Id") and isinstance(v, str)})

    def _pasted(self, match: re.Match[str], entity: str, block: Block) -> str:
        name = match.group(1)
        key = name if name.endswith("Id") and name != "streamId" else entity
        return f'{name}: "{self._id(key, block)}"'

    def _id(self, key: str, block: Block | None) -> str:
        assert key in self.ids, f"README {block and block.where}: no earlier block returned a {key}"
        return self.ids[key]


def resuming(text: str, after: str) -> str:
    """The subscription with `after:` set to `after` (replacing an `after: null`)."""
    field = root_fields(text)[0]
    assert field.loc is not None
    given = next((a for a in field.arguments if a.name.value == "after"), None)
    if given is not None:
        assert given.value.loc is not None
        return f'{text[: given.value.loc.start]}"{after}"{text[given.value.loc.end :]}'
    opening = text.index("(", field.name.loc.end if field.name.loc else field.loc.start)
    return f'{text[: opening + 1]}after: "{after}", {text[opening + 1 :]}'


async def newest_position(cluster: Cluster) -> str:
    async with cluster.connected() as conn:
        row = await conn.fetchrow(NEWEST_EVENT)
    assert row is not None, "the seed wrote no events"
    return str(Position(row[0], row[1]))


async def test_the_readme_walkthrough_runs_on_a_seeded_server(seeded: Cluster) -> None:
    steps = walkthrough()
    assert len(steps) >= 10, "the README's walkthrough sections were renamed"
    start = await newest_position(seeded)
    pasted = Walkthrough()
    api = seeded.procs[0]
    async with httpx.AsyncClient(base_url=api.url, timeout=30) as client:
        for block, variables_block, token in steps:
            text, variables = pasted.fill(block), pasted.variables(variables_block)
            if operation(text).operation.value == "subscription":
                async with Subscription(
                    TRANSPORT_WS, api.ws_url, resuming(text, start), variables, token()
                ) as sub:
                    change = await sub.next_data()
                assert not user_errors(change), f"README {block.where}:\n{compact(change)}"
                continue
            body = {"query": text, "variables": variables}
            response = await client.post("/graphql", json=body, headers=bearer(token()))
            answer = response.json()
            shown = (
                f"README {block.where}:\n{compact({k: v for k, v in answer.items() if k != 'extensions'})}"
            )
            assert response.status_code == 200 and "errors" not in answer, shown
            assert not user_errors(answer["data"]), shown
            pasted.record(answer["data"])
