"""``sscard demo`` as a person runs it, in its own process at the README's size: the
terminal tells the issuance day's story, the servicing day's and the replacements' the
day after, and their summary as aligned tables; every log record of Airflow, the hub and
the SFTP libraries goes to the demo's log file."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import unicodedata
from pathlib import Path

import pytest
from sqlalchemy import text

from persistence.db import engine_for, upgrade
from schemas.codes import message
from tests.support.cards import HELD

pytestmark = pytest.mark.dag

ROOT = Path(__file__).resolve().parents[2]
DAY = "20261122"
APPLY = f"APPLY_R440100_B001_{DAY}_001.txt"
APPLYRSP = f"APPLYRSP_B001_R440100_{DAY}_001.txt"
CARDRSP = f"CARDRSP_B001_R440100_{DAY}_001.txt"
#: the servicing day and the day after it, when the replacements are made
SERVICING, AFTER = "20261123", "20261124"
DAGS = (
    "apply_intake",
    "account_opening",
    "partner_account_returns",
    "factory_dispatch",
    "factory_returns",
    "bureau_card_returns",
)
SERVICING_DAGS = ("channel_requests", "status_sync", "card_maintenance")
#: what Airflow's, the hub's and the SFTP libraries' log lines carry
LOG_MARKS = ("[info", "[warning", "INFO", "DagRun Finished", "::group::", "[DAG TEST]", "asyncssh")


@pytest.fixture(scope="module")
def demo(airflow_db: None, tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str, Path]:
    """The demo's standard output, its standard error and its var directory."""
    var = tmp_path_factory.mktemp("demo") / "var"
    url = f"sqlite:///{var.parent / 'hub.db'}"
    upgrade(url)
    env = {**os.environ, "SSCARD_VAR_DIR": str(var), "SSCARD_DATABASE_URL": url}
    for name in ("SSCARD_STORAGE_URL", "SSCARD_WORK_DIR", "PYTEST_VERSION", "PYTEST_CURRENT_TEST"):
        env.pop(name, None)
    done = subprocess.run(
        [sys.executable, "-m", "sscard.cli", "demo", "--business-date", DAY],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout, done.stderr, var


def _width(text: str) -> int:
    return sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in text)


def _block(out: str, title: str) -> list[str]:
    """The lines from the one starting with ``title`` to the next empty line."""
    lines = out.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(title))
    end = next((i for i in range(start, len(lines)) if not lines[i].strip()), len(lines))
    return lines[start:end]


def _story(out: str, heading: str) -> list[str]:
    """The story told under the line starting with ``heading`` (after its empty line)."""
    lines = out.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(heading)) + 2
    end = next((i for i in range(start, len(lines)) if not lines[i].strip()), len(lines))
    return lines[start:end]


def _yuan(text_: str) -> int:
    whole, cents = text_.split(".")
    return int(whole) * 100 + int(cents)


def test_the_terminal_shows_no_log_line_and_nothing_on_standard_error(
    demo: tuple[str, str, Path],
) -> None:
    out, err, _ = demo
    assert err == ""
    for mark in LOG_MARKS:
        assert mark not in out, f"{mark!r} on the terminal"
    assert not re.search(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d", out), "a log timestamp on the terminal"


def test_the_story_tells_each_step_on_one_line_as_it_happened(
    demo: tuple[str, str, Path],
) -> None:
    out, _, _ = demo
    story = _block(out, "bureau R440100")
    who = [line[:25].rstrip() for line in story]
    assert who == [
        "bureau R440100",
        "apply_intake",
        "account_opening",
        "partner bank B002",
        "partner bank B003",
        "partner_account_returns",
        "factory_dispatch",
        "card factory F01",
        "factory_returns",
        "bureau_card_returns",
        "bureau R440100",
    ]
    told = dict(zip(who[1:-1], (line[25:] for line in story[1:-1]), strict=True))
    assert story[0][25:] == f"uploaded {APPLY} (200 applications) and its photo zip"
    assert told["apply_intake"] == f"184 accepted, 16 rejected → {APPLYRSP} (200 lines) delivered"
    assert re.fullmatch(
        r"\d+ hub accounts, ACCTOPEN to B002 \(\d+\), B003 \(\d+\)", told["account_opening"]
    )
    assert told["partner bank B002"] == f"answered ACCTOPENRSP_B002_B001_{DAY}_001.txt"
    assert re.fullmatch(
        r"B002: \d+ accounts opened, \d+ refused; B003: \d+ accounts opened, \d+ refused",
        told["partner_account_returns"],
    )
    assert re.fullmatch(
        rf"PERSO_B001_F01_{DAY}_001\.txt \(\d+ cards\) and its photo zip to F01",
        told["factory_dispatch"],
    )
    assert told["card factory F01"] == f"returned PERSORSP_F01_B001_{DAY}_001.txt"
    made = re.fullmatch(
        rf"PERSORSP_F01_B001_{DAY}_001\.txt: (\d+) made, \d+ failed", told["factory_returns"]
    )
    assert made
    assert told["bureau_card_returns"] == f"{CARDRSP} (184 lines) delivered"
    assert story[-1][25:] == f"collected {APPLYRSP}, {CARDRSP}"
    assert re.search(rf"^  0 made +{made[1]}$", out, re.M)


def test_the_applyrsp_is_a_table_of_reason_codes_with_chinese_and_english_messages(
    demo: tuple[str, str, Path],
) -> None:
    out, _, _ = demo
    table = _block(out, f"APPLYRSP {APPLYRSP}")
    assert table[0] == f"APPLYRSP {APPLYRSP}: 200 lines, 184 accepted, 16 rejected"
    assert table[1].split() == ["code", "lines", "原因", "reason"]
    rows = table[3:-1]
    assert [row.split()[0] for row in rows] == [
        f"E1{n:02d}" for n in (1, 2, 3, 4, 5, 6, 7, 8, 9, 11, 12, 13, 14, 15, 16, 17)
    ]
    assert "  E113      1  照片缺失" in table[3 + 11]
    english = {_width(row[: row.index(message(row.split()[0], "en"))]) for row in rows}
    assert english == {_width(table[1][: table[1].index("reason")])}, "English in one column"
    assert table[-1] == "  the bureau's expectations match every line (16 bad lines planted)"


def test_the_cardrsp_is_a_table_by_stage_and_the_made_cards_one_by_bank(
    demo: tuple[str, str, Path],
) -> None:
    out, _, _ = demo
    table = _block(out, f"CARDRSP {CARDRSP}")
    assert table[0] == f"CARDRSP {CARDRSP}: 184 card(s) reached a final outcome"
    assert table[1].split() == ["stage", "code", "cards", "reason"]
    stages = {
        m[1]: int(m[2])
        for m in (re.match(r"  (\d [a-z ]+?) +(\d+)$", row) for row in table[3:])
        if m
    }
    assert list(stages) == ["0 made", "1 failed at the bank", "2 failed at the factory"]
    assert sum(stages.values()) == 184
    reasons = [row.split()[0] for row in table[3:] if row.startswith("    ")]
    assert reasons and all(re.fullmatch(r"[EM]\d{3}", code) for code in reasons)
    cards = {len(row) for row in table[3:] if re.search(r"\d$", row)}
    assert len(cards) == 1, "the counts end in one column"

    banks = _block(out, "Made cards by service bank")
    assert banks[1].split() == ["bank", "cards"]
    made = {row.split()[0]: row.split()[1:] for row in banks[3:]}
    assert [made[b][0] for b in ("B001", "B002", "B003")] == ["hub", "partner", "partner"]
    assert made["total"] == [str(stages["0 made"])]
    assert sum(int(made[b][1]) for b in ("B001", "B002", "B003")) == stages["0 made"]


def test_airflows_own_logs_are_in_the_file_the_demo_names(demo: tuple[str, str, Path]) -> None:
    out, _, var = demo
    log = var / "demo" / "airflow-demo.log"
    where = _block(out, "Where to look:")
    assert any(row.endswith(f"  {log}") for row in where)
    assert str(log) in out.splitlines()[0]
    text = log.read_text(encoding="utf-8")
    for dag_id in DAGS:
        assert f"DagRun Finished: dag_id={dag_id}," in text
    for logger in ("[DAG TEST]", "::group::", "[sscard.", "[transport.sftp]", "[paramiko"):
        assert logger in text
    assert "[sandbox.sftp_server]" in text and "[asyncssh]" in text


def test_the_servicing_day_and_the_day_after_tell_each_step_on_one_line(
    demo: tuple[str, str, Path],
) -> None:
    out, _, _ = demo
    assert (
        f"The servicing day {SERVICING} (the day's work at 10:00, the end of day at 21:30 "
        "Asia/Shanghai)" in out
    )
    story = _story(out, f"The servicing day {SERVICING}")
    assert [line[:25].rstrip() for line in story] == [
        "channel C01",
        "channel_requests",
        "channel C01",
        "credits (sandbox)",
        "bureau R440100",
        "status_sync",
        "partner bank B002",
        "status_sync",
        "card_maintenance",
        "bureau R440100",
    ]
    told = [line[25:] for line in story]
    assert re.fullmatch(
        rf"uploaded CHANNEL_C01_B001_{SERVICING}_001\.txt \(\d+ requests, \d+ of them faulty\) "
        rf"and CHANNEL_C01_B001_{SERVICING}_002\.txt .*",
        told[0],
    )
    assert re.fullmatch(
        rf"CHANNEL_C01_B001_{SERVICING}_001\.txt: \d+ done, \d+ already so, \d+ refused; "
        rf"CHANNEL_C01_B001_{SERVICING}_002\.txt: 2 done → .* delivered",
        told[1],
    )
    assert told[2] == (
        f"collected CHANNELRSP_B001_C01_{SERVICING}_001.txt, "
        f"CHANNELRSP_B001_C01_{SERVICING}_002.txt"
    )
    assert told[3] == (
        "4 activated accounts credited, 2473.06 yuan in all (Dr SETTLEMENT, Cr the account)"
    )
    assert told[5] == (
        f"STATUS_R440100_B001_{SERVICING}_001.txt: 2 done, 1 refused, 1 forwarded to a "
        f"partner bank → STATUS_B001_B002_{SERVICING}_001.txt (1 lines) delivered"
    )
    assert told[6].startswith(
        f"answered STATUSRSP_B002_B001_{SERVICING}_001.txt; sent BANKEVT_B002_B001_{SERVICING}_001.txt"
    )
    assert told[7].endswith(f"→ STATUSRSP_B001_R440100_{SERVICING}_001.txt (4 lines) delivered")
    assert re.fullmatch(
        rf"BANKEVT_B001_R440100_{SERVICING}_001\.txt \(\d+ lines\) delivered", told[8]
    )
    assert told[9] == (
        f"collected BANKEVT_B001_R440100_{SERVICING}_001.txt, "
        f"STATUSRSP_B001_R440100_{SERVICING}_001.txt"
    )

    after = _story(out, f"The day after, {AFTER}: the 2 lost cards replaced")
    assert [line[:25].rstrip() for line in after] == [
        "bureau R440100",
        "apply_intake",
        "account_opening",
        "factory_dispatch",
        "card factory F01",
        "factory_returns",
        "bureau_card_returns",
        "channel C01",
        "channel_requests",
        "bureau R440100",
        "status_sync",
        "card_maintenance",
        "channel C01",
        "bureau R440100",
    ]
    told = [line[25:] for line in after]
    assert told[1] == (
        f"2 accepted, 0 rejected → APPLYRSP_B001_R440100_{AFTER}_001.txt (2 lines) delivered"
    )
    assert told[5] == f"PERSORSP_F01_B001_{AFTER}_001.txt: 2 made, 0 failed"
    assert told[8].startswith(f"CHANNEL_C01_B001_{AFTER}_001.txt: 1 done → ")
    assert told[10].startswith(f"STATUS_R440100_B001_{AFTER}_001.txt: 1 done → ")


def test_the_channel_gets_every_answer_it_expected(demo: tuple[str, str, Path]) -> None:
    out, _, _ = demo
    table = _block(out, f"CHANNELRSP of {SERVICING}")
    lines = int(re.match(rf"CHANNELRSP of {SERVICING}: (\d+) lines in ", table[0])[1])
    assert table[1].split() == ["result", "code", "lines", "原因", "reason"]
    rows = {tuple(row.split()[:2]): row for row in table[3:-1]}
    counts = {
        (key[0], key[1] if key[1].startswith("E") else ""): int(
            re.match(r"  \S+ +(?:E\d{3} +)?(\d+)", row)[1]
        )
        for key, row in rows.items()
    }
    assert sum(counts.values()) == lines > 40
    assert [k for k in counts if k[0] != "01"] == [("00", ""), ("02", "")]
    assert {("01", "E130"), ("01", "E131"), ("01", "E132")} <= set(counts)
    planted = re.fullmatch(
        r"  the channel's expectations match every line \((\d+) faulty requests planted\)",
        table[-1],
    )
    assert planted and int(planted[1]) >= 10
    english = {_width(r[: r.index("PIN rejected as weak")]) for r in table if "E131" in r}
    assert english == {_width(table[1][: table[1].index("reason")])}, "English in one column"
    assert _block(out, f"CHANNELRSP of {AFTER}")[-1] == (
        "  the channel's expectations match every line (0 faulty requests planted)"
    )
    assert "DO NOT match" not in out


def test_the_bureau_gets_its_statusrsp_and_each_days_bankevt(demo: tuple[str, str, Path]) -> None:
    out, _, _ = demo
    table = _block(out, f"STATUSRSP_B001_R440100_{SERVICING}_001.txt")
    assert table[1].split() == ["req_no", "op", "card_no", "result", "code", "reason"]
    lines = [row.split()[:5] for row in table[3:]]
    assert [(op, result) for _, op, _, result, *_ in lines] == [
        ("02", "00"),
        ("02", "00"),
        ("11", "00"),
        ("01", "01"),
    ]
    assert lines[3][2:] == ["ZZZZZZZZZ", "01", "E119"]
    assert table[3 + 3].endswith(message("E119", "en"))

    day = _block(out, f"BANKEVT_B001_R440100_{SERVICING}_001.txt")
    assert int(re.match(r".*: (\d+) events$", day[0])[1]) > 40
    relayed = [row for row in day[3:] if re.match(r"  01  temporary loss +C21 +1  ", row)]
    assert relayed and relayed[0].split()[-1] == lines[2][2], "the partner's loss, relayed"
    assert any(re.match(r"  11  enabled +C01 +\d+  ", row) for row in day[3:])
    after = _block(out, f"BANKEVT_B001_R440100_{AFTER}_001.txt")
    auto = [row.split() for row in after[3:] if " AUTO " in row]
    assert len(auto) == 1 and auto[0][:4] == ["04", "cancelled", "AUTO", "2"]
    assert set(auto[0][4:]) == {lines[0][2], lines[1][2]}, "the two lost cards cancelled"


def test_both_replacements_end_with_the_right_balances(demo: tuple[str, str, Path]) -> None:
    out, _, var = demo
    table = _block(out, f"Replacements of {AFTER} (balances in yuan)")
    assert table[1].split() == [
        "old",
        "card",
        "new",
        "card",
        "kind",
        "account",
        "before",
        "before",
        "account",
        "after",
        "after",
        "old",
        "account",
        "now",
    ]
    shown = {}
    for row in table[3:]:
        m = re.fullmatch(
            r"  (\w{9})  (\w{9})  (kept number|moved balance) +(\d{6}\*{4}\d{4}) +(\d+\.\d\d)"
            r"  (\d{6}\*{4}\d{4}) +(\d+\.\d\d)  (.+)",
            row,
        )
        assert m, row
        shown[m[3]] = m.groups()
    kept, moved = shown["kept number"], shown["moved balance"]
    assert kept[3] == kept[5] and kept[4] == kept[6] == "300.00" and kept[7] == "the same"
    assert moved[3] != moved[5] and moved[4] == moved[6] == "1234.56"
    assert moved[7] == "closed, 0.00"

    engine = engine_for(f"sqlite:///{var.parent / 'hub.db'}")
    with engine.connect() as conn:
        done = {
            r.kind: r
            for r in conn.execute(
                text(
                    "SELECT r.kind, r.old_card_no, r.new_card_no, r.moved_fen, o.pan AS old_pan, "
                    "n.pan AS new_pan, n.pan_seq, o.status AS old_status, "
                    f"{HELD.format('oa')} AS old_fen, oa.status AS old_account, "
                    f"{HELD.format('na')} AS new_fen FROM replacement r "
                    "JOIN card o ON o.card_no = r.old_card_no "
                    "JOIN card n ON n.card_no = r.new_card_no "
                    "JOIN account oa ON oa.pan = o.pan JOIN account na ON na.pan = n.pan"
                )
            )
        }
        pans = [r[0] for r in conn.execute(text("SELECT pan FROM card WHERE pan IS NOT NULL"))]
        ids = [r[0] for r in conn.execute(text("SELECT id_no FROM card"))]
    assert set(done) == {"kept", "moved"}
    k, m = done["kept"], done["moved"]
    assert (k.old_card_no, k.new_card_no) == kept[:2] and (m.old_card_no, m.new_card_no) == moved[
        :2
    ]
    assert k.old_pan == k.new_pan and k.pan_seq == "02" and k.new_fen == 30_000 == _yuan(kept[6])
    assert k.old_account == "active"
    assert m.old_pan != m.new_pan and m.moved_fen == m.new_fen == 123_456 == _yuan(moved[6])
    assert m.old_fen == 0 and m.old_account == "closed"
    assert k.old_status == m.old_status == "9"
    assert len(pans) > 100
    for value in (*pans, *ids):
        assert value not in out, "a full PAN or ID number on the terminal"


def test_the_books_are_checked_and_every_expectation_is_met(demo: tuple[str, str, Path]) -> None:
    out, _, var = demo
    checks = _block(out, "Checks of the books")
    assert checks[1] == "  ledger check  ok"
    assert re.fullmatch(r"  audit verify  ok, \d+ records chained", checks[2])
    met = re.search(r"^Expectations of the servicing days: (\d+) of (\d+) met$", out, re.M)
    assert met and met[1] == met[2] and int(met[1]) >= 10
    assert "NOT met" not in out
    where = dict(
        re.match(r"  (.+?)  +(\S.*)$", row).groups() for row in _block(out, "Where to look:")[1:]
    )
    card = re.search(r"^  \w{9}  (\w{9})  moved balance", out, re.M)[1]
    assert where["a card, the card it replaced, its audit"] == f"uv run sscard card show {card}"
    assert where["an account: status, balance, entries"].startswith(
        "uv run sscard account show PAN"
    )
    assert where["the audit chain"] == "uv run sscard audit verify"
    assert where["the ledger's invariants"] == "uv run sscard ledger check"
    assert where["what the channel took from its drop directory"] == f"{var}/demo/channel-inbox/"
    log = (var / "demo" / "airflow-demo.log").read_text(encoding="utf-8")
    for dag_id in SERVICING_DAGS:
        assert f"DagRun Finished: dag_id={dag_id}," in log


#: the pension day (the first business date after the replacements) and the day after it
PENSION, PAID = "20261125", "20261126"
DISB = [f"DISB_R440100_B001_{PENSION}_{seq:03d}.txt" for seq in (1, 2, 3)]
DISBRSP = [f"DISBRSP_B001_R440100_{PENSION}_{seq:03d}.txt" for seq in (1, 2, 3)]
BATCHES = [f"D{PENSION}{seq:03d}" for seq in (1, 2, 3)]
RECON_HEADER = [
    "batch",
    "type",
    "instructed",
    "credited",
    "failed",
    "funded",
    "returned",
    "partner",
    "settled",
    "difference",
    "status",
    "break",
    "reason",
]


def _recon(out: str, day: str) -> dict[str, list[str]]:
    table = _block(out, f"RECON RECON_B001_R440100_{day}_001.txt")
    assert table[0] == f"RECON RECON_B001_R440100_{day}_001.txt: 3 batches (amounts in yuan)"
    assert table[1].split() == RECON_HEADER
    rows = {row.split()[0]: row.split() for row in table[3:]}
    assert list(rows) == BATCHES
    for row in rows.values():
        assert row[1] == "110" and all(re.fullmatch(r"-?\d+\.\d\d", v) for v in row[2:10])
    return rows


def test_the_pension_day_and_the_day_after_tell_each_step_on_one_line(
    demo: tuple[str, str, Path],
) -> None:
    out, _, _ = demo
    assert (
        f"The pension day {PENSION} (the day's work at 10:00, the payments end of day at 23:00 "
        "Asia/Shanghai)" in out
    )
    story = _story(out, f"The pension day {PENSION}")
    assert [line[:25].rstrip() for line in story] == [
        "bureau R440100",
        "disbursement_intake",
        "payment system P01",
        "statement_intake",
        "partner_disbursements",
        "partner bank B002",
        "partner_disbursements",
        "payments_end_of_day",
        "bureau R440100",
    ]
    told = [line[25:] for line in story]
    assert re.fullmatch(
        rf"uploaded {DISB[0]} \(60 pensions, \d+ of them wrong\), {DISB[1]} \(10\) and "
        rf"{DISB[2]} \(10\)",
        told[0],
    )
    assert told[1] == "; ".join(
        f"took {name} ({n} lines)" for name, n in zip(DISB, (60, 10, 10), strict=True)
    )
    assert told[2] == (
        f"sent STMT_P01_B001_{PENSION}_001.txt: {BATCHES[0]} funded in full, {BATCHES[1]} "
        f"1.00 yuan short, {BATCHES[2]} twice, and a credit of 888.00 yuan (工资) for no batch"
    )
    assert told[3] == f"took STMT_P01_B001_{PENSION}_001.txt (5 lines)"
    assert re.fullmatch(rf"DISB_B001_B002_{PENSION}_001\.txt \(\d+ lines\) delivered", told[4])
    assert told[5] == f"answered DISBRSP_B002_B001_{PENSION}_001.txt"
    assert told[6].startswith(f"took DISBRSP_B002_B001_{PENSION}_001.txt")
    assert told[7].startswith("reconciled: 1 PENDING, 2 BREAK → ")
    assert f"RECON_B001_R440100_{PENSION}_001.txt (3 lines) delivered" in told[7]
    assert told[8] == "collected " + ", ".join([*DISBRSP, f"RECON_B001_R440100_{PENSION}_001.txt"])

    after = _story(out, f"The day after, {PAID}: the returns and partner settlements")
    assert [line[:25].rstrip() for line in after] == [
        "payment system P01",
        "statement_intake",
        "payments_end_of_day",
        "bureau R440100",
    ]
    told = [line[25:] for line in after]
    assert re.fullmatch(
        rf"sent STMT_P01_B001_{PAID}_001\.txt: \d returns \(RET\) of \d+\.\d\d yuan, "
        r"\d partner settlements \(PTN\) of \d+\.\d\d yuan",
        told[0],
    )
    assert told[2] == (
        f"reconciled: 1 BALANCED, 2 BREAK → RECON_B001_R440100_{PAID}_001.txt (3 lines) delivered"
    )
    assert told[3] == f"collected RECON_B001_R440100_{PAID}_001.txt"


def test_every_disbrsp_line_is_the_answer_the_bureau_expected(
    demo: tuple[str, str, Path],
) -> None:
    out, _, _ = demo
    how = ("in full", "short", "twice")
    tables = [_block(out, f"DISBRSP {name} ") for name in DISBRSP]
    for table, name, batch, funded in zip(tables, DISBRSP, BATCHES, how, strict=True):
        assert table[0].startswith(f"DISBRSP {name} (batch {batch} funded {funded}): ")
        assert table[1].split() == ["result", "lines", "原因", "reason"]
        assert table[-1].startswith("  the bureau's expectations match every line (")
    full = {row.split()[0]: row for row in tables[0][3:-1]}
    assert {"0000", "103", "104", "105", "106", "209"} <= set(full)
    assert full["0000"].endswith("入账成功              credited")
    assert full["106"].endswith(message("106", "en"))
    planted = re.search(r"\((\d+) bad lines planted, (\d+) lines answered", tables[0][-1])
    assert planted and int(planted[1]) >= 10 and int(planted[2]) > 0
    lines = int(re.search(r": (\d+) lines, ", tables[0][0])[1])
    assert lines == 60 == sum(int(row.split()[1]) for row in tables[0][3:-1])
    assert [row.split()[:2] for row in tables[1][3:-1]] == [["301", "10"]]
    assert tables[1][-1].endswith("(every line 301 at the cut-off)")
    twice = {row.split()[0]: int(row.split()[1]) for row in tables[2][3:-1]}
    assert twice["0000"] >= 5 and sum(twice.values()) == 10
    assert "DO NOT match" not in out


def test_both_recon_tables_show_the_statuses_the_day_planted(
    demo: tuple[str, str, Path],
) -> None:
    out, _, _ = demo
    full, short, twice = BATCHES
    first = _recon(out, PENSION)
    assert first[full][10:] == ["PENDING"]
    assert first[short][10:12] == ["BREAK", "R03"]
    assert first[twice][10:12] == ["BREAK", "R04"]
    assert _yuan(first[short][5]) == _yuan(first[short][2]) - 100, "funded 1.00 yuan short"
    assert _yuan(first[twice][5]) == 2 * _yuan(first[twice][2]), "funded twice"
    second = _recon(out, PAID)
    assert second[full][10:] == ["BALANCED"] and second[full][9] == "0.00"
    assert second[full][6] == second[full][4], "the failed amount returned"
    assert second[full][8] == second[full][7], "the partner's part settled"
    assert second[short][10:12] == ["BREAK", "R03"]
    assert second[twice][10:12] == ["BREAK", "R04"]


def test_the_open_breaks_the_books_and_finances_reports(demo: tuple[str, str, Path]) -> None:
    out, _, var = demo
    breaks = _block(out, f"Open breaks after {PAID} (uv run sscard breaks list)")
    assert breaks[1].split() == [
        "id",
        "batch_no",
        "reason",
        "含义",
        "meaning",
        "amount",
        "first",
        "seen",
    ]
    found = {row.split()[2]: row.split() for row in breaks[3:]}
    # the batch funded twice is over-funded (R04) and a suspected double posting (R06)
    assert set(found) == {"R03", "R04", "R06", "R09"}
    assert found["R09"][1] == "-" and found["R09"][-2:] == ["888.00", PENSION]
    assert found["R03"][1] == BATCHES[1] and found["R03"][-2] == "1.00"
    assert found["R04"][1] == found["R06"][1] == BATCHES[2]
    assert _block(out, "Checks of the books after the payments days")[1] == "  ledger check  ok"
    met = re.search(r"^Expectations of the payments days: (\d+) of (\d+) met$", out, re.M)
    assert met and met[1] == met[2] and int(met[1]) >= 8
    where = dict(
        re.match(r"  (.+?)  +(\S.*)$", row).groups() for row in _block(out, "Where to look:")[1:]
    )
    reports = var / "storage" / "reports" / PAID
    paths = {
        "finance's report of the day (HTML, charts)": reports / f"recon_{PAID}.html",
        "  the same as a workbook": reports / f"recon_{PAID}.xlsx",
        "  every item of the day (Parquet)": reports / "parquet",
        "  returns and settlements to send": reports / f"instructions_{PAID}.csv",
    }
    for what, path in paths.items():
        assert where[what].rstrip("/") == str(path)
        assert path.exists(), path
    assert any((reports / "parquet").rglob("*.parquet"))
    assert where["the open breaks"] == "uv run sscard breaks list"
    assert where["close a break by hand"] == 'uv run sscard breaks resolve ID --reason "…"'
    assert where["breaks asked about in the Airflow UI"] == "the DAG break_review"
    log = (var / "demo" / "airflow-demo.log").read_text(encoding="utf-8")
    for dag_id in (
        "disbursement_intake",
        "statement_intake",
        "partner_disbursements",
        "payments_end_of_day",
    ):
        assert f"DagRun Finished: dag_id={dag_id}," in log
