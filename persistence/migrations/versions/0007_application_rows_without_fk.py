"""application and application_state: no per-row foreign key checks; old cards being
replaced found by an index

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-29 08:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

#: (table, constraint, column, referenced table)
FKS = (
    ("application", "fk_application_file_id_received_file", "file_id", "received_file"),
    (
        "application_state",
        "fk_application_state_application_id_application",
        "application_id",
        "application",
    ),
)


OLD_CARD = "ix_application_old_card_no"
_REPLACING = sa.text("old_card_no <> ''")


def upgrade() -> None:
    for table, name, _, _ in FKS:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_constraint(name, type_="foreignkey")
    op.create_index(
        OLD_CARD,
        "application",
        ["old_card_no"],
        sqlite_where=_REPLACING,
        postgresql_where=_REPLACING,
    )


def downgrade() -> None:
    op.drop_index(OLD_CARD, table_name="application")
    for table, name, column, referred in FKS:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.create_foreign_key(name, referred, [column], ["id"])
