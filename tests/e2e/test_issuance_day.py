"""A whole issuance day with ``dag.test()`` over a real sshd: a bureau's applications
across the hub and two partner banks → accounts → card factory → production returns →
CARDRSP, with partner refusals, a partner that never answers and factory failures."""

from __future__ import annotations

import json
import os
import shutil
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import Engine, func, select
from stdnum import luhn

from exchange.storage import Storage
from persistence.models import (
    Account,
    Application,
    ApplicationState,
    Card,
    OutboundFile,
    PersoRecord,
    ReceivedFile,
)
from sandbox.bureau import make_apply_batch, write_batch
from sandbox.factory import CardFactorySimulator
from sandbox.partner_bank import PartnerBankSimulator
from schemas.codec import DelimitedReader, FixedReader, read_all
from schemas.layouts import CARDRSP, PERSO
from tests.support.sshd import OpenSshServer
from transport.local import LocalRemote

pytestmark = pytest.mark.dag

SHANGHAI = ZoneInfo("Asia/Shanghai")
DAY1 = datetime(2026, 11, 22, 10, 0, tzinfo=SHANGHAI)
#: Tuesday: requests delivered on Sunday DAY1 had Monday to be answered (partner_wait)
DAY2 = datetime(2026, 11, 24, 10, 0, tzinfo=SHANGHAI)
ROOT = Path(__file__).resolve().parents[2]
GOLDEN = Path(__file__).resolve().parent / "golden"
PARTIES = {"sftp_r440100": "R440100", "sftp_b002": "B002", "sftp_b003": "B003", "sftp_f01": "F01"}


@pytest.fixture
def servers(
    sshd: OpenSshServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> dict[str, Path]:
    trees = {}
    for conn_id, code in PARTIES.items():
        base = sshd.served_root / f"{tmp_path.name}-{code}"
        (base / "pickup").mkdir(parents=True)
        (base / "drop").mkdir()
        monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(sshd.connection(base)))
        trees[code] = base
    monkeypatch.setenv("SSCARD_VAR_DIR", str(tmp_path / "var"))
    monkeypatch.setenv("SSCARD_STORAGE_URL", str(tmp_path / "storage"))
    monkeypatch.setenv("SSCARD_WORK_DIR", str(tmp_path / "work"))
    return trees


@pytest.fixture
def own_directories(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """Every working directory a task is given: each must be new and empty."""
    from sscard import jobs

    given: list[Path] = []
    real = jobs.working_directory

    @contextmanager
    def watched() -> Iterator[Path]:
        with real() as path:
            assert path not in given and not any(path.iterdir())
            given.append(path)
            yield path

    monkeypatch.setattr(jobs, "working_directory", watched)
    return given


@pytest.fixture(scope="module")
def dags(airflow_db: None) -> dict:
    from airflow.models import DagBag

    bag = DagBag(dag_folder=str(ROOT / "dags"))
    assert bag.import_errors == {}
    return bag.dags


def run(dags: dict, dag_id: str, when: datetime) -> None:
    """Run a DAG; then, as if the next one ran on another worker, nothing of this one is
    left on local disk: every task's working directory is gone, and the hub's ``var``
    directory is wiped (what a later task needs is in the database or the storage)."""
    from airflow.utils.state import DagRunState

    assert dags[dag_id].test(run_after=when, logical_date=when).state == DagRunState.SUCCESS
    work = Path(os.environ["SSCARD_WORK_DIR"])
    assert not work.exists() or not any(work.iterdir())
    shutil.rmtree(os.environ["SSCARD_VAR_DIR"], ignore_errors=True)


def state(engine: Engine) -> tuple:
    with engine.connect() as conn:
        counts = tuple(
            conn.scalar(select(func.count()).select_from(m))
            for m in (Application, Account, Card, PersoRecord, OutboundFile, ReceivedFile)
        )
        statuses = conn.execute(
            select(ApplicationState.status, func.count())
            .group_by(ApplicationState.status)
            .order_by(ApplicationState.status)
        ).all()
    return counts, tuple(statuses)


def cardrsp_lines(tree: Path) -> list[dict]:
    lines = []
    for path in sorted((tree / "drop").glob("CARDRSP_*.txt")):
        table, rejected = read_all(DelimitedReader(path.read_bytes(), CARDRSP))
        assert rejected == []
        lines += table.to_pylist()
    return lines


def test_an_issuance_day_ends_with_one_final_cardrsp_line_per_application(
    dags: dict, servers: dict[str, Path], engine: Engine, own_directories: list[Path]
) -> None:
    bureau = servers["R440100"]
    partners = {
        code: PartnerBankSimulator(
            LocalRemote(servers[code]), code=code, refuse_share=0.05, seed=code
        )
        for code in ("B002", "B003")
    }
    factory = CardFactorySimulator(LocalRemote(servers["F01"]), fail_share=0.03, seed=1, split=2)

    batch = make_apply_batch(size=1000, seed=21)
    write_batch(batch, bureau / "pickup")
    run(dags, "apply_intake", DAY1)
    run(dags, "account_opening", DAY1)
    # a second batch whose partner requests B003 never answers
    late = make_apply_batch(size=20, seed=22, seq=2, bank_codes=("B003",))
    write_batch(late, bureau / "pickup")
    run(dags, "apply_intake", DAY1)
    run(dags, "account_opening", DAY1)
    acctopen = sorted(p.name for p in (servers["B003"] / "drop").glob("ACCTOPEN_*.txt"))
    assert acctopen == [
        "ACCTOPEN_B001_B003_20261122_001.txt",
        "ACCTOPEN_B001_B003_20261122_002.txt",
    ]
    for partner in partners.values():
        partner.run("20261122", skip_files={acctopen[1]})
    run(dags, "partner_account_returns", DAY1)
    run(dags, "factory_dispatch", DAY1)
    factory.run("20261122")
    run(dags, "factory_returns", DAY1)
    run(dags, "bureau_card_returns", DAY1)

    before = state(engine)
    for dag_id in (
        "apply_intake",
        "account_opening",
        "partner_account_returns",
        "factory_dispatch",
        "factory_returns",
        "bureau_card_returns",
    ):
        run(dags, dag_id, DAY1)
    assert state(engine) == before, "re-running every DAG of the day changed something"

    run(dags, "partner_account_returns", DAY2)
    run(dags, "bureau_card_returns", DAY2)

    lines = cardrsp_lines(bureau)
    apps = {row[0]: row for row in batch.rows + late.rows}
    assert sorted(line["app_no"] for line in lines) == sorted(apps)
    by_app = {line["app_no"]: line for line in lines}
    partner_answers = {a: ans for p in partners.values() for a, ans in p.answers.items()}
    with engine.connect() as conn:
        req_of = dict(
            conn.execute(
                select(Application.app_no, Application.id).where(Application.bank_code != "B001")
            ).all()
        )
    stages: Counter[str] = Counter()
    for app_no, line in by_app.items():
        stages[line["fail_stage"]] += 1
        row = apps[app_no]
        assert (line["card_no"], line["id_no"], line["bank_code"]) == (row[14], row[3], row[13])
        if row[13] != "B001":
            req_no = f"AO{req_of[app_no]:012d}"
            answer = partner_answers.get(req_no)
            if answer is None:
                assert (line["fail_stage"], line["reason_code"]) == ("1", "E140")
                continue
            if answer[0] == "01":
                assert (line["fail_stage"], line["reason_code"], line["pan"]) == (
                    "1",
                    answer[1],
                    "",
                )
                continue
            assert line["pan"] == answer[3]
        made = factory.results[line["card_no"]]
        if made[0] == "00":
            assert line["fail_stage"] == "0"
            assert (line["card_id_code"], line["atr"], line["box_no"]) == made[2:]
            assert (line["issue_date"], line["expiry_date"]) == ("20261122", "20361122")
        else:
            assert (line["fail_stage"], line["reason_code"]) == ("2", made[1])
            assert line["card_id_code"] == line["issue_date"] == ""
    assert stages["0"] > 900 and stages["1"] >= 20 and stages["2"] > 0
    # every task worked in a directory of its own; what crossed tasks is in the storage
    assert len(own_directories) >= 20
    stored = Storage(os.environ["SSCARD_STORAGE_URL"]).keys()
    assert [k for k in stored if k.startswith("received/sftp_r440100/") and k.endswith(".zip")]

    pans = [line["pan"] for line in lines if line["pan"]]
    assert len(pans) == len(set(pans))
    assert all(len(p) == 19 and luhn.is_valid(p) for p in pans)

    day1 = (bureau / "drop" / "CARDRSP_B001_R440100_20261122_001.txt").read_bytes()
    day2 = (bureau / "drop" / "CARDRSP_B001_R440100_20261124_001.txt").read_bytes()
    assert day1.count(b"\r\nD|") == 1000 and day2.count(b"\r\nD|") == 20


def test_perso_files_match_the_golden_file_byte_for_byte(
    dags: dict, servers: dict[str, Path], engine: Engine
) -> None:
    batch = make_apply_batch(size=6, seed=31, bank_codes=("B001",))
    write_batch(batch, servers["R440100"] / "pickup")
    run(dags, "apply_intake", DAY1)
    run(dags, "account_opening", DAY1)
    run(dags, "factory_dispatch", DAY1)

    perso = servers["F01"] / "drop" / "PERSO_B001_F01_20261122_001.txt"
    data = perso.read_bytes()
    golden = GOLDEN / perso.name
    if os.environ.get("SSCARD_UPDATE_GOLDEN"):
        golden.parent.mkdir(exist_ok=True)
        golden.write_bytes(data)
    assert data == golden.read_bytes()
    assert all(len(rec) == 166 for rec in data.split(b"\r\n")[:-1])
    table, rejected = read_all(FixedReader(data, PERSO))
    assert rejected == [] and table.num_rows == 6
    assert (servers["F01"] / "drop" / "PERSO_B001_F01_20261122_001.zip.ok").exists()
