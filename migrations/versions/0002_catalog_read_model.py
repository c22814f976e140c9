"""Catalog read model: generation 1 tables, the stable views, and the projection's checkpoint row.

The tables and views come from the projection's own DDL, so a new database always starts with the
layout the code expects; `read.projections.generation` names the table set the views point at.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-27
"""

from app.projections.base import table_prefix
from app.projections.catalog import CATALOG
from migrations.script import run_script

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

FIRST_GENERATION = 1


def _script(statements: list[str]) -> str:
    return ";\n".join(statements) + ";\n"


def upgrade() -> None:
    prefix = table_prefix(CATALOG.name, FIRST_GENERATION)
    run_script("ALTER TABLE read.projections ADD COLUMN generation integer NOT NULL DEFAULT 1;")
    run_script(_script(CATALOG.ddl(prefix) + CATALOG.deferred_ddl(prefix) + CATALOG.view_ddl(prefix)))
    run_script(
        "INSERT INTO read.projections (name, version, generation, transaction_id, global_position) "
        f"VALUES ('{CATALOG.name}', {CATALOG.version}, {FIRST_GENERATION}, 0, 0);"
    )


DOWNGRADE = r"""
DROP VIEW IF EXISTS read.book_view, read.author_view, read.category_view, read.publisher_view;
DO $$
DECLARE t record;
BEGIN
    FOR t IN SELECT tablename FROM pg_tables
             WHERE schemaname = 'read' AND tablename LIKE 'catalog\_g%' LOOP
        EXECUTE format('DROP TABLE IF EXISTS read.%I CASCADE', t.tablename);
    END LOOP;
    FOR t IN SELECT proname FROM pg_proc JOIN pg_namespace n ON n.oid = pronamespace
             WHERE n.nspname = 'read' AND proname LIKE 'catalog\_g%' LOOP
        EXECUTE format('DROP FUNCTION IF EXISTS read.%I()', t.proname);
    END LOOP;
END $$;
DELETE FROM read.projections WHERE name = 'catalog';
ALTER TABLE read.projections DROP COLUMN generation;
"""


def downgrade() -> None:
    run_script(DOWNGRADE)
