"""Documents built to be expensive are refused by their figures before validation or execution."""

from __future__ import annotations

import asyncio
import os
import time
from collections import Counter
from pathlib import Path

import pytest

from tests.abuse.conftest import Shop, record
from tests.abuse.harness import Bystander, client, codes, new_address

pytestmark = pytest.mark.usefixtures("unharmed")

BOOKS_PAGE = "books(first: 100) { edges { node { id name price authors { name } category { name } } } }"
ALIASES = "{ " + " ".join(f"a{i}: {BOOKS_PAGE}" for i in range(1000)) + " }"  # ~145 KB


def fragment_bomb(levels: int) -> str:
    """Each fragment spreads the next one twice: 2^levels fields from a document of a few hundred bytes."""
    fragments = [f"fragment F{i} on Query {{ ...F{i + 1} ...F{i + 1} }}" for i in range(levels)]
    fragments.append(f"fragment F{levels} on Query {{ __typename }}")
    return "query { ...F0 } " + " ".join(fragments)


async def _refused_repeatedly(
    shop: Shop, body: dict[str, object], seconds: float, senders: int
) -> tuple[list[int], Counter[str]]:
    """Send `body` from `senders` clients of one address for `seconds`. Every answer must be a typed
    refusal: 400 QUERY_TOO_COMPLEX, or 429 RATE_LIMITED once the document's size has spent the budget.
    Return how long each answer took (ms) and how many were refused each way."""
    took: list[int] = []
    refusals: Counter[str] = Counter()
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    address = new_address()

    async def send() -> None:
        async with client(shop.url, address) as http:
            while loop.time() < deadline:
                start = loop.time()
                response = await http.post("/graphql", json=body)
                took.append(round((loop.time() - start) * 1000))
                expected = {400: "QUERY_TOO_COMPLEX", 429: "RATE_LIMITED"}.get(response.status_code)
                assert codes(response.json()) == {expected}, response.text[:500]
                refusals[expected] += 1

    await asyncio.gather(*(send() for _ in range(senders)))
    return took, refusals


async def test_a_thousand_aliases_are_refused_without_running(shop: Shop) -> None:
    body = {"query": ALIASES}
    cpu_before = _cpu_seconds(shop)
    async with Bystander(shop.url, shop.book_id) as bystander:
        took, refusals = await _refused_repeatedly(shop, body, seconds=5, senders=3)
    cpu = _cpu_seconds(shop) - cpu_before
    record(
        "1,000 aliases (145 KB) x 3 senders",
        refusals=dict(refusals),
        slowest_refusal_ms=max(took),
        server_cpu_s=f"{cpu:.1f}",
        bystander=bystander.summary(),
    )
    bystander.assert_served()


async def test_the_answer_names_the_limit_and_the_figures(shop: Shop) -> None:
    async with client(shop.url, new_address(), accept="application/graphql-response+json") as http:
        response = await http.post("/graphql", json={"query": ALIASES})
    assert response.status_code == 400
    assert response.headers["content-type"].startswith("application/graphql-response+json")
    error = response.json()["errors"][0]
    assert error["extensions"]["code"] == "QUERY_TOO_COMPLEX"
    assert error["extensions"]["limit"] in {"length", "tokens", "aliases", "cost", "fields"}
    assert error["extensions"]["maximum"] > 0
    assert "BOOKWORM_MAX_QUERY_" in error["message"]
    assert "data" not in response.json()


@pytest.mark.parametrize("method", ["POST", "GET"])
async def test_a_fragment_bomb_is_refused_at_once(shop: Shop, method: str) -> None:
    document = fragment_bomb(40)  # 2^40 fields; the old depth limiter took 4.7 s at 30 levels
    async with Bystander(shop.url, shop.book_id) as bystander, client(shop.url, new_address()) as http:
        took: list[float] = []
        for _ in range(20):
            start = time.monotonic()
            if method == "GET":
                response = await http.get("/graphql", params={"query": document})
            else:
                response = await http.post("/graphql", json={"query": document})
            took.append(time.monotonic() - start)
            assert response.status_code == 400, response.text[:500]
            assert codes(response.json()) == {"QUERY_TOO_COMPLEX"}
    record(
        f"fragment bomb, 40 levels, {len(document)} bytes, {method}",
        slowest_refusal_ms=round(max(took) * 1000),
        bystander=bystander.summary(),
    )
    bystander.assert_served()


@pytest.mark.parametrize(
    ("document", "limit"),
    [
        ("{ " + " ".join(f"a{i}: __typename" for i in range(48_000)) + " }", "length"),  # ~0.8 MB
        ("{ " + "__typename " * 3_000 + "}", "tokens"),  # 33 KB, 3,002 tokens
        ("{ " + " ".join(f"a{i}: __typename" for i in range(400)) + " }", "aliases"),
    ],
    ids=["0.8 MB", "3,000 tokens", "400 aliases"],
)
async def test_a_big_document_is_refused_by_its_size(shop: Shop, document: str, limit: str) -> None:
    async with client(shop.url, new_address()) as http:
        response = await http.post("/graphql", json={"query": document})
    assert response.status_code == 400
    assert codes(response.json()) == {"QUERY_TOO_COMPLEX"}
    assert response.json()["errors"][0]["extensions"]["limit"] == limit


def _cpu_seconds(shop: Shop) -> float:
    """User + system CPU the server's processes (`serve` and its children) have used so far (Linux /proc)."""
    total = 0.0
    for pid in [shop.api.process.pid, *shop.api.children()]:
        stat = Path(f"/proc/{pid}/stat").read_text()
        fields = stat.rsplit(")", 1)[1].split()
        total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total
