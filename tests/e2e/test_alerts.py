"""Alerts reach the operators through Airflow's notifiers: a task that failed, the
bureaus' CARDRSP late at its deadline, a partner's requests about to fail E140, an APPLY
still missing its photo zip. Mail goes to a local SMTP sink (aiosmtpd), the webhook to a
local HTTP sink; both are Airflow connections given as environment variables."""

from __future__ import annotations

import asyncio
import email
import json
import socket
import threading
from collections.abc import Iterator
from dataclasses import replace
from datetime import datetime, timedelta
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import Engine

from sandbox.bureau import make_apply_batch, write_batch
from tests.support.sshd import OpenSshServer

pytestmark = pytest.mark.dag

ROOT = Path(__file__).resolve().parents[2]
SHANGHAI = ZoneInfo("Asia/Shanghai")
RUN_AT = datetime(2026, 11, 22, 10, 0, tzinfo=SHANGHAI)


class Sinks:
    def __init__(self) -> None:
        self.mails: list[Message] = []
        self.posts: list[dict[str, Any]] = []

    def mail_text(self, message: Message) -> str:
        parts = [p for p in message.walk() if p.get_content_maintype() == "text"]
        body = "".join(str(p.get_payload(decode=True), "utf-8") for p in parts)
        return f"{message['Subject']}\n{body}"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def sinks(monkeypatch: pytest.MonkeyPatch) -> Iterator[Sinks]:
    """A local SMTP sink and a local HTTP sink, configured as the alert channels."""
    from aiosmtpd.controller import Controller

    got = Sinks()

    class Mailbox:
        async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
            got.mails.append(email.message_from_bytes(envelope.original_content))
            return "250 OK"

    smtp_port = _free_port()
    smtp = Controller(Mailbox(), hostname="127.0.0.1", port=smtp_port)
    smtp.start()

    class Hook(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            got.posts.append({"path": self.path, "json": json.loads(body)})
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    http = ThreadingHTTPServer(("127.0.0.1", 0), Hook)
    thread = threading.Thread(target=http.serve_forever, daemon=True)
    thread.start()

    monkeypatch.setenv(
        "AIRFLOW_CONN_SSCARD_ALERT_SMTP",
        json.dumps(
            {
                "conn_type": "smtp",
                "host": "127.0.0.1",
                "port": smtp_port,
                "extra": {"disable_ssl": True, "disable_tls": True, "from_email": "hub@b001.test"},
            }
        ),
    )
    monkeypatch.setenv(
        "AIRFLOW_CONN_SSCARD_ALERT_WEBHOOK",
        json.dumps(
            {
                "conn_type": "http",
                "host": "127.0.0.1",
                "port": http.server_address[1],
                "schema": "http",
            }
        ),
    )
    monkeypatch.setenv("SSCARD_ALERT_EMAIL_TO", "card-ops@b001.test")
    monkeypatch.setenv("SSCARD_ALERT_SMTP_CONN_ID", "sscard_alert_smtp")
    monkeypatch.setenv("SSCARD_ALERT_WEBHOOK_CONN_ID", "sscard_alert_webhook")
    monkeypatch.setenv("SSCARD_ALERT_WEBHOOK_ENDPOINT", "/alerts")
    try:
        yield got
    finally:
        smtp.stop()
        http.shutdown()
        http.server_close()


def _dag(dag_id: str):
    from airflow.models import DagBag

    return DagBag(dag_folder=str(ROOT / "dags")).get_dag(dag_id)


def test_a_failed_intake_is_mailed_and_posted_naming_the_dag_the_bureau_and_what_to_do(
    airflow_db: None, sinks: Sinks, monkeypatch: pytest.MonkeyPatch
) -> None:
    from airflow.utils.state import DagRunState

    import sscard.jobs
    from exchange.pickup import IntakeIncomplete

    monkeypatch.setenv("AIRFLOW_CONN_SFTP_R440100", json.dumps({"conn_type": "sftp"}))

    def failing(bureau: str, when: datetime, connection: Any) -> dict:
        raise IntakeIncomplete(["APPLY_R440100_B001_20261122_001.txt"])

    monkeypatch.setattr(sscard.jobs, "apply_intake", failing)
    monkeypatch.setattr(sscard.jobs, "deliver_outbox", lambda *args: 0)

    run = _dag("apply_intake").test(run_after=RUN_AT, logical_date=RUN_AT)

    assert run.state == DagRunState.FAILED
    # one alert per failed task that names a counterparty; the run's own marker is silent
    assert len(sinks.mails) == 1
    mail = sinks.mails[0]
    assert mail["To"] == "card-ops@b001.test"
    assert mail["Subject"] == "[sscard] apply_intake.intake failed for R440100"
    text = sinks.mail_text(mail)
    assert "DAG apply_intake" in text
    assert "APPLY_R440100_B001_20261122_001.txt" in text
    assert "Report the error to the developers with the file" in text  # the runbook
    assert "/dags/apply_intake/runs/" in text  # the log URL
    assert [p["path"] for p in sinks.posts] == ["/alerts"]
    posted = sinks.posts[0]["json"]
    assert posted["kind"] == "task_failed"
    assert posted["counterparty"] == "R440100"
    assert posted["details"]["dag"] == "apply_intake"
    assert posted["details"]["task"] == "intake"
    assert any("Report the error to the developers" in t for t in posted["todo"])


def test_a_failed_tasks_alert_shows_no_pan_or_id_number_its_error_quotes() -> None:
    from types import SimpleNamespace

    from sscard.alerts import failure_alert

    pan, id_no = "6217881000000000018", "44010319900101123X"
    ti = SimpleNamespace(dag_id="channel_requests", task_id="requests", rendered_map_index="C01")
    alert = failure_alert({"ti": ti, "exception": KeyError(f"{pan} of {id_no}")})

    assert pan not in alert.text() and id_no not in alert.text()
    assert "KeyError: '621788****0018 of 440103**********3X'" in alert.facts


def test_a_task_failing_on_an_error_that_quotes_a_pan_logs_and_alerts_it_masked(
    airflow_db: None, sinks: Sinks, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    """An error raised outside per-file isolation (here, a database's duplicate-key
    message) reaches the task log and the alert with its PAN and ID number masked."""
    from airflow.utils.state import DagRunState

    import sscard.jobs

    pan, id_no = "6217881000000000018", "44010319900101123X"
    monkeypatch.setenv("AIRFLOW_CONN_SFTP_R440100", json.dumps({"conn_type": "sftp"}))

    def failing(bureau: str, when: datetime, connection: Any) -> dict:
        raise ValueError(f"Key (pan)=({pan}) of {id_no} already exists")

    monkeypatch.setattr(sscard.jobs, "apply_intake", failing)
    monkeypatch.setattr(sscard.jobs, "deliver_outbox", lambda *args: 0)
    dag = _dag("apply_intake")
    dag.get_task("intake").retries = 0

    assert dag.test(run_after=RUN_AT, logical_date=RUN_AT).state == DagRunState.FAILED

    printed = capsys.readouterr()
    log = printed.out + printed.err
    assert "Task failed with exception" in log
    assert "ValueError: Key (pan)=(621788****0018) of 440103**********3X already" in log
    assert pan not in log and id_no not in log
    (mail,) = sinks.mails
    assert pan not in sinks.mail_text(mail) and id_no not in sinks.mail_text(mail)
    assert "failed for R440100: ValueError: Key (pan)=(621788****0018)" in sinks.mail_text(mail)


def test_no_channel_configured_means_no_notifier(
    airflow_db: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sscard.alerts import on_failure

    for name in ("SSCARD_ALERT_EMAIL_TO", "SSCARD_ALERT_WEBHOOK_CONN_ID"):
        monkeypatch.delenv(name, raising=False)
    assert on_failure() == []
    assert _dag("apply_intake").default_args["on_failure_callback"] == []
    assert not _dag("bureau_card_returns").deadline


def test_an_unreachable_channel_is_logged_and_fails_nothing(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from sscard import alerts

    monkeypatch.setenv("SSCARD_ALERT_WEBHOOK_CONN_ID", "sscard_alert_nowhere")
    monkeypatch.setenv(
        "AIRFLOW_CONN_SSCARD_ALERT_NOWHERE",
        json.dumps({"conn_type": "http", "host": "127.0.0.1", "port": 9, "schema": "http"}),
    )
    monkeypatch.delenv("SSCARD_ALERT_EMAIL_TO", raising=False)

    alerts.e140_due("B102", 3, datetime(2026, 11, 23, tzinfo=SHANGHAI), 1)

    assert "not sent by webhook" in caplog.text


def test_bureau_card_returns_declares_a_deadline_alert_at_2030_shanghai(
    airflow_db: None, sinks: Sinks
) -> None:
    from airflow.sdk.definitions.deadline import DagRunLogicalDateDeadline

    dag = _dag("bureau_card_returns")
    [deadline] = dag.deadline
    assert isinstance(deadline.reference, DagRunLogicalDateDeadline)
    assert deadline.callback.path == "sscard.alerts.cardrsp_deadline_missed"
    # the logical date of a CronTriggerTimetable run is its trigger time: 20:00 Shanghai
    assert dag.timetable.expression == "0 20 * * *"
    assert str(dag.timetable.timezone) == "Asia/Shanghai"
    run_at = datetime(2026, 11, 22, 20, 0, tzinfo=SHANGHAI)
    assert (run_at + deadline.interval).astimezone(SHANGHAI).strftime("%H:%M") == "20:30"


def test_the_cardrsp_deadline_callback_alerts_every_bureau_with_the_run_and_what_to_do(
    sinks: Sinks,
) -> None:
    from sscard.alerts import cardrsp_deadline_missed

    context = {
        "dag_run": {
            "dag_id": "bureau_card_returns",
            "dag_run_id": "scheduled__2026-11-22T12:00:00+00:00",
            "logical_date": "2026-11-22T12:00:00Z",
            "state": "running",
        },
        "deadline": {"id": "d1", "deadline_time": "2026-11-22T12:30:00Z"},
    }

    asyncio.run(cardrsp_deadline_missed(context=context))

    [mail] = sinks.mails
    text = sinks.mail_text(mail)
    assert mail["Subject"] == (
        "[sscard] CARDRSP not delivered to the bureaus by 2026-11-22 20:30 Asia/Shanghai"
    )
    assert "scheduled__2026-11-22T12:00:00+00:00" in text
    assert "(due 2026-11-22 20:00 Asia/Shanghai), is running at its deadline" in text
    assert "clear it and re-run" in text
    [post] = sinks.posts
    assert post["json"]["kind"] == "cardrsp_late"
    assert post["json"]["counterparty"] == "every bureau"


def test_requests_about_to_fail_e140_name_the_partner_the_count_and_what_to_do(
    sinks: Sinks, caplog: pytest.LogCaptureFixture
) -> None:
    from sscard import alerts

    alerts.e140_due("B102", 3, datetime(2026, 11, 23, tzinfo=SHANGHAI), 1)

    [mail] = sinks.mails
    assert mail["Subject"] == (
        "[sscard] 3 request(s) to partner B102 fail E140 at 2026-11-23 00:00 Asia/Shanghai"
    )
    assert "Ask partner B102 to deliver its ACCTOPENRSP" in sinks.mail_text(mail)
    assert sinks.posts[0]["json"]["details"]["count"] == 3
    assert "WARNING" in caplog.text and "ALERT" in caplog.text


def test_a_photo_zip_missing_near_zip_wait_names_the_bureau_the_file_and_what_to_do(
    sinks: Sinks,
) -> None:
    from sscard import alerts

    seen = datetime(2026, 11, 22, 10, 0, tzinfo=SHANGHAI)
    alerts.zip_missing(
        "R440100", "APPLY_R440100_B001_20261122_001.txt", seen, seen + timedelta(hours=2)
    )

    [mail] = sinks.mails
    text = sinks.mail_text(mail)
    assert "bureau R440100" in mail["Subject"]
    assert "APPLY_R440100_B001_20261122_001.zip" in mail["Subject"]
    assert "rejected F10 at 2026-11-22 12:00 Asia/Shanghai" in text
    assert "Ask bureau R440100 to deliver APPLY_R440100_B001_20261122_001.zip" in text
    assert sinks.posts[0]["json"]["details"]["file"] == "APPLY_R440100_B001_20261122_001.txt"


def test_an_apply_still_waiting_for_its_photo_zip_at_half_zip_wait_is_alerted_once_due(
    airflow_db: None,
    sinks: Sinks,
    sshd: OpenSshServer,
    engine: Engine,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from airflow.utils.state import DagRunState

    base = sshd.served_root / tmp_path.name
    (base / "pickup").mkdir(parents=True)
    (base / "drop").mkdir()
    monkeypatch.setenv("AIRFLOW_CONN_SFTP_R440100", json.dumps(sshd.connection(base)))
    monkeypatch.setenv("SSCARD_VAR_DIR", str(tmp_path / "var"))
    batch = make_apply_batch(size=3, seed=10)
    write_batch(replace(batch, zip_data=None, zip_control=None), base / "pickup")
    dag = _dag("apply_intake")

    for minutes in (0, 59):  # first seen, then before half of zip_wait (120 min)
        at = RUN_AT + timedelta(minutes=minutes)
        assert dag.test(run_after=at, logical_date=at).state == DagRunState.SUCCESS
    assert sinks.mails == []

    at = RUN_AT + timedelta(minutes=60)
    assert dag.test(run_after=at, logical_date=at).state == DagRunState.SUCCESS

    [mail] = sinks.mails
    assert (
        mail["Subject"] == f"[sscard] {batch.name} from bureau R440100 still lacks {batch.zip_name}"
    )
    assert "rejected F10 at 2026-11-22 12:00 Asia/Shanghai" in sinks.mail_text(mail)
    assert sinks.posts[0]["json"]["counterparty"] == "R440100"


def _partner_requests(engine: Engine, count: int, delivered: datetime) -> None:
    """``count`` applications at partner B002 in one ACCTOPEN delivered at ``delivered``."""
    from sqlalchemy import insert

    from persistence.models import (
        Application,
        ApplicationState,
        OutboundFile,
        PartnerRequest,
        ReceivedFile,
    )

    name = "ACCTOPEN_B001_B002_20261122_001.txt"
    with engine.begin() as conn:
        file_id = conn.execute(
            insert(ReceivedFile).values(
                conn_id="sftp_r440100",
                name="APPLY_R440100_B001_20261122_001.txt",
                sha256="0" * 64,
                size=10,
                outcome="accepted",
                first_seen_at=delivered,
                accepted_count=count,
                rejected_count=0,
            )
        ).inserted_primary_key[0]
        conn.execute(
            insert(OutboundFile).values(
                conn_id="sftp_b002",
                directory="drop",
                name=name,
                type="ACCTOPEN",
                data=b"x",
                sha256="0" * 64,
                record_count=count,
                created_at=delivered,
                delivered_at=delivered,
            )
        )
        for n in range(1, count + 1):
            conn.execute(
                insert(Application).values(
                    id=n,
                    bureau="R440100",
                    app_no=f"A{n:09d}",
                    file_id=file_id,
                    seq=n,
                    app_type="01",
                    id_type="01",
                    id_no="110101194912310014",
                    id_valid_to="20361231",
                    name="测试",
                    gender="1",
                    ethnicity="01",
                    birth_date="19491231",
                    nationality="CHN",
                    mobile="13800000000",
                    region_code="440100",
                    bank_code="B002",
                    card_no=f"C{n:08d}",
                    business_date="20261122",
                )
            )
            conn.execute(
                insert(ApplicationState).values(
                    application_id=n, bureau="R440100", status="partner_sent"
                )
            )
            conn.execute(
                insert(PartnerRequest).values(
                    req_no=f"AO{n:012d}",
                    application_id=n,
                    bank_code="B002",
                    request_name=name,
                    sent_date="20261122",
                )
            )


def test_partner_requests_failing_e140_at_midnight_are_alerted_in_the_last_two_hours(
    sinks: Sinks, engine: Engine
) -> None:
    from sscard.jobs import _alert_e140_due

    # delivered on Sunday 20261122: the partner has Monday to answer
    _partner_requests(engine, 3, datetime(2026, 11, 22, 9, 30, tzinfo=SHANGHAI))

    _alert_e140_due(engine, "B002", datetime(2026, 11, 22, 22, 0, tzinfo=SHANGHAI), 1)
    assert sinks.mails == []  # Monday is still to come
    _alert_e140_due(engine, "B002", datetime(2026, 11, 23, 21, 59, tzinfo=SHANGHAI), 1)
    assert sinks.mails == []
    _alert_e140_due(engine, "B002", datetime(2026, 11, 23, 22, 0, tzinfo=SHANGHAI), 2)
    assert sinks.mails == []  # with two business days to answer, not due tonight

    _alert_e140_due(engine, "B002", datetime(2026, 11, 23, 22, 0, tzinfo=SHANGHAI), 1)

    [mail] = sinks.mails
    assert mail["Subject"] == (
        "[sscard] 3 request(s) to partner B002 fail E140 at 2026-11-24 00:00 Asia/Shanghai"
    )
    assert sinks.posts[0]["json"]["details"]["count"] == 3
