"""application_state: where an application stands, in a narrow table of its own; the
application row keeps the bureau's data and the digest of its line; apply_line keeps
rejected lines only

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-22 08:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

UNREPORTED = "final_date IS NOT NULL AND cardrsp_name IS NULL"
STATE = ("status", "fail_stage", "reason_code", "pan", "pan_seq", "final_date", "cardrsp_name")


def upgrade() -> None:
    op.create_table(
        "application_state",
        sa.Column("application_id", sa.Integer(), nullable=False),
        sa.Column("bureau", sa.String(length=8), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("fail_stage", sa.String(length=1), nullable=True),
        sa.Column("reason_code", sa.String(length=4), nullable=True),
        sa.Column("pan", sa.String(length=19), nullable=True),
        sa.Column("pan_seq", sa.String(length=2), nullable=True),
        sa.Column("final_date", sa.String(length=8), nullable=True),
        sa.Column("cardrsp_name", sa.String(length=100), nullable=True),
        sa.ForeignKeyConstraint(
            ["application_id"],
            ["application.id"],
            name=op.f("fk_application_state_application_id_application"),
        ),
        sa.PrimaryKeyConstraint("application_id", name=op.f("pk_application_state")),
    )
    op.create_index("ix_application_state_status", "application_state", ["status"])
    op.create_index(
        "ix_application_state_unreported",
        "application_state",
        ["bureau", "final_date"],
        sqlite_where=sa.text(UNREPORTED),
        postgresql_where=sa.text(UNREPORTED),
    )
    cols = ", ".join(STATE)
    op.execute(
        f"INSERT INTO application_state (application_id, bureau, {cols}) "
        f"SELECT id, bureau, {cols} FROM application"
    )
    with op.batch_alter_table("application", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("content_sha", sa.String(length=40), nullable=False, server_default="")
        )
    op.execute(
        "UPDATE application SET content_sha = COALESCE((SELECT l.content_sha FROM apply_line l "
        "WHERE l.file_id = application.file_id AND l.seq = application.seq), '')"
    )
    op.execute("DELETE FROM apply_line WHERE result = '00'")
    op.drop_index("ix_application_status", table_name="application")
    op.drop_index("ix_application_unreported", table_name="application")
    with op.batch_alter_table("application", schema=None) as batch_op:
        batch_op.alter_column("content_sha", server_default=None)
        for col in STATE:
            batch_op.drop_column(col)


def downgrade() -> None:
    with op.batch_alter_table("application", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("status", sa.String(length=16), nullable=False, server_default="accepted")
        )
        batch_op.add_column(sa.Column("fail_stage", sa.String(length=1), nullable=True))
        batch_op.add_column(sa.Column("reason_code", sa.String(length=4), nullable=True))
        batch_op.add_column(sa.Column("pan", sa.String(length=19), nullable=True))
        batch_op.add_column(sa.Column("pan_seq", sa.String(length=2), nullable=True))
        batch_op.add_column(sa.Column("final_date", sa.String(length=8), nullable=True))
        batch_op.add_column(sa.Column("cardrsp_name", sa.String(length=100), nullable=True))
    sets = ", ".join(
        f"{c} = (SELECT s.{c} FROM application_state s WHERE s.application_id = application.id)"
        for c in STATE
    )
    op.execute(f"UPDATE application SET {sets}")
    op.execute(
        "INSERT INTO apply_line (file_id, seq, line_no, sender, app_no, content_sha, result, "
        "reason_code, reason_field) SELECT file_id, seq, seq + 1, bureau, app_no, content_sha, "
        "'00', '', '' FROM application"
    )
    with op.batch_alter_table("application", schema=None) as batch_op:
        batch_op.alter_column("status", server_default=None)
        batch_op.drop_column("content_sha")
    op.create_index("ix_application_status", "application", ["status"])
    op.create_index(
        "ix_application_unreported",
        "application",
        ["bureau", "final_date"],
        sqlite_where=sa.text(UNREPORTED),
        postgresql_where=sa.text(UNREPORTED),
    )
    op.drop_index("ix_application_state_unreported", table_name="application_state")
    op.drop_index("ix_application_state_status", table_name="application_state")
    op.drop_table("application_state")
