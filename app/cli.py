"""The `bookworm` command line: serve, worker, migrate, seed, projections, verify, events, deadletters,
token, schema.

`serve` is a supervisor (app/supervisor.py); the API processes it starts run the hidden `api-process`.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import socket
import sys
from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextlib import AsyncExitStack, contextmanager
from dataclasses import replace
from typing import TYPE_CHECKING, NoReturn

import asyncpg
import redis.exceptions
import sqlalchemy.exc

from app import aio, embedded, event_catalog, logs, supervisor
from app import cli_tasks as tasks
from app.admission.clients import TrustedProxies
from app.admission.gate import CostGate
from app.bootstrap import Container, container, worker_process
from app.cli_tasks import CliError, first_line
from app.db import head_revision, migrate
from app.domain.errors import DomainError
from app.eventstore import START, EventStoreError, InvalidPosition, Position
from app.identity.keys import KeyConfigError, resolve_keys
from app.live.backend import BackendUnavailable
from app.logs import DebugOnlyFilter, ThrottleFilter
from app.metrics.alone import metrics_server
from app.metrics.shared import shared_directory
from app.projections import PROJECTIONS
from app.settings import Settings
from app.startup import ServerUnreachable, banner, check_servers, redact

if TYPE_CHECKING:
    import uvicorn

    from app.schema.http_streams import HTTPStreams

Handler = Callable[[argparse.Namespace, Settings], None]
Task = Callable[[argparse.Namespace, Container], Awaitable[None]]

API_GRACEFUL_SHUTDOWN = 10  # seconds an API process waits for open requests and websockets on stop
_UVICORN_LOG_LEVELS = ("critical", "error", "warning", "info", "debug", "trace")
# How the lines uvicorn (and the websockets library, through uvicorn's logger) write per handshake start.
UVICORN_WEBSOCKET_LINES = (
    '%s - "WebSocket %s"',
    "connection open",
    "connection rejected",
    "connection closed",
)
# The lines uvicorn writes as each API process starts and stops: the start-up block says it all once.
UVICORN_LIFECYCLE_LINES = (
    "Started server process",
    "Waiting for application startup",
    "Application startup complete",
    "Shutting down",
    "Waiting for application shutdown",
    "Application shutdown complete",
    "Finished server process",
)


class _Parser(argparse.ArgumentParser):
    """An argument parser whose usage errors are one line, like every other error of the command."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: {message} (see {self.prog} --help)\n")


def main(argv: Sequence[str] | None = None) -> int:
    """Run the `bookworm` command line; return the exit status."""
    args = build_parser().parse_args(argv)
    try:
        settings = Settings.from_env()
        logs.configure(settings.log_level, limit=settings.max_log_line_chars, log_format=settings.log_format)
    except ValueError as exc:  # a number that is not one, an unknown log level or format
        return _fail(f"invalid BOOKWORM_* setting: {exc}")
    handler: Handler = args.handler
    try:
        handler(args, settings)
    except KeyboardInterrupt:
        return _fail("interrupted", status=130)
    except Exception as exc:
        message = _expected_failure(exc)
        if message is None:
            raise
        return _fail(message)
    return 0


# Failures whose own message says what to fix.
_REPORTED_AS_IS = (
    CliError,
    DomainError,
    EventStoreError,
    embedded.EmbeddedError,
    BackendUnavailable,
    KeyConfigError,
    ServerUnreachable,
)


def _expected_failure(exc: Exception) -> str | None:
    """Return the one line to print for a failure the user can act on; None for a bug."""
    if isinstance(exc, asyncpg.UndefinedTableError):
        return "the database is not migrated yet: run `bookworm migrate`"
    if isinstance(exc, redis.exceptions.RedisError):
        return f"Redis: {first_line(exc)}"
    if isinstance(exc, asyncpg.PostgresError | asyncpg.InterfaceError):
        return f"PostgreSQL: {first_line(exc)}"
    if isinstance(exc, OSError):  # a refused or timed-out connection to either server
        return f"cannot connect: {first_line(exc)}"
    if isinstance(exc, _REPORTED_AS_IS):
        return first_line(exc)
    return None


def build_parser() -> argparse.ArgumentParser:
    """Describe every subcommand and its arguments."""
    parser = _Parser(prog="bookworm", description="Bookworm: event-sourced GraphQL bookstore back end.")
    commands = parser.add_subparsers(title="commands", required=True, metavar="COMMAND")

    serve = commands.add_parser(
        "serve", help="run the GraphQL API processes and (unless --no-workers) a worker process"
    )
    serve.add_argument("--host", help="interface to listen on (default: BOOKWORM_HOST or 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port to listen on (default: BOOKWORM_PORT or 8000)")
    serve.add_argument(
        "--processes",
        type=_count,
        metavar="N",
        help="API processes sharing the port (default: BOOKWORM_API_PROCESSES, else one per core)",
    )
    serve.add_argument("--no-workers", action="store_true", help="API only; run `bookworm worker` apart")
    serve.set_defaults(handler=_serve)
    # No help: not listed. What each API process of `serve` runs, on the socket `serve` bound.
    api = commands.add_parser(supervisor.API_COMMAND)
    api.add_argument(supervisor.LISTEN_FD_OPTION, type=int, required=True, dest="listen_fd")
    api.set_defaults(handler=_api_process)
    worker = commands.add_parser("worker", help="run the relay, consumers and scheduler")
    worker.add_argument(
        "--metrics-port",
        type=_count,
        metavar="PORT",
        help="answer GET /metrics on this port (for a worker run apart; under `serve` the API has them)",
    )
    worker.add_argument("--metrics-host", default="127.0.0.1", help="interface for --metrics-port")
    worker.set_defaults(handler=_worker)
    commands.add_parser("migrate", help="upgrade the database schema").set_defaults(handler=_migrate)

    seeding = commands.add_parser("seed", help="load a demo catalog (idempotent)")
    seeding.add_argument("--books", type=_count, default=300, help="number of books (default 300)")
    seeding.set_defaults(handler=_with_container(tasks.seed_catalog, migrate_first=True))

    projections = commands.add_parser("projections", help="inspect or rebuild read models")
    actions = projections.add_subparsers(required=True, metavar="ACTION")
    status = actions.add_parser("status", help="generation, position and lag of each projection")
    status.set_defaults(handler=_with_container(tasks.projections_status))
    rebuilding = actions.add_parser("rebuild", help="replay a projection into new tables and swap")
    rebuilding.add_argument("name", choices=sorted(PROJECTIONS), metavar="NAME", help=", ".join(PROJECTIONS))
    rebuilding.set_defaults(handler=_with_container(tasks.projections_rebuild))

    verifying = commands.add_parser(
        "verify",
        help="replay the event store into scratch tables and compare every read model; 1 on a difference",
    )
    verifying.add_argument("name", nargs="*", metavar="NAME", help=f"only these ({', '.join(PROJECTIONS)})")
    verifying.add_argument(
        "--wait",
        type=float,
        default=0.0,
        metavar="S",
        help="first wait up to S seconds for projections to catch up",
    )
    verifying.add_argument(
        "--max-shown", type=_count, metavar="N", help="print at most N differences per table (default: all)"
    )
    verifying.set_defaults(handler=_with_container(tasks.projections_verify))

    events = commands.add_parser("events", help="read the event store")
    actions = events.add_subparsers(required=True, metavar="ACTION")
    listing = actions.add_parser("list", help="print events in commit order")
    listing.add_argument("--stream", help="only this stream (aggregate id)")
    listing.add_argument("--after", type=_position, default=START, help="only events after this position")
    listing.add_argument("--limit", type=_count, default=100, help="at most this many (default 100)")
    listing.set_defaults(handler=_with_container(tasks.events_list))
    cataloging = actions.add_parser(
        "catalog", help="print the event catalog (Markdown): schemas, producers, consumers, topics"
    )
    cataloging.set_defaults(handler=_print_event_catalog)

    dead = commands.add_parser("deadletters", help="inspect or retry parked events")
    actions = dead.add_subparsers(required=True, metavar="ACTION")
    actions.add_parser("list", help="unresolved dead letters").set_defaults(
        handler=_with_container(tasks.deadletters_list)
    )
    retrying = actions.add_parser("retry", help="apply parked events again")
    target = retrying.add_mutually_exclusive_group(required=True)
    target.add_argument("id", nargs="?", type=int, help="the dead letter's id")
    target.add_argument("--all", action="store_true", help="every unresolved dead letter")
    retrying.set_defaults(handler=_with_container(tasks.deadletters_retry))

    token = commands.add_parser("token", help="print a signed bearer token, for development")
    token.add_argument("--sub", required=True, help="the subject: who the token is for")
    token.add_argument("--name", help="display name")
    token.add_argument("--email", help="e-mail address (verified, so order mail goes to it)")
    token.add_argument(
        "--email-unverified", action="store_true", help="mark --email unverified: no order mail goes to it"
    )
    token.add_argument(
        "--role", action="append", metavar="ROLE", help="a role to grant; repeatable (default: customer)"
    )
    token.add_argument("--ttl", type=_seconds, default=86_400, help="lifetime in seconds (default 86400)")
    token.set_defaults(handler=tasks.print_token)

    schema = commands.add_parser("schema", help="print the GraphQL schema (SDL), as in docs/schema.graphql")
    schema.set_defaults(handler=_print_schema)
    return parser


def _count(text: str) -> int:
    if not text.isdigit():
        raise argparse.ArgumentTypeError(f"not a count: {text!r}")
    return int(text)


def _seconds(text: str) -> int:
    if not text.isdigit() or int(text) == 0:
        raise argparse.ArgumentTypeError(f"not a positive number of seconds: {text!r}")
    return int(text)


def _position(text: str) -> Position:
    try:
        return Position.parse(text)
    except InvalidPosition as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


@contextmanager
def _servers(settings: Settings, *, exclusive: bool, redis: bool = True) -> Iterator[Settings]:
    """Yield settings with both URLs, both servers answering: the configured ones, else embedded servers.

    Only the servers whose URL is not configured are embedded; those started here are stopped on exit.
    With `redis` False (the command uses PostgreSQL alone), Redis is neither embedded nor checked.
    """
    # DataDirInUse: one line in main.
    resolved, started = embedded.resolve(settings, exclusive=exclusive, redis=redis)
    try:
        check_servers(resolved, redis=redis)  # ServerUnreachable: one line in main, before any child starts
        yield resolved
    finally:
        if started is not None:
            started.stop()


def _run_migrations(settings: Settings) -> None:
    url = settings.database_url
    assert url is not None
    try:
        migrate(url)
    except (OSError, asyncpg.PostgresError, sqlalchemy.exc.SQLAlchemyError) as exc:
        raise CliError(f"cannot migrate PostgreSQL at {redact(url)}: {first_line(exc)}") from None


def _with_container(task: Task, *, migrate_first: bool = False) -> Handler:
    """Make a handler that runs `task` in a container (no workers) on the resolved servers."""

    def handle(args: argparse.Namespace, settings: Settings) -> None:
        async def run(resolved: Settings) -> None:
            async with container(resolved, workers=False) as built:
                await task(args, built)

        # Not exclusive: attach to the servers of a running `bookworm serve` on the same data dir.
        with _servers(settings, exclusive=False) as resolved:
            if migrate_first:
                _run_migrations(resolved)
            asyncio.run(run(resolved))

    return handle


SCHEMA_HEADER = (
    "# The Bookworm GraphQL schema, printed from the code by `bookworm schema > docs/schema.graphql`;\n"
    "# a test fails when this file and the code disagree. docs/api.md describes each field.\n\n"
)


def schema_sdl() -> str:
    """Return the GraphQL schema in SDL: what `bookworm schema` prints and docs/schema.graphql holds."""
    # Imported here: only this command and the API processes need the schema; the others start fast.
    from app.schema import build_schema

    return SCHEMA_HEADER + build_schema().as_str() + "\n"


def _print_schema(args: argparse.Namespace, settings: Settings) -> None:
    sys.stdout.write(schema_sdl())


def _print_event_catalog(args: argparse.Namespace, settings: Settings) -> None:
    """Print docs/events.md as the code makes it; no server is needed."""
    sys.stdout.write(event_catalog.render())


def _migrate(args: argparse.Namespace, settings: Settings) -> None:
    with _servers(settings, exclusive=False, redis=False) as resolved:
        _run_migrations(resolved)
        print(f"Database schema is at revision {head_revision()}.")


def _serve(args: argparse.Namespace, settings: Settings) -> None:
    port = settings.port if args.port is None else args.port
    settings = replace(settings, host=args.host or settings.host, port=port)
    _check_before_start(settings)
    try:
        count = supervisor.api_process_count(
            settings.api_processes if args.processes is None else args.processes
        )
    except ValueError as exc:
        raise CliError(f"BOOKWORM_API_PROCESSES: {exc}") from None
    workers = not args.no_workers
    # The port first: a port in use is one line, before any server starts or anything is printed.
    # Embedded servers start here, once, before any API process: never in the lifespan
    # (docs/architecture.md, "Composition").
    with _listen(settings) as listener, _servers(settings, exclusive=True) as resolved, _stop_on_signals():
        _run_migrations(resolved)
        with shared_directory(settings.metrics) as metrics:
            children = supervisor.layout(count, workers=workers, listen_fd=listener.fileno())
            print(banner(settings, resolved, api_processes=count, workers=workers), flush=True)
            env = {**_child_env(resolved), **metrics.env}
            supervisor.Supervisor(children, env, [listener.fileno()], on_exit=metrics.forget).run()


def _check_before_start(settings: Settings) -> None:
    """Refuse settings every child would fail on, once, instead of restarting children that cannot start."""
    _uvicorn_log_level(settings)
    resolve_keys(settings)  # KeyConfigError: one line in main; makes the data-dir secret before children race
    try:
        TrustedProxies.parse(settings.trusted_proxies)
        CostGate.from_settings(settings)
    except ValueError as exc:
        raise CliError(str(exc)) from None
    if not 0 <= settings.api_niceness <= 19:
        raise CliError("BOOKWORM_API_NICENESS must be 0-19: how much lower the API processes' priority is")


def _listen(settings: Settings) -> socket.socket:
    try:
        return supervisor.listen(settings.host, settings.port)
    except OSError as exc:
        raise CliError(f"cannot listen on {settings.host}:{settings.port}: {first_line(exc)}") from None


def _child_env(resolved: Settings) -> dict[str, str]:
    """The environment of `serve`'s children: ours, with the server URLs resolved (embedded or given)."""
    assert resolved.database_url and resolved.redis_url
    urls = {"BOOKWORM_DATABASE_URL": resolved.database_url, "BOOKWORM_REDIS_URL": resolved.redis_url}
    return {**os.environ, **urls}


def _uvicorn_log_level(settings: Settings) -> str:
    log_level = settings.log_level.lower()
    if log_level not in _UVICORN_LOG_LEVELS:
        raise CliError(f"BOOKWORM_LOG_LEVEL must be one of {', '.join(_UVICORN_LOG_LEVELS)}")
    return log_level


def _api_process(args: argparse.Namespace, settings: Settings) -> None:
    """Serve HTTP and websockets with uvicorn on the listening socket inherited from `serve`."""
    import uvicorn

    # Imported here: only API processes need the GraphQL schema, and every other command should start fast.
    from app.main import create_app

    listener = socket.socket(fileno=args.listen_fd)  # family and type are read from the socket
    # Below the worker's priority: when requests take every core, the event flow still gets its share.
    os.nice(settings.api_niceness)
    # uvicorn writes a line per websocket handshake: a flood of them must not flood the log.
    uvicorn_log = logging.getLogger("uvicorn.error")
    uvicorn_log.addFilter(ThrottleFilter(prefixes=UVICORN_WEBSOCKET_LINES))
    uvicorn_log.addFilter(DebugOnlyFilter(prefixes=UVICORN_LIFECYCLE_LINES))
    app = create_app(settings, workers=False)
    config = uvicorn.Config(
        app,
        log_level=_uvicorn_log_level(settings),
        # A line per request costs about 3 % of an API process's CPU on a by-id query: off unless asked.
        access_log=settings.access_log,
        ws_ping_interval=settings.ws_ping_interval,
        ws_ping_timeout=settings.ws_ping_timeout,
        # A bigger websocket message closes the connection with 1009, as a bigger body gets 413.
        ws_max_size=settings.max_ws_message_bytes,
        # The client address is the peer's; X-Forwarded-For counts only from BOOKWORM_TRUSTED_PROXIES
        # (uvicorn would otherwise rewrite it from any local peer's header).
        proxy_headers=False,
        # uvicorn's lines go through our handler too, so they are bounded like every other line.
        log_config=None,
        # Within the supervisor's wait, so a stop ends with the lifespan's clean-up rather than SIGKILL.
        timeout_graceful_shutdown=API_GRACEFUL_SHUTDOWN,
    )
    with _stop_on_signals():
        _server(config, app.state.http_streams).run(sockets=[listener])


def _server(config: uvicorn.Config, streams: HTTPStreams) -> uvicorn.Server:
    """uvicorn's server, which ends the HTTP streams first when it stops: it waits for open responses,
    and a stream, which has no end of its own, would hold the stop until the graceful timeout."""
    import uvicorn

    class Server(uvicorn.Server):
        async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
            streams.stop()
            await super().shutdown(sockets)

    return Server(config)


class _Stopped(Exception):
    """SIGINT or SIGTERM asked the process to stop."""


@contextmanager
def _stop_on_signals() -> Iterator[None]:
    """Turn SIGINT/SIGTERM into a normal return, so the embedded servers are stopped on the way out.

    uvicorn shuts down gracefully on these signals and then raises them again with our handlers in
    place (the default SIGTERM action would end the process before any `finally` runs).
    """

    def stop(signum: int, frame: object) -> None:
        raise _Stopped(signum)

    previous = {signum: signal.signal(signum, stop) for signum in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    except _Stopped:
        pass
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _worker(args: argparse.Namespace, settings: Settings) -> None:
    with _servers(settings, exclusive=False) as resolved:
        _run_migrations(resolved)
        aio.run(_run_workers(resolved, args.metrics_host, args.metrics_port))


async def _run_workers(settings: Settings, metrics_host: str, metrics_port: int | None) -> None:
    stopping = asyncio.Event()

    def on_signal() -> None:
        if stopping.is_set():
            # A second signal: the graceful stop is stuck. Embedded servers die with this process.
            print("bookworm: stopped forcefully", file=sys.stderr, flush=True)
            os._exit(1)
        stopping.set()

    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, on_signal)
    async with AsyncExitStack() as stack:
        if metrics_port is not None:
            try:
                await stack.enter_async_context(metrics_server(metrics_host, metrics_port))
            except OSError as exc:
                raise CliError(
                    f"cannot answer /metrics on {metrics_host}:{metrics_port}: {exc.strerror}"
                ) from None
        await stack.enter_async_context(worker_process(settings))
        print(
            "Bookworm worker running (relay, consumers, scheduler); stop with Ctrl-C or SIGTERM.", flush=True
        )
        await stopping.wait()
        print("Stopping the worker...", flush=True)


def _fail(message: str, *, status: int = 1) -> int:
    print(f"bookworm: {message}", file=sys.stderr)
    return status


if __name__ == "__main__":
    sys.exit(main())
