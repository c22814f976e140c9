"""Handlers of the ordering commands: buyer addresses, placing orders from a basket, status changes."""

from __future__ import annotations

from app.commands import constraints, snapshots
from app.commands.catalog_facts import book_facts
from app.commands.streams import Context, Handler, load, load_snapshotted, save
from app.domain.commands import Command
from app.domain.ordering import buyer, order
from app.domain.ordering.basket_lines import Lines
from app.domain.ordering.commands import CancelOrder, CompleteOrder, PlaceOrder, UpdateBuyerAddress
from app.ids import basket_id_of

BUYER = "Buyer"
ORDER = "Order"
# One order per basket version: (basket id, stream version) -> the order that took the basket then.
BASKET_VERSION_SCOPE = "order-basket-version"
TAKEN = "This basket was already ordered; place a new order once it has changed."


async def update_buyer_address(ctx: Context, command: UpdateBuyerAddress) -> str:
    loaded = await load_snapshotted(ctx, command.buyer_id, snapshots.BUYER)
    save(ctx, command.buyer_id, BUYER, loaded, buyer.decide(loaded.state, command))
    return command.buyer_id


async def place_order(ctx: Context, command: PlaceOrder) -> str:
    """Place an order from the buyer's basket as the event store holds it when the command reads it.

    The basket is not emptied here: the checkout saga reacts to OrderPlaced, checks the basket out,
    and cancels the order when it cannot. The order takes the basket at its stream version, and a
    reservation row of (basket, version) written with the order refuses a second order of the same
    version at once: a concurrent one waits on the row, then finds it taken.
    """
    loaded = await load(ctx, command.order_id, order.evolve, order.State())
    placed_by = (await load_snapshotted(ctx, command.buyer_id, snapshots.BUYER)).state
    basket_id = basket_id_of(command.buyer_id)
    lines, basket_version = await _basket_lines(ctx, basket_id)
    books = {line.book_id: await book_facts(ctx, line.book_id) for line in lines}
    events = order.place(loaded.state, command, placed_by, lines, books)
    # Append first, as for other reservations: the order id is fresh, so this only orders the steps.
    save(ctx, command.order_id, ORDER, loaded, events)
    if events:
        taken_at = f"{basket_id}@{basket_version}"
        ctx.writes.add(constraints.Reserve(BASKET_VERSION_SCOPE, taken_at, command.order_id, TAKEN))
    return command.order_id


async def _basket_lines(ctx: Context, basket_id: str) -> tuple[Lines, int]:
    """Return the basket's lines and its stream version (the number of its events)."""
    loaded = await load_snapshotted(ctx, basket_id, snapshots.BASKET_LINES)
    return loaded.state, loaded.version


async def complete_order(ctx: Context, command: CompleteOrder) -> str:
    return await _change_status(ctx, command.order_id, command)


async def cancel_order(ctx: Context, command: CancelOrder) -> str:
    return await _change_status(ctx, command.order_id, command)


async def _change_status(ctx: Context, order_id: str, command: CompleteOrder | CancelOrder) -> str:
    # Another aggregate's id folds to no order (evolve ignores its events): NotFound, like a missing one.
    loaded = await load(ctx, order_id, order.evolve, order.State())
    save(ctx, order_id, ORDER, loaded, order.decide(loaded.state, command))
    return order_id


HANDLERS: dict[type[Command], Handler] = {
    UpdateBuyerAddress: update_buyer_address,
    PlaceOrder: place_order,
    CompleteOrder: complete_order,
    CancelOrder: cancel_order,
}
