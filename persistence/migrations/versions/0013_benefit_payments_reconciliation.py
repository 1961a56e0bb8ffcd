"""Benefit payments and reconciliation (ICD §5.10–§5.12; DOMAIN §6, §7): DISB batches
and lines with their outcomes, statement lines, the lines forwarded to partner banks, each batch's daily reconciliation and the
breaks carried forward until matched or resolved

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-06 16:49:01.708306
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "disb_forward",
        sa.Column("partner_key", sa.String(length=30), nullable=False),
        sa.Column("batch_id", sa.Integer(), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("bank_code", sa.String(length=4), nullable=False),
        sa.Column("id_no", sa.String(length=18), nullable=False),
        sa.Column("name", sa.String(length=30), nullable=False),
        sa.Column("card_no", sa.String(length=9), nullable=False),
        sa.Column("pan", sa.String(length=19), nullable=False),
        sa.Column("amount_fen", sa.BigInteger(), nullable=False),
        sa.Column("benefit_type", sa.String(length=3), nullable=False),
        sa.Column("period", sa.String(length=6), nullable=False),
        sa.Column("memo", sa.String(length=100), nullable=False),
        sa.PrimaryKeyConstraint("partner_key", name=op.f("pk_disb_forward")),
    )
    with op.batch_alter_table("disb_forward", schema=None) as batch_op:
        batch_op.create_index("ix_disb_forward_bank", ["bank_code"], unique=False)

    op.create_table(
        "disb_line",
        sa.Column("batch_id", sa.Integer(), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("bureau", sa.String(length=8), nullable=False),
        sa.Column("pay_no", sa.String(length=64), nullable=False),
        sa.Column("pan", sa.String(length=19), nullable=False),
        sa.Column("amount_fen", sa.BigInteger(), nullable=False),
        sa.Column("result", sa.String(length=4), nullable=True),
        sa.Column("credited_fen", sa.BigInteger(), nullable=False),
        sa.Column("posted_time", sa.String(length=14), nullable=True),
        sa.Column("bank_ref", sa.String(length=30), nullable=True),
        sa.Column("partner", sa.String(length=4), nullable=True),
        sa.Column("partner_key", sa.String(length=30), nullable=True),
        sa.Column("partner_request", sa.String(length=100), nullable=True),
        sa.Column("partner_sent_date", sa.String(length=8), nullable=True),
        sa.Column("answered_date", sa.String(length=8), nullable=True),
        sa.PrimaryKeyConstraint("batch_id", "seq", name=op.f("pk_disb_line")),
    )
    with op.batch_alter_table("disb_line", schema=None) as batch_op:
        batch_op.create_index("ix_disb_line_bureau_pay_no", ["bureau", "pay_no"], unique=False)
        batch_op.create_index(
            "ix_disb_line_partner_key",
            ["partner_key"],
            unique=True,
            sqlite_where=sa.text("partner_key IS NOT NULL"),
            postgresql_where=sa.text("partner_key IS NOT NULL"),
        )

    op.create_table(
        "recon_batch",
        sa.Column("bureau", sa.String(length=8), nullable=False),
        sa.Column("business_date", sa.String(length=8), nullable=False),
        sa.Column("batch_no", sa.String(length=20), nullable=False),
        sa.Column("benefit_type", sa.String(length=3), nullable=False),
        sa.Column("instructed_count", sa.Integer(), nullable=False),
        sa.Column("instructed_fen", sa.BigInteger(), nullable=False),
        sa.Column("credited_count", sa.Integer(), nullable=False),
        sa.Column("credited_fen", sa.BigInteger(), nullable=False),
        sa.Column("failed_count", sa.Integer(), nullable=False),
        sa.Column("failed_fen", sa.BigInteger(), nullable=False),
        sa.Column("funded_fen", sa.BigInteger(), nullable=False),
        sa.Column("returned_fen", sa.BigInteger(), nullable=False),
        sa.Column("partner_fen", sa.BigInteger(), nullable=False),
        sa.Column("partner_settled_fen", sa.BigInteger(), nullable=False),
        sa.Column("difference_fen", sa.BigInteger(), nullable=False),
        sa.Column("status", sa.String(length=8), nullable=False),
        sa.Column("break_reason", sa.String(length=3), nullable=False),
        sa.PrimaryKeyConstraint("bureau", "business_date", "batch_no", name=op.f("pk_recon_batch")),
    )
    op.create_table(
        "recon_break",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("bureau", sa.String(length=8), nullable=False),
        sa.Column("batch_no", sa.String(length=20), nullable=False),
        sa.Column("reason", sa.String(length=3), nullable=False),
        sa.Column("ref", sa.String(length=40), nullable=False),
        sa.Column("amount_fen", sa.BigInteger(), nullable=False),
        sa.Column("first_date", sa.String(length=8), nullable=False),
        sa.Column("last_date", sa.String(length=8), nullable=False),
        sa.Column("matched_date", sa.String(length=8), nullable=True),
        sa.Column("resolved_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("resolved_by", sa.String(length=40), nullable=True),
        sa.Column("resolution", sa.String(length=200), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_recon_break")),
    )
    with op.batch_alter_table("recon_break", schema=None) as batch_op:
        batch_op.create_index(
            "uq_recon_break_item", ["bureau", "batch_no", "reason", "ref"], unique=True
        )

    op.create_table(
        "disb_batch",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("bureau", sa.String(length=8), nullable=False),
        sa.Column("batch_no", sa.String(length=20), nullable=False),
        sa.Column("file_id", sa.Integer(), nullable=False),
        sa.Column("business_date", sa.String(length=8), nullable=False),
        sa.Column("benefit_type", sa.String(length=3), nullable=False),
        sa.Column("line_count", sa.Integer(), nullable=False),
        sa.Column("total_fen", sa.BigInteger(), nullable=False),
        sa.Column("funded_fen", sa.BigInteger(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("funded_date", sa.String(length=8), nullable=True),
        sa.Column("answered_date", sa.String(length=8), nullable=True),
        sa.CheckConstraint(
            "status IN ('awaiting_funds', 'funded', 'unfunded', 'answered')",
            name=op.f("ck_disb_batch_status"),
        ),
        sa.ForeignKeyConstraint(
            ["file_id"], ["received_file.id"], name=op.f("fk_disb_batch_file_id_received_file")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_disb_batch")),
    )
    with op.batch_alter_table("disb_batch", schema=None) as batch_op:
        batch_op.create_index("ix_disb_batch_batch_no", ["batch_no"], unique=False)
        batch_op.create_index("uq_disb_batch_bureau_batch_no", ["bureau", "batch_no"], unique=True)

    op.create_table(
        "statement_line",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("sender", sa.String(length=8), nullable=False),
        sa.Column("txn_ref", sa.String(length=30), nullable=False),
        sa.Column("file_id", sa.Integer(), nullable=False),
        sa.Column("business_date", sa.String(length=8), nullable=False),
        sa.Column("value_date", sa.String(length=8), nullable=False),
        sa.Column("dc", sa.String(length=1), nullable=False),
        sa.Column("amount_fen", sa.BigInteger(), nullable=False),
        sa.Column("memo", sa.String(length=100), nullable=False),
        sa.Column("kind", sa.String(length=12), nullable=False),
        sa.Column("bureau", sa.String(length=8), nullable=True),
        sa.Column("batch_no", sa.String(length=20), nullable=True),
        sa.Column("bank_code", sa.String(length=4), nullable=True),
        sa.Column("posted", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(
            ["file_id"], ["received_file.id"], name=op.f("fk_statement_line_file_id_received_file")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_statement_line")),
    )
    with op.batch_alter_table("statement_line", schema=None) as batch_op:
        batch_op.create_index("ix_statement_line_batch", ["batch_no"], unique=False)
        batch_op.create_index(
            "uq_statement_line_sender_txn_ref", ["sender", "txn_ref"], unique=True
        )


def downgrade() -> None:
    with op.batch_alter_table("disb_forward", schema=None) as batch_op:
        batch_op.drop_index("ix_disb_forward_bank")
    op.drop_table("disb_forward")
    with op.batch_alter_table("statement_line", schema=None) as batch_op:
        batch_op.drop_index("uq_statement_line_sender_txn_ref")
        batch_op.drop_index("ix_statement_line_batch")

    op.drop_table("statement_line")
    with op.batch_alter_table("disb_batch", schema=None) as batch_op:
        batch_op.drop_index("uq_disb_batch_bureau_batch_no")
        batch_op.drop_index("ix_disb_batch_batch_no")

    op.drop_table("disb_batch")
    with op.batch_alter_table("recon_break", schema=None) as batch_op:
        batch_op.drop_index("uq_recon_break_item")

    op.drop_table("recon_break")
    op.drop_table("recon_batch")
    with op.batch_alter_table("disb_line", schema=None) as batch_op:
        batch_op.drop_index(
            "ix_disb_line_partner_key",
            sqlite_where=sa.text("partner_key IS NOT NULL"),
            postgresql_where=sa.text("partner_key IS NOT NULL"),
        )
        batch_op.drop_index("ix_disb_line_bureau_pay_no")

    op.drop_table("disb_line")
