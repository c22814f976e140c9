"""The rating read model's tables (one set per generation) and the stable view queries read."""

from __future__ import annotations

_FEEDBACKS = """
CREATE TABLE read.{p}feedbacks (
    id         uuid        PRIMARY KEY,
    book_id    uuid        NOT NULL,
    first_name text        NOT NULL,
    last_name  text        NOT NULL,
    comment    text,
    rating     integer     NOT NULL,
    deleted    boolean     NOT NULL DEFAULT false,
    version    integer     NOT NULL,
    created_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL
)"""

# One index per keyset order of a book's feedback (NEWEST, RATING); partial like the view.
_INDEXES = (
    "CREATE INDEX {p}feedbacks_newest ON read.{p}feedbacks (book_id, created_at, id) WHERE NOT deleted",
    "CREATE INDEX {p}feedbacks_rating ON read.{p}feedbacks (book_id, rating, id) WHERE NOT deleted",
)

_FEEDBACK_VIEW = """
CREATE OR REPLACE VIEW read.feedback_view AS
SELECT id, book_id, first_name, last_name, comment, rating, created_at
FROM read.{p}feedbacks WHERE NOT deleted"""


def ddl(prefix: str) -> list[str]:
    """Return the statements that create one generation's table and indexes."""
    return [_FEEDBACKS.format(p=prefix), *(index.format(p=prefix) for index in _INDEXES)]


def view_ddl(prefix: str) -> list[str]:
    """Return the statement that points the stable view at one generation's table."""
    return [_FEEDBACK_VIEW.format(p=prefix)]


def drop_ddl(prefix: str) -> list[str]:
    return [f"DROP TABLE IF EXISTS read.{prefix}feedbacks"]
