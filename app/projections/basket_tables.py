"""The basket read model's tables (one set per generation) and the stable views queries read.

Besides baskets and their lines, the projection keeps its own copy of what it needs of each book (name,
the price a buyer pays, whether it can still be bought), fed by the catalog's events: the views price
every line from that copy, so baskets follow catalog price changes without rewriting a line.
"""

from __future__ import annotations

VIEWS = ("basket_view", "basket_line_view")
TABLES = ("baskets", "lines", "books")

_BASKETS = """
CREATE TABLE read.{p}baskets (
    id          uuid        PRIMARY KEY,
    customer_id uuid        NOT NULL,
    version     integer     NOT NULL,
    created_at  timestamptz NOT NULL,
    updated_at  timestamptz NOT NULL
)"""

# seq: the basket's stream version when the line was first added, so lines list in that order.
_LINES = """
CREATE TABLE read.{p}lines (
    basket_id uuid    NOT NULL,
    book_id   uuid    NOT NULL,
    quantity  integer NOT NULL,
    seq       integer NOT NULL,
    PRIMARY KEY (basket_id, book_id)
)"""

_BOOKS = """
CREATE TABLE read.{p}books (
    id         uuid          PRIMARY KEY,
    name       text          NOT NULL,
    unit_price numeric(12,2) NOT NULL,
    available  boolean       NOT NULL,
    version    integer       NOT NULL
)"""

# Applying an event needs only the primary keys (its upserts' conflict targets); a rebuild adds these
# after its bulk load, where one pass over the rows checks each (a third of a basket event's cost was the
# foreign key's check, row by row). The names are those PostgreSQL gives inline constraints.
_DEFERRED = (
    "ALTER TABLE read.{p}baskets ADD CONSTRAINT {p}baskets_customer_id_key UNIQUE (customer_id)",
    "ALTER TABLE read.{p}lines ADD CONSTRAINT {p}lines_basket_id_fkey"
    " FOREIGN KEY (basket_id) REFERENCES read.{p}baskets (id)",
    # A price change must find every basket holding the book.
    "CREATE INDEX {p}lines_book ON read.{p}lines (book_id)",
)

_LINE_VIEW = """
CREATE OR REPLACE VIEW read.basket_line_view AS
SELECT l.basket_id, b.customer_id, l.book_id, l.quantity, l.seq,
       coalesce(k.name, '') AS book_name,
       coalesce(k.unit_price, 0)::numeric(12,2) AS unit_price,
       coalesce(k.available, false) AS available,
       (l.quantity * coalesce(k.unit_price, 0))::numeric(14,2) AS line_total
FROM read.{p}lines l
JOIN read.{p}baskets b ON b.id = l.basket_id
LEFT JOIN read.{p}books k ON k.id = l.book_id"""

# A line whose book was deleted stays until the customer removes it, but it is not counted.
_BASKET_VIEW = """
CREATE OR REPLACE VIEW read.basket_view AS
SELECT b.id, b.customer_id, b.version, b.created_at, b.updated_at,
       coalesce(sum(l.quantity * k.unit_price) FILTER (WHERE k.available), 0)::numeric(14,2) AS total_price,
       count(l.book_id)::integer AS line_count
FROM read.{p}baskets b
LEFT JOIN read.{p}lines l ON l.basket_id = b.id
LEFT JOIN read.{p}books k ON k.id = l.book_id
GROUP BY b.id"""


def ddl(prefix: str) -> list[str]:
    """Return the statements that create one generation's tables with their primary keys."""
    return [sql.format(p=prefix) for sql in (_BASKETS, _LINES, _BOOKS)]


def deferred_ddl(prefix: str) -> list[str]:
    """Return the statements that add one generation's other constraints and indexes."""
    return [sql.format(p=prefix) for sql in _DEFERRED]


def view_ddl(prefix: str) -> list[str]:
    """Return the statements that point the stable views at one generation's tables."""
    return [_BASKET_VIEW.format(p=prefix), _LINE_VIEW.format(p=prefix)]


def drop_ddl(prefix: str) -> list[str]:
    """Return the statement that drops one generation."""
    return [f"DROP TABLE IF EXISTS {', '.join(f'read.{prefix}{t}' for t in TABLES)}"]
