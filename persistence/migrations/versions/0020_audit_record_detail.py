"""An audit record keeps free text beside its statuses (``audit_record.detail``): a break
resolution's reason is in the hash-chained trail, not only on the break (decision 109).
Records written before keep an empty detail and hash as before.

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-07 08:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0020"
down_revision = "0019"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("audit_record", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("detail", sa.String(length=200), nullable=False, server_default="")
        )


def downgrade() -> None:
    with op.batch_alter_table("audit_record", schema=None) as batch_op:
        batch_op.drop_column("detail")
