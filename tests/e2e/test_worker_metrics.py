"""GET /metrics of a `bookworm worker` run apart (`--metrics-port`): its own figures, nothing but that
path, and bounds a hostile client meets (head size, connections)."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from app.metrics.alone import CONNECTIONS, HEAD_LIMIT
from app.settings import Settings
from tests.faults.cluster import Cluster

pytestmark = pytest.mark.e2e


async def test_a_worker_run_apart_answers_its_own_metrics(worker: str) -> None:
    async with httpx.AsyncClient(base_url=worker, timeout=5) as http:
        scrape = await http.get("/metrics")
        missing, posted = await http.get("/graphql"), await http.post("/metrics")
    assert scrape.headers["content-type"].startswith("text/plain")
    samples = {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(scrape.text)
        for sample in family.samples
    }
    pools = {dict(labels)["pool"] for name, labels in samples if name == "bookworm_db_pool_max_connections"}
    assert pools == {"worker"}  # its own pool; a worker opens no API pool
    assert samples[("bookworm_db_pool_max_connections", (("pool", "worker"),))] > 0
    assert (missing.status_code, posted.status_code) == (404, 405)


async def test_a_head_too_large_or_too_many_connections_get_no_answer(worker: str) -> None:
    port = int(worker.rsplit(":", 1)[1])
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET /metrics HTTP/1.1\r\nX-Padding: " + b"a" * HEAD_LIMIT * 2 + b"\r\n\r\n")
    assert await _answer(reader) == b""
    writer.close()
    idle = [await asyncio.open_connection("127.0.0.1", port) for _ in range(CONNECTIONS)]
    await asyncio.sleep(0.5)  # the server has taken each of them: they hold every turn, saying nothing
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET /metrics HTTP/1.0\r\n\r\n")
    assert await _answer(reader) == b""  # one past the cap: closed unanswered
    writer.close()
    for _, held in idle:
        held.close()
    async with httpx.AsyncClient(base_url=worker, timeout=10) as http:
        assert (await http.get("/metrics")).status_code == 200


async def _answer(reader: asyncio.StreamReader) -> bytes:
    """What the server sent before closing; a close with our request unread (a reset) sent nothing."""
    try:
        return await asyncio.wait_for(reader.read(), 15)
    except ConnectionResetError:
        return b""


async def test_a_taken_metrics_port_is_one_line(
    make_settings: Callable[[], Settings], tmp_path: Path
) -> None:
    cluster = Cluster(make_settings(), tmp_path)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        run = await cluster.cli("worker", "--metrics-port", str(taken.getsockname()[1]))
    assert run.status == 1
    assert run.stderr.strip().startswith("bookworm: cannot answer /metrics on 127.0.0.1:"), run.stderr
    assert "Traceback" not in run.stderr
