"""received_file.archived_at (a move to archive/ or rejected/ cut short is finished by a
later run) and run_lock (one run at a time per connection on SQLite); outbound_file.path
now names an object in the hub's storage

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-06 14:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("received_file") as batch_op:
        batch_op.add_column(sa.Column("archived_at", sa.DateTime(timezone=True), nullable=True))
    # every file processed so far was archived by the run that processed it
    op.execute(
        "UPDATE received_file SET archived_at = processed_at "
        "WHERE outcome IN ('accepted', 'rejected')"
    )
    op.create_table(
        "run_lock",
        sa.Column("name", sa.String(120), nullable=False),
        sa.Column("holder", sa.String(80), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_run_lock")),
    )


def downgrade() -> None:
    op.drop_table("run_lock")
    with op.batch_alter_table("received_file") as batch_op:
        batch_op.drop_column("archived_at")
