"""The catalog read model's tables (one set per generation) and the stable views queries read."""

from __future__ import annotations

VIEWS = ("book_view", "author_view", "category_view", "publisher_view")
NAMED = ("authors", "categories", "publishers")

_NAMED_TABLE = """
CREATE TABLE read.{p}{table} (
    id         uuid        PRIMARY KEY,
    name       text        NOT NULL,
    deleted    boolean     NOT NULL DEFAULT false,
    version    integer     NOT NULL,
    created_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL
)"""

_BOOKS = """
CREATE TABLE read.{p}books (
    id             uuid          PRIMARY KEY,
    name           text          NOT NULL,
    description    text,
    price          numeric(12,2) NOT NULL,
    price_sale     numeric(12,2),
    status         text          NOT NULL,
    category_id    uuid          NOT NULL,
    category_name  text          NOT NULL DEFAULT '',
    publisher_id   uuid          NOT NULL,
    publisher_name text          NOT NULL DEFAULT '',
    author_ids     uuid[]        NOT NULL,
    author_names   text[]        NOT NULL,
    rating_sum     float8        NOT NULL DEFAULT 0,
    total_reviews  integer       NOT NULL DEFAULT 0,
    average_rating float8        NOT NULL DEFAULT 0,
    deleted        boolean       NOT NULL DEFAULT false,
    version        integer       NOT NULL,
    created_at     timestamptz   NOT NULL,
    updated_at     timestamptz   NOT NULL,
    search         tsvector      NOT NULL DEFAULT ''
)"""

# array_to_string is only STABLE, so `search` cannot be a generated column; a trigger keeps it
# right on every write, including rename fan-out.
_SEARCH_FUNCTION = """
CREATE FUNCTION read.{p}books_search() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.search :=
        setweight(to_tsvector('english', NEW.name), 'A')
        || setweight(to_tsvector('english', array_to_string(NEW.author_names, ' ')), 'B')
        || setweight(to_tsvector('english', NEW.category_name || ' ' || NEW.publisher_name), 'C')
        || setweight(to_tsvector('english', coalesce(NEW.description, '')), 'D');
    RETURN NEW;
END $$"""

_SEARCH_TRIGGER = """
CREATE TRIGGER {p}books_search
    BEFORE INSERT OR UPDATE OF name, description, author_names, category_name, publisher_name
    ON read.{p}books FOR EACH ROW EXECUTE FUNCTION read.{p}books_search()"""

# Sort indexes end in id: the keyset cursor is (sort key, id). Partial indexes match the views.
_BOOK_INDEXES = (
    "CREATE INDEX {p}books_name ON read.{p}books (name, id) WHERE NOT deleted",
    "CREATE INDEX {p}books_price ON read.{p}books (price, id) WHERE NOT deleted",
    "CREATE INDEX {p}books_created ON read.{p}books (created_at, id) WHERE NOT deleted",
    "CREATE INDEX {p}books_rating ON read.{p}books (average_rating, id) WHERE NOT deleted",
    "CREATE INDEX {p}books_category ON read.{p}books (category_id) WHERE NOT deleted",
    "CREATE INDEX {p}books_publisher ON read.{p}books (publisher_id) WHERE NOT deleted",
    "CREATE INDEX {p}books_status ON read.{p}books (status) WHERE NOT deleted",
    # Not partial: a rename fans out to deleted books too, so their names stay true.
    "CREATE INDEX {p}books_authors ON read.{p}books USING gin (author_ids)",
    "CREATE INDEX {p}books_fts ON read.{p}books USING gin (search) WHERE NOT deleted",
)

_BOOK_VIEW = """
CREATE OR REPLACE VIEW read.book_view AS
SELECT id, name, description, price, price_sale, status, category_id, category_name,
       publisher_id, publisher_name, author_ids, author_names, rating_sum, average_rating,
       total_reviews, version, created_at, updated_at, search
FROM read.{p}books WHERE NOT deleted"""

_NAMED_VIEW = """
CREATE OR REPLACE VIEW read.{view} AS
SELECT id, name, version, created_at, updated_at FROM read.{p}{table} WHERE NOT deleted"""

_CATEGORY_VIEW = """
CREATE OR REPLACE VIEW read.category_view AS
SELECT c.id, c.name, c.version, c.created_at, c.updated_at,
       (SELECT count(*) FROM read.{p}books b WHERE b.category_id = c.id AND NOT b.deleted)::integer
           AS book_count
FROM read.{p}categories c WHERE NOT c.deleted"""


def ddl(prefix: str) -> list[str]:
    """Return the statements that create one generation's tables, trigger and indexes."""
    p = prefix
    statements = [_NAMED_TABLE.format(p=p, table=t) for t in NAMED]
    statements += [f"CREATE INDEX {p}{t}_name ON read.{p}{t} (name, id) WHERE NOT deleted" for t in NAMED]
    statements += [_BOOKS.format(p=p), _SEARCH_FUNCTION.format(p=p), _SEARCH_TRIGGER.format(p=p)]
    statements += [index.format(p=p) for index in _BOOK_INDEXES]
    return statements


def view_ddl(prefix: str) -> list[str]:
    """Return the statements that point the stable views at one generation's tables."""
    return [
        _BOOK_VIEW.format(p=prefix),
        _NAMED_VIEW.format(p=prefix, view="author_view", table="authors"),
        _CATEGORY_VIEW.format(p=prefix),
        _NAMED_VIEW.format(p=prefix, view="publisher_view", table="publishers"),
    ]


def drop_ddl(prefix: str) -> list[str]:
    """Return the statements that drop one generation (its trigger goes with the table)."""
    tables = [f"read.{prefix}{t}" for t in ("books", *NAMED)]
    return [
        f"DROP TABLE IF EXISTS {', '.join(tables)}",
        f"DROP FUNCTION IF EXISTS read.{prefix}books_search()",
    ]
