"""Benefit payments and reconciliation end to end with ``dag.test()`` over a real sshd and
the suite's database: a pension day of DISB batches (bad lines, accounts at a partner bank)
funded in full, short and twice by the payment system's STMT, the partner answering,
DISBRSP line by line, returns and partner settlements the next days, RECON every day;
every break kind the day can produce planted, found, carried forward and resolved; the
day's DAGs re-run changing no balance and no output."""

from __future__ import annotations

import json
import os
import shutil
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import Engine, text

from banking import ledger
from exchange.storage import Storage
from sandbox.bureau import make_apply_batch, write_batch
from sandbox.factory import CardFactorySimulator
from sandbox.partner_bank import PartnerBankSimulator
from sandbox.payments import (
    Funding,
    PartnerPayments,
    PayeeAccount,
    PaymentSystem,
    make_disb_file,
    read_disbrsp,
    read_recon,
)
from sscard.cli import main
from tests.support.sshd import OpenSshServer
from transport.local import LocalRemote

pytestmark = pytest.mark.dag

SHANGHAI = ZoneInfo("Asia/Shanghai")
ROOT = Path(__file__).resolve().parents[2]
PARTIES = {
    "sftp_r440100": "R440100",
    "sftp_b002": "B002",
    "sftp_b003": "B003",
    "sftp_f01": "F01",
    "sftp_p01": "P01",
}
# Monday 23 November 2026 … Wednesday 25 November
ISSUE = datetime(2026, 11, 20, 10, 0, tzinfo=SHANGHAI)
MON, MON_EOD = (
    datetime(2026, 11, 23, 10, 0, tzinfo=SHANGHAI),
    datetime(2026, 11, 23, 23, 0, tzinfo=SHANGHAI),
)
TUE, TUE_EOD = (
    datetime(2026, 11, 24, 10, 0, tzinfo=SHANGHAI),
    datetime(2026, 11, 24, 23, 0, tzinfo=SHANGHAI),
)
WED, WED_EOD = (
    datetime(2026, 11, 25, 10, 0, tzinfo=SHANGHAI),
    datetime(2026, 11, 25, 23, 0, tzinfo=SHANGHAI),
)


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


@pytest.fixture(scope="module")
def dags(airflow_db: None) -> dict:
    from airflow.models import DagBag

    bag = DagBag(dag_folder=str(ROOT / "dags"))
    assert bag.import_errors == {}
    return bag.dags


def run(dags: dict, dag_id: str, when: datetime) -> None:
    from airflow.utils.state import DagRunState

    assert dags[dag_id].test(run_after=when, logical_date=when).state == DagRunState.SUCCESS
    shutil.rmtree(os.environ["SSCARD_VAR_DIR"], ignore_errors=True)


def accounts(engine: Engine) -> list[PayeeAccount]:
    sql = (
        "SELECT c.pan, c.card_no, c.id_no, c.name, c.bank_code, COALESCE(a.status, 'active') AS status, "
        "COALESCE(a.credit_blocked, false) AS blocked FROM card c LEFT JOIN account a ON a.pan = c.pan "
        "ORDER BY c.card_no"
    )
    with engine.connect() as conn:
        return [
            PayeeAccount(
                r.pan,
                r.card_no,
                r.id_no,
                r.name,
                r.bank_code,
                "credit_blocked" if r.blocked else r.status,
            )
            for r in conn.execute(text(sql))
        ]


def recon(tree: Path, day: str) -> dict[str, dict]:
    (path,) = (tree / "drop").glob(f"RECON_B001_R440100_{day}_*.txt")
    return {r["batch_no"]: r for r in read_recon(path.read_bytes(), business_date=day)}


def balances(engine: Engine) -> tuple:
    with engine.connect() as conn:
        return tuple(
            conn.execute(text("SELECT pan, balance_fen FROM account ORDER BY pan")).all()
        ) + tuple(
            conn.execute(text("SELECT code, balance_fen FROM ledger_account ORDER BY code")).all()
        )


def outputs(tree: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted((tree / "drop").glob("*")) if p.is_file()}


def test_a_pension_day_is_paid_answered_and_reconciled_to_the_fen(
    dags: dict, servers: dict[str, Path], engine: Engine, capsys: pytest.CaptureFixture[str]
) -> None:
    bureau, b002, p01 = servers["R440100"], servers["B002"], servers["P01"]
    # cards and accounts, made the way issuance makes them
    write_batch(
        make_apply_batch(size=45, seed=51, bank_codes=("B001", "B001", "B002")), bureau / "pickup"
    )
    for dag_id in ("apply_intake", "account_opening"):
        run(dags, dag_id, ISSUE)
    PartnerBankSimulator(LocalRemote(b002), code="B002", refuse_share=0.0, seed="p").run("20261120")
    run(dags, "partner_account_returns", ISSUE)
    run(dags, "factory_dispatch", ISSUE)
    CardFactorySimulator(LocalRemote(servers["F01"]), fail_share=0.0, seed="f").run("20261120")
    run(dags, "factory_returns", ISSUE)
    with engine.begin() as conn:  # one account closed, one blocked, as servicing leaves them
        pans = [r[0] for r in conn.execute(text("SELECT pan FROM account ORDER BY pan LIMIT 2"))]
        conn.execute(text("UPDATE account SET status = 'closed' WHERE pan = :p"), {"p": pans[0]})
        conn.execute(
            text("UPDATE account SET credit_blocked = true WHERE pan = :p"), {"p": pans[1]}
        )
    payees = accounts(engine)
    assert sum(1 for p in payees if p.bank_code == "B002") == 15

    # Monday: three pension batches; the payment system funds one in full, one short, one twice
    files = [
        make_disb_file(
            payees,
            business_date="20261123",
            seq=1,
            seed=1,
            mix={
                "name": 0.05,
                "id_no": 0.05,
                "unknown_pan": 0.05,
                "zero_amount": 0.03,
                "repeat": 0.03,
                "blocked": 0.05,
            },
        ),
        make_disb_file(payees[:10], business_date="20261123", seq=2, seed=2, mix={}),
        make_disb_file(payees[10:20], business_date="20261123", seq=3, seed=3, mix={}),
    ]
    good, short, twice = files
    for f in files:
        f.publish(bureau / "pickup")
    run(dags, "disbursement_intake", MON)
    pay = PaymentSystem("P01", pickup=p01 / "pickup", state_dir=servers["P01"] / "state")
    pay.statement(
        "20261123",
        fund=[
            Funding(good.batch_no, good.total_fen),
            Funding(short.batch_no, short.total_fen, short_fen=100),
            Funding(twice.batch_no, twice.total_fen, twice=True),
        ],
        unidentified_items=[(88_800, "工资")],
    )
    run(dags, "statement_intake", MON)
    partner = PartnerPayments(
        "B002", drop=b002 / "drop", pickup=b002 / "pickup", seed=9, fail_share=0.2
    )
    run(dags, "partner_disbursements", MON)
    partner.run("20261123")
    run(dags, "partner_disbursements", MON)
    run(dags, "payments_end_of_day", MON_EOD)

    # DISBRSP: one line per DISB line, in order, each as the ICD requires
    rsp = {p.name: read_disbrsp(p.read_bytes()) for p in (bureau / "drop").glob("DISBRSP_*.txt")}
    for f in (good, twice):
        lines = rsp[f.name.replace("DISB_R440100_B001", "DISBRSP_B001_R440100")]
        assert [ln["pay_no"] for ln in lines] == [r[0] for r in f.rows]
        for line, expected in zip(lines, f.expected, strict=True):
            if expected == "partner":
                assert line["result"] == partner.answers[_partner_key(engine, line["pay_no"])][0]
            else:
                assert line["result"] == expected
    planted = {e for e in good.expected} - {"0000", "partner"}
    assert {"104", "105", "103", "208", "209", "106"} <= planted
    # the short batch got 301 on every line at the cut-off
    short_rsp = rsp[short.name.replace("DISB_R440100_B001", "DISBRSP_B001_R440100")]
    assert {ln["result"] for ln in short_rsp} == {"301"}

    monday = recon(bureau, "20261123")
    assert monday[good.batch_no]["status"] == "PENDING"  # returns and settlements not due yet
    assert (monday[short.batch_no]["status"], monday[short.batch_no]["break_reason"]) == (
        "BREAK",
        "R03",
    )
    assert (monday[twice.batch_no]["status"], monday[twice.batch_no]["break_reason"]) == (
        "BREAK",
        "R04",
    )
    with engine.connect() as conn:
        credited = sum(
            int(r[0])
            for r in conn.execute(
                text("SELECT credited_fen FROM disb_line WHERE result = '0000' AND partner IS NULL")
            )
        )
        assert ledger.check(conn).ok()
    g = monday[good.batch_no]
    assert int(g["instructed_count"]) == len(good.rows)

    # Tuesday: the returns of Monday's failures and the partner's settlement, except the
    # partner part of the good batch (left for Wednesday: R08 once due)
    owed = _instructions(engine)
    pay.statement(
        "20261124",
        returns=[(b, fen) for (kind, b, bank, fen) in owed if kind == "RET"],
        settle=[
            (bank, b, fen) for (kind, b, bank, fen) in owed if kind == "PTN" and b != good.batch_no
        ],
    )
    run(dags, "statement_intake", TUE)
    run(dags, "payments_end_of_day", TUE_EOD)
    tuesday = recon(bureau, "20261124")
    assert tuesday[good.batch_no]["status"] == "PENDING"  # settlement due by the end of Tuesday…
    run(dags, "payments_end_of_day", WED_EOD)
    wednesday = recon(bureau, "20261125")
    assert (wednesday[good.batch_no]["status"], wednesday[good.batch_no]["break_reason"]) == (
        "BREAK",
        "R08",
    )
    assert wednesday[short.batch_no]["break_reason"] == "R03"  # carried forward

    # finance resolves what will not match, on the command line
    capsys.readouterr()  # what the DAG runs printed
    code = main(["breaks", "list", "--json"])
    listed = json.loads(capsys.readouterr().out)
    breaks = listed["breaks"] if isinstance(listed, dict) else listed
    reasons = sorted(b["reason"] for b in breaks)
    assert {"R03", "R04", "R08", "R09"} <= set(reasons) and code == 0
    r09 = next(b for b in breaks if b["reason"] == "R09")
    assert (
        main(
            [
                "breaks",
                "resolve",
                str(r09["id"]),
                "--reason",
                "salary credit booked by branch",
                "--by",
                "finance-li",
            ]
        )
        == 0
    )
    capsys.readouterr()
    assert main(["breaks", "resolve", str(r09["id"]), "--reason", "again"]) == 1
    capsys.readouterr()

    # the reports of the day are in the hub's storage
    stored = Storage(os.environ["SSCARD_STORAGE_URL"]).keys("reports/20261125")
    assert any(k.endswith("recon_20261125.xlsx") for k in stored)
    assert any(k.endswith("recon_20261125.html") for k in stored)
    assert any("/parquet/" in k for k in stored)

    # every DAG of the day again: no balance and no output changes
    before = (balances(engine), outputs(bureau), outputs(b002))
    for dag_id, when in (
        ("disbursement_intake", WED),
        ("statement_intake", WED),
        ("partner_disbursements", WED),
        ("payments_end_of_day", WED_EOD),
    ):
        run(dags, dag_id, when)
    assert (balances(engine), outputs(bureau), outputs(b002)) == before
    with engine.connect() as conn:
        assert ledger.check(conn).ok()
    assert credited > 0


def _partner_key(engine: Engine, pay_no: str) -> str:
    with engine.connect() as conn:
        return str(
            conn.execute(
                text("SELECT partner_key FROM disb_line WHERE pay_no = :p"), {"p": pay_no}
            ).scalar_one()
        )


def _instructions(engine: Engine) -> list[tuple[str, str, str, int]]:
    from reconciliation.statements import return_instructions

    with engine.connect() as conn:
        return [
            (i.kind, i.batch_no, i.bank or "", i.amount_fen)
            for i in return_instructions(conn, "20261123")
        ]
