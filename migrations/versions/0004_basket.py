"""Basket read model.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-27
"""

from migrations.script import run_script

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    run_script("SELECT 1;")


def downgrade() -> None:
    run_script("SELECT 1;")
