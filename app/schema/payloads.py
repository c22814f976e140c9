"""What every mutation's success payload shares: the id it acted on and the position of its change.

A context's payload names its id field (`ID_FIELD`) and adds the read-your-writes entity field, which
waits until the context's read model has passed `at`, then reads the row (`fresh`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any, ClassVar, Self, TypeVar

import strawberry
from strawberry.dataloader import DataLoader

from app.commands.results import CommandResult
from app.schema.consistency import caught_up
from app.schema.context import Info
from app.schema.positions import Position

Row = TypeVar("Row")
T = TypeVar("T")


@strawberry.type
class Changed:
    """The base of every success payload; not in the schema itself."""

    ID_FIELD: ClassVar[str]
    position: str
    at: strawberry.Private[Position]

    @classmethod
    def of(cls, done: CommandResult, **private: Any) -> Self:
        """Return the payload of `done`; `private` fills the subclass's private fields."""
        entity = {cls.ID_FIELD: strawberry.ID(done.entity_id)}
        return cls(**entity, position=str(done.position), at=done.position, **private)


async def fresh(
    info: Info, loader: DataLoader[str, Row | None], key: str, position: Position, make: Callable[[Row], T]
) -> T | None:
    """Wait until the read model passed `position`, then load `key` anew (not from this request's cache)."""
    await caught_up(info, position)
    with contextlib.suppress(KeyError):  # strawberry's clear() raises for a key never loaded
        loader.clear(key)
    row = await loader.load(key)
    return None if row is None else make(row)
