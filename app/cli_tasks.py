"""What the inspection and repair commands do with an open container; they print plain-text tables."""

from __future__ import annotations

import argparse
import asyncio
import json
from collections.abc import Sequence

from app.bootstrap import Container, build_consumers
from app.bus.deadletters import DeadLetter, list_dead_letters, retry_dead_letter
from app.bus.status import checkpoint_status, relay_status
from app.eventstore import Position
from app.identity.keys import KeyConfigError, signing_secret
from app.identity.tokens import issue
from app.live.notifier import Notifier
from app.projections import PROJECTIONS, ProjectionMissing
from app.projections.rebuild import RebuildInProgress, RebuildRejected, UnknownProjection, rebuild
from app.projections.status import projection_status
from app.projections.verify import report, report_snapshots, verify, verify_snapshots
from app.seed import seed
from app.settings import Settings


class CliError(Exception):
    """An expected failure: reported as one line on stderr, with exit status 1."""


async def seed_catalog(args: argparse.Namespace, built: Container) -> None:
    """Load the demo catalog and print what it did."""
    print(await seed(built, books=args.books))


def print_token(args: argparse.Namespace, settings: Settings) -> None:
    """Print a development token signed with the configured (or data-dir) HS256 secret."""
    try:
        secret = signing_secret(settings)
    except KeyConfigError as exc:
        raise CliError(str(exc)) from None
    if args.ttl > settings.max_token_lifetime:
        limit = settings.max_token_lifetime
        raise CliError(
            f"--ttl {args.ttl} is longer than BOOKWORM_MAX_TOKEN_LIFETIME ({limit:g} s): "
            "this server would refuse the token"
        )
    token = issue(
        secret,
        subject=args.sub,
        name=args.name,
        email=args.email,
        email_verified=not args.email_unverified,
        roles=args.role or ["customer"],
        ttl=args.ttl,
        issuer=settings.jwt_issuer,
        audience=settings.jwt_audience,
    )
    print(token)


async def projections_status(args: argparse.Namespace, built: Container) -> None:
    """Print the checkpoint and lag (events not yet processed) of the relay and every consumer group."""
    rows = await projection_status(built.pool, built.event_store)
    relay = await relay_status(built.pool, built.event_store)
    head = await built.event_store.head()
    processes = []
    for consumer in build_consumers(built):
        if consumer.name not in PROJECTIONS:
            position, lag = await checkpoint_status(built.pool, consumer.name)
            processes.append((consumer.name, "-", "-", str(position), str(lag)))
    print_table(
        ("NAME", "GENERATION", "VERSION", "POSITION", "LAG"),
        [
            ("relay", "-", "-", str(relay.checkpoint), str(relay.lag)),
            *[(r.name, str(r.generation), str(r.version), r.position, str(r.lag)) for r in rows],
            *processes,
        ],
    )
    print(f"Event store head: {head}")
    for row in rows:
        if row.rebuild_needed:
            print(f"{row.name}: built by an older version; run `bookworm projections rebuild {row.name}`")


async def projections_rebuild(args: argparse.Namespace, built: Container) -> None:
    """Rebuild one projection into new tables and swap its views."""
    name: str = args.name
    print(f"Rebuilding {name} while the current tables keep serving...", flush=True)
    try:
        report = await rebuild(built.pool, built.event_store, name)
    except (UnknownProjection, RebuildInProgress, RebuildRejected, ProjectionMissing) as exc:
        raise CliError(str(exc)) from None
    # The views now show other tables, which no change notice announced: every API process drops the
    # answers its response cache keeps (and subscribers re-read read.changes, which finds nothing new).
    if not await Notifier(built.live, built.settings).catch_up_everyone():
        print(
            "Could not tell the API processes to drop their cached answers: they expire within "
            f"{built.settings.response_cache_seconds:g} s."
        )
    print(
        f"Rebuilt {name}: generation {report.old_generation} -> {report.new_generation}, "
        f"{report.events} events replayed ({report.applied} handled), up to position {report.position}, "
        f"in {report.seconds:.2f} s ({report.rate:,.0f} events/s)."
    )


async def projections_verify(args: argparse.Namespace, built: Container) -> None:
    """Replay the event store into scratch tables, compare every live read model, fail on a difference."""
    unknown = [name for name in args.name if name not in PROJECTIONS]
    if unknown:
        raise CliError(f"no projection named {', '.join(unknown)}; known: {', '.join(sorted(PROJECTIONS))}")
    if args.wait:
        await _wait_caught_up(built, args.wait)
    checks = await verify(built.pool, built.event_store, args.name or None)
    for line in report(checks, shown=args.max_shown):
        print(line)
    wrong = [check.name for check in checks if not check.ok]
    if not args.name:  # snapshots are checked by a full verify
        snapshots = await verify_snapshots(built.pool, built.event_store)
        for line in report_snapshots(snapshots, shown=args.max_shown):
            print(line)
        if not snapshots.ok:
            wrong.append("snapshots")
    if wrong:
        raise CliError(f"read models differ from a replay of the event store: {', '.join(wrong)}")


async def _wait_caught_up(built: Container, seconds: float) -> None:
    """Wait until no projection lags behind the event store's head; fail after `seconds`."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while lagging := [r.name for r in await projection_status(built.pool, built.event_store) if r.lag]:
        if loop.time() > deadline:
            raise CliError(
                f"projections still behind the event store after {seconds:g} s: {', '.join(lagging)}"
            )
        await asyncio.sleep(0.2)


async def events_list(args: argparse.Namespace, built: Container) -> None:
    """Print events in commit order, or one stream's events in version order."""
    after: Position = args.after
    if args.stream is None:
        events = await built.event_store.read_all(after, limit=args.limit)
    else:
        stream = await built.event_store.read_stream(args.stream)
        events = [e for e in stream if e.position > after][: args.limit]
    print_table(
        ("POSITION", "TYPE", "STREAM", "VERSION", "DATA"),
        [
            (str(e.position), e.event_type, e.stream_id, str(e.stream_version), json.dumps(e.data))
            for e in events
        ],
    )


async def deadletters_list(args: argparse.Namespace, built: Container) -> None:
    """Print the unresolved dead letters."""
    letters = await list_dead_letters(built.pool)
    print_table(
        ("ID", "CONSUMER", "TYPE", "POSITION", "ATTEMPTS", "ERROR"),
        [
            (str(d.id), d.consumer, d.event_type, str(d.position), str(d.attempts), first_line(d.error))
            for d in letters
        ],
    )


async def deadletters_retry(args: argparse.Namespace, built: Container) -> None:
    """Apply one parked event again, or every unresolved one; fail if any still fails."""
    wanted: int | None = args.id
    letters = [d for d in await list_dead_letters(built.pool) if wanted is None or d.id == wanted]
    if wanted is not None and not letters:
        raise CliError(f"no unresolved dead letter with id {wanted}")
    if not letters:
        print("No unresolved dead letters.")
    failed = [d.id for d in letters if not await _retry(built, d)]
    if failed:
        raise CliError(f"still failing: {', '.join(map(str, failed))} (see `bookworm deadletters list`)")


async def _retry(built: Container, letter: DeadLetter) -> bool:
    consumers = {c.name: c for c in build_consumers(built)}
    consumer = consumers.get(letter.consumer)
    where = f"{letter.id} ({letter.consumer}, {letter.event_type} at {letter.position})"
    if consumer is None:
        print(f"Dead letter {where}: no consumer of that name in this version; skipped.")
        return False
    succeeded = await retry_dead_letter(built.pool, built.event_store, consumer, letter.id)
    print(f"Dead letter {where}: {'applied' if succeeded else 'failed again'}.")
    return succeeded


def print_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    """Print left-aligned columns; the last column is never padded (it may be long JSON)."""
    widths = [max([len(h), *(len(r[i]) for r in rows)]) for i, h in enumerate(headers[:-1])]
    for row in (headers, *rows):
        cells = [cell.ljust(width) for cell, width in zip(row, widths, strict=False)]
        print("  ".join([*cells, row[-1]]).rstrip())


def first_line(error: object) -> str:
    """Return the first line of an error's text (its type name when it has none)."""
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__
