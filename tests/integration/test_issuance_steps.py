"""The issuance steps after intake, against the hub's database: PAN allocation, partner
answers and deadlines, production returns that must not be applied, CARDRSP rules."""

from __future__ import annotations

import io
import json
import tempfile
import threading
import zipfile
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import Engine, func, select
from stdnum import luhn

from banking.pan import PanRange, make_pans
from exchange.answers import receive
from exchange.flows import Party, flow
from exchange.outbox import deliver
from exchange.pickup import IntakeIncomplete, PartyInbox, raise_if_failed
from exchange.storage import Storage
from issuance.accounts import (
    _new_pans,
    apply_account_answers,
    expire_account_requests,
    open_hub_accounts,
    send_account_requests,
)
from issuance.apply_rules import rules_for
from issuance.card_returns import write_card_returns
from issuance.intake import IntakeContext, run_intake
from issuance.personalisation import dispatch_perso, expiry_of
from issuance.production import apply_production_results
from issuance.status import StatusSettings, render, work_status
from persistence.issuance_store import take_serials_upto
from persistence.models import ApplicationState, Card, OutboundFile, PersoRecord, ReturnProblem
from sandbox.bureau import make_apply_batch, write_batch
from sandbox.factory import CardFactorySimulator
from schemas.codec import DelimitedReader, Header, read_all, write_delimited, write_fixed
from schemas.files import Control, hub_batch_no
from schemas.layouts import CARDRSP, PERSORSP
from transport.local import LocalRemote

NOW = datetime(2026, 11, 22, 2, 0, tzinfo=UTC)
DAY = "20261122"
PANS = PanRange("6217881")
ACCTOPENRSP_FLOW = flow("ACCTOPENRSP", Party.PARTNER)
PERSORSP_FLOW = flow("PERSORSP", Party.FACTORY)
_stores: list[Storage] = []


@pytest.fixture(autouse=True)
def _storage(tmp_path: Path) -> None:
    """Each test's object storage (what one step leaves for the next)."""
    _stores[:] = [Storage(str(tmp_path / "storage"))]


def store() -> Storage:
    return _stores[0]


@pytest.fixture
def trees(tmp_path: Path) -> dict[str, Path]:
    out = {}
    for code in ("R440100", "B002", "F01"):
        for sub in ("pickup", "drop"):
            (tmp_path / code / sub).mkdir(parents=True)
        out[code] = tmp_path / code
    return out


def bureau_context(tmp_path: Path) -> IntakeContext:
    """Intake of bureau R440100's pickup on DAY, partner banks B002 and B003 configured."""
    return IntakeContext(
        conn_id="sftp_r440100",
        hub="B001",
        bureau="R440100",
        encoding="GB18030",
        pickup="pickup",
        drop="drop",
        business_date=DAY,
        now=NOW,
        rules=rules_for(DAY, frozenset({"B001", "B002", "B003"}), "R440100"),
        work_dir=tmp_path / "work",
        store=store(),
    )


def intake(
    trees: dict[str, Path],
    engine: Engine,
    tmp_path: Path,
    size: int,
    banks: tuple[str, ...],
    seed: int,
) -> None:
    batch = make_apply_batch(size=size, seed=seed, bank_codes=banks)
    write_batch(batch, trees["R440100"] / "pickup")
    run_intake(LocalRemote(trees["R440100"]), engine, bureau_context(tmp_path))


def acctopen_batch_no(engine: Engine, seq: int) -> str:
    """The BATCH_NO of the hub's ACCTOPEN ``seq`` of DAY to B002, which a partner's
    ACCTOPENRSP of that SEQ carries (ICD §3); that request recorded as sent if it was not
    (one more request file, standing for requests the test does not build)."""
    name = f"ACCTOPEN_B001_B002_{DAY}_{seq:03d}.txt"
    with engine.begin() as conn:
        if conn.scalar(select(func.count()).where(OutboundFile.name == name)) == 0:
            conn.execute(
                OutboundFile.__table__.insert().values(
                    conn_id="sftp_b002",
                    directory="drop",
                    name=name,
                    type="ACCTOPEN",
                    sha256="0" * 64,
                    record_count=0,
                    with_control=True,
                    created_at=NOW,
                    delivered_at=NOW,
                )
            )
    return hub_batch_no("ACCTOPEN", "B002", DAY, seq)


def perso_to_f01(
    trees: dict[str, Path], engine: Engine, tmp_path: Path, count: int, seed: int
) -> list[str]:
    """``count`` applications of bureau R440100 for hub accounts taken in, their accounts
    opened and their PERSO queued for factory F01 (not delivered); the PERSO's names."""
    intake(trees, engine, tmp_path, count, ("B001",), seed)
    open_hub_accounts(engine, "B001", PANS, DAY)
    return dispatch_perso(
        engine,
        hub="B001",
        factory="F01",
        conn_id="sftp_f01",
        drop="drop",
        business_date=DAY,
        now=NOW,
        bureaus=("R440100",),
        work_dir=tmp_path / "work",
        store=store(),
    )


def request_b002_accounts(engine: Engine) -> str | None:
    """The day's ACCTOPEN to partner B002."""
    return send_account_requests(
        engine,
        hub="B001",
        bank_code="B002",
        conn_id="sftp_b002",
        drop="drop",
        encoding="GB18030",
        business_date=DAY,
        now=NOW,
        work_dir=Path(tempfile.mkdtemp()),
        store=store(),
    )


def inbox(code: str, tmp_path: Path, day: str = DAY) -> PartyInbox:
    return PartyInbox(
        conn_id=f"sftp_{code.lower()}",
        party=code,
        hub="B001",
        pickup="pickup",
        drop="drop",
        encoding="GB18030",
        business_date=day,
        now=NOW,
        work_dir=tmp_path / "work",
        store=store(),
    )


def test_pans_pass_luhn_and_serials_are_never_handed_out_twice_under_concurrent_runs(
    engine: Engine,
) -> None:
    taken: list[int] = []
    lock = threading.Lock()

    def worker() -> None:
        for _ in range(20):
            with engine.begin() as conn:
                first, count = take_serials_upto(conn, PANS.prefix, 5, 390)
            with lock:
                taken.extend(range(first, first + count))

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    assert sorted(taken) == list(range(1, 391))  # up to the capacity given, never beyond
    pans = make_pans(PANS, 1, 400)
    assert all(len(p) == 19 and luhn.is_valid(p) for p in pans)
    assert len(set(pans)) == 400


def test_hub_pans_come_from_the_next_configured_range_once_the_first_is_used_up(
    trees: dict[str, Path], engine: Engine, tmp_path: Path
) -> None:
    intake(trees, engine, tmp_path, 5, ("B001",), 47)
    small = PanRange("62178819999999999")  # serials 1-9 only
    with engine.begin() as conn:
        take_serials_upto(conn, small.prefix, 7, small.capacity)  # 2 left

    opened = open_hub_accounts(engine, "B001", [small, PanRange("6217882")], DAY)

    assert opened.new_accounts == 5
    with engine.connect() as conn:
        pans = sorted(conn.execute(select(ApplicationState.pan)).scalars())
    assert [p[:7] for p in pans] == ["6217881"] * 2 + ["6217882"] * 3
    assert all(luhn.is_valid(p) for p in pans)
    with pytest.raises(ValueError, match="every hub PAN range is exhausted"):
        with engine.begin() as conn:
            _new_pans(conn, [small], 1)


def test_hub_accounts_are_preopened_once_with_pan_seq_01(
    trees: dict[str, Path], engine: Engine, tmp_path: Path
) -> None:
    intake(trees, engine, tmp_path, 5, ("B001",), 41)

    first = open_hub_accounts(engine, "B001", PANS, DAY)
    again = open_hub_accounts(engine, "B001", PANS, DAY)

    assert (first.new_accounts, again.new_accounts) == (5, 0)
    with engine.connect() as conn:
        rows = conn.execute(
            select(ApplicationState.pan, ApplicationState.pan_seq, ApplicationState.status)
        ).all()
    assert {(seq, status) for _, seq, status in rows} == {("01", "account_open")}
    assert len({pan for pan, _, _ in rows}) == 5


def test_hub_accounts_for_more_applications_than_one_chunk_are_all_opened(
    trees: dict[str, Path], engine: Engine, tmp_path: Path
) -> None:
    intake(trees, engine, tmp_path, 7, ("B001",), 43)

    opened = open_hub_accounts(engine, "B001", PANS, DAY, chunk_size=2)

    assert opened.new_accounts == 7
    with engine.connect() as conn:
        rows = conn.execute(select(ApplicationState.status, ApplicationState.pan)).all()
    assert {status for status, _ in rows} == {"account_open"}
    assert len({pan for _, pan in rows}) == 7


def test_a_partner_answer_applies_once_a_late_answer_after_e140_is_reported_not_applied(
    trees: dict[str, Path], engine: Engine, tmp_path: Path
) -> None:
    intake(trees, engine, tmp_path, 3, ("B002",), 42)
    name = request_b002_accounts(engine)
    assert name == "ACCTOPEN_B001_B002_20261122_001.txt"
    assert request_b002_accounts(engine) is None
    remote = LocalRemote(trees["B002"])
    deliver(remote, engine, store(), "sftp_b002", NOW)

    # delivered on Sunday DAY: the partner has until the end of Monday
    assert expire_account_requests(engine, "B002", "20261123", 1) == 0
    assert expire_account_requests(engine, "B002", "20261124", 1) == 3

    from sandbox.partner_bank import PartnerBankSimulator

    PartnerBankSimulator(remote, code="B002", refuse_share=0.0).run("20261124")
    outcomes = receive(
        remote,
        engine,
        inbox("B002", tmp_path, "20261124"),
        ACCTOPENRSP_FLOW,
        lambda conn, reader, landed, file_id: apply_account_answers(
            conn, reader, landed, file_id, "20261124"
        ),
    )
    assert [(o.counts["applied"], o.counts["problems"]) for o in outcomes] == [(0, 3)]
    with engine.connect() as conn:
        apps = conn.execute(
            select(
                ApplicationState.status,
                ApplicationState.fail_stage,
                ApplicationState.reason_code,
                ApplicationState.pan,
            )
        ).all()
    assert set(apps) == {("failed", "1", "E140", None)}


def test_returned_records_for_unknown_repeated_or_contradicting_cards_are_reported_never_applied(
    trees: dict[str, Path], engine: Engine, tmp_path: Path
) -> None:
    perso_to_f01(trees, engine, tmp_path, 6, 43)
    remote = LocalRemote(trees["F01"])
    deliver(remote, engine, store(), "sftp_f01", NOW)
    factory = CardFactorySimulator(remote, fail_share=0.0, seed=3)
    factory.run(DAY)

    def handler(conn, reader, landed, file_id):  # type: ignore[no-untyped-def]
        return apply_production_results(conn, reader, landed, file_id, DAY)

    first = receive(remote, engine, inbox("F01", tmp_path), PERSORSP_FLOW, handler)
    assert [o.counts["made"] for o in first] == [6]
    with engine.connect() as conn:
        before = conn.execute(
            select(Card.card_no, Card.pan, Card.status).order_by(Card.card_no)
        ).all()

    factory.run("20261123", anomalies={"unknown_card": 1, "duplicate": 2, "wrong_pan": 1})
    second = receive(remote, engine, inbox("F01", tmp_path, "20261123"), PERSORSP_FLOW, handler)

    assert [(o.counts["applied"], o.counts["problems"]) for o in second] == [(0, 4)]
    with engine.connect() as conn:
        problems = sorted(conn.execute(select(ReturnProblem.problem)).scalars())
        after = conn.execute(
            select(Card.card_no, Card.pan, Card.status).order_by(Card.card_no)
        ).all()
    assert problems == [
        "card returned before",
        "card returned before",
        "card_no not in any PERSO",
        "pan differs from the PERSO",
    ]
    assert after == before
    assert {status for _, _, status in after} == {"0"}


def test_cardrsp_is_written_every_day_even_empty_and_reports_each_outcome_once(
    trees: dict[str, Path], engine: Engine, tmp_path: Path
) -> None:
    def cardrsp(day: str) -> str | None:
        return write_card_returns(
            engine,
            hub="B001",
            bureau="R440100",
            conn_id="sftp_r440100",
            drop="drop",
            encoding="GB18030",
            business_date=day,
            now=NOW,
            work_dir=Path(tempfile.mkdtemp()),
            store=store(),
        )

    assert cardrsp(DAY) == "CARDRSP_B001_R440100_20261122_001.txt"
    assert cardrsp(DAY) is None
    intake(trees, engine, tmp_path, 4, ("B002",), 44)
    request_b002_accounts(engine)
    deliver(LocalRemote(trees["B002"]), engine, store(), "sftp_b002", NOW)
    expire_account_requests(engine, "B002", "20261124", 1)

    assert cardrsp("20261124") == "CARDRSP_B001_R440100_20261124_001.txt"
    assert cardrsp("20261124") is None
    assert cardrsp("20261125") == "CARDRSP_B001_R440100_20261125_001.txt"
    deliver(LocalRemote(trees["R440100"]), engine, store(), "sftp_r440100", NOW)

    counts = []
    for day in ("20261122", "20261124", "20261125"):
        data = (trees["R440100"] / "drop" / f"CARDRSP_B001_R440100_{day}_001.txt").read_bytes()
        table, rejected = read_all(DelimitedReader(data, CARDRSP))
        assert rejected == []
        counts.append(table.num_rows)
    assert counts == [0, 4, 0]


def test_partner_wait_counts_from_the_day_the_request_reached_the_partner(
    trees: dict[str, Path], engine: Engine, tmp_path: Path
) -> None:
    intake(trees, engine, tmp_path, 3, ("B002",), 49)
    request_b002_accounts(engine)  # queued on 20261122; the partner's server is down

    assert expire_account_requests(engine, "B002", "20261124", 1) == 0
    # delivered on 20261124 at 23:30 in Shanghai
    deliver(
        LocalRemote(trees["B002"]),
        engine,
        store(),
        "sftp_b002",
        datetime(2026, 11, 24, 15, 30, tzinfo=UTC),
    )

    assert expire_account_requests(engine, "B002", "20261125", 1) == 0
    assert expire_account_requests(engine, "B002", "20261126", 1) == 3


def test_a_request_delivered_on_a_friday_is_waited_for_until_the_end_of_the_next_business_day(
    trees: dict[str, Path], engine: Engine, tmp_path: Path
) -> None:
    intake(trees, engine, tmp_path, 3, ("B002",), 50)
    request_b002_accounts(engine)
    # delivered on Friday 20261127 at 10:00 in Shanghai; partner_wait is 1 business day
    deliver(
        LocalRemote(trees["B002"]),
        engine,
        store(),
        "sftp_b002",
        datetime(2026, 11, 27, 2, 0, tzinfo=UTC),
    )

    for day in ("20261128", "20261129", "20261130"):
        assert expire_account_requests(engine, "B002", day, 1) == 0
    # with Monday a holiday, the partner has until the end of Tuesday
    assert expire_account_requests(engine, "B002", "20261201", 1, ("20261130",)) == 0
    assert expire_account_requests(engine, "B002", "20261201", 1) == 3


def test_expiry_is_ten_years_on_and_29_february_becomes_28_february() -> None:
    assert expiry_of("20261122") == "20361122"
    assert expiry_of("20280229") == "20380228"
    assert expiry_of("20200229", years=20) == "20400229"


def test_a_failed_card_is_final(trees: dict[str, Path], engine: Engine, tmp_path: Path) -> None:
    intake(trees, engine, tmp_path, 2, ("B002",), 45)
    request_b002_accounts(engine)
    deliver(LocalRemote(trees["B002"]), engine, store(), "sftp_b002", NOW)
    expire_account_requests(engine, "B002", "20261124", 1)
    open_hub_accounts(engine, "B001", PANS, "20261124")
    sent = dispatch_perso(
        engine,
        hub="B001",
        factory="F01",
        conn_id="sftp_f01",
        drop="drop",
        business_date="20261124",
        now=NOW,
        bureaus=("R440100",),
        work_dir=tmp_path / "work",
        store=store(),
    )

    assert sent == []
    with engine.connect() as conn:
        assert conn.scalar(select(func.count()).where(ApplicationState.status == "failed")) == 2


def test_a_replacement_keeping_its_number_takes_the_old_pan_with_the_pans_next_pan_seq(
    trees: dict[str, Path], engine: Engine, tmp_path: Path
) -> None:
    from sqlalchemy import insert

    from persistence.models import Account
    from sandbox.bureau import render
    from schemas.files import Control
    from schemas.layouts import APPLY

    batch = make_apply_batch(size=1, seed=46, bank_codes=("B001",))
    row = list(batch.rows[0])
    with engine.begin() as conn:
        holder = {
            "bureau": "R440100",
            "id_type": "01",
            "id_no": row[APPLY.index("id_no")],
            "name": row[APPLY.index("name")],
            "bank_code": "B001",
            "pan": "6217881000000099998",
        }
        conn.execute(
            insert(Card),
            [
                {
                    **holder,
                    "card_no": "OLD000009",
                    "pan_seq": "03",
                    "status": "1",
                    "issue_date": "20200101",
                    "expiry_date": "20300101",
                },
                # the old card was replaced keeping its number before, not enabled yet
                {
                    **holder,
                    "card_no": "NEW000008",
                    "pan_seq": "04",
                    "status": "0",
                    "issue_date": "20261101",
                    "expiry_date": "20361101",
                },
            ],
        )
        conn.execute(
            insert(Account).values(
                pan="6217881000000099998",
                bank_code="B001",
                id_no=row[APPLY.index("id_no")],
                status="active",
            )
        )
    for field, value in (
        ("app_type", "06"),
        ("old_card_no", "OLD000009"),
        ("keep_account", "1"),
        ("replace_reason", "2"),
    ):
        row[APPLY.index(field)] = value
    data = render(batch.header, [row])
    import dataclasses

    batch = dataclasses.replace(
        batch, data=data, control=Control.for_bytes(batch.name, data, 1).render(), rows=[row]
    )
    write_batch(batch, trees["R440100"] / "pickup")
    ctx = bureau_context(tmp_path)
    assert [o.accepted for o in run_intake(LocalRemote(trees["R440100"]), engine, ctx)] == [1]

    opened = open_hub_accounts(engine, "B001", PANS, DAY)

    assert (opened.new_accounts, opened.kept_numbers) == (0, 1)
    with engine.connect() as conn:
        assert conn.execute(select(ApplicationState.pan, ApplicationState.pan_seq)).one() == (
            "6217881000000099998",
            "05",  # the PAN's highest pan_seq + 1, not the old card's
        )
        assert conn.scalar(select(func.count()).select_from(Account)) == 1


def test_the_status_report_shows_unanswered_partner_requests_with_their_age(
    trees: dict[str, Path],
    engine: Engine,
    tmp_path: Path,
    db_url: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    intake(trees, engine, tmp_path, 3, ("B002",), 42)
    request_b002_accounts(engine)

    waits = StatusSettings(partner_wait_days={"B002": 2})
    undelivered = work_status(engine, "20261123", waits)

    assert [(p.unanswered, p.not_delivered, p.days_to_e140) for p in undelivered.partners] == [
        (3, 3, None)
    ]
    assert "3 unanswered (3 not delivered yet: no E140 clock)" in render(undelivered)
    deliver(LocalRemote(trees["B002"]), engine, store(), "sftp_b002", NOW)

    status = work_status(engine, "20261123", waits)

    assert [
        (p.bank_code, p.unanswered, p.not_delivered, p.oldest_sent, p.age_days, p.days_to_e140)
        for p in status.partners
    ] == [("B002", 3, 0, DAY, 1, 2)]
    assert status.applications == {("R440100", "partner_sent"): 3}
    assert status.undelivered[0].name == "APPLYRSP_B001_R440100_20261122_001.txt"
    text = render(status)
    assert (
        "B002          3 unanswered, oldest delivered 20261122 (1 day(s) ago), E140 on 20261125"
        in text
    )

    from sscard.cli import main

    monkeypatch.setenv("SSCARD_DATABASE_URL", db_url)
    # partner_wait_days is 1 in the shipped configuration: E140 is due on 20261124 (the
    # end of Monday's wait), and the APPLYRSP has waited in the outbox since 20261122:
    # critical
    assert main(["status", "--json", "--business-date", "20261123"]) == 2
    report = json.loads(capsys.readouterr().out)
    assert report["partners"] == [
        {
            "bank_code": "B002",
            "unanswered": 3,
            "not_delivered": 0,
            "oldest_sent": DAY,
            "age_days": 1,
            "e140_day": "20261124",
            "days_to_e140": 1,
            "by_e140_day": {"20261124": 3},
        }
    ]
    assert [(s["status"], s["bureaus"]) for s in report["stages"] if s["count"]] == [
        ("partner_sent", {"R440100": 3})
    ]
    assert {f["code"] for f in report["findings"]} == {"e140_soon", "outbox_stuck"}


def _persorsp(seq: int) -> tuple[str, bytes]:
    out = io.BytesIO()
    header = Header("PERSORSP", "F01", "B001", f"F01{DAY}{seq:03d}", DAY, 0)
    write_fixed(out, PERSORSP, header, [])
    return f"PERSORSP_F01_B001_{DAY}_{seq:03d}.txt", out.getvalue()


def test_a_record_from_a_factory_for_a_card_sent_to_another_factory_is_reported_never_applied(
    trees: dict[str, Path], engine: Engine, tmp_path: Path
) -> None:
    perso_to_f01(trees, engine, tmp_path, 2, 47)
    with engine.connect() as conn:
        card_no, pan = conn.execute(
            select(PersoRecord.card_no, PersoRecord.pan).order_by(PersoRecord.card_no).limit(1)
        ).one()
    # factory F02 returns, as made, a card of the PERSO sent to F01
    pickup = tmp_path / "F02" / "pickup"
    pickup.mkdir(parents=True)
    (tmp_path / "F02" / "drop").mkdir()
    name = f"PERSORSP_F02_B001_{DAY}_001.txt"
    out = io.BytesIO()
    made = [card_no, pan, "00", "", "440100D156000005" + "0" * 15 + "1", "3B" * 8, "BOX1", DAY]
    write_fixed(out, PERSORSP, Header("PERSORSP", "F02", "B001", f"F02{DAY}001", DAY, 1), [made])
    data = out.getvalue()
    (pickup / name).write_bytes(data)
    (pickup / f"{name}.ok").write_bytes(Control.for_bytes(name, data, 1).render())

    outcomes = receive(
        LocalRemote(tmp_path / "F02"),
        engine,
        inbox("F02", tmp_path),
        PERSORSP_FLOW,
        lambda conn, reader, landed, file_id: apply_production_results(
            conn, reader, landed, file_id, DAY
        ),
    )

    assert [(o.counts["applied"], o.counts["problems"]) for o in outcomes] == [(0, 1)]
    with engine.connect() as conn:
        assert conn.scalar(select(func.count()).select_from(Card)) == 0
        assert set(conn.execute(select(ApplicationState.status)).scalars()) == {"perso_sent"}
        assert conn.execute(select(ReturnProblem.key, ReturnProblem.problem)).all() == [
            (card_no, "card_no not in any PERSO")
        ]


def test_a_card_identification_code_another_card_has_is_reported_never_applied(
    trees: dict[str, Path], engine: Engine, tmp_path: Path
) -> None:
    """A card identification code is per chip (DOMAIN §1): a made record repeating one
    given earlier in its file, or one a made card already has, is reported and never
    applied; the card's record with a code of its own is taken later."""
    perso_to_f01(trees, engine, tmp_path, 3, 47)
    with engine.connect() as conn:
        cards = conn.execute(
            select(PersoRecord.card_no, PersoRecord.pan).order_by(PersoRecord.card_no)
        ).all()
    code = "440100D156000005" + "0" * 15

    def returned(seq: int, records: list[tuple[int, str]]) -> list[tuple[int, int]]:
        rows = [[*cards[i], "00", "", code + last, "3B" * 8, "BOX1", DAY] for i, last in records]
        name = f"PERSORSP_F01_B001_{DAY}_{seq:03d}.txt"
        out = io.BytesIO()
        header = Header("PERSORSP", "F01", "B001", f"F01{DAY}{seq:03d}", DAY, len(rows))
        write_fixed(out, PERSORSP, header, rows)
        pickup = trees["F01"] / "pickup"
        (pickup / name).write_bytes(out.getvalue())
        (pickup / f"{name}.ok").write_bytes(
            Control.for_bytes(name, out.getvalue(), len(rows)).render()
        )
        outcomes = receive(
            LocalRemote(trees["F01"]),
            engine,
            inbox("F01", tmp_path),
            PERSORSP_FLOW,
            lambda conn, reader, landed, file_id: apply_production_results(
                conn, reader, landed, file_id, DAY
            ),
        )
        return [(o.counts["applied"], o.counts["problems"]) for o in outcomes]

    assert returned(1, [(0, "1"), (1, "1")]) == [(1, 1)]  # the second repeats the first
    assert returned(2, [(2, "1")]) == [(0, 1)]  # the first card's code
    assert returned(3, [(1, "2"), (2, "3")]) == [(2, 0)]
    with engine.connect() as conn:
        made = dict(conn.execute(select(Card.card_no, Card.card_id_code)).all())
        problems = conn.execute(select(ReturnProblem.key, ReturnProblem.problem)).all()
    assert made == {cards[0][0]: code + "1", cards[1][0]: code + "2", cards[2][0]: code + "3"}
    assert problems == [
        (cards[1][0], "card_id_code of another card"),
        (cards[2][0], "card_id_code of another card"),
    ]


def test_a_factory_pickup_answers_a_wrong_type_f04_and_takes_a_file_again_after_f01(
    trees: dict[str, Path], engine: Engine, tmp_path: Path
) -> None:
    pickup = trees["F01"] / "pickup"
    name, data = _persorsp(1)
    wrong_type = name.replace("PERSORSP", "PERSORESP")
    (pickup / wrong_type).write_bytes(data)
    (pickup / f"{wrong_type}.ok").write_bytes(Control.for_bytes(wrong_type, data, 0).render())
    (pickup / name).write_bytes(data)
    (pickup / f"{name}.ok").write_bytes(Control.for_bytes(name, data + b"x", 0).render())
    remote = LocalRemote(trees["F01"])

    def handler(conn, reader, landed, file_id):  # type: ignore[no-untyped-def]
        return apply_production_results(conn, reader, landed, file_id, DAY)

    first = receive(remote, engine, inbox("F01", tmp_path), PERSORSP_FLOW, handler)

    assert sorted((o.name, o.outcome, o.file_code) for o in first) == [
        (wrong_type, "rejected", "F04"),
        (name, "rejected", "F01"),
    ]
    deliver(remote, engine, store(), "sftp_f01", NOW)
    rej = (trees["F01"] / "drop" / f"{wrong_type}.rej").read_bytes()
    assert rej.startswith(f"{wrong_type}|F04|".encode())
    (pickup / name).write_bytes(data)  # the same file, the same wrong control file
    (pickup / f"{name}.ok").write_bytes(Control.for_bytes(name, data + b"x", 0).render())
    unchanged = receive(remote, engine, inbox("F01", tmp_path), PERSORSP_FLOW, handler)
    assert [(o.outcome, o.file_code) for o in unchanged] == [("redelivered", "F01")]
    (pickup / name).write_bytes(data)  # the same file again, with its control file right
    (pickup / f"{name}.ok").write_bytes(Control.for_bytes(name, data, 0).render())

    again = receive(remote, engine, inbox("F01", tmp_path), PERSORSP_FLOW, handler)

    assert [(o.name, o.outcome) for o in again] == [(name, "accepted")]


def test_a_factory_file_that_fails_unexpectedly_is_left_while_the_next_one_is_taken(
    trees: dict[str, Path], engine: Engine, tmp_path: Path
) -> None:
    pickup = trees["F01"] / "pickup"
    names = []
    for seq in (1, 2):
        name, data = _persorsp(seq)
        (pickup / name).write_bytes(data)
        (pickup / f"{name}.ok").write_bytes(Control.for_bytes(name, data, 0).render())
        names.append(name)
    calls: list[int] = []

    def handler(conn, reader, landed, file_id):  # type: ignore[no-untyped-def]
        calls.append(file_id)
        if len(calls) == 1:
            raise RuntimeError("a defect met by the first file only")
        return apply_production_results(conn, reader, landed, file_id, DAY)

    outcomes = receive(
        LocalRemote(trees["F01"]), engine, inbox("F01", tmp_path), PERSORSP_FLOW, handler
    )

    assert [(o.name, o.outcome) for o in outcomes] == [(names[0], "failed"), (names[1], "accepted")]
    assert (pickup / names[0]).exists() and not (pickup / names[1]).exists()
    with pytest.raises(IntakeIncomplete, match=names[0]):
        raise_if_failed(outcomes)


def test_a_replacement_of_a_replacement_without_photos_takes_the_photo_on_file(
    trees: dict[str, Path], engine: Engine, tmp_path: Path
) -> None:
    import dataclasses

    from sandbox.bureau import render
    from schemas.codec import FixedReader
    from schemas.layouts import APPLY, PERSO

    factory_remote = LocalRemote(trees["F01"])
    factory = CardFactorySimulator(factory_remote, fail_share=0.0, seed=3)

    def produce() -> list[tuple[str, bool]]:
        open_hub_accounts(engine, "B001", PANS, DAY)
        names = dispatch_perso(
            engine,
            hub="B001",
            factory="F01",
            conn_id="sftp_f01",
            drop="drop",
            business_date=DAY,
            now=NOW,
            bureaus=("R440100",),
            work_dir=tmp_path / "work",
            store=store(),
        )
        deliver(factory_remote, engine, store(), "sftp_f01", NOW)
        photos = []
        for name in names:
            table, _ = read_all(FixedReader((trees["F01"] / "drop" / name).read_bytes(), PERSO))
            with zipfile.ZipFile(trees["F01"] / "drop" / name.replace(".txt", ".zip")) as zf:
                photos += [
                    (entry, zf.read(entry) == original)
                    for entry in table.column("photo").to_pylist()
                ]
        factory.run(DAY)
        receive(
            factory_remote,
            engine,
            inbox("F01", tmp_path),
            PERSORSP_FLOW,
            lambda conn, reader, landed, file_id: apply_production_results(
                conn, reader, landed, file_id, DAY
            ),
        )
        return photos

    first = make_apply_batch(size=1, seed=51, bank_codes=("B001",), seq=1)
    assert first.zip_data is not None
    with zipfile.ZipFile(io.BytesIO(first.zip_data)) as zf:
        original = zf.read(first.rows[0][APPLY.index("photo")])
    write_batch(first, trees["R440100"] / "pickup")
    run_intake(LocalRemote(trees["R440100"]), engine, bureau_context(tmp_path))
    card_no = first.rows[0][APPLY.index("card_no")]
    assert produce() == [(f"{card_no}.jpg", True)]
    for seq in (2, 3):  # a replacement without a photo, then a replacement of that card
        other = make_apply_batch(size=1, seed=51 + seq, bank_codes=("B001",), seq=seq)
        row = list(first.rows[0])
        for field in ("app_no", "card_no"):
            row[APPLY.index(field)] = other.rows[0][APPLY.index(field)]
        for field, value in (
            ("app_type", "06"),
            ("old_card_no", card_no),
            ("keep_account", "0"),
            ("replace_reason", "2"),
            ("photo", ""),
        ):
            row[APPLY.index(field)] = value
        data = render(other.header, [row])
        control = Control.for_bytes(other.name, data, 1).render()
        write_batch(
            dataclasses.replace(other, data=data, control=control, rows=[row]),
            trees["R440100"] / "pickup",
        )
        assert [
            o.accepted
            for o in run_intake(LocalRemote(trees["R440100"]), engine, bureau_context(tmp_path))
        ] == [1]
        card_no = row[APPLY.index("card_no")]

        assert produce() == [(f"{card_no}.jpg", True)]  # the first application's photo


def test_a_response_answering_no_request_or_with_another_batch_no_is_rejected_f04(
    trees: dict[str, Path], engine: Engine, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """An ACCTOPENRSP names the ACCTOPEN it answers and carries its BATCH_NO (ICD §3): one
    answering no file the hub sent, or with another BATCH_NO, is rejected as a whole, and
    the corrected file under the same name is taken."""
    from schemas.layouts import ACCTOPEN, ACCTOPENRSP

    intake(trees, engine, tmp_path, 1, ("B002",), 44)
    name = request_b002_accounts(engine)
    assert name == f"ACCTOPEN_B001_B002_{DAY}_001.txt"
    remote = LocalRemote(trees["B002"])
    deliver(remote, engine, store(), "sftp_b002", NOW)
    table, _ = read_all(DelimitedReader((trees["B002"] / "drop" / name).read_bytes(), ACCTOPEN))
    [req] = table.column("req_no").to_pylist()

    def answer(seq: int, batch_no: str) -> list[tuple[str, str | None]]:
        out = io.BytesIO()
        header = Header("ACCTOPENRSP", "B002", "B001", batch_no, DAY, 1)
        write_delimited(out, ACCTOPENRSP, header, [[req, "01", "E199", "拒绝", "", ""]])
        answered = f"ACCTOPENRSP_B002_B001_{DAY}_{seq:03d}.txt"
        (trees["B002"] / "pickup" / answered).write_bytes(out.getvalue())
        control = Control.for_bytes(answered, out.getvalue(), 1).render()
        (trees["B002"] / "pickup" / f"{answered}.ok").write_bytes(control)
        outcomes = receive(
            remote,
            engine,
            inbox("B002", tmp_path),
            ACCTOPENRSP_FLOW,
            lambda conn, reader, landed, file_id: apply_account_answers(
                conn, reader, landed, file_id, DAY
            ),
        )
        deliver(remote, engine, store(), "sftp_b002", NOW)
        return [(o.outcome, o.file_code) for o in outcomes]

    batch_no = hub_batch_no("ACCTOPEN", "B002", DAY, 1)
    assert answer(2, hub_batch_no("ACCTOPEN", "B002", DAY, 2)) == [("rejected", "F04")]
    rej = (trees["B002"] / "drop" / f"ACCTOPENRSP_B002_B001_{DAY}_002.txt.rej").read_text()
    assert rej.startswith(f"ACCTOPENRSP_B002_B001_{DAY}_002.txt|F04|")
    assert f"answers no file the hub sent (ACCTOPEN_B001_B002_{DAY}_002.txt)" in caplog.text
    assert answer(1, "R1") == [("rejected", "F04")]
    rej = (trees["B002"] / "drop" / f"ACCTOPENRSP_B002_B001_{DAY}_001.txt.rej").read_text()
    assert rej.startswith(f"ACCTOPENRSP_B002_B001_{DAY}_001.txt|F04|")
    assert f"BATCH_NO is not that of the request it answers ({batch_no})" in caplog.text
    with engine.connect() as conn:
        assert conn.scalar(select(ApplicationState.status)) == "partner_sent"
    assert answer(1, batch_no) == [("accepted", None)]
    with engine.connect() as conn:
        assert conn.scalar(select(ApplicationState.reason_code)) == "E199"


def test_a_partner_refusal_code_passes_unchanged_and_a_pan_failing_luhn_is_never_applied(
    trees: dict[str, Path], engine: Engine, tmp_path: Path
) -> None:
    from schemas.layouts import ACCTOPEN, ACCTOPENRSP

    intake(trees, engine, tmp_path, 3, ("B002",), 44)
    name = request_b002_accounts(engine)
    assert name is not None
    remote = LocalRemote(trees["B002"])
    deliver(remote, engine, store(), "sftp_b002", NOW)
    table, _ = read_all(DelimitedReader((trees["B002"] / "drop" / name).read_bytes(), ACCTOPEN))
    req = table.column("req_no").to_pylist()
    good = make_pans(PanRange("6229990"), 1, 1)[0]
    bad = good[:-1] + str((int(good[-1]) + 1) % 10)
    rows = [
        [req[0], "00", "", "", bad, "01"],
        [req[1], "01", "E199", "对方机构拒绝", "", ""],
        [req[2], "00", "", "", good, "01"],
    ]
    out = io.BytesIO()
    write_delimited(
        out,
        ACCTOPENRSP,
        Header("ACCTOPENRSP", "B002", "B001", acctopen_batch_no(engine, 1), DAY, 3),
        rows,
    )
    answer = f"ACCTOPENRSP_B002_B001_{DAY}_001.txt"
    (trees["B002"] / "pickup" / answer).write_bytes(out.getvalue())
    control = Control.for_bytes(answer, out.getvalue(), 3).render()
    (trees["B002"] / "pickup" / f"{answer}.ok").write_bytes(control)

    outcomes = receive(
        remote,
        engine,
        inbox("B002", tmp_path),
        ACCTOPENRSP_FLOW,
        lambda conn, reader, landed, file_id: apply_account_answers(
            conn, reader, landed, file_id, DAY
        ),
    )

    assert [(o.counts["applied"], o.counts["problems"]) for o in outcomes] == [(2, 1)]
    with engine.connect() as conn:
        states = conn.execute(
            select(
                ApplicationState.status,
                ApplicationState.fail_stage,
                ApplicationState.reason_code,
                ApplicationState.pan,
            ).order_by(ApplicationState.application_id)
        ).all()
        problem = conn.execute(select(ReturnProblem.problem)).scalar_one()
    assert states == [
        ("partner_sent", None, None, None),
        ("failed", "1", "E199", None),
        ("account_open", None, None, good),
    ]
    assert "Luhn" in problem


def test_a_second_answer_giving_another_pan_is_reported_and_the_first_pan_is_kept(
    trees: dict[str, Path], engine: Engine, tmp_path: Path
) -> None:
    from schemas.layouts import ACCTOPEN, ACCTOPENRSP

    intake(trees, engine, tmp_path, 2, ("B002",), 48)
    name = request_b002_accounts(engine)
    assert name is not None
    remote = LocalRemote(trees["B002"])
    deliver(remote, engine, store(), "sftp_b002", NOW)
    table, _ = read_all(DelimitedReader((trees["B002"] / "drop" / name).read_bytes(), ACCTOPEN))
    req = table.column("req_no").to_pylist()
    first, other, third = make_pans(PanRange("6229990"), 1, 3)

    def answer(seq: int, rows: list[list[str]]) -> list[tuple[int, int]]:
        out = io.BytesIO()
        header = Header(
            "ACCTOPENRSP", "B002", "B001", acctopen_batch_no(engine, seq), DAY, len(rows)
        )
        write_delimited(out, ACCTOPENRSP, header, rows)
        answer = f"ACCTOPENRSP_B002_B001_{DAY}_{seq:03d}.txt"
        (trees["B002"] / "pickup" / answer).write_bytes(out.getvalue())
        control = Control.for_bytes(answer, out.getvalue(), len(rows)).render()
        (trees["B002"] / "pickup" / f"{answer}.ok").write_bytes(control)
        outcomes = receive(
            remote,
            engine,
            inbox("B002", tmp_path),
            ACCTOPENRSP_FLOW,
            lambda conn, reader, landed, file_id: apply_account_answers(
                conn, reader, landed, file_id, DAY
            ),
        )
        return [(o.counts["applied"], o.counts["problems"]) for o in outcomes]

    assert answer(1, [[req[0], "00", "", "", first, "01"]]) == [(1, 0)]
    # the same answer again is no problem; another PAN for the same request is, in a later
    # file as in the same one
    assert answer(
        2, [[req[0], "00", "", "", first, "01"], [req[0], "00", "", "", other, "01"]]
    ) == [(0, 1)]
    assert answer(
        3, [[req[1], "00", "", "", third, "01"], [req[1], "00", "", "", other, "01"]]
    ) == [(1, 1)]

    with engine.connect() as conn:
        pans = conn.execute(
            select(ApplicationState.pan).order_by(ApplicationState.application_id)
        ).scalars()
        problems = conn.execute(select(ReturnProblem.problem)).scalars().all()
    assert list(pans) == [first, third]
    assert problems == ["answered before, differently"] * 2


def test_a_partners_answer_giving_another_pan_to_a_card_keeping_its_number_is_never_applied(
    trees: dict[str, Path], engine: Engine, tmp_path: Path
) -> None:
    import dataclasses

    from sqlalchemy import insert

    from sandbox.bureau import render
    from schemas.layouts import ACCTOPEN, ACCTOPENRSP, APPLY

    kept, other = make_pans(PanRange("6229990"), 1, 2)
    batch = make_apply_batch(size=1, seed=51, bank_codes=("B002",))
    row = list(batch.rows[0])
    with engine.begin() as conn:
        conn.execute(
            insert(Card).values(
                card_no="OLD000019",
                bureau="R440100",
                id_type="01",
                id_no=row[APPLY.index("id_no")],
                name=row[APPLY.index("name")],
                bank_code="B002",
                pan=kept,
                pan_seq="01",
                status="1",
                issue_date="20200101",
                expiry_date="20300101",
            )
        )
    for field, value in (
        ("app_type", "06"),
        ("old_card_no", "OLD000019"),
        ("keep_account", "1"),
        ("replace_reason", "2"),
    ):
        row[APPLY.index(field)] = value
    data = render(batch.header, [row])
    batch = dataclasses.replace(
        batch, data=data, control=Control.for_bytes(batch.name, data, 1).render(), rows=[row]
    )
    write_batch(batch, trees["R440100"] / "pickup")
    assert [
        o.accepted
        for o in run_intake(LocalRemote(trees["R440100"]), engine, bureau_context(tmp_path))
    ] == [1]
    name = request_b002_accounts(engine)
    assert name is not None
    remote = LocalRemote(trees["B002"])
    deliver(remote, engine, store(), "sftp_b002", NOW)
    table, _ = read_all(DelimitedReader((trees["B002"] / "drop" / name).read_bytes(), ACCTOPEN))
    assert table.column("old_pan").to_pylist() == [kept]
    [req] = table.column("req_no").to_pylist()

    def answer(seq: int, pan: str) -> list[tuple[int, int]]:
        out = io.BytesIO()
        header = Header("ACCTOPENRSP", "B002", "B001", acctopen_batch_no(engine, seq), DAY, 1)
        write_delimited(out, ACCTOPENRSP, header, [[req, "00", "", "", pan, "02"]])
        answer = f"ACCTOPENRSP_B002_B001_{DAY}_{seq:03d}.txt"
        (trees["B002"] / "pickup" / answer).write_bytes(out.getvalue())
        control = Control.for_bytes(answer, out.getvalue(), 1).render()
        (trees["B002"] / "pickup" / f"{answer}.ok").write_bytes(control)
        outcomes = receive(
            remote,
            engine,
            inbox("B002", tmp_path),
            ACCTOPENRSP_FLOW,
            lambda conn, reader, landed, file_id: apply_account_answers(
                conn, reader, landed, file_id, DAY
            ),
        )
        return [(o.counts["applied"], o.counts["problems"]) for o in outcomes]

    # the holder keeps the bank card number (DOMAIN §5): another PAN is no answer to that
    assert answer(1, other) == [(0, 1)]
    with engine.connect() as conn:
        assert conn.execute(select(ApplicationState.status, ApplicationState.pan)).one() == (
            "partner_sent",
            None,
        )
        assert conn.execute(select(ReturnProblem.problem)).scalar_one() == (
            "pan differs from the kept old_pan"
        )
    assert answer(2, kept) == [(1, 0)]
    with engine.connect() as conn:
        assert conn.execute(select(ApplicationState.pan, ApplicationState.pan_seq)).one() == (
            kept,
            "02",
        )


def test_a_perso_whose_zip_name_is_taken_in_the_drop_is_not_sent_beside_the_other_zip(
    trees: dict[str, Path], engine: Engine, tmp_path: Path
) -> None:
    from transport.errors import PublishConflictError

    names = perso_to_f01(trees, engine, tmp_path, 2, 52)
    zip_name = names[0].replace(".txt", ".zip")
    stale = trees["F01"] / "drop" / zip_name
    stale.write_bytes(b"an older zip of the same name")
    (trees["F01"] / "drop" / f"{zip_name}.ok").write_bytes(
        Control.for_bytes(zip_name, stale.read_bytes(), 1).render()
    )

    with pytest.raises(PublishConflictError):
        deliver(LocalRemote(trees["F01"]), engine, store(), "sftp_f01", NOW)

    assert not (trees["F01"] / "drop" / names[0]).exists()
