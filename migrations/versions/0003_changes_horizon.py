"""The retention horizon of read.changes: the highest position whose changes may have been purged.

A subscription resuming below it could miss changes, so it is refused instead (app/live/hub.py).

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-04
"""

from migrations.script import run_script

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

UPGRADE = """
CREATE TABLE read.changes_horizon (
    one_row         boolean PRIMARY KEY DEFAULT true CHECK (one_row),
    transaction_id  bigint  NOT NULL,
    global_position bigint  NOT NULL
);
INSERT INTO read.changes_horizon (transaction_id, global_position) VALUES (0, 0);
"""


def upgrade() -> None:
    run_script(UPGRADE)


def downgrade() -> None:
    run_script("DROP TABLE read.changes_horizon;")
