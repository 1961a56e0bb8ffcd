"""What happens to a DISB batch after intake (``payments/__init__.py``): posted once funded,
``301`` at the funding cut-off, partner lines forwarded and their answers merged, and the
bureau's DISBRSP once every line has its outcome (ICD §5.10; DOMAIN §6)."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import BinaryIO
from zoneinfo import ZoneInfo

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from sqlalchemy import Connection, Engine, text

from banking import ledger
from exchange.locks import one_at_a_time
from exchange.outbox import Drop, compose, originate, response_name
from payments.intake import line_key_sql
from persistence.db import bulk_load, keyed, query_batches
from persistence.issuance_store import rows
from schemas.codec import (
    Chunk,
    DelimitedReader,
    Header,
    amount_column,
    amount_fen,
    fen_to_amount,
    write_delimited_tables,
)
from schemas.codes import reason_text
from schemas.files import FileName
from schemas.layouts import DISB, DISBRSP, KEY, NOT_A_KEY
from servicing.partner import report_problems

log = logging.getLogger("sscard.payments")

CREDITED = "0000"
#: a line forwarded to a partner bank that did not answer by partner_wait (ICD §2)
LATE = "140"
UNFUNDED = "301"


def shanghai_time(now: datetime) -> str:
    return now.astimezone(ZoneInfo("Asia/Shanghai")).strftime("%Y%m%d%H%M%S")


@dataclass(frozen=True)
class Posted:
    batches: int
    credited: int
    failed: int
    forwarded: int


def post_funded(
    engine: Engine,
    *,
    hub: str,
    business_date: str,
    now: datetime,
    pay_before_funding: Collection[str] = (),
    refuse_preopened: Collection[str] = (),
) -> Posted:
    """Every batch waiting for funds whose STMT funding reached its total (or, for the
    bureaus in ``pay_before_funding``, every such batch): hub lines posted (Dr CLEARING / Cr the account),
    each in its own idempotent posting; lines that failed (at intake, or now because the
    account stopped taking credits) moved to RETURNS; partner lines left for forwarding.
    One transaction per batch."""
    with engine.connect() as conn:
        due = conn.execute(
            keyed(
                conn,
                "SELECT id, bureau, batch_no FROM disb_batch WHERE status = 'awaiting_funds' "
                "AND (funded_fen >= total_fen OR bureau IN :early) AND business_date <= :d "
                "ORDER BY id",
                "early",
            ),
            {"early": sorted(pay_before_funding) or [""], "d": business_date},
        ).all()
    credited = failed = forwarded = 0
    posted = 0
    for batch in due:
        with engine.begin() as conn:
            done = _post_batch(
                conn,
                batch.id,
                batch.bureau,
                batch.batch_no,
                business_date,
                now,
                batch.bureau not in refuse_preopened,
            )
        if done is None:
            log.warning(
                "%s DISB %s: no longer waiting for funds (taken by another run or the cut-off); "
                "not posted here",
                batch.bureau,
                batch.batch_no,
            )
            continue
        c, f, p = done
        posted += 1
        credited, failed, forwarded = credited + c, failed + f, forwarded + p
        log.info(
            "%s DISB %s funded: %d line(s) credited, %d failed (to returns), %d for partner banks",
            batch.bureau,
            batch.batch_no,
            c,
            f,
            p,
        )
    return Posted(posted, credited, failed, forwarded)


def _post_batch(
    conn: Connection,
    batch_id: int,
    bureau: str,
    batch_no: str,
    business_date: str,
    now: datetime,
    credit_preopened: bool,
) -> tuple[int, int, int] | None:
    """The batch claimed (still waiting for funds: not cut off nor posted by a run racing
    this one, which would find it taken), then posted; None when it was taken."""
    ledger.hold_credit_lock(conn)  # no account is emptied for good while this credits it
    claimed = conn.execute(
        text(
            "UPDATE disb_batch SET status = 'funded', funded_date = :d "
            "WHERE id = :b AND status = 'awaiting_funds'"
        ),
        {"b": batch_id, "d": business_date},
    ).rowcount
    if claimed != 1:
        return None
    refuse = "a.status = 'closed' OR a.credit_blocked" + (
        "" if credit_preopened else " OR a.status = 'preopened'"
    )
    if conn.dialect.name == "postgresql":
        conn.execute(text("SET LOCAL jit = off"))  # bulk statements: nothing to gain
    # an account that stopped taking credits since intake: 106 now (DOMAIN §3); the few
    # such accounts are found first, then the batch's lines looked up among them
    conn.execute(
        text(
            "UPDATE disb_line SET result = '106', answered_date = :d WHERE batch_id = :b "
            "AND result IS NULL AND partner IS NULL AND pan IN (SELECT a.pan FROM account a "
            f"WHERE {refuse})"
        ),
        {"b": batch_id, "d": business_date},
    )
    # every other line still waiting is credited, in one statement (bank_ref = H + batch
    # id + SEQ), and posted, read straight from its DISB line (one set posting), all in
    # this transaction
    conn.execute(
        text(
            "UPDATE disb_line SET result = :r, credited_fen = amount_fen, posted_time = :t, "
            f"bank_ref = {line_key_sql(conn, 'H', 'batch_id', 'seq')}, answered_date = :d "
            "WHERE batch_id = :b AND result IS NULL AND partner IS NULL"
        ),
        {"r": CREDITED, "t": shanghai_time(now), "d": business_date, "b": batch_id},
    )
    credited = ledger.post_transfers_from(
        conn,
        "disb_credit",
        business_date,
        "SELECT seq, 'disb:' || bureau || ':' || pay_no AS idem_key, :clearing AS debit, "
        "pan AS credit, amount_fen FROM disb_line WHERE batch_id = :b AND result = :r "
        "AND partner IS NULL",
        {"b": batch_id, "r": CREDITED, "clearing": ledger.clearing(bureau)},
        now,
        fresh=True,
    )
    failed = _move_failed_to_returns(conn, batch_id, bureau, batch_no, business_date, now)
    forwarded = conn.execute(
        text("SELECT COUNT(*) FROM disb_line WHERE batch_id = :b AND partner IS NOT NULL"),
        {"b": batch_id},
    ).scalar_one()
    return credited, failed, int(forwarded)


def _move_failed_to_returns(
    conn: Connection, batch_id: int, bureau: str, batch_no: str, business_date: str, now: datetime
) -> int:
    """Failed lines' amounts from CLEARING to RETURNS (DOMAIN §6), once each."""
    return ledger.post_transfers_from(
        conn,
        "disb_failed",
        business_date,
        "SELECT seq, :prefix || CAST(seq AS VARCHAR(12)) AS idem_key, :clearing AS debit, "
        ":returns AS credit, amount_fen FROM disb_line WHERE batch_id = :b "
        "AND result IS NOT NULL AND result <> :c AND amount_fen > 0",
        {
            "b": batch_id,
            "c": CREDITED,
            "prefix": f"fail:{bureau}:{batch_no}:",
            "clearing": ledger.clearing(bureau),
            "returns": ledger.returns(bureau),
        },
        now,
    )


def cut_off(engine: Engine, *, business_date: str, now: datetime) -> int:
    """The funding cut-off at the end of a batch's business date (ICD §5.12): a batch still
    short of its total answers ``301`` on every line, nothing is posted to customers, what
    it received goes to RETURNS to be sent back, and it stays R03 until resolved by hand."""
    with engine.begin() as conn:
        due = rows(
            conn,
            "SELECT id, bureau, batch_no, funded_fen, total_fen FROM disb_batch "
            "WHERE status = 'awaiting_funds' AND business_date <= :d AND funded_fen < total_fen "
            "ORDER BY id",
            d=business_date,
        )
        # every batch claimed first, in id order, before any ledger account is written (as
        # a statement funding one of them takes them: no deadlock); a posting run racing
        # this one (its funding arrived meanwhile) either took a batch already or finds it
        # cut off
        claimed = []
        for b in due:
            received = conn.execute(
                text(
                    "UPDATE disb_batch SET status = 'unfunded' WHERE id = :b "
                    "AND status = 'awaiting_funds' AND funded_fen < total_fen RETURNING funded_fen"
                ),
                {"b": b.id},
            ).scalar_one_or_none()
            if received is not None:
                claimed.append((b, int(received)))
        for b, received in claimed:
            conn.execute(
                text(
                    "UPDATE disb_line SET result = :r, credited_fen = 0, answered_date = :d "
                    "WHERE batch_id = :b"
                ),
                {"r": UNFUNDED, "d": business_date, "b": b.id},
            )
            if received > 0:
                ledger.post(
                    conn,
                    f"unfunded:{b.bureau}:{b.batch_no}",
                    "disb_unfunded",
                    business_date,
                    [
                        ledger.Leg(ledger.clearing(b.bureau), -received),
                        ledger.Leg(ledger.returns(b.bureau), received),
                    ],
                    now,
                )
            log.warning(
                "%s DISB %s not funded by the cut-off (%s of %s yuan received): 301 on every "
                "line; what was received is to be returned (RET/%s)",
                b.bureau,
                b.batch_no,
                fen_to_amount(received),
                fen_to_amount(int(b.total_fen)),
                b.batch_no,
            )
    return len(claimed)


# --------------------------------------------------------------------------- partner banks


def send_partner_disb(
    engine: Engine,
    *,
    hub: str,
    bank_code: str,
    dest: Drop,
    encoding: str,
    business_date: str,
    work_dir: Path,
) -> list[str]:
    """Every funded line of a partner bank's accounts not sent yet, to that bank under the
    hub's own pay_no (ICD §5.10), in one DISB file per benefit type (a DISB carries one:
    another value on a line is E117), by benefit type. Forwarding runs to one bank run one
    after another, so a second one chooses only what the first did not send. The lines
    are chosen once (their keys kept in a temporary table), so the files and the lines
    marked sent are the same set whatever is funded meanwhile; written a block at a time
    as columns, and marked in one UPDATE per file. Returns the files' names."""
    names: list[str] = []
    with engine.begin() as conn:
        one_at_a_time(conn, f"forward:{bank_code}")
        chosen = f"disb_fwd_{uuid.uuid4().hex[:12]}"
        conn.execute(
            text(
                f"CREATE TEMPORARY TABLE {chosen} AS SELECT f.partner_key, f.benefit_type "
                "FROM disb_forward f JOIN disb_line l ON l.partner_key = f.partner_key "
                "JOIN disb_batch b ON b.id = l.batch_id WHERE f.bank_code = :bank "
                "AND b.status = 'funded' AND l.result IS NULL AND l.partner_request IS NULL"
            ),
            {"bank": bank_code},
        )
        per_type = conn.execute(
            text(
                f"SELECT c.benefit_type, COUNT(*), COALESCE(SUM(f.amount_fen), 0) FROM {chosen} c "
                "JOIN disb_forward f ON f.partner_key = c.partner_key "
                "GROUP BY c.benefit_type ORDER BY c.benefit_type"
            )
        ).all()
        for benefit_type, count, total in per_type:
            count, total = int(count), int(total)
            request = originate(conn, "DISB", hub, bank_code, business_date, count)
            header = Header(
                "DISB", hub, bank_code, request.header.batch_no, business_date, count, total
            )

            def write(out: BinaryIO, h: Header = header, kind: str = str(benefit_type)) -> None:
                write_delimited_tables(out, DISB, h, _forward_tables(conn, chosen, kind), encoding)

            compose(
                conn,
                dest,
                work_dir,
                name=request.name,
                type_="DISB",
                record_count=count,
                write=write,
            )
            conn.execute(
                text(
                    "UPDATE disb_line SET partner_request = :n, partner_sent_date = :d "
                    f"WHERE partner_key IN (SELECT partner_key FROM {chosen} "
                    "WHERE benefit_type = :t)"
                ),
                {"n": request.name, "d": business_date, "t": benefit_type},
            )
            names.append(request.name)
            log.info("%s: %d line(s) forwarded to partner %s", request.name, count, bank_code)
        conn.execute(text(f"DROP TABLE {chosen}"))
    return names


_FORWARD_COLUMNS = {
    "pay_no": pa.string(),
    "id_no": pa.string(),
    "name": pa.string(),
    "card_no": pa.string(),
    "pan": pa.string(),
    "amount_fen": pa.int64(),
    "benefit_type": pa.string(),
    "period": pa.string(),
    "memo": pa.string(),
}


def _forward_tables(conn: Connection, chosen: str, benefit_type: str) -> Iterator[pa.Table]:
    """The chosen lines of one benefit type as a partner's DISB lines, in key order, a
    block at a time: the hub's key as pay_no, the amount in yuan."""
    for block in query_batches(
        conn,
        text(
            "SELECT f.partner_key, f.id_no, f.name, f.card_no, f.pan, f.amount_fen, "
            f"f.benefit_type, f.period, f.memo FROM {chosen} c JOIN disb_forward f "
            "ON f.partner_key = c.partner_key WHERE c.benefit_type = :t ORDER BY f.partner_key"
        ),
        {"t": benefit_type},
        _FORWARD_COLUMNS,
        50_000,
    ):
        yield pa.table(
            {
                name: (
                    amount_column(block.column(name))
                    if name == "amount_fen"
                    else pc.fill_null(block.column(name), "")
                )
                for name in _FORWARD_COLUMNS
            }
        ).rename_columns(DISB.names)


def apply_partner_disbrsp(
    conn: Connection,
    reader: DelimitedReader,
    *,
    bank_code: str,
    business_date: str,
    now: datetime,
    file_name: str,
) -> dict[str, int]:
    """A partner's DISBRSP: each line's outcome merged into the bureau's line; credited at
    the partner: Dr CLEARING / Cr DUE:bank; failed: to RETURNS. A line that fails its
    field checks, answers a key never sent or answered before, credits 0.00 or more than
    the line, or repeats a key answered earlier in this file is a return problem, never
    applied: only the first good answer to a line the hub sent stands; a line answered
    ``140`` by a run that held it meanwhile is such a line answered before. The file's lines
    are staged a chunk at a time (COPY on PostgreSQL) and matched, posted and written by
    set statements."""
    # a line's partner_wait running out in another run is answered before or after this
    # file, never while it reads which lines wait
    one_at_a_time(conn, f"partner-answers:{bank_code}")
    tag = uuid.uuid4().hex[:12]
    stage, found, applied = (f"{name}_{tag}" for name in ("ptn_stage", "ptn_found", "ptn_applied"))
    conn.execute(
        text(
            f"CREATE TEMPORARY TABLE {stage} (seq BIGINT, pay_no TEXT, result TEXT, "
            "fen BIGINT, posted_time TEXT, bank_ref TEXT, failure TEXT)"
        )
    )
    for chunk in reader.chunks():
        bulk_load(conn, stage, _answer_stage(chunk), _STAGED)
    # each good line with the line it answers, if the hub sent one and it waits
    conn.execute(
        text(
            f"CREATE TEMPORARY TABLE {found} AS SELECT s.seq, s.pay_no, s.result, s.fen, "
            "s.posted_time, s.bank_ref, l.seq AS line_seq, l.amount_fen, "
            "l.pay_no AS bureau_pay_no, b.bureau, b.batch_no, CASE "
            "WHEN l.partner_key IS NULL OR l.result IS NOT NULL THEN 'unknown' "
            "WHEN s.result = :c AND NOT (s.fen > 0 AND s.fen <= l.amount_fen) THEN 'amount' "
            f"END AS problem FROM {stage} s LEFT JOIN disb_line l ON l.partner_key = s.pay_no "
            "AND l.partner = :bank AND l.partner_request IS NOT NULL "
            "LEFT JOIN disb_batch b ON b.id = l.batch_id WHERE s.failure IS NULL"
        ),
        {"c": CREDITED, "bank": bank_code},
    )
    # the first good answer to each line
    conn.execute(
        text(
            f"CREATE TEMPORARY TABLE {applied} AS SELECT f.* FROM {found} f JOIN "
            f"(SELECT pay_no, MIN(seq) AS seq FROM {found} WHERE problem IS NULL "
            "GROUP BY pay_no) first ON first.pay_no = f.pay_no AND first.seq = f.seq"
        )
    )
    for column in ("seq", "pay_no"):
        conn.execute(text(f"CREATE INDEX {applied}_{column} ON {applied} ({column})"))
    problems = [
        (int(r.seq), str(r.key), str(r.why))
        for r in conn.execute(
            text(
                f"SELECT seq, SUBSTR(pay_no, 1, 30) AS key, failure AS why FROM {stage} "
                "WHERE failure IS NOT NULL UNION ALL SELECT f.seq, SUBSTR(f.pay_no, 1, 30), "
                "CASE WHEN f.problem = 'amount' AND NOT EXISTS (SELECT 1 FROM "
                f"{applied} a WHERE a.pay_no = f.pay_no AND a.seq < f.seq) THEN :amount "
                f"ELSE :repeated END FROM {found} f WHERE NOT EXISTS (SELECT 1 FROM {applied} a "
                "WHERE a.seq = f.seq) ORDER BY 1"
            ),
            {
                "amount": "credited amount 0.00 or above the line's",
                "repeated": "unknown or repeated answer",
            },
        )
    ]
    credited = ledger.post_transfers_from(
        conn,
        "disb_partner",
        business_date,
        "SELECT seq, 'ptn:' || bureau || ':' || bureau_pay_no AS idem_key, "
        f"{ledger.clearing_sql('bureau')} AS debit, :due AS credit, fen AS amount_fen "
        f"FROM {applied} WHERE result = :c",
        {"due": ledger.due_to_partner(bank_code), "c": CREDITED},
        now,
    )
    ledger.post_transfers_from(
        conn,
        "disb_failed",
        business_date,
        "SELECT seq, 'fail:' || bureau || ':' || batch_no || ':' || "
        "CAST(line_seq AS VARCHAR(12)) AS idem_key, "
        f"{ledger.clearing_sql('bureau')} AS debit, {ledger.returns_sql('bureau')} AS credit, "
        f"amount_fen FROM {applied} WHERE result <> :c AND amount_fen > 0",
        {"c": CREDITED},
        now,
    )
    conn.execute(
        text(
            "UPDATE disb_line SET result = a.result, credited_fen = CASE WHEN a.result = :c "
            "THEN a.fen ELSE 0 END, posted_time = CASE WHEN a.result = :c THEN a.posted_time "
            "END, bank_ref = CASE WHEN a.result = :c THEN a.bank_ref END, answered_date = :d "
            f"FROM {applied} a WHERE disb_line.partner_key = a.pay_no"
        ),
        {"c": CREDITED, "d": business_date},
    )
    counts = conn.execute(
        text(
            "SELECT COUNT(*), COALESCE(SUM(CASE WHEN result = :c THEN 1 ELSE 0 END), 0) "
            f"FROM {applied}"
        ),
        {"c": CREDITED},
    ).one()
    total, credited = int(counts[0]), int(counts[1])
    for table in (applied, found, stage):
        conn.execute(text(f"DROP TABLE {table}"))
    report_problems(conn, file_name, problems, business_date)
    log.info(
        "%s: %d credited at %s, %d failed, %d problem(s)",
        file_name,
        credited,
        bank_code,
        total - credited,
        len(problems),
    )
    return {
        "applied": total,
        "credited": credited,
        "failed": total - credited,
        "problems": len(problems),
    }


#: a partner's answers as staged: SEQ, the key, the outcome, and a line's field failure
_STAGED = ["seq", "pay_no", "result", "fen", "posted_time", "bank_ref", "failure"]


def _answer_stage(chunk: Chunk) -> pa.Table:
    """A chunk of a partner's DISBRSP as staged rows: a credited amount in fen, a NUL
    (which PostgreSQL text cannot hold) read as U+FFFD so the line fails to match instead
    of failing the file, and a failing line's ``<code> in <field>``."""
    names = chunk.layout.names
    n = len(chunk)
    at = chunk.fail_index.astype(np.int64)
    failed = np.flatnonzero(at < len(names))
    failure = np.full(n, None, dtype=object)
    for i in failed.tolist():
        where = "the line" if at[i] < 0 else names[at[i]]
        failure[i] = f"{chunk.fail_code[i]} in {where}"
    return pa.table(
        {
            "seq": pa.array(chunk.seqs),
            **{
                name: pc.replace_substring(pc.fill_null(chunk.column(name), ""), "\x00", "\ufffd")
                for name in ("pay_no", "result", "posted_time", "bank_ref")
            },
            "fen": pa.array(amount_fen(chunk.column("credited_amount"))),
            "failure": pa.array(failure, pa.string()),
        }
    )


def _fen(amount: str) -> int:
    from schemas.codec import amount_to_fen

    try:
        return amount_to_fen(amount)
    except ValueError:
        return 0


def expire_partner_lines(
    engine: Engine,
    *,
    bank_code: str,
    wait_days: int,
    business_date: str,
    now: datetime,
    holidays: Collection[str] = (),
) -> int:
    """Lines unanswered once their ``partner_wait`` (business days, ICD §2) has run out:
    a line sent on S waits to the end of S + ``wait_days`` business days, as the
    reconciliation counts it; then ``140``, its amount to RETURNS."""
    from reconciliation.daily import still_waiting_from

    waiting_from = still_waiting_from(business_date, wait_days, holidays)
    with engine.begin() as conn:
        one_at_a_time(conn, f"partner-answers:{bank_code}")  # not while an answer is applied
        # one statement that finds and answers the lines: a line the partner's answer
        # reached meanwhile (committed while this waited for its row) keeps that answer
        expired = conn.execute(
            text(
                "UPDATE disb_line SET result = :r, answered_date = :d WHERE partner = :bank "
                "AND result IS NULL AND partner_sent_date IS NOT NULL "
                "AND partner_sent_date < :waiting_from RETURNING batch_id, seq, amount_fen"
            ),
            {"r": LATE, "d": business_date, "bank": bank_code, "waiting_from": waiting_from},
        ).all()
        if not expired:
            return 0
        batches = {
            int(r.id): (str(r.bureau), str(r.batch_no))
            for r in conn.execute(
                keyed(conn, "SELECT id, bureau, batch_no FROM disb_batch WHERE id IN :ids", "ids"),
                {"ids": sorted({int(r.batch_id) for r in expired})},
            )
        }
        ledger.post_transfers(
            conn,
            "disb_failed",
            business_date,
            (
                (
                    f"fail:{bureau}:{batch_no}:{r.seq}",
                    ledger.clearing(bureau),
                    ledger.returns(bureau),
                    int(r.amount_fen),
                )
                for r in sorted(expired, key=lambda r: (r.batch_id, r.seq))
                for bureau, batch_no in (batches[int(r.batch_id)],)
                if r.amount_fen > 0
            ),
            now,
        )
    log.warning(
        "partner %s: %d DISB line(s) unanswered past partner_wait: 140", bank_code, len(expired)
    )
    return len(expired)


# --------------------------------------------------------------------------- DISBRSP


def answer_batches(
    conn: Connection, *, bureau: str, dest: Drop, encoding: str, business_date: str, work_dir: Path
) -> list[str]:
    """The DISBRSP of every batch of ``bureau`` whose lines all have their outcome by the
    end of ``business_date``: one line per DISB line, same order (ICD §5.10). A past date
    run again answers only what was complete by then, dated then."""
    ready = rows(
        conn,
        "SELECT b.id, b.file_id, f.name, f.batch_no, f.business_date FROM disb_batch b "
        "JOIN received_file f ON f.id = b.file_id WHERE b.bureau = :bureau "
        "AND b.status IN ('funded', 'unfunded') AND b.business_date <= :d "
        "AND NOT EXISTS (SELECT 1 FROM disb_line l WHERE l.batch_id = b.id "
        "AND (l.result IS NULL OR l.answered_date > :d)) ORDER BY b.id",
        bureau=bureau,
        d=business_date,
    )
    names = []
    for b in ready:
        count, total = conn.execute(
            text(
                "SELECT COUNT(*), COALESCE(SUM(CASE WHEN result = :c THEN credited_fen ELSE 0 END), 0) "
                "FROM disb_line WHERE batch_id = :b"
            ),
            {"b": b.id, "c": CREDITED},
        ).one()
        count, total = int(count), int(total)

        def answers(batch_id: int = b.id) -> Iterator[pa.Table]:
            yield from _answer_tables(conn, batch_id)

        request = FileName.parse(b.name)
        name = response_name(request)
        header = Header(
            "DISBRSP",
            request.receiver,
            request.sender,
            b.batch_no,
            b.business_date,
            count,
            total,
        )

        def write(
            out: BinaryIO,
            h: Header = header,
            tables: Callable[[], Iterator[pa.Table]] = answers,
        ) -> None:
            write_delimited_tables(out, DISBRSP, h, tables(), encoding)

        compose(
            conn,
            dest,
            work_dir,
            name=name,
            type_="DISBRSP",
            record_count=count,
            write=write,
            source_file_id=b.file_id,
        )
        conn.execute(
            text("UPDATE disb_batch SET status = 'answered', answered_date = :d WHERE id = :b"),
            {"d": business_date, "b": b.id},
        )
        names.append(name)
        log.info("%s: %d line(s), %s yuan credited", name, count, fen_to_amount(total))
    return names


_ANSWER_COLUMNS = {
    "pay_no": pa.string(),
    "result": pa.string(),
    "credited_fen": pa.int64(),
    "posted_time": pa.string(),
    "bank_ref": pa.string(),
}


def _answer_tables(conn: Connection, batch_id: int) -> Iterator[pa.Table]:
    """A batch's DISBRSP lines in SEQ order, read and formatted a block at a time as
    columns: a credited line its amount, time and bank_ref; any other its code and
    reason text (ICD §4.2)."""
    blocks = query_batches(
        conn,
        text(
            "SELECT pay_no, result, credited_fen, posted_time, bank_ref FROM disb_line "
            "WHERE batch_id = :b ORDER BY seq"
        ),
        {"b": batch_id},
        _ANSWER_COLUMNS,
        50_000,
    )
    empty = pa.scalar("")
    for block in blocks:
        pay_no, result = block.column("pay_no"), block.column("result")
        credited = pc.fill_null(pc.equal(result, CREDITED), False)
        codes = pc.unique(result)
        texts = pa.array([reason_text(str(code)) for code in codes.to_pylist()], pa.string())
        yield pa.table(
            {
                "pay_no": pc.if_else(
                    pc.match_substring_regex(pay_no, f"^(?:{KEY})$"), pay_no, NOT_A_KEY
                ),
                "result": result,
                "credited_amount": pc.if_else(
                    credited, amount_column(block.column("credited_fen")), "0.00"
                ),
                "posted_time": pc.if_else(credited, block.column("posted_time"), empty),
                "bank_ref": pc.if_else(credited, block.column("bank_ref"), empty),
                "reason_code": pc.if_else(credited, empty, result),
                "reason_text": pc.if_else(
                    credited, empty, pc.take(texts, pc.index_in(result, codes))
                ),
            }
        )
