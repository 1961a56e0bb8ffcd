"""A STATUS or BANKEVT line's ``channel`` is up to 10 characters (ICD §5.7, §5.8): the
tables that keep it (forwarded ops, BANKEVT events, the audit trail) hold 10, where they
held 8 (PostgreSQL refused the longer ones and failed the whole file).

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-07 02:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None

_TABLES = ("partner_status", "bank_event", "audit_record")


def upgrade() -> None:
    for table in _TABLES:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.alter_column(
                "channel", existing_type=sa.String(length=8), type_=sa.String(length=10)
            )


def downgrade() -> None:
    for table in _TABLES:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.alter_column(
                "channel", existing_type=sa.String(length=10), type_=sa.String(length=8)
            )
