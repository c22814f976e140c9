"""Ordering read model: generation 1 buyers and orders tables, their views, and the checkpoint row.

The tables and views come from the projection's own DDL, like the catalog's (0002).

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-27
"""

from app.projections.ordering import ORDERING
from migrations.script import create_projection, drop_projection

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    create_projection(ORDERING)


def downgrade() -> None:
    drop_projection(ORDERING.name, ["buyer_view", "order_view"])
