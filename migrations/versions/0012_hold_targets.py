"""Holding a command's targets in one statement: their shared locks, then the check of their versions.

A writer that refers to other streams (a book to its author, category and publisher) takes a shared
advisory lock on each target and then checks that each is still at the version it decided on. The check
must read after the locks are held: in one plain statement it would read the statement's snapshot, taken
before them. A VOLATILE PL/pgSQL function takes a fresh snapshot for each query it runs (READ COMMITTED),
so the locks and the check are one round trip. It returns one target no longer at its version, or NULL.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-06
"""

from migrations.script import run_script

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

UPGRADE = """
CREATE FUNCTION eventstore.hold_targets(lock_space int, targets text[], versions int[]) RETURNS text
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    changed text;
BEGIN
    PERFORM pg_advisory_xact_lock_shared(lock_space, hashtext(t)) FROM unnest(targets) AS t;
    SELECT x.id INTO changed FROM unnest(targets, versions) AS x(id, version)
    WHERE (SELECT coalesce(max(stream_version), 0) FROM eventstore.events WHERE stream_id = x.id) <> x.version
    LIMIT 1;
    RETURN changed;
END
$$;
"""

DOWNGRADE = "DROP FUNCTION eventstore.hold_targets(int, text[], int[]);"


def upgrade() -> None:
    run_script(UPGRADE)


def downgrade() -> None:
    run_script(DOWNGRADE)
