"""Handlers of the basket commands: load the customer's basket, check the book, decide, record the append."""

from __future__ import annotations

from app.commands.catalog_facts import book_facts
from app.commands.snapshots import BASKET
from app.commands.streams import Context, Handler, load_snapshotted, save
from app.domain.basket import basket
from app.domain.basket.commands import (
    AddBasketItem,
    CheckoutBasket,
    ClearBasket,
    RemoveBasketItem,
    UpdateBasketItem,
)
from app.domain.commands import Command
from app.events.basket import CheckedOutLine
from app.events.ordering import OrderPlaced
from app.ids import basket_id_of


async def add_item(ctx: Context, command: AddBasketItem) -> str:
    return await _change(ctx, command, command.customer_id, book_id=command.book_id)


async def update_item(ctx: Context, command: UpdateBasketItem) -> str:
    return await _change(ctx, command, command.customer_id, book_id=command.book_id)


async def remove_item(ctx: Context, command: RemoveBasketItem) -> str:
    # No catalog check: a line whose book was deleted must still be removable.
    return await _change(ctx, command, command.customer_id)


async def clear(ctx: Context, command: ClearBasket) -> str:
    return await _change(ctx, command, command.customer_id)


async def checkout(ctx: Context, command: CheckoutBasket) -> str:
    """Take out of the basket exactly what order `command.order_id` was placed with."""
    basket_id = basket_id_of(command.customer_id)
    loaded = await load_snapshotted(ctx, basket_id, BASKET)
    events = basket.check_out(loaded.state, command, await _ordered_lines(ctx, command.order_id))
    save(ctx, basket_id, basket.STREAM_TYPE, loaded, events)
    return basket_id


async def _ordered_lines(ctx: Context, order_id: str) -> tuple[CheckedOutLine, ...]:
    """Read the order's published lines; none when no order was placed under that id."""
    for recorded in await ctx.store.read_stream(order_id, conn=ctx.conn):
        if isinstance(placed := recorded.event, OrderPlaced):
            return tuple(CheckedOutLine(book_id=ln.book_id, quantity=ln.quantity) for ln in placed.lines)
    return ()


async def _change(
    ctx: Context, command: basket.Command, customer_id: str, *, book_id: str | None = None
) -> str:
    """Decide on the customer's basket; with `book_id`, the book must exist and not be deleted."""
    basket_id = basket_id_of(customer_id)
    loaded = await load_snapshotted(ctx, basket_id, BASKET)
    events = basket.decide(loaded.state, command)  # input errors first, then the catalog
    if book_id is not None:
        basket.require_book(book_id, (await book_facts(ctx, book_id)).available)
    save(ctx, basket_id, basket.STREAM_TYPE, loaded, events)
    return basket_id


HANDLERS: dict[type[Command], Handler] = {
    AddBasketItem: add_item,
    UpdateBasketItem: update_item,
    RemoveBasketItem: remove_item,
    ClearBasket: clear,
    CheckoutBasket: checkout,
}
