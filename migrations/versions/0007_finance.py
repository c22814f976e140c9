"""Checkout saga state and the notification outbox.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-27
"""

from migrations.script import run_script

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    run_script("SELECT 1;")


def downgrade() -> None:
    run_script("SELECT 1;")
