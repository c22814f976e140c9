"""The API's statement timeout over real HTTP: a query stuck past it answers UNAVAILABLE, never SQL."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import asyncpg
import httpx
import pytest

from app.db import API_APPLICATION, TOO_SLOW_MESSAGE
from app.settings import Settings
from tests.e2e.clients import gql
from tests.faults.cluster import Cluster

pytestmark = pytest.mark.e2e

CATEGORIES = "{ categories { id name } }"
APPLICATIONS = """
SELECT DISTINCT application_name FROM pg_stat_activity
WHERE datname = current_database() AND pid <> pg_backend_pid()
"""


@pytest.fixture(scope="module")
def limited(
    make_settings: Callable[[], Settings], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Cluster]:
    """A deployment with one API process (no workers) whose statements may run 0.3 s."""
    cluster = Cluster(make_settings(), tmp_path_factory.mktemp("db-limits"))
    try:
        cluster.api("limited", BOOKWORM_DB_STATEMENT_TIMEOUT="0.3")
        yield cluster
    finally:
        cluster.stop()


async def test_a_query_past_the_statement_timeout_answers_unavailable(limited: Cluster) -> None:
    assert limited.settings.database_url
    async with httpx.AsyncClient(base_url=limited.procs[0].url, timeout=30) as http:
        await gql(http, CATEGORIES)  # the pool holds a connection now
        holder = await asyncpg.connect(limited.settings.database_url)
        try:
            assert API_APPLICATION in {row[0] for row in await holder.fetch(APPLICATIONS)}
            async with holder.transaction():
                await holder.execute("LOCK TABLE read.category_view IN ACCESS EXCLUSIVE MODE")
                response = await http.post("/graphql", json={"query": CATEGORIES})
        finally:
            await holder.close()
        assert response.status_code == 200
        errors = response.json()["errors"]
        assert [(e["message"], e["extensions"]["code"]) for e in errors] == [
            (TOO_SLOW_MESSAGE, "UNAVAILABLE")
        ]
        assert (await gql(http, CATEGORIES))["categories"] == []
