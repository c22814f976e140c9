"""GET /metrics of `bookworm serve` (two API processes and the worker): one scrape sums every process,
the figures move with real traffic, and client-chosen operation names cannot grow the metric set."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from app.metrics.names import ANONYMOUS, MAX_NAMES, OTHER
from tests.e2e.clients import TRANSPORT_WS, Subscription, gql
from tests.e2e.conftest import CREATE_AUTHOR
from tests.faults.cluster import SMALL_POOLS

pytestmark = pytest.mark.e2e

API_PROCESSES = 2  # what the session's `serve` runs on its two cores (tests/e2e/conftest.py)
REQUESTS = "bookworm_graphql_request_duration_seconds_count"
COMMANDS = "bookworm_command_duration_seconds_count"
CATALOG_CHANGED = "subscription($after: String) { catalogChanged(after: $after) { kind entityId } }"
DELETE_AUTHOR = """mutation MetricsDeleteAuthor($id: ID!) {
  deleteAuthor(input: {id: $id}) { __typename ... on UserError { code } } }"""
Labels = frozenset[tuple[str, str]]


class Scrape:
    """One scrape, parsed: each sample's value by its name and labels."""

    def __init__(self, text: str) -> None:
        self.families = list(text_string_to_metric_families(text))  # raises on anything malformed
        self.samples: dict[tuple[str, Labels], float] = {
            (sample.name, frozenset(sample.labels.items())): sample.value
            for family in self.families
            for sample in family.samples
        }

    def value(self, name: str, **labels: str) -> float:
        """The sample's value; 0 when it is absent (a counter nothing has touched yet)."""
        return self.samples.get((name, frozenset(labels.items())), 0.0)

    def labels(self, name: str, label: str) -> set[str]:
        """Every value `label` takes in the samples called `name`."""
        return {dict(labels)[label] for sample, labels in self.samples if sample == name}


async def scrape(http: httpx.AsyncClient) -> Scrape:
    response = await http.get("/metrics")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    return Scrape(response.text)


async def post(http: httpx.AsyncClient, query: str, **extra: Any) -> dict[str, Any]:
    response = await http.post("/graphql", json={"query": query, **extra})
    body: dict[str, Any] = response.json()
    return body


async def test_the_figures_move_with_real_traffic(
    http: httpx.AsyncClient, anon_http: httpx.AsyncClient, ws_url: str
) -> None:
    before = await scrape(anon_http)
    for _ in range(5):
        assert (await post(anon_http, "query MetricsHello { __typename }"))["data"]
    assert "errors" in await post(anon_http, "query MetricsBroken { noSuchField }")
    start = (await gql(http, CREATE_AUTHOR, {"name": "Before the metrics subscription"}))["createAuthor"]
    missing = await post(http, DELETE_AUTHOR, variables={"id": str(uuid.uuid4())})
    assert missing["data"]["deleteAuthor"]["code"] == "NOT_FOUND"
    async with Subscription(TRANSPORT_WS, ws_url, CATALOG_CHANGED, {"after": start["position"]}) as live:
        author = (await gql(http, CREATE_AUTHOR, {"name": "Seen by a metrics subscriber"}))["createAuthor"]
        while (await live.next_data())["catalogChanged"]["entityId"] != author["authorId"]:
            pass
        during = await scrape(anon_http)
    after = await scrape(anon_http)

    def moved(name: str, **labels: str) -> float:
        return after.value(name, **labels) - before.value(name, **labels)

    assert moved(REQUESTS, operation="MetricsHello", outcome="ok") == 5
    assert moved(REQUESTS, operation="MetricsBroken", outcome="error") == 0  # it never ran: not a name
    assert moved(REQUESTS, operation=OTHER, outcome="error") >= 1
    assert moved(COMMANDS, command="CreateAuthor", outcome="ok") >= 2
    assert moved(COMMANDS, command="DeleteAuthor", outcome="NOT_FOUND") == 1
    assert moved("bookworm_events_appended_total", stream_type="Author") >= 2
    assert moved("bookworm_subscription_deliveries_total", topic="catalog") >= 1
    assert during.value("bookworm_subscriptions", topic="catalog") >= 1
    assert after.value("bookworm_database_figures_up") == 1
    assert after.labels("bookworm_lag_events", "kind") == {"relay", "projection", "process"}
    assert after.labels("bookworm_lag_seconds", "consumer") >= {"relay", "catalog"}
    assert after.labels("bookworm_dead_letters", "consumer") >= {"catalog"}


async def test_one_scrape_sums_every_process_of_serve(anon_http: httpx.AsyncClient) -> None:
    figures = await scrape(anon_http)
    api_pool = int(SMALL_POOLS["BOOKWORM_DB_POOL_SIZE"])
    # Each process writes its own pool's size; the scrape, answered by one of them, adds them all up.
    assert figures.value("bookworm_db_pool_max_connections", pool="api") == API_PROCESSES * api_pool
    assert figures.value("bookworm_db_pool_max_connections", pool="worker") == int(
        SMALL_POOLS["BOOKWORM_WORKER_POOL_SIZE"]
    )


async def test_operation_names_stay_bounded(anon_http: httpx.AsyncClient) -> None:
    for n in range(MAX_NAMES * API_PROCESSES + 50):
        assert (await post(anon_http, f"query MetricsFlood{n} {{ __typename }}"))["data"]
    long_name = "M" * 70
    assert (await post(anon_http, f"query {long_name} {{ __typename }}"))["data"]
    assert (await post(anon_http, "{ __typename }"))["data"]
    # A name the document does not have never runs, whatever it is.
    await post(anon_http, "query Real { __typename }", operationName="x" * 1_000)

    labels = (await scrape(anon_http)).labels(REQUESTS, "operation")
    assert len(labels) <= MAX_NAMES * API_PROCESSES + 3  # and (anonymous), (other), (none)
    assert {ANONYMOUS, OTHER} <= labels
    assert long_name not in labels
    assert not any(len(label) > 64 for label in labels)
