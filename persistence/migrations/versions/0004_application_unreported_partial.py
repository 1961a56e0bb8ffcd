"""application: the index of unreported final outcomes holds only those rows

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-22 04:11:58
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

UNREPORTED = "final_date IS NOT NULL AND cardrsp_name IS NULL"


def upgrade() -> None:
    op.drop_index("ix_application_unreported", table_name="application")
    op.create_index(
        "ix_application_unreported",
        "application",
        ["bureau", "final_date"],
        unique=False,
        sqlite_where=sa.text(UNREPORTED),
        postgresql_where=sa.text(UNREPORTED),
    )


def downgrade() -> None:
    op.drop_index("ix_application_unreported", table_name="application")
    op.create_index(
        "ix_application_unreported",
        "application",
        ["bureau", "final_date", "cardrsp_name"],
        unique=False,
    )
