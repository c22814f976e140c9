"""The only composition root: builds pools, stores, the command bus, the hub and the workers.

The API and the workers never share a PostgreSQL pool or a Redis client: a burst of requests cannot make the
event flow queue for connections, and a long catch-up cannot make requests queue. The workers' process
managers dispatch commands through a CommandBus of their own, on the workers' pool.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from typing import Protocol

import asyncpg
import redis.asyncio as aioredis
from broadcaster import Broadcast

from app import tracing
from app.admission.budget import Budgets
from app.admission.clients import TrustedProxies
from app.bus.protocol import Consumer
from app.bus.scheduler import Handler as ScheduledHandler
from app.bus.scheduler import Scheduler
from app.bus.workers import Job, Workers
from app.commands.bus import CommandBus
from app.db import api_session, create_pool, worker_session
from app.eventstore import EventStore
from app.live.backend import RedisPubSubBackend
from app.live.hub import Hub
from app.live.notifier import Notifier
from app.memory import freeze_startup_objects
from app.metrics.pools import pool_use
from app.notifications.mailer import mailer_for
from app.notifications.sender import PURGE_MAIL, SEND_MAIL, MailSender
from app.planner import ANALYZE_EVERY, ANALYZE_GROWN, analyze_grown
from app.processes.basket_checkout import BasketCheckout
from app.processes.checkout_saga import TIMEOUT as CHECKOUT_TIMEOUT
from app.processes.checkout_saga import CheckoutSaga
from app.processes.feedback_check import FeedbackCheck
from app.processes.notification_outbox import NotificationOutbox
from app.projections import PROJECTIONS, ProjectionConsumer
from app.projections.status import purge_changes
from app.queries.basket import BasketQueries
from app.queries.catalog import CatalogQueries
from app.queries.consistency import PositionWaiters
from app.queries.notifications import NotificationQueries
from app.queries.ordering import OrderingQueries
from app.queries.rating import RatingQueries
from app.queries.response_cache import ResponseCache
from app.settings import Settings

CHANGES_PURGE_EVERY = 3600.0
REDIS_CONNECTIONS = 32  # per client: the API's, and the workers' (whose blocking reads hold one each)
SEND_MAIL_EVERY = 2.0  # resends failed mail once its backoff is over; new mail is sent at once
PURGE_MAIL_EVERY = 3600.0


@dataclass
class Container:
    settings: Settings
    pool: asyncpg.Pool
    redis: aioredis.Redis
    event_store: EventStore
    commands: CommandBus
    catalog: CatalogQueries
    basket: BasketQueries
    ordering: OrderingQueries
    rating: RatingQueries
    notifications: NotificationQueries
    positions: PositionWaiters
    broadcast: Broadcast
    live: RedisPubSubBackend  # broadcast's backend: the notifier publishes through it, many at a time
    hub: Hub
    response_cache: ResponseCache
    budgets: Budgets
    proxies: TrustedProxies
    workers: Workers | None


@dataclass(frozen=True)
class WorkerParts:
    """What the workers run on: a pool, a Redis client and a command bus of their own."""

    settings: Settings
    pool: asyncpg.Pool
    redis: aioredis.Redis
    event_store: EventStore
    commands: CommandBus
    notifier: Notifier


class Parts(Protocol):
    """What consumers are built from: the workers' parts, or a container (the CLI's repair commands)."""

    @property
    def settings(self) -> Settings: ...
    @property
    def pool(self) -> asyncpg.Pool: ...
    @property
    def event_store(self) -> EventStore: ...
    @property
    def commands(self) -> CommandBus: ...


def _require_urls(settings: Settings) -> tuple[str, str]:
    if not settings.database_url or not settings.redis_url:
        raise RuntimeError("BOOKWORM_DATABASE_URL and BOOKWORM_REDIS_URL must be resolved before bootstrap")
    return settings.database_url, settings.redis_url


def build_consumers(parts: Parts) -> list[Consumer]:
    """Every consumer group of this version: one per projection, then the process managers."""
    return [ProjectionConsumer(p) for p in PROJECTIONS.values()] + build_processes(parts)


def build_processes(parts: Parts) -> list[Consumer]:
    """The consumers that react to events with commands or side effects (sagas, mail)."""
    settings = parts.settings
    outbox = NotificationOutbox(
        Scheduler(parts.pool),
        trust_unverified=settings.trust_unverified_email,
        max_per_hour=settings.max_mails_per_customer_per_hour,
    )
    return [
        BasketCheckout(parts.commands),
        FeedbackCheck(parts.commands, parts.event_store),
        checkout_saga(parts),
        outbox,
    ]


def build_scheduled(parts: Parts) -> dict[str, ScheduledHandler]:
    """Handlers of due-time messages by kind (saga timeouts)."""
    return {CHECKOUT_TIMEOUT: checkout_saga(parts).on_timeout}


def checkout_saga(parts: Parts) -> CheckoutSaga:
    """The checkout saga: a consumer group, and the handler of its timeouts."""
    c = parts
    return CheckoutSaga(c.settings, c.pool, c.event_store, c.commands, Scheduler(c.pool))


def mail_jobs(parts: Parts) -> dict[str, tuple[float, Job]]:
    """The periodic jobs of the mail outbox: send what is due, purge old sent mail."""
    settings = parts.settings
    sender = MailSender(parts.pool, mailer_for(settings))

    async def send() -> None:
        await sender.send_due()

    async def purge() -> None:
        await sender.purge(settings.mail_retention_days)

    return {SEND_MAIL: (SEND_MAIL_EVERY, send), PURGE_MAIL: (PURGE_MAIL_EVERY, purge)}


def build_workers(parts: WorkerParts) -> Workers:
    """Build the relay, one consumer per projection, and the periodic jobs."""
    settings, pool = parts.settings, parts.pool

    async def purge() -> None:
        await purge_changes(pool, settings.changes_retention_days)

    async def analyze() -> None:
        await analyze_grown(pool)

    return Workers(
        settings,
        pool,
        parts.redis,
        parts.event_store,
        build_consumers(parts),
        parts.notifier,
        periodic={
            "purge-changes": (CHANGES_PURGE_EVERY, purge),
            ANALYZE_GROWN: (ANALYZE_EVERY, analyze),
            **mail_jobs(parts),
        },
        scheduled=build_scheduled(parts),
    )


def _response_cache(settings: Settings, hub: Hub) -> ResponseCache:
    cache = ResponseCache(
        entries=settings.response_cache_entries,
        max_bytes=settings.response_cache_bytes,
        seconds=settings.response_cache_seconds,
    )
    if cache.enabled:
        cache.follow(hub)
    return cache


def _redis_client(url: str, settings: Settings) -> aioredis.Redis:
    timeout = settings.redis_timeout
    # A bounded pool: a burst of commands (a thousand budget charges at once) waits for a connection
    # rather than opening a thousand; past `timeout` waiting counts as Redis being unreachable.
    connections = aioredis.BlockingConnectionPool.from_url(
        url,
        max_connections=REDIS_CONNECTIONS,
        timeout=timeout,
        socket_timeout=timeout,
        socket_connect_timeout=timeout,
    )
    return aioredis.Redis.from_pool(connections)


async def _broadcast(stack: AsyncExitStack, redis_url: str) -> tuple[RedisPubSubBackend, Broadcast]:
    """Connect the live notices' backend and the broadcaster on it (the hubs subscribe through it)."""
    backend = RedisPubSubBackend(redis_url)
    broadcast = Broadcast(backend=backend)
    await broadcast.connect()
    stack.push_async_callback(broadcast.disconnect)
    return backend, broadcast


@asynccontextmanager
async def _running_workers(settings: Settings, live: RedisPubSubBackend) -> AsyncIterator[Workers]:
    """Open the workers' own pool and Redis client and start the workers; stop them and close both on exit."""
    database_url, redis_url = _require_urls(settings)
    async with AsyncExitStack() as stack:
        # No API limits: a projection statement cancelled halfway would be taken for the event's fault.
        pool = await create_pool(database_url, size=settings.worker_pool_size, session=worker_session())
        stack.push_async_callback(pool.close)
        await stack.enter_async_context(pool_use("worker", pool))
        redis = _redis_client(redis_url, settings)
        stack.push_async_callback(redis.aclose)
        notifier = Notifier(live, settings)
        stack.push_async_callback(notifier.close)
        event_store = EventStore(pool)
        commands = CommandBus(pool, event_store, snapshot_every=settings.snapshot_every)
        workers = build_workers(WorkerParts(settings, pool, redis, event_store, commands, notifier))
        await workers.start()
        stack.push_async_callback(workers.stop)
        yield workers


@asynccontextmanager
async def worker_process(settings: Settings) -> AsyncIterator[Workers]:
    """Run the workers alone (`bookworm worker`): no API pool, hub or read-your-writes listener is opened."""
    _require_urls(settings)
    tracing.configure_from_environment(read_statements=settings.trace_read_statements)
    async with AsyncExitStack() as stack:
        live, _ = await _broadcast(stack, settings.redis_url or "")
        workers = await stack.enter_async_context(_running_workers(settings, live))
        # As an API process does (app/main.py): a full collection over every module and the consumers'
        # registries stopped the loop for 60-90 ms, which every change then waited out on its way to
        # the read models and subscribers (bench/README.md, "The worker's collector").
        freeze_startup_objects()
        yield workers


@asynccontextmanager
async def container(settings: Settings, *, workers: bool) -> AsyncIterator[Container]:
    """Open every resource the API needs and close them in reverse order.

    With `workers`, the workers run in this process too, on their own pool and Redis client.
    """
    database_url, redis_url = _require_urls(settings)
    async with AsyncExitStack() as stack:
        # The API's limits always: the workers, even in this process, run on a pool of their own.
        pool = await create_pool(database_url, size=settings.db_pool_size, session=api_session(settings))
        stack.push_async_callback(pool.close)
        await stack.enter_async_context(pool_use("api", pool))
        redis = _redis_client(redis_url, settings)
        stack.push_async_callback(redis.aclose)
        live, broadcast = await _broadcast(stack, redis_url)
        event_store = EventStore(pool)
        hub = Hub(broadcast, pool, settings)
        stack.push_async_callback(hub.close)
        positions = PositionWaiters(pool, database_url, PROJECTIONS, limit=settings.max_position_waits)
        await positions.start()
        stack.push_async_callback(positions.close)
        budgets = Budgets(redis, settings)
        stack.push_async_callback(budgets.aclose)
        built = Container(
            settings=settings,
            pool=pool,
            redis=redis,
            event_store=event_store,
            commands=CommandBus(pool, event_store, snapshot_every=settings.snapshot_every),
            catalog=CatalogQueries(pool),
            basket=BasketQueries(pool),
            ordering=OrderingQueries(pool),
            rating=RatingQueries(pool),
            notifications=NotificationQueries(pool),
            positions=positions,
            broadcast=broadcast,
            live=live,
            hub=hub,
            response_cache=_response_cache(settings, hub),
            budgets=budgets,
            proxies=TrustedProxies.parse(settings.trusted_proxies),
            workers=None,
        )
        if workers:
            built.workers = await stack.enter_async_context(_running_workers(settings, live))
        yield built
