"""The buyer aggregate: a customer's profile as ordering knows it (name, email, delivery address).

Its stream id is the customer id; the stream exists once the customer first saves an address.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from app.domain import snapshots
from app.domain.errors import FieldError, ValidationError
from app.domain.ordering import rules
from app.domain.ordering.commands import UpdateBuyerAddress
from app.events.base import Event
from app.events.ordering import BuyerAddressUpdated

LABEL = "Buyer"
NO_ADDRESS = "Add a delivery address first (updateBuyerAddress)."
# The shape `snapshot` writes; change it whenever State changes, so that older snapshots are ignored.
SNAPSHOT_VERSION = 1


@dataclass(frozen=True, kw_only=True)
class Address:
    street: str
    city: str
    province: str


@dataclass(frozen=True, kw_only=True)
class State:
    id: str | None = None
    name: str = ""
    email: str | None = None
    address: Address | None = None
    version: int = 0


def evolve(state: State, event: Event) -> State:
    """Fold one event into the state."""
    if isinstance(event, BuyerAddressUpdated):
        address = Address(street=event.street, city=event.city, province=event.province)
        return State(
            id=event.buyer_id, name=event.name, email=event.email, address=address, version=state.version + 1
        )
    return state


def decide(state: State, command: UpdateBuyerAddress) -> list[Event]:
    """Validate an address change; return no event when nothing would change."""
    errors: rules.Errors = []
    rules.entity_id(command.buyer_id, errors, "buyerId")
    event = BuyerAddressUpdated(
        buyer_id=command.buyer_id,
        name=command.name.strip(),
        email=command.email,
        street=rules.address_field(command.street, errors, "street"),
        city=rules.address_field(command.city, errors, "city"),
        province=rules.address_field(command.province, errors, "province"),
    )
    rules.raise_if_any(errors)
    unchanged = (
        state.id is not None
        and state.address == Address(street=event.street, city=event.city, province=event.province)
        and (state.name, state.email) == (event.name, event.email)
    )
    return [] if unchanged else [event]


def address_errors(state: State) -> list[FieldError]:
    """Return the error of a buyer who cannot receive an order yet (no address)."""
    return [] if state.address is not None else [FieldError("address", NO_ADDRESS)]


def require_address(state: State) -> Address:
    """Return the buyer's address; raise ValidationError on field `address` when there is none."""
    if state.address is None:
        raise ValidationError(address_errors(state))
    return state.address


def snapshot(state: State) -> dict[str, Any]:
    """Return the state as JSON data."""
    address = state.address
    return {
        "id": state.id,
        "name": state.name,
        "email": state.email,
        "address": None if address is None else [address.street, address.city, address.province],
        "version": state.version,
    }


def from_snapshot(data: object) -> State:
    """Return the state `snapshot` wrote; raise ValueError for any other data."""
    found = snapshots.fields(data, "id", "name", "email", "address", "version")
    address = None
    if found["address"] is not None:
        street, city, province = snapshots.texts(found["address"], 3)
        address = Address(street=street, city=city, province=province)
    return State(
        id=snapshots.optional_text(found["id"]),
        name=snapshots.text(found["name"]),
        email=snapshots.optional_text(found["email"]),
        address=address,
        version=snapshots.whole(found["version"], 0, 2**31 - 1),
    )
