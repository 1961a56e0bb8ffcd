"""A DISB line says whether it used its pay_no (``disb_line.keyed``): a line with the
wrong number of fields has no key, so a later file may use its pay_no (decision 117).
Lines stored before keep theirs used, as they were taken.

Revision ID: 0022
Revises: 0021
Create Date: 2026-12-07 10:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0022"
down_revision = "0021"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("disb_line", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("keyed", sa.Boolean(), nullable=False, server_default=sa.true())
        )


def downgrade() -> None:
    with op.batch_alter_table("disb_line", schema=None) as batch_op:
        batch_op.drop_column("keyed")
