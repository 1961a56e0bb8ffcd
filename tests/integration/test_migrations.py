"""Migrations: one head, upgrade from empty matches the models, downgrade and upgrade
again with data present."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, inspect, text

from persistence.db import MIGRATIONS, downgrade, upgrade
from persistence.models import Base


def _scripts() -> ScriptDirectory:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    return ScriptDirectory.from_config(cfg)


def test_there_is_exactly_one_head() -> None:
    assert len(_scripts().get_heads()) == 1


def test_upgrade_from_empty_gives_exactly_the_models(engine: Engine) -> None:
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert diff == []


def test_downgrade_to_empty_and_upgrade_again_keeps_working(engine: Engine, db_url: str) -> None:
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO account (pan, bank_code, id_no, status, loss, pin_locked, debit_blocked,"
                " credit_blocked, balance_fen) VALUES ('6217000000000000017', 'B001', 'X', 'active',"
                " 'none', false, false, false, 100)"
            )
        )
    engine.dispose()
    downgrade(db_url, "base")
    with engine.connect() as conn:
        assert set(inspect(conn).get_table_names()) <= {"alembic_version"}
    upgrade(db_url)
    with engine.connect() as conn:
        assert {
            "received_file",
            "application",
            "apply_line",
            "outbound_file",
            "card",
            "account",
        } <= set(inspect(conn).get_table_names())
