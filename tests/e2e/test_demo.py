"""``sscard demo`` as a person runs it, in its own process at the README's size: the
terminal tells the day's story and its summary as aligned tables, and every log record
of Airflow, the hub and the SFTP libraries goes to the demo's log file."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import unicodedata
from pathlib import Path

import pytest

from persistence.db import upgrade
from schemas.codes import message

pytestmark = pytest.mark.dag

ROOT = Path(__file__).resolve().parents[2]
DAY = "20261122"
APPLY = f"APPLY_R440100_B001_{DAY}_001.txt"
APPLYRSP = f"APPLYRSP_B001_R440100_{DAY}_001.txt"
CARDRSP = f"CARDRSP_B001_R440100_{DAY}_001.txt"
DAGS = (
    "apply_intake",
    "account_opening",
    "partner_account_returns",
    "factory_dispatch",
    "factory_returns",
    "bureau_card_returns",
)
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
