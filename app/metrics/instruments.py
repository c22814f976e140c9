"""Every metric a process records, and the calls that record them (docs/operations.md, "Metrics").

Each metric has labels, so defining it here opens nothing: in multiprocess mode a labelled metric maps
its file only when a first value is recorded. Every label value comes from a bounded set: names the
server defines (commands, stream types, consumers, reasons, topic kinds) or an operation label that
app/metrics/names.py bounds. A recording call looks up its labelled child in a dict of its own, which
costs a fraction of prometheus-client's `labels()`.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Generic, TypeVar

from prometheus_client import Counter, Gauge, Histogram

# Seconds: a read answered from memory takes about a millisecond, a mutation a few.
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
OK = "ok"
ERROR = "error"

REQUESTS = Histogram(
    "bookworm_graphql_request_duration_seconds",
    "GraphQL requests over HTTP by operation and outcome (ok, or error: a status of 400 or more or any "
    "GraphQL error), from the request's arrival to its answer's last byte.",
    ["operation", "outcome"],
    buckets=LATENCY_BUCKETS,
)
COMMANDS = Histogram(
    "bookworm_command_duration_seconds",
    "Commands run by the command bus by command and outcome (ok, a domain error code, or error).",
    ["command", "outcome"],
    buckets=LATENCY_BUCKETS,
)
EVENTS_APPENDED = Counter(
    "bookworm_events_appended",
    "Events appended to the event store, by stream type.",
    ["stream_type"],
)
PARKED = Counter(
    "bookworm_dead_letters_parked",
    "Events a consumer parked as dead letters, by consumer.",
    ["consumer"],
)
REFUSALS = Counter(
    "bookworm_refusals",
    "Requests, operations and connections refused by a limit, by reason.",
    ["reason"],
)
SUBSCRIPTIONS = Gauge(
    "bookworm_subscriptions",
    "Live GraphQL subscriptions, by topic kind.",
    ["topic"],
    multiprocess_mode="livesum",
)
DELIVERIES = Counter(
    "bookworm_subscription_deliveries",
    "Change notices handed to subscriptions for sending, by topic kind.",
    ["topic"],
)
POOL_CONNECTIONS = Gauge(
    "bookworm_db_pool_connections",
    "PostgreSQL connections of the pools, by pool (api, worker) and state (in_use, idle).",
    ["pool", "state"],
    multiprocess_mode="livesum",
)
POOL_MAX = Gauge(
    "bookworm_db_pool_max_connections",
    "The most PostgreSQL connections the pools may open, by pool.",
    ["pool"],
    multiprocess_mode="livesum",
)

M = TypeVar("M", Counter, Gauge, Histogram)


class _Children(Generic[M]):
    """A metric's labelled children, looked up by a plain dict before prometheus-client's `labels()`."""

    def __init__(self, metric: M) -> None:
        self._metric: M = metric
        self._children: dict[tuple[str, ...], M] = {}

    def __call__(self, *labels: str) -> M:
        child = self._children.get(labels)
        if child is None:
            child = self._children[labels] = self._metric.labels(*labels)
        return child


_requests = _Children(REQUESTS)
_commands = _Children(COMMANDS)
_events = _Children(EVENTS_APPENDED)
_parked = _Children(PARKED)
_refusals = _Children(REFUSALS)
_subscriptions = _Children(SUBSCRIPTIONS)
_deliveries = _Children(DELIVERIES)


def request_answered(operation: str, failed: bool, seconds: float) -> None:
    """Record one GraphQL request over HTTP."""
    _requests(operation, ERROR if failed else OK).observe(seconds)


def command_done(command: str, outcome: str, seconds: float) -> None:
    """Record one command the bus ran: `ok`, the code of the domain error it raised, or `error`."""
    _commands(command, outcome).observe(seconds)


def events_appended(stream_type: str, count: int) -> None:
    """Record events one append statement wrote."""
    _events(stream_type).inc(count)


def parked(consumer: str) -> None:
    """Record an event `consumer` parked."""
    _parked(consumer).inc()


def refused(reason: str) -> None:
    """Record a refusal by a limit (a budget, a queue, a connection cap)."""
    _refusals(reason).inc()


@contextmanager
def subscription(topic_kind: str) -> Iterator[None]:
    """Count a live subscription of `topic_kind` while the block runs."""
    gauge = _subscriptions(topic_kind)
    gauge.inc()
    try:
        yield
    finally:
        gauge.dec()


def delivered(topic_kind: str, count: int = 1) -> None:
    """Record `count` change notices handed to subscriptions of `topic_kind`."""
    if count:
        _deliveries(topic_kind).inc(count)
