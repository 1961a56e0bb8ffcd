"""The hub in a real Airflow on this machine (``make airflow``): API server, scheduler, DAG
processor and triggerer as processes of their own, the sandbox counterparties as a
service. The simulated bureau uploads a batch and the *scheduled* DAGs, not ``dag.test()``,
take it through the issuance day: every accepted application comes back in a CARDRSP.
Then one command stops everything it started."""

from __future__ import annotations

import os
import socket
import subprocess
import time
from pathlib import Path

import pytest

from sandbox.bureau import read_applyrsp
from schemas.codec import DelimitedReader, read_all
from schemas.layouts import CARDRSP

pytestmark = pytest.mark.dag

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "airflow-local"
#: how long the scheduled DAGs (every minute in the sandbox) may take for a whole day
DAY_TIMEOUT = 600


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def listening(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


@pytest.fixture
def local_airflow(tmp_path: Path):
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("AIRFLOW_", "SSCARD_")) or k == "AIRFLOW_HOME"
    }
    env.update(
        SSCARD_AIRFLOW_DIR=str(tmp_path / "airflow"),
        SSCARD_AIRFLOW_PORT=str(free_port()),
        SSCARD_SANDBOX_SFTP_PORT=str(free_port()),
        AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=f"sqlite:///{tmp_path / 'airflow.db'}",
    )

    def run(command: str, timeout: int = 300) -> subprocess.CompletedProcess[str]:
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
        stopped = run("down")
        print(stopped.stdout)


def test_the_scheduled_dags_take_an_uploaded_batch_through_the_issuance_day_and_one_command_stops_everything(
    local_airflow,
) -> None:
    run, home, env = local_airflow
    port = int(env["SSCARD_AIRFLOW_PORT"])
    assert listening(port)

    uploaded = run("batch")
    assert uploaded.returncode == 0, uploaded.stdout + uploaded.stderr

    inbox = home / "bureau-inbox"
    deadline = time.monotonic() + DAY_TIMEOUT
    answered: list[str] = []
    reported: set[str] = set()
    while time.monotonic() < deadline:
        rsp = sorted(inbox.glob("APPLYRSP_*.txt"))
        if rsp and not answered:
            answered = [
                app_no for app_no, result, _ in read_applyrsp(rsp[0].read_bytes()) if result == "00"
            ]
        reported = set()
        for path in sorted(inbox.glob("CARDRSP_*.txt")):
            table, rejected = read_all(DelimitedReader(path.read_bytes(), CARDRSP))
            assert rejected == []
            reported |= set(table.column("app_no").to_pylist())
        if answered and reported >= set(answered):
            break
        time.sleep(5)

    assert len(answered) > 150
    assert reported >= set(answered), (
        f"{len(set(answered) - reported)} of {len(answered)} accepted applications not in a "
        f"CARDRSP after {DAY_TIMEOUT} s; logs in {home / 'logs'}"
    )
    scheduled = (home / "task-logs").rglob("*.log")
    assert any("run_id=scheduled__" in str(p) or "asset_triggered__" in str(p) for p in scheduled)

    stopped = run("down")
    assert stopped.returncode == 0
    assert not listening(port)
    assert not listening(int(env["SSCARD_SANDBOX_SFTP_PORT"]))
    assert not list((home / "pids").glob("*.pid"))
