"""Ordering read model: buyers and orders.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-27
"""

from migrations.script import run_script

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    run_script("SELECT 1;")


def downgrade() -> None:
    run_script("SELECT 1;")
