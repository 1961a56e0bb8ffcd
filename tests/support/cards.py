"""Made cards and their accounts, written straight into the hub's tables for the
servicing tests (issuance has its own end-to-end tests), and request files to feed the
servicing steps."""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import Connection, text
from stdnum import luhn

from persistence import registry
from schemas.codec import DelimitedReader, Header, write_delimited
from schemas.layouts import LAYOUTS

HUB = "B001"
BUREAU = "R440100"
DAY = "20261206"
NOW = datetime(2026, 12, 6, 2, 0, tzinfo=UTC)  # 10:00 in Asia/Shanghai


def pan_of(n: int, prefix: str = "621788100000") -> str:
    body = f"{prefix}{n:06d}"
    return body + luhn.calc_check_digit(body)


@dataclass(frozen=True)
class Made:
    card_no: str
    pan: str
    id_no: str
    name: str
    birth_date: str
    app_id: int


def seed_card(
    conn: Connection,
    n: int,
    *,
    status: str = "1",
    bank_code: str = HUB,
    pan: str | None = None,
    pan_seq: str = "01",
    account_status: str = "preopened",
    id_no: str | None = None,
    name: str = "张三",
    old_card_no: str = "",
    keep_account: str = "",
    app_type: str = "01",
    app_state: str = "made",
    with_account: bool = True,
    expiry_date: str = "20361206",
) -> Made:
    """A made card (its application, state, card row and, at the hub, its account)."""
    card_no = f"C{n:08d}"
    pan = pan or pan_of(n)
    apply_file = _apply_file(conn)
    birth = "19900101"
    id_no = id_no or f"440103{birth}{n % 1000:03d}X"
    app_id = int(
        conn.execute(
            text(
                "INSERT INTO application (bureau, app_no, file_id, seq, app_type, id_type, id_no, "
                "id_valid_to, name, gender, ethnicity, birth_date, nationality, occupation, mobile, "
                "region_code, bank_code, card_no, old_card_no, keep_account, replace_reason, photo, "
                "address, business_date, content_sha) VALUES (:bureau, :app_no, :file_id, :n, :app_type, "
                "'01', :id_no, '99991231', :name, '1', '01', :birth, 'CHN', '', '13800000000', "
                "'440103', :bank, :card_no, :old, :keep, '', '', '', :day, '') RETURNING id"
            ),
            {
                "bureau": BUREAU,
                "app_no": f"A{n:08d}",
                "file_id": apply_file,
                "n": n,
                "app_type": app_type,
                "id_no": id_no,
                "name": name,
                "birth": birth,
                "bank": bank_code,
                "card_no": card_no,
                "old": old_card_no,
                "keep": keep_account,
                "day": DAY,
            },
        ).scalar_one()
    )
    conn.execute(
        text(
            "INSERT INTO application_state (application_id, bureau, status, pan, pan_seq) "
            "VALUES (:id, :bureau, :st, :pan, :seq)"
        ),
        {"id": app_id, "bureau": BUREAU, "st": app_state, "pan": pan, "seq": pan_seq},
    )
    if app_state == "made":
        conn.execute(
            text(
                "INSERT INTO card (card_no, application_id, bureau, id_type, id_no, name, bank_code, "
                "pan, pan_seq, status, issue_date, expiry_date) VALUES (:card_no, :id, :bureau, "
                "'01', :id_no, :name, :bank, :pan, :seq, :status, '20261201', :expiry)"
            ),
            {
                "card_no": card_no,
                "id": app_id,
                "bureau": BUREAU,
                "id_no": id_no,
                "name": name,
                "bank": bank_code,
                "pan": pan,
                "seq": pan_seq,
                "status": status,
                "expiry": expiry_date,
            },
        )
    if with_account and bank_code == HUB:
        conn.execute(
            text(
                "INSERT INTO account (pan, bank_code, id_no, status, loss, pin_locked, debit_blocked, "
                "credit_blocked) VALUES (:pan, :bank, :id_no, :st, 'none', false, false, "
                "false) ON CONFLICT DO NOTHING"
            ),
            {"pan": pan, "bank": bank_code, "id_no": id_no, "st": account_status},
        )
    return Made(card_no, pan, id_no, name, birth, app_id)


def _apply_file(conn: Connection) -> int:
    """The APPLY file the seeded applications came in."""
    name = f"APPLY_{BUREAU}_{HUB}_{DAY}_999.txt"
    found = conn.execute(text("SELECT id FROM received_file WHERE name = :n"), {"n": name}).scalar()
    if found is not None:
        return int(found)
    return registry.record_file(
        conn,
        conn_id="sftp_r440100",
        name=name,
        type="APPLY",
        sender=BUREAU,
        receiver=HUB,
        batch_no="SEED",
        business_date=DAY,
        sha256="0" * 64,
        size=0,
        outcome="accepted",
        first_seen_at=NOW,
        processed_at=NOW,
    )


def request_file(
    conn: Connection,
    type_: str,
    sender: str,
    lines: Sequence[Sequence[str]],
    *,
    day: str = DAY,
    seq: int = 1,
) -> tuple[int, DelimitedReader]:
    """A request file as received (its registry row) and a reader over it."""
    layout = LAYOUTS[type_]
    name = f"{type_}_{sender}_{HUB}_{day}_{seq:03d}.txt"
    header = Header(type_, sender, HUB, f"{type_[:3]}{day}{seq:03d}", day, len(lines))
    buf = io.BytesIO()
    write_delimited(buf, layout, header, lines, "GB18030")
    file_id = registry.record_file(
        conn,
        conn_id=f"sftp_{sender.lower()}",
        name=name,
        type=type_,
        sender=sender,
        receiver=HUB,
        batch_no=header.batch_no,
        business_date=day,
        sha256=f"{seq:064d}",
        size=len(buf.getvalue()),
        outcome="accepted",
        first_seen_at=NOW,
        processed_at=NOW,
    )
    buf.seek(0)
    return file_id, DelimitedReader(buf, layout, "GB18030", 50_000, len(lines))


#: SQL for the balance of ``<alias>.pan`` (``HELD.format(alias)``): the sum of its entries
HELD = "(SELECT COALESCE(SUM(e.amount_fen), 0) FROM ledger_entry e WHERE e.account = {0}.pan)"
