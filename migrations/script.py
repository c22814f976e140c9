"""Run a multi-statement SQL script in Alembic's transaction (asyncpg prepares one statement at a time)."""

from __future__ import annotations

from typing import Any

from alembic import op

try:
    from sqlalchemy.util import await_only as _await  # SQLAlchemy 2.0
except ImportError:  # pragma: no cover - SQLAlchemy 2.1 renamed it
    from sqlalchemy.util.concurrency import await_ as _await


def run_script(sql: str) -> None:
    """Execute `sql` (many statements, no parameters) on the migration's connection."""
    driver: Any = op.get_bind().connection.dbapi_connection
    _await(driver.driver_connection.execute(sql))
