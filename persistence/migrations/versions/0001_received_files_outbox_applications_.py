"""received files, outbox, applications, cards, accounts

Revision ID: 0001
Revises:
Create Date: 2026-11-22 02:40:53.655516
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "account",
        sa.Column("pan", sa.String(length=19), nullable=False),
        sa.Column("bank_code", sa.String(length=4), nullable=False),
        sa.Column("id_no", sa.String(length=18), nullable=False),
        sa.Column("status", sa.String(length=10), nullable=False),
        sa.Column("loss", sa.String(length=10), nullable=False),
        sa.Column("pin_locked", sa.Boolean(), nullable=False),
        sa.Column("debit_blocked", sa.Boolean(), nullable=False),
        sa.Column("credit_blocked", sa.Boolean(), nullable=False),
        sa.Column("balance_fen", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("pan", name=op.f("pk_account")),
    )
    op.create_table(
        "received_file",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("conn_id", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("type", sa.String(length=12), nullable=True),
        sa.Column("sender", sa.String(length=8), nullable=True),
        sa.Column("receiver", sa.String(length=8), nullable=True),
        sa.Column("batch_no", sa.String(length=20), nullable=True),
        sa.Column("business_date", sa.String(length=8), nullable=True),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("record_count", sa.Integer(), nullable=True),
        sa.Column("outcome", sa.String(length=16), nullable=False),
        sa.Column("file_code", sa.String(length=3), nullable=True),
        sa.Column("detail", sa.String(length=200), nullable=True),
        sa.Column("accepted_count", sa.Integer(), nullable=False),
        sa.Column("rejected_count", sa.Integer(), nullable=False),
        sa.Column("local_path", sa.String(length=500), nullable=True),
        sa.Column("first_seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("processed_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_received_file")),
    )
    with op.batch_alter_table("received_file", schema=None) as batch_op:
        batch_op.create_index(
            "ix_received_file_lookup", ["conn_id", "name", "sha256"], unique=False
        )
        batch_op.create_index(
            "uq_received_file_accepted_batch",
            ["sender", "type", "batch_no"],
            unique=True,
            sqlite_where=sa.text("outcome = 'accepted'"),
            postgresql_where=sa.text("outcome = 'accepted'"),
        )
        batch_op.create_index(
            "uq_received_file_accepted_name",
            ["sender", "name"],
            unique=True,
            sqlite_where=sa.text("outcome = 'accepted'"),
            postgresql_where=sa.text("outcome = 'accepted'"),
        )

    op.create_table(
        "application",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("bureau", sa.String(length=8), nullable=False),
        sa.Column("app_no", sa.String(length=30), nullable=False),
        sa.Column("file_id", sa.Integer(), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("app_type", sa.String(length=2), nullable=False),
        sa.Column("id_type", sa.String(length=2), nullable=False),
        sa.Column("id_no", sa.String(length=18), nullable=False),
        sa.Column("id_valid_to", sa.String(length=8), nullable=False),
        sa.Column("name", sa.String(length=30), nullable=False),
        sa.Column("gender", sa.String(length=1), nullable=False),
        sa.Column("ethnicity", sa.String(length=2), nullable=False),
        sa.Column("birth_date", sa.String(length=8), nullable=False),
        sa.Column("nationality", sa.String(length=3), nullable=False),
        sa.Column("occupation", sa.String(length=1), nullable=False),
        sa.Column("mobile", sa.String(length=11), nullable=False),
        sa.Column("region_code", sa.String(length=6), nullable=False),
        sa.Column("bank_code", sa.String(length=4), nullable=False),
        sa.Column("card_no", sa.String(length=9), nullable=False),
        sa.Column("old_card_no", sa.String(length=9), nullable=False),
        sa.Column("keep_account", sa.String(length=1), nullable=False),
        sa.Column("replace_reason", sa.String(length=1), nullable=False),
        sa.Column("photo", sa.String(length=40), nullable=False),
        sa.Column("address", sa.String(length=100), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("fail_stage", sa.String(length=1), nullable=True),
        sa.Column("reason_code", sa.String(length=4), nullable=True),
        sa.Column("business_date", sa.String(length=8), nullable=False),
        sa.ForeignKeyConstraint(
            ["file_id"], ["received_file.id"], name=op.f("fk_application_file_id_received_file")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_application")),
    )
    with op.batch_alter_table("application", schema=None) as batch_op:
        batch_op.create_index("ix_application_id_no", ["id_no"], unique=False)
        batch_op.create_index("ix_application_status", ["status"], unique=False)
        batch_op.create_index("uq_application_bureau_app_no", ["bureau", "app_no"], unique=True)
        batch_op.create_index("uq_application_card_no", ["card_no"], unique=True)

    op.create_table(
        "apply_line",
        sa.Column("file_id", sa.Integer(), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("line_no", sa.Integer(), nullable=False),
        sa.Column("sender", sa.String(length=8), nullable=False),
        sa.Column("app_no", sa.String(length=64), nullable=False),
        sa.Column("content_sha", sa.String(length=40), nullable=False),
        sa.Column("result", sa.String(length=2), nullable=False),
        sa.Column("reason_code", sa.String(length=4), nullable=False),
        sa.Column("reason_field", sa.String(length=20), nullable=False),
        sa.ForeignKeyConstraint(
            ["file_id"], ["received_file.id"], name=op.f("fk_apply_line_file_id_received_file")
        ),
        sa.PrimaryKeyConstraint("file_id", "seq", name=op.f("pk_apply_line")),
    )
    with op.batch_alter_table("apply_line", schema=None) as batch_op:
        batch_op.create_index("ix_apply_line_sender_app_no", ["sender", "app_no"], unique=False)

    op.create_table(
        "outbound_file",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("conn_id", sa.String(length=64), nullable=False),
        sa.Column("directory", sa.String(length=200), nullable=False),
        sa.Column("name", sa.String(length=120), nullable=False),
        sa.Column("type", sa.String(length=12), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("record_count", sa.Integer(), nullable=False),
        sa.Column("with_control", sa.Boolean(), nullable=False),
        sa.Column("source_file_id", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("delivered_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["source_file_id"],
            ["received_file.id"],
            name=op.f("fk_outbound_file_source_file_id_received_file"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_outbound_file")),
    )
    with op.batch_alter_table("outbound_file", schema=None) as batch_op:
        batch_op.create_index("ix_outbound_file_pending", ["delivered_at"], unique=False)
        batch_op.create_index(
            "uq_outbound_file_conn_dir_name", ["conn_id", "directory", "name"], unique=True
        )

    op.create_table(
        "card",
        sa.Column("card_no", sa.String(length=9), nullable=False),
        sa.Column("application_id", sa.Integer(), nullable=True),
        sa.Column("bureau", sa.String(length=8), nullable=False),
        sa.Column("id_type", sa.String(length=2), nullable=False),
        sa.Column("id_no", sa.String(length=18), nullable=False),
        sa.Column("name", sa.String(length=30), nullable=False),
        sa.Column("bank_code", sa.String(length=4), nullable=False),
        sa.Column("pan", sa.String(length=19), nullable=True),
        sa.Column("pan_seq", sa.String(length=2), nullable=True),
        sa.Column("status", sa.String(length=1), nullable=False),
        sa.Column("issue_date", sa.String(length=8), nullable=True),
        sa.Column("expiry_date", sa.String(length=8), nullable=True),
        sa.ForeignKeyConstraint(
            ["application_id"], ["application.id"], name=op.f("fk_card_application_id_application")
        ),
        sa.PrimaryKeyConstraint("card_no", name=op.f("pk_card")),
    )
    with op.batch_alter_table("card", schema=None) as batch_op:
        batch_op.create_index("ix_card_id_no", ["id_no"], unique=False)
        batch_op.create_index("ix_card_pan", ["pan"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("card", schema=None) as batch_op:
        batch_op.drop_index("ix_card_pan")
        batch_op.drop_index("ix_card_id_no")

    op.drop_table("card")
    with op.batch_alter_table("outbound_file", schema=None) as batch_op:
        batch_op.drop_index("uq_outbound_file_conn_dir_name")
        batch_op.drop_index("ix_outbound_file_pending")

    op.drop_table("outbound_file")
    with op.batch_alter_table("apply_line", schema=None) as batch_op:
        batch_op.drop_index("ix_apply_line_sender_app_no")

    op.drop_table("apply_line")
    with op.batch_alter_table("application", schema=None) as batch_op:
        batch_op.drop_index("uq_application_card_no")
        batch_op.drop_index("uq_application_bureau_app_no")
        batch_op.drop_index("ix_application_status")
        batch_op.drop_index("ix_application_id_no")

    op.drop_table("application")
    with op.batch_alter_table("received_file", schema=None) as batch_op:
        batch_op.drop_index(
            "uq_received_file_accepted_name",
            sqlite_where=sa.text("outcome = 'accepted'"),
            postgresql_where=sa.text("outcome = 'accepted'"),
        )
        batch_op.drop_index(
            "uq_received_file_accepted_batch",
            sqlite_where=sa.text("outcome = 'accepted'"),
            postgresql_where=sa.text("outcome = 'accepted'"),
        )
        batch_op.drop_index("ix_received_file_lookup")

    op.drop_table("received_file")
    op.drop_table("account")
