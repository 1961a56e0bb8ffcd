"""A servicing day with ``dag.test()`` over a real sshd: cards made by the issuance DAGs
are collected and activated at a bank channel (with PIN blocks, weak PINs, wrong
identities, replays), lost at the bank and at the bureau, synced with a partner bank,
replaced keeping the number and moving the balance; balances checked to the fen; BANKEVT
tells the bureau; every DAG of the day re-run changes nothing; no PIN anywhere."""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import Engine, text

from banking import audit, ledger
from sandbox.bureau import make_apply_batch, make_replacement_batch, write_batch
from sandbox.channel import ChannelCard, make_channel_file, read_channelrsp, write_channel_file
from sandbox.factory import CardFactorySimulator
from sandbox.partner_bank import PartnerBankSimulator
from sandbox.servicing import (
    PartnerServicing,
    make_status_file,
    publish_file,
    read_bankevt,
    read_statusrsp,
)
from tests.support.cards import HELD
from tests.support.sshd import OpenSshServer
from transport.local import LocalRemote

pytestmark = pytest.mark.dag

SHANGHAI = ZoneInfo("Asia/Shanghai")
DAY1 = datetime(2026, 11, 22, 10, 0, tzinfo=SHANGHAI)
DAY2 = datetime(2026, 11, 23, 10, 0, tzinfo=SHANGHAI)
DAY3 = datetime(2026, 11, 24, 10, 0, tzinfo=SHANGHAI)
EOD2 = datetime(2026, 11, 23, 21, 30, tzinfo=SHANGHAI)
EOD3 = datetime(2026, 11, 24, 21, 30, tzinfo=SHANGHAI)
ROOT = Path(__file__).resolve().parents[2]
PARTIES = {
    "sftp_r440100": "R440100",
    "sftp_b002": "B002",
    "sftp_b003": "B003",
    "sftp_f01": "F01",
    "sftp_c01": "C01",
}
ZONE = bytes(range(1, 33))
PVK = bytes(range(100, 132))


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
    monkeypatch.setenv("SSCARD_ZONE_KEY_C01_1", ZONE.hex())
    monkeypatch.setenv("SSCARD_PVK_PVK1", PVK.hex())
    monkeypatch.setenv("SSCARD_PVK_CURRENT", "PVK1")
    monkeypatch.delenv("SSCARD_KEY_DIR", raising=False)
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


def issue(dags: dict, servers: dict[str, Path], batch, when: datetime, day: str) -> None:  # type: ignore[no-untyped-def]
    write_batch(batch, servers["R440100"] / "pickup")
    run(dags, "apply_intake", when)
    run(dags, "account_opening", when)
    PartnerBankSimulator(LocalRemote(servers["B002"]), code="B002", refuse_share=0.0, seed="p").run(
        day
    )
    run(dags, "partner_account_returns", when)
    run(dags, "factory_dispatch", when)
    CardFactorySimulator(LocalRemote(servers["F01"]), fail_share=0.0, seed=day).run(day)
    run(dags, "factory_returns", when)


def cards(engine: Engine, bank: str | None = None) -> dict[str, dict]:
    sql = (
        "SELECT c.card_no, c.pan, c.pan_seq, c.id_no, c.name, c.status, c.bank_code, a.birth_date "
        "FROM card c JOIN application a ON a.id = c.application_id"
    )
    with engine.connect() as conn:
        return {
            r.card_no: dict(r._mapping)
            for r in conn.execute(text(sql))
            if bank is None or r.bank_code == bank
        }


def balances(engine: Engine) -> dict[str, int]:
    with engine.connect() as conn:
        return dict(
            conn.execute(
                text(f"SELECT pan, {HELD.format('account')} FROM account ORDER BY pan")
            ).all()
        )


def snapshot(engine: Engine) -> tuple:
    with engine.connect() as conn:
        tables = (
            "card",
            "account",
            "service_line",
            "bank_event",
            "ledger_entry",
            "audit_record",
            "outbound_file",
            "partner_status",
            "replacement",
            "pin_verification",
            "pin_nonce",
        )
        counts = tuple(conn.execute(text(f"SELECT COUNT(*) FROM {t}")).scalar_one() for t in tables)
        states = tuple(
            conn.execute(text("SELECT card_no, status FROM card ORDER BY card_no")).all()
        )
        accounts = tuple(
            conn.execute(
                text(
                    "SELECT pan, status, loss, pin_locked, credit_blocked, "
                    f"{HELD.format('account')} FROM account ORDER BY pan"
                )
            ).all()
        )
    return counts, states, accounts


def test_a_servicing_day_end_to_end(
    dags: dict, servers: dict[str, Path], engine: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    bureau, chan, b002 = servers["R440100"], servers["C01"], servers["B002"]
    batch = make_apply_batch(size=60, seed=41, bank_codes=("B001", "B001", "B002"))
    issue(dags, servers, batch, DAY1, "20261122")
    hub_cards = cards(engine, "B001")
    partner_cards = cards(engine, "B002")
    assert len(hub_cards) == 40 and len(partner_cards) == 20
    assert {c["status"] for c in hub_cards.values()} == {"0"}

    # --- day 2: the bank channel's requests, with PIN blocks and planted faults
    chosen = sorted(hub_cards)
    keep_old, move_old = chosen[0], chosen[1]
    others = [hub_cards[c] for c in chosen[2:]]
    file = make_channel_file(
        [
            ChannelCard(c["card_no"], c["pan"], c["id_no"], c["name"], c["birth_date"])
            for c in others
        ],
        business_date="20261123",
        now=DAY2,
        key_id=1,
        key=ZONE,
        size=60,
        seed=7,
    )
    planted = {r.kind for r in file.requests}
    assert {"replay", "stale", "unknown_key", "wrong_name", "a1_sealed"} <= planted
    # the two cards to be replaced: enabled with a PIN, lost at the bank
    manual = make_channel_file(
        [
            ChannelCard(c["card_no"], c["pan"], c["id_no"], c["name"], c["birth_date"])
            for c in (hub_cards[keep_old], hub_cards[move_old])
        ],
        business_date="20261123",
        seq=2,
        now=DAY2,
        key_id=1,
        key=ZONE,
        mix={"E1": 1.0},
        seed=8,
    )
    write_channel_file(file, chan / "pickup")
    write_channel_file(manual, chan / "pickup")
    run(dags, "channel_requests", DAY2)
    rsp = {
        p.name: read_channelrsp(p.read_bytes()) for p in (chan / "drop").glob("CHANNELRSP_*.txt")
    }
    assert rsp["CHANNELRSP_B001_C01_20261123_001.txt"] == file.expected()
    assert rsp["CHANNELRSP_B001_C01_20261123_002.txt"] == manual.expected()
    assert {r[1] for r in manual.expected()} == {"00"}

    # money arrives on both (the sandbox's credit), then both are reported lost
    with engine.begin() as conn:
        for pan, fen, key in (
            (hub_cards[keep_old]["pan"], 30_000, "k"),
            (hub_cards[move_old]["pan"], 123_456, "m"),
        ):
            ledger.post(
                conn,
                f"credit:{key}",
                "credit",
                "20261123",
                [ledger.Leg("SETTLEMENT", -fen), ledger.Leg(pan, fen)],
                DAY2,
            )
    partner_card = partner_cards[sorted(partner_cards)[0]]
    name, data, control = make_status_file(
        [
            ("S1", "02", move_old, hub_cards[move_old]["id_no"], hub_cards[move_old]["name"]),
            ("S2", "11", partner_card["card_no"], partner_card["id_no"], partner_card["name"]),
            ("S3", "01", "ZZZZZZZZZ", partner_card["id_no"], partner_card["name"]),
        ],
        business_date="20261123",
        now=DAY2,
    )
    publish_file(bureau / "pickup", name, data, control)
    run(dags, "status_sync", DAY2)
    assert not list((bureau / "drop").glob("STATUSRSP_*")), "answered before the partner did"
    partner = PartnerServicing("B002", drop=b002 / "drop", pickup=b002 / "pickup", seed=1)
    assert partner.run("20261123") == ["STATUSRSP_B002_B001_20261123_001.txt"]
    ev_name, ev_data, ev_control = partner.make_partner_bankevt(
        [("PE1", "01", partner_card["card_no"], partner_card["id_no"], "20261123093000", "C21")],
        "20261123",
    )
    publish_file(b002 / "pickup", ev_name, ev_data, ev_control)
    run(dags, "status_sync", DAY2)
    (statusrsp,) = (bureau / "drop").glob("STATUSRSP_*.txt")
    assert read_statusrsp(statusrsp.read_bytes()) == [
        ("S1", "00", ""),
        ("S2", "00", ""),
        ("S3", "01", "E119"),
    ]
    assert (
        cards(engine)[partner_card["card_no"]]["status"] == "4"
    )  # enabled, then lost at the partner
    run(dags, "card_maintenance", EOD2)
    (bankevt,) = (bureau / "drop").glob("BANKEVT_B001_R440100_20261123_*.txt")
    day2_events = read_bankevt(bankevt.read_bytes(), business_date="20261123")
    assert ("01", partner_card["card_no"], "C21") in {
        (e["op"], e["card_no"], e["channel"]) for e in day2_events
    }
    assert {("11", keep_old), ("21", keep_old), ("11", move_old), ("21", move_old)} <= {
        (e["op"], e["card_no"]) for e in day2_events
    }

    # --- day 3: replacements, one keeping the number, one moving the balance
    with engine.begin() as conn:
        conn.execute(text("UPDATE card SET status = '2' WHERE card_no = :c"), {"c": keep_old})
    old_rows = {row[14]: row for row in batch.rows}
    repl = make_replacement_batch(
        [
            (old_rows[keep_old], "K00000001", "05", "1"),
            (old_rows[move_old], "M00000001", "05", "0"),
        ],
        business_date="20261124",
        seq=1,
    )
    issue(dags, servers, repl, DAY3, "20261124")
    made = cards(engine)
    assert (
        made["K00000001"]["pan"] == hub_cards[keep_old]["pan"]
        and made["K00000001"]["pan_seq"] == "02"
    )
    assert made["M00000001"]["pan"] != hub_cards[move_old]["pan"]
    # the old cards stay usable until the new ones are enabled
    assert made[keep_old]["status"] == "2" and made[move_old]["status"] == "2"
    enable = make_channel_file(
        [
            ChannelCard(
                "M00000001",
                made["M00000001"]["pan"],
                made["M00000001"]["id_no"],
                made["M00000001"]["name"],
                made["M00000001"]["birth_date"],
            )
        ],
        business_date="20261124",
        now=DAY3,
        key_id=1,
        key=ZONE,
        mix={"E1_nopin": 1.0},
        seed=9,
    )
    write_channel_file(enable, chan / "pickup")
    run(dags, "channel_requests", DAY3)
    name, data, control = make_status_file(
        [("S9", "11", "K00000001", made["K00000001"]["id_no"], made["K00000001"]["name"])],
        business_date="20261124",
        now=DAY3,
    )
    publish_file(bureau / "pickup", name, data, control)
    run(dags, "status_sync", DAY3)
    run(dags, "card_maintenance", EOD3)

    after = cards(engine)
    assert after[keep_old]["status"] == "9" and after[move_old]["status"] == "9"
    money = balances(engine)
    assert money[hub_cards[keep_old]["pan"]] == 30_000  # the account follows the new card
    assert money[hub_cards[move_old]["pan"]] == 0
    assert money[made["M00000001"]["pan"]] == 123_456  # to the fen
    with engine.connect() as conn:
        acct = dict(conn.execute(text("SELECT pan, status FROM account")).all())
        assert acct[hub_cards[move_old]["pan"]] == "closed"
        assert acct[hub_cards[keep_old]["pan"]] == "active"
        assert ledger.check(conn).ok()
        assert audit.verify(conn).first_bad is None
    (day3,) = (bureau / "drop").glob("BANKEVT_B001_R440100_20261124_*.txt")
    auto = {
        (e["op"], e["card_no"]) for e in read_bankevt(day3.read_bytes()) if e["channel"] == "AUTO"
    }
    assert auto == {("04", keep_old), ("04", move_old)}

    # --- every DAG of the day again: nothing changes
    before = snapshot(engine)
    for dag_id, when in (
        ("channel_requests", DAY3),
        ("status_sync", DAY3),
        ("card_maintenance", EOD3),
    ):
        run(dags, dag_id, when)
    assert snapshot(engine) == before, "re-running the day's DAGs changed something"

    # --- no PIN in any log line, table or file
    pins = {r.pin for f in (file, manual) for r in f.requests if r.pin}
    assert len(pins) > 20
    dumps = [rec.getMessage() for rec in caplog.records]
    with engine.connect() as conn:
        for table in (
            "service_line",
            "audit_record",
            "pin_verification",
            "pin_nonce",
            "bank_event",
            "account",
            "card",
            "received_file",
            "outbound_file",
            "return_problem",
            "partner_status",
            "ledger_txn",
        ):
            dumps += ["|".join(map(str, r)) for r in conn.execute(text(f"SELECT * FROM {table}"))]
    for tree in servers.values():
        dumps += [
            p.read_bytes().decode("gb18030", "replace") for p in tree.rglob("*") if p.is_file()
        ]
    known = {v for c in made.values() for v in (c["pan"], c["id_no"], c["card_no"])}
    blob = "\n".join(dumps)
    for value in known:
        blob = blob.replace(value, "#")
    blob = re.sub(r"[0-9A-Fa-f]{20,}", "#", blob)  # digests, nonces and sealed blocks
    blob = re.sub(r"\d{7,}", "#", blob)  # times, amounts in fen, serials
    leaked = sorted(p for p in pins if re.search(rf"(?<!\d){p}(?!\d)", blob))
    assert leaked == []
