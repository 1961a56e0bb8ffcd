"""The hub as it runs on many machines: Airflow's CeleryExecutor with a PostgreSQL metadata
database and a Redis broker, the hub's database on PostgreSQL, and two Celery workers,
each started in an empty directory of its own with its own working directory for tasks.
The scheduled DAGs take an uploaded batch through the issuance day; every accepted
application comes back in a CARDRSP, and both workers did part of the work."""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest
import redis

from tests.support.airflow_stack import airflow_stack, listening, wait_for_day

pytestmark = pytest.mark.dag

METADB, HUBDB, BROKER_DB = "sscard_airflow_e2e", "sscard_hub_e2e", 5


def fresh_databases() -> None:
    with psycopg.connect(
        host="127.0.0.1", user="postgres", dbname="postgres", autocommit=True
    ) as conn:
        for name in (METADB, HUBDB):
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    redis.Redis(host="127.0.0.1", port=6379, db=BROKER_DB).flushdb()


@pytest.fixture
def celery_airflow(tmp_path: Path):
    fresh_databases()
    with airflow_stack(
        tmp_path,
        SSCARD_AIRFLOW_EXECUTOR="celery",
        SSCARD_AIRFLOW_WORKERS="2",
        SSCARD_AIRFLOW_METADB=METADB,
        SSCARD_HUB_DB=HUBDB,
        SSCARD_BROKER_URL=f"redis://127.0.0.1:6379/{BROKER_DB}",
    ) as stack:
        yield stack


def test_two_celery_workers_take_a_batch_through_the_issuance_day_through_the_scheduler(
    celery_airflow,
) -> None:
    run, home, env = celery_airflow
    assert {p.name for p in (home / "pids").glob("worker*.pid")} == {"worker1.pid", "worker2.pid"}

    uploaded = run("batch")
    assert uploaded.returncode == 0, uploaded.stdout + uploaded.stderr

    answered, outcomes = wait_for_day(home / "bureau-inbox")

    assert len(answered) > 150
    missing = set(answered) - set(outcomes)
    assert not missing, f"{len(missing)} accepted applications without a CARDRSP line"
    assert set(outcomes.values()) <= {"0", "1", "2"}
    assert list(outcomes.values()).count("0") > 150
    for worker in ("worker1", "worker2"):
        assert "Workload finished" in (home / "logs" / f"{worker}.log").read_text(), (
            f"{worker} ran no task"
        )
    with psycopg.connect(host="127.0.0.1", user="postgres", dbname=HUBDB) as conn:
        (cards,) = conn.execute("SELECT COUNT(*) FROM card").fetchone() or (0,)
    assert cards == list(outcomes.values()).count("0")

    assert run("down").returncode == 0
    assert not listening(int(env["SSCARD_AIRFLOW_PORT"]))
