"""The customer checkout flow: addBasketItem, placeOrder, and the checkout saga emptying the basket.

Usage:
    python bench/checkout_flow.py [--customers 50] [--concurrency 8] [--duration 8] [--url URL]

Without --url it starts `bookworm serve` on a free port of 127.0.0.1 (against BOOKWORM_DATABASE_URL /
BOOKWORM_REDIS_URL when they are set, else on embedded servers in a throw-away data directory). Setup,
not timed: an admin creates an author, a category, a publisher and 20 books; each customer sets a
delivery address and puts one book in their basket. Then, C workers at a time: addBasketItem for
--duration seconds (without, then with the read-your-writes basket), and one placeOrder per customer,
each customer first subscribed to basketChanged, to time the saga from the answer to the emptied basket.
Prints one results table; bench/README.md explains each figure.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import time
from collections import Counter
from contextlib import AsyncExitStack
from dataclasses import dataclass, field

import httpx
import websockets
from _cpu import CpuProbe, CpuShare, CpuTimes
from _graphql import CREATE_BOOK, create_refs, failure
from _load import Operation, Row, Sample, client, print_table, run_load, sign_in
from _server import admin_token, backends, bookworm_server
from _shop import (
    ADD_BASKET_ITEM,
    ADD_BASKET_ITEM_READ_YOUR_WRITES,
    ADDRESS,
    PLACE_ORDER,
    UPDATE_BUYER_ADDRESS,
    BasketWatcher,
    Customer,
    sign_customers,
    subscribe_basket,
)

from app.eventstore.position import Position

BOOKS = 20
CHECKOUT_TIMEOUT = 30.0  # seconds to wait for the last basket to be emptied
PROTOCOL = [websockets.Subprotocol("graphql-transport-ws")]
_UNSHOWN = {"BOOKWORM_DATABASE_URL", "BOOKWORM_REDIS_URL"}


@dataclass
class Shop:
    """The server, its customers and books, each basket's latest position, and the table being filled."""

    url: str
    probe: CpuProbe
    customers: list[Customer]
    concurrency: int
    books: list[str] = field(default_factory=list)
    last: dict[int, Position] = field(default_factory=dict)  # customer number -> latest basket position
    rows: list[Row] = field(default_factory=list)
    errors: dict[str, Counter[str]] = field(default_factory=dict)

    def add(self, row: Row, errors: Counter[str]) -> None:
        """Add a row, and remember the kinds of its errors."""
        self.rows.append(row)
        if errors:
            self.errors[row.measure.strip()] = errors


async def set_up(shop: Shop) -> None:
    """Create the books (as the admin), then give every customer an address and one book in the basket."""
    async with client(shop.url) as http:
        refs = await create_refs(http)
        suffix = str(time.time_ns())
        for number in range(BOOKS):
            variables = {"input": refs.book_input(f"Checkout {suffix} {number}")}
            response = await http.post("/graphql", json={"query": CREATE_BOOK, "variables": variables})
            _check(failure(response, "createBook", "CreateBookSuccess"), "createBook")
            shop.books.append(response.json()["data"]["createBook"]["bookId"])
    count = len(shop.customers)
    addresses = await run_load(shop.url, _set_address(shop), concurrency=shop.concurrency, count=count)
    _check_sample(addresses, "updateBuyerAddress")
    filled = await run_load(
        shop.url, _add_item(shop, ADD_BASKET_ITEM), concurrency=shop.concurrency, count=count
    )
    _check_sample(filled, "addBasketItem (setup)")


def _check(problem: str | None, what: str) -> None:
    if problem is not None:
        raise SystemExit(f"setup failed: {what} answered {problem}")


def _check_sample(sample: Sample, what: str) -> None:
    if sample.errors:
        kinds = ", ".join(f"{kind} x{n}" for kind, n in sample.errors.most_common())
        raise SystemExit(f"setup failed: {what}: {kinds}")


def _set_address(shop: Shop) -> Operation:
    """Return updateBuyerAddress for customer n, waiting until the ordering read model has it."""

    async def send(http: httpx.AsyncClient, number: int) -> str | None:
        customer = shop.customers[number]
        response = await http.post(
            "/graphql",
            json={"query": UPDATE_BUYER_ADDRESS, "variables": {"input": ADDRESS}},
            headers=customer.headers,
        )
        return failure(response, "updateBuyerAddress", "UpdateBuyerAddressSuccess")

    return send


def _add_item(shop: Shop, query: str) -> Operation:
    """Return addBasketItem: request n puts one more of a book in customer n mod N's basket."""
    count = len(shop.customers)

    async def send(http: httpx.AsyncClient, number: int) -> str | None:
        who = number % count
        book = shop.books[(number // count) % len(shop.books)]
        variables = {"input": {"bookId": book, "quantity": 1}}
        response = await http.post(
            "/graphql",
            json={"query": query, "variables": variables},
            headers=shop.customers[who].headers,
        )
        problem = failure(response, "addBasketItem", "AddBasketItemSuccess")
        if problem is None:
            position = Position.parse(response.json()["data"]["addBasketItem"]["position"])
            shop.last[who] = max(position, shop.last.get(who, position))
        return problem

    return send


async def measure_adds(shop: Shop, duration: float) -> None:
    """Measure addBasketItem alone, then asking for the basket (read-your-writes), for `duration` s each."""
    for label, query in (
        ("addBasketItem", ADD_BASKET_ITEM),
        ("addBasketItem + basket { } (read-your-writes)", ADD_BASKET_ITEM_READ_YOUR_WRITES),
    ):
        operation = _add_item(shop, query)
        sample = await run_load(
            shop.url, operation, concurrency=shop.concurrency, duration=duration, probe=shop.probe
        )
        shop.add(Row.of(label, shop.concurrency, sample), sample.errors)


@dataclass
class Placed:
    """A placed order: its position, and when its placeOrder answer was read."""

    position: Position
    answered: float


async def measure_checkout(shop: Shop) -> None:
    """Subscribe every customer to basketChanged, place one order each, and time the saga."""
    ws_url = shop.url.replace("http", "ws", 1) + "/graphql"
    async with AsyncExitStack() as stack:
        watchers: list[BasketWatcher] = []
        tasks: list[asyncio.Task[None]] = []
        try:
            for number, customer in enumerate(shop.customers):
                ws = await stack.enter_async_context(websockets.connect(ws_url, subprotocols=PROTOCOL))
                # From the basket's latest position on: no notice can slip between subscribing and ordering.
                watcher = await subscribe_basket(ws, customer, shop.last[number])
                watchers.append(watcher)
                tasks.append(asyncio.create_task(watcher.listen(ws)))
            placed: dict[int, Placed] = {}
            before = shop.probe.read()
            orders = await run_load(
                shop.url,
                _place_order(shop, placed),
                concurrency=shop.concurrency,
                count=len(shop.customers),
                probe=shop.probe,
            )
            shop.add(Row.of("placeOrder", shop.concurrency, orders), orders.errors)
            waits = [watchers[n].wait_emptied_after(order.position) for n, order in placed.items()]
            try:
                await asyncio.wait_for(asyncio.gather(*waits), CHECKOUT_TIMEOUT)
            except TimeoutError:
                pass  # counted below as baskets not emptied
            after = shop.probe.read()
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
    completed = _completions(watchers, placed, before, after)
    row = Row.of("  checkout: placeOrder answer -> basket emptied", shop.concurrency, completed)
    shop.add(row, completed.errors)


def _completions(
    watchers: list[BasketWatcher], placed: dict[int, Placed], before: CpuTimes, after: CpuTimes
) -> Sample:
    """Time from each placeOrder answer to its emptied basket; rate until the last one was emptied."""
    completed = Sample(cpu=CpuShare.between(before, after))
    last = before.at
    for number, order in placed.items():
        emptied = watchers[number].emptied_after(order.position)
        if emptied is None:
            completed.errors["basket not emptied"] += 1
        else:
            completed.latencies_ms.append((emptied - order.answered) * 1000)
            last = max(last, emptied)
    for watcher in watchers:
        completed.errors.update(f"subscription: {error}" for error in watcher.errors)
    completed.elapsed = last - before.at
    return completed


def _place_order(shop: Shop, placed: dict[int, Placed]) -> Operation:
    """Return placeOrder for customer n (n < N: one order each), remembering when it was answered."""
    suffix = str(time.time_ns())

    async def send(http: httpx.AsyncClient, number: int) -> str | None:
        customer = shop.customers[number]
        variables = {"input": {"idempotencyKey": f"{customer.sub}-{suffix}"}}
        response = await http.post(
            "/graphql", json={"query": PLACE_ORDER, "variables": variables}, headers=customer.headers
        )
        answered = time.perf_counter()
        problem = failure(response, "placeOrder", "PlaceOrderSuccess")
        if problem is None:
            position = Position.parse(response.json()["data"]["placeOrder"]["position"])
            placed[number] = Placed(position=position, answered=answered)
        return problem

    return send


async def run(shop: Shop, duration: float) -> None:
    """Set up, then run every measure in turn."""
    started = time.perf_counter()
    await set_up(shop)
    print(f"Setup: {BOOKS} books, {len(shop.customers)} customers ({time.perf_counter() - started:.1f} s)")
    await measure_adds(shop, duration)
    await measure_checkout(shop)


def _describe(server: str, args: argparse.Namespace) -> None:
    print(f"Bookworm checkout flow, {time.strftime('%Y-%m-%d %H:%M')}, Python {platform.python_version()}")
    print(f"Server: {server}")
    print(
        f"Run: --customers {args.customers} --concurrency {args.concurrency} --duration {args.duration:g}"
        f" ({BOOKS} books)"
    )
    # Every other BOOKWORM_* setting that differs from its default (URLs left out: they may hold a password).
    tuned = [
        f"{k}={v}" for k, v in sorted(os.environ.items()) if k.startswith("BOOKWORM_") and k not in _UNSHOWN
    ]
    print(f"Settings: {' '.join(tuned) or 'defaults'}")
    print(f"Machine: {os.cpu_count()} cores, shared by the load generator, the server, PostgreSQL and Redis.")


def _positive(text: str) -> int:
    if not text.isdigit() or int(text) == 0:
        raise argparse.ArgumentTypeError(f"not a positive count: {text!r}")
    return int(text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=_positive, default=50, help="customers (default 50)")
    parser.add_argument("--concurrency", type=_positive, default=8, help="concurrent workers (default 8)")
    parser.add_argument(
        "--duration", type=float, default=8.0, help="seconds per addBasketItem measure (default 8)"
    )
    parser.add_argument("--url", help="a running Bookworm server; default: start one")
    args = parser.parse_args()
    started = time.perf_counter()
    prefix = f"bench-checkout-{time.time_ns():x}"  # fresh customers on every run, even on one database
    if args.url:
        _describe(f"the one at {args.url}", args)
        sign_in(admin_token(os.environ))
        customers = sign_customers(os.environ, prefix, args.customers)
        shop = Shop(args.url, CpuProbe(None), customers, args.concurrency)
        asyncio.run(run(shop, args.duration))
    else:
        with bookworm_server() as server:
            _describe(f"one `bookworm serve` (API and workers) on {server.url}; {backends(server.env)}", args)
            sign_in(server.admin_token())
            customers = sign_customers(server.env, prefix, args.customers)
            shop = Shop(server.url, CpuProbe.of(server.pid, server.env), customers, args.concurrency)
            asyncio.run(run(shop, args.duration))
    print()
    print_table(shop.rows)
    for measure, errors in shop.errors.items():
        print(f"errors in {measure}: " + ", ".join(f"{kind} x{n}" for kind, n in errors.most_common()))
    print(f"errors in total: {sum(row.errors for row in shop.rows)}")
    print(f"\nTotal time {time.perf_counter() - started:.0f} s.")


if __name__ == "__main__":
    main()
