"""`bookworm serve` as a supervisor: its API processes all answer on one port, its worker runs the event
flow, a child killed with SIGKILL is restarted, and no child outlives the supervisor or keeps the port."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

from app.embedded.children import alive
from app.metrics.shared import DIRECTORY_VARIABLE
from app.settings import Settings
from app.supervisor import API_COMMAND
from tests.e2e.clients import bearer
from tests.faults.cluster import SMALL_POOLS, START_LIMIT, STOP_LIMIT, Cluster, Proc, admin_token
from tests.faults.conftest import record

CREATE_AUTHOR = """mutation($n: String!) { createAuthor(input: {name: $n}) {
  ... on CreateAuthorSuccess { authorId position } } }"""
# Read-your-writes: the answer waits until the catalog projection, run by the worker, has the author.
CREATE_AUTHOR_AND_READ = """mutation($n: String!) { createAuthor(input: {name: $n}) {
  ... on CreateAuthorSuccess { authorId author { name } } } }"""
TWO = {"BOOKWORM_API_PROCESSES": "2"}


def layout(serve: Proc) -> tuple[list[int], list[int]]:
    """The pids of the supervisor's API processes and of its worker processes."""
    children = {pid: command.split() for pid, command in serve.children().items()}
    api = sorted(pid for pid, args in children.items() if API_COMMAND in args)
    workers = sorted(pid for pid, args in children.items() if args[-1:] == ["worker"])
    return api, workers


def wait_for_layout(
    serve: Proc, apis: int, workers: int, *, replacing: int = 0
) -> tuple[list[int], list[int]]:
    """Wait until the supervisor runs `apis` API and `workers` worker processes, none of them `replacing`."""
    deadline = time.monotonic() + START_LIMIT
    while True:
        api, worker = layout(serve)
        if (len(api), len(worker)) == (apis, workers) and replacing not in api + worker:
            return api, worker
        assert time.monotonic() < deadline, f"children {serve.children()}:\n{serve.log_tail()}"
        time.sleep(0.05)


def graphql(serve: Proc, query: str, name: str) -> dict[str, Any]:
    """Send one mutation as the admin, on a new connection; return its `createAuthor` payload."""
    response = httpx.post(
        f"{serve.url}/graphql",
        json={"query": query, "variables": {"n": name}},
        headers=bearer(admin_token()),
        timeout=30,
    )
    assert response.status_code == 200, response.text
    payload: dict[str, Any] = response.json()["data"]["createAuthor"]
    return payload


def answers(serve: Proc) -> bool:
    """Whether /readyz answers 200 on a new connection, within 5 s."""
    try:
        return httpx.get(f"{serve.url}/readyz", timeout=5).status_code == 200
    except httpx.TransportError:
        return False


@contextmanager
def frozen(pids: list[int]) -> Iterator[None]:
    """SIGSTOP the processes for the block: they hold the listening socket but accept nothing."""
    for pid in pids:
        os.kill(pid, signal.SIGSTOP)
    try:
        yield
    finally:
        for pid in pids:
            os.kill(pid, signal.SIGCONT)


def gone(pids: list[int]) -> bool:
    """Wait until none of the processes runs; return whether that happened within STOP_LIMIT."""
    deadline = time.monotonic() + STOP_LIMIT
    while any(alive(pid) for pid in pids):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def port_is_free(url: str) -> bool:
    """Whether nothing listens on the URL's port: it can be bound again (TIME_WAIT does not count)."""
    port = httpx.URL(url).port
    assert port is not None
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def metric(serve: Proc, name: str, **labels: str) -> float:
    """One figure of /metrics (the sum over every process of `serve`), 0 when it is absent."""
    text = httpx.get(f"{serve.url}/metrics", timeout=5).text
    samples = (sample for family in text_string_to_metric_families(text) for sample in family.samples)
    return sum(sample.value for sample in samples if sample.name == name and sample.labels == labels)


def environment(pid: int) -> dict[str, str]:
    """The environment a process was started with."""
    raw = Path(f"/proc/{pid}/environ").read_bytes().decode(errors="replace")
    return dict(entry.partition("=")[::2] for entry in raw.split("\0") if entry)


def wait_for_metric(serve: Proc, value: float, name: str, **labels: str) -> None:
    """Wait until a figure of /metrics is `value` (each process samples its pools once a second)."""
    deadline = time.monotonic() + START_LIMIT
    while (seen := metric(serve, name, **labels)) != value:
        assert time.monotonic() < deadline, f"{name}{labels} is {seen}, not {value}"
        time.sleep(0.1)


def test_every_api_process_answers_on_the_port_and_the_worker_runs_projections(cluster: Cluster) -> None:
    serve = cluster.api(workers=True, **TWO)
    api, _ = wait_for_layout(serve, apis=2, workers=1)
    for answering in api:
        # Every other API process frozen: only `answering` can accept the connection.
        with frozen([pid for pid in api if pid != answering]):
            assert answers(serve), f"API process {answering} did not answer:\n{serve.log_tail()}"
    payload = graphql(serve, CREATE_AUTHOR_AND_READ, "Ursula K. Le Guin")
    assert payload["author"] == {"name": "Ursula K. Le Guin"}  # the worker process projected it


def niceness(pid: int) -> int:
    """The process's nice value (field 19 of /proc/<pid>/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[16])


def test_the_api_processes_run_below_the_workers_priority(cluster: Cluster) -> None:
    serve = cluster.api(workers=True, **TWO)
    api, worker = wait_for_layout(serve, apis=2, workers=1)
    base = os.getpriority(os.PRIO_PROCESS, 0)
    lowered = [min(19, base + Settings().api_niceness)] * 2
    deadline = time.monotonic() + START_LIMIT  # each API process lowers its own as it starts
    while [niceness(pid) for pid in api] != lowered and time.monotonic() < deadline:
        time.sleep(0.05)
    assert [niceness(pid) for pid in api] == lowered
    assert [niceness(pid) for pid in worker] == [base]


async def test_a_cost_gate_that_is_not_positive_stops_serve_before_any_child_starts(cluster: Cluster) -> None:
    run = await cluster.cli("serve", "--port", "0", BOOKWORM_MAX_RUNNING_COST="0")
    assert run.status == 1
    assert run.stderr.strip().splitlines()[-1] == (
        "bookworm: BOOKWORM_MAX_RUNNING_COST, BOOKWORM_HEAVY_QUERY_COST and BOOKWORM_HEAVY_QUERY_WAIT "
        "must be positive"
    )


async def test_a_niceness_out_of_range_stops_serve_before_any_child_starts(cluster: Cluster) -> None:
    run = await cluster.cli("serve", "--port", "0", BOOKWORM_API_NICENESS="-5")
    assert run.status == 1
    assert run.stderr.strip().splitlines()[-1] == (
        "bookworm: BOOKWORM_API_NICENESS must be 0-19: how much lower the API processes' priority is"
    )


def test_a_killed_api_process_is_restarted_while_the_port_keeps_answering(cluster: Cluster) -> None:
    serve = cluster.api(workers=True, **TWO)
    (killed, survivor), _ = wait_for_layout(serve, apis=2, workers=1)
    os.kill(killed, signal.SIGKILL)
    started, asked, refused = time.monotonic(), 0, 0
    while True:  # ask on a new connection each time until the replacement runs
        asked += 1
        refused += not answers(serve)
        api, _ = layout(serve)
        if len(api) == 2 and killed not in api:
            break
        assert time.monotonic() - started < START_LIMIT, serve.log_tail()
        time.sleep(0.05)
    restarted_after = time.monotonic() - started
    assert survivor in api
    assert refused == 0, f"{refused} of {asked} requests failed while API process {killed} was down"
    assert f"(pid {killed}) exited with signal SIGKILL; restart in 1 s" in serve.log_tail()
    record(
        "supervisor: API process SIGKILL",
        requests_meanwhile=asked,
        failed=refused,
        restarted_after=f"{restarted_after:.1f} s",
    )


def test_the_metrics_of_a_killed_api_process_leave_the_sums_its_counters_stay(cluster: Cluster) -> None:
    serve = cluster.api(workers=True, **TWO)
    (killed, survivor), _ = wait_for_layout(serve, apis=2, workers=1)
    both = 2 * int(SMALL_POOLS["BOOKWORM_DB_POOL_SIZE"])
    wait_for_metric(serve, both, "bookworm_db_pool_max_connections", pool="api")
    for _ in range(10):  # new connections: both processes answer some
        httpx.post(f"{serve.url}/graphql", json={"query": "query Counted { __typename }"}, timeout=5)
    counted = {"operation": "Counted", "outcome": "ok"}
    assert metric(serve, "bookworm_graphql_request_duration_seconds_count", **counted) == 10
    shared = Path(environment(killed)[DIRECTORY_VARIABLE])
    assert (shared / f"gauge_livesum_{killed}.db").exists()

    os.kill(killed, signal.SIGKILL)
    api, _ = wait_for_layout(serve, apis=2, workers=1, replacing=killed)
    (replacement,) = set(api) - {survivor}
    deadline = time.monotonic() + START_LIMIT
    while not (shared / f"gauge_livesum_{replacement}.db").exists():  # it has sampled its pool
        assert time.monotonic() < deadline, serve.log_tail()
        time.sleep(0.05)
    # The dead process's gauges left the sums; its counters stayed in the totals.
    assert not (shared / f"gauge_livesum_{killed}.db").exists()
    wait_for_metric(serve, both, "bookworm_db_pool_max_connections", pool="api")
    assert metric(serve, "bookworm_graphql_request_duration_seconds_count", **counted) == 10


async def test_a_killed_worker_is_restarted_and_events_keep_flowing(cluster: Cluster) -> None:
    serve = cluster.api(workers=True, **TWO)
    _, (worker,) = await asyncio.to_thread(wait_for_layout, serve, apis=2, workers=1)
    os.kill(worker, signal.SIGKILL)
    started = time.monotonic()
    # The command side answers without the worker; the event waits for the restarted one.
    during = await asyncio.to_thread(graphql, serve, CREATE_AUTHOR, "Written while the worker was down")
    assert during["position"]
    await asyncio.to_thread(wait_for_layout, serve, apis=2, workers=1, replacing=worker)
    caught_up = await cluster.caught_up(limit=START_LIMIT)
    assert f"worker (pid {worker}) exited with signal SIGKILL; restart in 1 s" in serve.log_tail()
    payload = await asyncio.to_thread(graphql, serve, CREATE_AUTHOR_AND_READ, "Octavia E. Butler")
    assert payload["author"] == {"name": "Octavia E. Butler"}
    record(
        "supervisor: worker SIGKILL",
        projections_caught_up_after=f"{time.monotonic() - started:.1f} s (last wait {caught_up:.1f} s)",
    )


def test_sigterm_stops_every_child_and_frees_the_port(cluster: Cluster) -> None:
    serve = cluster.api(**TWO)  # --no-workers: API processes only
    api, workers = wait_for_layout(serve, apis=2, workers=0)
    assert workers == []
    serve.process.send_signal(signal.SIGTERM)
    assert serve.process.wait(STOP_LIMIT) == 0, serve.log_tail()
    assert gone(api), f"API processes {api} outlived the supervisor"
    assert port_is_free(serve.url)
    assert "Traceback" not in serve.log_tail()


def test_the_children_of_a_sigkilled_supervisor_exit_and_free_the_port(cluster: Cluster) -> None:
    serve = cluster.api(workers=True, **TWO)
    api, workers = wait_for_layout(serve, apis=2, workers=1)
    serve.kill()  # no handler runs: only the kernel's parent-death signal reaches the children
    assert gone(api + workers), f"children {api + workers} outlived their SIGKILLed supervisor"
    assert port_is_free(serve.url)
