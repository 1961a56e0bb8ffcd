"""perso_record: no per-row foreign key check on application_id

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-22 08:00:00
"""

from __future__ import annotations

from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

FK = "fk_perso_record_application_id_application"


def upgrade() -> None:
    with op.batch_alter_table("perso_record", schema=None) as batch_op:
        batch_op.drop_constraint(FK, type_="foreignkey")


def downgrade() -> None:
    with op.batch_alter_table("perso_record", schema=None) as batch_op:
        batch_op.create_foreign_key(FK, "application", ["application_id"], ["id"])
