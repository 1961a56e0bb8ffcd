"""The hub in a real Airflow on this machine (``make airflow``): API server, scheduler, DAG
processor and triggerer as processes of their own, the sandbox counterparties as a
service. The simulated bureau uploads a batch and the *scheduled* DAGs, not
``dag.test()``, take it through the issuance day: every accepted application comes back
in a CARDRSP. Meanwhile the break review asks about last week's open breaks; finance
answers as a person does: the questions on the UI's Required actions page, one break
resolved with a reason and one left open through the API the UI's form posts to, and the
resolution is kept in the hub with who, when and why and its audit record. Then one
command stops everything it started. The tests share one stack and run in this order."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import text

from persistence.db import engine_for, upgrade
from tests.integration.test_breaks_cli import break_ids, plant_breaks
from tests.support.airflow_stack import (
    DAY_TIMEOUT,
    ROOT,
    Run,
    airflow_stack,
    hub_database,
    hub_url,
    listening,
    wait_for_day,
)

if TYPE_CHECKING:
    from tests.e2e.test_ui import Api

pytestmark = pytest.mark.dag

__all__ = ["ROOT", "local_airflow"]

Stack = tuple[Run, Path, dict[str, str]]

#: how long the break review may take from the stack's start to its questions, and from
#: the answers to the end of its run
REVIEW_TIMEOUT = 300


@pytest.fixture(scope="module")
def local_airflow(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """The stack, its hub holding what last week's reconciliations left open (an overdue
    return, R07, and an unidentified statement item, R09) before Airflow starts, so the
    break review Airflow starts for the latest business day asks about them."""
    tmp_path = tmp_path_factory.mktemp("local_airflow")
    hub = hub_database()
    url = hub_url(tmp_path / "airflow", hub)
    if url.startswith("sqlite"):
        (tmp_path / "airflow" / "hub").mkdir(parents=True)
    upgrade(url)
    engine = engine_for(url)
    today = datetime.now(ZoneInfo("Asia/Shanghai")).date()
    plant_breaks(engine, (today - timedelta(days=today.weekday() + 7)).strftime("%Y%m%d"))
    engine.dispose()
    with airflow_stack(
        tmp_path,
        AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=f"sqlite:///{tmp_path / 'airflow.db'}",
        **hub,
    ) as stack:
        yield stack


def test_the_scheduled_dags_take_an_uploaded_batch_through_the_issuance_day(
    local_airflow: Stack,
) -> None:
    run, home, env = local_airflow
    port = int(env["SSCARD_AIRFLOW_PORT"])
    assert listening(port)

    uploaded = run("batch")
    assert uploaded.returncode == 0, uploaded.stdout + uploaded.stderr

    answered, outcomes = wait_for_day(home / "bureau-inbox")
    reported = set(outcomes)

    assert len(answered) > 150
    assert reported >= set(answered), (
        f"{len(set(answered) - reported)} of {len(answered)} accepted applications not in a "
        f"CARDRSP after {DAY_TIMEOUT} s; logs in {home / 'logs'}"
    )
    scheduled = (home / "task-logs").rglob("*.log")
    assert any("run_id=scheduled__" in str(p) or "asset_triggered__" in str(p) for p in scheduled)


def test_finance_resolves_one_break_and_leaves_another_open_in_the_break_reviews_required_actions(
    local_airflow: Stack, tmp_path: Path
) -> None:
    from playwright.sync_api import expect, sync_playwright

    from tests.e2e.test_ui import (
        CHROMIUM,
        CHROMIUM_ARGS,
        PAGE_TIMEOUT_MS,
        Api,
        admin_password,
        log_in,
    )

    _, home, env = local_airflow
    base = f"http://127.0.0.1:{env['SSCARD_AIRFLOW_PORT']}"
    password = admin_password(home)
    api = Api(base, password)
    hub = engine_for(hub_url(home, env))
    ids = break_ids(hub)

    # the review of the latest business day (an unpaused DAG's latest 09:00 runs at once)
    unpause(api, "break_review")
    asked = questions_waiting(api, count=2, home=home)
    subjects = {d["subject"]: d for d in asked}
    resolve = subjects[f"Break {ids['R07']}: R07 R440100 B001 50.00 yuan"]
    leave = subjects[f"Break {ids['R09']}: R09 0.88 yuan"]
    run_id = resolve["task_instance"]["dag_run_id"]
    assert "return not received when due" in resolve["body"]
    assert "- amount: 50.00 yuan" in resolve["body"]
    assert (resolve["options"], resolve["defaults"]) == (["Resolve", "Leave open"], ["Leave open"])

    # (a) the questions as finance sees them: the UI's Required actions page
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True
        )
        try:
            page = browser.new_page(viewport={"width": 1440, "height": 900})
            page.set_default_timeout(PAGE_TIMEOUT_MS)
            log_in(page, base, password)
            page.goto(f"{base}/required_actions?response_received=false")
            for subject in subjects:
                expect(page.get_by_text(subject, exact=True)).to_be_visible()
            page.screenshot(path=tmp_path / "required-actions.png")
        finally:
            browser.close()

    # (b) the answers, through the endpoint the UI's form posts to
    reason = "退款已由网点线下退回 / returned by the branch"
    answered = api.call(
        "PATCH",
        hitl_path(resolve),
        {"chosen_options": ["Resolve"], "params_input": {"reason": reason}},
    )
    api.call(
        "PATCH",
        hitl_path(leave),
        {"chosen_options": ["Leave open"], "params_input": {"reason": ""}},
    )

    # (c) the run ends green; the break resolved as admin answered it, the other still open
    assert run_state(api, run_id, home) == "success"
    with hub.connect() as conn:
        rows = {
            r.id: r
            for r in conn.execute(
                text("SELECT id, resolved_at, resolved_by, resolution FROM recon_break")
            )
        }
        record = conn.execute(text("SELECT * FROM audit_record WHERE op = 'break:resolve'")).one()
    done = rows[ids["R07"]]
    assert (done.resolved_by, done.resolution) == ("admin", reason)
    assert as_utc(done.resolved_at) == as_utc(answered["responded_at"])
    assert (rows[ids["R09"]].resolved_at, rows[ids["R09"]].resolution) == (None, None)
    assert (record.actor, record.channel, record.ref, record.before, record.after) == (
        "admin",
        "airflow",
        f"break:{ids['R07']}",
        "open",
        "resolved",
    )
    verified = subprocess.run(
        [str(ROOT / ".venv" / "bin" / "sscard"), "audit", "verify"],
        env={**env, "SSCARD_DATABASE_URL": hub_url(home, env)},
        capture_output=True,
        text=True,
        check=False,
    )
    assert verified.returncode == 0, verified.stdout + verified.stderr
    hub.dispose()


def test_one_command_stops_everything(local_airflow: Stack) -> None:
    run, home, env = local_airflow
    port = int(env["SSCARD_AIRFLOW_PORT"])
    assert listening(port)

    stopped = run("down")
    assert stopped.returncode == 0
    assert not listening(port)
    assert not listening(int(env["SSCARD_SANDBOX_SFTP_PORT"]))
    assert not list((home / "pids").glob("*.pid"))


def unpause(api: Api, dag_id: str) -> None:
    """``dag_id`` unpaused (the stack unpauses the DAGs it was given; a paused DAG's runs wait)."""
    if api.call("GET", f"/api/v2/dags/{dag_id}")["is_paused"]:
        api.call("PATCH", f"/api/v2/dags/{dag_id}", {"is_paused": False})


def questions_waiting(api: Api, *, count: int, home: Path) -> list[dict[str, Any]]:
    """The break review's required actions once ``count`` of them wait for a person."""
    deadline = time.monotonic() + REVIEW_TIMEOUT
    found: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        found = api.call("GET", "/api/v2/dags/break_review/dagRuns/~/hitlDetails")["hitl_details"]
        waiting = [d for d in found if d["task_instance"]["state"] == "awaiting_input"]
        if len(waiting) >= count:
            return waiting
        time.sleep(2)
    raise AssertionError(
        f"{len(found)} required actions of break_review after {REVIEW_TIMEOUT} s, not {count} "
        f"waiting; logs in {home / 'task-logs'}"
    )


def hitl_path(detail: dict[str, Any]) -> str:
    """Where a required action is answered (``PATCH``), as the UI's form does."""
    ti = detail["task_instance"]
    return (
        f"/api/v2/dags/break_review/dagRuns/{quote(ti['dag_run_id'], safe='')}/taskInstances/"
        f"{ti['task_id']}/{ti['map_index']}/hitlDetails"
    )


def run_state(api: Api, run_id: str, home: Path) -> str:
    """The run's state once it has ended (or whatever it is after ``REVIEW_TIMEOUT``)."""
    deadline = time.monotonic() + REVIEW_TIMEOUT
    state = ""
    while time.monotonic() < deadline:
        state = api.call("GET", f"/api/v2/dags/break_review/dagRuns/{quote(run_id, safe='')}")[
            "state"
        ]
        if state in ("success", "failed"):
            break
        time.sleep(2)
    return state


def as_utc(value: object) -> datetime:
    """A time from the API (ISO text) or the hub (a datetime, naive UTC on SQLite)."""
    from datetime import UTC

    when = datetime.fromisoformat(value) if isinstance(value, str) else value
    assert isinstance(when, datetime), value
    return when.astimezone(UTC) if when.tzinfo else when.replace(tzinfo=UTC)
