"""Snapshots of the folds whose streams grow without end: a customer's basket and buyer profile.

A basket is used for as long as its customer shops, and a buyer's profile changes with every new
address, so replaying them costs more with every event. Their folds keep a snapshot every `every`
events: a load reads the latest snapshot and replays only the events after it, and a command that
replayed `every` events or more past its snapshot takes a new one once its write has committed.

Snapshots are derived data. A snapshot of another shape (an older `schema_version`), or one that does
not read back, is ignored and the stream replayed; none is ever upcast. A rebuild never reads them,
`bookworm verify` checks each against a replay of its stream, and deleting them changes only speed.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import asyncpg

from app.domain.basket import basket
from app.domain.ordering import basket_lines, buyer
from app.events.base import Event
from app.eventstore import snapshots as rows
from app.eventstore.snapshots import Snapshot

log = logging.getLogger(__name__)

S = TypeVar("S")


@dataclass(frozen=True, slots=True)
class Snapshotted(Generic[S]):
    """A fold of a stream that keeps snapshots: its name, how it folds, and its serialized shape."""

    name: str
    evolve: Callable[[S, Event], S]
    initial: S
    schema_version: int
    dump: Callable[[S], Any]
    restore: Callable[[object], S]  # raises ValueError for data of any other shape

    def snapshot(self, stream_id: str, version: int, state: S) -> Snapshot:
        return Snapshot(stream_id, self.name, version, self.schema_version, self.dump(state))

    def read(self, snapshot: Snapshot) -> S | None:
        """Return the state a snapshot holds; None when it is of another shape or does not read back."""
        if snapshot.schema_version != self.schema_version:
            return None
        try:
            return self.restore(snapshot.state)
        except (ValueError, TypeError, KeyError) as exc:
            log.warning("ignoring snapshot %s of %s: %s", self.name, snapshot.stream_id, exc)
            return None


BASKET: Snapshotted[basket.State] = Snapshotted(
    basket.STREAM_TYPE,
    basket.evolve,
    basket.State(),
    basket.SNAPSHOT_VERSION,
    basket.snapshot,
    basket.from_snapshot,
)
BUYER: Snapshotted[buyer.State] = Snapshotted(
    "Buyer", buyer.evolve, buyer.State(), buyer.SNAPSHOT_VERSION, buyer.snapshot, buyer.from_snapshot
)
# Ordering's own fold of a basket's events (contexts share events, not aggregates): placeOrder reads it.
BASKET_LINES: Snapshotted[basket_lines.Lines] = Snapshotted(
    "ordering.BasketLines",
    basket_lines.evolve,
    (),
    basket_lines.SNAPSHOT_VERSION,
    basket_lines.snapshot,
    basket_lines.from_snapshot,
)
FOLDS: dict[str, Snapshotted[Any]] = {fold.name: fold for fold in (BASKET, BUYER, BASKET_LINES)}


@dataclass(frozen=True, slots=True)
class Due(Generic[S]):
    """A snapshot a command may take once its write commits: a load, and what the command appended."""

    fold: Snapshotted[S]
    stream_id: str
    state: S  # as loaded
    version: int  # as loaded
    since: int  # the version of the snapshot the load started from (0: none)
    events: tuple[Event, ...] = ()  # appended by the command
    repair: bool = False  # the stored snapshot was unusable: replace it whatever its version

    def ripe(self, every: int) -> bool:
        if every <= 0:
            return False
        return self.repair or self.version + len(self.events) - self.since >= every

    def snapshot(self) -> Snapshot:
        state = self.state
        for event in self.events:
            state = self.fold.evolve(state, event)
        return self.fold.snapshot(self.stream_id, self.version + len(self.events), state)


async def take(conn: asyncpg.Connection, due: Iterable[Due[Any]], every: int) -> None:
    """Store the ripe snapshots; a failure is logged, never raised: the command has already committed.

    Inside a caller's transaction they commit with it (a savepoint keeps a failure from aborting it);
    otherwise each is one statement of its own, after the command's write transaction.
    """
    ripe = [d for d in due if d.ripe(every)]
    if not ripe:
        return
    taken = [d.snapshot() for d in ripe]
    unusable = [(d.stream_id, d.fold.name) for d in ripe if d.repair]
    try:
        async with conn.transaction() if unusable or conn.is_in_transaction() else contextlib.nullcontext():
            await rows.drop(conn, unusable)
            await rows.save(conn, taken)
    except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError) as exc:
        log.warning("snapshots of %s not stored: %s", ", ".join(d.stream_id for d in ripe), exc)
