"""What a request read from the catalog read model, as tags the response cache keeps its answer under.

A row read is tagged `<Entity>:<id>` and a listing `<Entity>` (the collection): a change notice about
entity E with id I makes stale every answer tagged `E:I` or `E`. The entity names are those of the
catalog projection's change notices. Reads outside a request that records (workers, websockets) cost one
context-variable lookup.
"""

from __future__ import annotations

from collections.abc import Iterable
from contextvars import ContextVar

BOOK, AUTHOR, CATEGORY, PUBLISHER = "Book", "Author", "Category", "Publisher"
# A listing of books can change with any book, and with the name of any author, category or publisher
# (search and ordering read the names the book rows carry).
BOOK_LISTING = (BOOK, AUTHOR, CATEGORY, PUBLISHER)

_tags: ContextVar[set[str] | None] = ContextVar("bookworm_read_tags", default=None)


def record(tags: set[str]) -> None:
    """Add what this task and the tasks it starts read to `tags`, from now on."""
    _tags.set(tags)


def stop_recording() -> None:
    """Record nothing more of what this task (and the tasks it starts) reads: no answer is kept from it."""
    _tags.set(None)


def read_rows(entity: str, ids: Iterable[str]) -> None:
    """Note that rows of `entity` with these ids were read (also when they were not found)."""
    tags = _tags.get()
    if tags is not None:
        tags.update(f"{entity}:{i}" for i in ids)


def read_listing(*entities: str) -> None:
    """Note that a listing was read, whose rows and order change with any row of `entities`."""
    tags = _tags.get()
    if tags is not None:
        tags.update(entities)


def tags_of(entity: str, entity_id: str) -> tuple[str, str]:
    """The tags a change of one row makes stale: the row's own, and its collection's."""
    return f"{entity}:{entity_id}", entity
