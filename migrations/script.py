"""Helpers of migrations: multi-statement scripts, and creating or dropping a projection's read model."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from alembic import op

from app.projections.base import table_prefix

if TYPE_CHECKING:
    from app.projections.base import Projection

try:
    from sqlalchemy.util import await_only as _await  # SQLAlchemy 2.0
except ImportError:  # pragma: no cover - SQLAlchemy 2.1 renamed it
    from sqlalchemy.util.concurrency import await_ as _await


def run_script(sql: str) -> None:
    """Execute `sql` (many statements, no parameters) on the migration's connection."""
    driver: Any = op.get_bind().connection.dbapi_connection
    _await(driver.driver_connection.execute(sql))


FIRST_GENERATION = 1


def create_projection(projection: Projection) -> None:
    """Create a new projection's generation-1 tables and views from its own DDL, and its checkpoint row."""
    prefix = table_prefix(projection.name, FIRST_GENERATION)
    statements = projection.ddl(prefix) + projection.deferred_ddl(prefix) + projection.view_ddl(prefix)
    run_script(";\n".join(statements) + ";\n")
    run_script(
        "INSERT INTO read.projections (name, version, generation, transaction_id, global_position) "
        f"VALUES ('{projection.name}', {projection.version}, {FIRST_GENERATION}, 0, 0);"
    )


_DROP_PROJECTION = r"""
DROP VIEW IF EXISTS {views};
DO $$
DECLARE t record;
BEGIN
    FOR t IN SELECT tablename FROM pg_tables
             WHERE schemaname = 'read' AND tablename LIKE '{name}\_g%' LOOP
        EXECUTE format('DROP TABLE IF EXISTS read.%I CASCADE', t.tablename);
    END LOOP;
END $$;
DELETE FROM read.projections WHERE name = '{name}';
"""


def drop_projection(name: str, views: Sequence[str]) -> None:
    """Drop every generation of projection `name`, its views and its checkpoint row."""
    run_script(_DROP_PROJECTION.format(name=name, views=", ".join(f"read.{v}" for v in views)))
