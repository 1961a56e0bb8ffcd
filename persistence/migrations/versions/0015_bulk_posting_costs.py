"""What a day's benefit posting costs per line (DOMAIN §6): a ledger entry's transaction
is checked by ``sscard ledger check`` (entries without their transaction are counted),
not by a per-row foreign-key trigger; on PostgreSQL the tables a posting updates in bulk
keep room on their pages for heap-only updates (no index touched): ``account`` (its
cached balance) half empty, ``disb_line`` (its outcome, longer than the line's NULLs)
60 % empty. The room applies to pages written from now on (``VACUUM FULL`` rewrites the
older ones).

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-06 23:10:00.000000
"""

from __future__ import annotations

from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("ledger_entry", schema=None) as batch_op:
        batch_op.drop_constraint("fk_ledger_entry_txn_id_ledger_txn", type_="foreignkey")
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE account SET (fillfactor = 50)")
        op.execute("ALTER TABLE disb_line SET (fillfactor = 40)")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE disb_line SET (fillfactor = 60)")
        op.execute("ALTER TABLE account RESET (fillfactor)")
    with op.batch_alter_table("ledger_entry", schema=None) as batch_op:
        batch_op.create_foreign_key(
            "fk_ledger_entry_txn_id_ledger_txn", "ledger_txn", ["txn_id"], ["id"]
        )
