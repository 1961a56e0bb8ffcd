"""Benefit payments on the hub's database (both databases): DISB lines checked in §5.10's
order, a batch posted once funded and only then, partner lines forwarded and merged back,
``301`` at the cut-off, the bureau's DISBRSP line by line, and the clearing account
netting to zero."""

from __future__ import annotations

import io
import re
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from openpyxl import load_workbook
from sqlalchemy import Connection, Engine, text

from banking import audit, ledger
from exchange.outbox import Drop
from exchange.storage import Storage
from payments import settle
from payments.intake import DisbContext, apply_disb
from payments.settle import (
    answer_batches,
    apply_partner_disbrsp,
    cut_off,
    expire_partner_lines,
    post_funded,
    send_partner_disb,
)
from persistence import registry
from reconciliation.daily import reconcile, write_recon
from reconciliation.reports import item_table, load_day, write_reports
from schemas.codec import DelimitedReader, Header, write_delimited
from schemas.layouts import DISBRSP, LAYOUTS, RECON
from servicing.days import finish_replacements
from servicing.requests import Ctx, apply_status
from tests.integration.test_reconciliation import stmt
from tests.support.cards import BUREAU, DAY, HUB, NOW, Made, pan_of, request_file, seed_card
from tests.support.races import held_open, race


@pytest.fixture
def store(tmp_path: Path) -> Storage:
    return Storage(f"file://{tmp_path / 'store'}")


def disb_file(
    conn: Connection,
    rows: list[tuple[str, ...]],
    *,
    seq: int = 1,
    sender: str = BUREAU,
    receiver: str = HUB,
    type_: str = "DISB",
    raw: bool = False,
) -> tuple[int, DelimitedReader, str]:
    """A file of ``rows`` registered as received; ``raw``: its lines joined as given,
    without the writer's refusals (a value no file should carry)."""
    layout = LAYOUTS[type_]
    amount_at = layout.index(layout.amount_field) if layout.amount_field else None
    total = 0
    if amount_at is not None:
        # the sum of the amounts that are amounts at all (ICD §4.1), as a bureau adds them
        for r in rows:
            if re.fullmatch(r"[0-9]{1,10}\.[0-9]{2}", r[amount_at]):
                yuan, cents = r[amount_at].split(".")
                total += int(yuan) * 100 + int(cents)
    batch_no = f"P{DAY}{seq:03d}"
    name = f"{type_}_{sender}_{receiver}_{DAY}_{seq:03d}.txt"
    header = Header(type_, sender, receiver, batch_no, DAY, len(rows), total)
    buf = io.BytesIO()
    if raw:
        amount = f"{total // 100}.{total % 100:02d}"
        buf.write(
            (
                f"H|{type_}|{sender}|{receiver}|{batch_no}|{DAY}|{len(rows)}|{amount}|1.0\r\n"
                + "".join(f"D|{i}|{'|'.join(r)}\r\n" for i, r in enumerate(rows, 1))
                + f"T|{len(rows)}|{amount}\r\n"
            ).encode("gb18030")
        )
    else:
        write_delimited(buf, layout, header, rows, "GB18030")
    file_id = registry.record_file(
        conn,
        conn_id=f"sftp_{sender.lower()}",
        name=name,
        type=type_,
        sender=sender,
        receiver=receiver,
        batch_no=batch_no,
        business_date=DAY,
        sha256=f"{seq:064d}",
        size=len(buf.getvalue()),
        outcome="accepted",
        first_seen_at=NOW,
        processed_at=NOW,
    )
    buf.seek(0)
    return file_id, DelimitedReader(buf, layout, "GB18030", 50_000, len(rows)), batch_no


def line(pay_no: str, made, amount: str = "1500.00", **kw: str) -> tuple[str, ...]:  # type: ignore[no-untyped-def]
    return (
        pay_no,
        kw.get("id_no", made.id_no),
        kw.get("name", made.name),
        made.card_no,
        kw.get("pan", made.pan),
        amount,
        kw.get("benefit_type", "110"),
        "202612",
        "",
    )


def intake(
    engine: Engine, rows: list[tuple[str, ...]], seq: int = 1, raw: bool = False
) -> tuple[int, str]:
    with engine.begin() as conn:
        file_id, reader, batch_no = disb_file(conn, rows, seq=seq, raw=raw)
        counts = apply_disb(conn, reader, DisbContext(HUB, BUREAU, DAY, file_id, batch_no))
    return counts["batch_id"], batch_no


def results(engine: Engine, batch_id: int) -> list[tuple[str, str | None]]:
    with engine.connect() as conn:
        return [
            tuple(r)
            for r in conn.execute(
                text("SELECT pay_no, result FROM disb_line WHERE batch_id = :b ORDER BY seq"),
                {"b": batch_id},
            )
        ]  # type: ignore[misc]


def fund(engine: Engine, batch_no: str, fen: int, ref: str = "T1") -> None:
    with engine.begin() as conn:
        ledger.post(
            conn,
            f"stmt:P01:{ref}",
            "stmt",
            DAY,
            [ledger.Leg("SETTLEMENT", -fen), ledger.Leg(ledger.clearing(BUREAU), fen)],
            NOW,
        )
        conn.execute(
            text("UPDATE disb_batch SET funded_fen = funded_fen + :f WHERE batch_no = :n"),
            {"f": fen, "n": batch_no},
        )


def total_of(engine: Engine, batch_id: int) -> int:
    with engine.connect() as conn:
        return int(
            conn.execute(
                text("SELECT total_fen FROM disb_batch WHERE id = :b"), {"b": batch_id}
            ).scalar_one()
        )


def test_disb_lines_are_checked_in_the_icd_order_and_credited_only_once_funded(
    engine: Engine, store: Storage, tmp_path: Path
) -> None:
    with engine.begin() as conn:
        good = seed_card(conn, 1, account_status="active")
        closed = seed_card(conn, 2, account_status="closed")
        blocked = seed_card(conn, 3)
        conn.execute(
            text("UPDATE account SET credit_blocked = true WHERE pan = :p"), {"p": blocked.pan}
        )
        preopened = seed_card(conn, 4)
        at_partner = seed_card(conn, 5, bank_code="B002", pan="6220020000000000003")
    rows = [
        line("PAY1", good, "1500.00"),
        line("PAY2", good, "10.00", name="李四"),  # 105
        line("PAY3", good, "10.00", id_no="440103199001019999"),  # 104
        line("PAY4", good, "10.00", pan=pan_of(999)),  # 103
        line("PAY5", good, "0.00"),  # 208
        line("PAY6", good, "10.00", benefit_type="210"),  # E117
        line("PAY1", good, "10.00"),  # 209 (repeated within the file)
        line("PAY7", closed, "10.00"),  # 106
        line("PAY8", blocked, "10.00"),  # 106
        line("PAY9", preopened, "20.00"),  # credited (pre-opened accounts take credits)
        line("PAY10", at_partner, "300.00"),  # forwarded
    ]
    batch_id, batch_no = intake(engine, rows)
    assert results(engine, batch_id) == [
        ("PAY1", None),
        ("PAY2", "105"),
        ("PAY3", "104"),
        ("PAY4", "103"),
        ("PAY5", "208"),
        ("PAY6", "E117"),
        ("PAY1", "209"),
        ("PAY7", "106"),
        ("PAY8", "106"),
        ("PAY9", None),
        ("PAY10", None),
    ]
    # nothing is credited before the batch is funded
    assert post_funded(engine, hub=HUB, business_date=DAY, now=NOW).batches == 0
    total = total_of(engine, batch_id)
    fund(engine, batch_no, total - 1)
    assert post_funded(engine, hub=HUB, business_date=DAY, now=NOW).batches == 0
    fund(engine, batch_no, 1, ref="T2")
    posted = post_funded(engine, hub=HUB, business_date=DAY, now=NOW)
    assert (posted.batches, posted.credited, posted.forwarded) == (1, 2, 1)
    assert post_funded(engine, hub=HUB, business_date=DAY, now=NOW).batches == 0
    with engine.connect() as conn:
        assert ledger.balance(conn, good.pan) == 150_000
        assert ledger.balance(conn, preopened.pan) == 2_000
    # the partner line goes to B002 under the hub's key and comes back credited
    dest = Drop("sftp_b002", "drop", NOW, store)
    names = send_partner_disb(
        engine,
        hub=HUB,
        bank_code="B002",
        dest=dest,
        encoding="GB18030",
        business_date=DAY,
        work_dir=tmp_path,
    )
    assert names == [f"DISB_{HUB}_B002_{DAY}_001.txt"]
    assert (
        send_partner_disb(
            engine,
            hub=HUB,
            bank_code="B002",
            dest=dest,
            encoding="GB18030",
            business_date=DAY,
            work_dir=tmp_path,
        )
        == []
    )
    with engine.connect() as conn:
        key = conn.execute(
            text("SELECT partner_key FROM disb_line WHERE partner = 'B002'")
        ).scalar_one()
    drop_b = Drop("sftp_r440100", "drop", NOW, store)
    with engine.begin() as conn:
        assert (
            answer_batches(
                conn,
                bureau=BUREAU,
                dest=drop_b,
                encoding="GB18030",
                business_date=DAY,
                work_dir=tmp_path,
            )
            == []
        )
        _, reader, _ = disb_file(
            conn,
            [(key, "0000", "300.00", "20261206103000", "B002REF1", "", "")],
            sender="B002",
            receiver=HUB,
            type_="DISBRSP",
            seq=2,
        )
        apply_partner_disbrsp(
            conn, reader, bank_code="B002", business_date=DAY, now=NOW, file_name="X"
        )
        names = answer_batches(
            conn,
            bureau=BUREAU,
            dest=drop_b,
            encoding="GB18030",
            business_date=DAY,
            work_dir=tmp_path,
        )
        data = conn.execute(
            text("SELECT data FROM outbound_file WHERE name = :n"), {"n": names[0]}
        ).scalar_one()
    assert names == [f"DISBRSP_{HUB}_{BUREAU}_{DAY}_001.txt"]
    reader = DelimitedReader(io.BytesIO(data), DISBRSP, "GB18030", 100, len(rows))
    answered = next(
        list(zip(c.strings("pay_no"), c.strings("result"), c.strings("credited_amount")))
        for c in reader.chunks()
    )
    assert [a[1] for a in answered] == [
        "0000",
        "105",
        "104",
        "103",
        "208",
        "E117",
        "209",
        "106",
        "106",
        "0000",
        "0000",
    ]
    assert answered[0][2] == "1500.00" and answered[10] == ("PAY10", "0000", "300.00")
    assert reader.header.total_fen == 150_000 + 2_000 + 30_000
    # every fen is where it should be: clearing nets to zero, failures wait in returns
    with engine.connect() as conn:
        assert ledger.balance(conn, ledger.clearing(BUREAU)) == 0
        assert ledger.balance(conn, ledger.returns(BUREAU)) == total - 182_000
        assert ledger.balance(conn, ledger.due_to_partner("B002")) == 30_000
        assert ledger.check(conn).ok()


def test_a_pay_no_used_in_an_earlier_file_is_209_whatever_its_content(engine: Engine) -> None:
    with engine.begin() as conn:
        good = seed_card(conn, 1, account_status="active")
    intake(engine, [line("PAY1", good)])
    batch_id, _ = intake(engine, [line("PAY1", good, "99.00"), line("PAY2", good)], seq=2)
    assert results(engine, batch_id) == [("PAY1", "209"), ("PAY2", None)]


def test_a_line_with_the_wrong_number_of_fields_uses_no_pay_no(engine: Engine) -> None:
    """A line whose fields cannot be told apart has no key (decision 78): it is E116 and
    does not use its pay_no, so the line sent right, later in the file or in a later
    file, is paid instead of being refused 209 for ever."""
    with engine.begin() as conn:
        good = seed_card(conn, 1, account_status="active")

    def stray(pay_no: str) -> tuple[str, ...]:
        return (*line(pay_no, good, "10.00"), "a memo with a stray |")

    batch_id, _ = intake(engine, [stray("PAY1"), line("PAY1", good, "10.00")], raw=True)
    assert results(engine, batch_id) == [("PAY1", "E116"), ("PAY1", None)]
    batch_id, _ = intake(engine, [stray("PAY2")], seq=2, raw=True)
    assert results(engine, batch_id) == [("PAY2", "E116")]
    batch_id, _ = intake(engine, [line("PAY2", good, "10.00"), line("PAY1", good)], seq=3)
    assert results(engine, batch_id) == [("PAY2", None), ("PAY1", "209")]


def test_a_batch_unfunded_at_the_cut_off_answers_301_on_every_line_and_returns_what_came(
    engine: Engine, store: Storage, tmp_path: Path
) -> None:
    with engine.begin() as conn:
        good = seed_card(conn, 1, account_status="active")
    batch_id, batch_no = intake(engine, [line("PAY1", good, "100.00"), line("PAY2", good, "0.00")])
    fund(engine, batch_no, 4_000)
    assert cut_off(engine, business_date="20261205", now=NOW) == 0  # not its day yet
    assert cut_off(engine, business_date=DAY, now=NOW) == 1
    assert results(engine, batch_id) == [("PAY1", "301"), ("PAY2", "301")]
    with engine.begin() as conn:
        names = answer_batches(
            conn,
            bureau=BUREAU,
            dest=Drop("sftp_r440100", "drop", NOW, store),
            encoding="GB18030",
            business_date=DAY,
            work_dir=tmp_path,
        )
        assert ledger.balance(conn, good.pan) == 0
        assert ledger.balance(conn, ledger.returns(BUREAU)) == 4_000
        assert ledger.balance(conn, ledger.clearing(BUREAU)) == 0
    assert len(names) == 1


def bureau_disbrsp(engine: Engine, store: Storage, tmp_path: Path) -> bytes:
    """The bureau's one DISBRSP, written now: its bytes."""
    with engine.begin() as conn:
        names = answer_batches(
            conn,
            bureau=BUREAU,
            dest=Drop("sftp_r440100", "drop", NOW, store),
            encoding="GB18030",
            business_date=DAY,
            work_dir=tmp_path,
        )
        assert len(names) == 1
        return bytes(
            conn.execute(
                text("SELECT data FROM outbound_file WHERE name = :n"), {"n": names[0]}
            ).scalar_one()
        )


def test_a_disb_whose_every_amount_is_bad_is_answered_208_line_by_line_not_refused_whole(
    engine: Engine, store: Storage, tmp_path: Path
) -> None:
    """Lines whose amounts are 0.00 or no amount at all add up to the header's 0.00: the
    file is consistent, so each line is answered 208 and the batch, owing nothing, is
    answered without waiting for funds (it was F09 as a whole)."""
    with engine.begin() as conn:
        good = seed_card(conn, 1, account_status="active")
    batch_id, _ = intake(
        engine,
        [line("PAY1", good, "0.00"), line("PAY2", good, "12.3"), line("PAY3", good, "1,00.00")],
        raw=True,
    )
    assert results(engine, batch_id) == [("PAY1", "208"), ("PAY2", "208"), ("PAY3", "208")]
    assert post_funded(engine, hub=HUB, business_date=DAY, now=NOW).batches == 1
    data = bureau_disbrsp(engine, store, tmp_path)
    with engine.connect() as conn:
        assert ledger.balance(conn, good.pan) == 0
        assert ledger.check(conn).ok()
    reader = DelimitedReader(io.BytesIO(data), DISBRSP, "GB18030", 100, 3)
    answered = [r for c in reader.chunks() for r in c.strings("result")]
    assert answered == ["208", "208", "208"]
    assert reader.header.total_fen == 0


def forwarded_to_b002(
    engine: Engine, store: Storage, tmp_path: Path, rows: list[tuple[str, ...]]
) -> int:
    """A batch of B002 accounts' lines taken, funded in full, posted and sent to B002."""
    batch_id, batch_no = intake(engine, rows)
    fund(engine, batch_no, total_of(engine, batch_id))
    post_funded(engine, hub=HUB, business_date=DAY, now=NOW)
    send_to_b002(engine, store, tmp_path)
    return batch_id


def send_to_b002(engine: Engine, store: Storage, tmp_path: Path) -> list[str]:
    """The funded lines for B002's accounts not sent yet, in a DISB to B002."""
    return send_partner_disb(
        engine,
        hub=HUB,
        bank_code="B002",
        dest=Drop("sftp_b002", "drop", NOW, store),
        encoding="GB18030",
        business_date=DAY,
        work_dir=tmp_path,
    )


def test_values_that_read_like_nulls_reach_the_partner_as_the_bureau_sent_them(
    engine: Engine, store: Storage, tmp_path: Path
) -> None:
    """A memo of "N/A" or "nan" and a holder named "NULL" are values, not missing ones:
    the DISB forwarded to the partner bank carries them unchanged (on PostgreSQL the lines
    are copied out as CSV, whose reader took such text for NULL)."""
    with engine.begin() as conn:
        one = seed_card(conn, 5, bank_code="B002", pan="6220020000000000003")
        two = seed_card(conn, 6, bank_code="B002", pan="6220020000000000011", name="NULL")
    first, second = list(line("PAY1", one, "300.00")), list(line("PAY2", two, "200.00"))
    first[8], second[8] = "N/A", "nan"
    forwarded_to_b002(engine, store, tmp_path, [tuple(first), tuple(second)])
    with engine.connect() as conn:
        data = conn.execute(text("SELECT data FROM outbound_file WHERE type = 'DISB'")).scalar_one()
    details = [ln.split(b"|") for ln in bytes(data).split(b"\r\n") if ln.startswith(b"D|")]
    assert [(d[4].decode("gb18030"), d[10].decode("gb18030")) for d in details] == [
        (one.name, "N/A"),
        ("NULL", "nan"),
    ]


def test_a_pay_no_that_reads_like_a_null_is_answered_in_the_disbrsp(
    engine: Engine, store: Storage, tmp_path: Path
) -> None:
    """pay_nos "NULL" and "nan" are keys like any other (ICD §4.2): the DISBRSP answers
    them (on PostgreSQL the lines are read back as CSV, whose reader took them for NULL
    and the response could not be written)."""
    with engine.begin() as conn:
        made = seed_card(conn, 1, account_status="active")
    batch_id, batch_no = intake(engine, [line("NULL", made, "10.00"), line("nan", made)])
    fund(engine, batch_no, total_of(engine, batch_id))
    post_funded(engine, hub=HUB, business_date=DAY, now=NOW)
    data = bureau_disbrsp(engine, store, tmp_path)
    reader = DelimitedReader(io.BytesIO(data), DISBRSP, "GB18030", 100, 2)
    answered = [
        (k, r) for c in reader.chunks() for k, r in zip(c.strings("pay_no"), c.strings("result"))
    ]
    assert answered == [("NULL", "0000"), ("nan", "0000")]


def test_a_partner_that_does_not_answer_gets_140_at_partner_wait(
    engine: Engine, store: Storage, tmp_path: Path
) -> None:
    with engine.begin() as conn:
        at_partner = seed_card(conn, 5, bank_code="B002", pan="6220020000000000003")
    batch_id = forwarded_to_b002(engine, store, tmp_path, [line("PAY1", at_partner, "300.00")])
    assert (
        expire_partner_lines(engine, bank_code="B002", wait_days=1, business_date=DAY, now=NOW) == 0
    )
    # sent on Sunday 6 December: it waits one business day, to the end of Monday the 7th
    for day, expired in (("20261207", 0), ("20261208", 1)):
        assert (
            expire_partner_lines(engine, bank_code="B002", wait_days=1, business_date=day, now=NOW)
            == expired
        )
    assert results(engine, batch_id) == [("PAY1", "140")]
    with engine.connect() as conn:
        assert ledger.balance(conn, ledger.returns(BUREAU)) == 30_000


def test_a_bureau_paid_before_funding_is_posted_at_once_and_one_refusing_preopened_gets_106(
    engine: Engine,
) -> None:
    with engine.begin() as conn:
        preopened = seed_card(conn, 1)
    batch_id, _ = intake(engine, [line("PAY1", preopened, "100.00")])
    assert post_funded(engine, hub=HUB, business_date=DAY, now=NOW).batches == 0
    posted = post_funded(
        engine,
        hub=HUB,
        business_date=DAY,
        now=NOW,
        pay_before_funding=[BUREAU],
        refuse_preopened=[BUREAU],
    )
    assert posted.batches == 1
    assert results(engine, batch_id) == [("PAY1", "106")]
    with engine.connect() as conn:
        assert ledger.balance(conn, preopened.pan) == 0


def test_hostile_values_get_their_line_code_and_the_other_lines_go_on(engine: Engine) -> None:
    """A NUL (which PostgreSQL cannot store), quotes, commas, backslashes and tabs in a
    line's fields are that line's problem only."""
    with engine.begin() as conn:
        good, named = seed_card(conn, 1), seed_card(conn, 2)
    batch_id, _ = intake(
        engine,
        [
            line("PAY1", good),
            line("PAY2", named, name=named.name + "\x00"),
            line("PAY3", named, pan='"\\.,\t', id_no="\\N"),
        ],
    )
    assert results(engine, batch_id) == [("PAY1", None), ("PAY2", "105"), ("PAY3", "104")]


def test_a_partner_answer_with_hostile_values_is_a_problem_of_that_line_only(
    engine: Engine, store: Storage, tmp_path: Path
) -> None:
    """A partner's DISBRSP with a NUL (which PostgreSQL cannot store) in a key or in its
    bank_ref: those lines are return problems, each with its reason; the good answer is
    applied and the file goes on."""
    with engine.begin() as conn:
        one = seed_card(conn, 5, bank_code="B002", pan="6220020000000000003")
        two = seed_card(conn, 6, bank_code="B002", pan="6220020000000000011")
    batch_id = forwarded_to_b002(
        engine, store, tmp_path, [line("PAY1", one, "300.00"), line("PAY2", two, "200.00")]
    )
    with engine.connect() as conn:
        first, second = conn.scalars(
            text("SELECT partner_key FROM disb_line WHERE batch_id = :b ORDER BY seq"),
            {"b": batch_id},
        ).all()
    with engine.begin() as conn:
        _, reader, _ = disb_file(
            conn,
            [
                (first + "\x00", "0000", "300.00", "20261206103000", "REF0", "", ""),
                (second, "0000", "200.00", "20261206103000", "REF\x001", "", ""),
                (first, "0000", "300.00", "20261206103000", "REF1", "", ""),
                (first, "103", "0.00", "", "", "103", "x"),  # answered again: the first stands
            ],
            sender="B002",
            receiver=HUB,
            type_="DISBRSP",
            seq=2,
        )
        done = apply_partner_disbrsp(
            conn, reader, bank_code="B002", business_date=DAY, now=NOW, file_name="X"
        )
    assert (done["credited"], done["problems"]) == (1, 3)
    assert results(engine, batch_id) == [("PAY1", "0000"), ("PAY2", None)]
    with engine.connect() as conn:
        assert ledger.balance(conn, ledger.due_to_partner("B002")) == 30_000
        found = conn.execute(
            text("SELECT line_no, key, problem FROM return_problem ORDER BY line_no")
        ).all()
    assert [tuple(r) for r in found] == [
        (2, (first + "\ufffd")[:30], "E116 in pay_no"),
        (3, second, "E116 in bank_ref"),
        (5, first, "unknown or repeated answer"),
    ]


def test_a_repeat_is_209_whatever_else_fails_and_does_not_set_the_files_benefit_type(
    engine: Engine,
) -> None:
    """ICD §5.10: the pay_no is checked first, so a repeat is 209 though a later field
    fails too; a line with no key at all stays E116; and a resent first line of another
    benefit type does not make every new line E117."""
    with engine.begin() as conn:
        good = seed_card(conn, 1, account_status="active")
    intake(engine, [line("PAY1", good)])
    bad_period = list(line("PAY1", good, benefit_type="210"))
    bad_period[7] = "202613"
    again = list(line("PAY2", good))
    again[7] = "2026"
    batch_id, _ = intake(
        engine,
        [
            tuple(bad_period),  # used in the first file, of another type, bad period
            line("PAY2", good),
            tuple(again),  # PAY2 again in this file, bad period
            line("PAY3", good, benefit_type="310"),
            line("PAY 4", good),  # no key
        ],
        seq=2,
    )
    assert results(engine, batch_id) == [
        ("PAY1", "209"),
        ("PAY2", None),
        ("PAY2", "209"),
        ("PAY3", "E117"),
        ("PAY 4", "E116"),
    ]
    with engine.connect() as conn:
        kind = conn.scalar(
            text("SELECT benefit_type FROM disb_batch WHERE id = :b"), {"b": batch_id}
        )
    assert kind == "110"


def test_a_batch_without_a_valid_benefit_type_is_reported_as_900_in_a_recon_that_parses(
    engine: Engine, store: Storage, tmp_path: Path
) -> None:
    """ICD §5.12: RECON's benefit_type is mandatory and one of §5.10's codes. A batch
    none of whose lines has one is still reconciled and written, as 900; finance's
    reports say it had none."""
    with engine.begin() as conn:
        good = seed_card(conn, 1, account_status="active")
    batch_id, batch_no = intake(
        engine, [line("PAY1", good, benefit_type="999"), line("PAY2", good, benefit_type="")]
    )
    assert results(engine, batch_id) == [("PAY1", "E117"), ("PAY2", "E117")]
    fund(engine, batch_no, total_of(engine, batch_id))

    cut_off(engine, business_date=DAY, now=NOW)
    post_funded(engine, hub=HUB, business_date=DAY, now=NOW)
    with engine.begin() as conn:
        answer_batches(
            conn,
            bureau=BUREAU,
            dest=Drop("sftp_r440100", "drop", NOW, store),
            encoding="GB18030",
            business_date=DAY,
            work_dir=tmp_path,
        )
        reconcile(conn, DAY, [BUREAU])
        name = write_recon(
            conn,
            hub=HUB,
            bureau=BUREAU,
            business_date=DAY,
            dest=Drop("sftp_r440100", "drop", NOW, store),
            encoding="GB18030",
            work_dir=tmp_path,
        )
        data = bytes(
            conn.scalar(text("SELECT data FROM outbound_file WHERE name = :n"), {"n": name})
        )

    reader = DelimitedReader(data, RECON, "GB18030")
    chunks = list(reader.chunks())
    assert [r for chunk in chunks for r in chunk.rejections()] == []
    recon = [row for chunk in chunks for row in chunk.table.to_pylist()]
    assert [(r["batch_no"], r["benefit_type"], r["failed_count"]) for r in recon] == [
        (batch_no, "900", "2")
    ]
    paths = write_reports(engine, DAY, tmp_path / "reports")
    none = "无有效待遇类别 no valid benefit type (RECON: 900)"
    assert none in paths.html.read_text("utf-8")
    assert load_workbook(paths.workbook)["Summary"].cell(row=3, column=3).value == none
    with engine.connect() as conn:
        items = item_table(load_day(conn, DAY)).to_pylist()
    assert [i["benefit_type"] for i in items if i["item_type"] == "batch"] == [None]


def test_a_cr_inside_a_value_is_that_lines_problem_and_never_reaches_a_partner(
    engine: Engine, store: Storage, tmp_path: Path
) -> None:
    """ICD §4.1: no file can carry a CR inside a value, so a DISB line holding one is
    refused at that field (its own code, else E116) and the others go on."""
    with engine.begin() as conn:
        good = seed_card(conn, 1, account_status="active")
        at_partner = seed_card(conn, 5, bank_code="B002", pan="6220020000000000003")
    rows = [
        line("PAY1", good),
        line("PAY2", good, name="张\r三"),
        (*line("PAY3", at_partner, "300.00")[:8], "pension\rx"),
        line("PAY4", at_partner, "200.00"),
    ]
    batch_id, batch_no = intake(engine, rows, raw=True)
    assert results(engine, batch_id) == [
        ("PAY1", None),
        ("PAY2", "105"),
        ("PAY3", "E116"),
        ("PAY4", None),
    ]
    fund(engine, batch_no, total_of(engine, batch_id))
    post_funded(engine, hub=HUB, business_date=DAY, now=NOW)
    sent = send_to_b002(engine, store, tmp_path)
    assert sent  # PAY4 went out; PAY3 never could have stopped it


def test_a_partner_answer_crediting_nothing_too_much_or_a_line_never_sent_is_not_applied(
    engine: Engine, store: Storage, tmp_path: Path
) -> None:
    with engine.begin() as conn:
        one = seed_card(conn, 5, bank_code="B002", pan="6220020000000000003")
        two = seed_card(conn, 6, bank_code="B002", pan="6220020000000000011")
        three = seed_card(conn, 7, bank_code="B002", pan="6220020000000000029")
    batch_id = forwarded_to_b002(
        engine,
        store,
        tmp_path,
        [line("PAY1", one, "300.00"), line("PAY2", two, "200.00"), line("PAY3", three, "100.00")],
    )
    # a second batch, not funded: its partner line was never sent
    waiting_id, _ = intake(engine, [line("PAY9", one, "50.00")], seq=2)
    with engine.connect() as conn:
        keys = conn.scalars(
            text(
                "SELECT partner_key FROM disb_line WHERE batch_id IN (:a, :b) ORDER BY batch_id, seq"
            ),
            {"a": batch_id, "b": waiting_id},
        ).all()
    with engine.begin() as conn:
        _, reader, _ = disb_file(
            conn,
            [
                (keys[0], "0000", "0.00", "20261206103000", "REF1", "", ""),
                (keys[1], "0000", "9000.00", "20261206103000", "REF2", "", ""),
                (keys[2], "0000", "100.00", "20261206103000", "REF3", "", ""),
                (keys[3], "0000", "50.00", "20261206103000", "REF4", "", ""),
            ],
            sender="B002",
            receiver=HUB,
            type_="DISBRSP",
            seq=3,
        )
        done = apply_partner_disbrsp(
            conn, reader, bank_code="B002", business_date=DAY, now=NOW, file_name="X"
        )
    assert (done["credited"], done["problems"]) == (1, 3)
    assert results(engine, batch_id) == [("PAY1", None), ("PAY2", None), ("PAY3", "0000")]
    assert results(engine, waiting_id) == [("PAY9", None)]
    with engine.connect() as conn:
        assert ledger.balance(conn, ledger.due_to_partner("B002")) == 10_000
        assert ledger.check(conn).ok()
        problems = conn.scalars(text("SELECT problem FROM return_problem ORDER BY line_no")).all()
    assert problems == [
        "credited amount 0.00 or above the line's",
        "credited amount 0.00 or above the line's",
        "unknown or repeated answer",
    ]


def test_a_batch_cut_off_is_not_posted_by_a_run_that_saw_it_waiting(engine: Engine) -> None:
    """A posting run that listed the batch before the cut-off took it finds it taken:
    nothing is credited and the cut-off's 301 and returns stand alone."""
    from payments.settle import _post_batch

    with engine.begin() as conn:
        good = seed_card(conn, 1, account_status="active")
    batch_id, batch_no = intake(engine, [line("PAY1", good, "100.00"), line("PAY2", good, "50.00")])
    fund(engine, batch_no, 10_000)
    assert cut_off(engine, business_date=DAY, now=NOW) == 1
    with engine.begin() as conn:
        assert _post_batch(conn, batch_id, BUREAU, batch_no, DAY, NOW, True) is None
    assert results(engine, batch_id) == [("PAY1", "301"), ("PAY2", "301")]
    with engine.connect() as conn:
        assert ledger.balance(conn, good.pan) == 0
        assert ledger.balance(conn, ledger.returns(BUREAU)) == 10_000
        assert ledger.balance(conn, ledger.clearing(BUREAU)) == 0
        status = conn.scalar(text("SELECT status FROM disb_batch WHERE id = :b"), {"b": batch_id})
    assert status == "unfunded"


# --------------------------------------------------------------------------- a posting racing servicing


def replaced_with_money(engine: Engine, fen: int) -> tuple[Made, Made]:
    """A hub card holding ``fen`` whose replacing card (a new number) is enabled, so the
    end of day moves its balance."""
    with engine.begin() as conn:
        old = seed_card(conn, 1, account_status="active")
        new = seed_card(
            conn, 2, app_type="05", old_card_no=old.card_no, keep_account="0", id_no=old.id_no
        )
        ledger.post(
            conn,
            "credit:before",
            "credit",
            DAY,
            [ledger.Leg(ledger.settlement(), -fen), ledger.Leg(old.pan, fen)],
            NOW,
        )
    return old, new


def posting(engine: Engine) -> Callable[[], object]:
    return lambda: post_funded(engine, hub=HUB, business_date=DAY, now=NOW)


def balances(engine: Engine, *made: Made) -> list[int]:
    with engine.connect() as conn:
        assert ledger.check(conn).ok()
        return [ledger.balance(conn, m.pan) for m in made]


def test_a_credit_posted_while_a_replacement_moves_the_balance_is_moved_with_it(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    old, new = replaced_with_money(engine, 20_000)
    batch_id, batch_no = intake(engine, [line("PAY1", old, "100.00")])
    fund(engine, batch_no, 10_000)
    # the posting has found the old account taking credits and credited it, not committed
    posted = held_open(monkeypatch, ledger, "post_transfers_from")
    race(engine, posting(engine), posted, lambda: finish_replacements(engine, HUB, DAY, NOW))
    assert results(engine, batch_id) == [("PAY1", "0000")]
    assert balances(engine, old, new) == [0, 30_000]
    with engine.connect() as conn:
        assert conn.scalar(text("SELECT moved_fen FROM replacement")) == 30_000
        assert conn.scalar(text("SELECT status FROM account WHERE pan = :p"), {"p": old.pan}) == (
            "closed"
        )


def test_a_posting_started_while_a_replacement_moves_the_balance_finds_the_old_account_blocked(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    old, new = replaced_with_money(engine, 20_000)
    batch_id, batch_no = intake(engine, [line("PAY1", old, "100.00")])
    fund(engine, batch_no, 10_000)
    # the move has read and moved the balance and blocked the old account, not committed
    moved = held_open(monkeypatch, audit, "append")
    race(engine, lambda: finish_replacements(engine, HUB, DAY, NOW), moved, posting(engine))
    assert results(engine, batch_id) == [("PAY1", "106")]
    assert balances(engine, old, new) == [0, 20_000]
    with engine.connect() as conn:
        assert ledger.balance(conn, ledger.returns(BUREAU)) == 10_000


def test_a_card_cancelled_while_a_posting_credits_its_empty_account_leaves_it_open_with_the_credit(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    with engine.begin() as conn:
        made = seed_card(conn, 1, account_status="active")
    batch_id, batch_no = intake(engine, [line("PAY1", made, "100.00")])
    fund(engine, batch_no, 10_000)

    def cancel() -> None:
        with engine.begin() as conn:
            cancel_line = ("R1", "04", made.card_no, made.id_no, made.name, "20261206100000")
            file_id, reader = request_file(conn, "STATUS", BUREAU, [(*cancel_line, "W1", "")])
            apply_status(conn, reader, Ctx(HUB, BUREAU, DAY, NOW, file_id))

    posted = held_open(monkeypatch, ledger, "post_transfers_from")
    race(engine, posting(engine), posted, cancel)
    assert results(engine, batch_id) == [("PAY1", "0000")]
    assert balances(engine, made) == [10_000]
    with engine.connect() as conn:
        account = conn.execute(
            text("SELECT status, credit_blocked FROM account WHERE pan = :p"), {"p": made.pan}
        ).one()
    # credit-blocked, closing once the holder has taken the money out (DOMAIN §5)
    assert tuple(account) == ("active", True)


def test_a_funding_line_arriving_while_its_batch_is_posted_is_recorded_and_deadlocks_neither(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A STMT's second funding line of a batch (a top-up) and that batch's posting both
    write the batch and the bureau's clearing account: they take them in one order, so
    neither is ended by the database as a deadlock."""
    with engine.begin() as conn:
        made = seed_card(conn, 1, account_status="active")
    batch_id, batch_no = intake(engine, [line("PAY1", made, "100.00")])
    fund(engine, batch_no, 10_000)

    def top_up() -> None:
        with engine.begin() as conn:
            stmt(conn, [("T2", "C", 500, f"DISB/{batch_no}")], day=DAY)

    # the statement has posted its funding line, not yet committed
    stated = held_open(monkeypatch, ledger, "post_transfers")
    race(engine, top_up, stated, posting(engine))
    assert results(engine, batch_id) == [("PAY1", "0000")]
    assert balances(engine, made) == [10_000]
    with engine.connect() as conn:
        assert conn.scalar(
            text("SELECT funded_fen FROM disb_batch WHERE id = :b"), {"b": batch_id}
        ) == (10_500)
        assert ledger.balance(conn, ledger.clearing(BUREAU)) == 500


def test_a_funding_line_arriving_during_the_cut_off_is_recorded_and_deadlocks_neither(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The cut-off answers two short batches 301 while a statement brings more funds for
    the second: both end, the batches cut off and the late funds recorded on the batch."""
    with engine.begin() as conn:
        made = seed_card(conn, 1, account_status="active")
    first, first_no = intake(engine, [line("PAY1", made, "100.00")])
    second, second_no = intake(engine, [line("PAY2", made, "100.00")], seq=2)
    fund(engine, first_no, 4_000)
    fund(engine, second_no, 3_000, ref="T2")

    def late_funds() -> None:
        with engine.begin() as conn:
            stmt(conn, [("T3", "C", 500, f"DISB/{second_no}")], day=DAY)

    # the cut-off has answered the first batch and moved its funds to returns, not committed
    cutting = held_open(monkeypatch, ledger, "post")
    race(engine, lambda: cut_off(engine, business_date=DAY, now=NOW), cutting, late_funds)
    assert results(engine, first) == [("PAY1", "301")]
    assert results(engine, second) == [("PAY2", "301")]
    with engine.connect() as conn:
        assert (
            conn.scalar(text("SELECT funded_fen FROM disb_batch WHERE id = :b"), {"b": second})
            == 3_500
        )
        assert ledger.check(conn).ok()


def test_two_forwarding_runs_at_once_send_each_line_to_the_partner_once(
    engine: Engine, store: Storage, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A forwarding run that chose its lines while another was sending them queues no
    file: the partner bank gets each line once."""
    with engine.begin() as conn:
        one = seed_card(conn, 5, bank_code="B002", pan="6220020000000000003")
    batch_id, batch_no = intake(engine, [line("PAY1", one, "300.00")])
    fund(engine, batch_no, total_of(engine, batch_id))
    post_funded(engine, hub=HUB, business_date=DAY, now=NOW)
    # the first run has written its file, not yet marked its lines sent nor committed
    reached, go = threading.Event(), threading.Event()
    compose, calls = settle.compose, []

    def held_first(*args: Any, **kwargs: Any) -> Any:
        done = compose(*args, **kwargs)
        calls.append(1)
        if len(calls) == 1:
            reached.set()
            assert go.wait(60), "never let go"
        return done

    monkeypatch.setattr(settle, "compose", held_first)
    sent: list[list[str]] = []
    race(
        engine,
        lambda: sent.append(send_to_b002(engine, store, tmp_path)),
        (reached, go),
        lambda: sent.append(send_to_b002(engine, store, tmp_path)),
    )
    with engine.connect() as conn:
        queued = conn.scalars(text("SELECT name FROM outbound_file WHERE type = 'DISB'")).all()
        marked = conn.scalars(
            text("SELECT partner_request FROM disb_line WHERE batch_id = :b"), {"b": batch_id}
        ).all()
    assert len(queued) == 1 and sorted(sent) == [[], [queued[0]]]
    assert marked == [queued[0]]


def test_lines_of_two_benefit_types_reach_a_partner_in_one_disb_per_benefit_type(
    engine: Engine, store: Storage, tmp_path: Path
) -> None:
    """ICD §5.10: a DISB carries one benefit_type (another value on a line is E117). A
    partner bank's lines of a pension batch and of an unemployment batch funded the same
    day go out in two DISB files, each of one type, each header totalling its own lines,
    so a partner reading them by the ICD refuses none."""
    with engine.begin() as conn:
        one = seed_card(conn, 5, bank_code="B002", pan="6220020000000000003")
        two = seed_card(conn, 6, bank_code="B002", pan="6220020000000000011")
        three = seed_card(conn, 7, bank_code="B002", pan="6220020000000000029")
    pension, pension_no = intake(
        engine, [line("PAY1", one, "300.00"), line("PAY3", three, "100.00")]
    )
    jobless, jobless_no = intake(engine, [line("PAY2", two, "200.00", benefit_type="210")], seq=2)
    fund(engine, pension_no, total_of(engine, pension))
    fund(engine, jobless_no, total_of(engine, jobless), ref="T2")
    post_funded(engine, hub=HUB, business_date=DAY, now=NOW)
    send_to_b002(engine, store, tmp_path)
    with engine.connect() as conn:
        sent = conn.execute(
            text("SELECT name, data FROM outbound_file WHERE type = 'DISB' ORDER BY name")
        ).all()
        marked = conn.execute(
            text(
                "SELECT pay_no, partner_request FROM disb_line WHERE partner = 'B002' "
                "ORDER BY pay_no"
            )
        ).all()
    files = {}
    for name, data in sent:
        reader = DelimitedReader(io.BytesIO(bytes(data)), LAYOUTS["DISB"], "GB18030", 100)
        chunks = list(reader.chunks())
        assert [r for c in chunks for r in c.rejections()] == []
        types = [t for c in chunks for t in c.strings("benefit_type")]
        amounts = [a for c in chunks for a in c.strings("amount")]
        files[name] = (sorted(set(types)), reader.header.total_fen, amounts)
    assert files == {
        f"DISB_{HUB}_B002_{DAY}_001.txt": (["110"], 40_000, ["300.00", "100.00"]),
        f"DISB_{HUB}_B002_{DAY}_002.txt": (["210"], 20_000, ["200.00"]),
    }
    assert [tuple(m) for m in marked] == [
        ("PAY1", f"DISB_{HUB}_B002_{DAY}_001.txt"),
        ("PAY2", f"DISB_{HUB}_B002_{DAY}_002.txt"),
        ("PAY3", f"DISB_{HUB}_B002_{DAY}_001.txt"),
    ]


def _waiting_at_b002(
    engine: Engine, store: Storage, tmp_path: Path
) -> tuple[int, Callable[[], None], Callable[[], None]]:
    """One 300.00 line forwarded to B002 and waiting: its batch, B002's DISBRSP crediting
    it (``answer``) and its partner_wait running out (``expire``), each in its own
    transaction, for the races of the two."""
    with engine.begin() as conn:
        at_partner = seed_card(conn, 5, bank_code="B002", pan="6220020000000000003")
    batch_id = forwarded_to_b002(engine, store, tmp_path, [line("PAY1", at_partner, "300.00")])
    with engine.connect() as conn:
        key = conn.scalar(
            text("SELECT partner_key FROM disb_line WHERE batch_id = :b"), {"b": batch_id}
        )

    def answer() -> None:
        with engine.begin() as conn:
            _, reader, _ = disb_file(
                conn,
                [(key, "0000", "300.00", "20261208103000", "B002REF1", "", "")],
                sender="B002",
                receiver=HUB,
                type_="DISBRSP",
                seq=2,
            )
            apply_partner_disbrsp(
                conn, reader, bank_code="B002", business_date="20261208", now=NOW, file_name="X"
            )

    def expire() -> None:
        expire_partner_lines(
            engine, bank_code="B002", wait_days=1, business_date="20261208", now=NOW
        )

    return batch_id, answer, expire


def test_a_partner_answer_committed_while_partner_wait_runs_out_is_not_overwritten_by_140(
    engine: Engine, store: Storage, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The partner's credit, applied while the line's partner_wait ran out in another
    run, stands: the bureau is not told 140 for a payment the customer got, and the
    clearing account is not debited a second time to send the amount back."""
    batch_id, answer, expire = _waiting_at_b002(engine, store, tmp_path)

    # the answer is applied, not yet committed, when the wait runs out
    answered = held_open(monkeypatch, settle, "report_problems")
    race(engine, answer, answered, expire)
    assert results(engine, batch_id) == [("PAY1", "0000")]
    with engine.connect() as conn:
        assert ledger.balance(conn, ledger.due_to_partner("B002")) == 30_000
        assert ledger.balance(conn, ledger.returns(BUREAU)) == 0
        assert ledger.balance(conn, ledger.clearing(BUREAU)) == 0


def test_a_partner_answer_arriving_while_partner_wait_runs_out_finds_the_line_answered_140(
    engine: Engine, store: Storage, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A partner's credit read while another run answers the line 140 (not yet
    committed) is not applied over that answer: the line stays 140, its amount goes back
    once, and nothing is owed to the partner for it (the answer is a return problem)."""
    batch_id, answer, expire = _waiting_at_b002(engine, store, tmp_path)

    # the line is answered 140 and its amount posted to returns, not yet committed
    expiring = held_open(monkeypatch, ledger, "post_transfers")
    race(engine, expire, expiring, answer)
    assert results(engine, batch_id) == [("PAY1", "140")]
    with engine.connect() as conn:
        assert ledger.balance(conn, ledger.due_to_partner("B002")) == 0
        assert ledger.balance(conn, ledger.returns(BUREAU)) == 30_000
        assert ledger.balance(conn, ledger.clearing(BUREAU)) == 0
        assert conn.scalars(text("SELECT problem FROM return_problem")).all() == [
            "unknown or repeated answer"
        ]
