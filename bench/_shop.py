"""Customers for the checkout benchmark: their tokens, the shop's operations, and a basket watcher."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Mapping
from dataclasses import dataclass, field

import websockets

from app.eventstore.position import Position
from app.identity.keys import signing_secret
from app.identity.tokens import issue
from app.settings import Settings

UPDATE_BUYER_ADDRESS = """
mutation($input: UpdateBuyerAddressInput!) {
  updateBuyerAddress(input: $input) {
    __typename ... on UpdateBuyerAddressSuccess { buyerId position buyer { address { city } } }
  }
}"""
ADD_BASKET_ITEM = """
mutation($input: AddBasketItemInput!) {
  addBasketItem(input: $input) { __typename ... on AddBasketItemSuccess { basketId position } }
}"""
# The same mutation, also asking for the basket: the answer waits until the basket read model has it.
ADD_BASKET_ITEM_READ_YOUR_WRITES = """
mutation($input: AddBasketItemInput!) {
  addBasketItem(input: $input) {
    __typename
    ... on AddBasketItemSuccess { basketId position basket { totalPrice items { bookId quantity } } }
  }
}"""
PLACE_ORDER = """
mutation($input: PlaceOrderInput!) {
  placeOrder(input: $input) { __typename ... on PlaceOrderSuccess { orderId position } }
}"""
SUBSCRIBE_BASKET = """
subscription($after: String) {
  basketChanged(after: $after) { kind position basket { items { bookId } } }
}"""
ADDRESS = {"street": "12 Rue des Lilas", "city": "Lyon", "province": "Rhône"}


@dataclass(frozen=True)
class Customer:
    """A signed-in customer: the subject of their token, and the token."""

    sub: str
    token: str

    @property
    def headers(self) -> dict[str, str]:
        """Return the HTTP headers (and connection_init payload) that sign this customer in."""
        return {"Authorization": f"Bearer {self.token}"}


def sign_customers(env: Mapping[str, str], prefix: str, count: int) -> list[Customer]:
    """Sign `count` customer tokens the way `bookworm token --role customer` does, in this process.

    Running `bookworm token` costs ~0.8 s of Python start-up per token: 40 s for 50 customers.
    """
    settings = Settings.from_env(env)
    secret = signing_secret(settings)
    customers = []
    for number in range(count):
        sub = f"{prefix}-{number}"
        token = issue(
            secret,
            subject=sub,
            name=f"Bench Customer {number}",
            email=f"{sub}@example.com",
            issuer=settings.jwt_issuer,
            audience=settings.jwt_audience,
        )
        customers.append(Customer(sub=sub, token=token))
    return customers


@dataclass
class BasketWatcher:
    """One customer's basketChanged subscription: when each notice arrived, and whether it was empty."""

    seen: list[tuple[Position, bool, float]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    async def listen(self, ws: websockets.ClientConnection) -> None:
        """Record every notice; answer the protocol's pings."""
        async for raw in ws:
            message = json.loads(raw)
            kind = message.get("type")
            if kind == "ping":
                await ws.send(json.dumps({"type": "pong"}))
            elif kind == "next" and message["payload"].get("errors"):
                self.errors.append(str(message["payload"]["errors"][0].get("message"))[:60])
            elif kind == "next":
                change = message["payload"]["data"]["basketChanged"]
                empty = change["basket"] is not None and not change["basket"]["items"]
                self.seen.append((Position.parse(change["position"]), empty, time.perf_counter()))
                self.changed.set()
            elif kind == "error":
                self.errors.append(str(message.get("payload"))[:60])
                self.changed.set()

    def emptied_after(self, position: Position) -> float | None:
        """Return when a notice after `position` first showed the basket empty; None if none yet."""
        times = [at for seen, empty, at in self.seen if empty and seen > position]
        return min(times, default=None)

    async def wait_emptied_after(self, position: Position) -> None:
        """Return once a notice after `position` shows the basket empty (or the subscription failed)."""
        while self.emptied_after(position) is None and not self.errors:
            self.changed.clear()
            await self.changed.wait()


async def subscribe_basket(
    ws: websockets.ClientConnection, customer: Customer, after: Position
) -> BasketWatcher:
    """Sign the websocket in as `customer` and follow their basket from `after` on (no gap)."""
    await ws.send(json.dumps({"type": "connection_init", "payload": customer.headers}))
    ack = json.loads(await ws.recv())
    if ack.get("type") != "connection_ack":
        raise SystemExit(f"the websocket refused {customer.sub}: {ack}")
    payload = {"query": SUBSCRIBE_BASKET, "variables": {"after": str(after)}}
    await ws.send(json.dumps({"id": "1", "type": "subscribe", "payload": payload}))
    return BasketWatcher()
