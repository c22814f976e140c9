"""A real Prometheus scrapes the e2e `serve` and a worker run apart with deploy/prometheus.yml (only its
targets and interval changed), and every query of the Grafana dashboard is PromQL it accepts; the request
and command panels show the traffic.

Needs Debian's `prometheus` package (`prometheus` and `promtool`): without it the module skips, unless
BOOKWORM_TEST_REQUIRE_PROMETHEUS=1 (.ci/run sets it), where it fails.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from app.metrics.names import OTHER
from tests.conftest import ROOT
from tests.e2e.clients import gql
from tests.e2e.conftest import CREATE_AUTHOR
from tests.e2e.process import free_port, stop, wait_ready
from tests.unit.test_dashboard import DASHBOARD

pytestmark = pytest.mark.e2e

CONFIG = ROOT / "deploy" / "prometheus.yml"
REQUIRED = os.environ.get("BOOKWORM_TEST_REQUIRE_PROMETHEUS") == "1"
SCRAPE_INTERVAL = "1s"
SCRAPE_WAIT = 30.0  # seconds for Prometheus to scrape twice more, at 1 s, on a busy two-core machine
TOOL_TIMEOUT = 30.0  # seconds for promtool
# What Grafana puts in the queries with the profile's datasource (no scrape interval set: Grafana assumes
# 15 s) and the dashboard's range (the last hour): $__rate_interval is at least four scrape intervals.
GRAFANA_VARIABLES = {"$__rate_interval": "1m", "$__interval": "15s", "$__range": "1h"}
SHOWS_TRAFFIC = ("Requests", "Commands and events")  # rows whose every panel must show the traffic
OPERATION = "PrometheusScrape"
SHOWN = {  # panel title: the labels of series one of which the traffic makes rise
    # Each API process labels the first 100 operation names it runs and counts later ones as (other):
    # after other tests, the process a request lands on may have no room left for this one's name.
    "Request rate by operation": ({"operation": OPERATION}, {"operation": OTHER}),
    "Errors by operation": ({"operation": OTHER},),
    "Commands by outcome": ({"command": "CreateAuthor", "outcome": "ok"},),
    "Events appended by stream type": ({"stream_type": "Author"},),
}


@pytest.fixture(scope="module")
def tools() -> dict[str, str]:
    """The paths of `prometheus` and `promtool`; skips (fails, in CI) the module without them."""
    found = {name: shutil.which(name) for name in ("prometheus", "promtool")}
    missing = [name for name, path in found.items() if path is None]
    if missing:
        reason = f"{' and '.join(missing)} not on PATH: install Debian's `prometheus` (.ci/run does)"
        if REQUIRED:
            pytest.fail(f"BOOKWORM_TEST_REQUIRE_PROMETHEUS=1 but {reason}")
        pytest.skip(reason)
    return {name: path for name, path in found.items() if path}


def check_config(tools: dict[str, str], path: Path) -> None:
    command = [tools["promtool"], "check", "config", str(path)]
    run = subprocess.run(command, capture_output=True, text=True, timeout=TOOL_TIMEOUT)
    assert run.returncode == 0, run.stdout + run.stderr


def address(url: str) -> str:
    return url.removeprefix("http://")


def scraping(targets: list[str]) -> dict[str, Any]:
    """deploy/prometheus.yml with these targets (host:port) instead of its own, scraped every second."""
    config: dict[str, Any] = yaml.safe_load(CONFIG.read_text())
    config["global"] = {**config["global"], "scrape_interval": SCRAPE_INTERVAL}
    for job in config["scrape_configs"]:
        for static in job["static_configs"]:
            static["targets"] = targets
    return config


@pytest.fixture
def prometheus(tools: dict[str, str], server: str, worker: str, tmp_path: Path) -> Iterator[str]:
    """A `prometheus` scraping the e2e server and a worker run apart, once ready; yields its base URL."""
    config, log = tmp_path / "prometheus.yml", tmp_path / "prometheus.log"
    config.write_text(yaml.safe_dump(scraping([address(server), address(worker)])))
    check_config(tools, config)
    listen = f"127.0.0.1:{free_port()}"
    with log.open("wb") as output:
        process = subprocess.Popen(
            [
                tools["prometheus"],
                f"--config.file={config}",
                f"--storage.tsdb.path={tmp_path / 'data'}",
                f"--web.listen-address={listen}",
            ],
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_ready(f"http://{listen}", process, log, path="/-/ready", name="prometheus")
        yield f"http://{listen}"
    finally:
        stop(process)


def panels() -> Iterator[tuple[str, dict[str, Any]]]:
    """Each panel with a query, and the title of the row it is in (collapsed rows hold their panels)."""
    row = ""
    for panel in json.loads(DASHBOARD.read_text())["panels"]:
        if panel["type"] == "row":
            row = panel["title"]
            yield from ((row, inner) for inner in panel.get("panels", []))
        else:
            yield row, panel


def promql(expr: str) -> str:
    """The query Grafana sends for `expr`: its variables replaced by values."""
    for variable, value in GRAFANA_VARIABLES.items():
        expr = expr.replace(variable, value).replace("${" + variable[1:] + "}", value)
    assert "$" not in expr, f"{expr}: give its variable a value in GRAFANA_VARIABLES"
    return expr


async def query(prom: httpx.AsyncClient, expr: str) -> list[dict[str, Any]]:
    """The result of an instant query; fails the test unless Prometheus accepts it."""
    response = await prom.get("/api/v1/query", params={"query": expr})
    body: dict[str, Any] = response.json()
    assert body["status"] == "success", f"{expr}: {body.get('errorType')}: {body.get('error')}"
    result: list[dict[str, Any]] = body["data"]["result"]
    return result


async def scraped_twice_since(prom: httpx.AsyncClient, since: float) -> None:
    """Wait until Prometheus has scraped every target twice after `since` (a time.time())."""
    deadline = time.monotonic() + SCRAPE_WAIT
    while True:
        series = await query(prom, 'up{job="bookworm"}[1m]')
        if series and all(sum(t > since for t, _ in s["values"]) >= 2 for s in series):
            return
        if time.monotonic() > deadline:
            targets = (await prom.get("/api/v1/targets")).json()["data"]["activeTargets"]
            pytest.fail(f"not scraped twice within {SCRAPE_WAIT:g} s: {targets}")
        await asyncio.sleep(0.2)  # polling another process: there is no event to wait on


async def make_traffic(http: httpx.AsyncClient, anon_http: httpx.AsyncClient, n: int) -> None:
    """Queries, a query that fails and a mutation as admin."""
    for _ in range(3):
        assert (await gql(anon_http, f"query {OPERATION} {{ __typename }}"))["__typename"] == "Query"
    broken = await anon_http.post("/graphql", json={"query": "query PrometheusBroken { noSuchField }"})
    assert "errors" in broken.json()
    author = await gql(http, CREATE_AUTHOR, {"name": f"Scraped by Prometheus {n}"})
    assert author["createAuthor"]["__typename"] == "CreateAuthorSuccess"


def test_promtool_accepts_the_profiles_config(tools: dict[str, str]) -> None:
    check_config(tools, CONFIG)


async def test_every_dashboard_query_runs_and_the_traffic_shows(
    prometheus: str, server: str, worker: str, http: httpx.AsyncClient, anon_http: httpx.AsyncClient
) -> None:
    async with httpx.AsyncClient(base_url=prometheus, timeout=10) as prom:
        # Two rounds, each scraped twice: the series exist before the second, so their rates rise.
        for n in range(2):
            await make_traffic(http, anon_http, n)
            done = time.time()
            await scraped_twice_since(prom, done)

        up = await query(prom, 'up{job="bookworm"}')
        assert {(s["metric"]["instance"], s["value"][1]) for s in up} == {
            (address(server), "1"),
            (address(worker), "1"),
        }
        results = {}
        for row, panel in panels():
            for target in panel.get("targets", []):
                results[panel["title"], target["expr"]] = row, await query(prom, promql(target["expr"]))

    empty = [title for (title, _), (row, result) in results.items() if row in SHOWS_TRAFFIC and not result]
    assert not empty, f"panels showing nothing after the traffic: {empty}"
    titles = {title for title, _ in results}
    assert set(SHOWN) <= titles, f"panels renamed or gone: {set(SHOWN) - titles}"
    for (title, _), (_, result) in results.items():
        if title in SHOWN:
            labels = SHOWN[title]
            values = [
                float(s["value"][1]) for s in result if any(a.items() <= s["metric"].items() for a in labels)
            ]
            assert any(value > 0 for value in values), f"{title}: none of {labels} rising in {result}"
