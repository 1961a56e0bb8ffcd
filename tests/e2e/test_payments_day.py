"""Benefit payments and reconciliation end to end with ``dag.test()`` over a real sshd and
the suite's database: a pension day of DISB batches (bad lines, accounts at a partner bank)
funded in full, short, twice, in parts and late by the payment system's STMT, the partner
answering (once crediting less than instructed), DISBRSP line by line, returns and partner
settlements the next days (one return too large, one missing), RECON every day; every
break kind R01–R09 planted, found, carried forward and resolved (by the break review and on
the command line); the day's DAGs re-run changing no balance and no output."""

from __future__ import annotations

import json
import os
import shutil
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import Engine, text

from banking import ledger
from exchange.storage import Storage
from sandbox.bureau import make_apply_batch, write_batch
from sandbox.factory import CardFactorySimulator
from sandbox.partner_bank import PartnerBankSimulator
from sandbox.payments import (
    DisbFile,
    Funding,
    PartnerPayments,
    PayeeAccount,
    PaymentSystem,
    make_disb_file,
    read_disbrsp,
    read_recon,
)
from schemas.codec import amount_to_fen
from sscard.cli import main
from sscard.payments_jobs import settle_break
from tests.support.cards import HELD
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
# Monday 23 November 2026 … Thursday 26 November
ISSUE = datetime(2026, 11, 20, 10, 0, tzinfo=SHANGHAI)
MON, MON_EOD = (
    datetime(2026, 11, 23, 10, 0, tzinfo=SHANGHAI),
    datetime(2026, 11, 23, 23, 0, tzinfo=SHANGHAI),
)
TUE, TUE_EOD = (
    datetime(2026, 11, 24, 10, 0, tzinfo=SHANGHAI),
    datetime(2026, 11, 24, 23, 0, tzinfo=SHANGHAI),
)
MON_LATE = datetime(2026, 11, 23, 22, 30, tzinfo=SHANGHAI)
WED, WED_EOD = (
    datetime(2026, 11, 25, 10, 0, tzinfo=SHANGHAI),
    datetime(2026, 11, 25, 23, 0, tzinfo=SHANGHAI),
)
WED_REVIEW = datetime(2026, 11, 25, 9, 0, tzinfo=SHANGHAI)
THU_EOD = datetime(2026, 11, 26, 23, 0, tzinfo=SHANGHAI)
FRI_REVIEW = datetime(2026, 11, 27, 9, 0, tzinfo=SHANGHAI)


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
            conn.execute(
                text(f"SELECT pan, {HELD.format('account')} FROM account ORDER BY pan")
            ).all()
        ) + tuple(
            conn.execute(text("SELECT code, balance_fen FROM ledger_account ORDER BY code")).all()
        )


def outputs(tree: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted((tree / "drop").glob("*")) if p.is_file()}


def test_a_pension_day_is_paid_answered_and_reconciled_to_the_fen(
    dags: dict,
    servers: dict[str, Path],
    engine: Engine,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
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
    at_hub = [p for p in payees if p.bank_code == "B001" and p.status in ("preopened", "active")]
    at_b002 = [p for p in payees if p.bank_code == "B002"]

    # Monday: three pension batches; the payment system funds one in full, one short (R03),
    # one twice (R04); five small ones each end in another break kind
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
        # R01: funded after the day's last forwarding run (not due before the next day's
        # end); forwarding stays down on Tuesday, so its B002 lines are still at the hub
        make_disb_file(at_hub[:2] + at_b002[:3], business_date="20261123", seq=4, seed=4, mix={}),
        # R02: B002 credits one line less than instructed
        make_disb_file(at_hub[2:4] + at_b002[3:6], business_date="20261123", seq=5, seed=5, mix={}),
        # R05: more returned than failed; R07: nothing returned when due
        make_disb_file(
            at_hub[4:8], business_date="20261123", seq=6, seed=6, mix={"unknown_pan": 0.25}
        ),
        make_disb_file(
            at_hub[8:12], business_date="20261123", seq=7, seed=7, mix={"unknown_pan": 0.25}
        ),
        # R06: funded in three credits, two of them alike
        make_disb_file(at_hub[12:15], business_date="20261123", seq=8, seed=8, mix={}),
    ]
    good, short, twice, unsent, fee, overpaid, unreturned, parts = files
    assert "103" in overpaid.expected and "103" in unreturned.expected
    assert "partner" in unsent.expected and "partner" in fee.expected
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
            Funding(fee.batch_no, fee.total_fen),
            Funding(overpaid.batch_no, overpaid.total_fen),
            Funding(unreturned.batch_no, unreturned.total_fen),
            Funding(parts.batch_no, parts.total_fen, parts=3),
        ],
        unidentified_items=[(88_800, "工资")],
    )
    run(dags, "statement_intake", MON)
    run(dags, "partner_disbursements", MON)
    fee_key = _partner_keys(engine, fee.batch_no)[0]
    partner = PartnerPayments(
        "B002",
        drop=b002 / "drop",
        pickup=b002 / "pickup",
        seed=9,
        fail_share=0.2,
        credit_less={fee_key: 1_00},
    )
    partner.run("20261123")
    run(dags, "partner_disbursements", MON)
    # the unsent batch is funded late; partner_disbursements (paused: a fault inside the
    # hub, which no counterparty file can cause) does not run again until Wednesday
    pay.statement("20261123", fund=[Funding(unsent.batch_no, unsent.total_fen)])
    run(dags, "statement_intake", MON_LATE)
    run(dags, "payments_end_of_day", MON_EOD)

    # DISBRSP: one line per DISB line, in order, each as the ICD requires
    rsp = {p.name: read_disbrsp(p.read_bytes()) for p in (bureau / "drop").glob("DISBRSP_*.txt")}
    assert _rsp_name(unsent) not in rsp  # its partner lines have no answer yet
    for f in (good, twice, fee, overpaid, unreturned, parts):
        _check_disbrsp(engine, rsp[_rsp_name(f)], f, partner, less={fee_key: 1_00})
    planted = {e for e in good.expected} - {"0000", "partner"}
    assert {"104", "105", "103", "208", "209", "106"} <= planted
    # the short batch got 301 on every line at the cut-off
    assert {ln["result"] for ln in rsp[_rsp_name(short)]} == {"301"}

    monday = recon(bureau, "20261123")
    assert monday[good.batch_no]["status"] == "PENDING"  # returns and settlements not due yet
    assert _found(monday, short, twice, fee, parts) == ["R03", "R04", "R02", "R06"]
    assert monday[overpaid.batch_no]["status"] == monday[unreturned.batch_no]["status"] == "PENDING"
    # funded after the day's last forwarding run: its partner lines go out with the next
    assert monday[unsent.batch_no]["status"] == "PENDING"
    assert monday[unsent.batch_no]["instructed_count"] == str(len(unsent.rows))
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

    # Tuesday: the returns of Monday's failures and the partner's settlements, except the
    # partner part of the good batch (R08 once due) and the returns of one batch (R07 once
    # due); one batch gets 1.00 yuan more back than failed (R05)
    owed = _instructions(engine)
    assert {b for (kind, b, _, _) in owed if kind == "RET"} >= {
        overpaid.batch_no,
        unreturned.batch_no,
    }
    pay.statement(
        "20261124",
        returns=[
            (b, fen + (1_00 if b == overpaid.batch_no else 0))
            for (kind, b, bank, fen) in owed
            if kind == "RET" and b != unreturned.batch_no
        ],
        settle=[
            (bank, b, fen) for (kind, b, bank, fen) in owed if kind == "PTN" and b != good.batch_no
        ],
    )
    run(dags, "statement_intake", TUE)
    run(dags, "payments_end_of_day", TUE_EOD)
    tuesday = recon(bureau, "20261124")
    assert tuesday[good.batch_no]["status"] == "PENDING"  # settlement due by the end of Tuesday…
    assert tuesday[unreturned.batch_no]["status"] == "PENDING"  # …and so are the returns
    assert _found(tuesday, overpaid) == ["R05"]
    assert tuesday[overpaid.batch_no]["difference"] == "-1.00"
    assert tuesday[fee.batch_no]["difference"] == "1.00"  # kept back by B002, settled short
    # Monday's breaks carried forward: still open, first seen Monday, last seen Tuesday;
    # the late batch's partner lines, still not forwarded by Tuesday's end, are now R01
    carried = _open_breaks(capsys)
    assert _found(tuesday, short, twice, unsent, fee, parts) == ["R03", "R04", "R01", "R02", "R06"]
    for f, reason in (
        (short, "R03"),
        (twice, "R04"),
        (fee, "R02"),
        (parts, "R06"),
    ):
        item = carried[(f.batch_no, reason)]
        assert (item["first_date"], item["last_date"]) == ("20261123", "20261124")
    item = carried[(unsent.batch_no, "R01")]
    assert (item["first_date"], item["last_date"]) == ("20261124", "20261124")
    assert carried[(fee.batch_no, "R02")]["amount_fen"] == 1_00
    third = parts.total_fen // 3
    assert carried[(parts.batch_no, "R06")]["amount_fen"] == (
        2 * third if parts.total_fen == 3 * third else third
    )
    assert (carried[("", "R09")]["amount_fen"], carried[("", "R09")]["last_date"]) == (
        88_800,
        "20261124",
    )

    # Wednesday 09:00: break_review; finance answers three of the questions
    # (the answers as Airflow's human-in-the-loop hands them to the review's apply task)
    review = {"responded_by_user": {"id": "7", "name": "finance-wang"}, "responded_at": WED_REVIEW}
    done = settle_break(
        carried[(unsent.batch_no, "R01")]["id"],
        {
            **review,
            "chosen_options": ["Resolve"],
            "params_input": {"reason": "B002 forwarding restarted; lines sent today"},
        },
        WED_REVIEW,
    )
    assert done == {
        "break": carried[(unsent.batch_no, "R01")]["id"],
        "resolved": True,
        "by": "finance-wang",
    }
    settle_break(
        carried[(twice.batch_no, "R04")]["id"],
        {
            **review,
            "chosen_options": ["Resolve"],
            "params_input": {"reason": "second credit sent back to the fund account"},
        },
        WED_REVIEW,
    )
    with pytest.raises(ValueError, match="reason"):
        settle_break(
            carried[(parts.batch_no, "R06")]["id"],
            {**review, "chosen_options": ["Resolve"], "params_input": {"reason": " "}},
            WED_REVIEW,
        )
    left = settle_break(
        carried[(parts.batch_no, "R06")]["id"],
        {**review, "chosen_options": ["Leave open"]},
        WED_REVIEW,
    )
    assert left["resolved"] is False
    assert set(_open_breaks(capsys)) == set(carried) - {
        (unsent.batch_no, "R01"),
        (twice.batch_no, "R04"),
    }

    # Wednesday: forwarding runs again; the late batch's B002 lines are answered
    run(dags, "partner_disbursements", WED)
    partner.run("20261125")
    run(dags, "partner_disbursements", WED)
    rsp = {p.name: read_disbrsp(p.read_bytes()) for p in (bureau / "drop").glob("DISBRSP_*.txt")}
    _check_disbrsp(engine, rsp[_rsp_name(unsent)], unsent, partner, less={})
    run(dags, "payments_end_of_day", WED_EOD)
    wednesday = recon(bureau, "20261125")
    assert (wednesday[good.batch_no]["status"], wednesday[good.batch_no]["break_reason"]) == (
        "BREAK",
        "R08",
    )
    assert wednesday[short.batch_no]["break_reason"] == "R03"  # carried forward
    assert _found(wednesday, unreturned) == ["R07"]
    assert _found(wednesday, fee, overpaid, parts) == ["R02", "R05", "R06"]
    assert wednesday[unsent.batch_no]["status"] == "PENDING"  # answered today: nothing due yet
    # its R04 resolved, the batch stays on the RECON: its two equal credits are also a
    # suspected double posting (R06), an item of its own still open
    assert (wednesday[twice.batch_no]["break_reason"], wednesday[twice.batch_no]["difference"]) == (
        "R04",
        "35035.76",
    )

    # the reports of the day are in the hub's storage
    stored = Storage(os.environ["SSCARD_STORAGE_URL"]).keys("reports/20261125")
    assert any(k.endswith("recon_20261125.xlsx") for k in stored)
    assert any(k.endswith("recon_20261125.html") for k in stored)
    assert any("/parquet/" in k for k in stored)

    # Thursday: the end of day alone carries Wednesday's breaks forward
    run(dags, "payments_end_of_day", THU_EOD)
    thursday = recon(bureau, "20261126")
    assert _found(thursday, good, unreturned, short, fee, overpaid, parts) == [
        "R08",
        "R07",
        "R03",
        "R02",
        "R05",
        "R06",
    ]
    assert thursday[unsent.batch_no]["status"] == "PENDING"  # due by the end of Thursday
    assert thursday[twice.batch_no]["break_reason"] == "R04"  # its R06 still open
    still = _open_breaks(capsys)
    assert sorted(still) == sorted(
        [
            (fee.batch_no, "R02"),
            (short.batch_no, "R03"),
            (overpaid.batch_no, "R05"),
            (parts.batch_no, "R06"),
            (twice.batch_no, "R06"),
            (unreturned.batch_no, "R07"),
            (good.batch_no, "R08"),
            ("", "R09"),
        ]
    )
    for key in ((good.batch_no, "R08"), (unreturned.batch_no, "R07")):
        assert (still[key]["first_date"], still[key]["last_date"]) == ("20261125", "20261126")
    assert still[(parts.batch_no, "R06")]["last_date"] == "20261126"

    # Friday 09:00: the review resolves the unpaid return; finance resolves the rest on the
    # command line
    settle_break(
        still[(unreturned.batch_no, "R07")]["id"],
        {
            **review,
            "responded_at": FRI_REVIEW,
            "chosen_options": ["Resolve"],
            "params_input": {"reason": "returned by the branch on paper"},
        },
        FRI_REVIEW,
    )
    capsys.readouterr()  # what the DAG runs printed
    for (_, reason), item in sorted(still.items(), key=lambda kv: kv[1]["id"]):
        if reason == "R07":
            continue
        why = f"{reason} settled with the bureau and the payment system"
        assert (
            main(["breaks", "resolve", str(item["id"]), "--reason", why, "--by", "finance-li"]) == 0
        )
        capsys.readouterr()
    for key in (("", "R09"), (unreturned.batch_no, "R07")):  # one resolution each
        assert main(["breaks", "resolve", str(still[key]["id"]), "--reason", "again"]) == 1
        capsys.readouterr()
    assert _open_breaks(capsys) == {}
    assert main(["breaks", "list", "--all", "--json"]) == 0
    every = json.loads(capsys.readouterr().out)["breaks"]
    assert sorted(b["reason"] for b in every) == sorted([*(f"R0{n}" for n in range(1, 10)), "R06"])
    assert {b["state"] for b in every} == {"resolved"}
    by = {b["reason"]: (b["resolved_by"], b["resolution"]) for b in every}
    assert by["R01"] == ("finance-wang", "B002 forwarding restarted; lines sent today")
    assert by["R07"][0] == by["R04"][0] == "finance-wang"
    assert {by[r][0] for r in ("R02", "R03", "R05", "R06", "R08", "R09")} == {"finance-li"}

    # every DAG of Wednesday again: no balance and no output changes, and the day's reports
    # are those of the run alone (not a partition an earlier run wrote for another bureau)
    store = Storage(os.environ["SSCARD_STORAGE_URL"])
    reports = store.keys("reports/20261125")
    stale = tmp_path / "stale.parquet"
    stale.write_bytes(b"PAR1")
    store.put_file(
        stale, "reports/20261125/parquet/business_date=20261125/bureau=R449900/x.parquet"
    )
    before = (balances(engine), outputs(bureau), outputs(b002))
    for dag_id, when in (
        ("disbursement_intake", WED),
        ("statement_intake", WED),
        ("partner_disbursements", WED),
        ("payments_end_of_day", WED_EOD),
    ):
        run(dags, dag_id, when)
    assert (balances(engine), outputs(bureau), outputs(b002)) == before
    assert store.keys("reports/20261125") == reports
    with engine.connect() as conn:
        assert ledger.check(conn).ok()
    assert credited > 0


def _rsp_name(f: DisbFile) -> str:
    return f.name.replace("DISB_R440100_B001", "DISBRSP_B001_R440100")


def _check_disbrsp(
    engine: Engine,
    lines: list[dict[str, str]],
    f: DisbFile,
    partner: PartnerPayments,
    *,
    less: dict[str, int],
) -> None:
    """The bureau's DISBRSP of ``f``: its pay_nos in order, each line's result the one
    planted (a partner line: the partner's answer) and a credit of the line's amount, less
    what the partner kept back."""
    assert [ln["pay_no"] for ln in lines] == [r[0] for r in f.rows]
    for line, row, expected in zip(lines, f.rows, f.expected, strict=True):
        key = _partner_key(engine, line["pay_no"]) if expected == "partner" else ""
        if expected == "partner":
            expected = partner.answers[key][0]
        assert line["result"] == expected
        credited = amount_to_fen(row[5]) - less.get(key, 0) if expected == "0000" else 0
        assert amount_to_fen(line["credited_amount"]) == credited


def _found(day: dict[str, dict[str, str]], *batches: DisbFile) -> list[str]:
    """The break_reason of each batch's RECON line, asserting it is a BREAK."""
    lines = [day[f.batch_no] for f in batches]
    assert [ln["status"] for ln in lines] == ["BREAK"] * len(lines)
    return [ln["break_reason"] for ln in lines]


def _open_breaks(capsys: pytest.CaptureFixture[str]) -> dict[tuple[str, str], dict[str, Any]]:
    """``sscard breaks list --json``: the open breaks by (batch_no, reason)."""
    capsys.readouterr()
    assert main(["breaks", "list", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)["breaks"]
    found = {(b["batch_no"] or "", b["reason"]): b for b in listed}
    assert len(found) == len(listed)
    return found


def _partner_keys(engine: Engine, batch_no: str) -> list[str]:
    """The hub's keys of a batch's lines forwarded to a partner bank, by SEQ."""
    with engine.connect() as conn:
        return [
            str(k)
            for k in conn.scalars(
                text(
                    "SELECT l.partner_key FROM disb_line l JOIN disb_batch b ON b.id = l.batch_id "
                    "WHERE b.batch_no = :n AND l.partner_key IS NOT NULL ORDER BY l.seq"
                ),
                {"n": batch_no},
            )
        ]


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
