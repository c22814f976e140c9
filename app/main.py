"""The ASGI application: /graphql (HTTP, websockets), GraphiQL's assets, /healthz, /readyz, /metrics, the
lifespan."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route, WebSocketRoute

from app import bootstrap, tracing
from app.aio import cancel_and_wait
from app.db import current_revision, head_revision
from app.ide_assets import asset_routes
from app.memory import freeze_startup_objects, release_free_memory
from app.metrics.endpoint import metrics_routes
from app.middleware import Guard
from app.schema import build_schema
from app.schema.view import BookwormGraphQL
from app.schema.wire import ExposeProtocol
from app.settings import Settings

logger = logging.getLogger("bookworm.api")

READY_TIMEOUT = 2.0


async def healthz(request: Request) -> JSONResponse:
    """Answer as long as the process serves requests."""
    return JSONResponse({"status": "ok"})


def readiness(head: str | None) -> Callable[[Request], Awaitable[JSONResponse]]:
    """Return the /readyz endpoint, comparing the database's revision with `head`."""

    async def readyz(request: Request) -> JSONResponse:
        """Report whether PostgreSQL and Redis answer and the database is migrated to head."""
        container: bootstrap.Container = request.state.container
        checks = await asyncio.gather(_postgres(container, head), _redis(container))
        problems = {name: problem for name, problem in checks if problem}
        if problems:
            return JSONResponse({"status": "not ready", "problems": problems}, status_code=503)
        return JSONResponse({"status": "ready", "migration": head})

    return readyz


async def _postgres(container: bootstrap.Container, head: str | None) -> tuple[str, str | None]:
    try:
        async with asyncio.timeout(READY_TIMEOUT), container.pool.acquire() as conn:
            current = await current_revision(conn)
    except Exception as error:  # any failure here means "not ready"; the reason goes to the body
        return "postgresql", f"unreachable: {type(error).__name__}"
    if current != head:
        return "postgresql", f"migrations at {current or 'none'}, head is {head}"
    return "postgresql", None


async def _redis(container: bootstrap.Container) -> tuple[str, str | None]:
    try:
        async with asyncio.timeout(READY_TIMEOUT):
            await container.redis.ping()
    except Exception as error:  # any failure here means "not ready"; the reason goes to the body
        return "redis", f"unreachable: {type(error).__name__}"
    return "redis", None


def create_app(settings: Settings, *, workers: bool) -> Starlette:
    """Build the application; its lifespan opens the container (pools, hub and, if asked, workers)."""

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[dict[str, Any]]:
        async with bootstrap.container(settings, workers=workers) as container:
            freeze_startup_objects()
            trimming = asyncio.create_task(release_free_memory(), name="release-free-memory")
            try:
                yield {"container": container}
            finally:
                await cancel_and_wait([trimming])

    tracing.configure_from_environment(read_statements=settings.trace_read_statements)
    graphql = BookwormGraphQL(build_schema(settings), settings)
    routes = [
        Route("/graphql", graphql, methods=["GET", "POST"]),
        WebSocketRoute("/graphql", graphql),
        Route("/healthz", healthz, methods=["GET"]),
        Route("/readyz", readiness(head_revision()), methods=["GET"]),
        *metrics_routes(settings),
        *asset_routes(settings),
    ]
    middleware = [
        # Outermost of all, so that the `send` it is called with is the server's own (app/schema/wire.py).
        Middleware(ExposeProtocol),
        *tracing.asgi_middleware(),  # outermost but one: a request's span covers everything below
        Middleware(Guard, limit=settings.max_requests_in_flight),
    ]
    app = Starlette(routes=routes, middleware=middleware, lifespan=lifespan, debug=False)
    app.state.http_streams = graphql.streams  # ended by the API process as it stops (app/cli.py)
    return app
