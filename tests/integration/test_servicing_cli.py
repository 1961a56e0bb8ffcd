"""``sscard account|card|ledger|audit``: output, exit codes, the test credit's guard, and
masking: no full PAN or ID number in any output."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from sqlalchemy import Engine, insert, text

from banking import audit, ledger
from persistence.models import Account, Application, ApplicationState, Card, ReceivedFile
from sscard.cli import main

PAN = "6222020000000000019"
ID_NO = "44010119900101123X"
NOW = datetime(2026, 11, 22, 2, 0, tzinfo=UTC)


@pytest.fixture
def hub(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> Engine:
    """An account with two cards: A00000001 replaced by A00000002 (same PAN)."""
    monkeypatch.setenv("SSCARD_DATABASE_URL", str(engine.url.render_as_string(False)))
    with engine.begin() as conn:
        conn.execute(
            insert(ReceivedFile.__table__),
            {
                "id": 1,
                "conn_id": "c",
                "name": "APPLY",
                "sha256": "0" * 64,
                "size": 1,
                "outcome": "accepted",
                "first_seen_at": NOW,
            },
        )
        for app_id, app_no, card_no, old, app_type in (
            (1, "APP1", "A00000001", "", "01"),
            (2, "APP2", "A00000002", "A00000001", "06"),
        ):
            conn.execute(
                insert(Application.__table__),
                {
                    "id": app_id,
                    "bureau": "R440100",
                    "app_no": app_no,
                    "file_id": 1,
                    "seq": app_id,
                    "app_type": app_type,
                    "id_type": "01",
                    "id_no": ID_NO,
                    "id_valid_to": "20361122",
                    "name": "张三",
                    "gender": "1",
                    "ethnicity": "01",
                    "birth_date": "19900101",
                    "nationality": "CHN",
                    "mobile": "13800000000",
                    "region_code": "440100",
                    "bank_code": "B001",
                    "card_no": card_no,
                    "old_card_no": old,
                    "business_date": "20261122",
                },
            )
            conn.execute(
                insert(ApplicationState.__table__),
                {"application_id": app_id, "bureau": "R440100", "status": "accepted"},
            )
            conn.execute(
                insert(Card.__table__),
                {
                    "card_no": card_no,
                    "application_id": app_id,
                    "bureau": "R440100",
                    "id_type": "01",
                    "id_no": ID_NO,
                    "name": "张三",
                    "bank_code": "B001",
                    "pan": PAN,
                    "pan_seq": f"0{app_id}",
                    "status": "9" if app_id == 1 else "1",
                    "issue_date": "20261101",
                    "expiry_date": "20361101",
                    "status_date": "20261122",
                    "status_by": "AUTO",
                },
            )
        conn.execute(
            insert(Account.__table__),
            {"pan": PAN, "bank_code": "B001", "id_no": ID_NO, "status": "active"},
        )
        ledger.post(
            conn,
            "seed",
            "DISB",
            "20261122",
            [ledger.Leg(ledger.clearing("R440100"), -12_345), ledger.Leg(PAN, 12_345)],
            NOW,
        )
        audit.append(
            conn,
            [
                audit.AuditEntry(
                    "20261122", "A00000001", PAN, "04", "AUTO", "AUTO", "APP2", "1", "9"
                )
            ],
            NOW,
        )
    return engine


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    assert PAN not in out + err, "a full PAN was printed"
    assert ID_NO not in out + err and ID_NO[6:14] not in out + err, "an ID number was printed"
    return code, out, err


def ran(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    """As :func:`run`, for a wrong use too: the exit status argparse leaves with."""
    try:
        code = main(list(argv))
    except SystemExit as done:
        code = int(done.code or 0)
    out, err = capsys.readouterr()
    assert PAN not in out + err, "a full PAN was printed"
    return code, out, err


def test_account_show_masks_and_tells_the_balance(
    hub: Engine, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(capsys, "account", "show", PAN)
    assert code == 0, err
    assert "622202****0019" in out
    assert "123.45 yuan" in out and "12345 fen" in out
    assert "440101**********3X" in out
    assert "A00000002" in out and "normal" in out and "cancelled" in out
    assert "seed" in out
    code, out, _ = run(capsys, "account", "show", PAN, "--json")
    report = json.loads(out)
    assert (report["balance_fen"], report["balance_yuan"]) == (12_345, "123.45")
    assert [c["card_no"] for c in report["cards"]] == ["A00000001", "A00000002"]
    assert report["entries"][0]["idem_key"] == "seed"
    assert report["flags"] == {
        "loss": "none",
        "pin_locked": False,
        "debit_blocked": False,
        "credit_blocked": False,
    }


def test_ledger_check_names_a_hub_account_whose_cache_differs(
    hub: Engine, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(capsys, "ledger", "check")
    assert code == 0 and "ledger sound" in out
    with hub.begin() as conn:
        conn.execute(text("UPDATE ledger_account SET balance_fen = balance_fen + 1"))
    code, out, _ = run(capsys, "ledger", "check")
    assert code == 1 and "hub accounts' cached balances differing from entries: 1" in out
    code, out, _ = run(capsys, "ledger", "check", "--json")
    assert code == 1 and json.loads(out)["cache_mismatches"] == 1


def test_an_unknown_or_malformed_pan(hub: Engine, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "account", "show", "6222029999999999999")
    assert (code, out) == (1, "")
    assert err.strip() == "sscard account show: no account 622202****9999"
    with pytest.raises(SystemExit) as wrong:
        main(["account", "show", "62220200000X0000019"])
    assert wrong.value.code == 2
    assert "62220200000X0000019" not in capsys.readouterr().err


def test_card_show_tells_its_application_and_replacements(
    hub: Engine, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(capsys, "card", "show", "A00000001")
    assert code == 0, err
    assert (
        "status 9 cancelled" in out and "replaced by A00000002 (application APP2, type 06)" in out
    )
    assert "application APP1 (type 01)" in out and "1 -> 9" in out
    code, out, _ = run(capsys, "card", "show", "A00000002", "--json")
    report = json.loads(out)
    assert report["replaces"] == "A00000001" and report["replaced_by"] == []
    assert report["application"] == {"app_no": "APP2", "app_type": "06"}
    assert report["pan"] == "622202****0019" and report["status_words"].startswith("normal")
    assert run(capsys, "card", "show", "A00000009")[0] == 1


def test_a_test_credit_needs_its_environment_variable(
    hub: Engine, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SSCARD_ALLOW_TEST_CREDIT", raising=False)
    code, _, err = run(capsys, "account", "credit", PAN, "1.00", "--ref", "t1")
    assert code == 2 and "SSCARD_ALLOW_TEST_CREDIT=1" in err
    monkeypatch.setenv("SSCARD_ALLOW_TEST_CREDIT", "1")
    code, out, _ = run(
        capsys, "account", "credit", PAN, "1.00", "--ref", "t1", "--business-date", "20261122"
    )
    assert code == 0 and "posted;" in out and "balance 124.45 yuan" in out
    code, out, _ = run(capsys, "account", "credit", PAN, "1.00", "--ref", "t1", "--json")
    assert code == 0 and json.loads(out)["posted"] is False
    assert run(capsys, "account", "credit", PAN, "1.5", "--ref", "t2")[0] == 2
    assert run(capsys, "account", "credit", "6222029999999999999", "1.00", "--ref", "t3")[0] == 1
    with hub.connect() as conn:
        assert ledger.balance(conn, PAN) == 12_445
        assert ledger.balance(conn, "SETTLEMENT") == -100
        assert (
            conn.scalar(text("SELECT COUNT(*) FROM ledger_txn WHERE idem_key = 'credit:t1'")) == 1
        )


@pytest.mark.parametrize("ref", ["x" * 74, "", "   ", "a\x1b[2Jb"])
def test_a_test_credit_whose_reference_the_ledger_cannot_keep_is_wrong_use(
    ref: str, hub: Engine, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SSCARD_ALLOW_TEST_CREDIT", "1")
    code, _, err = ran(capsys, "account", "credit", PAN, "1.00", "--ref", ref)
    assert code == 2
    assert "--ref" in err and "1 to 73 printable characters" in err
    assert "Traceback" not in err
    with hub.connect() as conn:
        assert ledger.balance(conn, PAN) == 12_345


def test_a_test_credit_reference_of_73_characters_fills_the_idempotency_key(
    hub: Engine, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SSCARD_ALLOW_TEST_CREDIT", "1")
    code, out, err = run(capsys, "account", "credit", PAN, "1.00", "--ref", "r" * 73, "--json")
    assert code == 0, err
    assert json.loads(out)["idem_key"] == "credit:" + "r" * 73
    with hub.connect() as conn:
        assert ledger.balance(conn, PAN) == 12_445


def test_ledger_check_and_audit_verify(hub: Engine, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "ledger", "check")
    assert code == 0 and "ledger sound" in out
    code, out, _ = run(capsys, "audit", "verify", "--json")
    assert code == 0 and json.loads(out) == {
        "ok": True,
        "records": 1,
        "first_bad": None,
        "why": None,
    }
    with hub.begin() as conn:
        conn.execute(text("UPDATE audit_record SET after = '1'"))
        bad = conn.scalar(text("SELECT id FROM audit_record"))
    code, out, _ = run(capsys, "audit", "verify")
    assert code == 1
    assert out.strip() == f"audit chain broken at record {bad}: hash does not match its content"


@pytest.mark.parametrize(
    "argv",
    [
        ["account", "show", PAN],
        ["card", "show", "A00000001"],
        ["ledger", "check"],
        ["audit", "verify", "--json"],
        ["account", "credit", PAN, "1.00", "--ref", "x"],
    ],
)
def test_a_missing_database_is_one_line_and_exit_2(
    argv: list[str],
    tmp_path: object,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from pathlib import Path

    missing = Path(str(tmp_path)) / "none.db"
    monkeypatch.setenv("SSCARD_DATABASE_URL", f"sqlite:///{missing}")
    monkeypatch.setenv("SSCARD_ALLOW_TEST_CREDIT", "1")
    code, out, err = run(capsys, *argv)
    assert code == 2
    assert len(err.strip().splitlines()) == 1 and "no database" in err
    assert not missing.exists()
    if "--json" in argv:
        assert "error" in json.loads(out)


@pytest.mark.parametrize(
    ("argv", "target"),
    [
        (["account", "credit", PAN, "1.00", "--ref", "lk", "--json"], "banking.ledger.post"),
        (["account", "lock-pin", PAN, "--json"], "servicing.days.lock_pin"),
        (
            ["breaks", "resolve", "1", "--reason", "paid", "--json"],
            "reconciliation.daily.resolve_break",
        ),
    ],
)
def test_a_database_failing_midway_is_one_line_exit_2_and_changes_nothing(
    argv: list[str],
    target: str,
    hub: Engine,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import sqlite3

    from sqlalchemy.exc import OperationalError

    def locked(*args: object, **kwargs: object) -> None:
        raise OperationalError(
            "INSERT …", None, sqlite3.OperationalError(f"database is locked ({PAN})\nmore")
        )

    monkeypatch.setenv("SSCARD_ALLOW_TEST_CREDIT", "1")
    monkeypatch.setattr(target, locked)
    code, out, err = run(capsys, *argv)
    assert code == 2
    [line] = err.splitlines()
    command = " ".join(argv[:2])
    reason = "the database failed, nothing was changed: database is locked (622202****0019)"
    assert line == f"sscard {command}: {reason}"
    assert json.loads(out) == {"error": reason, "exit": 2}
    with hub.connect() as conn:
        assert ledger.balance(conn, PAN) == 12_345


def test_an_unmigrated_database_is_exit_2(
    tmp_path: object, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import sqlite3
    from pathlib import Path

    empty = Path(str(tmp_path)) / "empty.db"
    sqlite3.connect(empty).close()
    monkeypatch.setenv("SSCARD_DATABASE_URL", f"sqlite:///{empty}")
    code, _, err = run(capsys, "ledger", "check")
    assert code == 2 and "not migrated" in err and "Traceback" not in err


def test_a_pin_lock_is_recorded_once_and_reported_in_bankevt_as_22(
    hub: Engine, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(capsys, "account", "lock-pin", PAN, "--by", "card-system")
    assert code == 0 and "locked" in out
    code, out, _ = run(capsys, "account", "lock-pin", PAN, "--json")
    assert code == 0 and json.loads(out)["locked"] is False
    with hub.connect() as conn:
        assert conn.scalar(text("SELECT pin_locked FROM account WHERE pan = :p"), {"p": PAN})
        events = conn.execute(text("SELECT op, card_no, channel FROM bank_event")).all()
        assert audit.verify(conn).ok()
    # the account's current card is the newer one of the PAN
    assert [tuple(e) for e in events] == [("22", "A00000002", "AUTO")]
    assert run(capsys, "account", "lock-pin", "6222029999999999999")[0] == 1
    # a name the audit trail cannot keep is refused before anything is done
    with pytest.raises(SystemExit) as refused:
        main(["account", "lock-pin", PAN, "--by", "x" * 41])
    assert refused.value.code == 2 and "1 to 40 characters" in capsys.readouterr().err


@pytest.mark.parametrize("config", ["missing", "not yaml"])
def test_a_pin_lock_with_an_unusable_counterparty_configuration_is_one_line_and_exit_2(
    config: str,
    hub: Engine,
    tmp_path: object,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from pathlib import Path

    path = Path(str(tmp_path)) / "counterparties.yaml"
    if config == "not yaml":
        path.write_text("hub: [unclosed\n")
    monkeypatch.setenv("SSCARD_COUNTERPARTIES", str(path))
    code, out, err = run(capsys, "account", "lock-pin", PAN, "--json")
    assert code == 2
    [line] = err.splitlines()
    assert line.startswith("sscard account lock-pin: counterparty configuration unusable:")
    assert json.loads(out)["exit"] == 2
    with hub.connect() as conn:
        assert not conn.scalar(text("SELECT pin_locked FROM account WHERE pan = :p"), {"p": PAN})
