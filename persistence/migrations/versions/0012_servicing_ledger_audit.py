"""Card servicing (ICD §5.7–§5.9; DOMAIN §2–§6): STATUS/CHANNEL lines and their answers,
ops forwarded to partner banks, BANKEVT events and days, PIN verification values and
nonces, finished replacements, the ledger (accounts, postings, entries), the hash-chained
audit, card.status_date/status_by (lapses) and account.balance_fen >= 0

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-06 16:12:21.102718
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "audit_record",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("business_date", sa.String(length=8), nullable=False),
        sa.Column("card_no", sa.String(length=9), nullable=False),
        sa.Column("pan", sa.String(length=19), nullable=False),
        sa.Column("op", sa.String(length=20), nullable=False),
        sa.Column("channel", sa.String(length=8), nullable=False),
        sa.Column("actor", sa.String(length=40), nullable=False),
        sa.Column("ref", sa.String(length=64), nullable=False),
        sa.Column("before", sa.String(length=60), nullable=False),
        sa.Column("after", sa.String(length=60), nullable=False),
        sa.Column("prev_hash", sa.String(length=64), nullable=False),
        sa.Column("hash", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_record")),
    )
    with op.batch_alter_table("audit_record", schema=None) as batch_op:
        batch_op.create_index("ix_audit_record_card_no", ["card_no"], unique=False)
        batch_op.create_index("ix_audit_record_pan", ["pan"], unique=False)

    op.create_table(
        "bank_event",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("evt_no", sa.String(length=30), nullable=False),
        sa.Column("bureau", sa.String(length=8), nullable=False),
        sa.Column("business_date", sa.String(length=8), nullable=False),
        sa.Column("op", sa.String(length=2), nullable=False),
        sa.Column("card_no", sa.String(length=9), nullable=False),
        sa.Column("op_time", sa.String(length=14), nullable=False),
        sa.Column("channel", sa.String(length=8), nullable=False),
        sa.Column("source", sa.String(length=8), nullable=False),
        sa.Column("origin_key", sa.String(length=80), nullable=False),
        sa.Column("bankevt_name", sa.String(length=100), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_bank_event")),
    )
    with op.batch_alter_table("bank_event", schema=None) as batch_op:
        batch_op.create_index("ix_bank_event_day", ["bureau", "business_date"], unique=False)
        batch_op.create_index("uq_bank_event_evt_no", ["evt_no"], unique=True)
        batch_op.create_index("uq_bank_event_origin", ["source", "origin_key"], unique=True)

    op.create_table(
        "bank_event_day",
        sa.Column("bureau", sa.String(length=8), nullable=False),
        sa.Column("business_date", sa.String(length=8), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("record_count", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("bureau", "business_date", name=op.f("pk_bank_event_day")),
    )
    op.create_table(
        "ledger_account",
        sa.Column("code", sa.String(length=40), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("owner", sa.String(length=8), nullable=False),
        sa.Column("balance_fen", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("code", name=op.f("pk_ledger_account")),
    )
    op.create_table(
        "ledger_txn",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("idem_key", sa.String(length=80), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("business_date", sa.String(length=8), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ledger_txn")),
    )
    with op.batch_alter_table("ledger_txn", schema=None) as batch_op:
        batch_op.create_index("uq_ledger_txn_idem_key", ["idem_key"], unique=True)

    op.create_table(
        "partner_status",
        sa.Column("req_no", sa.String(length=30), nullable=False),
        sa.Column("bank_code", sa.String(length=4), nullable=False),
        sa.Column("op", sa.String(length=2), nullable=False),
        sa.Column("card_no", sa.String(length=9), nullable=False),
        sa.Column("op_time", sa.String(length=14), nullable=False),
        sa.Column("channel", sa.String(length=8), nullable=False),
        sa.Column("target", sa.String(length=1), nullable=False),
        sa.Column("created_date", sa.String(length=8), nullable=False),
        sa.Column("request_name", sa.String(length=100), nullable=True),
        sa.Column("sent_date", sa.String(length=8), nullable=True),
        sa.Column("answered_date", sa.String(length=8), nullable=True),
        sa.Column("result", sa.String(length=2), nullable=True),
        sa.Column("reason_code", sa.String(length=4), nullable=True),
        sa.PrimaryKeyConstraint("req_no", name=op.f("pk_partner_status")),
    )
    with op.batch_alter_table("partner_status", schema=None) as batch_op:
        batch_op.create_index(
            "ix_partner_status_open", ["bank_code", "answered_date"], unique=False
        )

    op.create_table(
        "pin_nonce",
        sa.Column("channel", sa.String(length=8), nullable=False),
        sa.Column("key_id", sa.Integer(), nullable=False),
        sa.Column("nonce", sa.String(length=24), nullable=False),
        sa.PrimaryKeyConstraint("channel", "key_id", "nonce", name=op.f("pk_pin_nonce")),
    )
    op.create_table(
        "pin_verification",
        sa.Column("pan", sa.String(length=19), nullable=False),
        sa.Column("key_id", sa.String(length=20), nullable=False),
        sa.Column("value", sa.String(length=64), nullable=False),
        sa.Column("set_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("pan", name=op.f("pk_pin_verification")),
    )
    op.create_table(
        "replacement",
        sa.Column("application_id", sa.Integer(), nullable=False),
        sa.Column("old_card_no", sa.String(length=9), nullable=False),
        sa.Column("new_card_no", sa.String(length=9), nullable=False),
        sa.Column("kind", sa.String(length=10), nullable=False),
        sa.Column("moved_fen", sa.BigInteger(), nullable=False),
        sa.Column("business_date", sa.String(length=8), nullable=False),
        sa.Column("done_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("application_id", name=op.f("pk_replacement")),
    )
    op.create_table(
        "ledger_entry",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("txn_id", sa.BigInteger(), nullable=False),
        sa.Column("account", sa.String(length=40), nullable=False),
        sa.Column("amount_fen", sa.BigInteger(), nullable=False),
        sa.CheckConstraint("amount_fen <> 0", name=op.f("ck_ledger_entry_amount_fen")),
        sa.ForeignKeyConstraint(
            ["txn_id"], ["ledger_txn.id"], name=op.f("fk_ledger_entry_txn_id_ledger_txn")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ledger_entry")),
    )
    with op.batch_alter_table("ledger_entry", schema=None) as batch_op:
        batch_op.create_index("ix_ledger_entry_account", ["account", "txn_id"], unique=False)
        batch_op.create_index("ix_ledger_entry_txn", ["txn_id"], unique=False)

    op.create_table(
        "service_line",
        sa.Column("file_id", sa.Integer(), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("type", sa.String(length=12), nullable=False),
        sa.Column("sender", sa.String(length=8), nullable=False),
        sa.Column("req_no", sa.String(length=64), nullable=False),
        sa.Column("content_sha", sa.String(length=40), nullable=False),
        sa.Column("op", sa.String(length=2), nullable=False),
        sa.Column("card_no", sa.String(length=9), nullable=False),
        sa.Column("result", sa.String(length=2), nullable=True),
        sa.Column("reason_code", sa.String(length=4), nullable=False),
        sa.Column("reason_field", sa.String(length=20), nullable=False),
        sa.Column("partner_req_no", sa.String(length=30), nullable=True),
        sa.ForeignKeyConstraint(
            ["file_id"], ["received_file.id"], name=op.f("fk_service_line_file_id_received_file")
        ),
        sa.PrimaryKeyConstraint("file_id", "seq", name=op.f("pk_service_line")),
    )
    with op.batch_alter_table("service_line", schema=None) as batch_op:
        batch_op.create_index(
            "ix_service_line_sender_req_no", ["sender", "type", "req_no"], unique=False
        )
        batch_op.create_index(
            "ix_service_line_waiting",
            ["file_id"],
            unique=False,
            sqlite_where=sa.text("result IS NULL"),
            postgresql_where=sa.text("result IS NULL"),
        )

    with op.batch_alter_table("card", schema=None) as batch_op:
        batch_op.add_column(sa.Column("status_date", sa.String(length=8), nullable=True))
        batch_op.add_column(sa.Column("status_by", sa.String(length=8), nullable=True))
    with op.batch_alter_table("account", schema=None) as batch_op:
        batch_op.create_check_constraint(op.f("ck_account_balance_fen"), "balance_fen >= 0")


def downgrade() -> None:
    with op.batch_alter_table("account", schema=None) as batch_op:
        batch_op.drop_constraint(op.f("ck_account_balance_fen"), type_="check")
    with op.batch_alter_table("card", schema=None) as batch_op:
        batch_op.drop_column("status_by")
        batch_op.drop_column("status_date")

    with op.batch_alter_table("service_line", schema=None) as batch_op:
        batch_op.drop_index(
            "ix_service_line_waiting",
            sqlite_where=sa.text("result IS NULL"),
            postgresql_where=sa.text("result IS NULL"),
        )
        batch_op.drop_index("ix_service_line_sender_req_no")

    op.drop_table("service_line")
    with op.batch_alter_table("ledger_entry", schema=None) as batch_op:
        batch_op.drop_index("ix_ledger_entry_txn")
        batch_op.drop_index("ix_ledger_entry_account")

    op.drop_table("ledger_entry")
    op.drop_table("replacement")
    op.drop_table("pin_verification")
    op.drop_table("pin_nonce")
    with op.batch_alter_table("partner_status", schema=None) as batch_op:
        batch_op.drop_index("ix_partner_status_open")

    op.drop_table("partner_status")
    with op.batch_alter_table("ledger_txn", schema=None) as batch_op:
        batch_op.drop_index("uq_ledger_txn_idem_key")

    op.drop_table("ledger_txn")
    op.drop_table("ledger_account")
    op.drop_table("bank_event_day")
    with op.batch_alter_table("bank_event", schema=None) as batch_op:
        batch_op.drop_index("uq_bank_event_origin")
        batch_op.drop_index("uq_bank_event_evt_no")
        batch_op.drop_index("ix_bank_event_day")

    op.drop_table("bank_event")
    with op.batch_alter_table("audit_record", schema=None) as batch_op:
        batch_op.drop_index("ix_audit_record_pan")
        batch_op.drop_index("ix_audit_record_card_no")

    op.drop_table("audit_record")
