"""Handlers of the ordering commands: buyer addresses, placing orders from a basket, status changes."""

from __future__ import annotations

from app.commands.base import Command, CommandResult
from app.commands.catalog_facts import book_facts
from app.commands.ordering import CancelOrder, CompleteOrder, PlaceOrder, UpdateBuyerAddress
from app.commands.streams import Context, Handler, load, save
from app.domain.ordering import buyer, order
from app.domain.ordering.basket_lines import BasketLine, fold_lines
from app.ids import basket_id_of

BUYER = "Buyer"
ORDER = "Order"


async def update_buyer_address(ctx: Context, command: UpdateBuyerAddress) -> CommandResult:
    loaded = await load(ctx, command.buyer_id, buyer.evolve, buyer.State())
    events = buyer.decide(loaded.state, command)
    return CommandResult(command.buyer_id, await save(ctx, command.buyer_id, BUYER, loaded, events))


async def place_order(ctx: Context, command: PlaceOrder) -> CommandResult:
    """Place an order from the buyer's basket as the event store holds it in this transaction.

    The basket is not emptied here: the checkout saga reacts to OrderPlaced, checks the basket out,
    and cancels the order when it cannot.
    """
    loaded = await load(ctx, command.order_id, order.evolve, order.State())
    placed_by = (await load(ctx, command.buyer_id, buyer.evolve, buyer.State())).state
    lines = await _basket_lines(ctx, command.buyer_id)
    books = {line.book_id: await book_facts(ctx, line.book_id) for line in lines}
    events = order.place(loaded.state, command, placed_by, lines, books)
    return CommandResult(command.order_id, await save(ctx, command.order_id, ORDER, loaded, events))


async def _basket_lines(ctx: Context, buyer_id: str) -> tuple[BasketLine, ...]:
    recorded = await ctx.store.read_stream(basket_id_of(buyer_id), conn=ctx.conn)
    return fold_lines(r.event for r in recorded)


async def complete_order(ctx: Context, command: CompleteOrder) -> CommandResult:
    return await _change_status(ctx, command.order_id, command)


async def cancel_order(ctx: Context, command: CancelOrder) -> CommandResult:
    return await _change_status(ctx, command.order_id, command)


async def _change_status(ctx: Context, order_id: str, command: CompleteOrder | CancelOrder) -> CommandResult:
    # Another aggregate's id folds to no order (evolve ignores its events): NotFound, like a missing one.
    loaded = await load(ctx, order_id, order.evolve, order.State())
    events = order.decide(loaded.state, command)
    return CommandResult(order_id, await save(ctx, order_id, ORDER, loaded, events))


HANDLERS: dict[type[Command], Handler] = {
    UpdateBuyerAddress: update_buyer_address,
    PlaceOrder: place_order,
    CompleteOrder: complete_order,
    CancelOrder: cancel_order,
}
