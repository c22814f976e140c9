"""UUIDv7 identifiers: time-ordered, so new rows land at the end of an index."""

from __future__ import annotations

import os
import re
import time
import uuid

# The canonical form in either case: what `str(uuid.UUID(value)) == value.lower()` accepts, without
# building a UUID (every id of every request is checked; a UUID and its str cost about ten times more).
_CANONICAL = re.compile(
    r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", re.ASCII | re.IGNORECASE
)


def new_id() -> str:
    """Return a new UUIDv7 string (RFC 9562)."""
    millis = time.time_ns() // 1_000_000
    rand_a = int.from_bytes(os.urandom(2), "big") & 0x0FFF
    rand_b = int.from_bytes(os.urandom(8), "big") & ((1 << 62) - 1)
    value = (millis & ((1 << 48) - 1)) << 80 | 0x7 << 76 | rand_a << 64 | 0b10 << 62 | rand_b
    # What str(uuid.UUID(int=value)) returns, without the UUID: value is 128 bits by construction.
    h = f"{value:032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def is_id(value: str) -> bool:
    """Tell whether `value` is a canonical UUID string (any case)."""
    return isinstance(value, str) and _CANONICAL.fullmatch(value) is not None


# Ids derived from another id (UUIDv5): the same input always names the same stream.
_NAMESPACE = uuid.UUID("6f1c1a52-3c1e-5b7e-9d2a-626f6f6b776d")


def derived_id(kind: str, value: str) -> str:
    """Return the stable id of the `kind` that belongs to `value` (a customer's basket, say)."""
    return str(uuid.uuid5(_NAMESPACE, f"{kind}:{value}"))


def customer_id_of(subject: str) -> str:
    """Return the customer (and buyer) id of an identity token's `sub`."""
    return derived_id("customer", subject)


def basket_id_of(customer_id: str) -> str:
    return derived_id("basket", customer_id)


def checkout_id_of(order_id: str) -> str:
    return derived_id("checkout", order_id)
