"""issuance: PAN counters, partner requests, personalisation, production returns

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22 03:13:40.446710
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "pan_counter",
        sa.Column("prefix", sa.String(length=18), nullable=False),
        sa.Column("next_serial", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("prefix", name=op.f("pk_pan_counter")),
    )
    op.create_table(
        "return_problem",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("file_name", sa.String(length=100), nullable=False),
        sa.Column("line_no", sa.Integer(), nullable=False),
        sa.Column("key", sa.String(length=30), nullable=False),
        sa.Column("problem", sa.String(length=40), nullable=False),
        sa.Column("business_date", sa.String(length=8), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_return_problem")),
    )
    op.create_table(
        "partner_request",
        sa.Column("req_no", sa.String(length=30), nullable=False),
        sa.Column("application_id", sa.Integer(), nullable=False),
        sa.Column("bank_code", sa.String(length=4), nullable=False),
        sa.Column("request_name", sa.String(length=100), nullable=False),
        sa.Column("sent_date", sa.String(length=8), nullable=False),
        sa.Column("answered_date", sa.String(length=8), nullable=True),
        sa.Column("result", sa.String(length=2), nullable=True),
        sa.Column("reason_code", sa.String(length=4), nullable=True),
        sa.ForeignKeyConstraint(
            ["application_id"],
            ["application.id"],
            name=op.f("fk_partner_request_application_id_application"),
        ),
        sa.PrimaryKeyConstraint("req_no", name=op.f("pk_partner_request")),
    )
    with op.batch_alter_table("partner_request", schema=None) as batch_op:
        batch_op.create_index(
            "ix_partner_request_open", ["bank_code", "answered_date"], unique=False
        )
        batch_op.create_index("uq_partner_request_application", ["application_id"], unique=True)

    op.create_table(
        "perso_record",
        sa.Column("application_id", sa.Integer(), nullable=False),
        sa.Column("card_no", sa.String(length=9), nullable=False),
        sa.Column("pan", sa.String(length=19), nullable=False),
        sa.Column("factory", sa.String(length=3), nullable=False),
        sa.Column("perso_name", sa.String(length=100), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("issue_date", sa.String(length=8), nullable=False),
        sa.Column("expiry_date", sa.String(length=8), nullable=False),
        sa.Column("result", sa.String(length=2), nullable=True),
        sa.Column("result_name", sa.String(length=100), nullable=True),
        sa.ForeignKeyConstraint(
            ["application_id"],
            ["application.id"],
            name=op.f("fk_perso_record_application_id_application"),
        ),
        sa.PrimaryKeyConstraint("application_id", name=op.f("pk_perso_record")),
    )
    with op.batch_alter_table("perso_record", schema=None) as batch_op:
        batch_op.create_index("uq_perso_record_card_no", ["card_no"], unique=True)

    with op.batch_alter_table("application", schema=None) as batch_op:
        batch_op.add_column(sa.Column("pan", sa.String(length=19), nullable=True))
        batch_op.add_column(sa.Column("pan_seq", sa.String(length=2), nullable=True))
        batch_op.add_column(sa.Column("final_date", sa.String(length=8), nullable=True))
        batch_op.add_column(sa.Column("cardrsp_name", sa.String(length=100), nullable=True))
        batch_op.create_index(
            "ix_application_unreported", ["bureau", "final_date", "cardrsp_name"], unique=False
        )

    with op.batch_alter_table("card", schema=None) as batch_op:
        batch_op.add_column(sa.Column("card_id_code", sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column("atr", sa.String(length=40), nullable=True))
        batch_op.add_column(sa.Column("box_no", sa.String(length=20), nullable=True))
        batch_op.add_column(sa.Column("made_date", sa.String(length=8), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("card", schema=None) as batch_op:
        batch_op.drop_column("made_date")
        batch_op.drop_column("box_no")
        batch_op.drop_column("atr")
        batch_op.drop_column("card_id_code")

    with op.batch_alter_table("application", schema=None) as batch_op:
        batch_op.drop_index("ix_application_unreported")
        batch_op.drop_column("cardrsp_name")
        batch_op.drop_column("final_date")
        batch_op.drop_column("pan_seq")
        batch_op.drop_column("pan")

    with op.batch_alter_table("perso_record", schema=None) as batch_op:
        batch_op.drop_index("uq_perso_record_card_no")

    op.drop_table("perso_record")
    with op.batch_alter_table("partner_request", schema=None) as batch_op:
        batch_op.drop_index("uq_partner_request_application")
        batch_op.drop_index("ix_partner_request_open")

    op.drop_table("partner_request")
    op.drop_table("return_problem")
    op.drop_table("pan_counter")
