"""Card servicing on the hub's database (SQLite by default, PostgreSQL in CI): STATUS and
CHANNEL lines as the ICD answers them, replacements both ways, partner cards, lapses,
BANKEVT, re-runs that change nothing, and no PIN block kept of a CHANNEL file."""

from __future__ import annotations

import hashlib
import io
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import Connection, Engine, inspect, text

from banking import audit, ledger
from banking.keystore import MemoryKeyStore
from banking.pin import PinContext, seal_pin_block
from exchange.answers import check_request_header, receive
from exchange.flows import Party, flow
from exchange.outbox import Drop
from exchange.pickup import FileOutcome, IntakeIncomplete, Landed, PartyInbox
from exchange.storage import Storage
from persistence import registry
from schemas.codec import DelimitedReader, Header, write_delimited
from schemas.files import Control
from schemas.layouts import BANKEVT, CHANNEL, LAYOUTS, STATUSRSP
from servicing import days, partner, requests
from servicing.requests import Ctx, answer_ready, apply_channel, apply_status
from sscard import servicing_jobs
from tests.support.cards import BUREAU, DAY, HUB, NOW, request_file, seed_card
from tests.support.races import held_open, race
from transport.local import LocalRemote

ZONE = bytes(range(32))
PVK = bytes(range(32, 64))
KEYS = MemoryKeyStore({("C01", 1): ZONE}, {"PVK1": PVK}, current="PVK1")
OP_TIME = "20261206100000"  # NOW in Asia/Shanghai
WINDOW = timedelta(minutes=10)


@pytest.fixture
def store(tmp_path: Path) -> Storage:
    return Storage(f"file://{tmp_path / 'store'}")


def status(
    engine: Engine, lines: list[tuple[str, ...]], seq: int = 1
) -> list[tuple[str, str, str]]:
    with engine.begin() as conn:
        file_id, reader = request_file(conn, "STATUS", BUREAU, lines, seq=seq)
        apply_status(conn, reader, Ctx(HUB, BUREAU, DAY, NOW, file_id))
        rows = conn.execute(
            text(
                "SELECT req_no, result, reason_code FROM service_line WHERE file_id = :f ORDER BY seq"
            ),
            {"f": file_id},
        ).all()
    return [(r.req_no, r.result, r.reason_code) for r in rows]


def channel(
    engine: Engine, lines: list[tuple[str, ...]], seq: int = 1
) -> list[tuple[str, str, str]]:
    with engine.begin() as conn:
        file_id, reader = request_file(conn, "CHANNEL", "C01", lines, seq=seq)
        apply_channel(conn, reader, Ctx(HUB, "C01", DAY, NOW, file_id), KEYS, NOW, WINDOW)
        rows = conn.execute(
            text(
                "SELECT req_no, result, reason_code FROM service_line WHERE file_id = :f ORDER BY seq"
            ),
            {"f": file_id},
        ).all()
    return [(r.req_no, r.result, r.reason_code) for r in rows]


def block(
    pin: str, req_no: str, op: str, pan: str, card_no: str, op_time: str = OP_TIME, **kw: object
) -> str:
    ctx = PinContext(req_no=req_no, op=op, pan=pan, card_no=card_no, op_time=op_time, sender="C01")
    return seal_pin_block(pin, ctx, 1, ZONE, **kw)  # type: ignore[arg-type]


def ch(
    req_no: str,
    op: str,
    made,
    pin: str | None = None,
    *,
    pan: str | None = None,
    name: str | None = None,
    raw_block: str | None = None,
    op_time: str = OP_TIME,
) -> tuple[str, ...]:  # type: ignore[no-untyped-def]
    pan = pan or made.pan
    identity = op in ("E1", "A1", "P1", "P2", "L2")
    blk = (
        raw_block
        if raw_block is not None
        else (block(pin, req_no, op, pan, made.card_no, op_time) if pin else "")
    )
    return (
        req_no,
        op,
        pan,
        made.card_no,
        made.id_no if identity else "",
        (name or made.name) if identity else "",
        blk,
        op_time,
        "440101001",
        "T0001",
    )


def card_row(engine: Engine, card_no: str):  # type: ignore[no-untyped-def]
    with engine.connect() as conn:
        return conn.execute(text("SELECT * FROM card WHERE card_no = :c"), {"c": card_no}).one()


def account_row(engine: Engine, pan: str):  # type: ignore[no-untyped-def]
    with engine.connect() as conn:
        return conn.execute(text("SELECT * FROM account WHERE pan = :p"), {"p": pan}).one()


def events(engine: Engine) -> list[tuple[str, str, str]]:
    with engine.connect() as conn:
        return [
            (r.op, r.card_no, r.channel)
            for r in conn.execute(text("SELECT op, card_no, channel FROM bank_event ORDER BY id"))
        ]


def credit(engine: Engine, pan: str, fen: int, key: str = "seed") -> None:
    with engine.begin() as conn:
        ledger.post(
            conn,
            f"credit:{key}",
            "credit",
            DAY,
            [ledger.Leg("SETTLEMENT", -fen), ledger.Leg(pan, fen)],
            NOW,
        )


def st(req_no: str, op: str, made, **kw: str) -> tuple[str, ...]:  # type: ignore[no-untyped-def]
    return (
        req_no,
        op,
        made.card_no,
        kw.get("id_no", made.id_no),
        kw.get("name", made.name),
        OP_TIME,
        "WINDOW1",
        "",
    )


# --------------------------------------------------------------------------- STATUS


def test_status_lines_apply_in_seq_order_each_seeing_the_lines_before(engine: Engine) -> None:
    with engine.begin() as conn:
        a = seed_card(conn, 1)
        b = seed_card(conn, 2, status="0")
        c = seed_card(conn, 3)
        seed_card(
            conn,
            4,
            old_card_no="C00000003",
            app_type="06",
            keep_account="1",
            pan=c.pan,
            pan_seq="02",
            app_state="perso_sent",
        )
        c3 = seed_card(conn, 5, status="4")
    answers = status(
        engine,
        [
            st("R1", "01", a),  # 1 -> 4
            st("R2", "01", a),  # already 4: 02
            st("R3", "02", a),  # 4 -> 2
            st("R4", "03", a),  # 2 -> 1
            st("R5", "11", b),  # 0 -> 1
            st("R6", "11", b),  # already: 02
            st("R7", "03", b),  # normal: already 02
            st("R8", "02", c),  # 1 -> 2
            st("R9", "03", c),  # unblock while a replacement is under way: E121
            ("R10", "01", "ZZZZZZZZZ", a.id_no, a.name, OP_TIME, "W", ""),  # unknown: E119
            st("R11", "01", c3, name="李四"),  # identity: E132
            st("R12", "04", c3),  # 4 -> 9
            st("R13", "01", c3),  # cancelled: E120
            st("R1", "01", a),  # key repeated within the file: E107
        ],
    )
    assert answers == [
        ("R1", "00", ""),
        ("R2", "02", ""),
        ("R3", "00", ""),
        ("R4", "00", ""),
        ("R5", "00", ""),
        ("R6", "02", ""),
        ("R7", "02", ""),
        ("R8", "00", ""),
        ("R9", "01", "E121"),
        ("R10", "01", "E119"),
        ("R11", "01", "E132"),
        ("R12", "00", ""),
        ("R13", "01", "E120"),
        ("R1", "01", "E107"),
    ]
    assert card_row(engine, a.card_no).status == "1"
    assert card_row(engine, c.card_no).status == "2"
    assert account_row(engine, c.pan).loss == "formal"
    assert card_row(engine, c3.card_no).status == "9"
    # the bureau's own ops are answered in STATUSRSP, not repeated in BANKEVT (ICD §5.8)
    assert events(engine) == []
    with engine.connect() as conn:
        assert audit.verify(conn).first_bad is None


def test_a_req_no_sent_again_repeats_its_first_answer_and_other_content_is_e107(
    engine: Engine,
) -> None:
    with engine.begin() as conn:
        a = seed_card(conn, 1)
    assert status(engine, [st("R1", "01", a)]) == [("R1", "00", "")]
    assert status(engine, [st("R1", "01", a), st("R2", "01", a)], seq=2) == [
        ("R1", "00", ""),
        ("R2", "02", ""),
    ]
    assert status(engine, [st("R1", "02", a)], seq=3) == [("R1", "01", "E107")]
    assert card_row(engine, a.card_no).status == "4"


def test_statusrsp_has_one_line_per_status_line_in_order(
    engine: Engine, store: Storage, tmp_path: Path
) -> None:
    with engine.begin() as conn:
        a = seed_card(conn, 1)
    status(
        engine, [st("R1", "01", a), ("R2", "01", "ZZZZZZZZZ", a.id_no, a.name, OP_TIME, "W", "")]
    )
    with engine.begin() as conn:
        names = answer_ready(
            conn, "STATUS", BUREAU, Drop("sftp_r440100", "drop", NOW, store), "GB18030", tmp_path
        )
        assert (
            answer_ready(
                conn,
                "STATUS",
                BUREAU,
                Drop("sftp_r440100", "drop", NOW, store),
                "GB18030",
                tmp_path,
            )
            == []
        )
        data = conn.execute(
            text("SELECT data FROM outbound_file WHERE name = :n"), {"n": names[0]}
        ).scalar_one()
    assert names == [f"STATUSRSP_{HUB}_{BUREAU}_{DAY}_001.txt"]
    reader = DelimitedReader(io.BytesIO(data), STATUSRSP, "GB18030", 100, 2)
    rows = [
        list(r)
        for chunk in reader.chunks()
        for r in zip(*(chunk.strings(n) for n in ("req_no", "result", "reason_code")))
    ]
    assert rows == [["R1", "00", ""], ["R2", "01", "E119"]]


# --------------------------------------------------------------------------- CHANNEL


def test_channel_requests_answer_as_the_icd_says(engine: Engine) -> None:
    with engine.begin() as conn:
        sealed = seed_card(conn, 1, status="0")
        normal = seed_card(conn, 2)
        other = seed_card(conn, 3)
        at_partner = seed_card(conn, 4, bank_code="B002", pan="6220020000000000003")
        fresh = seed_card(conn, 5, status="0")
    replay = block("802614", "X9", "A1", normal.pan, normal.card_no)
    answers = channel(
        engine,
        [
            ch("Q1", "A1", sealed, "802614"),  # activation before enable: E120
            ch("Q2", "E1", sealed, "802614"),  # enable + activate
            ch("Q3", "A1", sealed, "731592"),  # already active: 02
            ch("Q4", "A1", normal, "111111"),  # weak: E131
            ch("Q5", "A1", normal, "123456"),  # weak: E131
            ch("Q6", "A1", normal, normal.card_no[-6:]),  # weak: E131
            ch("Q7", "A1", normal, "802614", name="王五"),  # identity: E132
            ch("Q8", "A1", normal, raw_block="zz"),  # malformed: E130
            ch("Q9", "P1", other, "802614"),  # never activated: E120
            ch("Q10", "P2", normal),  # not locked: 02
            ch("Q11", "L1", normal, pan=other.pan),  # the pan is not the card's: E119
            ch("Q12", "L1", at_partner),  # a partner's account: E119
            ch("Q13", "L1", normal),  # 1 -> 4 at the bank
            ch("Q14", "A1", normal, "802614", op_time="20261206094000"),  # 20 minutes old: E130
            ch("Q15", "E1", fresh),  # enable, no PIN: account stays preopened
        ],
    )
    assert answers == [
        ("Q1", "01", "E120"),
        ("Q2", "00", ""),
        ("Q3", "02", ""),
        ("Q4", "01", "E131"),
        ("Q5", "01", "E131"),
        ("Q6", "01", "E131"),
        ("Q7", "01", "E132"),
        ("Q8", "01", "E130"),
        ("Q9", "01", "E120"),
        ("Q10", "02", ""),
        ("Q11", "01", "E119"),
        ("Q12", "01", "E119"),
        ("Q13", "00", ""),
        ("Q14", "01", "E130"),
        ("Q15", "00", ""),
    ]
    assert account_row(engine, sealed.pan).status == "active"
    assert account_row(engine, fresh.pan).status == "preopened"
    assert card_row(engine, normal.card_no).status == "4"
    assert card_row(engine, normal.card_no).status_by == "C01"
    assert events(engine) == [
        ("11", sealed.card_no, "C01"),
        ("21", sealed.card_no, "C01"),
        ("01", normal.card_no, "C01"),
        ("11", fresh.card_no, "C01"),
    ]
    # a replayed block (its nonce seen in an earlier file) is E130 however valid it is
    with engine.begin() as conn:
        conn.execute(text("UPDATE card SET status = '1' WHERE card_no = :c"), {"c": normal.card_no})
    first = channel(engine, [ch("X9", "A1", normal, raw_block=replay)], seq=2)
    again = channel(engine, [ch("X9B", "A1", normal, raw_block=replay)], seq=3)
    assert first == [("X9", "00", "")]
    assert again == [("X9B", "01", "E130")]


def test_a_pin_reset_refuses_the_previous_pin_and_stores_only_a_keyed_value(engine: Engine) -> None:
    with engine.begin() as conn:
        made = seed_card(conn, 1)
    assert channel(engine, [ch("Q1", "A1", made, "802614")]) == [("Q1", "00", "")]
    assert channel(engine, [ch("Q2", "P1", made, "802614")], seq=2) == [("Q2", "01", "E131")]
    assert channel(engine, [ch("Q3", "P1", made, "590371")], seq=3) == [("Q3", "00", "")]
    with engine.connect() as conn:
        value = conn.execute(text("SELECT key_id, value FROM pin_verification")).one()
    assert value.key_id == "PVK1" and "590371" not in value.value and len(value.value) == 64


def channel_pickup(server: Path, lines: list[tuple[str, ...]]) -> None:
    """A CHANNEL file of C01 put complete (with its ``.ok``) in C01's pickup."""
    name = f"CHANNEL_C01_{HUB}_{DAY}_001.txt"
    header = Header("CHANNEL", "C01", HUB, f"CHA{DAY}001", DAY, len(lines))
    buf = io.BytesIO()
    write_delimited(buf, LAYOUTS["CHANNEL"], header, lines, "GB18030")
    (server / "pickup" / name).write_bytes(buf.getvalue())
    control = Control.for_bytes(name, buf.getvalue(), len(lines)).render()
    (server / "pickup" / f"{name}.ok").write_bytes(control)


def channelrsp(server: Path) -> list[tuple[str, str, str]]:
    """The CHANNELRSP lines in C01's drop: (req_no, result, reason_code)."""
    (answer,) = sorted((server / "drop").glob("CHANNELRSP_*.txt"))
    rows = [line.split("|") for line in answer.read_text("gb18030").splitlines()]
    return [(r[2], r[3], r[4]) for r in rows if r[0] == "D"]


def test_the_pin_window_runs_from_when_the_file_was_first_found_not_from_the_run_taking_it(
    engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = tmp_path / "sftp"
    (server / "pickup").mkdir(parents=True)
    (server / "drop").mkdir()
    monkeypatch.setenv("SSCARD_STORAGE_URL", str(tmp_path / "store"))
    monkeypatch.setattr(servicing_jobs, "_remote", lambda connection: LocalRemote(server))
    with engine.begin() as conn:
        fresh = seed_card(conn, 1)
        stale = seed_card(conn, 2)
    # found at NOW (10:00): one block sealed at 09:55, one at 09:45
    channel_pickup(
        server,
        [
            ch("Q1", "A1", fresh, "802614", op_time="20261206095500"),
            ch("Q2", "A1", stale, "802614", op_time="20261206094500"),
        ],
    )
    # the run at 10:00 cannot take it: the PIN verification key is missing
    no_pvk = MemoryKeyStore({("C01", 1): ZONE}, {})
    monkeypatch.setattr(servicing_jobs, "key_store", lambda: no_pvk)
    with pytest.raises(IntakeIncomplete):
        servicing_jobs.channel_requests("C01", NOW, None)
    assert not list((server / "drop").glob("CHANNELRSP_*"))

    # the key store is fixed; the run at 10:30 takes the file, and is cleared and run again
    monkeypatch.setattr(servicing_jobs, "key_store", lambda: KEYS)
    later = NOW + timedelta(minutes=30)
    servicing_jobs.channel_requests("C01", later, None)
    answered = channelrsp(server)
    servicing_jobs.channel_requests("C01", later, None)

    assert answered == [("Q1", "00", ""), ("Q2", "01", "E130")]
    assert channelrsp(server) == answered
    assert account_row(engine, fresh.pan).status == "active"
    assert account_row(engine, stale.pan).status == "preopened"


# --------------------------------------------------------------------------- replacement


def _replacement(engine: Engine, keep: str, balance: int) -> tuple:  # type: ignore[type-arg]
    with engine.begin() as conn:
        old = seed_card(conn, 1, status="2", account_status="active")
        new = seed_card(
            conn,
            2,
            status="0",
            app_type="05",
            old_card_no=old.card_no,
            keep_account=keep,
            id_no=old.id_no,
            pan=old.pan if keep == "1" else None,
            pan_seq="02" if keep == "1" else "01",
        )
    credit(engine, old.pan, balance)
    return old, new


def test_a_replacement_moving_the_balance_moves_it_once_when_the_new_card_is_enabled(
    engine: Engine,
) -> None:
    old, new = _replacement(engine, "0", 123_456)
    assert status(engine, [st("R1", "11", new)]) == [("R1", "00", "")]
    assert card_row(engine, old.card_no).status == "9"
    assert account_row(engine, old.pan).status == "closed"
    with engine.connect() as conn:
        assert ledger.balance(conn, old.pan) == 0
        assert ledger.balance(conn, new.pan) == 123_456
        assert ledger.check(conn).ok()
    assert events(engine) == [("04", old.card_no, "AUTO")]
    # the end-of-day sweep and a second run find nothing left to do
    assert days.finish_replacements(engine, HUB, DAY, NOW) == 0
    with engine.connect() as conn:
        assert ledger.balance(conn, new.pan) == 123_456
        assert conn.execute(text("SELECT kind, moved_fen FROM replacement")).one() == (
            "moved",
            123_456,
        )


def test_a_replacement_cut_short_half_way_leaves_nothing_and_finishes_once_later(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    old, new = _replacement(engine, "0", 5_000)

    def crash(*args: object, **kwargs: object) -> int:
        raise RuntimeError("worker killed")

    # the balance is moved, then the process dies before the audit records are written
    monkeypatch.setattr(audit, "append", crash)
    with pytest.raises(RuntimeError):
        status(engine, [st("R1", "11", new)])
    monkeypatch.undo()
    assert card_row(engine, old.card_no).status == "2"
    assert card_row(engine, new.card_no).status == "0"
    with engine.connect() as conn:
        assert ledger.balance(conn, old.pan) == 5_000
        assert conn.execute(text("SELECT COUNT(*) FROM replacement")).scalar_one() == 0
    assert status(engine, [st("R1", "11", new)]) == [("R1", "00", "")]
    assert status(engine, [st("R1", "11", new)], seq=2) == [("R1", "00", "")]
    with engine.connect() as conn:
        assert ledger.balance(conn, new.pan) == 5_000
        assert (
            conn.execute(
                text("SELECT COUNT(*) FROM ledger_txn WHERE kind = 'balance_move'")
            ).scalar_one()
            == 1
        )


def test_a_replacement_keeping_the_number_leaves_the_account_and_follows_the_new_card(
    engine: Engine,
) -> None:
    old, new = _replacement(engine, "1", 7_700)
    with engine.begin() as conn:
        conn.execute(text("UPDATE account SET loss = 'formal' WHERE pan = :p"), {"p": old.pan})
    assert channel(engine, [ch("Q1", "E1", new)]) == [("Q1", "00", "")]
    assert card_row(engine, old.card_no).status == "9"
    acct = account_row(engine, old.pan)
    assert (acct.status, acct.loss, acct.credit_blocked) == ("active", "none", False)
    with engine.connect() as conn:
        assert ledger.balance(conn, old.pan) == 7_700
    # a loss of the old, cancelled card would no longer touch the account: it is the new one's
    assert status(engine, [st("R2", "02", old)]) == [("R2", "01", "E120")]
    assert events(engine) == [("11", new.card_no, "C01"), ("04", old.card_no, "AUTO")]


def test_cancelling_a_card_whose_number_goes_on_nowhere_blocks_credits_and_closes_at_zero(
    engine: Engine,
) -> None:
    with engine.begin() as conn:
        empty = seed_card(conn, 1)
        funded = seed_card(conn, 2)
    credit(engine, funded.pan, 100)
    assert status(engine, [st("R1", "04", empty), st("R2", "04", funded)]) == [
        ("R1", "00", ""),
        ("R2", "00", ""),
    ]
    assert (
        account_row(engine, empty.pan).status,
        account_row(engine, empty.pan).credit_blocked,
    ) == ("closed", True)
    assert (
        account_row(engine, funded.pan).status,
        account_row(engine, funded.pan).credit_blocked,
    ) == ("preopened", True)
    # the holder withdraws the balance at a counter; the end of day closes the account
    with engine.begin() as conn:
        ledger.post(
            conn,
            "counter:1",
            "withdrawal",
            DAY,
            [ledger.Leg(funded.pan, -100), ledger.Leg("SETTLEMENT", 100)],
            NOW,
        )
    assert days.close_emptied_accounts(engine, HUB, DAY, NOW) == 1
    assert account_row(engine, funded.pan).status == "closed"


# --------------------------------------------------------------------------- partner banks


def test_a_partner_card_op_is_forwarded_and_answered_when_the_partner_answers(
    engine: Engine, store: Storage, tmp_path: Path
) -> None:
    with engine.begin() as conn:
        made = seed_card(conn, 1, bank_code="B002", pan="6220020000000000003")
        done = seed_card(conn, 2, bank_code="B002", pan="6220020000000000011", status="4")
    assert status(engine, [st("R1", "01", made), st("R2", "01", done)]) == [
        ("R1", None, ""),
        ("R2", "02", ""),
    ]
    drop = Drop("sftp_r440100", "drop", NOW, store)
    with engine.begin() as conn:
        assert answer_ready(conn, "STATUS", BUREAU, drop, "GB18030", tmp_path) == []
    name = partner.send_status_requests(
        engine,
        hub=HUB,
        bank_code="B002",
        dest=Drop("sftp_b002", "drop", NOW, store),
        encoding="GB18030",
        business_date=DAY,
        work_dir=tmp_path,
    )
    assert name == f"STATUS_{HUB}_B002_{DAY}_001.txt"
    with engine.connect() as conn:
        (req_no,) = conn.execute(text("SELECT req_no FROM partner_status")).one()
    with engine.begin() as conn:
        _, reader = request_file(conn, "STATUSRSP", "B002", [(req_no, "00", "", "")])
        partner.apply_status_answers(
            conn, reader, hub=HUB, bank_code="B002", business_date=DAY, now=NOW, file_name="X"
        )
        assert answer_ready(conn, "STATUS", BUREAU, drop, "GB18030", tmp_path) == [
            f"STATUSRSP_{HUB}_{BUREAU}_{DAY}_001.txt"
        ]
    assert card_row(engine, made.card_no).status == "4"


def test_a_partner_that_does_not_answer_gets_e140_at_partner_wait(
    engine: Engine, store: Storage, tmp_path: Path
) -> None:
    with engine.begin() as conn:
        made = seed_card(conn, 1, bank_code="B002", pan="6220020000000000003")
    status(engine, [st("R1", "01", made)])
    partner.send_status_requests(
        engine,
        hub=HUB,
        bank_code="B002",
        dest=Drop("sftp_b002", "drop", NOW, store),
        encoding="GB18030",
        business_date=DAY,
        work_dir=tmp_path,
    )
    # sent on Sunday the 6th: it waits one business day, to the end of Monday the 7th (to
    # the end of Tuesday when Monday is a holiday)
    assert partner.expire_status_requests(engine, "B002", 1, DAY) == 0
    assert partner.expire_status_requests(engine, "B002", 1, "20261207") == 0
    assert partner.expire_status_requests(engine, "B002", 1, "20261208", ["20261207"]) == 0
    assert partner.expire_status_requests(engine, "B002", 1, "20261208") == 1
    with engine.connect() as conn:
        assert conn.execute(text("SELECT result, reason_code FROM service_line")).one() == (
            "01",
            "E140",
        )
    assert card_row(engine, made.card_no).status == "1"


# --------------------------------------------------------------------------- end of day


def test_temporary_losses_lapse_after_their_days_as_bankevt_03_auto(engine: Engine) -> None:
    with engine.begin() as conn:
        bank = seed_card(conn, 1)
        bureau = seed_card(conn, 2)
    channel(engine, [ch("Q1", "L1", bank)])
    status(engine, [st("R1", "01", bureau)])
    lapse = lambda day: days.lapse_temporary_losses(  # noqa: E731
        engine, HUB, BUREAU, day, NOW, temp_loss_days=15, bank_temp_loss_days=5
    )
    assert lapse("20261210") == 0
    assert lapse("20261211") == 1  # five calendar days after a loss at the bank
    assert lapse("20261211") == 0
    assert lapse("20261221") == 1  # fifteen after the bureau's
    assert [e[0:3:2] for e in events(engine)] == [("01", "C01"), ("03", "AUTO"), ("03", "AUTO")]


def test_bankevt_is_written_every_business_day_once_with_every_event_once(
    engine: Engine, store: Storage, tmp_path: Path
) -> None:
    with engine.begin() as conn:
        made = seed_card(conn, 1)
    drop = Drop("sftp_r440100", "drop", NOW, store)

    def write(day: str) -> str | None:
        return days.write_bankevt(
            engine,
            hub=HUB,
            bureau=BUREAU,
            dest=drop,
            encoding="GB18030",
            business_date=day,
            work_dir=tmp_path,
        )

    channel(engine, [ch("Q1", "L1", made), ch("Q2", "L3", made)])
    first = write(DAY)
    assert write(DAY) is None
    empty = write("20261207")
    with engine.connect() as conn:
        data = dict(conn.execute(text("SELECT name, data FROM outbound_file")).all())
    reader = DelimitedReader(io.BytesIO(data[first]), BANKEVT, "GB18030", 100, 2)
    ops = next(
        list(zip(c.strings("op"), c.strings("channel"), c.strings("id_no")))
        for c in reader.chunks()
    )
    assert ops == [("01", "C01", made.id_no), ("03", "C01", made.id_no)]
    assert (
        DelimitedReader(io.BytesIO(data[empty]), BANKEVT, "GB18030", 100, 0).header.record_count
        == 0
    )


def test_nothing_pin_related_is_kept_in_any_table(engine: Engine) -> None:
    with engine.begin() as conn:
        made = seed_card(conn, 1, status="0")
    pin = "802614"
    channel(engine, [ch("Q1", "E1", made, pin)])
    with engine.connect() as conn:
        for table in (
            "service_line",
            "audit_record",
            "pin_verification",
            "pin_nonce",
            "bank_event",
            "account",
            "card",
        ):
            for row in conn.execute(text(f"SELECT * FROM {table}")):
                assert pin not in "|".join(str(v) for v in row), table


# --------------------------------------------------------------------------- kept copies


def channel_inbox(tmp_path: Path, store: Storage) -> PartyInbox:
    return PartyInbox(
        "sftp_c01", "C01", HUB, "pickup", "drop", "GB18030", DAY, NOW, tmp_path / "work", store
    )


def send_channel(server: Path, lines: list[tuple[str, ...]], day: str = DAY) -> tuple[str, bytes]:
    """A CHANNEL file published by channel C01 into its pickup: its name and bytes."""
    name = f"CHANNEL_C01_{HUB}_{day}_001.txt"
    out = io.BytesIO()
    write_delimited(out, CHANNEL, Header("CHANNEL", "C01", HUB, "CH1", day, len(lines)), lines)
    LocalRemote(server).publish("pickup", name, out.getvalue(), len(lines))
    return name, out.getvalue()


def take_channel(server: Path, engine: Engine, inbox: PartyInbox) -> list[FileOutcome]:
    """One run of the channel's intake over its pickup."""

    def handler(
        conn: Connection, reader: DelimitedReader, landed: Landed, file_id: int
    ) -> dict[str, int]:
        return apply_channel(conn, reader, Ctx(HUB, "C01", DAY, NOW, file_id), KEYS, NOW, WINDOW)

    return receive(
        LocalRemote(server),
        engine,
        inbox,
        flow("CHANNEL", Party.CHANNEL),
        handler,
        check_header=check_request_header,
    )


def where_found(engine: Engine, places: list[Path], blocks: list[str]) -> list[str]:
    """Every file under ``places`` and every table holding a PIN block of ``blocks`` (or
    its ciphertext and tag), as hex or as bytes."""
    needles = [n for b in blocks for n in (b, b[26:])]
    as_bytes = [n.encode() for n in needles] + [bytes.fromhex(n) for n in needles]
    found = [
        str(p)
        for place in places
        for p in place.rglob("*")
        if p.is_file() and any(n in p.read_bytes() for n in as_bytes)
    ]
    with engine.connect() as conn:
        for table in inspect(conn).get_table_names():
            for row in conn.execute(text(f"SELECT * FROM {table}")):
                dump = "|".join(str(v) for v in row)
                raw = b"".join(v for v in row if isinstance(v, bytes | memoryview))
                if any(n in dump for n in needles) or any(n in bytes(raw) for n in as_bytes):
                    found.append(table)
    return found


@pytest.fixture
def server(tmp_path: Path) -> Path:
    (tmp_path / "sftp" / "pickup").mkdir(parents=True)
    (tmp_path / "sftp" / "drop").mkdir()
    return tmp_path / "sftp"


def test_a_processed_channel_file_leaves_its_pin_blocks_nowhere_and_is_still_known_again(
    engine: Engine, store: Storage, server: Path, tmp_path: Path
) -> None:
    with engine.begin() as conn:
        sealed = seed_card(conn, 1, status="0")
        normal = seed_card(conn, 2)
    lines = [ch("Q1", "E1", sealed, "802614"), ch("Q2", "A1", normal, "590371")]
    blocks = [line[6] for line in lines]
    name, sent = send_channel(server, lines)
    inbox = channel_inbox(tmp_path, store)

    taken = take_channel(server, engine, inbox)

    assert [(o.outcome, o.accepted) for o in taken] == [("accepted", 2)]
    assert account_row(engine, normal.pan).status == "active"
    assert where_found(engine, [tmp_path / "store", tmp_path / "work"], blocks) == []
    with engine.connect() as conn:
        row = conn.execute(
            text("SELECT sha256, size, local_path FROM received_file WHERE name = :n"), {"n": name}
        ).one()
    assert row.sha256 == hashlib.sha256(sent).hexdigest() and row.size == len(sent)
    masked = sent
    for b in blocks:
        masked = masked.replace(b.encode(), b"*" * len(b))
    assert store.read_bytes(row.local_path) == masked
    # the counterparty's own archive keeps what it sent (ICD §2): the hub does not touch it
    assert (server / "pickup" / "archive" / DAY / name).read_bytes() == sent

    (server / "pickup" / "archive" / DAY / name).unlink()
    (server / "pickup" / "archive" / DAY / f"{name}.ok").unlink()
    send_channel(server, lines)
    again = take_channel(server, engine, inbox)

    assert [o.outcome for o in again] == ["redelivered"]
    assert where_found(engine, [tmp_path / "store", tmp_path / "work"], blocks) == []


def test_a_run_cut_short_after_keeping_its_copy_takes_the_file_from_the_pickup_again(
    engine: Engine, store: Storage, server: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with engine.begin() as conn:
        made = seed_card(conn, 1)
    lines = [ch("Q1", "A1", made, "590371")]
    send_channel(server, lines)
    inbox = channel_inbox(tmp_path, store)
    record = registry.update_file

    def crash(*args: object, **kwargs: object) -> None:
        if "local_path" not in kwargs:  # the file's outcome, before its copy is kept
            return record(*args, **kwargs)  # type: ignore[arg-type]
        # the copy has been kept (the argument is evaluated): the worker dies before commit
        raise RuntimeError("the worker died before its commit")

    monkeypatch.setattr(registry, "update_file", crash)
    cut_short = take_channel(server, engine, inbox)
    kept_meanwhile = store.keys("received")
    left_meanwhile = where_found(engine, [tmp_path / "store", tmp_path / "work"], [lines[0][6]])
    monkeypatch.setattr(registry, "update_file", record)
    taken = take_channel(server, engine, inbox)

    assert [o.outcome for o in cut_short] == ["failed"]
    assert len(kept_meanwhile) == 1 and left_meanwhile == []
    assert [(o.outcome, o.accepted) for o in taken] == [("accepted", 1)]
    assert account_row(engine, made.pan).status == "active"


def test_a_channel_file_rejected_as_a_whole_keeps_no_pin_block_either(
    engine: Engine, store: Storage, server: Path, tmp_path: Path
) -> None:
    with engine.begin() as conn:
        made = seed_card(conn, 1)
    lines = [ch("Q1", "A1", made, "590371")]
    send_channel(server, lines, day="20261205")  # dated before the business day: F04

    taken = take_channel(server, engine, channel_inbox(tmp_path, store))

    assert [(o.outcome, o.file_code) for o in taken] == [("rejected", "F04")]
    assert len(store.keys("received")) == 1
    assert where_found(engine, [tmp_path / "store", tmp_path / "work"], [lines[0][6]]) == []


def test_a_new_account_at_another_bank_leaves_the_old_one_credit_blocked_until_it_is_emptied(
    engine: Engine,
) -> None:
    with engine.begin() as conn:
        old = seed_card(conn, 1, status="2", account_status="active")
        new = seed_card(
            conn,
            2,
            status="0",
            app_type="05",
            old_card_no=old.card_no,
            keep_account="0",
            id_no=old.id_no,
            bank_code="B002",
            pan="6220020000000000003",
        )
    credit(engine, old.pan, 900)
    assert status(engine, [st("R1", "11", new)]) == [("R1", None, "")]  # forwarded to B002
    # the partner agrees: the new card is enabled, the replacement finished at the end of day
    with engine.begin() as conn:
        (req_no,) = conn.execute(text("SELECT req_no FROM partner_status")).one()
        _, reader = request_file(conn, "STATUSRSP", "B002", [(req_no, "00", "", "")])
        partner.apply_status_answers(
            conn, reader, hub=HUB, bank_code="B002", business_date=DAY, now=NOW, file_name="X"
        )
    assert days.finish_replacements(engine, HUB, DAY, NOW) == 1
    assert card_row(engine, old.card_no).status == "9"
    acct = account_row(engine, old.pan)
    with engine.connect() as conn:
        assert (acct.status, acct.credit_blocked, ledger.balance(conn, old.pan)) == (
            "active",
            True,
            900,
        )
    with engine.connect() as conn:
        assert conn.execute(text("SELECT kind FROM replacement")).scalar_one() == "elsewhere"


def test_the_cancellation_of_a_replaced_partner_card_is_forwarded_to_the_partner(
    engine: Engine,
) -> None:
    with engine.begin() as conn:
        old = seed_card(conn, 1, status="2", bank_code="B002", pan="6220020000000000003")
        new = seed_card(
            conn,
            2,
            status="0",
            app_type="05",
            old_card_no=old.card_no,
            keep_account="0",
            id_no=old.id_no,
        )
    assert status(engine, [st("R1", "11", new)]) == [("R1", "00", "")]
    assert card_row(engine, old.card_no).status == "9"
    with engine.connect() as conn:
        fwd = conn.execute(text("SELECT op, card_no, channel, op_time FROM partner_status")).one()
    assert tuple(fwd) == ("04", old.card_no, "AUTO", OP_TIME)
    assert events(engine) == [("04", old.card_no, "AUTO")]


# --------------------------------------------------------------------------- found in review


def test_a_replacing_card_cancelled_while_sealed_leaves_the_old_card_and_its_money(
    engine: Engine,
) -> None:
    """DOMAIN §5: the old card goes on until its replacement is enabled. A new card the
    bureau cancels while still sealed was never enabled: the end of day does not cancel
    the old card nor move its balance into the new card's closed account."""
    with engine.begin() as conn:
        old = seed_card(conn, 1, status="1", account_status="active")
        new = seed_card(
            conn,
            2,
            status="0",
            app_type="07",
            old_card_no=old.card_no,
            keep_account="0",
            id_no=old.id_no,
        )
    credit(engine, old.pan, 50_000)
    assert status(engine, [st("R1", "04", new)]) == [("R1", "00", "")]
    assert days.finish_replacements(engine, HUB, DAY, NOW) == 0
    assert card_row(engine, old.card_no).status == "1"
    with engine.connect() as conn:
        assert (ledger.balance(conn, old.pan), ledger.balance(conn, new.pan)) == (50_000, 0)
    assert account_row(engine, old.pan).status == "active"
    # nor is the old card still being replaced: its holder's loss can be lifted (no E121)
    assert status(engine, [st("R2", "01", old), st("R3", "03", old)], seq=2) == [
        ("R2", "00", ""),
        ("R3", "00", ""),
    ]


def test_channel_codes_of_ten_characters_are_kept_on_both_databases(engine: Engine) -> None:
    """ICD §5.7, §5.8: a STATUS or BANKEVT channel is up to 10 characters; a forwarded op
    and a relayed partner event keep it (PostgreSQL refused more than 8)."""
    with engine.begin() as conn:
        made = seed_card(conn, 1, bank_code="B002", pan="6220020000000000003")
    line = ("R1", "01", made.card_no, made.id_no, made.name, OP_TIME, "WINDOW1234", "")
    assert status(engine, [line]) == [("R1", None, "")]
    with engine.begin() as conn:
        _, reader = request_file(
            conn,
            "BANKEVT",
            "B002",
            [("EV1", "01", made.card_no, made.id_no, OP_TIME, "COUNTER001")],
        )
        out = partner.relay_partner_events(
            conn, reader, hub=HUB, bank_code="B002", business_date=DAY, now=NOW, file_name="X"
        )
    assert out["applied"] == 1
    with engine.connect() as conn:
        kept = conn.execute(text("SELECT channel FROM partner_status")).scalars().all()
    assert kept == ["WINDOW1234"]


def test_a_channel_line_answers_its_first_failing_field_though_a_later_one_fails_too(
    engine: Engine,
) -> None:
    with engine.begin() as conn:
        made = seed_card(conn, 1)
    wrong_holder = list(ch("Q1", "L2", made))
    wrong_holder[4] = "440103199001019999"  # id_no: E132 …
    wrong_holder[9] = "T-1"  # … before a malformed teller
    bad_block = list(ch("Q2", "A1", made, raw_block="00" * 40))  # no such block: E130 …
    bad_block[9] = "T-2"  # … before a malformed teller
    assert channel(engine, [tuple(wrong_holder), tuple(bad_block)]) == [
        ("Q1", "01", "E132"),
        ("Q2", "01", "E130"),
    ]


def test_a_status_on_another_bureaus_card_is_e119_whatever_else_fails(engine: Engine) -> None:
    with engine.begin() as conn:
        made = seed_card(conn, 1)
    with engine.begin() as conn:
        file_id, reader = request_file(
            conn,
            "STATUS",
            "R440200",
            [("R1", "01", made.card_no, "123", made.name, OP_TIME, "W-1", "")],
        )
        apply_status(conn, reader, Ctx(HUB, "R440200", DAY, NOW, file_id))
        answer = conn.execute(
            text("SELECT result, reason_code FROM service_line WHERE file_id = :f"), {"f": file_id}
        ).one()
    assert tuple(answer) == ("01", "E119")


def test_partner_answers_never_take_a_card_out_of_cancellation_nor_apply_twice(
    engine: Engine,
) -> None:
    """A late 00 to a temporary loss after the card's cancellation was answered is not
    applied (a cancelled card stays cancelled, DOMAIN §2); one req_no answered twice in a
    file keeps its first answer (the second is a return problem)."""
    with engine.begin() as conn:
        lost = seed_card(conn, 1, bank_code="B002", pan="6220020000000000003")
        other = seed_card(conn, 2, bank_code="B002", pan="6220020000000000011")
    assert status(engine, [st("R1", "01", lost), st("R3", "01", other)]) == [
        ("R1", None, ""),
        ("R3", None, ""),
    ]
    assert status(engine, [st("R2", "04", lost)], seq=2) == [("R2", None, "")]
    with engine.connect() as conn:
        reqs = dict(conn.execute(text("SELECT card_no || op, req_no FROM partner_status")).all())
    first_loss, cancel = reqs[lost.card_no + "01"], reqs[lost.card_no + "04"]
    twice = reqs[other.card_no + "01"]
    with engine.begin() as conn:
        _, reader = request_file(
            conn,
            "STATUSRSP",
            "B002",
            [(cancel, "00", "", ""), (twice, "01", "E120", "x"), (twice, "00", "", "")],
            seq=3,
        )
        done = partner.apply_status_answers(
            conn, reader, hub=HUB, bank_code="B002", business_date=DAY, now=NOW, file_name="X"
        )
    assert (done["applied"], done["problems"]) == (2, 1)
    assert (card_row(engine, lost.card_no).status, card_row(engine, other.card_no).status) == (
        "9",
        "1",
    )
    with engine.begin() as conn:
        _, reader = request_file(conn, "STATUSRSP", "B002", [(first_loss, "00", "", "")], seq=4)
        done = partner.apply_status_answers(
            conn, reader, hub=HUB, bank_code="B002", business_date=DAY, now=NOW, file_name="Y"
        )
    assert (done["applied"], done["problems"]) == (0, 1)
    assert card_row(engine, lost.card_no).status == "9"
    with engine.connect() as conn:
        problems = conn.scalars(text("SELECT problem FROM return_problem ORDER BY id")).all()
    assert problems == ["unknown or repeated answer", "not possible for a card in status 9"]


def lock_pin(engine: Engine, pan: str) -> Callable[[], object]:
    return lambda: days.lock_pin(
        engine, hub=HUB, pan=pan, business_date=DAY, now=NOW, actor="card-system"
    )


def test_a_pin_locked_while_a_channel_file_reports_its_card_lost_stays_locked(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    with engine.begin() as conn:
        made = seed_card(conn, 1, account_status="active")
    # the channel file has read the card and its account, and not written them yet
    loaded = held_open(monkeypatch, requests, "_stored_pins")
    race(
        engine, lambda: channel(engine, [ch("Q1", "L1", made)]), loaded, lock_pin(engine, made.pan)
    )
    account = account_row(engine, made.pan)
    assert (account.loss, bool(account.pin_locked)) == ("temporary", True)
    assert card_row(engine, made.card_no).status == "4"
    assert sorted(op for op, _, _ in events(engine)) == ["01", "22"]


def test_a_card_reported_lost_while_its_pin_is_being_locked_stays_lost_and_locked(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    with engine.begin() as conn:
        made = seed_card(conn, 1, account_status="active")
    # the lock has written the account and not committed
    locked = held_open(monkeypatch, audit, "append")
    race(
        engine, lock_pin(engine, made.pan), locked, lambda: channel(engine, [ch("Q1", "L1", made)])
    )
    account = account_row(engine, made.pan)
    assert (account.loss, bool(account.pin_locked)) == ("temporary", True)


def test_a_card_cancelled_by_its_bureau_while_a_channel_reports_it_lost_stays_cancelled(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    with engine.begin() as conn:
        made = seed_card(conn, 1, account_status="active")
    loaded = held_open(monkeypatch, requests, "_stored_pins")
    race(
        engine,
        lambda: channel(engine, [ch("Q1", "L1", made)]),
        loaded,
        lambda: status(engine, [st("R1", "04", made)]),
    )
    assert card_row(engine, made.card_no).status == "9"
    account = account_row(engine, made.pan)
    # the cancelled card's number goes on nowhere: no more credits, closed once empty
    assert (account.status, bool(account.credit_blocked)) == ("closed", True)
