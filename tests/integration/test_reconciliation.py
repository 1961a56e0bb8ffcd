"""The day's reconciliation (ICD §5.12, DOMAIN §7): every R-code planted and found,
PENDING turning BREAK at the due date, breaks carried forward and matched, a past date
computed again giving the same rows and the same RECON bytes, and an empty RECON on a
quiet day."""

from __future__ import annotations

import io
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Connection, Engine, text

from exchange.outbox import Drop
from exchange.storage import Storage
from persistence import registry
from reconciliation.daily import ReconRow, recon_bytes, reconcile, write_recon
from reconciliation.statements import apply_statement
from schemas.codec import DelimitedReader, Header, write_delimited
from schemas.layouts import RECON, STMT
from tests.support.cards import HUB

BUREAU = "R440100"
OTHER = "R440300"
PSYS = "P01"
MON, TUE, WED, THU, FRI = "20261207", "20261208", "20261209", "20261210", "20261211"
NOW = datetime(2026, 12, 7, 8, 0, tzinfo=UTC)


def seed_batch(
    conn: Connection,
    batch_no: str,
    lines: list[dict[str, Any]],
    *,
    bureau: str = BUREAU,
    day: str = MON,
    status: str = "answered",
    funded_date: str | None = MON,
    answered_date: str | None = MON,
    benefit_type: str = "110",
) -> int:
    """A DISB batch and its lines as intake and settlement leave them. A line is
    ``{"amount": fen, "result": code or None, "credited": fen, "partner": bank,
    "sent": date, "answered": date}``; ``answered`` defaults to the batch's answer date."""
    file_id = registry.record_file(
        conn,
        conn_id=f"sftp_{bureau.lower()}",
        name=f"DISB_{bureau}_{HUB}_{day}_{batch_no}.txt",
        type="DISB",
        sender=bureau,
        receiver=HUB,
        batch_no=batch_no,
        business_date=day,
        sha256="1" * 64,
        size=1,
        outcome="accepted",
        first_seen_at=NOW,
        processed_at=NOW,
    )
    total = sum(int(line["amount"]) for line in lines)
    batch_id = int(
        conn.execute(
            text(
                "INSERT INTO disb_batch (bureau, batch_no, file_id, business_date, benefit_type, "
                "line_count, total_fen, funded_fen, status, funded_date, answered_date) VALUES "
                "(:b, :n, :f, :d, :t, :c, :tot, 0, :s, :fd, :ad) RETURNING id"
            ),
            {
                "b": bureau,
                "n": batch_no,
                "f": file_id,
                "d": day,
                "t": benefit_type,
                "c": len(lines),
                "tot": total,
                "s": status,
                "fd": funded_date,
                "ad": answered_date,
            },
        ).scalar_one()
    )
    conn.execute(
        text(
            "INSERT INTO disb_line (batch_id, seq, bureau, pay_no, pan, amount_fen, result, "
            "credited_fen, partner, partner_sent_date, answered_date) VALUES (:b, :s, :bu, :p, "
            "'6217881000000000001', :a, :r, :c, :pt, :sent, :ans)"
        ),
        [
            {
                "b": batch_id,
                "s": seq,
                "bu": bureau,
                "p": f"{batch_no}P{seq}",
                "a": line["amount"],
                "r": line.get("result"),
                "c": line.get("credited", line["amount"] if line.get("result") == "0000" else 0),
                "pt": line.get("partner"),
                "sent": line.get("sent"),
                "ans": line.get("answered", answered_date if line.get("result") else None),
            }
            for seq, line in enumerate(lines, 1)
        ],
    )
    return batch_id


_stmt_seq = {"n": 0}


def stmt(
    conn: Connection,
    lines: list[tuple[str, str, int, str]],
    *,
    day: str,
    sender: str = PSYS,
    chunk_lines: int = 50_000,
) -> dict[str, int]:
    """A STMT file of ``(txn_ref, dc, fen, memo)`` lines applied as of ``day``, read
    ``chunk_lines`` at a time."""
    _stmt_seq["n"] += 1
    rows = [
        (ref, day, dc, f"{fen // 100}.{fen % 100:02d}", "", "", memo)
        for ref, dc, fen, memo in lines
    ]
    seq = _stmt_seq["n"]
    header = Header(
        "STMT", sender, HUB, f"STM{day}{seq:03d}", day, len(rows), sum(x[2] for x in lines)
    )
    buf = io.BytesIO()
    write_delimited(buf, STMT, header, rows, "GB18030")
    file_id = registry.record_file(
        conn,
        conn_id=f"sftp_{sender.lower()}",
        name=f"STMT_{sender}_{HUB}_{day}_{seq % 1000:03d}.txt",
        type="STMT",
        sender=sender,
        receiver=HUB,
        batch_no=header.batch_no,
        business_date=day,
        sha256=f"{seq:064d}",
        size=len(buf.getvalue()),
        outcome="accepted",
        first_seen_at=NOW,
        processed_at=NOW,
    )
    reader = DelimitedReader(buf.getvalue(), STMT, "GB18030", chunk_lines, len(rows))
    return apply_statement(conn, reader, sender=sender, file_id=file_id, business_date=day, now=NOW)


def run(
    engine: Engine, day: str, bureaus: tuple[str, ...] = (BUREAU,), **kw: Any
) -> dict[str, ReconRow]:
    with engine.begin() as conn:
        return {r.batch_no: r for r in reconcile(conn, day, bureaus, **kw)}


def breaks(engine: Engine) -> dict[tuple[str, str], Any]:
    with engine.connect() as conn:
        found = conn.execute(text("SELECT * FROM recon_break ORDER BY id")).all()
    return {(r.batch_no, r.reason): r for r in found}


OK, FAIL = "0000", "103"


# --------------------------------------------------------------------------- balanced


def test_a_paid_batch_is_pending_until_its_returns_arrive_then_balanced(engine: Engine) -> None:
    with engine.begin() as conn:
        seed_batch(
            conn, "B001", [{"amount": 10000, "result": OK}, {"amount": 5000, "result": FAIL}]
        )
        stmt(conn, [("T1", "C", 15000, "DISB/B001")], day=MON)

    mon = run(engine, MON)["B001"]
    assert (mon.status, mon.break_reason) == ("PENDING", "")
    assert (mon.instructed_count, mon.instructed_fen) == (2, 15000)
    assert (mon.credited_count, mon.credited_fen, mon.failed_count, mon.failed_fen) == (
        1,
        10000,
        1,
        5000,
    )
    assert (mon.funded_fen, mon.difference_fen) == (15000, 5000)

    with engine.begin() as conn:
        stmt(conn, [("T2", "D", 5000, "RET/B001")], day=TUE)
    tue = run(engine, TUE)["B001"]
    assert (tue.status, tue.returned_fen, tue.difference_fen) == ("BALANCED", 5000, 0)
    assert breaks(engine) == {}


# --------------------------------------------------------------------------- R07 across the due date


def test_a_return_missing_is_pending_on_its_due_day_and_a_break_the_day_after(
    engine: Engine,
) -> None:
    with engine.begin() as conn:
        seed_batch(
            conn, "B001", [{"amount": 10000, "result": OK}, {"amount": 5000, "result": FAIL}]
        )
        stmt(conn, [("T1", "C", 15000, "DISB/B001")], day=MON)
    assert run(engine, MON)["B001"].status == "PENDING"
    assert run(engine, TUE)["B001"].status == "PENDING"  # due by the end of Tuesday
    wed = run(engine, WED)["B001"]
    assert (wed.status, wed.break_reason) == ("BREAK", "R07")
    item = breaks(engine)[("B001", "R07")]
    assert (item.first_date, item.last_date, item.matched_date, item.amount_fen) == (
        WED,
        WED,
        None,
        5000,
    )


def test_a_break_is_carried_forward_over_quiet_days_and_matched_when_it_clears(
    engine: Engine,
) -> None:
    with engine.begin() as conn:
        seed_batch(
            conn, "B001", [{"amount": 10000, "result": OK}, {"amount": 5000, "result": FAIL}]
        )
        stmt(conn, [("T1", "C", 15000, "DISB/B001")], day=MON)
    for day in (MON, TUE, WED, THU):
        run(engine, day)
    thu = breaks(engine)[("B001", "R07")]
    assert (thu.first_date, thu.last_date, thu.matched_date) == (WED, THU, None)

    with engine.begin() as conn:
        stmt(conn, [("T2", "D", 5000, "RET/B001")], day=FRI)
    fri = run(engine, FRI)["B001"]
    assert fri.status == "BALANCED"
    done = breaks(engine)[("B001", "R07")]
    assert (done.first_date, done.last_date, done.matched_date) == (WED, THU, FRI)


def test_a_batch_pending_yesterday_is_reconciled_today_without_activity(engine: Engine) -> None:
    with engine.begin() as conn:
        seed_batch(conn, "B001", [{"amount": 10000, "result": FAIL}])
        stmt(conn, [("T1", "C", 10000, "DISB/B001")], day=MON)
    run(engine, MON)
    assert "B001" in run(engine, TUE)
    assert run(engine, WED)["B001"].break_reason == "R07"


# --------------------------------------------------------------------------- every R-code


def test_r01_a_line_without_its_result_in_a_funded_batch(engine: Engine) -> None:
    with engine.begin() as conn:
        seed_batch(
            conn,
            "B001",
            [{"amount": 10000, "result": OK}, {"amount": 5000, "result": None}],
            status="funded",
            answered_date=None,
        )
        stmt(conn, [("T1", "C", 15000, "DISB/B001")], day=MON)
    row = run(engine, MON)["B001"]
    assert (row.status, row.break_reason) == ("BREAK", "R01")
    assert breaks(engine)[("B001", "R01")].amount_fen == 5000


def test_r01_waits_for_a_partner_bank_inside_partner_wait(engine: Engine) -> None:
    with engine.begin() as conn:
        seed_batch(
            conn,
            "B001",
            [{"amount": 10000, "result": None, "partner": "B002", "sent": MON}],
            status="funded",
            answered_date=None,
        )
        stmt(conn, [("T1", "C", 10000, "DISB/B001")], day=MON)
    assert run(engine, MON)["B001"].status == "PENDING"
    assert run(engine, TUE)["B001"].status == "PENDING"  # 1 business day after it was sent
    assert run(engine, WED)["B001"].break_reason == "R01"
    assert run(engine, WED, partner_wait_days=2)["B001"].status == "PENDING"


def test_r01_partner_lines_funded_after_the_last_forwarding_wait_one_day(engine: Engine) -> None:
    """A batch funded late on its date: its partner lines go out with the next
    forwarding run, so the day ends PENDING; still unsent a day later, R01."""
    with engine.begin() as conn:
        seed_batch(
            conn,
            "B001",
            [{"amount": 10000, "result": OK}, {"amount": 5000, "result": None, "partner": "B002"}],
            status="funded",
            answered_date=None,
        )
        stmt(conn, [("T1", "C", 15000, "DISB/B001")], day=MON)
    assert run(engine, MON)["B001"].status == "PENDING"
    row = run(engine, TUE)["B001"]
    assert (row.status, row.break_reason) == ("BREAK", "R01")
    assert breaks(engine)[("B001", "R01")].amount_fen == 5000
    # Monday computed again is still PENDING
    assert run(engine, MON)["B001"].status == "PENDING"


def test_r01_partner_lines_funded_late_on_a_friday_wait_for_the_next_business_day(
    engine: Engine,
) -> None:
    sat, mon_after = "20261212", "20261214"
    with engine.begin() as conn:
        seed_batch(
            conn,
            "B001",
            [{"amount": 10000, "result": OK}, {"amount": 5000, "result": None, "partner": "B002"}],
            day=FRI,
            status="funded",
            funded_date=FRI,
            answered_date=None,
        )
        stmt(conn, [("T1", "C", 15000, "DISB/B001")], day=FRI)
    assert run(engine, FRI)["B001"].status == "PENDING"
    assert run(engine, sat)["B001"].status == "PENDING"  # Monday is the next business day
    assert run(engine, mon_after)["B001"].break_reason == "R01"


def test_a_resolved_break_does_not_end_the_watch_on_a_return_still_owed(engine: Engine) -> None:
    """Over-funded (R04) with a failed line: the R04 resolved by hand on Monday, the
    return of the failed line is still due at the end of Tuesday; on Wednesday it is
    overdue and found (R07), an item of its own behind the R04 the RECON row names."""
    from reconciliation.daily import resolve_break

    with engine.begin() as conn:
        seed_batch(
            conn, "B001", [{"amount": 10000, "result": OK}, {"amount": 5000, "result": FAIL}]
        )
        stmt(conn, [("T1", "C", 15100, "DISB/B001")], day=MON)
    assert run(engine, MON)["B001"].break_reason == "R04"
    with engine.begin() as conn:
        resolve_break(conn, breaks(engine)[("B001", "R04")].id, who="ops", why="fee", now=NOW)
    assert run(engine, TUE)["B001"].break_reason == "R04"  # still on RECON, return not due
    wed = run(engine, WED)["B001"]
    assert (wed.status, wed.break_reason) == ("BREAK", "R04")
    r07 = breaks(engine)[("B001", "R07")]
    assert (r07.amount_fen, r07.first_date, r07.resolved_at) == (5000, WED, None)
    with engine.begin() as conn:
        stmt(conn, [("T2", "D", 5000, "RET/B001")], day=THU)
    run(engine, THU)
    assert breaks(engine)[("B001", "R07")].matched_date == THU
    # R04 stays resolved, and with nothing else owed the batch leaves the RECON
    assert breaks(engine)[("B001", "R04")].resolved_at is not None
    assert "B001" not in run(engine, FRI)


def test_each_partner_bank_is_waited_for_its_own_partner_wait_in_business_days(
    engine: Engine,
) -> None:
    with engine.begin() as conn:
        seed_batch(
            conn,
            "B001",
            [
                {"amount": 10000, "result": None, "partner": "B002", "sent": MON},
                {"amount": 5000, "result": None, "partner": "B003", "sent": MON},
            ],
            status="funded",
            answered_date=None,
        )
        stmt(conn, [("T1", "C", 15000, "DISB/B001")], day=MON)
    waits = {"B002": 1, "B003": 3}
    assert run(engine, MON, partner_wait_days=waits)["B001"].status == "PENDING"
    assert run(engine, TUE, partner_wait_days=waits)["B001"].status == "PENDING"
    wed = run(engine, WED, partner_wait_days=waits)["B001"]
    assert (wed.status, wed.break_reason) == ("BREAK", "R01")
    assert breaks(engine)[("B001", "R01")].amount_fen == 15000  # every unanswered line
    # with Tuesday a public holiday, B002's one business day runs to the end of Wednesday
    assert run(engine, WED, partner_wait_days=waits, holidays=[TUE])["B001"].status == "PENDING"


def test_a_past_dates_reports_show_the_items_as_they_stood_then(engine: Engine) -> None:
    """Finance's reports of Wednesday written again on Friday, after a part of the
    return arrived on Thursday, still show Wednesday's amount and last date."""
    from reconciliation.reports import load_day

    with engine.begin() as conn:
        seed_batch(
            conn, "B001", [{"amount": 10000, "result": OK}, {"amount": 5000, "result": FAIL}]
        )
        stmt(conn, [("T1", "C", 15000, "DISB/B001")], day=MON)
    for day in (MON, TUE, WED):
        run(engine, day)
    with engine.connect() as conn:
        wednesday = load_day(conn, WED)
    assert [(b.reason, b.amount_fen, b.last_date) for b in wednesday.breaks] == [("R07", 5000, WED)]
    with engine.begin() as conn:
        stmt(conn, [("T2", "D", 2000, "RET/B001")], day=THU)
    run(engine, THU)
    assert breaks(engine)[("B001", "R07")].amount_fen == 3000
    with engine.connect() as conn:
        assert load_day(conn, WED) == wednesday
        thursday = load_day(conn, THU)
    assert [(b.reason, b.amount_fen, b.last_date) for b in thursday.breaks] == [("R07", 3000, THU)]


def test_r01_not_before_the_cut_off_of_an_unfunded_batch(engine: Engine) -> None:
    with engine.begin() as conn:
        seed_batch(
            conn,
            "B001",
            [{"amount": 10000, "result": None}],
            day=TUE,
            status="awaiting_funds",
            funded_date=None,
            answered_date=None,
        )
    assert run(engine, TUE)["B001"].status == "PENDING"
    assert run(engine, WED)["B001"].break_reason == "R01"  # past its cut-off, still no 301


def test_r02_a_credit_of_another_amount(engine: Engine) -> None:
    with engine.begin() as conn:
        seed_batch(conn, "B001", [{"amount": 10000, "result": OK, "credited": 9000}])
        stmt(conn, [("T1", "C", 10000, "DISB/B001")], day=MON)
    row = run(engine, MON)["B001"]
    assert (row.status, row.break_reason, row.credited_fen) == ("BREAK", "R02", 9000)


def test_r03_an_unfunded_batch_stays_a_break_also_once_answered(engine: Engine) -> None:
    with engine.begin() as conn:
        seed_batch(
            conn,
            "B001",
            [{"amount": 10000, "result": "301"}, {"amount": 5000, "result": "301"}],
            funded_date=None,
        )
        stmt(conn, [("T1", "C", 6000, "DISB/B001")], day=MON)
        stmt(conn, [("T2", "D", 6000, "RET/B001")], day=TUE)
    mon = run(engine, MON)["B001"]
    assert (mon.status, mon.break_reason, mon.funded_fen) == ("BREAK", "R03", 6000)
    tue = run(engine, TUE)["B001"]
    assert (tue.break_reason, tue.returned_fen, tue.difference_fen) == ("R03", 6000, 0)


def test_r03_a_batch_paid_before_funding_and_short_of_its_total_past_its_cut_off(
    engine: Engine,
) -> None:
    with engine.begin() as conn:
        seed_batch(conn, "B001", [{"amount": 10000, "result": OK}], status="funded")
        stmt(conn, [("T1", "C", 4000, "DISB/B001")], day=MON)
    assert run(engine, MON)["B001"].status == "PENDING"  # before its cut-off
    tue = run(engine, TUE)["B001"]
    assert (tue.break_reason, tue.funded_fen) == ("R03", 4000)
    assert breaks(engine)[("B001", "R03")].amount_fen == 6000


def test_r04_a_batch_funded_beyond_its_total(engine: Engine) -> None:
    with engine.begin() as conn:
        seed_batch(conn, "B001", [{"amount": 10000, "result": OK}])
        stmt(conn, [("T1", "C", 10000, "DISB/B001"), ("T2", "C", 500, "DISB/B001")], day=MON)
    row = run(engine, MON)["B001"]
    assert (row.break_reason, row.funded_fen, row.difference_fen) == ("R04", 10500, 500)
    assert breaks(engine)[("B001", "R04")].amount_fen == 500


def test_r05_a_return_beyond_what_failed(engine: Engine) -> None:
    with engine.begin() as conn:
        seed_batch(
            conn, "B001", [{"amount": 10000, "result": OK}, {"amount": 5000, "result": FAIL}]
        )
        stmt(conn, [("T1", "C", 15000, "DISB/B001"), ("T2", "D", 8000, "RET/B001")], day=MON)
    row = run(engine, MON)["B001"]
    assert (row.break_reason, row.difference_fen) == ("R05", -3000)
    assert breaks(engine)[("B001", "R05")].amount_fen == 3000


def test_r05_a_partner_settlement_to_a_bank_that_credited_nothing(engine: Engine) -> None:
    with engine.begin() as conn:
        seed_batch(conn, "B001", [{"amount": 10000, "result": OK}])
        stmt(conn, [("T1", "C", 10000, "DISB/B001"), ("T2", "D", 100, "PTN/B003/B001")], day=MON)
    assert run(engine, MON)["B001"].break_reason == "R05"


def test_r06_two_identical_statement_lines_under_two_txn_refs(engine: Engine) -> None:
    with engine.begin() as conn:
        seed_batch(conn, "B001", [{"amount": 5000, "result": OK}, {"amount": 5000, "result": OK}])
        stmt(conn, [("T1", "C", 5000, "DISB/B001"), ("T2", "C", 5000, "DISB/B001")], day=MON)
    row = run(engine, MON)["B001"]
    assert (row.status, row.break_reason, row.funded_fen) == ("BREAK", "R06", 10000)


def test_r08_a_partner_settlement_missing_after_its_due_date(engine: Engine) -> None:
    with engine.begin() as conn:
        seed_batch(
            conn,
            "B001",
            [
                {"amount": 10000, "result": OK},
                {"amount": 7000, "result": OK, "partner": "B002", "sent": MON},
            ],
        )
        stmt(conn, [("T1", "C", 17000, "DISB/B001")], day=MON)
    mon = run(engine, MON)["B001"]
    assert (mon.status, mon.partner_fen, mon.difference_fen) == ("PENDING", 7000, 7000)
    assert run(engine, TUE)["B001"].status == "PENDING"
    wed = run(engine, WED)["B001"]
    assert (wed.break_reason, wed.partner_settled_fen) == ("R08", 0)
    with engine.begin() as conn:
        stmt(conn, [("T2", "D", 7000, "PTN/B002/B001")], day=THU)
    assert run(engine, THU)["B001"].status == "BALANCED"
    assert breaks(engine)[("B001", "R08")].matched_date == THU


def test_the_first_code_in_the_table_order_is_reported(engine: Engine) -> None:
    with engine.begin() as conn:
        seed_batch(conn, "B001", [{"amount": 10000, "result": OK, "credited": 1}])
        stmt(conn, [("T1", "C", 20000, "DISB/B001")], day=MON)  # R02 and R04
    assert run(engine, MON)["B001"].break_reason == "R02"


def test_r09_unidentified_items_are_carried_forward_outside_any_batch(engine: Engine) -> None:
    with engine.begin() as conn:
        stmt(conn, [("T1", "C", 100, "salary refund")], day=MON)
    assert run(engine, MON) == {}
    run(engine, TUE)
    item = breaks(engine)[("", "R09")]
    assert (item.ref, item.amount_fen, item.first_date, item.last_date) == (
        "stmt:P01:T1",
        100,
        MON,
        TUE,
    )


def test_bureaus_are_reconciled_apart(engine: Engine) -> None:
    with engine.begin() as conn:
        seed_batch(conn, "B001", [{"amount": 100, "result": OK}])
        seed_batch(conn, "C001", [{"amount": 100, "result": OK}], bureau=OTHER)
    assert set(run(engine, MON)) == {"B001"}
    assert set(run(engine, MON, (OTHER,))) == {"C001"}


# --------------------------------------------------------------------------- re-running a past date


def _rows(engine: Engine, day: str) -> list[dict[str, Any]]:
    with engine.connect() as conn:
        return [
            dict(r._mapping)
            for r in conn.execute(
                text(
                    "SELECT * FROM recon_batch WHERE business_date = :d ORDER BY bureau, batch_no"
                ),
                {"d": day},
            )
        ]


def _drop(tmp_path: Path) -> Drop:
    return Drop("sftp_r440100", "drop", NOW, Storage(str(tmp_path / "store")))


def test_a_past_date_computed_again_gives_the_same_rows_breaks_and_recon(
    engine: Engine, tmp_path: Path
) -> None:
    with engine.begin() as conn:
        seed_batch(
            conn, "B001", [{"amount": 10000, "result": OK}, {"amount": 5000, "result": FAIL}]
        )
        seed_batch(conn, "B002", [{"amount": 3000, "result": OK, "credited": 2000}])
        stmt(conn, [("T1", "C", 15000, "DISB/B001"), ("T2", "C", 3000, "DISB/B002")], day=MON)
    for day in (MON, TUE, WED):
        run(engine, day)
        with engine.begin() as conn:
            write_recon(
                conn,
                hub=HUB,
                bureau=BUREAU,
                business_date=day,
                dest=_drop(tmp_path),
                encoding="GB18030",
                work_dir=tmp_path / "work",
            )
    before_rows = _rows(engine, TUE)
    before_breaks = breaks(engine)
    with engine.begin() as conn:
        stmt(conn, [("T3", "D", 5000, "RET/B001")], day=THU)
    run(engine, THU)

    again = run(engine, TUE)
    assert [asdict(again[n]) for n in sorted(again)] == [
        {k: v for k, v in r.items()} for r in before_rows
    ]
    assert _rows(engine, TUE) == before_rows
    after = breaks(engine)
    assert {k: v.first_date for k, v in after.items()} == {
        k: v.first_date for k, v in before_breaks.items()
    }
    assert after[("B001", "R07")].matched_date == THU  # not moved back by the past date
    with engine.begin() as conn:
        stored = conn.scalar(
            text("SELECT data FROM outbound_file WHERE name = :n"),
            {"n": f"RECON_{HUB}_{BUREAU}_{TUE}_001.txt"},
        )
        assert bytes(stored) == recon_bytes(conn, HUB, BUREAU, TUE, "GB18030")
        again_name = write_recon(
            conn,
            hub=HUB,
            bureau=BUREAU,
            business_date=TUE,
            dest=_drop(tmp_path),
            encoding="GB18030",
            work_dir=tmp_path / "work",
        )
        assert again_name is None
        assert conn.scalar(text("SELECT COUNT(*) FROM outbound_file WHERE type = 'RECON'")) == 3


def test_recon_lines_carry_the_figures_by_batch_no(engine: Engine, tmp_path: Path) -> None:
    with engine.begin() as conn:
        seed_batch(conn, "B002", [{"amount": 3000, "result": OK, "credited": 2000}])
        seed_batch(
            conn, "B001", [{"amount": 10000, "result": OK}, {"amount": 5000, "result": FAIL}]
        )
        stmt(conn, [("T1", "C", 15000, "DISB/B001"), ("T2", "C", 3000, "DISB/B002")], day=MON)
    run(engine, MON)
    with engine.begin() as conn:
        name = write_recon(
            conn,
            hub=HUB,
            bureau=BUREAU,
            business_date=MON,
            dest=_drop(tmp_path),
            encoding="GB18030",
            work_dir=tmp_path / "work",
        )
        data = bytes(
            conn.scalar(text("SELECT data FROM outbound_file WHERE name = :n"), {"n": name})
        )
    reader = DelimitedReader(data, RECON, "GB18030")
    found = [c.table.to_pylist() for c in reader.chunks()]
    lines = [
        "|".join(str(v) for k, v in r.items() if not k.startswith("_"))
        for chunk in found
        for r in chunk
    ]
    assert lines == [
        "B001|110|2|150.00|1|100.00|1|50.00|150.00|0.00|0.00|0.00|50.00|PENDING|",
        "B002|110|1|30.00|1|20.00|0|0.00|30.00|0.00|0.00|0.00|10.00|BREAK|R02",
    ]
    assert all(c.ok.all() for c in DelimitedReader(data, RECON, "GB18030").chunks())


def test_a_quiet_day_gets_a_recon_without_detail_lines(engine: Engine, tmp_path: Path) -> None:
    assert run(engine, MON) == {}
    with engine.begin() as conn:
        name = write_recon(
            conn,
            hub=HUB,
            bureau=BUREAU,
            business_date=MON,
            dest=_drop(tmp_path),
            encoding="GB18030",
            work_dir=tmp_path / "work",
        )
        data = bytes(
            conn.scalar(text("SELECT data FROM outbound_file WHERE name = :n"), {"n": name})
        )
    assert name == f"RECON_{HUB}_{BUREAU}_{MON}_001.txt"
    assert data.split(b"\r\n")[1:] == [b"T|0|0.00", b""]
    assert data.startswith(f"H|RECON|{HUB}|{BUREAU}|".encode())


@pytest.mark.parametrize("holiday", [TUE])
def test_a_holiday_moves_the_due_date(engine: Engine, holiday: str) -> None:
    with engine.begin() as conn:
        seed_batch(conn, "B001", [{"amount": 5000, "result": FAIL}])
        stmt(conn, [("T1", "C", 5000, "DISB/B001")], day=MON)
    run(engine, MON, holidays=[holiday])
    run(engine, TUE, holidays=[holiday])
    assert run(engine, WED, holidays=[holiday])["B001"].status == "PENDING"
    assert run(engine, THU, holidays=[holiday])["B001"].break_reason == "R07"
