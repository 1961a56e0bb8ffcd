"""The ``apply_intake`` DAG run with ``dag.test()`` against a real sshd and the hub's
database: a bureau's batch goes in, an APPLYRSP comes back, line by line."""

from __future__ import annotations

import json
import os
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import Engine, func, select

from persistence.models import Application, ApplyLine, OutboundFile, ReceivedFile
from sandbox.bureau import LINE_KINDS, make_apply_batch, read_applyrsp, write_batch
from tests.support.sshd import OpenSshServer

pytestmark = pytest.mark.dag

RUN_AT = datetime(2026, 11, 22, 10, 0, tzinfo=ZoneInfo("Asia/Shanghai"))
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def bureau_server(sshd: OpenSshServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The bureau's SFTP tree on the real sshd, wired as Airflow connection sftp_r440100."""
    base = sshd.served_root / tmp_path.name
    (base / "pickup").mkdir(parents=True)
    (base / "drop").mkdir()
    monkeypatch.setenv("AIRFLOW_CONN_SFTP_R440100", json.dumps(sshd.connection(base)))
    monkeypatch.setenv("SSCARD_VAR_DIR", str(tmp_path / "var"))
    return base


@pytest.fixture(scope="module")
def intake_dag(airflow_db: None):
    from airflow.models import DagBag

    bag = DagBag(dag_folder=str(ROOT / "dags"))
    return bag.get_dag("apply_intake")


def _run(dag) -> None:
    from airflow.utils.state import DagRunState

    run = dag.test(run_after=RUN_AT, logical_date=RUN_AT)
    assert run.state == DagRunState.SUCCESS


def test_dag_folder_imports_without_errors(airflow_db: None) -> None:
    from airflow.models import DagBag

    bag = DagBag(dag_folder=str(ROOT / "dags"))
    assert bag.import_errors == {}
    assert "apply_intake" in bag.dags


def test_a_batch_of_1000_is_answered_line_by_line_and_a_second_delivery_changes_nothing(
    intake_dag, bureau_server: Path, engine: Engine
) -> None:
    batch = make_apply_batch(size=1000, seed=7, bad_share={code: 0.01 for code in LINE_KINDS})
    assert sum(code is not None for code in batch.expected) == 160
    write_batch(batch, bureau_server / "pickup")

    _run(intake_dag)

    response = bureau_server / "drop" / "APPLYRSP_B001_R440100_20261122_001.txt"
    lines = read_applyrsp(response.read_bytes())
    assert [app_no for app_no, _, _ in lines] == [row[0] for row in batch.rows]
    assert [(code or None) for _, _, code in lines] == batch.expected
    assert [result for _, result, _ in lines] == [
        "00" if c is None else "01" for c in batch.expected
    ]
    assert (bureau_server / "drop" / (response.name + ".ok")).exists()
    archived = bureau_server / "pickup" / "archive" / "20261122"
    assert sorted(p.name for p in archived.iterdir()) == sorted(
        [batch.name, batch.name + ".ok", batch.zip_name, batch.zip_name + ".ok"]
    )
    assert not any(p.is_file() for p in (bureau_server / "pickup").iterdir())

    with engine.connect() as conn:
        before = (
            conn.scalar(select(func.count()).select_from(Application)),
            conn.scalar(select(func.count()).select_from(ApplyLine)),
            conn.scalar(select(func.count()).select_from(OutboundFile)),
        )
    assert before == (840, 160, 1)

    # the bureau delivers the same file again, and collects its response first
    response.unlink()
    (bureau_server / "drop" / (response.name + ".ok")).unlink()
    write_batch(batch, bureau_server / "pickup")
    _run(intake_dag)

    with engine.connect() as conn:
        after = (
            conn.scalar(select(func.count()).select_from(Application)),
            conn.scalar(select(func.count()).select_from(ApplyLine)),
            conn.scalar(select(func.count()).select_from(OutboundFile)),
        )
        outcomes = conn.execute(select(ReceivedFile.outcome)).scalars().all()
    assert after == before
    assert outcomes == ["accepted"]
    assert list((bureau_server / "drop").iterdir()) == []
    assert (archived / (batch.name + ".1")).exists()


def test_a_rerun_with_nothing_new_is_a_no_op(
    intake_dag, bureau_server: Path, engine: Engine
) -> None:
    _run(intake_dag)
    with engine.connect() as conn:
        assert conn.scalar(select(func.count()).select_from(ReceivedFile)) == 0
    assert os.listdir(bureau_server / "drop") == []


def test_responses_of_the_other_files_are_delivered_when_one_file_fails_unexpectedly(
    intake_dag, bureau_server: Path, engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    from airflow.utils.state import DagRunState

    from persistence import apply_store

    first, second = (make_apply_batch(size=5, seed=8, seq=n) for n in (1, 2))
    for batch in (first, second):
        write_batch(batch, bureau_server / "pickup")
    commit_lines = apply_store.commit_lines
    calls: list[int] = []

    def failing_once(conn, file_id: int, sender: str) -> None:
        calls.append(file_id)
        if len(calls) == 1:
            raise RuntimeError("a defect met by the first file only")
        commit_lines(conn, file_id, sender)

    monkeypatch.setattr(apply_store, "commit_lines", failing_once)

    run = intake_dag.test(run_after=RUN_AT, logical_date=RUN_AT)

    assert run.state == DagRunState.FAILED
    assert (bureau_server / "pickup" / first.name).exists()
    assert (bureau_server / "drop" / "APPLYRSP_B001_R440100_20261122_002.txt").exists()
    assert not (bureau_server / "drop" / "APPLYRSP_B001_R440100_20261122_001.txt").exists()


def test_a_host_key_that_does_not_match_fails_intake_at_once_and_is_never_retried(
    intake_dag,
    bureau_server: Path,
    sshd: OpenSshServer,
    engine: Engine,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from airflow.utils.state import DagRunState, TaskInstanceState
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    other = (
        Ed25519PrivateKey.generate()
        .public_key()
        .public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
        .decode()
    )
    connection = sshd.connection(bureau_server)
    connection["extra"]["host_key"] = other
    monkeypatch.setenv("AIRFLOW_CONN_SFTP_R440100", json.dumps(connection))
    write_batch(make_apply_batch(size=3, seed=9), bureau_server / "pickup")

    run = intake_dag.test(run_after=RUN_AT, logical_date=RUN_AT)

    intake = [ti for ti in run.get_task_instances() if ti.task_id == "intake"]
    assert run.state == DagRunState.FAILED
    assert [(ti.state, ti.try_number) for ti in intake] == [(TaskInstanceState.FAILED, 1)]
    assert len(os.listdir(bureau_server / "pickup")) == 4  # nothing taken
