"""Airflow's UI in a real browser: the local Airflow (``make airflow``) takes a batch the
simulated bureau uploaded through the scheduled ``apply_intake``, and headless Chromium
(Debian's ``chromium``, driven by Playwright) logs in as the operator does and sees the
run green in the grid, the per-code counts in the ``intake`` task's log and the DAG's
runbook (``doc_md``) rendered. Times are shown as the bank sees them (Asia/Shanghai).

Screenshots of the three pages are written to the test's temporary directory; with
``SSCARD_UPDATE_SCREENSHOTS=1`` they replace those in ``docs/screenshots/``."""

from __future__ import annotations

import json
import os
import shutil
import time
import urllib.request
from pathlib import Path
from urllib.parse import quote

import pytest
from playwright.sync_api import Page, expect, sync_playwright

from tests.e2e.test_local_airflow import ROOT, local_airflow  # noqa: F401

pytestmark = pytest.mark.dag

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
SCREENSHOTS = ROOT / "docs" / "screenshots"
#: how long the scheduled apply_intake (every minute in the sandbox) may take to take the batch
RUN_TIMEOUT = 300
#: how long a page of the UI may take to show what is asserted
PAGE_TIMEOUT_MS = 30_000
DAG_ID = "apply_intake"


class Api:
    """Airflow's REST API as the admin user (a bearer token from ``POST /auth/token``)."""

    def __init__(self, base: str, password: str) -> None:
        self.base = base
        self.token = ""
        login = {"username": "admin", "password": password}
        self.token = self.call("POST", "/auth/token", login)["access_token"]

    def call(self, method: str, path: str, body: dict | None = None) -> dict:
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(
            self.base + path, method=method, data=data, headers=headers
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.load(response)

    def intake_log(self, run_id: str, task: dict) -> str:
        path = (
            f"/api/v2/dags/{DAG_ID}/dagRuns/{quote(run_id, safe='')}/taskInstances/"
            f"{task['task_id']}/logs/{task['try_number']}?map_index={task['map_index']}"
        )
        return "\n".join(str(line.get("event", "")) for line in self.call("GET", path)["content"])


def admin_password(home: Path) -> str:
    for line in (home / "secrets.env").read_text().splitlines():
        name, _, value = line.removeprefix("export ").partition("=")
        if name == "SSCARD_ADMIN_PASSWORD":
            return value
    raise AssertionError(f"no SSCARD_ADMIN_PASSWORD in {home / 'secrets.env'}")


def run_that_took_the_batch(api: Api, home: Path) -> tuple[str, str]:
    """The scheduled apply_intake run whose ``intake`` accepted the uploaded APPLY, once it
    succeeded: its run id and that task's log."""
    deadline = time.monotonic() + RUN_TIMEOUT
    taken: tuple[str, str] | None = None
    while time.monotonic() < deadline:
        if taken is None:
            runs = api.call("GET", f"/api/v2/dags/{DAG_ID}/dagRuns?order_by=-run_after&limit=5")
            for run in runs["dag_runs"]:
                run_id = run["dag_run_id"]
                tasks = api.call(
                    "GET", f"/api/v2/dags/{DAG_ID}/dagRuns/{quote(run_id, safe='')}/taskInstances"
                )["task_instances"]
                for task in tasks:
                    if task["task_id"] == "intake" and task["state"] == "success":
                        log = api.intake_log(run_id, task)
                        if "accepted; lines=" in log:
                            taken = run_id, log
        if taken is not None:
            run_id = taken[0]
            state = api.call("GET", f"/api/v2/dags/{DAG_ID}/dagRuns/{quote(run_id, safe='')}")
            assert state["state"] != "failed", f"{run_id} failed; logs in {home / 'task-logs'}"
            if state["state"] == "success":
                return taken
        time.sleep(5)
    raise AssertionError(
        f"no {DAG_ID} run took the batch and succeeded in {RUN_TIMEOUT} s (taken: {taken}); "
        f"logs in {home / 'logs'} and {home / 'task-logs'}"
    )


def log_in(page: Page, base: str, password: str) -> None:
    page.goto(base + "/")
    # a React page: wait for the form, not for the network to be idle
    page.wait_for_selector("input[name=username]", timeout=PAGE_TIMEOUT_MS)
    page.fill("input[name=username]", "admin")
    page.fill("input[name=password]", password)
    page.locator("button[type=submit]").click()
    page.wait_for_url(lambda url: "/auth/login" not in url, timeout=PAGE_TIMEOUT_MS)


@pytest.fixture
def chromium() -> str:
    """Debian's chromium: the test needs it (no browser is downloaded), it is not skipped."""
    assert Path(CHROMIUM).exists(), (
        f"{CHROMIUM} missing: apt-get install -y chromium fonts-noto-cjk"
    )
    return CHROMIUM


def test_an_operator_sees_the_scheduled_run_green_its_per_code_counts_and_the_runbook_in_the_ui(
    chromium: str,
    local_airflow,  # noqa: F811
    tmp_path: Path,
) -> None:
    run, home, env = local_airflow
    base = f"http://127.0.0.1:{env['SSCARD_AIRFLOW_PORT']}"
    uploaded = run("batch")
    assert uploaded.returncode == 0, uploaded.stdout + uploaded.stderr
    password = admin_password(home)
    run_id, log = run_that_took_the_batch(Api(base, password), home)
    assert "E101=" in log

    shots = tmp_path / "screenshots"
    shots.mkdir()
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=chromium, args=CHROMIUM_ARGS, headless=True
        )
        try:
            context = browser.new_context(
                timezone_id="Asia/Shanghai", viewport={"width": 1440, "height": 900}
            )
            page = context.new_page()
            page.set_default_timeout(PAGE_TIMEOUT_MS)
            log_in(page, base, password)
            expect(page.get_by_label("+08:00")).to_be_visible()

            # the grid: the run's bar is green and its tooltip says Success
            page.goto(f"{base}/dags/{DAG_ID}")
            bar = page.locator(f'[data-run-id="{run_id}"] a[href="/dags/{DAG_ID}/runs/{run_id}/"]')
            bar.wait_for()
            # the bar has the colour of a succeeded task's badge (intake, in the same run)
            background = "e => getComputedStyle(e).backgroundColor"
            run_colour = bar.locator("div").first.evaluate(background)
            intake_badge = page.get_by_test_id(f"grid-{run_id}-intake").get_by_test_id(
                "task-state-badge"
            )
            assert run_colour == intake_badge.evaluate(background), run_colour
            bar.hover()
            tooltip = page.get_by_text(f"Run ID: {run_id}")
            expect(tooltip).to_be_visible()
            expect(page.get_by_text("State: Success")).to_be_visible()
            expect(page.get_by_test_id(f"grid-{run_id}-intake")).to_be_visible()
            page.mouse.move(900, 800)  # the tooltip would hide the task names
            expect(tooltip).to_be_hidden()
            page.screenshot(path=shots / "grid.png")

            # the intake task's log (the first bureau's mapped instance), lines wrapped
            page.goto(f"{base}/dags/{DAG_ID}/runs/{run_id}/tasks/intake/mapped/0")
            counts = page.get_by_text("accepted; lines=")
            counts.wait_for()
            expect(counts).to_contain_text("accepted=")
            expect(counts).to_contain_text("E101=")
            page.keyboard.press("w")
            page.screenshot(path=shots / "log.png")

            # the DAG's documentation: doc_md rendered as HTML, the runbook included
            page.goto(f"{base}/dags/{DAG_ID}")
            page.get_by_label("Dag Docs").click()
            docs = page.get_by_role("dialog")
            runbook = docs.locator("strong", has_text="When it fails")
            expect(runbook).to_be_visible()
            expect(docs.locator("code", has_text="HostKeyError")).to_be_visible()
            expect(docs).not_to_contain_text("**When it fails**")
            runbook.evaluate("e => e.scrollIntoView({block: 'start'})")
            docs.screenshot(path=shots / "docs.png")
        finally:
            browser.close()

    if os.environ.get("SSCARD_UPDATE_SCREENSHOTS") == "1":
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        for shot in sorted(shots.glob("*.png")):
            shutil.copyfile(shot, SCREENSHOTS / shot.name)
