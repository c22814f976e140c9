"""Scenarios 2 and 3: Redis killed and restarted empty, Redis unreachable, PostgreSQL restarted, under load.

Mutations need PostgreSQL only, so a Redis outage may slow the projections down but must fail no
mutation. A PostgreSQL restart may fail the requests that meet it, but each with a typed UNAVAILABLE
answer within a bound (never a hang, a trace or SQL), and the API must recover by itself.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import httpx
import pytest
from graphql import GraphQLError
from websockets.asyncio.client import connect
from websockets.exceptions import WebSocketException
from websockets.typing import Subprotocol

from app.aio import cancel_and_wait
from app.db import is_postgres_down
from app.schema.extensions import PublicErrors
from tests.e2e.clients import TRANSPORT_WS, bearer
from tests.faults.cluster import Cluster, PrivatePostgres, PrivateValkey, Proc, admin_token
from tests.faults.conftest import Profile, record
from tests.faults.traffic import (
    CATALOG_CHANGED,
    CREATE_BOOK,
    Load,
    Refs,
    Watcher,
    check_watched,
    make_refs,
)

FROZEN_SOAK = 10.0  # the "Redis unreachable for 10 s"
FROZEN_CI = 3.0
ANSWER_BOUND = 10.0  # every request meeting an outage is answered within this many seconds
RECOVERY_LIMIT = 60.0
UNAVAILABLE = "UNAVAILABLE"
CONFLICT = "CONFLICT"
# Words that must never reach a client: a Python trace, a driver's name, SQL.
LEAKS = ("Traceback", 'File "', "asyncpg", "redis.", "SELECT ", "INSERT ", "UPDATE ", "eventstore.")
BOOKS = "{ books(first: 1) { totalCount } }"


@dataclass
class Scene:
    """One deployment under the steady load, with a resuming subscriber watching it."""

    cluster: Cluster
    api: Proc
    refs: Refs
    load: Load
    loading: asyncio.Task[None]
    watcher: Watcher
    watching: asyncio.Task[None]


@asynccontextmanager
async def under_load(cluster: Cluster, profile: Profile) -> AsyncIterator[Scene]:
    """Start an API, a worker, a resuming subscriber and the load; stop the load and subscriber at the end."""
    api = cluster.api()
    cluster.worker()
    token = admin_token()
    refs = await make_refs(api.url, token)
    # The worker is up (it refuses to start while Redis is down) once it has projected the refs.
    await projections_reach_head(cluster)
    watcher = Watcher([api.ws_url], after=refs.position)
    watching = asyncio.create_task(watcher.run())
    load = Load([api.url], token, refs, profile.rate, profile.clients)
    loading = asyncio.create_task(load.run(profile.seconds))
    try:
        yield Scene(cluster, api, refs, load, loading, watcher, watching)
    finally:
        await cancel_and_wait([loading, watching])


async def settle(scene: Scene, scenario: str, **figures: object) -> None:
    """After the load: projections catch up, verify passes, the subscriber got every change once; record."""
    cluster = scene.cluster
    await scene.loading
    caught_up = await cluster.caught_up()
    verified = await cluster.verify()
    expected = await check_watched(cluster.settings.database_url or "", scene.watcher, scene.refs.position)
    written = await cluster.count("SELECT count(*) FROM eventstore.events")
    record(
        scenario,
        **figures,
        events_written=written,
        events_verified=verified,
        changes_received=f"{len(scene.watcher.received)} of {len(expected)} "
        f"({scene.watcher.reconnects} resumes)",
        caught_up_after_load=f"{caught_up:.2f} s",
    )


async def projections_reach_head(cluster: Cluster) -> float:
    """Wait until every projection has applied what the event store holds now; return the seconds taken."""
    start = time.monotonic()
    conn = await asyncpg.connect(cluster.settings.database_url)
    try:
        head = await conn.fetchrow(
            "SELECT transaction_id::text::bigint, global_position FROM eventstore.events "
            "WHERE transaction_id < (SELECT eventstore.commit_horizon()) "
            "ORDER BY transaction_id DESC, global_position DESC LIMIT 1"
        )
        behind = "SELECT count(*) FROM read.projections WHERE (transaction_id, global_position) < ($1, $2)"
        while await conn.fetchval(behind, head[0], head[1]):
            assert time.monotonic() - start < RECOVERY_LIMIT, f"projections behind after {RECOVERY_LIMIT} s"
            await asyncio.sleep(0.05)
    finally:
        await conn.close()
    return time.monotonic() - start


def fault_moment(profile: Profile) -> float:
    """Seconds into the load when the fault starts: late enough that the load runs steadily."""
    return random.uniform(0.2, 0.35) * profile.seconds


async def kill_and_restart(valkey: PrivateValkey, profile: Profile) -> tuple[str, str]:
    """SIGKILL Redis, and start it again, empty, a moment later; name the scenario and the outage."""
    await asyncio.to_thread(valkey.kill)
    down = random.uniform(0.5, 1.5)
    await asyncio.sleep(down)
    await asyncio.to_thread(valkey.start)
    return "2a Redis SIGKILL, restarted empty", f"down {down:.1f} s"


async def freeze(valkey: PrivateValkey, profile: Profile) -> tuple[str, str]:
    """Make Redis unreachable (SIGSTOP: connections stay open, nothing answers), then thaw it."""
    frozen = FROZEN_SOAK if profile.soak else FROZEN_CI
    with valkey.frozen():
        await asyncio.sleep(frozen)
    return "2b Redis unreachable (SIGSTOP)", f"unreachable {frozen:g} s"


@pytest.mark.parametrize("outage", [kill_and_restart, freeze])
async def test_redis_outage_fails_no_mutation(
    private_cluster: Cluster,
    valkey: PrivateValkey,
    profile: Profile,
    outage: Callable[[PrivateValkey, Profile], Awaitable[tuple[str, str]]],
) -> None:
    async with under_load(private_cluster, profile) as scene:
        await asyncio.sleep(fault_moment(profile))
        scenario, redis = await outage(valkey, profile)
        recovered = await projections_reach_head(private_cluster)
        await scene.loading
        assert scene.load.failures() == {}, scene.load.outcomes
        await settle(
            scene,
            scenario,
            mutations=scene.load.summary(),
            redis=redis,
            projections_caught_up_after_redis_returned=f"{recovered:.2f} s",
        )


@dataclass(frozen=True)
class Answer:
    """One probe request: when it went out, how long it took, and what kind of answer it got."""

    kind: str  # mutation, query or subscription
    sent: float  # time.monotonic()
    seconds: float
    outcome: str  # ok, UNAVAILABLE, or what went wrong

    @property
    def done(self) -> float:
        return self.sent + self.seconds


@dataclass
class Probe:
    """A mutation and a query, again and again, each answered within ANSWER_BOUND or counted as a hang."""

    url: str
    token: str
    refs: Refs
    answers: list[Answer] = field(default_factory=list)

    async def run(self) -> None:
        async with httpx.AsyncClient(
            base_url=self.url, headers=bearer(self.token), timeout=ANSWER_BOUND
        ) as http:
            for n in range(1_000_000):
                refs = self.refs
                book = {"name": f"Probe book {n}", "price": "9.99", "categoryId": refs.category_id,
                        "publisherId": refs.publisher_id, "authorIds": [refs.author_id]}  # fmt: skip
                await asyncio.gather(
                    self._ask(http, "mutation", {"query": CREATE_BOOK, "variables": {"input": book}}),
                    self._ask(http, "query", {"query": BOOKS}),
                )
                await asyncio.sleep(0.05)

    async def _ask(self, http: httpx.AsyncClient, kind: str, body: dict[str, Any]) -> None:
        sent = time.monotonic()
        try:
            response = await http.post("/graphql", json=body)
            outcome = classify(response.text)
        except httpx.TimeoutException:
            outcome = f"no answer within {ANSWER_BOUND:g} s"
        except httpx.TransportError as exc:
            outcome = f"transport: {type(exc).__name__}"
        self.answers.append(Answer(kind, sent, time.monotonic() - sent, outcome))

    def outcomes(self, since: float, until: float) -> Counter[str]:
        """Count the answers to requests sent in [since, until) by kind and outcome."""
        return Counter(f"{a.kind}: {a.outcome}" for a in self.answers if since <= a.sent < until)

    def first_success(self, kind: str, since: float) -> float:
        """Seconds from `since` until the first request of `kind` sent after it succeeded."""
        done = [a.done for a in self.answers if a.kind == kind and a.sent >= since and a.outcome == "ok"]
        assert done, f"no {kind} succeeded after {since}: {self.outcomes(since, time.monotonic())}"
        return min(done) - since


def classify(text: str) -> str:
    """ok, the typed UNAVAILABLE answer, or a description of what is wrong with the answer."""
    leaked = [word for word in LEAKS if word in text]
    if leaked:
        return f"leaked {leaked}: {text[:300]}"
    try:
        payload = json.loads(text)
    except json.JSONDecodeError:
        return f"not JSON: {text[:200]}"
    errors: list[dict[str, Any]] = payload.get("errors") or []
    if errors:
        return ",".join(sorted({e.get("extensions", {}).get("code", "no code") for e in errors}))
    result = next(iter((payload.get("data") or {}).values()), None)
    typename = result.get("__typename", "") if isinstance(result, dict) else ""
    return "ok" if not typename or typename.endswith("Success") else typename


async def probe_subscription(ws_url: str, after: str) -> Answer:
    """Subscribe with `after` once: its first message (a change or a typed error) comes within the bound."""
    sent = time.monotonic()
    operation = {"query": CATALOG_CHANGED, "variables": {"after": after}}
    try:
        async with asyncio.timeout(ANSWER_BOUND):
            async with connect(ws_url, subprotocols=[Subprotocol(TRANSPORT_WS)]) as ws:
                await ws.send(json.dumps({"type": "connection_init", "payload": {}}))
                await ws.recv()
                await ws.send(json.dumps({"id": "1", "type": "subscribe", "payload": operation}))
                message = json.loads(await ws.recv())
        if message["type"] == "next" and not message["payload"].get("errors"):
            outcome = "ok"
        elif message["type"] == "error":  # graphql-transport-ws sends the bare list of errors
            outcome = classify(json.dumps({"errors": message["payload"]}))
        else:
            outcome = classify(json.dumps(message["payload"]))
    except TimeoutError:
        outcome = f"no answer within {ANSWER_BOUND:g} s"
    except (OSError, WebSocketException) as exc:
        outcome = f"transport: {type(exc).__name__}"
    return Answer("subscription", sent, time.monotonic() - sent, outcome)


async def test_postgres_restart_answers_unavailable_then_recovers(
    private_cluster: Cluster, postgres: PrivatePostgres, profile: Profile
) -> None:
    async with under_load(private_cluster, profile) as scene:
        probe = Probe(scene.api.url, admin_token(), scene.refs)
        probing = asyncio.create_task(probe.run())
        await asyncio.sleep(fault_moment(profile))
        stopped = time.monotonic()
        await asyncio.to_thread(postgres.stop)
        subscribing = asyncio.create_task(probe_subscription(scene.api.ws_url, scene.refs.position))
        await asyncio.sleep(random.uniform(1.0, 2.0))
        await asyncio.to_thread(postgres.start)
        started = time.monotonic()
        mutation_back = await _eventually(lambda: probe.first_success("mutation", started))
        query_back = await _eventually(lambda: probe.first_success("query", started))
        recovered = await projections_reach_head(private_cluster)
        await scene.loading
        await cancel_and_wait([probing])
        subscription = await subscribing
        during = probe.outcomes(stopped, started)
        _assert_answers_typed(during, subscription, scene.load)
        slowest = max(a.seconds for a in probe.answers)
        assert slowest < ANSWER_BOUND
        await settle(
            scene,
            "3 PostgreSQL restart",
            mutations=scene.load.summary(),
            unavailable_answers=sum(scene.load.failures().values()),
            postgres_down=f"{started - stopped:.1f} s",
            probe_during_outage=dict(during),
            slowest_answer=f"{slowest:.2f} s",
            subscription_during_outage=f"{subscription.outcome} in {subscription.seconds:.2f} s",
            first_mutation_after_start=f"{mutation_back:.2f} s",
            first_query_after_start=f"{query_back:.2f} s",
            projections_caught_up_after_start=f"{recovered:.2f} s",
        )


def _assert_answers_typed(probed: Counter[str], subscription: Answer, load: Load) -> None:
    """Every request of the probe, the subscription and the load got a success or a typed UNAVAILABLE."""
    assert _untyped(probed) == {}, probed
    assert _untyped(Counter({f"subscription: {subscription.outcome}": 1})) == {}, subscription
    # The load counts "http <status>: <codes>" or "transport: <error>"; a timeout there is a hang.
    loaded = Counter({f"load: {kind.split(': ')[-1]}": n for kind, n in load.failures().items()})
    # Also typed, and no outage leak: the requests held up by the restart arrive together, so an
    # updateBook of a popular book may lose the version race three times (the bus's retries).
    loaded.pop(f"load: {CONFLICT}", None)
    assert _untyped(loaded) == {}, load.outcomes


def _untyped(outcomes: Counter[str]) -> dict[str, int]:
    """The outcomes that are neither a success nor the typed UNAVAILABLE answer."""
    return {k: n for k, n in outcomes.items() if not k.endswith((": ok", f": {UNAVAILABLE}"))}


async def _eventually(measure: Callable[[], float]) -> float:
    """Retry `measure` until it stops failing its assertion (a deadline of RECOVERY_LIMIT)."""
    deadline = time.monotonic() + RECOVERY_LIMIT
    while True:
        try:
            return measure()
        except AssertionError:
            if time.monotonic() > deadline:
                raise
        await asyncio.sleep(0.05)


def test_postgres_shutting_down_is_answered_unavailable_not_internal() -> None:
    """What scenario 3 found: a resume that met "the database system is shutting down" was a masked 500."""
    shutting_down = asyncpg.CannotConnectNowError("the database system is shutting down")
    error = GraphQLError("raw", original_error=shutting_down)
    public = PublicErrors().anonymise_error(error)
    assert public.extensions == {"code": UNAVAILABLE}
    assert "shutting down" not in public.message


def test_a_connection_cut_by_a_shutdown_counts_as_postgres_down() -> None:
    """What scenario 3 found: a COMMIT on a connection that got the shutdown's FATAL while idle was a 500."""
    assert is_postgres_down(
        asyncpg.InternalClientError("cannot switch to state 15; another operation (2) is in progress")
    )
    assert not is_postgres_down(asyncpg.InternalClientError("unknown error in protocol implementation"))
