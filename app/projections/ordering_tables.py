"""The ordering read model's tables (one set per generation) and the stable views queries read."""

from __future__ import annotations

VIEWS = ("buyer_view", "order_view")
TABLES = ("buyers", "orders")

_BUYERS = """
CREATE TABLE read.{p}buyers (
    id         uuid        PRIMARY KEY,
    name       text        NOT NULL,
    email      text,
    street     text        NOT NULL,
    city       text        NOT NULL,
    province   text        NOT NULL,
    version    integer     NOT NULL,
    created_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL
)"""

# An order keeps what it was placed with: the buyer's name, email and address, and its lines
# (book id, name, quantity, unit price) as jsonb, read whole with the order.
_ORDERS = """
CREATE TABLE read.{p}orders (
    id            uuid          PRIMARY KEY,
    buyer_id      uuid          NOT NULL,
    buyer_name    text          NOT NULL,
    buyer_email   text,
    street        text          NOT NULL,
    city          text          NOT NULL,
    province      text          NOT NULL,
    status        text          NOT NULL,
    note          text,
    lines         jsonb         NOT NULL,
    total         numeric(12,2) NOT NULL,
    cancel_reason text,
    version       integer       NOT NULL,
    created_at    timestamptz   NOT NULL,
    updated_at    timestamptz   NOT NULL
)"""

# Lists are newest first, by (created_at, id); a customer's list is one buyer's, maybe of one status.
_ORDER_INDEXES = (
    "CREATE INDEX {p}orders_newest ON read.{p}orders (created_at DESC, id DESC)",
    "CREATE INDEX {p}orders_buyer ON read.{p}orders (buyer_id, created_at DESC, id DESC)",
    "CREATE INDEX {p}orders_status ON read.{p}orders (status, created_at DESC, id DESC)",
)

_BUYER_VIEW = """
CREATE OR REPLACE VIEW read.buyer_view AS
SELECT id, name, email, street, city, province, version, created_at, updated_at FROM read.{p}buyers"""

_ORDER_VIEW = """
CREATE OR REPLACE VIEW read.order_view AS
SELECT id, buyer_id, buyer_name, buyer_email, street, city, province, status, note, lines, total,
       cancel_reason, version, created_at, updated_at
FROM read.{p}orders"""


def ddl(prefix: str) -> list[str]:
    """Return the statements that create one generation's tables and indexes."""
    p = prefix
    return [_BUYERS.format(p=p), _ORDERS.format(p=p), *(index.format(p=p) for index in _ORDER_INDEXES)]


def view_ddl(prefix: str) -> list[str]:
    """Return the statements that point the stable views at one generation's tables."""
    return [_BUYER_VIEW.format(p=prefix), _ORDER_VIEW.format(p=prefix)]


def drop_ddl(prefix: str) -> list[str]:
    """Return the statement that drops one generation's tables."""
    return [f"DROP TABLE IF EXISTS {', '.join(f'read.{prefix}{t}' for t in TABLES)}"]
