"""A customer account's balance is the sum of its ledger entries, kept nowhere else
(DOMAIN §6): ``account.balance_fen`` (a cache) and its check are dropped, and on
PostgreSQL ``account`` no longer keeps half of each page free for rewriting that cache.
A day's benefit credits then write their entries and touch no ``account`` row. The
downgrade brings the column back, filled from the entries.

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-07 01:40:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("account", schema=None) as batch_op:
        batch_op.drop_constraint(op.f("ck_account_balance_fen"), type_="check")
        batch_op.drop_column("balance_fen")
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE account RESET (fillfactor)")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE account SET (fillfactor = 50)")
    with op.batch_alter_table("account", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("balance_fen", sa.BigInteger(), nullable=False, server_default="0")
        )
    op.execute(
        "UPDATE account SET balance_fen = COALESCE((SELECT SUM(e.amount_fen) FROM ledger_entry e "
        "WHERE e.account = account.pan), 0)"
    )
    with op.batch_alter_table("account", schema=None) as batch_op:
        batch_op.alter_column("balance_fen", server_default=None)
        batch_op.create_check_constraint(op.f("ck_account_balance_fen"), "balance_fen >= 0")
