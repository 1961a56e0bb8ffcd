"""A card identification code is per chip, new on every card (DOMAIN §1): unique among
the cards that have one (decision 113).

Revision ID: 0021
Revises: 0020
Create Date: 2026-12-07 09:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0021"
down_revision = "0020"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("card", schema=None) as batch_op:
        batch_op.create_index(
            "uq_card_card_id_code",
            ["card_id_code"],
            unique=True,
            sqlite_where=sa.text("card_id_code IS NOT NULL"),
            postgresql_where=sa.text("card_id_code IS NOT NULL"),
        )


def downgrade() -> None:
    with op.batch_alter_table("card", schema=None) as batch_op:
        batch_op.drop_index("uq_card_card_id_code")
