"""card, account and application_state: CHECK constraints holding each status column to
the values schemas/states.py declares (DOMAIN §2, §3)

The values are written out here as they were at this revision, so the migration replays
the same way whatever the enums become; ``tests/integration/test_migrations.py`` checks
the database accepts every value of the enums and refuses any other, so an enum changed
without a migration fails there.

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-30 08:00:00
"""

from __future__ import annotations

from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

#: table → (column, values) of its checks
CHECKS: dict[str, tuple[tuple[str, tuple[str, ...]], ...]] = {
    "card": (("status", ("0", "1", "2", "3", "4", "9")),),
    "account": (
        ("status", ("preopened", "active", "closed")),
        ("loss", ("none", "temporary", "formal")),
    ),
    "application_state": (
        ("status", ("accepted", "partner_sent", "account_open", "perso_sent", "made", "failed")),
    ),
}


def upgrade() -> None:
    for table, checks in CHECKS.items():
        with op.batch_alter_table(table, schema=None) as batch_op:
            for column, values in checks:
                listed = ", ".join(f"'{value}'" for value in values)
                batch_op.create_check_constraint(
                    op.f(f"ck_{table}_{column}"), f"{column} IN ({listed})"
                )


def downgrade() -> None:
    for table, checks in reversed(CHECKS.items()):
        with op.batch_alter_table(table, schema=None) as batch_op:
            for column, _ in checks:
                batch_op.drop_constraint(op.f(f"ck_{table}_{column}"), type_="check")
