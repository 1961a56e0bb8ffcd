"""DISB intake (ICD §5.10): a bureau's benefit payments checked line by line in the file's
one transaction, stored as a batch waiting for its funding (``payments/__init__.py``).

The order of checks on a line is §5.10's: the field rules of §4.2 in layout order (a
``pay_no`` this bureau used in an earlier file, or earlier in this one, is ``209`` at its
own position; ``amount`` ``208``; a ``benefit_type`` other than the file's E117), then the
account checks ``103`` (no such account), ``104`` (id_no not the holder's), ``105`` (name
not the holder's), ``106`` (closed or not able to receive credits) in that order. Lines of
accounts held at a partner bank pass the hub's field checks and are forwarded; the
partner answers their account checks.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from sqlalchemy import Connection, text

from exchange.requests import stage_overlapped
from persistence.db import bulk_load
from schemas.codec import Chunk, DelimitedReader, amount_fen
from schemas.layouts import DISB

log = logging.getLogger("sscard.payments")

#: a line's answer is decided at intake when it is one of these
_POS = {name: i for i, name in enumerate(DISB.names)}
_BENEFIT_TYPES = next(f.values for f in DISB.fields if f.name == "benefit_type")


@dataclass(frozen=True)
class DisbContext:
    hub: str
    bureau: str
    business_date: str
    file_id: int
    batch_no: str
    #: credits to a pre-opened account are accepted (DOMAIN §3), or refused 106
    credit_preopened: bool = True


_STAGE = (
    ("seq", "BIGINT"),
    ("pay_no", "TEXT"),
    ("pan", "TEXT"),
    ("id_no", "TEXT"),
    ("name", "TEXT"),
    ("card_no", "TEXT"),
    ("benefit_type", "TEXT"),
    ("period", "TEXT"),
    ("memo", "TEXT"),
    ("amount_fen", "BIGINT"),
    ("field_code", "TEXT"),
    #: the first failing field's position in the layout (negative: the whole line; the
    #: number of fields: none)
    ("field_at", "INTEGER"),
    #: its benefit_type is one of the ICD's
    ("type_valid", "BOOLEAN"),
    #: the line repeats a pay_no (``209``): set once the file is staged
    ("repeated", "BOOLEAN"),
)


def line_key_sql(conn: Connection, prefix: str, batch_sql: str, seq_sql: str) -> str:
    """SQL for a key the hub gives a DISB line: ``prefix`` + its batch id in 9 digits + its
    SEQ in 8 (ICD §4.2): ``D…`` the pay_no forwarded to a partner bank, ``H…`` the
    bank_ref of a credit the hub posted."""
    if conn.dialect.name == "postgresql":
        return (
            f"'{prefix}' || lpad(CAST({batch_sql} AS TEXT), 9, '0') "
            f"|| lpad(CAST({seq_sql} AS TEXT), 8, '0')"
        )
    return f"printf('{prefix}%09d%08d', {batch_sql}, {seq_sql})"


@dataclass
class Intake:
    """One DISB file's lines: each chunk's field checks done in memory (:meth:`prepare`)
    and the chunk staged (:meth:`load`: COPY on PostgreSQL) while the next is read, so
    memory stays flat however long the file; then the repeats and the account checks of
    every line at once, by joins in the database, and the lines stored (:meth:`finish`)."""

    conn: Connection
    ctx: DisbContext
    batch_id: int
    benefit_type: str | None = None
    lines: int = 0
    stage: str = ""

    def __post_init__(self) -> None:
        self.stage = f"disb_stage_{uuid.uuid4().hex[:12]}"
        cols = ", ".join(f"{n} {t}" for n, t in _STAGE)
        self.conn.execute(text(f"CREATE TEMPORARY TABLE {self.stage} ({cols})"))

    def prepare(self, chunk: Chunk) -> tuple[pa.Table, int]:
        """A chunk's field checks and its staging table, in memory (no database)."""
        n = len(chunk)
        fen = amount_fen(chunk.column("amount"))
        # the first failing field's code; the file's one benefit type (E117) and the
        # repeats (209) are decided over the whole file in finish()
        code = np.asarray(chunk.fail_code, dtype=object).copy()
        at = chunk.fail_index.astype(np.int32)
        failed = at < len(DISB.names)
        code[failed & (at < 0)] = "E116"
        code[~failed] = None
        type_valid = np.asarray(
            pc.is_in(chunk.column("benefit_type"), value_set=pa.array(_BENEFIT_TYPES)).to_numpy(
                zero_copy_only=False
            ),
            dtype=bool,
        )
        table = pa.table(
            {
                "seq": pa.array(chunk.seqs),
                # a NUL cannot be stored in PostgreSQL text; a value holding one fails its
                # field check, or can match no holder, so it is kept with U+FFFD instead
                **{
                    name: pc.replace_substring(chunk.column(name), "\x00", "\ufffd")
                    for name in _TEXT_FIELDS
                },
                "amount_fen": pa.array(fen),
                "field_code": pa.array(code, pa.string()),
                "field_at": pa.array(at, pa.int32()),
                "type_valid": pa.array(type_valid),
            }
        )
        return table, n

    def load(self, table: pa.Table, first: int, last: int) -> None:
        """A prepared chunk (lines ``first`` to ``last``) staged in the database."""
        bulk_load(self.conn, self.stage, table, [name for name, _ in _STAGE if name != "repeated"])
        self.lines += last - first + 1

    def finish(self) -> None:
        """Every staged line checked and stored: ``209`` for a pay_no this bureau used in
        an earlier file or earlier in this one (the first field: it wins over any later
        check; a line that is no key at all keeps E116), the field codes, then the account
        checks; lines of partner banks' accounts forwarded (``disb_forward``)."""
        conn, ctx, stage = self.conn, self.ctx, self.stage
        pg = conn.dialect.name == "postgresql"
        if pg:
            # the joins and sorts over a file's lines stay in memory (this transaction only)
            conn.execute(text("SET LOCAL work_mem = '512MB'"))
            conn.execute(text(f"ANALYZE {stage}"))
        # the pay_nos this bureau used in earlier files, found before this file's lines are
        # written (a lookup into the table being written would read those rows too)
        used = f"{stage}_used"
        conn.execute(
            text(
                f"CREATE TEMPORARY TABLE {used} AS SELECT DISTINCT s.pay_no FROM {stage} s "
                "JOIN disb_line e ON e.pay_no = s.pay_no AND e.bureau = :bureau "
                "AND e.batch_id <> :b AND e.keyed"
            ),
            {"bureau": ctx.bureau, "b": self.batch_id},
        )
        # the lines repeating a pay_no earlier in this file (few: a small table to join);
        # a line with the wrong number of fields has no key and uses none
        twice = f"{stage}_twice"
        conn.execute(
            text(
                f"CREATE TEMPORARY TABLE {twice} AS SELECT seq FROM (SELECT seq, ROW_NUMBER() "
                f"OVER (PARTITION BY pay_no ORDER BY seq) AS nth FROM {stage} "
                "WHERE field_at >= 0) r WHERE nth > 1"
            )
        )
        # marked on the few staged lines (no join of every line with the small tables,
        # which the planner, counting them as one row, would loop over once per line)
        conn.execute(
            text(
                f"UPDATE {stage} SET repeated = TRUE WHERE seq IN (SELECT seq FROM {twice}) "
                f"OR pay_no IN (SELECT pay_no FROM {used})"
            )
        )
        # the file's benefit type: the first line's whose fields up to it are good and
        # whose pay_no is new (a resent line may carry another type); failing that, the
        # first line's that is a benefit type at all
        self.benefit_type = conn.scalar(
            text(
                f"SELECT benefit_type FROM {stage} WHERE field_at > :bt AND repeated IS NULL "
                "ORDER BY seq LIMIT 1"
            ),
            {"bt": _POS["benefit_type"]},
        ) or conn.scalar(
            text(f"SELECT benefit_type FROM {stage} WHERE type_valid ORDER BY seq LIMIT 1")
        )
        refuse = "s.a_status = 'closed' OR s.a_credit_blocked" + (
            "" if ctx.credit_preopened else " OR s.a_status = 'preopened'"
        )
        # the holder of a PAN: the hub's account (the name of its newest card), or the
        # partner bank whose card it is (the hub made it)
        account = (
            "a.pan AS a_pan, a.id_no AS a_id_no, a.status AS a_status, "
            "a.credit_blocked AS a_credit_blocked"
        )
        if pg:
            # each line joined with its account and every card of its PAN, the newest card
            # kept by the sort in SEQ order that the insert needs anyway: one pass over
            # the cards, not three
            holders = (
                f"SELECT DISTINCT ON (s.seq) s.*, {account}, c.pan AS h_pan, "
                "c.bank_code AS h_bank, c.id_no AS h_id_no, c.name AS h_name "
                f"FROM {stage} s LEFT JOIN account a ON a.pan = s.pan "
                "LEFT JOIN card c ON c.pan = s.pan ORDER BY s.seq, c.pan_seq DESC NULLS LAST"
            )
        else:
            holders = (
                f"SELECT s.*, {account}, h.pan AS h_pan, h.bank_code AS h_bank, "
                f"h.id_no AS h_id_no, h.name AS h_name FROM {stage} s "
                "LEFT JOIN account a ON a.pan = s.pan LEFT JOIN (SELECT c.pan, c.bank_code, "
                f"c.id_no, c.name FROM card c WHERE c.pan IN (SELECT pan FROM {stage}) "
                "AND NOT EXISTS (SELECT 1 FROM card n WHERE n.pan = c.pan "
                "AND n.pan_seq > c.pan_seq)) h ON h.pan = s.pan"
            )
        checked = (
            "SELECT s.seq, s.pay_no, s.field_at, s.pan, s.amount_fen, CASE "
            # no key at all (the whole line, or its pay_no); else a repeat, whatever the rest
            "WHEN s.field_at <= 0 THEN s.field_code "
            "WHEN s.repeated THEN '209' "
            "WHEN s.field_at < :bt THEN s.field_code "
            "WHEN s.benefit_type <> :kind THEN 'E117' "
            "WHEN s.field_code IS NOT NULL THEN s.field_code "
            "WHEN s.a_pan IS NOT NULL THEN CASE "
            "WHEN COALESCE(s.a_id_no, '') <> s.id_no THEN '104' "
            "WHEN COALESCE(s.h_name, '') <> s.name THEN '105' "
            f"WHEN {refuse} THEN '106' END "
            "WHEN s.h_pan IS NOT NULL AND s.h_bank <> :hub THEN CASE "
            "WHEN s.h_id_no <> s.id_no THEN '104' WHEN s.h_name <> s.name THEN '105' END "
            "ELSE '103' END AS result, "
            "CASE WHEN s.a_pan IS NULL AND s.h_bank <> :hub THEN s.h_bank END AS bank "
            f"FROM ({holders}) s"
        )
        partner = "CASE WHEN result IS NULL THEN bank END"
        conn.execute(
            text(
                "INSERT INTO disb_line (batch_id, seq, bureau, pay_no, keyed, pan, amount_fen, "
                "result, credited_fen, partner, partner_key, answered_date) "
                "SELECT :b, s.seq, :bureau, SUBSTR(s.pay_no, 1, 64), s.field_at >= 0, "
                "SUBSTR(s.pan, 1, 19), "
                f"s.amount_fen, s.result, 0, {partner}, CASE WHEN {partner} IS NOT NULL THEN "
                f"{line_key_sql(conn, 'D', ':b', 's.seq')} END, CASE WHEN s.result IS NOT NULL THEN :d END "
                f"FROM ({checked}) s ORDER BY s.seq"
            ),
            {
                "b": self.batch_id,
                "bureau": ctx.bureau,
                "hub": ctx.hub,
                "d": ctx.business_date,
                "bt": _POS["benefit_type"],
                "kind": self.benefit_type or "",
            },
        )
        conn.execute(
            text(
                "INSERT INTO disb_forward (partner_key, batch_id, seq, bank_code, id_no, name, "
                "card_no, pan, amount_fen, benefit_type, period, memo) SELECT l.partner_key, "
                ":b, s.seq, l.partner, s.id_no, s.name, s.card_no, s.pan, s.amount_fen, "
                f"s.benefit_type, s.period, s.memo FROM {stage} s JOIN disb_line l "
                "ON l.batch_id = :b AND l.seq = s.seq WHERE l.partner IS NOT NULL ORDER BY s.seq"
            ),
            {"b": self.batch_id},
        )
        conn.execute(text(f"DROP TABLE {twice}"))
        conn.execute(text(f"DROP TABLE {used}"))
        if pg and self.lines >= 10_000:
            # the posting's plans need a large batch's lines counted
            conn.execute(text("ANALYZE disb_line"))
        conn.execute(text(f"DROP TABLE {stage}"))


#: the text fields a line keeps until it is checked (and forwarded to a partner bank)
_TEXT_FIELDS = ("pay_no", "pan", "id_no", "name", "card_no", "benefit_type", "period", "memo")


def apply_disb(conn: Connection, reader: DelimitedReader, ctx: DisbContext) -> dict[str, int]:
    """A bureau's DISB file: every line checked and stored, the batch waiting for funds."""
    header = reader.header
    batch_id = int(
        conn.execute(
            text(
                "INSERT INTO disb_batch (bureau, batch_no, file_id, business_date, benefit_type, "
                "line_count, total_fen, funded_fen, status) VALUES (:b, :n, :f, :d, '', :c, :tot, "
                "0, 'awaiting_funds') RETURNING id"
            ),
            {
                "b": ctx.bureau,
                "n": ctx.batch_no,
                "f": ctx.file_id,
                "d": header.business_date,
                "c": header.record_count,
                "tot": header.total_fen,
            },
        ).scalar_one()
    )
    intake = Intake(conn, ctx, batch_id)
    # each chunk staged while the next one is read and checked
    stage_overlapped(
        f"{ctx.bureau} DISB {ctx.batch_no}", reader.chunks(), intake.prepare, intake.load
    )
    intake.finish()
    conn.execute(
        text("UPDATE disb_batch SET benefit_type = :t WHERE id = :b"),
        {"t": intake.benefit_type or "", "b": batch_id},
    )
    counts = {
        str(k or "pending"): int(v)
        for k, v in conn.execute(
            text("SELECT result, COUNT(*) FROM disb_line WHERE batch_id = :b GROUP BY result"),
            {"b": batch_id},
        ).all()
    }
    log.info(
        "%s DISB %s: %d line(s), %s; waiting for its funding (DISB/%s)",
        ctx.bureau,
        ctx.batch_no,
        intake.lines,
        dict(sorted(counts.items())),
        ctx.batch_no,
    )
    counts["applied"] = counts.get("pending", 0)
    counts["batch_id"] = batch_id
    return counts
