"""Rating read model: generation 1 of the feedback table, its view, and the projection's checkpoint row.

The table and view come from the projection's own DDL, like the catalog's (0002).

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-27
"""

from app.projections.rating import RATING
from migrations.script import create_projection, drop_projection, run_script

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    create_projection(RATING)


def downgrade() -> None:
    drop_projection(RATING.name, ["feedback_view"])
    run_script(
        "DELETE FROM read.changes WHERE entity = 'Feedback';"
        "DELETE FROM bus.checkpoints WHERE name = 'feedback-check';"
    )
