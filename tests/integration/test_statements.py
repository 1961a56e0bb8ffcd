"""STMT intake (ICD §5.11, DOMAIN §6): each kind's legs posted once per (sender, txn_ref),
unidentified items kept as R09, refused lines recorded nowhere, and what finance must
send back."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import Engine, text

from banking import ledger
from reconciliation.statements import return_instructions, write_instructions
from tests.integration.test_reconciliation import (
    BUREAU,
    FAIL,
    MON,
    OK,
    OTHER,
    TUE,
    WED,
    run,
    seed_batch,
    stmt,
)


def _funded(engine: Engine, batch_no: str) -> int:
    with engine.connect() as conn:
        return int(
            conn.scalar(
                text("SELECT funded_fen FROM disb_batch WHERE batch_no = :n"), {"n": batch_no}
            )
        )


def test_each_kind_posts_its_legs_under_the_statement_key(engine: Engine) -> None:
    with engine.begin() as conn:
        seed_batch(conn, "B001", [{"amount": 10000, "result": OK}])
        counts = stmt(
            conn,
            [
                ("T1", "C", 10000, "DISB/B001"),
                ("T2", "D", 300, "RET/B001"),
                ("T3", "D", 200, "PTN/B002/B001"),
            ],
            day=MON,
        )
        assert (counts["DISB"], counts["RET"], counts["PTN"], counts["applied"]) == (1, 1, 1, 3)
        assert ledger.balance(conn, ledger.clearing(BUREAU)) == 10000
        assert ledger.balance(conn, ledger.returns(BUREAU)) == -300
        assert ledger.balance(conn, ledger.due_to_partner("B002")) == -200
        assert ledger.balance(conn, ledger.settlement()) == -10000 + 300 + 200
        keys = ledger.posted_keys(conn)
        assert keys == {"stmt:P01:T1", "stmt:P01:T2", "stmt:P01:T3"}
        assert ledger.check(conn).ok()
    assert _funded(engine, "B001") == 10000


def test_a_statement_line_seen_twice_is_posted_once(engine: Engine) -> None:
    with engine.begin() as conn:
        seed_batch(conn, "B001", [{"amount": 10000, "result": OK}])
        stmt(conn, [("T1", "C", 6000, "DISB/B001")], day=MON)
        again = stmt(
            conn, [("T1", "C", 6000, "DISB/B001"), ("T2", "C", 4000, "DISB/B001")], day=TUE
        )
        assert (again["repeated"], again["DISB"]) == (1, 1)
        assert ledger.balance(conn, ledger.clearing(BUREAU)) == 10000
        assert conn.scalar(text("SELECT COUNT(*) FROM statement_line")) == 2
        assert len(ledger.posted_keys(conn)) == 2
    assert _funded(engine, "B001") == 10000


def test_a_txn_ref_seen_before_with_other_content_is_not_posted_and_is_reported(
    engine: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    with engine.begin() as conn:
        seed_batch(conn, "B001", [{"amount": 10000, "result": OK}])
        stmt(conn, [("T1", "C", 6000, "DISB/B001")], day=MON)
        # the same line again: posted once, nothing to report
        assert stmt(conn, [("T1", "C", 6000, "DISB/B001")], day=MON)["repeated"] == 1
        assert conn.scalar(text("SELECT COUNT(*) FROM return_problem")) == 0
        # the same txn_ref saying another amount
        again = stmt(conn, [("T1", "C", 9000, "DISB/B001")], day=MON)
        assert (again["repeated"], again["conflicting"]) == (1, 1)
        assert "txn_ref T1 recorded before with another amount; the first stands" in caplog.text
        problem = conn.execute(text("SELECT line_no, key, problem FROM return_problem")).one()
        assert tuple(problem) == (
            1,
            "T1",
            "txn_ref seen before, other content",
        )
        assert ledger.balance(conn, ledger.clearing(BUREAU)) == 6000
    assert _funded(engine, "B001") == 6000


def test_a_funding_line_for_an_answered_batch_is_still_recorded_and_posted(engine: Engine) -> None:
    with engine.begin() as conn:
        seed_batch(conn, "B001", [{"amount": 10000, "result": OK}])
        stmt(conn, [("T1", "C", 10000, "DISB/B001")], day=MON)
        stmt(conn, [("T2", "C", 10000, "DISB/B001")], day=TUE)
    assert _funded(engine, "B001") == 20000
    assert run(engine, TUE)["B001"].break_reason == "R04"


def test_memos_not_read_exactly_are_unidentified_r09_items(engine: Engine) -> None:
    with engine.begin() as conn:
        seed_batch(conn, "B001", [{"amount": 100, "result": OK}])
        seed_batch(conn, "S001", [{"amount": 100, "result": OK}])
        seed_batch(conn, "S001", [{"amount": 100, "result": OK}], bureau=OTHER)
        counts = stmt(
            conn,
            [
                ("T1", "C", 100, "DISB/NOSUCH"),  # a batch the hub never received
                ("T2", "D", 100, "DISB/B001"),  # funding as a debit
                ("T3", "C", 100, "disb/B001"),  # not exactly the form
                ("T4", "C", 100, "DISB/S001"),  # two bureaus used this batch_no
                ("T5", "C", 100, ""),
                ("T6", "C", 100, "DISB/B001"),
            ],
            day=MON,
        )
        assert (counts["UNIDENTIFIED"], counts["DISB"]) == (5, 1)
        kinds = dict(conn.execute(text("SELECT txn_ref, kind FROM statement_line")).all())
        assert kinds == {
            "T1": "UNIDENTIFIED",
            "T2": "UNIDENTIFIED",
            "T3": "UNIDENTIFIED",
            "T4": "UNIDENTIFIED",
            "T5": "UNIDENTIFIED",
            "T6": "DISB",
        }
        items = conn.execute(
            text(
                "SELECT bureau, batch_no, reason, ref, amount_fen, first_date FROM recon_break ORDER BY ref"
            )
        ).all()
        assert [tuple(i) for i in items] == [
            ("", "NOSUCH", "R09", "stmt:P01:T1", 100, MON),
            ("", "B001", "R09", "stmt:P01:T2", 100, MON),
            ("", "", "R09", "stmt:P01:T3", 100, MON),
            ("", "S001", "R09", "stmt:P01:T4", 100, MON),
            ("", "", "R09", "stmt:P01:T5", 100, MON),
        ]
        assert len(ledger.posted_keys(conn)) == 1
    assert _funded(engine, "S001") == 0


def test_a_line_failing_the_layout_is_recorded_nowhere(engine: Engine) -> None:
    with engine.begin() as conn:
        seed_batch(conn, "B001", [{"amount": 100, "result": OK}])
        counts = stmt(
            conn,
            [
                ("T1", "C", 100, "DISB/B001"),
                ("T2", "X", 100, "DISB/B001"),
                ("T1", "C", 100, "DISB/B001"),
            ],
            day=MON,
        )
        assert (counts["problems"], counts["applied"], counts["DISB"]) == (2, 1, 1)
        assert conn.scalar(text("SELECT COUNT(*) FROM statement_line")) == 1


@pytest.mark.parametrize("chunk_lines", [50_000, 1])
def test_a_txn_ref_repeated_after_a_refused_line_that_carried_it_is_e107(
    engine: Engine, caplog: pytest.LogCaptureFixture, chunk_lines: int
) -> None:
    with engine.begin() as conn:
        seed_batch(conn, "B001", [{"amount": 100, "result": OK}])
        counts = stmt(
            conn,
            [
                ("T1", "X", 100, "DISB/B001"),
                ("T1", "C", 100, "DISB/B001"),
                ("T2", "C", 100, "DISB/B001"),
            ],
            day=MON,
            chunk_lines=chunk_lines,
        )
        # the first T1 used its key though its dc failed: the second is a repeat (ICD §4.2)
        assert (counts["problems"], counts["applied"], counts["DISB"]) == (2, 1, 1)
        assert conn.scalars(text("SELECT txn_ref FROM statement_line")).all() == ["T2"]
    assert "line 3: field txn_ref repeated in the file (E107)" in caplog.text


def test_finance_is_told_what_to_return_and_settle_and_by_when(
    engine: Engine, tmp_path: Path
) -> None:
    with engine.begin() as conn:
        seed_batch(
            conn,
            "B001",
            [
                {"amount": 10000, "result": OK},
                {"amount": 5000, "result": FAIL},
                {"amount": 7000, "result": OK, "partner": "B002", "sent": MON},
            ],
        )
        seed_batch(conn, "B002", [{"amount": 3000, "result": "301"}], funded_date=None)
        stmt(
            conn,
            [
                ("T1", "C", 22000, "DISB/B001"),
                ("T2", "C", 1000, "DISB/B002"),
                ("T3", "D", 2000, "RET/B001"),
            ],
            day=MON,
        )
        found = return_instructions(conn, MON)
    assert [(i.batch_no, i.kind, i.bank, i.amount_fen, i.memo, i.due_date) for i in found] == [
        ("B001", "PTN", "B002", 7000, "PTN/B002/B001", TUE),
        ("B001", "RET", "", 3000, "RET/B001", TUE),
        ("B002", "RET", "", 1000, "RET/B002", TUE),
    ]
    path = tmp_path / "instructions.csv"
    assert write_instructions(found, path) == 3
    data = path.read_bytes()
    assert data.startswith(b"\xef\xbb\xbf")
    assert (
        data.decode("utf-8-sig").splitlines()[1]
        == "R440100,B001,PTN,B002,70.00,PTN/B002/B001,20261208"
    )
    with engine.begin() as conn:
        stmt(conn, [("T4", "D", 3000, "RET/B001"), ("T5", "D", 7000, "PTN/B002/B001")], day=TUE)
        assert [i.batch_no for i in return_instructions(conn, WED)] == ["B002"]


def test_funding_that_arrives_after_the_cut_off_is_returned_from_the_returns_account(
    engine: Engine,
) -> None:
    """A batch cut off unfunded must have everything it received returned (``RET``),
    also a funding line that came after the cut-off: that money goes to the bureau's
    returns account like the rest (DOMAIN §6), so once the return is on the statement the
    clearing and returns accounts are back at zero (DOMAIN §7). It stayed in clearing,
    and the return left the returns account below zero."""
    from payments.settle import cut_off
    from tests.integration.test_reconciliation import NOW

    with engine.begin() as conn:
        seed_batch(
            conn,
            "B001",
            [{"amount": 10000, "result": None}],
            status="awaiting_funds",
            funded_date=None,
            answered_date=None,
        )
        stmt(conn, [("T1", "C", 4000, "DISB/B001")], day=MON)
    assert cut_off(engine, business_date=MON, now=NOW) == 1
    with engine.begin() as conn:
        stmt(conn, [("T2", "C", 6000, "DISB/B001")], day=TUE)
        assert ledger.balance(conn, ledger.clearing(BUREAU)) == 0
        assert ledger.balance(conn, ledger.returns(BUREAU)) == 10000
        stmt(conn, [("T3", "D", 10000, "RET/B001")], day=WED)
        assert ledger.balance(conn, ledger.clearing(BUREAU)) == 0
        assert ledger.balance(conn, ledger.returns(BUREAU)) == 0
        assert ledger.check(conn).ok()
    assert _funded(engine, "B001") == 10000
    assert run(engine, WED)["B001"].difference_fen == 0
