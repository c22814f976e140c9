"""The only composition root: builds pools, stores, the command bus, the hub and the workers."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass

import asyncpg
import redis.asyncio as aioredis
from broadcaster import Broadcast

from app.admission.budget import Budgets
from app.admission.clients import TrustedProxies
from app.bus.protocol import Consumer
from app.bus.scheduler import Handler as ScheduledHandler
from app.bus.scheduler import Scheduler
from app.bus.workers import Job, Workers
from app.commands.basket_checkout import BasketCheckout
from app.commands.bus import CommandBus
from app.commands.checkout_saga import TIMEOUT as CHECKOUT_TIMEOUT
from app.commands.checkout_saga import CheckoutSaga
from app.commands.feedback_check import FeedbackCheck
from app.db import api_session, create_pool, worker_session
from app.eventstore import EventStore
from app.live.backend import RedisPubSubBackend
from app.live.hub import Hub
from app.live.notifier import Notifier
from app.notifications.mailer import mailer_for
from app.notifications.outbox import NotificationOutbox
from app.notifications.sender import PURGE_MAIL, SEND_MAIL, MailSender
from app.projections import PROJECTIONS, ProjectionConsumer
from app.projections.status import purge_changes
from app.queries.basket import BasketQueries
from app.queries.catalog import CatalogQueries
from app.queries.consistency import PositionWaiters
from app.queries.notifications import NotificationQueries
from app.queries.ordering import OrderingQueries
from app.queries.rating import RatingQueries
from app.settings import Settings

CHANGES_PURGE_EVERY = 3600.0
REDIS_CONNECTIONS = 32  # per process: the consumers' blocking reads hold one each, the rest is shared
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
    notifier: Notifier
    hub: Hub
    budgets: Budgets
    proxies: TrustedProxies
    workers: Workers | None


def _require_urls(settings: Settings) -> tuple[str, str]:
    if not settings.database_url or not settings.redis_url:
        raise RuntimeError("BOOKWORM_DATABASE_URL and BOOKWORM_REDIS_URL must be resolved before bootstrap")
    return settings.database_url, settings.redis_url


def build_consumers(container: Container) -> list[Consumer]:
    """Every consumer group of this version: one per projection, then the process managers."""
    return [ProjectionConsumer(p) for p in PROJECTIONS.values()] + build_processes(container)


def build_processes(container: Container) -> list[Consumer]:
    """The consumers that react to events with commands or side effects (sagas, mail)."""
    processes: list[Consumer] = []
    processes.append(BasketCheckout(container.commands))
    processes.append(FeedbackCheck(container.commands, container.event_store))
    processes.append(checkout_saga(container))
    settings = container.settings
    outbox = NotificationOutbox(
        Scheduler(container.pool),
        trust_unverified=settings.trust_unverified_email,
        max_per_hour=settings.max_mails_per_customer_per_hour,
    )
    processes.append(outbox)
    return processes


def build_scheduled(container: Container) -> dict[str, ScheduledHandler]:
    """Handlers of due-time messages by kind (saga timeouts)."""
    scheduled: dict[str, ScheduledHandler] = {}
    scheduled[CHECKOUT_TIMEOUT] = checkout_saga(container).on_timeout
    return scheduled


def checkout_saga(container: Container) -> CheckoutSaga:
    """The checkout saga: a consumer group, and the handler of its timeouts."""
    c = container
    return CheckoutSaga(c.settings, c.pool, c.event_store, c.commands, Scheduler(c.pool))


def mail_jobs(container: Container) -> dict[str, tuple[float, Job]]:
    """The periodic jobs of the mail outbox: send what is due, purge old sent mail."""
    settings = container.settings
    sender = MailSender(container.pool, mailer_for(settings))

    async def send() -> None:
        await sender.send_due()

    async def purge() -> None:
        await sender.purge(settings.mail_retention_days)

    return {SEND_MAIL: (SEND_MAIL_EVERY, send), PURGE_MAIL: (PURGE_MAIL_EVERY, purge)}


def build_workers(container: Container) -> Workers:
    """Build the relay, one consumer per projection, and the periodic jobs."""
    settings, pool = container.settings, container.pool

    async def purge() -> None:
        await purge_changes(pool, settings.changes_retention_days)

    return Workers(
        settings,
        pool,
        container.redis,
        container.event_store,
        build_consumers(container),
        container.notifier,
        periodic={"purge-changes": (CHANGES_PURGE_EVERY, purge), **mail_jobs(container)},
        scheduled=build_scheduled(container),
    )


@asynccontextmanager
async def container(settings: Settings, *, workers: bool) -> AsyncIterator[Container]:
    """Open every resource the process needs and close them in reverse order."""
    database_url, redis_url = _require_urls(settings)
    async with AsyncExitStack() as stack:
        # The API's limits, unless this process runs the workers, which share the pool (docs/operations.md).
        session = worker_session() if workers else api_session(settings)
        pool = await create_pool(database_url, size=settings.db_pool_size, session=session)
        stack.push_async_callback(pool.close)
        timeout = settings.redis_timeout
        # A bounded pool: a burst of commands (a thousand budget charges at once) waits for a connection
        # rather than opening a thousand; past `timeout` waiting counts as Redis being unreachable.
        connections = aioredis.BlockingConnectionPool.from_url(
            redis_url,
            max_connections=REDIS_CONNECTIONS,
            timeout=timeout,
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
        )
        redis = aioredis.Redis.from_pool(connections)
        stack.push_async_callback(redis.aclose)
        broadcast = Broadcast(backend=RedisPubSubBackend(redis_url))
        await broadcast.connect()
        stack.push_async_callback(broadcast.disconnect)
        event_store = EventStore(pool)
        hub = Hub(broadcast, pool, settings)
        stack.push_async_callback(hub.close)
        notifier = Notifier(broadcast, settings)
        stack.push_async_callback(notifier.close)
        positions = PositionWaiters(pool, database_url, PROJECTIONS, limit=settings.max_position_waits)
        await positions.start()
        stack.push_async_callback(positions.close)
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
            notifier=notifier,
            hub=hub,
            budgets=Budgets(redis, settings),
            proxies=TrustedProxies.parse(settings.trusted_proxies),
            workers=None,
        )
        if workers:
            built.workers = build_workers(built)
            await built.workers.start()
            stack.push_async_callback(built.workers.stop)
        yield built
