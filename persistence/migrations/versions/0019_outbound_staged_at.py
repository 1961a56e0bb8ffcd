"""An outbound file's publishing is marked once it reaches its last rename
(``outbound_file.staged_at``), so a file the counterparty took before its delivery was
recorded is not published again (decision 88).

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-08 02:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0019"
down_revision = "0018"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("outbound_file", schema=None) as batch_op:
        batch_op.add_column(sa.Column("staged_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("outbound_file", schema=None) as batch_op:
        batch_op.drop_column("staged_at")
