"""Rating read model: feedback.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-27
"""

from migrations.script import run_script

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    run_script("SELECT 1;")


def downgrade() -> None:
    run_script("SELECT 1;")
