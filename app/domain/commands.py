"""What every command shares: the base class and the KEEP sentinel.

Commands are plain data, so the pure domain decides on them without importing the bus that runs them.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import ClassVar, Final, TypeAlias

from app.events.base import Event


class Keep(enum.Enum):
    """The type of KEEP: an optional field that was not given, as opposed to one set to None."""

    KEEP = "KEEP"

    def __repr__(self) -> str:
        return "KEEP"


KEEP: Final = Keep.KEEP
# What a command declares it may append: its `emits`.
Emits: TypeAlias = tuple[type[Event], ...]


@dataclass(frozen=True, kw_only=True)
class Command:
    """An imperative request to change the system; subclasses are frozen kw-only dataclasses."""

    # The bus re-runs a command after a concurrent write only when re-deciding on fresh state is
    # what the caller meant (renames, deletes, basket changes); commands carrying an expected_version
    # never are. A lost race is then no conflict the caller should see: the bus re-decides until a
    # deadline (briefly, inside a process manager's transaction).
    retry_safe: ClassVar[bool] = False
    # Fields the server fills with a fresh id on every request: they are not part of what the caller
    # asked for, so an idempotency key's fingerprint leaves them out.
    minted: ClassVar[tuple[str, ...]] = ()
    # The event types deciding it may append. The bus refuses any other, so docs/events.md, which lists
    # each event's commands from these, is never short of one.
    emits: ClassVar[Emits] = ()
