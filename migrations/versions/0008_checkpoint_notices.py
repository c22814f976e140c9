"""Checkpoint notices: every forward move of a projection checkpoint NOTIFYs `bookworm_checkpoints`.

The payload is "<name> <transaction_id> <global_position>". NOTIFY is transactional: PostgreSQL
delivers the notice to every listening session when, and only when, the move commits. API processes
listen for it to wake requests waiting for their writes (app/queries/consistency.py).

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-06
"""

from migrations.script import run_script

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

UPGRADE = """
CREATE FUNCTION read.notify_checkpoint() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify(
        'bookworm_checkpoints', NEW.name || ' ' || NEW.transaction_id || ' ' || NEW.global_position
    );
    RETURN NULL;
END $$;
CREATE TRIGGER checkpoint_moved
AFTER UPDATE OF transaction_id, global_position ON read.projections
FOR EACH ROW
WHEN ((NEW.transaction_id, NEW.global_position) > (OLD.transaction_id, OLD.global_position))
EXECUTE FUNCTION read.notify_checkpoint();
"""

DOWNGRADE = """
DROP TRIGGER checkpoint_moved ON read.projections;
DROP FUNCTION read.notify_checkpoint();
"""


def upgrade() -> None:
    run_script(UPGRADE)


def downgrade() -> None:
    run_script(DOWNGRADE)
