"""application.id_no looked up by a hash index on PostgreSQL

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-29 09:00:00
"""

from __future__ import annotations

from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

INDEX = "ix_application_id_no"


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.drop_index(INDEX, table_name="application")
    op.create_index(INDEX, "application", ["id_no"], postgresql_using="hash")


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.drop_index(INDEX, table_name="application")
    op.create_index(INDEX, "application", ["id_no"])
