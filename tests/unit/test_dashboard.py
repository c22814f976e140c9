"""The Grafana dashboard asks only for metrics the server defines; the compose profile's files parse."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from prometheus_client.metrics import MetricWrapperBase
from prometheus_client.metrics_core import Metric

from app.metrics import instruments
from app.metrics.database import _up, families
from tests.conftest import ROOT

DASHBOARD = ROOT / "deploy" / "grafana" / "bookworm.json"
YAML_FILES = [
    ROOT / "compose.yaml",
    ROOT / "deploy" / "prometheus.yml",
    ROOT / "deploy" / "otel-collector.yaml",
    *sorted((ROOT / "deploy" / "grafana" / "provisioning").glob("*/*.yaml")),
]
METRIC = re.compile(r"\bbookworm_[a-z0-9_]+")
SUFFIXES = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count"), "gauge": ("",)}


def defined_metrics() -> list[Metric]:
    """Every metric /metrics can show: the recorded instruments and the figures read from PostgreSQL."""
    recorded = [m for m in vars(instruments).values() if isinstance(m, MetricWrapperBase)]
    return [*(d for m in recorded for d in m.describe()), *families([], [], 1), _up(True)]


def series_names() -> set[str]:
    """The series names of those metrics: `_total` on counters, `_bucket`, `_sum`, `_count` on histograms."""
    return {metric.name + suffix for metric in defined_metrics() for suffix in SUFFIXES[metric.type]}


def expressions() -> list[str]:
    panels = json.loads(DASHBOARD.read_text())["panels"]
    return [target["expr"] for panel in panels for target in panel.get("targets", [])]


def test_the_dashboard_shows_every_metric() -> None:
    asked = {name for expr in expressions() for name in METRIC.findall(expr)}
    shown = {re.sub(r"_(total|bucket|sum|count)$", "", name) for name in asked}

    assert {metric.name for metric in defined_metrics()} <= shown


@pytest.mark.parametrize("expr", expressions())
def test_every_query_names_only_metrics_that_exist(expr: str) -> None:
    unknown = set(METRIC.findall(expr)) - series_names()

    assert not unknown, f"{expr} asks for metrics /metrics never shows: {sorted(unknown)}"


def test_every_panel_has_a_unique_id() -> None:
    panels = json.loads(DASHBOARD.read_text())["panels"]
    ids = [panel["id"] for panel in panels]

    assert len(ids) == len(set(ids))


@pytest.mark.parametrize("path", YAML_FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_the_observability_files_parse(path: Path) -> None:
    yaml = pytest.importorskip("yaml", reason="PyYAML is not installed")

    assert isinstance(yaml.safe_load(path.read_text()), dict)


def test_prometheus_scrapes_every_api_service_and_worker_of_compose_on_its_port() -> None:
    yaml = pytest.importorskip("yaml", reason="PyYAML is not installed")
    compose = yaml.safe_load((ROOT / "compose.yaml").read_text())
    prometheus = yaml.safe_load((ROOT / "deploy" / "prometheus.yml").read_text())
    targets = {t for job in prometheus["scrape_configs"] for c in job["static_configs"] for t in c["targets"]}
    scraped = {}
    for name, service in compose["services"].items():
        command = service.get("command", [])
        if "serve" in command:
            scraped[name] = command[command.index("--port") + 1]
        elif "worker" in command:
            scraped[name] = command[command.index("--metrics-port") + 1]

    assert targets == {f"{name}:{port}" for name, port in scraped.items()}


def test_the_profile_services_start_only_with_the_profile() -> None:
    yaml = pytest.importorskip("yaml", reason="PyYAML is not installed")
    services = yaml.safe_load((ROOT / "compose.yaml").read_text())["services"]

    assert {name for name, s in services.items() if "observability" in s.get("profiles", [])} == {
        "otel-collector",
        "jaeger",
        "prometheus",
        "grafana",
    }


def test_the_env_file_sends_spans_to_the_collector_of_the_profile() -> None:
    yaml = pytest.importorskip("yaml", reason="PyYAML is not installed")
    lines = (ROOT / "deploy" / "observability.env").read_text().splitlines()
    env = dict(line.split("=", 1) for line in lines if line and not line.startswith("#"))
    collector = yaml.safe_load((ROOT / "deploy" / "otel-collector.yaml").read_text())
    http = collector["receivers"]["otlp"]["protocols"]["http"]["endpoint"]

    assert env["OTEL_EXPORTER_OTLP_ENDPOINT"] == f"http://otel-collector:{http.rpartition(':')[2]}"
    assert env["BOOKWORM_LOG_FORMAT"] == "json"
