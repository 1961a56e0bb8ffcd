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

import logging
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc
from sqlalchemy import Connection, DateTime, Engine, String, bindparam, text

from banking.pan import PanRange, luhn_digits, make_pans
from exchange.outbox import Drop, compose, originate
from exchange.pickup import Landed
from exchange.storage import Storage
from persistence import answer_store
from persistence.db import bulk_load, query_batches
from persistence.issuance_store import bulk_update, execute, rows, take_serials_upto
from reconciliation.daily import still_waiting_from
from schemas.codec import Chunk, DelimitedReader, FixedReader, write_delimited
from schemas.layouts import ACCTOPEN
from schemas.states import REPLACEABLE, AccountStatus, ApplicationStatus, FailStage, Loss

log = logging.getLogger("sscard.accounts")


def req_no_for(application_id: int) -> str:
    """The hub's own key for an ACCTOPEN line: stable, so a re-sent request reuses it."""
    return f"AO{application_id:012d}"


@dataclass(frozen=True)
class OpenedAccounts:
    new_accounts: int
    kept_numbers: int


#: a card keeping its number takes the PAN's highest pan_seq on any card + 1 (DOMAIN §1),
#: not its old card's: that card may have been replaced keeping the number before
_HUB_PENDING = """
SELECT a.id, a.id_no, a.keep_account, c.pan AS old_pan,
       (SELECT MAX(other.pan_seq) FROM card other WHERE other.pan = c.pan) AS old_pan_seq
FROM application_state st
JOIN application a ON a.id = st.application_id
LEFT JOIN card c ON c.card_no = a.old_card_no AND a.keep_account = '1'
WHERE st.status = :s AND a.bank_code = :hub
ORDER BY st.application_id
"""
_HUB_PENDING_COLUMNS = {
    "id": pa.int64(),
    "id_no": pa.string(),
    "keep_account": pa.string(),
    "old_pan": pa.string(),
    "old_pan_seq": pa.string(),
}


def _new_pans(conn: Connection, ranges: Sequence[PanRange], count: int) -> list[str]:
    """``count`` new PANs, from the configured ranges in order (DOMAIN §1)."""
    pans: list[str] = []
    for pan_range in ranges:
        first, taken = take_serials_upto(
            conn, pan_range.prefix, count - len(pans), pan_range.capacity
        )
        pans += make_pans(pan_range, first, taken)
        if len(pans) == count:
            return pans
    prefixes = ", ".join(r.prefix for r in ranges)
    raise ValueError(
        f"every hub PAN range is exhausted ({prefixes}): {count - len(pans)} more PANs "
        "needed; add a range to hub_pan_ranges"
    )


def open_hub_accounts(
    engine: Engine,
    hub: str,
    pan_range: PanRange | Sequence[PanRange],
    business_date: str,
    chunk_size: int = 50_000,
) -> OpenedAccounts:
    """Pre-open accounts at the hub for every accepted application whose service bank is
    the hub, in one transaction (re-running finds nothing left to do). Applications are
    taken ``chunk_size`` at a time, so memory does not grow with their number. PANs come
    from the first of ``pan_range`` with serials left, then from the next."""
    ranges = [pan_range] if isinstance(pan_range, PanRange) else list(pan_range)
    opened = kept = 0
    with engine.begin() as conn:
        pending = query_batches(
            conn,
            text(_HUB_PENDING).bindparams(
                bindparam("s", type_=String), bindparam("hub", type_=String)
            ),
            {"s": ApplicationStatus.ACCEPTED, "hub": hub},
            _HUB_PENDING_COLUMNS,
            chunk_size,
        )
        for part in pending:
            keeps = pc.fill_null(
                pc.and_(
                    pc.equal(part.column("keep_account"), "1"), pc.is_valid(part.column("old_pan"))
                ),
                False,
            )
            new = part.filter(pc.invert(keeps))
            keep = part.filter(keeps)
            pans: list[str] = []
            if new.num_rows:
                pans = _new_pans(conn, ranges, new.num_rows)
                n = new.num_rows
                accounts = pa.table(
                    {
                        "pan": pa.array(pans, pa.string()),
                        "bank_code": pa.array([hub] * n, pa.string()),
                        "id_no": new.column("id_no"),
                        "status": pa.array([AccountStatus.PREOPENED] * n, pa.string()),
                        "loss": pa.array([Loss.NONE] * n, pa.string()),
                        "pin_locked": pa.array([False] * n),
                        "debit_blocked": pa.array([False] * n),
                        "credit_blocked": pa.array([False] * n),
                    }
                )
                bulk_load(conn, "account", accounts, accounts.column_names)
            next_seq = [f"{int(s) + 1:02d}" for s in keep.column("old_pan_seq").to_pylist()]
            bulk_update(
                conn,
                "application_state",
                "application_id",
                pa.table(
                    {
                        "application_id": pa.concat_arrays(
                            [new.column("id").combine_chunks(), keep.column("id").combine_chunks()]
                        ),
                        "pan": pa.array(pans + keep.column("old_pan").to_pylist(), pa.string()),
                        "pan_seq": pa.array(["01"] * new.num_rows + next_seq, pa.string()),
                        "status": pa.array(
                            [ApplicationStatus.ACCOUNT_OPEN] * part.num_rows, pa.string()
                        ),
                    }
                ),
            )
            opened += new.num_rows
            kept += keep.num_rows
            log.info("hub accounts: %d opened so far, %d keep their number", opened, kept)
    log.info("hub accounts: %d opened (preopened), %d cards keep their number", opened, kept)
    return OpenedAccounts(opened, kept)


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
    work_dir: Path,
    store: Storage,
) -> str | None:
    """One ACCTOPEN file for a partner bank with every accepted application it serves."""
    with engine.begin() as conn:
        pending = rows(
            conn,
            "SELECT a.id, a.app_no, a.id_type, a.id_no, a.id_valid_to, a.name, a.gender, a.birth_date, "
            "a.nationality, a.occupation, a.mobile, a.address, a.card_no, a.app_type, a.keep_account, "
            "c.pan AS old_pan FROM application_state st "
            "JOIN application a ON a.id = st.application_id "
            "LEFT JOIN card c ON c.card_no = a.old_card_no "
            "WHERE st.status = :s AND a.bank_code = :b ORDER BY st.application_id",
            s=ApplicationStatus.ACCEPTED,
            b=bank_code,
        )
        if not pending:
            return None
        request = originate(conn, "ACCTOPEN", hub, bank_code, business_date, len(pending))
        name = request.name
        lines = []
        for r in pending:
            replacement = r.app_type in REPLACEABLE
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
        compose(
            conn,
            Drop(conn_id, drop, now, store),
            work_dir,
            name=name,
            type_="ACCTOPEN",
            record_count=len(lines),
            write=lambda out: write_delimited(out, ACCTOPEN, request.header, lines, encoding),
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
            "application_state",
            "application_id",
            pa.table(
                {
                    "application_id": pa.array([r.id for r in pending], pa.int64()),
                    "status": [ApplicationStatus.PARTNER_SENT] * len(pending),
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
    An unknown key, a second, different answer or a PAN failing its check digit is
    reported and never applied (the request waits for a right answer, or E140). A chunk
    at a time, with a fixed number of statements per chunk
    (:func:`persistence.answer_store.apply_account_chunk`)."""
    counts = {"applied": 0, "opened": 0, "refused": 0, "problems": 0}
    sender = reader.header.sender
    stage = answer_store.ACCTOPENRSP_STAGE
    answer_store.open_stage(conn, stage)
    for chunk in reader.chunks():
        problems = pc.if_else(
            pa.array(_luhn_failures(chunk)),
            "pan fails its Luhn check (DOMAIN §1)",
            answer_store.layout_problems(chunk),
        )
        answer_store.stage_chunk(conn, stage, chunk, problems)
        done = answer_store.apply_account_chunk(conn, sender, landed.name, business_date)
        counts["opened"] += done.done
        counts["refused"] += done.refused
        counts["problems"] += done.problems
    answer_store.close_stage(conn, stage)
    counts["applied"] = counts["opened"] + counts["refused"]
    return counts


def _luhn_failures(chunk: Chunk) -> npt.NDArray[np.bool_]:
    """Lines the layout accepted answering ``00`` whose PAN fails its Luhn check digit
    (DOMAIN §1). The layout has checked the PAN is 16-19 digits; zeros put in front do
    not change its check digit, so every PAN is checked at 19 digits, all at once."""
    result = chunk.column("result").combine_chunks()
    checked = chunk.ok & np.asarray(pc.equal(result, "00").to_numpy(zero_copy_only=False))
    failing = np.zeros(len(chunk), dtype=bool)
    at = np.flatnonzero(checked)
    if at.size:
        pans = pc.utf8_lpad(chunk.column("pan").combine_chunks().take(pa.array(at)), 19, "0")
        fixed = pans.cast(pa.binary(19))
        raw = np.frombuffer(fixed.buffers()[1], dtype=np.uint8)
        start = fixed.offset * 19
        digits = raw[start : start + at.size * 19].reshape(-1, 19).astype(np.int64) - ord("0")
        failing[at] = luhn_digits(digits[:, :18]) != digits[:, 18]
    return failing


def _fail(
    conn: Connection, application_id: int, stage: FailStage, reason: str, business_date: str
) -> None:
    execute(
        conn,
        "UPDATE application_state SET status = :s, fail_stage = :st, reason_code = :rc, "
        "final_date = :d WHERE application_id = :id",
        s=ApplicationStatus.FAILED,
        st=stage,
        rc=reason,
        d=business_date,
        id=application_id,
    )


SHANGHAI = ZoneInfo("Asia/Shanghai")
_LATE_REQUESTS = text(
    "SELECT p.req_no, p.application_id FROM partner_request p "
    "JOIN outbound_file o ON o.name = p.request_name AND o.type = 'ACCTOPEN' "
    "WHERE p.bank_code = :b AND p.answered_date IS NULL "
    "AND o.delivered_at IS NOT NULL AND o.delivered_at < :cutoff ORDER BY p.req_no"
).bindparams(bindparam("cutoff", type_=DateTime(timezone=True)))


def e140_cutoff(business_date: str, wait_days: int, holidays: Collection[str] = ()) -> datetime:
    """The moment from which a delivered request still waits at the end of
    ``business_date``: a request delivered on day S (Asia/Shanghai) waits to the end of
    S + ``wait_days`` business days (ICD §2 ``partner_wait``, decision 70), so one
    delivered before this moment fails E140 on ``business_date``."""
    first = still_waiting_from(business_date, wait_days, holidays)
    return datetime(int(first[:4]), int(first[4:6]), int(first[6:]), tzinfo=SHANGHAI)


def expire_account_requests(
    engine: Engine,
    bank_code: str,
    business_date: str,
    wait_days: int,
    holidays: Collection[str] = (),
) -> int:
    """Requests still unanswered once their ``partner_wait`` has run out fail with E140
    (ICD §2): a request delivered to the partner on day S (Asia/Shanghai) waits to the
    end of S + ``wait_days`` business days (Monday to Friday, not one of ``holidays``),
    as DISB lines and STATUS ops forwarded to a partner do. A request whose file has not
    reached the partner yet (its server down) has not been forwarded: it waits, and the
    delivery step's failures say why."""
    cutoff = e140_cutoff(business_date, wait_days, holidays)
    with engine.begin() as conn:
        late = conn.execute(
            _LATE_REQUESTS, {"b": bank_code, "cutoff": cutoff.astimezone(UTC)}
        ).all()
        for r in late:
            execute(
                conn,
                "UPDATE partner_request SET answered_date = :d, result = '01', reason_code = 'E140' WHERE req_no = :k",
                d=business_date,
                k=r.req_no,
            )
            _fail(conn, r.application_id, FailStage.BANK, "E140", business_date)
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
