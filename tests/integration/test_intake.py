"""APPLY intake against the hub's database (SQLite, or PostgreSQL when configured): the
rules that need what the database holds, file-level rejections, re-delivery, crashes and
the photo zip deadline."""

from __future__ import annotations

import dataclasses
import io
import threading
import zipfile
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from sqlalchemy import Engine, func, insert, select, text

from exchange.outbox import deliver
from exchange.pickup import FileOutcome, IntakeIncomplete
from exchange.storage import Storage
from issuance import intake as intake_module
from issuance.apply_rules import rules_for
from issuance.intake import IntakeContext, run_intake
from persistence import apply_store
from persistence.db import bulk_load
from persistence.models import (
    Account,
    Application,
    ApplicationState,
    ApplyLine,
    Base,
    Card,
    OutboundFile,
    ReceivedFile,
)
from sandbox.bureau import (
    LINE_KINDS,
    ApplyBatch,
    make_apply_batch,
    make_bad_file,
    make_changed_redelivery,
    read_applyrsp,
    render,
    write_batch,
)
from schemas.files import Control
from schemas.layouts import APPLY
from tests.support.photos import forged_copy
from transport.errors import TransientTransportError
from transport.local import LocalRemote

NOW = datetime(2026, 11, 22, 2, 0, tzinfo=UTC)
FIELD = {name: i for i, name in enumerate(APPLY.names)}


@pytest.fixture
def server(tmp_path: Path) -> Path:
    (tmp_path / "sftp" / "pickup").mkdir(parents=True)
    (tmp_path / "sftp" / "drop").mkdir()
    return tmp_path / "sftp"


def context(tmp_path: Path, now: datetime = NOW, **overrides: object) -> IntakeContext:
    values: dict[str, object] = {
        "conn_id": "sftp_r440100",
        "hub": "B001",
        "bureau": "R440100",
        "encoding": "GB18030",
        "pickup": "pickup",
        "drop": "drop",
        "business_date": "20261122",
        "now": now,
        "rules": rules_for("20261122", frozenset({"B001", "B002", "B003"}), "R440100"),
        "work_dir": tmp_path / "work",
        "store": Storage(str(tmp_path / "storage")),
        "chunk_lines": 300,
    }
    values.update(overrides)
    return IntakeContext(**values)  # type: ignore[arg-type]


def rebuilt(batch: ApplyBatch, rows: list[list[str]]) -> ApplyBatch:
    """The batch with other lines (its photo zip unchanged)."""
    header = dataclasses.replace(batch.header, record_count=len(rows))
    data = render(header, rows)
    control = Control.for_bytes(batch.name, data, len(rows)).render()
    return dataclasses.replace(batch, data=data, control=control, rows=rows, header=header)


def run(server: Path, engine: Engine, tmp_path: Path, **kw: object) -> list[FileOutcome]:
    remote = LocalRemote(server)
    ctx = context(tmp_path, **kw)
    outcomes = run_intake(remote, engine, ctx)
    deliver(remote, engine, ctx.store, ctx.conn_id, ctx.now)
    return outcomes


def response_codes(server: Path, name: str) -> list[str]:
    return [code for _, _, code in read_applyrsp((server / "drop" / name).read_bytes())]


def count(engine: Engine, model: type) -> int:
    with engine.connect() as conn:
        return int(conn.scalar(select(func.count()).select_from(model)) or 0)


RSP = "APPLYRSP_B001_R440100_20261122_001.txt"


def test_lines_are_answered_against_what_the_database_holds(
    server: Path, engine: Engine, tmp_path: Path
) -> None:
    batch = make_apply_batch(size=8, seed=3)
    rows = [list(r) for r in batch.rows]
    holder = rows[0]
    with engine.begin() as conn:
        conn.execute(
            insert(Card).values(
                card_no="OLD000001",
                bureau="R440100",
                id_type="01",
                id_no=holder[FIELD["id_no"]],
                name=holder[FIELD["name"]],
                bank_code="B001",
                pan="6217000000000000017",
                pan_seq="01",
                status="1",
                issue_date="20180101",
                expiry_date="20280101",
            )
        )
        conn.execute(
            insert(Account).values(
                pan="6217000000000000017",
                bank_code="B001",
                id_no=holder[FIELD["id_no"]],
                status="active",
            )
        )
        conn.execute(
            insert(Card).values(
                card_no="OLD000003",
                bureau="R440100",
                id_type="01",
                id_no=rows[5][FIELD["id_no"]],
                name=rows[5][FIELD["name"]],
                bank_code=rows[5][FIELD["bank_code"]],
                pan="6217000000000000033",
                pan_seq="01",
                status="1",
                issue_date="20200101",
                expiry_date="20300101",
            )
        )
        conn.execute(
            insert(Account).values(
                pan="6217000000000000033",
                bank_code=rows[5][FIELD["bank_code"]],
                id_no=rows[5][FIELD["id_no"]],
                status="preopened",
            )
        )
        conn.execute(
            insert(Card).values(
                card_no="OLD000002",
                bureau="R440100",
                id_type="01",
                id_no=rows[1][FIELD["id_no"]],
                name=rows[1][FIELD["name"]],
                bank_code="B001",
                pan="6217000000000000025",
                pan_seq="01",
                status="2",
                issue_date="20200101",
                expiry_date="20300101",
            )
        )
    # line 1: a new card for someone who holds one → E108
    # line 2: renewal of a card in formal loss, far from expiry, keeping the account at its bank
    #         → the account of that card is not open → E110
    rows[1][FIELD["app_type"]] = "06"
    rows[1][FIELD["old_card_no"]] = "OLD000002"
    rows[1][FIELD["keep_account"]] = "1"
    rows[1][FIELD["replace_reason"]] = "1"
    # line 3: a replacement naming a card that is not the applicant's → E109
    rows[2][FIELD["app_type"]] = "07"
    rows[2][FIELD["old_card_no"]] = "OLD000001"
    rows[2][FIELD["keep_account"]] = "0"
    # line 4: renewal of the holder's card 13 months before expiry → E118 (line 1's person)
    rows[3] = list(holder)
    rows[3][FIELD["app_no"]] = rows[3][FIELD["app_no"]] + "R"
    rows[3][FIELD["card_no"]] = "NEW000004"
    rows[3][FIELD["app_type"]] = "06"
    rows[3][FIELD["old_card_no"]] = "OLD000001"
    rows[3][FIELD["keep_account"]] = "1"
    rows[3][FIELD["replace_reason"]] = "1"
    # line 5: a card number issued before → E106
    rows[4][FIELD["card_no"]] = "OLD000002"
    # line 6: damage replacement of the applicant's own card, keeping the account → accepted
    rows[5][FIELD["app_type"]] = "06"
    rows[5][FIELD["old_card_no"]] = "OLD000003"
    rows[5][FIELD["keep_account"]] = "1"
    rows[5][FIELD["replace_reason"]] = "2"
    write_batch(rebuilt(batch, rows), server / "pickup")

    run(server, engine, tmp_path)

    assert response_codes(server, RSP) == ["E108", "E110", "E109", "E118", "E106", "", "", ""]
    with engine.connect() as conn:
        accepted = conn.execute(
            select(Application.app_no, ApplicationState.status)
            .join(ApplicationState, ApplicationState.application_id == Application.id)
            .order_by(Application.seq)
        ).all()
    assert [a for a, _ in accepted] == [rows[5][0], rows[6][0], rows[7][0]]
    assert {s for _, s in accepted} == {"accepted"}


def test_a_file_dated_ahead_is_checked_against_its_own_business_date(
    server: Path, engine: Engine, tmp_path: Path
) -> None:
    # taken on the 22nd, dated the 24th (ICD §3 allows up to five days ahead)
    batch = make_apply_batch(size=3, seed=5, business_date="20261124")
    rows = [list(r) for r in batch.rows]
    holder = rows[1]
    with engine.begin() as conn:
        conn.execute(
            insert(Card).values(
                card_no="OLD000009",
                bureau="R440100",
                id_type="01",
                id_no=holder[FIELD["id_no"]],
                name=holder[FIELD["name"]],
                bank_code=holder[FIELD["bank_code"]],
                pan="6217000000000000090",
                pan_seq="01",
                status="1",
                issue_date="20170122",
                # within 60 days of the file's date, one day too far from the 22nd
                expiry_date="20270122",
            )
        )
        conn.execute(
            insert(Account).values(
                pan="6217000000000000090",
                bank_code=holder[FIELD["bank_code"]],
                id_no=holder[FIELD["id_no"]],
                status="active",
            )
        )
    # line 1: an ID document valid until the 23rd, before the file's business date → E115
    rows[0][FIELD["id_valid_to"]] = "20261123"
    # line 2: a renewal of a card expiring 59 days after the file's date → accepted
    rows[1][FIELD["app_type"]] = "06"
    rows[1][FIELD["old_card_no"]] = "OLD000009"
    rows[1][FIELD["keep_account"]] = "1"
    rows[1][FIELD["replace_reason"]] = "1"
    write_batch(rebuilt(batch, rows), server / "pickup")

    run(server, engine, tmp_path)

    assert response_codes(server, "APPLYRSP_B001_R440100_20261124_001.txt") == ["E115", "", ""]


#: the fields of an APPLY line that say who the applicant is
PERSON = slice(FIELD["id_type"], FIELD["nationality"] + 1)
BANKS = frozenset({"B001", "B002", "B003"})


def test_one_person_one_card_counts_the_cards_issued_through_the_bureaus_of_the_province(
    server: Path, engine: Engine, tmp_path: Path
) -> None:
    batch = make_apply_batch(size=4, seed=31)
    rows = batch.rows
    # (the holder's line, the card's bureau, its status): another bureau of province 44, a
    # bureau of province 11, another bureau of 44 with the card cancelled
    held = [(rows[0], "R440300", "1"), (rows[1], "R110100", "1"), (rows[2], "R440300", "9")]
    with engine.begin() as conn:
        for n, (row, bureau, status) in enumerate(held):
            conn.execute(
                insert(Card).values(
                    card_no=f"HELD0000{n}",
                    bureau=bureau,
                    id_type="01",
                    id_no=row[FIELD["id_no"]],
                    name=row[FIELD["name"]],
                    bank_code="B001",
                    status=status,
                    issue_date="20200101",
                    expiry_date="20300101",
                )
            )
    write_batch(batch, server / "pickup")

    run(server, engine, tmp_path)

    assert response_codes(server, RSP) == ["E108", "", "", ""]


def test_an_application_in_progress_counts_for_one_person_one_card_only_within_its_province(
    server: Path, engine: Engine, tmp_path: Path
) -> None:
    batch = make_apply_batch(size=3, seed=32)
    # lines 1 and 2 apply for a first card already applied for through R440300 (province 44:
    # E108) and through R110100 (province 11: accepted); neither card is made yet
    for row, bureau in zip(batch.rows[:2], ("R440300", "R110100"), strict=True):
        other = make_apply_batch(bureau=bureau, size=1, seed=32)
        theirs = [list(r) for r in other.rows]
        theirs[0][PERSON] = row[PERSON]
        their_server = tmp_path / bureau
        (their_server / "pickup").mkdir(parents=True)
        (their_server / "drop").mkdir()
        write_batch(rebuilt(other, theirs), their_server / "pickup")
        rules = rules_for("20261122", BANKS, bureau)
        run(their_server, engine, tmp_path, bureau=bureau, conn_id=bureau.lower(), rules=rules)
        assert response_codes(their_server, f"APPLYRSP_B001_{bureau}_20261122_001.txt") == [""]
    write_batch(batch, server / "pickup")

    run(server, engine, tmp_path)

    assert response_codes(server, RSP) == ["E108", "", ""]


def test_keeping_the_number_at_a_partner_bank_needs_the_same_bank_and_a_card_with_a_pan(
    server: Path, engine: Engine, tmp_path: Path
) -> None:
    batch = make_apply_batch(size=5, seed=22)
    rows = [list(r) for r in batch.rows]
    # (old card, its bank, its PAN, hub account status, the line's bank) → expected code
    cases = [
        ("PART00001", "B002", "6229000000000000011", None, "B002", ""),
        ("PART00002", "B002", "6229000000000000029", None, "B003", "E110"),
        ("PART00003", "B003", None, None, "B003", "E110"),
        ("HUB000004", "B001", "6217000000000000041", "closed", "B001", "E110"),
        ("HUB000005", "B001", "6217000000000000058", "active", "B001", ""),
    ]
    with engine.begin() as conn:
        for row, (card_no, bank, pan, account, line_bank, _) in zip(rows, cases, strict=True):
            conn.execute(
                insert(Card).values(
                    card_no=card_no,
                    bureau="R440100",
                    id_type="01",
                    id_no=row[FIELD["id_no"]],
                    name=row[FIELD["name"]],
                    bank_code=bank,
                    pan=pan,
                    pan_seq="01" if pan else None,
                    status="1",
                    issue_date="20200101",
                    expiry_date="20300101",
                )
            )
            if account is not None:
                conn.execute(
                    insert(Account).values(
                        pan=pan, bank_code=bank, id_no=row[FIELD["id_no"]], status=account
                    )
                )
            row[FIELD["app_type"]] = "06"
            row[FIELD["old_card_no"]] = card_no
            row[FIELD["keep_account"]] = "1"
            row[FIELD["replace_reason"]] = "2"
            row[FIELD["bank_code"]] = line_bank
    write_batch(rebuilt(batch, rows), server / "pickup")

    run(server, engine, tmp_path)

    assert response_codes(server, RSP) == [expected for *_, expected in cases]


def test_repeats_inside_a_file_are_rejected_after_their_first_line_at_the_earliest_field(
    server: Path, engine: Engine, tmp_path: Path
) -> None:
    batch = make_apply_batch(size=9, seed=12)
    rows = [list(r) for r in batch.rows]
    replacing = rows[5]
    with engine.begin() as conn:
        conn.execute(
            insert(Card).values(
                card_no="OLD000005",
                bureau="R440100",
                id_type="01",
                id_no=replacing[FIELD["id_no"]],
                name=replacing[FIELD["name"]],
                bank_code=replacing[FIELD["bank_code"]],
                status="1",
                issue_date="20200101",
                expiry_date="20300101",
            )
        )
    # line 3: line 1's app_no → E107
    rows[2][FIELD["app_no"]] = rows[0][FIELD["app_no"]]
    # line 4: line 2's applicant applying for a first card again → E108
    rows[3] = list(rows[1])
    rows[3][FIELD["app_no"]] = rows[1][FIELD["app_no"]] + "B"
    rows[3][FIELD["card_no"]] = "NEW000004"
    # line 5: line 1's card number → E106
    rows[4][FIELD["card_no"]] = rows[0][FIELD["card_no"]]
    # lines 6 and 7: the same old card replaced twice for its holder → line 7 E109
    rows[5][FIELD["app_type"]] = "06"
    rows[5][FIELD["old_card_no"]] = "OLD000005"
    rows[5][FIELD["keep_account"]] = "0"
    rows[5][FIELD["replace_reason"]] = "2"
    rows[6] = list(rows[5])
    rows[6][FIELD["app_no"]] = rows[5][FIELD["app_no"]] + "B"
    rows[6][FIELD["card_no"]] = "NEW000007"
    # line 8: line 2's card number, and a mobile number too short, which comes first → E114
    rows[7][FIELD["card_no"]] = rows[1][FIELD["card_no"]]
    rows[7][FIELD["mobile"]] = "1390000"
    write_batch(rebuilt(batch, rows), server / "pickup")

    run(server, engine, tmp_path, chunk_lines=2)

    assert response_codes(server, RSP) == ["", "", "E107", "E108", "E106", "", "E109", "E114", ""]


def test_a_line_whose_app_no_is_no_key_is_answered_at_its_seq_with_app_no_invalid(
    server: Path, engine: Engine, tmp_path: Path
) -> None:
    batch = make_apply_batch(size=5, seed=21)
    rows = [list(r) for r in batch.rows]
    rows[0][FIELD["app_no"]] = "A1\rB2"  # a bare CR is content, not a line end (ICD §4.1)
    rows[1][FIELD["app_no"]] = "申请0001"
    rows[2][FIELD["app_no"]] = "A" * 70
    rows[3][FIELD["app_no"]] = ""
    write_batch(rebuilt(batch, rows), server / "pickup")

    outcomes = run(server, engine, tmp_path)

    assert [o.outcome for o in outcomes] == ["accepted"]
    # a parser written from the ICD alone reads the answer: every line keeps the layout
    answers = read_applyrsp((server / "drop" / RSP).read_bytes())
    assert answers == [("INVALID", "01", "E116")] * 4 + [(rows[4][FIELD["app_no"]], "00", "")]
    assert count(engine, ApplyLine) == 4 and count(engine, Application) == 1
    write_batch(rebuilt(batch, rows), server / "pickup")
    assert [o.outcome for o in run(server, engine, tmp_path)] == ["redelivered"]


def test_a_key_answered_before_is_answered_again_unchanged_and_reused_for_other_content_is_e107(
    server: Path, engine: Engine, tmp_path: Path
) -> None:
    first = make_apply_batch(size=5, seed=4, bad_share={"E105": 0.2})
    write_batch(first, server / "pickup")
    run(server, engine, tmp_path)
    first_answers = read_applyrsp((server / "drop" / RSP).read_bytes())

    again = make_apply_batch(size=3, seed=5, seq=2)
    rows = [list(r) for r in again.rows]
    rows[0] = list(first.rows[0])  # same key, same content
    rows[1] = list(first.rows[1])
    rows[1][FIELD["mobile"]] = "13900000000"  # same key, other content
    write_batch(rebuilt(again, rows), server / "pickup")
    run(server, engine, tmp_path)

    second = read_applyrsp(
        (server / "drop" / "APPLYRSP_B001_R440100_20261122_002.txt").read_bytes()
    )
    assert second[0] == first_answers[0]
    assert second[1] == (first.rows[1][0], "01", "E107")
    assert second[2][1:] == ("00", "")
    assert count(engine, Application) == sum(1 for _, r, _ in first_answers if r == "00") + 1


@pytest.mark.parametrize("chunk_lines", [1, 4, 1000])
def test_answers_do_not_depend_on_where_the_chunks_end(
    server: Path, engine: Engine, tmp_path: Path, chunk_lines: int
) -> None:
    first = make_apply_batch(size=4, seed=21)
    first_rows = [list(r) for r in first.rows]
    first_rows[1][FIELD["mobile"]] = "1390000"
    write_batch(rebuilt(first, first_rows), server / "pickup")
    run(server, engine, tmp_path, chunk_lines=chunk_lines)
    assert response_codes(server, RSP) == ["", "E114", "", ""]

    again = make_apply_batch(size=11, seed=22, seq=2)
    rows = [list(r) for r in again.rows]
    rows[0] = list(first_rows[0])  # answered before, same content: its answer again
    rows[1] = list(first_rows[1])  # rejected before, same content: its answer again
    rows[2][FIELD["mobile"]] = "1390000"  # rejected: E114
    rows[3][FIELD["app_no"]] = rows[2][FIELD["app_no"]]  # after a rejected first: E107
    rows[5][FIELD["card_no"]] = rows[4][FIELD["card_no"]]  # E106
    rows[7] = list(rows[6])  # line 7's applicant again
    rows[7][FIELD["app_no"]] = rows[6][FIELD["app_no"]] + "B"
    rows[7][FIELD["card_no"]] = "NEW000008"  # E108
    rows[8] = list(rows[8])
    rows[8][FIELD["app_no"]] = first_rows[0][FIELD["app_no"]]  # other content: E107
    rows[9] = list(first_rows[0])  # answered before, again: its answer again
    rows[10][FIELD["card_no"]] = rows[2][FIELD["card_no"]]  # after a rejected first: E106
    write_batch(rebuilt(again, rows), server / "pickup")
    run(server, engine, tmp_path, chunk_lines=chunk_lines)

    answers = read_applyrsp(
        (server / "drop" / "APPLYRSP_B001_R440100_20261122_002.txt").read_bytes()
    )
    assert [code for _, _, code in answers] == [
        "", "E114", "E114", "E107", "", "E106", "", "E108", "E107", "", "E106"
    ]  # fmt: skip
    assert [result for _, result, _ in answers] == [
        "00", "01", "01", "01", "00", "01", "00", "01", "01", "00", "01"
    ]  # fmt: skip
    with engine.connect() as conn:
        stored = conn.scalars(select(Application.app_no).order_by(Application.id)).all()
    assert stored == [first_rows[i][0] for i in (0, 2, 3)] + [rows[4][0], rows[6][0]]
    assert count(engine, ApplicationState) == 5
    assert count(engine, ApplyLine) == 1 + 6


LAND_PHOTOS, STORE_CHUNK = intake_module.land_photos, apply_store.store_chunk


def zip_lands_late(monkeypatch: pytest.MonkeyPatch, after_hi: Callable[[int], bool]) -> None:
    """Hold the photo zip back until a chunk whose last SEQ satisfies ``after_hi`` has been
    stored, so the chunks before it wait for the photo rule (for the next run only)."""
    ready = threading.Event()
    land_photos, store_chunk = LAND_PHOTOS, STORE_CHUNK

    def late(*args: Any) -> Any:
        assert ready.wait(60), "the zip was never let through"
        return land_photos(*args)

    def store(*args: Any) -> Any:
        stored = store_chunk(*args)
        if after_hi(args[-1]):
            ready.set()
        return stored

    monkeypatch.setattr(intake_module, "land_photos", late)
    monkeypatch.setattr(apply_store, "store_chunk", store)


@pytest.mark.parametrize(
    "zip_lands", ["at once", "after the first chunk", "after the last", "late, lines wait"]
)
def test_a_sandbox_batch_is_answered_alike_whatever_the_chunk_size(
    zip_lands: str, engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every kind of bad line, with the in-file repeats (E106, E107, E108, and exact copies
    of earlier lines, lines with a missing photo among them) falling inside one chunk or
    across chunks depending on the size; and whenever the photo zip lands, the chunks
    stored before it are answered alike."""
    batch = make_apply_batch(size=400, seed=31, bad_share={code: 0.02 for code in LINE_KINDS})
    rows = [list(r) for r in batch.rows]
    no_photo = [i for i, code in enumerate(batch.expected) if code == "E113"]
    assert len(no_photo) >= 2
    copies = [list(rows[i]) for i in (0, 6, 7, 49, 50, 199, *no_photo[:2])]
    batch = rebuilt(batch, rows + copies)
    expected = [*batch.expected, *["E107"] * len(copies)]

    seen: list[tuple[bytes, list[tuple[object, ...]], list[tuple[object, ...]]]] = []
    for chunk_lines in (7, 50, 50_000):
        server = tmp_path / f"sftp{chunk_lines}"
        (server / "pickup").mkdir(parents=True)
        (server / "drop").mkdir()
        write_batch(batch, server / "pickup")
        if zip_lands == "late, lines wait":
            # More than one line stored ahead of the zip: the lines wait for it.
            monkeypatch.setattr(intake_module, "MAX_UNSETTLED", 1)
            zip_lands_late(monkeypatch, lambda hi: True)
        if zip_lands == "after the first chunk":
            zip_lands_late(monkeypatch, lambda hi: True)
        elif zip_lands == "after the last":
            zip_lands_late(monkeypatch, lambda hi: hi == len(expected))
        run(server, engine, tmp_path / str(chunk_lines), chunk_lines=chunk_lines)
        response = (server / "drop" / RSP).read_bytes()
        with engine.connect() as conn:
            stored = [
                tuple(r)
                for r in conn.execute(
                    select(Application.seq, Application.app_no, Application.content_sha).order_by(
                        Application.id
                    )
                )
            ]
            lines = [
                tuple(r)
                for r in conn.execute(
                    select(ApplyLine.seq, ApplyLine.reason_code, ApplyLine.reason_field).order_by(
                        ApplyLine.seq
                    )
                )
            ]
        seen.append((response, stored, lines))
        codes = [code or None for _, _, code in read_applyrsp(response)]
        assert codes == expected, f"chunks of {chunk_lines} lines"
        with engine.begin() as conn:
            for table in reversed(Base.metadata.sorted_tables):
                conn.execute(table.delete())

    assert seen[0] == seen[1] == seen[2]
    response, stored, lines = seen[0]
    assert len(stored) == expected.count(None)
    assert [seq for seq, _, _ in stored] == [i + 1 for i, c in enumerate(expected) if c is None]
    assert len(lines) == len(expected) - expected.count(None)


def test_accepted_lines_are_stored_field_for_field_with_their_state(
    server: Path, engine: Engine, tmp_path: Path
) -> None:
    """Each accepted line becomes one application holding exactly the line's fields, its
    file, SEQ and business date, with one state row. On PostgreSQL the sequence steps by 3
    meanwhile, as if another writer took the ids in between."""
    batch = make_apply_batch(size=120, seed=12, bad_share={"E104": 0.05, "E106": 0.05})
    write_batch(batch, server / "pickup")
    postgres = engine.dialect.name == "postgresql"
    if postgres:
        with engine.begin() as conn:
            conn.execute(text("ALTER SEQUENCE application_id_seq INCREMENT BY 3"))
    try:
        run(server, engine, tmp_path, chunk_lines=50)
    finally:
        if postgres:
            with engine.begin() as conn:
                conn.execute(text("ALTER SEQUENCE application_id_seq INCREMENT BY 1"))

    with engine.connect() as conn:
        file_id = conn.scalar(select(ReceivedFile.id))
        apps = conn.execute(select(Application).order_by(Application.id)).all()
        states = dict(
            conn.execute(select(ApplicationState.application_id, ApplicationState.status)).all()
        )
    accepted = [i + 1 for i, code in enumerate(batch.expected) if code is None]
    assert 0 < len(accepted) < len(batch.rows)
    assert [a.seq for a in apps] == accepted
    for a in apps:
        assert [getattr(a, name) for name in APPLY.names] == list(batch.rows[a.seq - 1])
        assert (a.bureau, a.file_id, a.business_date) == ("R440100", file_id, "20261122")
    assert states == {a.id: "accepted" for a in apps}
    if postgres:
        assert {b.id - a.id for a, b in pairwise(apps)} == {3}


@pytest.mark.parametrize(
    "kind", ["F01", "F02", "F03", "F04", "F04_receiver", "F06", "F07", "F08", "F09", "F10"]
)
def test_a_file_rejected_as_a_whole_gets_a_rej_and_goes_to_rejected(
    kind: str, server: Path, engine: Engine, tmp_path: Path
) -> None:
    batch = make_bad_file(kind, size=6)
    write_batch(batch, server / "pickup")

    outcomes = run(server, engine, tmp_path)

    assert [(o.outcome, o.file_code) for o in outcomes] == [("rejected", batch.expected_file_code)]
    rej = (server / "drop" / f"{batch.name}.rej").read_bytes().decode("utf-8")
    assert rej.startswith(f"{batch.name}|{batch.expected_file_code}|")
    assert rej.endswith("\r\n") and rej.count("\n") == 1
    assert (server / "pickup" / "rejected" / "20261122" / batch.name).exists()
    assert count(engine, Application) == 0 and count(engine, ApplyLine) == 0
    assert not list((server / "drop").glob("APPLYRSP*"))


@pytest.mark.parametrize(("date", "code"), [("20261121", "F04"), ("20261122", "F03")])
def test_the_header_is_judged_before_bytes_that_do_not_decode_further_on(
    date: str, code: str, server: Path, engine: Engine, tmp_path: Path
) -> None:
    batch = make_apply_batch(size=3, seed=17)
    header = dataclasses.replace(batch.header, business_date=date)
    name = batch.name.replace("20261122", date)
    data = render(header, batch.rows).replace(b"D|3|", b"D|3|\xff", 1)  # no GB18030 byte
    (server / "pickup" / name).write_bytes(data)
    (server / "pickup" / f"{name}.ok").write_bytes(Control.for_bytes(name, data, 3).render())

    outcomes = run(server, engine, tmp_path)

    assert [(o.outcome, o.file_code) for o in outcomes] == [("rejected", code)]


@pytest.mark.parametrize("chunk_lines", [1, 2, 300])
@pytest.mark.parametrize("text_kind", ["F06", "F08"])
def test_a_bad_photo_zip_is_the_reason_given_even_when_the_lines_are_bad_too(
    text_kind: str, chunk_lines: int, server: Path, engine: Engine, tmp_path: Path
) -> None:
    """The zip lands while the lines are read: whichever is found first, the file is
    answered as if the zip had been checked before the first line (F10), every time."""
    bad_zip = make_bad_file("F10", size=6)
    bad_text = make_bad_file(text_kind, size=6)
    assert bad_text.zip_name == bad_zip.zip_name
    both = dataclasses.replace(bad_text, zip_data=bad_zip.zip_data, zip_control=bad_zip.zip_control)
    write_batch(both, server / "pickup")

    outcomes = run(server, engine, tmp_path, chunk_lines=chunk_lines)

    assert [(o.outcome, o.file_code) for o in outcomes] == [("rejected", "F10")]
    rej = (server / "drop" / f"{both.name}.rej").read_bytes().decode("utf-8")
    assert rej.startswith(f"{both.name}|F10|")
    assert (server / "pickup" / "rejected" / "20261122" / both.zip_name).exists()
    assert count(engine, Application) == 0 and count(engine, ApplyLine) == 0


def test_a_photo_forged_to_the_size_and_crc_of_another_lines_photo_is_answered_e113(
    server: Path, engine: Engine, tmp_path: Path
) -> None:
    batch = make_apply_batch(size=6, seed=8, bad_share={})
    assert batch.zip_data is not None and batch.expected == [None] * 6
    with zipfile.ZipFile(io.BytesIO(batch.zip_data)) as archive:
        entries = [(info.filename, archive.read(info)) for info in archive.infolist()]
    forged = entries[3][0]
    entries[3] = (forged, forged_copy(entries[0][1]))
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:
        for name, data in entries:
            archive.writestr(name, data)
    zip_data = buffer.getvalue()
    zip_control = Control.for_bytes(batch.zip_name, zip_data, len(entries)).render()
    write_batch(
        dataclasses.replace(batch, zip_data=zip_data, zip_control=zip_control), server / "pickup"
    )

    run(server, engine, tmp_path)

    assert response_codes(server, RSP) == [
        "E113" if row[FIELD["photo"]] == forged else "" for row in batch.rows
    ]
    assert count(engine, Application) == 5


def test_a_zip_that_cannot_be_landed_leaves_the_file_for_a_later_run_even_when_its_lines_are_bad(
    server: Path, engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    batch = make_bad_file("F06", size=6)
    write_batch(batch, server / "pickup")

    def unreachable(*args: Any) -> Any:
        raise TransientTransportError("connection reset while downloading the zip")

    monkeypatch.setattr(intake_module, "land_photos", unreachable)
    with pytest.raises(TransientTransportError):
        run(server, engine, tmp_path)

    assert (server / "pickup" / batch.name).exists()
    assert not list((server / "drop").glob("*"))
    assert count(engine, ReceivedFile) == 0 and count(engine, ApplyLine) == 0
    monkeypatch.undo()
    assert [(o.outcome, o.file_code) for o in run(server, engine, tmp_path)] == [
        ("rejected", "F06")
    ]


def test_a_name_and_batch_reused_with_other_content_is_f05_and_the_first_file_stands(
    server: Path, engine: Engine, tmp_path: Path
) -> None:
    batch = make_apply_batch(size=5, seed=6)
    write_batch(batch, server / "pickup")
    run(server, engine, tmp_path)
    changed = make_changed_redelivery(batch)
    write_batch(changed, server / "pickup")

    outcomes = run(server, engine, tmp_path)

    assert [(o.outcome, o.file_code) for o in outcomes] == [("rejected", "F05")]
    assert count(engine, Application) == 5


def test_a_rejected_file_name_is_not_consumed_so_a_corrected_file_is_accepted(
    server: Path, engine: Engine, tmp_path: Path
) -> None:
    bad = make_bad_file("F08", size=4)
    write_batch(bad, server / "pickup")
    run(server, engine, tmp_path)
    good = make_apply_batch(size=4, seed=0)
    assert good.name == bad.name
    write_batch(good, server / "pickup")

    outcomes = run(server, engine, tmp_path)

    assert [o.outcome for o in outcomes] == ["accepted"]


@pytest.mark.parametrize(
    ("step", "call"),
    [
        ("store_chunk", 3),  # chunks 1 and 2 of 3 stored
        ("chunk_answers", 3),  # chunks 1 and 2 of 3 answered in the response file
        ("commit_lines", 1),  # every chunk stored and answered
    ],
)
def test_a_crash_half_way_leaves_no_trace_and_the_next_run_redoes_the_file(
    server: Path,
    engine: Engine,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    step: str,
    call: int,
) -> None:
    batch = make_apply_batch(size=900, seed=8)
    write_batch(batch, server / "pickup")
    real = getattr(intake_module.apply_store, step)
    calls: list[int] = []

    def crash(*args: object, **kwargs: object) -> object:
        calls.append(1)
        if len(calls) == call:
            raise RuntimeError("power cut")
        return real(*args, **kwargs)

    with monkeypatch.context() as m:
        m.setattr(intake_module.apply_store, step, crash)
        with pytest.raises(IntakeIncomplete, match=batch.name):
            run(server, engine, tmp_path)  # the error met half-way is logged
    assert (
        count(engine, ReceivedFile),
        count(engine, Application),
        count(engine, ApplicationState),
        count(engine, ApplyLine),
        count(engine, OutboundFile),
    ) == (0, 0, 0, 0, 0)
    assert not list((tmp_path / "work").rglob("APPLYRSP*"))
    assert not Storage(str(tmp_path / "storage")).keys("outbox")
    assert (server / "pickup" / batch.name).exists()
    assert not (server / "drop" / RSP).exists()

    outcomes = run(server, engine, tmp_path)

    assert [o.accepted for o in outcomes] == [900]
    assert response_codes(server, RSP) == [""] * 900


def test_an_undelivered_response_is_sent_by_the_next_run_and_only_once(
    server: Path, engine: Engine, tmp_path: Path
) -> None:
    batch = make_apply_batch(size=3, seed=9)
    write_batch(batch, server / "pickup")
    remote = LocalRemote(server)
    ctx = context(tmp_path)
    run_intake(remote, engine, ctx)
    assert not (server / "drop" / RSP).exists()

    assert deliver(remote, engine, ctx.store, ctx.conn_id, ctx.now) == 1
    assert deliver(remote, engine, ctx.store, ctx.conn_id, ctx.now) == 0
    assert (server / "drop" / f"{RSP}.ok").exists()


def test_a_file_naming_photos_waits_for_its_zip_then_is_f10_after_zip_wait(
    server: Path, engine: Engine, tmp_path: Path
) -> None:
    batch = make_apply_batch(size=3, seed=10)
    waiting = dataclasses.replace(batch, zip_data=None, zip_control=None)
    write_batch(waiting, server / "pickup")

    first = run(server, engine, tmp_path, now=NOW)
    later = run(server, engine, tmp_path, now=NOW + timedelta(minutes=119))
    assert [o.outcome for o in first + later] == ["waiting", "waiting"]
    assert (server / "pickup" / batch.name).exists()

    final = run(server, engine, tmp_path, now=NOW + timedelta(minutes=120))

    assert [(o.outcome, o.file_code) for o in final] == [("rejected", "F10")]
    with engine.connect() as conn:
        assert conn.execute(select(ReceivedFile.outcome, ReceivedFile.file_code)).all() == [
            ("rejected", "F10")
        ]


def test_the_same_data_file_sent_again_with_its_zip_after_f10_is_taken_afresh(
    server: Path, engine: Engine, tmp_path: Path
) -> None:
    batch = make_apply_batch(size=3, seed=16)
    write_batch(dataclasses.replace(batch, zip_data=None, zip_control=None), server / "pickup")
    run(server, engine, tmp_path, now=NOW)
    assert [o.file_code for o in run(server, engine, tmp_path, now=NOW + timedelta(hours=2))] == [
        "F10"
    ]
    for taken in (server / "drop").iterdir():  # the bureau collects the .rej
        taken.unlink()
    write_batch(dataclasses.replace(batch, zip_data=None, zip_control=None), server / "pickup")
    again = run(server, engine, tmp_path, now=NOW + timedelta(hours=2, minutes=30))
    assert [(o.outcome, o.file_code) for o in again] == [("redelivered", "F10")]  # unchanged
    assert not list((server / "drop").iterdir())
    write_batch(batch, server / "pickup")  # the same data file, now with its zip

    outcomes = run(server, engine, tmp_path, now=NOW + timedelta(hours=3))

    assert [(o.outcome, o.file_code) for o in outcomes] == [("accepted", None)]
    assert response_codes(server, RSP) == ["", "", ""]
    assert not (server / "drop" / f"{batch.name}.rej").exists()


def test_a_name_rejected_twice_gets_its_second_rej_once_the_bureau_has_taken_the_first(
    server: Path, engine: Engine, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    first, second = make_bad_file("F08", size=4), make_bad_file("F02", size=4)
    assert first.name == second.name
    rej = server / "drop" / f"{first.name}.rej"
    write_batch(first, server / "pickup")
    assert [o.file_code for o in run(server, engine, tmp_path)] == ["F08"]
    write_batch(second, server / "pickup")  # corrected, still wrong; the .rej not taken yet

    assert [o.file_code for o in run(server, engine, tmp_path)] == ["F02"]
    assert rej.read_bytes().startswith(f"{first.name}|F08|".encode())
    assert "still in drop; kept in the outbox" in caplog.text

    for taken in (server / "drop").iterdir():
        taken.unlink()
    ctx = context(tmp_path)
    assert deliver(LocalRemote(server), engine, ctx.store, ctx.conn_id, ctx.now) == 1
    assert rej.read_bytes().startswith(f"{first.name}|F02|".encode())
    assert count(engine, OutboundFile) == 1


def test_a_rej_queued_again_while_the_earlier_one_is_being_delivered_is_still_delivered(
    server: Path, engine: Engine, tmp_path: Path
) -> None:
    from persistence import registry

    first = make_bad_file("F08", size=4)
    write_batch(first, server / "pickup")
    ctx = context(tmp_path)
    run_intake(LocalRemote(server), engine, ctx)
    with engine.connect() as conn:  # a deliverer reads the pending .rej …
        (older,) = registry.pending_outbound(conn, ctx.conn_id)
    with engine.begin() as conn:  # … the NAME is rejected again meanwhile …
        registry.queue_answer_again(
            conn,
            conn_id=ctx.conn_id,
            directory="drop",
            name=f"{first.name}.rej",
            type_="REJ",
            data=b"a later answer",
            record_count=1,
            created_at=NOW,
            source_file_id=conn.scalar(select(func.max(ReceivedFile.id))),
        )
    with engine.begin() as conn:  # … and the deliverer marks what it sent
        registry.mark_delivered(conn, older, NOW)

    with engine.connect() as conn:
        (still,) = registry.pending_outbound(conn, ctx.conn_id)
    assert still.stored == b"a later answer"


def test_a_file_rejected_for_its_own_bytes_and_sent_again_unchanged_is_not_answered_again(
    server: Path, engine: Engine, tmp_path: Path
) -> None:
    batch = make_bad_file("F06", size=4)
    write_batch(batch, server / "pickup")
    assert [o.file_code for o in run(server, engine, tmp_path)] == ["F06"]
    for taken in (server / "drop").iterdir():  # the bureau collects the .rej
        taken.unlink()
    write_batch(batch, server / "pickup")

    outcomes = run(server, engine, tmp_path)

    assert [(o.outcome, o.file_code) for o in outcomes] == [("redelivered", "F06")]
    assert not list((server / "drop").iterdir())
    assert count(engine, ReceivedFile) == 1


def test_a_zip_without_its_ok_is_not_complete_so_the_file_waits(
    server: Path, engine: Engine, tmp_path: Path
) -> None:
    batch = make_bad_file("F10_zip_control_missing", size=3)
    write_batch(batch, server / "pickup")

    assert [o.outcome for o in run(server, engine, tmp_path)] == ["waiting"]
    assert [o.file_code for o in run(server, engine, tmp_path, now=NOW + timedelta(hours=2))] == [
        "F10"
    ]


def test_a_photo_zips_control_file_too_large_to_be_one_is_f10_and_never_read(
    server: Path, engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    batch = make_apply_batch(size=3, seed=12)
    write_batch(batch, server / "pickup")
    assert batch.zip_control is not None
    (server / "pickup" / f"{batch.zip_name}.ok").write_bytes(batch.zip_control + b"0" * (8 << 20))
    read: list[str] = []
    read_bytes = LocalRemote.read_bytes

    def reading(remote: LocalRemote, path: str, limit: int | None = None) -> bytes:
        read.append(path)
        return read_bytes(remote, path, limit)

    monkeypatch.setattr(LocalRemote, "read_bytes", reading)

    outcomes = run(server, engine, tmp_path)

    assert [(o.outcome, o.file_code) for o in outcomes] == [("rejected", "F10")]
    assert f"pickup/{batch.zip_name}.ok" not in read
    assert count(engine, Application) == 0


def test_a_zip_arriving_within_zip_wait_completes_the_file(
    server: Path, engine: Engine, tmp_path: Path
) -> None:
    batch = make_apply_batch(size=3, seed=11)
    write_batch(dataclasses.replace(batch, zip_data=None, zip_control=None), server / "pickup")
    assert [o.outcome for o in run(server, engine, tmp_path)] == ["waiting"]
    write_batch(batch, server / "pickup")

    outcomes = run(server, engine, tmp_path, now=NOW + timedelta(minutes=30))

    assert [o.outcome for o in outcomes] == ["accepted"]
    assert response_codes(server, RSP) == ["", "", ""]
    assert count(engine, ReceivedFile) == 1


@pytest.mark.parametrize("text_in_flight", [False, True])
def test_a_photo_zip_arriving_before_its_data_file_waits_for_it(
    text_in_flight: bool, server: Path, engine: Engine, tmp_path: Path
) -> None:
    batch = make_apply_batch(size=3, seed=13)
    pickup = server / "pickup"
    assert batch.zip_data is not None and batch.zip_control is not None
    (pickup / batch.zip_name).write_bytes(batch.zip_data)
    (pickup / f"{batch.zip_name}.ok").write_bytes(batch.zip_control)
    if text_in_flight:
        (pickup / f"{batch.name}.part").write_bytes(batch.data[:100])

    assert run(server, engine, tmp_path) == []
    assert (pickup / batch.zip_name).exists() and not list((server / "drop").iterdir())
    with engine.connect() as conn:  # dated, for its zip_wait
        assert conn.execute(select(ReceivedFile.name, ReceivedFile.outcome)).all() == [
            (batch.zip_name, "waiting")
        ]
    (pickup / f"{batch.name}.part").unlink(missing_ok=True)
    write_batch(batch, pickup)

    outcomes = run(server, engine, tmp_path, now=NOW + timedelta(minutes=15))

    assert [(o.outcome, o.file_code) for o in outcomes] == [("accepted", None)]
    assert response_codes(server, RSP) == ["", "", ""]
    assert (pickup / "archive" / "20261122" / batch.zip_name).exists()


def test_a_photo_zip_whose_data_file_never_comes_is_f04_after_zip_wait(
    server: Path, engine: Engine, tmp_path: Path
) -> None:
    batch = make_apply_batch(size=3, seed=18)
    assert batch.zip_data is not None and batch.zip_control is not None
    pickup = server / "pickup"
    (pickup / batch.zip_name).write_bytes(batch.zip_data)
    (pickup / f"{batch.zip_name}.ok").write_bytes(batch.zip_control)

    assert run(server, engine, tmp_path) == []
    assert run(server, engine, tmp_path, now=NOW + timedelta(minutes=119)) == []
    outcomes = run(server, engine, tmp_path, now=NOW + timedelta(minutes=120))

    assert [(o.name, o.outcome, o.file_code) for o in outcomes] == [
        (batch.zip_name, "rejected", "F04")
    ]
    rej = (server / "drop" / f"{batch.zip_name}.rej").read_bytes()
    assert rej.startswith(f"{batch.zip_name}|F04|".encode())
    assert (pickup / "rejected" / "20261122" / batch.zip_name).exists()
    assert not (pickup / batch.zip_name).exists()


def test_a_lone_zip_with_a_name_longer_than_the_registry_keeps_is_answered_after_zip_wait(
    server: Path, engine: Engine, tmp_path: Path
) -> None:
    """The registry keeps a name's first 100 characters: a lone zip with a longer name
    is still found there run after run, so its zip_wait runs out and it is answered."""
    pickup = server / "pickup"
    name = "X" * 120 + ".zip"
    (pickup / name).write_bytes(b"PK")
    assert run(server, engine, tmp_path) == []
    outcomes = run(server, engine, tmp_path, now=NOW + timedelta(minutes=120))
    assert [(o.name, o.outcome, o.file_code) for o in outcomes] == [(name, "rejected", "F04")]
    assert (pickup / "rejected" / "20261122" / name).exists()


def test_a_photo_zip_alone_for_a_while_is_forgotten_once_its_data_file_comes(
    server: Path, engine: Engine, tmp_path: Path
) -> None:
    batch = make_apply_batch(size=3, seed=19)
    assert batch.zip_data is not None and batch.zip_control is not None
    pickup = server / "pickup"
    (pickup / batch.zip_name).write_bytes(batch.zip_data)
    (pickup / f"{batch.zip_name}.ok").write_bytes(batch.zip_control)
    assert run(server, engine, tmp_path) == []
    write_batch(batch, pickup)

    outcomes = run(server, engine, tmp_path, now=NOW + timedelta(minutes=119))

    assert [(o.outcome, o.file_code) for o in outcomes] == [("accepted", None)]
    with engine.connect() as conn:
        assert conn.execute(select(ReceivedFile.name, ReceivedFile.outcome)).all() == [
            (batch.name, "accepted")
        ]


def test_a_file_of_a_type_no_bureau_sends_is_f04_and_status_and_disb_are_left_for_their_flows(
    server: Path, engine: Engine, tmp_path: Path
) -> None:
    batch = make_apply_batch(size=2, seed=14)
    pickup = server / "pickup"
    names = {
        "APPLYX_R440100_B001_20261122_001.txt": "rejected",
        "APPLYRSP_R440100_B001_20261122_001.txt": "rejected",
        "STATUS_R440100_B001_20261122_001.txt": "left",
        "DISB_R440100_B001_20261122_001.txt": "left",
    }
    for name in names:
        (pickup / name).write_bytes(batch.data)
        (pickup / f"{name}.ok").write_bytes(Control.for_bytes(name, batch.data, 2).render())

    outcomes = run(server, engine, tmp_path)

    assert sorted((o.name, o.outcome, o.file_code) for o in outcomes) == [
        (n, "rejected", "F04") for n in sorted(n for n, fate in names.items() if fate != "left")
    ]
    for name, fate in names.items():
        assert (pickup / name).exists() == (fate == "left")
        assert (server / "drop" / f"{name}.rej").exists() == (fate == "rejected")


def test_a_name_that_does_not_match_the_icd_is_f07_and_builds_no_local_path(
    server: Path, engine: Engine, tmp_path: Path
) -> None:
    batch = make_apply_batch(size=2, seed=15)
    name = batch.name.removesuffix(".txt") + ".TXT"
    (server / "pickup" / name).write_bytes(batch.data)
    (server / "pickup" / f"{name}.ok").write_bytes(Control.for_bytes(name, batch.data, 2).render())

    outcomes = run(server, engine, tmp_path)

    assert [(o.outcome, o.file_code) for o in outcomes] == [("rejected", "F07")]
    assert (server / "drop" / f"{name}.rej").read_bytes().startswith(f"{name}|F07|".encode())
    received = Storage(str(tmp_path / "storage")).keys("received")
    assert received and not [n for n in received if name in n]
    assert (server / "pickup" / "rejected" / "20261122" / name).exists()


@pytest.mark.parametrize("path", ["statement", "bulk load"])
def test_a_file_that_fails_unexpectedly_is_left_in_pickup_while_the_others_go_on(
    path: str,
    server: Path,
    engine: Engine,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    first, second = (make_apply_batch(size=3, seed=33, seq=n) for n in (1, 2))
    for batch in (first, second):
        write_batch(batch, server / "pickup")
    holder = first.rows[0][FIELD["id_no"]]
    commit_lines = apply_store.commit_lines
    calls: list[int] = []

    def failing(conn: Any, file_id: int, sender: str) -> None:
        calls.append(file_id)
        if len(calls) == 1 and path == "statement":  # a defect met by the first file only
            conn.execute(
                text("INSERT INTO apply_line (file_id) VALUES (:id_no)"), {"id_no": holder}
            )
        elif len(calls) == 1:  # the driver's own error (COPY on PostgreSQL) quotes the value
            bulk_load(conn, "apply_line", pa.table({"file_id": [holder]}), ["file_id"])
        commit_lines(conn, file_id, sender)

    monkeypatch.setattr(apply_store, "commit_lines", failing)

    with pytest.raises(IntakeIncomplete) as caught:
        run(server, engine, tmp_path)

    assert caught.value.names == [first.name]
    assert (server / "pickup" / first.name).exists()
    assert (server / "pickup" / "archive" / "20261122" / second.name).exists()
    with engine.connect() as conn:
        assert conn.execute(select(ReceivedFile.name, ReceivedFile.outcome)).all() == [
            (second.name, "accepted")
        ]
    assert f"{first.name}: could not be processed" in caplog.text
    assert "SQLSTATE" in caplog.text
    if path == "statement":
        assert "INSERT INTO apply_line (file_id) VALUES" in caplog.text  # what failed
    assert holder not in caplog.text  # not even where the database's message quotes it
    monkeypatch.setattr(apply_store, "commit_lines", commit_lines)
    ctx = context(tmp_path)
    deliver(LocalRemote(server), engine, ctx.store, ctx.conn_id, ctx.now)
    assert (server / "drop" / "APPLYRSP_B001_R440100_20261122_002.txt").exists()

    assert [o.outcome for o in run(server, engine, tmp_path)] == ["accepted"]
    assert response_codes(server, RSP) == ["", "", ""]


def test_an_unexpected_error_quoting_a_pan_and_an_id_number_is_logged_with_both_masked(
    server: Path,
    engine: Engine,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    batch = make_apply_batch(size=3, seed=34)
    write_batch(batch, server / "pickup")
    holder = batch.rows[0][FIELD["id_no"]]
    pan = "6217881000000000018"

    def failing(conn: Any, file_id: int, sender: str) -> None:
        raise KeyError(f"{pan} of {holder}")  # a lookup keyed by the values themselves

    monkeypatch.setattr(apply_store, "commit_lines", failing)
    with pytest.raises(IntakeIncomplete):
        run(server, engine, tmp_path)

    (line,) = [r.getMessage() for r in caplog.records if "could not be processed" in r.getMessage()]
    assert pan not in caplog.text and holder not in caplog.text
    assert f"KeyError: '621788****0018 of {holder[:6]}{'*' * 10}{holder[-2:]}'" in line


def test_a_file_without_its_ok_is_left_alone(server: Path, engine: Engine, tmp_path: Path) -> None:
    batch = make_apply_batch(size=2, seed=12)
    (server / "pickup" / batch.name).write_bytes(batch.data)

    assert run(server, engine, tmp_path) == []
    assert (server / "pickup" / batch.name).exists()


def test_a_utf8_bureau_is_read_and_answered_in_utf8(
    server: Path, engine: Engine, tmp_path: Path
) -> None:
    batch = make_apply_batch(size=4, seed=13, encoding="UTF-8")
    write_batch(batch, server / "pickup")

    run(server, engine, tmp_path, encoding="UTF-8")

    text = (server / "drop" / RSP).read_bytes().decode("utf-8")
    assert text.startswith("H|APPLYRSP|B001|R440100|")
    assert [c for _, _, c in read_applyrsp(text.encode("utf-8"), "UTF-8")] == ["", "", "", ""]


def test_task_logs_show_counts_by_code_and_never_an_id_number_or_a_name(
    server: Path, engine: Engine, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    batch = make_apply_batch(size=60, seed=14, bad_share={"E101": 0.05, "E104": 0.05, "E113": 0.05})
    write_batch(batch, server / "pickup")

    with caplog.at_level("DEBUG"):
        run(server, engine, tmp_path)

    text = "\n".join(r.getMessage() for r in caplog.records)
    assert "accepted=51 rejected=9 (E101=3, E104=3, E113=3)" in text
    for row in batch.rows:
        assert row[FIELD["id_no"]] not in text
        assert row[FIELD["name"]] not in text
