"""Migrations: one head, upgrade from empty matches the models, downgrade and upgrade
again with data present."""

from __future__ import annotations

from enum import StrEnum

import pytest
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, exc, inspect, text

from persistence.db import MIGRATIONS, downgrade, upgrade
from persistence.models import Base
from schemas.states import AccountStatus, ApplicationStatus, CardStatus, Loss


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
                " credit_blocked) VALUES ('6217000000000000017', 'B001', 'X', 'active',"
                " 'none', false, false, false)"
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


def test_0005_moves_where_applications_stand_to_application_state_and_back(
    engine: Engine, db_url: str
) -> None:
    engine.dispose()
    downgrade(db_url, "0004")
    fields = (
        "app_type, id_type, id_no, id_valid_to, name, gender, ethnicity, birth_date, "
        "nationality, occupation, mobile, region_code, bank_code, card_no, old_card_no, "
        "keep_account, replace_reason, photo, address"
    )
    values = (
        "'01', '01', 'X', '99991231', 'N', '1', '01', '19900101', 'CHN', '', '13800000000', "
        "'440100', 'B001', :card, '', '', '', '', ''"
    )
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO received_file (id, conn_id, name, sha256, size, outcome, "
                "accepted_count, rejected_count, first_seen_at) VALUES (1, 'c', 'F', 's', 0, "
                "'accepted', 2, 1, '2026-11-22 00:00:00+00')"
            )
        )
        for seq, (card, status, pan) in enumerate(
            [("A00000001", "account_open", "6217881000000000017"), ("A00000002", "accepted", None)],
            start=1,
        ):
            conn.execute(
                text(
                    f"INSERT INTO application (id, bureau, app_no, file_id, seq, business_date, "
                    f"status, pan, {fields}) VALUES (:id, 'R440100', :app, 1, :seq, '20261122', "
                    f":status, :pan, {values})"
                ),
                {
                    "id": seq,
                    "app": f"K{seq}",
                    "seq": seq,
                    "card": card,
                    "status": status,
                    "pan": pan,
                },
            )
        for seq, result in ((1, "00"), (2, "00"), (3, "01")):
            conn.execute(
                text(
                    "INSERT INTO apply_line (file_id, seq, line_no, sender, app_no, content_sha, "
                    "result, reason_code, reason_field) VALUES (1, :seq, :line, 'R440100', :app, "
                    ":sha, :result, :code, '')"
                ),
                {
                    "seq": seq,
                    "line": seq + 1,
                    "app": f"K{seq}",
                    "sha": f"sha{seq}",
                    "result": result,
                    "code": "" if result == "00" else "E112",
                },
            )
    engine.dispose()

    upgrade(db_url)
    with engine.connect() as conn:
        states = conn.execute(
            text(
                "SELECT s.application_id, s.bureau, s.status, s.pan, a.content_sha "
                "FROM application_state s JOIN application a ON a.id = s.application_id "
                "ORDER BY 1"
            )
        ).all()
        lines = conn.execute(text("SELECT seq, result FROM apply_line ORDER BY seq")).all()
    assert [tuple(r) for r in states] == [
        (1, "R440100", "account_open", "6217881000000000017", "sha1"),
        (2, "R440100", "accepted", None, "sha2"),
    ]
    assert [tuple(r) for r in lines] == [(3, "01")]
    engine.dispose()

    downgrade(db_url, "0004")
    with engine.connect() as conn:
        apps = conn.execute(text("SELECT id, status, pan FROM application ORDER BY id")).all()
        lines = conn.execute(
            text("SELECT seq, line_no, content_sha, result FROM apply_line ORDER BY seq")
        ).all()
    assert [tuple(r) for r in apps] == [
        (1, "account_open", "6217881000000000017"),
        (2, "accepted", None),
    ]
    assert [tuple(r) for r in lines] == [
        (1, 2, "sha1", "00"),
        (2, 3, "sha2", "00"),
        (3, 4, "sha3", "01"),
    ]
    engine.dispose()
    upgrade(db_url)


#: a row of each table with a status column, ``:v`` in the column checked
_STATUS_ROWS = {
    ("card", "status"): "INSERT INTO card (card_no, bureau, id_type, id_no, name, bank_code, "
    "status) VALUES ('A00000001', 'R440100', '01', 'X', 'N', 'B001', :v)",
    ("account", "status"): "INSERT INTO account (pan, bank_code, id_no, status, loss, "
    "pin_locked, debit_blocked, credit_blocked) VALUES ('6217000000000000017', "
    "'B001', 'X', :v, 'none', false, false, false)",
    ("account", "loss"): "INSERT INTO account (pan, bank_code, id_no, status, loss, "
    "pin_locked, debit_blocked, credit_blocked) VALUES ('6217000000000000017', "
    "'B001', 'X', 'preopened', :v, false, false, false)",
    ("application_state", "status"): "INSERT INTO application_state (application_id, bureau, "
    "status) VALUES (1, 'R440100', :v)",
}
_ENUMS: dict[tuple[str, str], type[StrEnum]] = {
    ("card", "status"): CardStatus,
    ("account", "status"): AccountStatus,
    ("account", "loss"): Loss,
    ("application_state", "status"): ApplicationStatus,
}


@pytest.mark.parametrize("column", list(_ENUMS), ids=lambda c: ".".join(c))
def test_the_migrated_database_holds_each_status_column_to_its_enum(
    engine: Engine, column: tuple[str, str]
) -> None:
    """The CHECK constraints of the migrations accept exactly the values schemas/states.py
    declares: an enum changed without a migration fails here."""
    insert = text(_STATUS_ROWS[column])
    for value in _ENUMS[column]:
        with engine.begin() as conn:
            conn.execute(insert, {"v": value.value})
            conn.execute(text(f"DELETE FROM {column[0]}"))
    for value in ("", "5", "x"):
        with pytest.raises(exc.IntegrityError), engine.begin() as conn:
            conn.execute(insert, {"v": value})


def test_0016_drops_the_balance_copy_and_a_downgrade_fills_it_from_the_entries(
    engine: Engine, db_url: str
) -> None:
    from datetime import UTC, datetime

    from banking import ledger

    pan = "6217000000000000017"
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO account (pan, bank_code, id_no, status, loss, pin_locked, "
                "debit_blocked, credit_blocked) VALUES (:p, 'B001', 'X', 'active', 'none', "
                "false, false, false)"
            ),
            {"p": pan},
        )
        legs = [ledger.Leg(ledger.settlement(), -250), ledger.Leg(pan, 250)]
        ledger.post(conn, "k", "test", "20261207", legs, datetime(2026, 12, 7, tzinfo=UTC))
    engine.dispose()
    downgrade(db_url, "0015")
    with engine.connect() as conn:
        assert conn.execute(text("SELECT pan, balance_fen FROM account")).all() == [(pan, 250)]
    upgrade(db_url)
    with engine.connect() as conn:
        assert "balance_fen" not in {c["name"] for c in inspect(conn).get_columns("account")}
        assert ledger.balance(conn, pan) == 250
