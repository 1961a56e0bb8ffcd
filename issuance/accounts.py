"""Accounts for accepted applications (ICD §5.4, DOMAIN §1, §3, §5).

- Service bank = the hub: pre-open a customer account and issue a PAN from the
  configured range, ``pan_seq`` 01 (``open_hub_accounts``). A replacement keeping its
  number (换卡不换号) takes the old card's PAN with ``pan_seq`` + 1.
- Service bank = a partner: send the KYC data in an ACCTOPEN file under the hub's own
  key (``send_account_requests``); its ACCTOPENRSP sets PAN and ``pan_seq`` or fails the
  application at stage 1 with the partner's reason (``apply_account_answers``); a
  request unanswered by ``partner_wait`` fails with E140 (``expire_account_requests``).
"""

from __future__ import annotations

import io
import logging
from dataclasses import dataclass
from datetime import date, datetime, timedelta

import pyarrow as pa
from sqlalchemy import Connection, Engine

from banking.pan import PanRange, make_pans
from issuance.intake import Landed
from persistence import registry
from persistence.db import bulk_load
from persistence.issuance_store import bulk_update, execute, rows, take_serials
from schemas.codec import DelimitedReader, FixedReader, Header, write_delimited
from schemas.layouts import ACCTOPEN

log = logging.getLogger("sscard.accounts")

#: application statuses, in order (a failure ends at ``failed`` with its stage)
ACCEPTED, PARTNER_SENT, ACCOUNT_OPEN, PERSO_SENT, MADE, FAILED = (
    "accepted",
    "partner_sent",
    "account_open",
    "perso_sent",
    "made",
    "failed",
)


def req_no_for(application_id: int) -> str:
    """The hub's own key for an ACCTOPEN line: stable, so a re-sent request reuses it."""
    return f"AO{application_id:012d}"


@dataclass(frozen=True)
class OpenedAccounts:
    new_accounts: int
    kept_numbers: int


def open_hub_accounts(
    engine: Engine, hub: str, pan_range: PanRange, business_date: str
) -> OpenedAccounts:
    """Pre-open accounts at the hub for every accepted application whose service bank is
    the hub, in one transaction (re-running finds nothing left to do)."""
    with engine.begin() as conn:
        pending = rows(
            conn,
            "SELECT a.id, a.id_no, a.app_type, a.keep_account, a.old_card_no, c.pan AS old_pan, "
            "c.pan_seq AS old_pan_seq FROM application a LEFT JOIN card c ON c.card_no = a.old_card_no "
            "WHERE a.status = :s AND a.bank_code = :hub ORDER BY a.id",
            s=ACCEPTED,
            hub=hub,
        )
        keep = [r for r in pending if r.keep_account == "1" and r.old_pan]
        new = [r for r in pending if not (r.keep_account == "1" and r.old_pan)]
        pans: list[str] = []
        if new:
            first = take_serials(conn, pan_range.prefix, len(new))
            pans = make_pans(pan_range, first, len(new))
            accounts = pa.table(
                {
                    "pan": pans,
                    "bank_code": [hub] * len(new),
                    "id_no": [r.id_no for r in new],
                    "status": ["preopened"] * len(new),
                    "loss": ["none"] * len(new),
                    "pin_locked": [False] * len(new),
                    "debit_blocked": [False] * len(new),
                    "credit_blocked": [False] * len(new),
                    "balance_fen": pa.array([0] * len(new), pa.int64()),
                }
            )
            bulk_load(conn, "account", accounts, accounts.column_names)
        ids = [r.id for r in new] + [r.id for r in keep]
        bulk_update(
            conn,
            "application",
            "id",
            pa.table(
                {
                    "id": pa.array(ids, pa.int64()),
                    "pan": pans + [r.old_pan for r in keep],
                    "pan_seq": ["01"] * len(new) + [f"{int(r.old_pan_seq) + 1:02d}" for r in keep],
                    "status": [ACCOUNT_OPEN] * len(ids),
                }
            ),
        )
    log.info("hub accounts: %d opened (preopened), %d cards keep their number", len(new), len(keep))
    return OpenedAccounts(len(new), len(keep))


def _next_seq(conn: Connection, type_: str, sender: str, receiver: str, business_date: str) -> str:
    return f"{registry.next_seq(conn, type_, sender, receiver, business_date):03d}"


def send_account_requests(
    engine: Engine,
    *,
    hub: str,
    bank_code: str,
    conn_id: str,
    drop: str,
    encoding: str,
    business_date: str,
    now: datetime,
) -> str | None:
    """One ACCTOPEN file for a partner bank with every accepted application it serves."""
    with engine.begin() as conn:
        pending = rows(
            conn,
            "SELECT a.id, a.app_no, a.id_type, a.id_no, a.id_valid_to, a.name, a.gender, a.birth_date, "
            "a.nationality, a.occupation, a.mobile, a.address, a.card_no, a.app_type, a.keep_account, "
            "c.pan AS old_pan FROM application a LEFT JOIN card c ON c.card_no = a.old_card_no "
            "WHERE a.status = :s AND a.bank_code = :b ORDER BY a.id",
            s=ACCEPTED,
            b=bank_code,
        )
        if not pending:
            return None
        seq = _next_seq(conn, "ACCTOPEN", hub, bank_code, business_date)
        name = f"ACCTOPEN_{hub}_{bank_code}_{business_date}_{seq}.txt"
        lines = []
        for r in pending:
            replacement = r.app_type in ("05", "06", "07")
            lines.append(
                (
                    req_no_for(r.id),
                    r.app_no,
                    r.id_type,
                    r.id_no,
                    r.id_valid_to,
                    r.name,
                    r.gender,
                    r.birth_date,
                    r.nationality,
                    r.occupation,
                    r.mobile,
                    r.address,
                    r.card_no,
                    (r.old_pan or "") if replacement else "",
                    r.keep_account if replacement else "",
                )
            )
        out = io.BytesIO()
        header = Header(
            "ACCTOPEN", hub, bank_code, f"{business_date}{seq}", business_date, len(lines)
        )
        write_delimited(out, ACCTOPEN, header, lines, encoding)
        registry.queue_outbound(
            conn,
            conn_id=conn_id,
            directory=drop,
            name=name,
            type_="ACCTOPEN",
            data=out.getvalue(),
            record_count=len(lines),
            created_at=now,
        )
        requests = pa.table(
            {
                "req_no": [req_no_for(r.id) for r in pending],
                "application_id": pa.array([r.id for r in pending], pa.int64()),
                "bank_code": [bank_code] * len(pending),
                "request_name": [name] * len(pending),
                "sent_date": [business_date] * len(pending),
            }
        )
        bulk_load(conn, "partner_request", requests, requests.column_names)
        bulk_update(
            conn,
            "application",
            "id",
            pa.table(
                {
                    "id": pa.array([r.id for r in pending], pa.int64()),
                    "status": [PARTNER_SENT] * len(pending),
                }
            ),
        )
    log.info("%s: %d account request(s) for partner %s", name, len(pending), bank_code)
    return name


def apply_account_answers(
    conn: Connection,
    reader: DelimitedReader | FixedReader,
    landed: Landed,
    file_id: int,
    business_date: str,
) -> dict[str, int]:
    """Apply an ACCTOPENRSP: PAN and ``pan_seq`` for ``00``; stage-1 failure with the
    partner's own reason code for ``01`` (it reaches the bureau unchanged, ICD §5.4).
    An unknown key or a second, different answer is reported and never applied."""
    counts = {"applied": 0, "opened": 0, "refused": 0, "problems": 0}
    problems: list[dict[str, object]] = []
    sender = reader.header.sender
    for chunk in reader.chunks():
        table = chunk.table
        ok = chunk.ok
        for i, rec in enumerate(table.to_pylist()):
            line_no = int(rec["_line"])
            if not ok[i]:
                problems.append(
                    _problem(
                        landed.name,
                        line_no,
                        str(rec["req_no"]),
                        f"layout {chunk.fail_code[i]}",
                        business_date,
                    )
                )
                continue
            req = rows(
                conn,
                "SELECT r.req_no, r.application_id, r.bank_code, r.result, r.reason_code, a.status "
                "FROM partner_request r JOIN application a ON a.id = r.application_id WHERE r.req_no = :k",
                k=rec["req_no"],
            )
            if not req or req[0].bank_code != sender:
                problems.append(
                    _problem(landed.name, line_no, rec["req_no"], "unknown req_no", business_date)
                )
                continue
            r = req[0]
            if r.result is not None:
                same = (r.result, r.reason_code or "") == (rec["result"], rec["reason_code"])
                if not same:
                    problems.append(
                        _problem(
                            landed.name,
                            line_no,
                            rec["req_no"],
                            "answered before, differently",
                            business_date,
                        )
                    )
                continue
            execute(
                conn,
                "UPDATE partner_request SET answered_date = :d, result = :res, reason_code = :rc WHERE req_no = :k",
                d=business_date,
                res=rec["result"],
                rc=rec["reason_code"],
                k=rec["req_no"],
            )
            if rec["result"] == "00":
                execute(
                    conn,
                    "UPDATE application SET pan = :pan, pan_seq = :seq, status = :s WHERE id = :id",
                    pan=rec["pan"],
                    seq=rec["pan_seq"],
                    s=ACCOUNT_OPEN,
                    id=r.application_id,
                )
                counts["opened"] += 1
            else:
                _fail(conn, r.application_id, "1", rec["reason_code"], business_date)
                counts["refused"] += 1
            counts["applied"] += 1
    if problems:
        bulk_load(conn, "return_problem", pa.Table.from_pylist(problems), list(problems[0]))
    counts["problems"] = len(problems)
    return counts


def _problem(
    file_name: str, line_no: int, key: str, problem: str, business_date: str
) -> dict[str, object]:
    return {
        "file_name": file_name,
        "line_no": line_no,
        "key": key[:30],
        "problem": problem,
        "business_date": business_date,
    }


def _fail(
    conn: Connection, application_id: int, stage: str, reason: str, business_date: str
) -> None:
    execute(
        conn,
        "UPDATE application SET status = :s, fail_stage = :st, reason_code = :rc, final_date = :d WHERE id = :id",
        s=FAILED,
        st=stage,
        rc=reason,
        d=business_date,
        id=application_id,
    )


def expire_account_requests(
    engine: Engine, bank_code: str, business_date: str, wait_days: int
) -> int:
    """Requests still unanswered ``wait_days`` after they were sent fail with E140
    (ICD §2 ``partner_wait``; days are calendar days in Asia/Shanghai)."""
    d = date(int(business_date[:4]), int(business_date[4:6]), int(business_date[6:]))
    limit = (d - timedelta(days=wait_days)).strftime("%Y%m%d")
    with engine.begin() as conn:
        late = rows(
            conn,
            "SELECT req_no, application_id FROM partner_request WHERE bank_code = :b "
            "AND answered_date IS NULL AND sent_date <= :limit ORDER BY req_no",
            b=bank_code,
            limit=limit,
        )
        for r in late:
            execute(
                conn,
                "UPDATE partner_request SET answered_date = :d, result = '01', reason_code = 'E140' WHERE req_no = :k",
                d=business_date,
                k=r.req_no,
            )
            _fail(conn, r.application_id, "1", "E140", business_date)
        waiting = rows(
            conn,
            "SELECT COUNT(*) AS n, MIN(sent_date) AS oldest FROM partner_request "
            "WHERE bank_code = :b AND answered_date IS NULL",
            b=bank_code,
        )[0]
    if waiting.n:
        log.info(
            "partner %s: %d request(s) unanswered, oldest sent %s",
            bank_code,
            waiting.n,
            waiting.oldest,
        )
    if late:
        log.warning(
            "partner %s: %d request(s) unanswered by partner_wait: failed E140",
            bank_code,
            len(late),
        )
    return len(late)
