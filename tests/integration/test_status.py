"""``sscard status`` tells an operator and a monitor where the work stands: every stage in
plain words with its next step, who takes it and when it is due; the day's files per
counterparty; a level (exit 0 ok, 1 needs attention, 2 critical) by the thresholds of
``issuance.status``; ``sscard refused-returns`` lists the returned records refused. An
unusable database gets one line and exit 2, and a read never creates a database."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import Engine, insert

from issuance.status import (
    LIMITS,
    STAGES,
    THRESHOLDS,
    Level,
    StatusSettings,
    render,
    work_status,
)
from persistence.db import upgrade
from persistence.models import (
    Application,
    ApplicationState,
    OutboundFile,
    PartnerRequest,
    PersoRecord,
    ReceivedFile,
    ReturnProblem,
)
from schemas.states import ApplicationStatus
from sscard.cli import main
from sscard.schedules import BUSINESS

ROOT = Path(__file__).resolve().parents[2]
SHANGHAI = ZoneInfo("Asia/Shanghai")
DAY = "20261123"
BEFORE = "20261122"
#: personal data planted in the rows: none of it may appear in any output
ID_NO = "11010519491231002X"
NAME = "张三丰"
PAN = "6217881000000012348"
MOBILE = "13800138000"
SETTINGS = StatusSettings(
    partner_wait_days={"B002": 1},
    zip_wait_minutes={"sftp_r440100": 120},
    party_of={"sftp_r440100": "R440100", "sftp_b002": "B002", "sftp_f01": "F01"},
    crons=BUSINESS,
)


def at(day: str, hh: int, mm: int = 0) -> datetime:
    """``day`` at ``hh:mm`` in Asia/Shanghai."""
    return datetime(int(day[:4]), int(day[4:6]), int(day[6:]), hh, mm, tzinfo=SHANGHAI)


def utc(moment: datetime) -> datetime:
    return moment.astimezone(UTC)


_ids = iter(range(1, 10_000))


def application(
    engine: Engine,
    status: ApplicationStatus,
    bureau: str = "R440100",
    final_date: str | None = None,
) -> int:
    """An application and its state, holding the planted ID number, name and PAN, from
    an APPLY file taken long ago."""
    n = next(_ids)
    old = utc(at("20260105", 10))
    file_id = received(
        engine,
        name=f"APPLY_{bureau}_B001_20260105_{n % 1000:03d}.txt",
        outcome="accepted",
        first_seen_at=old,
        processed_at=old,
    )
    with engine.begin() as conn:
        conn.execute(
            insert(Application).values(
                id=n,
                bureau=bureau,
                app_no=f"A{n:09d}",
                file_id=file_id,
                seq=n,
                app_type="01",
                id_type="01",
                id_no=ID_NO,
                id_valid_to="20361231",
                name=NAME,
                gender="1",
                ethnicity="01",
                birth_date="19491231",
                nationality="CHN",
                mobile=MOBILE,
                region_code="440100",
                bank_code="B001",
                card_no=f"C{n:08d}",
                business_date=BEFORE,
            )
        )
        conn.execute(
            insert(ApplicationState).values(
                application_id=n,
                bureau=bureau,
                status=status.value,
                pan=PAN if status != ApplicationStatus.ACCEPTED else None,
                final_date=final_date,
                fail_stage="1" if status == ApplicationStatus.FAILED else None,
            )
        )
    return n


def received(engine: Engine, **values: Any) -> int:
    row = {
        "conn_id": "sftp_r440100",
        "sha256": "0" * 64,
        "size": 10,
        "accepted_count": 0,
        "rejected_count": 0,
    } | values
    row.setdefault("archived_at", row.get("processed_at"))
    with engine.begin() as conn:
        return int(conn.execute(insert(ReceivedFile).values(**row)).inserted_primary_key[0])


def queued(engine: Engine, name: str, created_at: datetime, **values: Any) -> None:
    row = {
        "conn_id": "sftp_r440100",
        "directory": "drop",
        "name": name,
        "type": name.split("_")[0],
        "data": b"x",
        "sha256": "0" * 64,
        "record_count": 1,
        "created_at": utc(created_at),
    } | values
    with engine.begin() as conn:
        conn.execute(insert(OutboundFile).values(**row))


def partner_requests(engine: Engine, count: int, delivered: datetime | None) -> None:
    """``count`` applications at partner B002, in one ACCTOPEN delivered at ``delivered``."""
    name = f"ACCTOPEN_B001_B002_{BEFORE}_{next(_ids):03d}.txt"
    queued(
        engine,
        name,
        at(BEFORE, 9),
        conn_id="sftp_b002",
        delivered_at=utc(delivered) if delivered else None,
    )
    for _ in range(count):
        n = application(engine, ApplicationStatus.PARTNER_SENT)
        with engine.begin() as conn:
            conn.execute(
                insert(PartnerRequest).values(
                    req_no=f"AO{n:012d}",
                    application_id=n,
                    bank_code="B002",
                    request_name=name,
                    sent_date=BEFORE,
                )
            )


def at_factory(engine: Engine, issue_date: str) -> None:
    n = application(engine, ApplicationStatus.PERSO_SENT)
    with engine.begin() as conn:
        conn.execute(
            insert(PersoRecord).values(
                application_id=n,
                card_no=f"C{n:08d}",
                pan=PAN,
                factory="F01",
                perso_name=f"PERSO_B001_F01_{issue_date}_001.txt",
                seq=1,
                issue_date=issue_date,
                expiry_date="20361123",
            )
        )


def refused(engine: Engine, key: str, line_no: int, day: str = DAY) -> None:
    with engine.begin() as conn:
        conn.execute(
            insert(ReturnProblem).values(
                file_name=f"PERSORSP_F01_B001_{day}_001.txt",
                line_no=line_no,
                key=key,
                problem="card_no not in any PERSO",
                business_date=day,
            )
        )


def codes(engine: Engine, now: datetime, day: str = DAY) -> dict[str, int]:
    """The findings at ``now``: code → count."""
    status = work_status(engine, day, SETTINGS, now=now)
    return {f.threshold.code: f.count for f in status.findings}


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


# --------------------------------------------------------------------------- stages


def test_every_application_status_has_one_stage_in_the_order_applications_go() -> None:
    assert [s.status for s in STAGES] == list(ApplicationStatus)
    assert len({s.name for s in STAGES}) == len(STAGES)
    assert all(s.name != s.status.value for s in STAGES)


def test_each_stage_is_moved_on_by_a_dag_the_hub_schedules() -> None:
    dags = {p.stem for p in (ROOT / "dags").glob("*.py")}

    assert {s.dag_id for s in STAGES} <= set(BUSINESS) & dags


def test_each_stage_is_named_in_plain_words_with_its_next_step_who_takes_it_and_when_it_is_due(
    engine: Engine,
) -> None:
    application(engine, ApplicationStatus.ACCEPTED)
    application(engine, ApplicationStatus.ACCEPTED)
    application(engine, ApplicationStatus.ACCEPTED, bureau="R440300")
    application(engine, ApplicationStatus.ACCOUNT_OPEN)
    at_factory(engine, DAY)
    application(engine, ApplicationStatus.MADE, final_date=DAY)
    application(engine, ApplicationStatus.FAILED, final_date=DAY)
    partner_requests(engine, 1, at(DAY, 1))

    status = work_status(engine, DAY, SETTINGS, now=at(DAY, 10))
    text = render(status)

    lines = text.splitlines()
    stage_lines = {s.name: next(line for line in lines if s.name in line) for s in STAGES}
    assert stage_lines["waiting for an account"].split() == [
        *"waiting for an account".split(),
        "3",
        "(R440100",
        "2,",
        "R440300",
        "1)",
    ]
    assert stage_lines["at the partner bank"].split()[-3:] == ["1", "(R440100", "1)"]
    assert (
        "by the hub: account_opening, hourly at :05 and as soon as intake has accepted "
        "applications; next run 10:05" in text
    )
    assert (
        "by the partner bank; the hub takes its answers: partner_account_returns, every 15 "
        "minutes; next run 10:15; E140 of the oldest on 20261125" in text
    )
    assert (
        "by the hub: factory_dispatch, daily at 16:00 and as soon as accounts are ready; "
        "next run 16:00" in text
    )
    assert (
        "by the card factory; the hub takes its results: factory_returns, every 30 minutes; "
        "next run 10:30; oldest sent 20261123" in text
    )
    assert text.count("by the hub: bureau_card_returns, daily at 20:00; next run 20:00") == 2
    assert "next: the card is sent to the factory in a PERSO file with its photo" in text
    stages = status.as_json()["stages"]
    assert [(s["stage"], s["count"]) for s in stages] == [
        ("waiting for an account", 3),
        ("at the partner bank", 1),
        ("waiting to go to the card factory", 1),
        ("at the card factory", 1),
        ("made, to be reported to the bureau", 1),
        ("failed, to be reported to the bureau", 1),
    ]
    assert stages[0]["bureaus"] == {"R440100": 2, "R440300": 1}
    assert stages[0]["next_run"] == "2026-11-23T10:05:00+08:00"
    assert status.level == Level.OK


def test_the_days_files_are_counted_per_counterparty_received_answered_rejected_delivered(
    engine: Engine,
) -> None:
    ten = utc(at(DAY, 10))
    accepted = received(
        engine,
        name="APPLY_R440100_B001_20261123_001.txt",
        outcome="accepted",
        first_seen_at=ten,
        processed_at=ten,
    )
    bad = received(
        engine,
        name="APPLY_R440100_B001_20261123_002.txt",
        outcome="rejected",
        file_code="F08",
        first_seen_at=ten,
        processed_at=ten,
    )
    received(
        engine, name="APPLY_R440100_B001_20261123_003.txt", outcome="waiting", first_seen_at=ten
    )
    received(
        engine,
        name="APPLY_R440100_B001_20261122_001.txt",
        outcome="accepted",
        first_seen_at=utc(at(BEFORE, 10)),
        processed_at=utc(at(BEFORE, 10)),
    )
    queued(
        engine,
        "APPLYRSP_B001_R440100_20261123_001.txt",
        at(DAY, 10),
        source_file_id=accepted,
        delivered_at=utc(at(DAY, 10, 5)),
    )
    queued(
        engine,
        "APPLY_R440100_B001_20261123_002.txt.rej",
        at(DAY, 10),
        type="REJ",
        source_file_id=bad,
    )
    queued(
        engine,
        "ACCTOPEN_B001_B002_20261123_001.txt",
        at(DAY, 10, 5),
        conn_id="sftp_b002",
        delivered_at=utc(at(DAY, 10, 6)),
    )

    status = work_status(engine, DAY, SETTINGS, now=at(DAY, 10, 20))

    assert [
        (
            f.party,
            f.accepted,
            f.rejected,
            f.waiting,
            f.answered,
            f.rej,
            f.sent,
            f.delivered,
            f.undelivered,
        )
        for f in status.files
    ] == [("B002", 0, 0, 0, 0, 0, 1, 1, 0), ("R440100", 1, 1, 1, 1, 1, 0, 1, 1)]
    lines = render(status).splitlines()
    table = lines[lines.index(f"files on {DAY}, by counterparty:") + 1 :][:3]
    assert [line.split() for line in table] == [
        [
            "party",
            "accepted",
            "rejected",
            "waiting",
            "answered",
            ".rej",
            "sent",
            "delivered",
            "undelivered",
        ],
        ["B002", "0", "0", "0", "0", "0", "1", "1", "0"],
        ["R440100", "1", "1", "1", "1", "1", "0", "1", "1"],
    ]
    assert (
        "  R440100  APPLY_R440100_B001_20261123_003.txt: waiting for its photo zip since 10:00"
        in lines
    )
    assert set(codes(engine, at(DAY, 10, 20))) == {"rejected_files", "waiting_for_zip"}


# --------------------------------------------------------------------------- thresholds


def test_a_quiet_day_is_ok_and_the_command_exits_0(
    engine: Engine, db_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    application(engine, ApplicationStatus.ACCEPTED)
    queued(
        engine,
        "APPLYRSP_B001_R440100_20261123_001.txt",
        at(DAY, 10),
        delivered_at=utc(at(DAY, 10, 1)),
    )
    monkeypatch.setenv("SSCARD_DATABASE_URL", db_url)

    code, out, _ = run(capsys, "status", "--business-date", DAY)

    assert code == 0
    assert out.startswith(f"work status on {DAY}, as of 2026-11-23 23:59 CST: OK (exit 0)")


def test_partner_requests_need_attention_six_hours_before_e140_and_are_critical_half_an_hour_into_it(
    engine: Engine,
) -> None:
    # delivered on Sunday; partner_wait_days 1: the partner has Monday (DAY), E140 on Tuesday
    partner_requests(engine, 3, at(BEFORE, 9, 30))
    tuesday = "20261124"

    assert codes(engine, at(DAY, 17, 59)) == {}
    assert codes(engine, at(DAY, 18, 0)) == {"e140_soon": 3}
    assert codes(engine, at(tuesday, 0, 30), tuesday) == {"e140_soon": 3}
    assert codes(engine, at(tuesday, 0, 31), tuesday) == {"e140_overdue": 3}
    status = work_status(engine, tuesday, SETTINGS, now=at(tuesday, 0, 31))
    assert status.level == Level.CRITICAL
    assert status.findings[0].detail == "B002 (E140 20261124) 3"


def test_requests_not_yet_delivered_to_the_partner_have_no_e140_clock(engine: Engine) -> None:
    partner_requests(engine, 2, None)

    status = work_status(engine, DAY, SETTINGS, now=at(DAY, 12))

    assert [(p.unanswered, p.not_delivered, p.e140_day) for p in status.partners] == [(2, 2, "")]
    assert "outbox_late" not in codes(engine, at(BEFORE, 9, 45), BEFORE)
    assert codes(engine, at(BEFORE, 9, 46), BEFORE) == {"outbox_late": 1}


def test_an_undelivered_file_needs_attention_after_45_minutes_and_is_critical_after_2_hours(
    engine: Engine,
) -> None:
    queued(engine, "APPLYRSP_B001_R440100_20261123_001.txt", at(DAY, 10))

    assert codes(engine, at(DAY, 10, 45)) == {}
    assert codes(engine, at(DAY, 10, 46)) == {"outbox_late": 1}
    assert codes(engine, at(DAY, 12, 0)) == {"outbox_late": 1}
    assert codes(engine, at(DAY, 12, 1)) == {"outbox_stuck": 1}
    text = render(work_status(engine, DAY, SETTINGS, now=at(DAY, 12, 1)))
    assert text.startswith(f"work status on {DAY}, as of 2026-11-23 12:01 CST: CRITICAL (exit 2)")
    assert "R440100: APPLYRSP_B001_R440100_20261123_001.txt" in text
    assert "what to do: check the counterparty's server" in text


def test_a_file_waiting_for_its_zip_needs_attention_and_is_critical_half_an_hour_past_zip_wait(
    engine: Engine,
) -> None:
    received(
        engine,
        name="APPLY_R440100_B001_20261123_001.txt",
        outcome="waiting",
        first_seen_at=utc(at(DAY, 9)),
    )

    assert codes(engine, at(DAY, 11, 30)) == {"waiting_for_zip": 1}
    assert codes(engine, at(DAY, 11, 31)) == {"zip_overdue": 1}


def test_returned_records_refused_on_the_day_are_critical(engine: Engine) -> None:
    refused(engine, "C00000001", 3, day=BEFORE)
    assert codes(engine, at(DAY, 12)) == {}

    refused(engine, "C00000002", 4)

    assert codes(engine, at(DAY, 12)) == {"refused_returns": 1}


def test_final_outcomes_missed_by_the_cardrsp_run_due_to_carry_them_are_critical(
    engine: Engine,
) -> None:
    application(engine, ApplicationStatus.MADE, final_date=BEFORE)
    application(engine, ApplicationStatus.FAILED, final_date=DAY)

    # an outcome of BEFORE goes in BEFORE's CARDRSP at 20:00 or, at the latest, in DAY's
    assert codes(engine, at(DAY, 21, 0)) == {}
    assert codes(engine, at(DAY, 21, 1)) == {"cardrsp_overdue": 1}


def test_unfinished_archiving_and_cards_long_at_the_factory_need_attention(
    engine: Engine,
) -> None:
    received(
        engine,
        name="APPLY_R440100_B001_20261123_001.txt",
        outcome="accepted",
        first_seen_at=utc(at(DAY, 9)),
        processed_at=utc(at(DAY, 9)),
        archived_at=None,
    )
    at_factory(engine, "20261116")
    at_factory(engine, "20261115")

    assert codes(engine, at(DAY, 9, 45)) == {"factory_slow": 1}
    assert codes(engine, at(DAY, 9, 46)) == {"factory_slow": 1, "archive_unfinished": 1}
    assert LIMITS.factory_days == 7


# --------------------------------------------------------------------------- the command


def test_the_json_report_is_one_object_with_its_level_findings_stages_partners_and_files(
    engine: Engine, db_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    partner_requests(engine, 2, at(BEFORE, 9, 30))
    queued(
        engine,
        f"ACCTOPEN_B001_B002_{DAY}_001.txt",
        at(DAY, 9),
        conn_id="sftp_b002",
        delivered_at=utc(at(DAY, 9, 30)),
    )
    monkeypatch.setenv("SSCARD_DATABASE_URL", db_url)

    # delivered on Sunday: E140 on Tuesday, at the end of DAY
    code, out, err = run(capsys, "status", "--json", "--business-date", DAY)

    assert err == ""
    assert len(out.splitlines()) == 1
    report = json.loads(out)
    assert code == report["level"] == 1
    assert report["status"] == "needs attention"
    assert set(report) == {
        "business_date",
        "as_of",
        "level",
        "status",
        "findings",
        "stages",
        "partners",
        "factory",
        "files",
        "undelivered",
        "waiting",
        "refused_returns",
    }
    assert report["as_of"] == "2026-11-23T23:59:59+08:00"
    assert [(f["code"], f["level"], f["count"]) for f in report["findings"]] == [
        ("e140_soon", 1, 2)
    ]
    assert set(report["findings"][0]) == {"code", "level", "count", "detail", "rule", "action"}
    assert set(report["stages"][1]) == {
        "status",
        "stage",
        "count",
        "bureaus",
        "next_step",
        "by",
        "dag_id",
        "due",
        "next_run",
    }
    assert report["partners"][0]["e140_day"] == "20261124"
    assert report["files"] == [
        {
            "party": "B002",
            "conn_id": "sftp_b002",
            "accepted": 0,
            "rejected": 0,
            "waiting": 0,
            "answered": 0,
            "rej": 0,
            "sent": 1,
            "delivered": 1,
            "undelivered": 0,
        }
    ]

    code, out, _ = run(capsys, "status", "--json", "--business-date", "20261124")

    assert code == json.loads(out)["level"] == 2


def test_refused_returns_are_listed_by_file_line_key_and_problem_without_personal_data(
    engine: Engine, db_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    refused(engine, "C00000007", 12)
    refused(engine, PAN, 3)  # a PAN where the factory's key should be
    refused(engine, "C00000009", 1, day=BEFORE)
    monkeypatch.setenv("SSCARD_DATABASE_URL", db_url)

    code, out, _ = run(capsys, "refused-returns", "--business-date", DAY)

    assert code == 0
    lines = out.splitlines()
    assert lines[0] == f"returned records refused on {DAY} (table return_problem): 2"
    assert lines[2].split() == [
        f"PERSORSP_F01_B001_{DAY}_001.txt",
        "3",
        "6217…",
        *"card_no not in any PERSO".split(),
    ]
    assert lines[3].split()[:3] == [f"PERSORSP_F01_B001_{DAY}_001.txt", "12", "C00000007"]
    assert PAN not in out
    assert "SELECT" not in out

    code, out, _ = run(capsys, "refused-returns", "--json", "--business-date", DAY)

    assert code == 0
    assert json.loads(out) == {
        "business_date": DAY,
        "count": 2,
        "records": [
            {
                "file": f"PERSORSP_F01_B001_{DAY}_001.txt",
                "line": line,
                "key": key,
                "problem": "card_no not in any PERSO",
                "business_date": DAY,
            }
            for line, key in ((3, "6217…"), (12, "C00000007"))
        ],
    }


def test_no_id_number_name_mobile_or_pan_planted_in_the_data_appears_in_any_output(
    engine: Engine, db_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for state in ApplicationStatus:
        application(engine, state, final_date=DAY if state in ("made", "failed") else None)
    at_factory(engine, BEFORE)
    partner_requests(engine, 2, at(BEFORE, 9))
    refused(engine, ID_NO, 5)
    monkeypatch.setenv("SSCARD_DATABASE_URL", db_url)

    outputs = [
        run(capsys, *command, "--business-date", DAY)[1]
        for command in (
            ["status"],
            ["status", "--json"],
            ["refused-returns"],
            ["refused-returns", "--json"],
        )
    ]

    assert all(outputs)
    for personal in (ID_NO, NAME, PAN, MOBILE, PAN[-10:], ID_NO[6:14]):
        assert not any(personal in out for out in outputs), personal


# --------------------------------------------------------------------- unusable databases


def command(*args: str, url: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "sscard.cli", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env=os.environ | {"SSCARD_DATABASE_URL": url},
    )


@pytest.mark.parametrize("args", [["status"], ["status", "--json"], ["refused-returns"]])
def test_a_missing_sqlite_database_gets_one_line_and_exit_2_and_is_not_created(
    args: list[str], tmp_path: Path
) -> None:
    path = tmp_path / "sscard.db"

    done = command(*args, url=f"sqlite:///{path}")

    assert done.returncode == 2
    assert done.stderr.splitlines() == [
        f"sscard {args[0]}: no database at {path}: create it with `sscard db upgrade` or "
        "point SSCARD_DATABASE_URL at the hub's database"
    ]
    assert list(tmp_path.iterdir()) == []
    if "--json" in args:
        assert json.loads(done.stdout)["level"] == 2
    else:
        assert done.stdout == ""


@pytest.mark.parametrize("args", [["status"], ["refused-returns", "--json"]])
def test_an_unmigrated_database_is_told_to_run_sscard_db_upgrade(
    args: list[str], tmp_path: Path
) -> None:
    path = tmp_path / "sscard.db"
    path.write_bytes(b"")

    done = command(*args, url=f"sqlite:///{path}")

    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    [line] = done.stderr.splitlines()
    assert line.startswith(f"sscard {args[0]}: the database at {path} is not migrated")
    assert line.endswith("run `sscard db upgrade`")
    assert path.read_bytes() == b""


def test_a_database_behind_the_migrations_is_told_to_run_sscard_db_upgrade(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"sqlite:///{tmp_path / 'sscard.db'}"
    upgrade(url, "0010")
    monkeypatch.setenv("SSCARD_DATABASE_URL", url)

    code, out, err = run(capsys, "status")

    assert (code, out) == (2, "")
    assert err.startswith("sscard status: the database at ")
    assert re.search(r"is at revision 0010, the hub needs [0-9]{4}: run `sscard db upgrade`$", err)


def test_an_unreachable_database_gets_one_line_and_exit_2() -> None:
    done = command("status", url="postgresql+psycopg://hub@127.0.0.1:1/sscard")

    assert done.returncode == 2
    [line] = done.stderr.splitlines()
    assert line.startswith("sscard status: cannot reach the database at 127.0.0.1:1/sscard (")
    assert line.endswith("check SSCARD_DATABASE_URL and that the database server is up")


def test_the_status_command_loads_neither_airflow_nor_pandas_nor_pyarrow(db_url: str) -> None:
    probe = (
        "import sys\n"
        "from sscard.cli import main\n"
        "code = main(['status', '--json'])\n"
        "heavy = sorted({'airflow', 'pandas', 'pyarrow', 'numpy', 'sandbox', 'alembic'}"
        " & {m.split('.')[0] for m in sys.modules})\n"
        "print(heavy, file=sys.stderr)\n"
        "sys.exit(code)\n"
    )

    done = subprocess.run(
        [sys.executable, "-c", probe],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env=os.environ | {"SSCARD_DATABASE_URL": db_url},
    )

    assert done.returncode in (0, 1, 2)
    assert done.stderr.strip() == "[]"
    assert json.loads(done.stdout)["level"] == done.returncode
    assert THRESHOLDS  # every threshold is documented data, not code (see test_cli)
