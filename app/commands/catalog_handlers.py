"""Handlers of the catalog commands: load, decide, keep the cross-aggregate rules, append."""

from __future__ import annotations

from app.commands import constraints
from app.commands import named_handlers as names
from app.commands.base import Command, CommandResult
from app.commands.catalog import (
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
from app.commands.streams import Context, Handler, fold, load, save
from app.domain.catalog import author, book, category, named, publisher

AUTHOR = names.Kind("Author", author.evolve, author.decide, name_scope=None)
CATEGORY = names.Kind("Category", category.evolve, category.decide, name_scope="category-name")
PUBLISHER = names.Kind("Publisher", publisher.evolve, publisher.decide, name_scope="publisher-name")
BOOK = "Book"
_KINDS = {k.stream_type: k for k in (AUTHOR, CATEGORY, PUBLISHER)}


async def create_author(ctx: Context, command: CreateAuthor) -> CommandResult:
    return await names.create_or_rename(ctx, AUTHOR, command.author_id, command)


async def rename_author(ctx: Context, command: RenameAuthor) -> CommandResult:
    return await names.create_or_rename(ctx, AUTHOR, command.author_id, command)


async def delete_author(ctx: Context, command: DeleteAuthor) -> CommandResult:
    return await names.delete(ctx, AUTHOR, command.author_id, command)


async def create_category(ctx: Context, command: CreateCategory) -> CommandResult:
    return await names.create_or_rename(ctx, CATEGORY, command.category_id, command)


async def rename_category(ctx: Context, command: RenameCategory) -> CommandResult:
    return await names.create_or_rename(ctx, CATEGORY, command.category_id, command)


async def delete_category(ctx: Context, command: DeleteCategory) -> CommandResult:
    return await names.delete(ctx, CATEGORY, command.category_id, command)


async def create_publisher(ctx: Context, command: CreatePublisher) -> CommandResult:
    return await names.create_or_rename(ctx, PUBLISHER, command.publisher_id, command)


async def rename_publisher(ctx: Context, command: RenamePublisher) -> CommandResult:
    return await names.create_or_rename(ctx, PUBLISHER, command.publisher_id, command)


async def delete_publisher(ctx: Context, command: DeletePublisher) -> CommandResult:
    return await names.delete(ctx, PUBLISHER, command.publisher_id, command)


async def create_book(ctx: Context, command: CreateBook) -> CommandResult:
    return await _write_book(ctx, command.book_id, command)


async def update_book(ctx: Context, command: UpdateBook) -> CommandResult:
    return await _write_book(ctx, command.book_id, command)


async def delete_book(ctx: Context, command: DeleteBook) -> CommandResult:
    loaded = await load(ctx, command.book_id, book.evolve, book.State())
    position = await save(ctx, command.book_id, BOOK, loaded, book.decide(loaded.state, command))
    await constraints.drop_references(ctx.conn, command.book_id)
    return CommandResult(command.book_id, position)


async def _write_book(ctx: Context, book_id: str, command: CreateBook | UpdateBook) -> CommandResult:
    loaded = await load(ctx, book_id, book.evolve, book.State())
    events = book.decide(loaded.state, command)
    if not events:
        return CommandResult(book_id, loaded.position)
    after = fold(book.evolve, loaded.state, events)
    refs = book.references(after)
    await _check_targets(ctx, after, refs)
    # Append before rewriting the reference rows: a concurrent writer of this book then fails on the
    # stream version (ConcurrencyError) instead of colliding on those rows.
    position = await save(ctx, book_id, BOOK, loaded, events)
    await constraints.replace_references(ctx.conn, book_id, [r.target_id for r in refs])
    return CommandResult(book_id, position)


async def _check_targets(ctx: Context, state: book.State, refs: list[book.Reference]) -> None:
    """Hold the book's targets against deletion until commit, then check they exist."""
    await constraints.lock_targets_shared(ctx.conn, [r.target_id for r in refs])
    found: dict[book.Reference, named.State] = {}
    for ref in refs:
        kind = _KINDS[ref.kind]
        found[ref] = (await load(ctx, ref.target_id, kind.evolve, named.State())).state
    book.require_references(state, found)


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
