"""Basket read model: generation 1 tables, the stable views, and the projection's checkpoint row.

The tables and views come from the projection's own DDL, like the catalog's (0002).

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-27
"""

from app.projections.basket import BASKET
from migrations.script import create_projection, drop_projection

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    create_projection(BASKET)


def downgrade() -> None:
    drop_projection(BASKET.name, ["basket_view", "basket_line_view"])
