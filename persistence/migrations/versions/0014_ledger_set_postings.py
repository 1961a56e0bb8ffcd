"""Set postings (DOMAIN §6): a batch's transfers are one ledger transaction whose entries
each carry their transfer's idempotency key (unique); DISB lines keep room on their pages
for the outcome written when their batch is posted

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-06 19:50:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("ledger_entry", schema=None) as batch_op:
        batch_op.add_column(sa.Column("idem_key", sa.String(length=80), nullable=True))
        batch_op.drop_index("ix_ledger_entry_txn")
        batch_op.create_index(
            "uq_ledger_entry_idem_key",
            ["idem_key"],
            unique=True,
            sqlite_where=sa.text("idem_key IS NOT NULL"),
            postgresql_where=sa.text("idem_key IS NOT NULL"),
        )
    if op.get_bind().dialect.name == "postgresql":
        # a line's outcome is written in place (a heap-only update, no index touched)
        op.execute("ALTER TABLE disb_line SET (fillfactor = 60)")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE disb_line RESET (fillfactor)")
    with op.batch_alter_table("ledger_entry", schema=None) as batch_op:
        batch_op.drop_index("uq_ledger_entry_idem_key")
        batch_op.create_index("ix_ledger_entry_txn", ["txn_id"], unique=False)
        batch_op.drop_column("idem_key")
