"""GET /metrics: every process's recorded metrics, summed, and the figures read from PostgreSQL.

Under `bookworm serve` each process writes its metrics to files in the directory PROMETHEUS_MULTIPROC_DIR
names (app/metrics/shared.py); a scrape reaches whichever API process accepts it, and that process reads
every file, so one scrape sees the whole `serve`: every API process and the worker. Without the variable
(an application built in a test) the metrics are this process's alone.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterable

from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest
from prometheus_client.metrics_core import Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from app.metrics.database import DatabaseFigures
from app.metrics.shared import DIRECTORY_VARIABLE
from app.settings import Settings


class _Recorded(Collector):
    """The metrics this process recorded (its default registry), when no directory is shared."""

    def collect(self) -> Iterable[Metric]:
        return REGISTRY.collect()


class _Read(Collector):
    """Figures read for this scrape."""

    def __init__(self, families: list[Metric]) -> None:
        self._families = families

    def collect(self) -> Iterable[Metric]:
        return self._families


def metrics_routes(settings: Settings) -> list[Route]:
    """Return the /metrics route, or none when BOOKWORM_METRICS is false."""
    if not settings.metrics:
        return []
    figures = DatabaseFigures()

    async def metrics(request: Request) -> Response:
        """Answer with every metric in Prometheus's text format."""
        read = await figures.read(request.state.container.pool)
        body = await asyncio.to_thread(exposition, read)  # reads every process's file: not on the loop
        return Response(body, media_type=CONTENT_TYPE_LATEST)

    return [Route("/metrics", metrics, methods=["GET"])]


def exposition(read: list[Metric]) -> bytes:
    """Encode the recorded metrics (of every process, when a directory is shared) and `read`."""
    registry = CollectorRegistry(auto_describe=False)
    directory = os.environ.get(DIRECTORY_VARIABLE)
    if directory:
        MultiProcessCollector(registry, path=directory)  # type: ignore[no-untyped-call]
    else:
        registry.register(_Recorded())
    registry.register(_Read(read))
    return generate_latest(registry)
