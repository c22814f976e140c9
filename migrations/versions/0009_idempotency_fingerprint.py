"""Idempotency fingerprints: a key remembers the request it answered, not only the command type.

`fingerprint` is the sha256 hex of the command's type and the fields its caller chose
(app/commands/idempotency.py). Keys stored before this revision have none and keep matching any
request of their command type.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-06
"""

from migrations.script import run_script

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

UPGRADE = "ALTER TABLE eventstore.idempotency ADD COLUMN fingerprint text;"

DOWNGRADE = "ALTER TABLE eventstore.idempotency DROP COLUMN fingerprint;"


def upgrade() -> None:
    run_script(UPGRADE)


def downgrade() -> None:
    run_script(DOWNGRADE)
