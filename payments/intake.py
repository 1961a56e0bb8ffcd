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
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc
from sqlalchemy import Connection, bindparam, text

from persistence.db import bulk_load
from schemas.codec import Chunk, DelimitedReader, fen_column
from schemas.codes import FileCode
from schemas.files import FileLevelError
from schemas.layouts import DISB

log = logging.getLogger("sscard.payments")

#: a line's answer is decided at intake when it is one of these
_POS = {name: i for i, name in enumerate(DISB.names)}


@dataclass(frozen=True)
class DisbContext:
    hub: str
    bureau: str
    business_date: str
    file_id: int
    batch_no: str
    #: credits to a pre-opened account are accepted (DOMAIN §3), or refused 106
    credit_preopened: bool = True


@dataclass(frozen=True)
class Holder:
    bank_code: str
    id_no: str
    name: str
    #: the account refuses credits (closed or credit_blocked; pre-opened when so configured)
    refuses: bool


def _holders(conn: Connection, ctx: DisbContext, pans: Sequence[str]) -> dict[str, Holder]:
    """Who holds each PAN: hub accounts (with the name of their newest card) and partner
    banks' (from the cards the hub made for them)."""
    out: dict[str, Holder] = {}
    accounts = text(
        "SELECT pan, id_no, status, credit_blocked FROM account WHERE pan IN :keys"
    ).bindparams(bindparam("keys", expanding=True))
    cards = text(
        "SELECT pan, bank_code, id_no, name, pan_seq FROM card WHERE pan IN :keys"
    ).bindparams(bindparam("keys", expanding=True))
    for i in range(0, len(pans), 5000):
        part = list(pans[i : i + 5000])
        newest: dict[str, tuple[str, str, str, str]] = {}
        for c in conn.execute(cards, {"keys": part}):
            if c.pan not in newest or c.pan_seq > newest[c.pan][3]:
                newest[c.pan] = (c.bank_code, c.id_no, c.name, c.pan_seq)
        for r in conn.execute(accounts, {"keys": part}):
            refuses = (
                r.status == "closed"
                or bool(r.credit_blocked)
                or (r.status == "preopened" and not ctx.credit_preopened)
            )
            name = newest[r.pan][2] if r.pan in newest else ""
            out[r.pan] = Holder(ctx.hub, r.id_no, name, refuses)
        for pan, (bank_code, id_no, name, _) in newest.items():
            if bank_code != ctx.hub:
                out.setdefault(pan, Holder(bank_code, id_no, name, False))
    return out


@dataclass
class Intake:
    """One DISB file's lines, chunk by chunk, each chunk stored as it is checked (memory
    stays flat however long the file); repeated pay_nos are settled set-wise at the end."""

    conn: Connection
    ctx: DisbContext
    batch_id: int
    benefit_type: str | None = None
    lines: int = 0

    def take(self, chunk: Chunk) -> None:
        n = len(chunk)
        ctx = self.ctx
        pay = chunk.strings("pay_no")
        pans = chunk.strings("pan")
        ids = chunk.strings("id_no")
        names = chunk.strings("name")
        types = chunk.strings("benefit_type")
        amounts_col = chunk.column("amount").combine_chunks()
        fail_index = chunk.fail_index
        fail_code = chunk.fail_code
        shaped = np.asarray(
            pc.match_substring_regex(amounts_col, r"^[0-9]{1,10}\.[0-9]{2}$").to_numpy(
                zero_copy_only=False
            ),
            dtype=bool,
        )
        fen = np.zeros(n, dtype=np.int64)
        if shaped.any():
            fen[shaped] = fen_column(amounts_col.filter(pa.array(shaped)))
        if self.benefit_type is None:
            ok_types = [t for i, t in enumerate(types) if fail_index[i] > _POS["benefit_type"]]
            self.benefit_type = ok_types[0] if ok_types else ""
        holders = _holders(self.conn, ctx, sorted({str(p) for p in pans if p}))
        result: list[str | None] = [None] * n
        partner: list[str | None] = [None] * n
        for i in range(n):
            at, code = int(fail_index[i]), str(fail_code[i])
            if at > _POS["benefit_type"] and types[i] != self.benefit_type:
                at, code = _POS["benefit_type"], "E117"
            if at < len(DISB.names):
                result[i] = code if at >= 0 else "E116"
                continue
            holder = holders.get(str(pans[i]))
            if holder is None:
                result[i] = "103"
            elif holder.id_no != ids[i]:
                result[i] = "104"
            elif holder.name != names[i]:
                result[i] = "105"
            elif holder.bank_code != ctx.hub:
                partner[i] = holder.bank_code
            elif holder.refuses:
                result[i] = "106"
        self.lines += n
        seqs = chunk.seqs
        batch_id = self.batch_id
        table = pa.table(
            {
                "batch_id": pa.array(np.full(n, batch_id, dtype=np.int64)),
                "seq": pa.array(seqs),
                "bureau": pa.array([ctx.bureau] * n),
                "pay_no": pa.array([str(k)[:64] for k in pay]),
                "pan": pa.array([str(p)[:19] for p in pans]),
                "amount_fen": pa.array(fen),
                "result": pa.array(result, pa.string()),
                "credited_fen": pa.array(np.zeros(n, dtype=np.int64)),
                "partner": pa.array(partner, pa.string()),
                "partner_key": pa.array(
                    [partner_key(batch_id, int(seqs[i])) if partner[i] else None for i in range(n)],
                    pa.string(),
                ),
                "answered_date": pa.array(
                    [ctx.business_date if r is not None else None for r in result], pa.string()
                ),
            }
        )
        bulk_load(self.conn, "disb_line", table, table.column_names)
        self._forward(chunk, partner, fen)

    def _forward(self, chunk: Chunk, partner: list[str | None], fen: npt.NDArray[np.int64]) -> None:
        rows = [i for i, p in enumerate(partner) if p]
        if not rows:
            return
        seqs = chunk.seqs
        cols = {name: chunk.strings(name) for name in DISB.names}
        self.conn.execute(
            text(
                "INSERT INTO disb_forward (partner_key, batch_id, seq, bank_code, id_no, name, "
                "card_no, pan, amount_fen, benefit_type, period, memo) VALUES (:partner_key, "
                ":batch_id, :seq, :bank_code, :id_no, :name, :card_no, :pan, :amount_fen, "
                ":benefit_type, :period, :memo)"
            ),
            [
                {
                    "partner_key": partner_key(self.batch_id, int(seqs[i])),
                    "batch_id": self.batch_id,
                    "seq": int(seqs[i]),
                    "bank_code": partner[i],
                    "id_no": str(cols["id_no"][i]),
                    "name": str(cols["name"][i]),
                    "card_no": str(cols["card_no"][i]),
                    "pan": str(cols["pan"][i]),
                    "amount_fen": int(fen[i]),
                    "benefit_type": str(cols["benefit_type"][i]),
                    "period": str(cols["period"][i]),
                    "memo": str(cols["memo"][i]),
                }
                for i in rows
            ],
        )

    def settle_repeats(self) -> int:
        """``209`` for every line whose pay_no this bureau used in an earlier file or earlier
        in this one (ICD §5.10): the first field, so it wins over any later check; a line
        whose pay_no is no key at all (E116) keeps that. Returns the lines marked."""
        b, d = self.batch_id, self.ctx.business_date
        marked = self.conn.execute(
            text(
                "UPDATE disb_line SET result = '209', partner = NULL, partner_key = NULL, "
                "answered_date = :d WHERE batch_id = :b AND (result IS NULL OR result <> 'E116') "
                "AND (seq IN (SELECT seq FROM (SELECT seq, ROW_NUMBER() OVER (PARTITION BY pay_no "
                "ORDER BY seq) AS n FROM disb_line WHERE batch_id = :b) r WHERE r.n > 1) "
                "OR EXISTS (SELECT 1 FROM disb_line e WHERE e.bureau = disb_line.bureau "
                "AND e.pay_no = disb_line.pay_no AND e.batch_id <> :b))"
            ),
            {"b": b, "d": d},
        ).rowcount
        self.conn.execute(
            text(
                "DELETE FROM disb_forward WHERE batch_id = :b AND partner_key NOT IN "
                "(SELECT partner_key FROM disb_line WHERE batch_id = :b AND partner_key IS NOT NULL)"
            ),
            {"b": b},
        )
        return int(marked or 0)


def partner_key(batch_id: int, seq: int) -> str:
    """The hub's own pay_no of a line forwarded to a partner bank (ICD §4.2)."""
    return f"D{batch_id:09d}{seq:08d}"


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
    for chunk in reader.chunks():
        intake.take(chunk)
        log.info("%s DISB %s: %d line(s) checked so far", ctx.bureau, ctx.batch_no, intake.lines)
    if header.total_fen <= 0 and intake.lines:
        raise FileLevelError(FileCode.F09, "a DISB's total amount is above zero")
    intake.settle_repeats()
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
