"""received_file.companions_sha256: what a file's companions (its control file, its photo
zip's control file) were when they decided its rejection (F01, F10)

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-29 12:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("received_file") as batch_op:
        batch_op.add_column(sa.Column("companions_sha256", sa.String(64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("received_file") as batch_op:
        batch_op.drop_column("companions_sha256")
