"""Handlers of the catalog commands: load, decide, record the append and the cross-aggregate rules."""

from __future__ import annotations

from app.commands import constraints
from app.commands import named_handlers as names
from app.commands.streams import Context, Handler, fold, load, load_targets, save
from app.domain.catalog import author, book, category, named, publisher
from app.domain.catalog.commands import (
    CreateAuthor,
    CreateBook,
    CreateCategory,
    CreatePublisher,
    DeleteAuthor,
    DeleteBook,
    DeleteCategory,
    DeletePublisher,
    RenameAuthor,
    RenameCategory,
    RenamePublisher,
    UpdateBook,
)
from app.domain.commands import Command

AUTHOR = names.Kind("Author", author.evolve, author.decide, name_scope=None)
CATEGORY = names.Kind("Category", category.evolve, category.decide, name_scope="category-name")
PUBLISHER = names.Kind("Publisher", publisher.evolve, publisher.decide, name_scope="publisher-name")
BOOK = "Book"
_KINDS = {k.stream_type: k for k in (AUTHOR, CATEGORY, PUBLISHER)}


async def create_author(ctx: Context, command: CreateAuthor) -> str:
    return await names.create_or_rename(ctx, AUTHOR, command.author_id, command)


async def rename_author(ctx: Context, command: RenameAuthor) -> str:
    return await names.create_or_rename(ctx, AUTHOR, command.author_id, command)


async def delete_author(ctx: Context, command: DeleteAuthor) -> str:
    return await names.delete(ctx, AUTHOR, command.author_id, command)


async def create_category(ctx: Context, command: CreateCategory) -> str:
    return await names.create_or_rename(ctx, CATEGORY, command.category_id, command)


async def rename_category(ctx: Context, command: RenameCategory) -> str:
    return await names.create_or_rename(ctx, CATEGORY, command.category_id, command)


async def delete_category(ctx: Context, command: DeleteCategory) -> str:
    return await names.delete(ctx, CATEGORY, command.category_id, command)


async def create_publisher(ctx: Context, command: CreatePublisher) -> str:
    return await names.create_or_rename(ctx, PUBLISHER, command.publisher_id, command)


async def rename_publisher(ctx: Context, command: RenamePublisher) -> str:
    return await names.create_or_rename(ctx, PUBLISHER, command.publisher_id, command)


async def delete_publisher(ctx: Context, command: DeletePublisher) -> str:
    return await names.delete(ctx, PUBLISHER, command.publisher_id, command)


async def create_book(ctx: Context, command: CreateBook) -> str:
    return await _write_book(ctx, command.book_id, command)


async def update_book(ctx: Context, command: UpdateBook) -> str:
    return await _write_book(ctx, command.book_id, command)


async def delete_book(ctx: Context, command: DeleteBook) -> str:
    loaded = await load(ctx, command.book_id, book.evolve, book.NEW)
    save(ctx, command.book_id, BOOK, loaded, book.decide(loaded.state, command))
    ctx.writes.add(constraints.DropReferences(command.book_id))
    return command.book_id


async def _write_book(ctx: Context, book_id: str, command: CreateBook | UpdateBook) -> str:
    loaded = await load(ctx, book_id, book.evolve, book.NEW)
    events = book.decide(loaded.state, command)
    if not events:
        save(ctx, book_id, BOOK, loaded, events)
        return book_id
    after = fold(book.evolve, loaded.state, events)
    refs = book.references(after)
    versions = await _check_targets(ctx, refs)
    if loaded.version == 0:
        # A new book has no reference rows to replace: the targets' locks and check, its events and its
        # reference rows are one statement (one implicit transaction), so no BEGIN and COMMIT either.
        save(ctx, book_id, BOOK, loaded, events, refers_to=versions)
        return book_id
    ctx.writes.add(constraints.HoldTargets(versions))
    # Append before rewriting the reference rows: a concurrent writer of this book then fails on the
    # stream version (ConcurrencyError) instead of colliding on those rows.
    save(ctx, book_id, BOOK, loaded, events)
    ctx.writes.add(constraints.ReplaceReferences(book_id, tuple(r.target_id for r in refs)))
    return book_id


async def _check_targets(ctx: Context, refs: list[book.Reference]) -> dict[str, int]:
    """Check the book's targets exist; return the version each was loaded at (the write checks them)."""
    found: dict[book.Reference, named.State] = {}
    versions: dict[str, int] = {}
    wanted = [(ref.target_id, _KINDS[ref.kind].evolve, named.NEW) for ref in refs]
    loaded_targets = await load_targets(ctx, wanted, keep=lambda target: target.exists)
    for ref, loaded in zip(refs, loaded_targets, strict=True):
        found[ref], versions[ref.target_id] = loaded.state, loaded.version
    book.require_references(refs, found)
    return versions


HANDLERS: dict[type[Command], Handler] = {
    CreateAuthor: create_author,
    RenameAuthor: rename_author,
    DeleteAuthor: delete_author,
    CreateCategory: create_category,
    RenameCategory: rename_category,
    DeleteCategory: delete_category,
    CreatePublisher: create_publisher,
    RenamePublisher: rename_publisher,
    DeletePublisher: delete_publisher,
    CreateBook: create_book,
    UpdateBook: update_book,
    DeleteBook: delete_book,
}
