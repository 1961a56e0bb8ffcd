"""The hub in a real Airflow on this machine (``make airflow``): API server, scheduler, DAG
processor and triggerer as processes of their own, the sandbox counterparties as a
service. The simulated bureau uploads a batch and the *scheduled* DAGs, not ``dag.test()``,
take it through the issuance day: every accepted application comes back in a CARDRSP.
Then one command stops everything it started."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.airflow_stack import (
    DAY_TIMEOUT,
    ROOT,
    airflow_stack,
    listening,
    wait_for_day,
)

pytestmark = pytest.mark.dag

__all__ = ["ROOT", "local_airflow"]


@pytest.fixture
def local_airflow(tmp_path: Path):
    with airflow_stack(
        tmp_path,
        AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=f"sqlite:///{tmp_path / 'airflow.db'}",
    ) as stack:
        yield stack


def test_the_scheduled_dags_take_an_uploaded_batch_through_the_issuance_day_and_one_command_stops_everything(
    local_airflow,
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

    stopped = run("down")
    assert stopped.returncode == 0
    assert not listening(port)
    assert not listening(int(env["SSCARD_SANDBOX_SFTP_PORT"]))
    assert not list((home / "pids").glob("*.pid"))
