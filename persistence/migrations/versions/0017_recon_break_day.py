"""What each business date's reconciliation found of a batch's item (its amount that
day), so finance's reports of a past date, written again later, show what was known then
(ICD §5.12, decision 67). Existing items get the day they were last found.

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-07 01:40:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "recon_break_day",
        sa.Column("break_id", sa.Integer(), nullable=False),
        sa.Column("business_date", sa.String(length=8), nullable=False),
        sa.Column("amount_fen", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("break_id", "business_date", name=op.f("pk_recon_break_day")),
    )
    op.execute(
        "INSERT INTO recon_break_day (break_id, business_date, amount_fen) "
        "SELECT id, last_date, amount_fen FROM recon_break WHERE reason <> 'R09'"
    )


def downgrade() -> None:
    op.drop_table("recon_break_day")
