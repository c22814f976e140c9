"""Scenario 5: a projection handler fails on one event under load; it is retried, parked, and replayed.

Nothing in the application is hooked: the catalog's live books table gets a CHECK constraint that one
book's row breaks, so the real worker's real INSERT fails on that event and on no other. "Fixing the
handler" is dropping the constraint; `bookworm deadletters retry` then replays the event.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Callable

import asyncpg
import httpx

from app.bus.applier import TRIES
from tests.e2e.clients import bearer
from tests.faults.cluster import Cluster, admin_token
from tests.faults.conftest import Profile, record
from tests.faults.traffic import CREATE_BOOK, REQUEST_TIMEOUT, Load, Refs, make_refs

POISON = "Poison pill"
CONSTRAINT = "faults_poison_pill"
PARK_LIMIT = 60.0  # seconds the worker may take to park the event


async def test_a_failing_event_is_parked_the_rest_carries_on_and_retry_replays_it(
    cluster: Cluster, profile: Profile
) -> None:
    api, worker = cluster.api(), cluster.worker()
    token = admin_token()
    refs = await make_refs(api.url, token)
    books = await break_the_handler(cluster)

    load = Load([api.url], token, refs, profile.rate, profile.clients)
    loading = asyncio.create_task(load.run(profile.seconds))
    await wait_for(lambda: len(load.book_ids) >= profile.rate, "the load never got going")  # books before it
    poison_id = await create_poison(api.url, token, refs)
    created = time.monotonic()
    letter_id = await wait_parked(cluster)
    parked_after = time.monotonic() - created
    await loading
    recovered = await cluster.caught_up("catalog")

    # The rest carried on: every book of the load, before and after the poison, is in the read model.
    assert load.failures() == {}, load.outcomes
    assert await count_books(cluster, load.book_ids) == len(load.book_ids)
    assert await count_books(cluster, [poison_id]) == 0
    letter = await dead_letter(cluster, letter_id)
    assert letter["event_type"] == "BookCreated" and letter["stream_id"] == poison_id, dict(letter)
    assert letter["attempts"] == TRIES and "CheckViolationError" in letter["error"], dict(letter)
    assert f"after {TRIES} attempts" in worker.log_tail(20_000)

    listed = await cluster.cli("deadletters", "list")
    assert listed.status == 0, listed.stderr
    assert re.search(rf"^{letter_id}\s+catalog\s+BookCreated\s.*CheckViolationError", listed.stdout, re.M), (
        listed.stdout
    )
    diverged = await cluster.cli("verify")  # a parked event is a real divergence: verify must see it
    assert diverged.status == 1, diverged.stdout
    assert POISON in diverged.stdout and "1 unresolved dead letters for catalog" in diverged.stdout
    differences = re.search(r"^catalog: (\d+) differences", diverged.stdout, re.M)
    assert differences, diverged.stdout
    unfixed = await cluster.cli("deadletters", "retry", "--all")  # the handler still fails
    assert unfixed.status == 1 and "failed again" in unfixed.stdout, (unfixed.stdout, unfixed.stderr)
    assert (await dead_letter(cluster, letter_id))["attempts"] == TRIES + 1

    await execute(cluster, f"ALTER TABLE {books} DROP CONSTRAINT {CONSTRAINT}")  # the handler is fixed
    fixed = await cluster.cli("deadletters", "retry", str(letter_id))
    assert fixed.status == 0 and "applied" in fixed.stdout, (fixed.stdout, fixed.stderr)
    assert await count_books(cluster, [poison_id]) == 1
    assert (await dead_letter(cluster, letter_id))["resolved_at"] is not None
    verified = await cluster.verify()
    record(
        "5 dead letter",
        mutations=load.summary(),
        parked_after=f"{parked_after:.2f} s ({TRIES} attempts)",
        books_in_read_model=f"{len(load.book_ids) + 1} of {len(load.book_ids) + 1} after retry",
        verify_while_parked=f"failed as it must ({differences.group(1)} catalog rows differ)",
        events_written=await cluster.count("SELECT count(*) FROM eventstore.events"),
        events_verified=verified,
        caught_up_after_load=f"{recovered:.2f} s",
    )


async def test_a_rebuild_replays_parked_events_and_resolves_them(cluster: Cluster) -> None:
    """Without the resolve, a later `deadletters retry` would apply the event a second time."""
    api = cluster.api()
    cluster.worker()
    token = admin_token()
    refs = await make_refs(api.url, token)
    await break_the_handler(cluster)
    poison_id = await create_poison(api.url, token, refs)
    letter_id = await wait_parked(cluster)

    rebuilt = await cluster.cli("projections", "rebuild", "catalog")  # new tables: no constraint
    assert rebuilt.status == 0, (rebuilt.stdout, rebuilt.stderr)
    assert await count_books(cluster, [poison_id]) == 1
    assert (await dead_letter(cluster, letter_id))["resolved_at"] is not None
    verified = await cluster.verify()
    record("5b rebuild resolves dead letters", parked=1, resolved_by_rebuild=1, events_verified=verified)


async def break_the_handler(cluster: Cluster) -> str:
    """Make the catalog's INSERT of the poison book, and of no other, fail; return the table's name."""
    generation = await cluster.count("SELECT generation FROM read.projections WHERE name = 'catalog'")
    books = f"read.catalog_g{generation}_books"
    await execute(cluster, f"ALTER TABLE {books} ADD CONSTRAINT {CONSTRAINT} CHECK (name <> '{POISON}')")
    return books


async def execute(cluster: Cluster, statement: str) -> None:
    async with cluster.connected() as conn:
        await conn.execute(statement)


async def dead_letter(cluster: Cluster, letter_id: int) -> asyncpg.Record:
    async with cluster.connected() as conn:
        row = await conn.fetchrow("SELECT * FROM bus.dead_letters WHERE id = $1", letter_id)
    assert row is not None
    return row


async def count_books(cluster: Cluster, ids: list[str]) -> int:
    async with cluster.connected() as conn:
        found: int = await conn.fetchval(
            "SELECT count(*) FROM read.book_view WHERE id = ANY($1::uuid[])", ids
        )
    return found


async def create_poison(url: str, token: str, refs: Refs) -> str:
    book = {"name": POISON, "price": "6.66", "categoryId": refs.category_id,
            "publisherId": refs.publisher_id, "authorIds": [refs.author_id]}  # fmt: skip
    async with httpx.AsyncClient(base_url=url, headers=bearer(token), timeout=REQUEST_TIMEOUT) as http:
        response = await http.post("/graphql", json={"query": CREATE_BOOK, "variables": {"input": book}})
    result = response.json()["data"]["createBook"]
    assert result["__typename"] == "CreateBookSuccess", result
    book_id: str = result["bookId"]
    return book_id


async def wait_for(done: Callable[[], bool], message: str, limit: float = PARK_LIMIT) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + limit
    while not done():
        assert loop.time() < deadline, message
        await asyncio.sleep(0.05)


async def wait_parked(cluster: Cluster) -> int:
    """Wait for the one dead letter; return its id."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + PARK_LIMIT
    while not (letter_id := await cluster.count("SELECT max(id) FROM bus.dead_letters")):
        assert loop.time() < deadline, f"nothing was parked in {PARK_LIMIT} s"
        await asyncio.sleep(0.05)
    assert await cluster.count("SELECT count(*) FROM bus.dead_letters") == 1
    return letter_id
