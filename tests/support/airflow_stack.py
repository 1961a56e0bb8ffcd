"""The local Airflow of ``scripts/airflow-local`` started for a test: its own directory,
free ports and environment, its hub database on PostgreSQL when the tests run there,
stopped whatever the test's outcome; and the wait for the bureau's CARDRSP that ends a
sandbox day run by the scheduler."""

from __future__ import annotations

import os
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy.engine import make_url

from sandbox.bureau import read_applyrsp
from schemas.codec import DelimitedReader, read_all
from schemas.layouts import CARDRSP

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "airflow-local"
#: the DAGs of the issuance day, unpaused in the test stacks
ISSUANCE_DAGS = (
    "apply_intake",
    "account_opening",
    "partner_account_returns",
    "factory_dispatch",
    "factory_returns",
    "bureau_card_returns",
)
#: how long the scheduled DAGs (every minute in the sandbox) may take for a whole day
DAY_TIMEOUT = 600

Run = Callable[[str], "subprocess.CompletedProcess[str]"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def listening(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def hub_database() -> dict[str, str]:
    """The stack's hub database as a setting: when the tests run on PostgreSQL
    (``SSCARD_DATABASE_URL``), a fresh database of its own next to theirs (``<name>_airflow``);
    else none, and the stack keeps the embedded SQLite under its directory."""
    url = os.environ.get("SSCARD_DATABASE_URL", "")
    if not url.startswith("postgresql"):
        return {}
    import psycopg

    tests = make_url(url)
    hub = tests.set(database=f"{tests.database}_airflow")
    with psycopg.connect(
        host=tests.host,
        port=tests.port or 5432,
        user=tests.username,
        password=tests.password,
        dbname="postgres",
        autocommit=True,
    ) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{hub.database}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{hub.database}"')
    return {"SSCARD_DATABASE_URL": hub.render_as_string(hide_password=False)}


def hub_url(home: Path, env: dict[str, str]) -> str:
    """The database the stack's tasks write: its setting, else the embedded SQLite."""
    return env.get("SSCARD_DATABASE_URL") or f"sqlite:///{home / 'hub' / 'sscard.db'}"


@contextmanager
def airflow_stack(tmp_path: Path, **settings: str) -> Iterator[tuple[Run, Path, dict[str, str]]]:
    """``scripts/airflow-local up`` with ``settings`` on top of a clean environment; yields
    the command runner, the stack's directory and its environment; always ``down``."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("AIRFLOW_", "SSCARD_")) or k == "AIRFLOW_HOME"
    }
    env.update(
        SSCARD_AIRFLOW_DIR=str(tmp_path / "airflow"),
        SSCARD_AIRFLOW_PORT=str(free_port()),
        SSCARD_SANDBOX_SFTP_PORT=str(free_port()),
        # the issuance day is what these tests watch; the other DAGs stay paused, so two
        # cores start no task they do not need (each task start costs seconds of CPU)
        SSCARD_AIRFLOW_UNPAUSE=",".join(ISSUANCE_DAGS),
        **settings,
    )

    def run(command: str, timeout: int = 400) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(SCRIPT), command],
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    started = run("up")
    try:
        assert started.returncode == 0, started.stdout + started.stderr
        yield run, tmp_path / "airflow", env
    finally:
        print(run("down").stdout)


def wait_for_day(inbox: Path) -> tuple[list[str], dict[str, str]]:
    """The ``app_no`` of every line the bureau's APPLYRSP accepted, and the CARDRSP stage
    of every application reported so far (each reported once), once every accepted
    application is reported or ``DAY_TIMEOUT`` has passed."""
    deadline = time.monotonic() + DAY_TIMEOUT
    accepted: list[str] = []
    outcomes: dict[str, str] = {}
    while time.monotonic() < deadline:
        rsp = sorted(inbox.glob("APPLYRSP_*.txt"))
        if rsp and not accepted:
            accepted = [
                app_no for app_no, result, _ in read_applyrsp(rsp[0].read_bytes()) if result == "00"
            ]
        outcomes = {}
        for path in sorted(inbox.glob("CARDRSP_*.txt")):
            table, rejected = read_all(DelimitedReader(path.read_bytes(), CARDRSP))
            assert rejected == []
            for row in table.to_pylist():
                assert row["app_no"] not in outcomes, "an application reported twice"
                outcomes[row["app_no"]] = row["fail_stage"]
        if accepted and set(outcomes) >= set(accepted):
            break
        time.sleep(5)
    return accepted, outcomes
