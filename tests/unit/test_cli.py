"""``sscard validate`` tells bureau staff what intake will answer, line by line, without
showing personal data, and exits 0 (file accepted), 1 (file rejected) or 2 (wrong use)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from issuance.status import THRESHOLDS, Level
from schemas.codes import message
from sscard import cli
from sscard.cli import main
from tests.unit.test_fixtures import BAD_LINES, FIXTURES

ROOT = Path(__file__).resolve().parents[2]
BAD_LINES_FILE = FIXTURES / "valid" / "APPLY_R440100_B001_20261122_002.txt"
GOOD_FILE = FIXTURES / "valid" / "APPLY_R440100_B001_20261122_001.txt"
TRUNCATED_FILE = FIXTURES / "F08" / "APPLY_R440100_B001_20261122_001.txt"
DATE = ["--business-date", "20261122"]


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["validate", *args])
    out, err = capsys.readouterr()
    return code, out, err


def id_numbers(path: Path) -> set[str]:
    """Every ID number of the file's detail lines (id_no is the fifth field of ``D|SEQ|…``)."""
    lines = path.read_bytes().decode("gb18030").splitlines()
    return {
        parts[5]
        for parts in (line.split("|") for line in lines)
        if parts[0] == "D" and re.fullmatch(r"[0-9]{17}[0-9X]", parts[5])
    }


def test_json_output_is_one_object_listing_each_rejected_line_by_physical_line_and_seq(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out, _ = run(capsys, str(BAD_LINES_FILE), "--json", *DATE)

    assert code == 0
    assert len(out.splitlines()) == 1
    report = json.loads(out)
    assert set(report) == {"file", "file_code", "accepted", "rejected"}
    assert report["file"] == BAD_LINES_FILE.name
    assert report["file_code"] is None
    assert report["accepted"] == 24 - len(BAD_LINES)
    assert all(set(entry) == {"line", "seq", "field", "code"} for entry in report["rejected"])
    assert all(entry["line"] == entry["seq"] + 1 for entry in report["rejected"])
    assert [tuple(e.values()) for e in report["rejected"]] == [tuple(b) for b in BAD_LINES]


def test_a_file_accepted_with_no_bad_line_exits_0(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, str(GOOD_FILE), "--json", *DATE)

    assert code == 0
    assert json.loads(out) == {
        "file": GOOD_FILE.name,
        "file_code": None,
        "accepted": 5,
        "rejected": [],
    }


def test_a_rejected_file_exits_1_with_its_f_code_and_nothing_accepted(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out, _ = run(capsys, str(TRUNCATED_FILE), "--json", *DATE)

    assert code == 1
    assert json.loads(out) == {
        "file": TRUNCATED_FILE.name,
        "file_code": "F08",
        "accepted": 0,
        "rejected": [],
    }


def test_a_rejected_file_is_explained_in_chinese_and_english(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out, _ = run(capsys, str(TRUNCATED_FILE), *DATE)

    assert code == 1
    assert "F08" in out
    assert message("F08", "zh") in out
    assert message("F08", "en") in out


def test_a_missing_file_exits_2(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    missing = tmp_path / "APPLY_R440100_B001_20261122_001.txt"

    code, out, err = run(capsys, str(missing), *DATE)

    assert code == 2
    assert out == ""
    assert str(missing) in err


def test_a_missing_file_with_json_prints_one_object_saying_why(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    missing = tmp_path / "APPLY_R440100_B001_20261122_001.txt"

    code, out, err = run(capsys, str(missing), "--json", *DATE)

    assert code == 2
    assert json.loads(out) == {"error": f"no such file: {missing}", "exit": 2}
    assert err == f"sscard validate: no such file: {missing}\n"


@pytest.mark.parametrize("json_flag", [[], ["--json"]])
def test_a_file_whose_control_file_cannot_be_read_exits_2_with_one_line(
    json_flag: list[str], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    copy = tmp_path / GOOD_FILE.name
    copy.write_bytes(GOOD_FILE.read_bytes())
    (tmp_path / f"{GOOD_FILE.name}.ok").mkdir()  # FILE.ok is there but no file

    code, out, err = run(capsys, str(copy), *json_flag, *DATE)

    assert code == 2
    [line] = err.splitlines()
    assert line == f"sscard validate: cannot read {copy}.ok: Is a directory"
    if json_flag:
        assert json.loads(out) == {"error": line.removeprefix("sscard validate: "), "exit": 2}
    else:
        assert out == ""


def test_a_file_name_longer_than_the_system_allows_is_no_such_file(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    name = tmp_path / ("A" * 300)

    code, out, err = run(capsys, str(name), "--json", *DATE)

    assert code == 2
    assert json.loads(out)["error"] == f"no such file: {name}"
    assert err.splitlines() == [f"sscard validate: no such file: {name}"]


@pytest.mark.parametrize("config", ["missing", "not yaml", "no hub"])
def test_an_unusable_counterparty_configuration_exits_2_with_one_line_of_reason(
    config: str, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    path = tmp_path / "counterparties.yaml"
    if config != "missing":
        path.write_text("hub: [unclosed\n" if config == "not yaml" else "bureaus: []\n")

    code, out, err = run(capsys, str(GOOD_FILE), "--config", str(path), "--json", *DATE)

    assert code == 2
    [line] = err.splitlines()
    assert line.startswith("sscard validate: counterparty configuration unusable:")
    assert json.loads(out) == {"error": line.removeprefix("sscard validate: "), "exit": 2}


@pytest.mark.parametrize("bad", ["2026-11-22", "20261131", "2026112", "tomorrow"])
def test_a_bad_business_date_exits_2(capsys: pytest.CaptureFixture[str], bad: str) -> None:
    with pytest.raises(SystemExit) as caught:
        main(["validate", str(GOOD_FILE), "--business-date", bad])

    assert caught.value.code == 2
    assert "business date" in capsys.readouterr().err


def test_the_human_output_names_line_seq_field_code_and_both_messages_of_every_rejected_line(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out, _ = run(capsys, str(BAD_LINES_FILE), *DATE)

    assert code == 0
    shown = [line for line in out.splitlines() if line.startswith("line ")]
    assert len(shown) == len(BAD_LINES)
    for text, (line, seq, field, reason) in zip(shown, BAD_LINES, strict=True):
        assert re.match(rf"line\s+{line}\s+SEQ\s+{seq}\s+{re.escape(field)}\s+{reason}\s", text), (
            text
        )
        assert message(reason, "zh") in text
        assert message(reason, "en") in text
    assert f"{24 - len(BAD_LINES)} line(s) accepted" in out


def test_no_id_number_of_the_file_appears_in_the_output(capsys: pytest.CaptureFixture[str]) -> None:
    ids = id_numbers(BAD_LINES_FILE)
    assert len(ids) >= 20

    _, human, _ = run(capsys, str(BAD_LINES_FILE), *DATE)
    _, as_json, _ = run(capsys, str(BAD_LINES_FILE), "--json", *DATE)

    for id_no in ids:
        assert id_no not in human
        assert id_no not in as_json


def test_the_module_runs_as_a_program_and_exits_with_the_precheck_result() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "sscard.cli", "validate", str(BAD_LINES_FILE), "--json", *DATE],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )

    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert [tuple(e.values()) for e in report["rejected"]] == [tuple(b) for b in BAD_LINES]

    truncated = subprocess.run(
        [sys.executable, "-m", "sscard.cli", "validate", str(TRUNCATED_FILE), *DATE],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert truncated.returncode == 1
    assert "F08" in truncated.stdout


def test_a_command_interrupted_with_ctrl_c_says_so_in_one_line_and_exits_130(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def interrupted(args: object) -> int:
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "_validate", interrupted)

    assert cli.main(["validate", str(BAD_LINES_FILE), *DATE]) == 130
    captured = capsys.readouterr()
    assert captured.err == "sscard validate: interrupted\n"
    assert captured.out == ""


def test_output_its_reader_stopped_reading_ends_without_a_traceback() -> None:
    import os

    read_end, write_end = os.pipe()
    os.close(read_end)  # as `sscard … | head -1` once head has its line
    try:
        done = subprocess.run(
            [sys.executable, "-m", "sscard.cli", "validate", str(BAD_LINES_FILE), *DATE],
            cwd=ROOT,
            stdout=write_end,
            stderr=subprocess.PIPE,
            text=True,
            timeout=300,
        )
    finally:
        os.close(write_end)

    assert done.stderr == ""
    assert done.returncode == 141


def test_status_help_names_the_exit_statuses_and_every_threshold_with_what_to_do(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as caught:
        main(["status", "--help"])

    assert caught.value.code == 0
    out = capsys.readouterr().out
    assert "exit status: 0 ok, 1 needs attention, 2 critical" in out
    for threshold in THRESHOLDS:
        assert f"{threshold.level.label:<15} {threshold.code}: {threshold.rule}\n" in out
        assert f"what to do: {threshold.action}\n" in out
    assert {t.level for t in THRESHOLDS} == {Level.ATTENTION, Level.CRITICAL}


@pytest.mark.parametrize("command", ["status", "refused-returns"])
def test_a_read_of_a_missing_database_exits_2_with_one_line_and_creates_no_file(
    command: str,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SSCARD_DATABASE_URL", f"sqlite:///{tmp_path / 'sscard.db'}")

    code = main([command, "--business-date", "20261122"])

    out, err = capsys.readouterr()
    assert (code, out) == (2, "")
    [line] = err.splitlines()
    assert line.startswith(f"sscard {command}: no database at {tmp_path / 'sscard.db'}: ")
    assert "`sscard db upgrade`" in line
    assert list(tmp_path.iterdir()) == []


def test_status_with_an_unusable_counterparty_configuration_exits_2_with_one_line(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    code = main(["status", "--json", "--config", str(tmp_path / "missing.yaml")])

    out, err = capsys.readouterr()
    assert code == 2
    report = json.loads(out)
    assert (report["level"], report["status"], report["exit"]) == (2, "critical", 2)
    assert report["error"].startswith("counterparty configuration unusable:")
    [line] = err.splitlines()
    assert line.startswith("sscard status: counterparty configuration unusable:")


@pytest.mark.parametrize(
    "url",
    [
        "postgresql+psycopg://ops:s3cret@127.0.0.1:1/hub",
        "sqlite:////nonexistent-directory/hub.db",
    ],
)
def test_a_database_upgrade_that_cannot_reach_its_database_exits_2_with_one_line(
    url: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SSCARD_DATABASE_URL", url)

    code = main(["db", "upgrade"])

    out, err = capsys.readouterr()
    assert (code, out) == (2, "")
    [line] = err.splitlines()
    assert line.startswith("sscard db upgrade: cannot migrate the database at ")
    assert "s3cret" not in line


PAN = "6222020000000000019"

#: wrong uses argparse refuses before anything is read, and the command named in the line
WRONG_USES = [
    (["account", "show", PAN, PAN, "--json"], "sscard account show"),
    (["account", "show", "--json"], "sscard account show"),
    (["account", "show", "62220200000X0000019", "--json"], "sscard account show"),
    (["account", "credit", PAN, "1.00", "--json"], "sscard account credit"),
    (
        ["account", "credit", PAN, "1.00", "--ref", "x", "--business-date", "20261131", "--json"],
        "sscard account credit",
    ),
    (["account", "lock-pin", PAN, "--by", "x" * 41, "--json"], "sscard account lock-pin"),
    (["card", "show", "a0000001", "--json"], "sscard card show"),
    (["ledger", "check", "now", "--json"], "sscard ledger check"),
    (["audit", "verify", "--all", "--json"], "sscard audit verify"),
    (["breaks", "list", "--bureau", "B001", "--json"], "sscard breaks list"),
    (["breaks", "show", "0", "--json"], "sscard breaks show"),
    (["breaks", "resolve", "7", "--json"], "sscard breaks resolve"),
    (["outbox", "resend", "--json"], "sscard outbox resend"),
    (["validate", "a.txt", "b.txt", "--json"], "sscard validate"),
    (["config", "check", "--config", "--json"], "sscard config"),
    (["config", "verify", "--json"], "sscard config"),
    (["db", "upgrade", "now"], "sscard db"),
    (["demo", "--size", "many"], "sscard demo"),
    (["ledger"], "sscard ledger"),
    ([], "sscard"),
]


@pytest.mark.parametrize(("argv", "command"), WRONG_USES)
def test_a_wrong_use_is_one_line_with_the_commands_usage_and_exit_2(
    argv: list[str], command: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as caught:
        main(argv)

    out, err = capsys.readouterr()
    assert caught.value.code == 2
    [line] = err.splitlines()
    assert line.startswith(f"{command}: ")
    assert f"; usage: {command} [-h]" in line
    assert PAN not in out + err
    if "--json" in argv:
        report = json.loads(out)
        assert report == {"error": report["error"], "exit": 2}
        assert line.startswith(f"{command}: {report['error']}; usage: ")
    else:
        assert out == ""


def test_a_value_typed_by_mistake_is_shown_masked_and_escaped(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit):
        main(["card", "show", "A00000001", PAN, "\x1b[2J", "--json"])

    out, err = capsys.readouterr()
    assert json.loads(out)["error"] == "unrecognized arguments: 622202****0019 \\x1b[2J"
    assert "\x1b" not in err and PAN not in err


@pytest.mark.parametrize("command", ["status", "refused-returns"])
def test_a_wrong_use_of_a_monitored_command_is_critical_in_its_json(
    command: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as caught:
        main([command, "--business-date", "2026-11-22", "--json"])

    assert caught.value.code == 2
    assert json.loads(capsys.readouterr().out) == {
        "level": 2,
        "status": "critical",
        "error": "argument --business-date: business date must be YYYYMMDD",
        "exit": 2,
    }


@pytest.mark.parametrize("size", ["0", "-3", "1.5", "123456789"])
def test_a_demo_of_no_lines_or_a_size_no_file_can_hold_is_wrong_use(
    size: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as caught:
        main(["demo", "--size", size])

    assert caught.value.code == 2
    [line] = capsys.readouterr().err.splitlines()
    assert line.startswith("sscard demo: argument --size: a size is a number of lines from 1 to")


def test_a_demo_on_a_missing_database_exits_2_with_one_line_and_creates_no_file(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SSCARD_DATABASE_URL", f"sqlite:///{tmp_path / 'sscard.db'}")

    code = main(["demo", "--business-date", "20261122"])

    out, err = capsys.readouterr()
    assert (code, out) == (2, "")
    [line] = err.splitlines()
    assert line.startswith(f"sscard demo: no database at {tmp_path / 'sscard.db'}: ")
    assert "`sscard db upgrade`" in line
    assert list(tmp_path.iterdir()) == []


def test_a_demo_with_an_unusable_counterparty_configuration_exits_2_with_one_line(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SSCARD_COUNTERPARTIES", str(tmp_path / "missing.yaml"))

    code = main(["demo"])

    out, err = capsys.readouterr()
    assert (code, out) == (2, "")
    [line] = err.splitlines()
    assert line.startswith("sscard demo: counterparty configuration unusable:")


@pytest.mark.parametrize(
    "argv",
    [
        ["status", "--json"],
        ["refused-returns", "--json"],
        ["validate", str(GOOD_FILE), "--json"],
        ["demo"],
        ["account", "credit", PAN, "1.00", "--ref", "x", "--json"],
    ],
)
@pytest.mark.parametrize("day", ["99991231", "00010101", "19991231", "21000101"])
def test_a_business_date_outside_the_hubs_years_is_wrong_use_not_a_traceback(
    argv: list[str], day: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as caught:
        main([*argv, "--business-date", day])

    out, err = capsys.readouterr()
    assert caught.value.code == 2
    [line] = err.splitlines()
    assert "argument --business-date: business date must be from 20000101 to 20991231" in line
    if "--json" in argv:
        assert json.loads(out)["exit"] == 2


@pytest.mark.parametrize(
    "url",
    [
        "not a url",
        "postgresql+psycopg://ops:s3cret@127.0.0.1:5432x/hub",
        "postgresql+psycopg//ops:s3cret@127.0.0.1/hub",
    ],
)
@pytest.mark.parametrize(
    "argv", [["db", "upgrade"], ["status", "--json"], ["ledger", "check", "--json"]]
)
def test_a_database_url_that_does_not_parse_is_one_line_and_exit_2_never_showing_it(
    url: str, argv: list[str], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SSCARD_DATABASE_URL", url)

    code = main(argv)

    out, err = capsys.readouterr()
    assert code == 2
    [line] = err.splitlines()
    command = " ".join(a for a in argv if a != "--json")
    assert line.startswith(f"sscard {command}: SSCARD_DATABASE_URL is not a database URL (")
    assert "s3cret" not in out + err and url not in out + err
    if "--json" in argv:
        assert json.loads(out)["exit"] == 2


def test_a_database_upgrade_from_a_revision_this_hub_does_not_know_exits_2_with_one_line(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import sqlite3

    newer = tmp_path / "sscard.db"
    with sqlite3.connect(newer) as conn:
        conn.execute("CREATE TABLE alembic_version (version_num VARCHAR(32) PRIMARY KEY)")
        conn.execute("INSERT INTO alembic_version VALUES ('9999')")
    conn.close()
    monkeypatch.setenv("SSCARD_DATABASE_URL", f"sqlite:///{newer}")

    code = main(["db", "upgrade"])

    out, err = capsys.readouterr()
    assert (code, out) == (2, "")
    [line] = err.splitlines()
    assert line.startswith("sscard db upgrade: cannot migrate the database at ")
    assert "'9999'" in line
