"""The payment system's statement of the clearing account (ICD §5.11, DOMAIN §6) and what
finance must send back.

:func:`apply_statement` applies one STMT file in its transaction: each line's memo says
what the money is for, exactly (``DISB/<batch_no>`` a credit, ``RET/<batch_no>`` and
``PTN/<bank_code>/<batch_no>`` debits); a line is recorded in ``statement_line`` once per
(sender, txn_ref), whatever file brings it, and posted once under ``stmt:<sender>:<txn_ref>``
with the legs of :mod:`payments`. A line whose memo is none of the three forms, or names a
batch the hub does not know (or that two bureaus both used), is ``UNIDENTIFIED``: nothing is
posted and finance sees it as R09 until it is resolved by hand.

:func:`return_instructions` lists what finance must pay out of the settlement account: a
batch's failed amounts (``RET``) and its partner banks' credits (``PTN``), each with the
memo the payment system must carry and its due date.
"""

from __future__ import annotations

import csv
import logging
import re
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from itertools import islice
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pyarrow as pa
from sqlalchemy import Connection, text

from banking import ledger
from persistence.db import keyed
from reconciliation.daily import add_business_days, was_unfunded
from schemas.codec import Chunk, fen_column
from schemas.layouts import STMT
from servicing.partner import report_problems

log = logging.getLogger("sscard.reconciliation")

_BATCH_NO = r"[0-9A-Za-z]{1,20}"
_MEMO_DISB = re.compile(rf"DISB/({_BATCH_NO})")
_MEMO_RET = re.compile(rf"RET/({_BATCH_NO})")
_MEMO_PTN = re.compile(rf"PTN/(B[0-9]{{3}})/({_BATCH_NO})")

DISB, RET, PTN, UNIDENTIFIED = "DISB", "RET", "PTN", "UNIDENTIFIED"
#: the two legs of each kind's posting (DOMAIN §6; payments/__init__.py)
_POSTING_KIND = {DISB: "stmt_funding", RET: "stmt_return", PTN: "stmt_partner"}
_IN_CHUNK = 1_000


class StatementReader(Protocol):
    def chunks(self) -> Iterator[Chunk]: ...


@dataclass(frozen=True)
class Classified:
    """What a memo with its dc says: the kind, the batch_no it names and a partner's bank."""

    kind: str
    batch_no: str | None
    bank_code: str | None


def classify(memo: str, dc: str) -> Classified:
    """A memo read exactly (ICD §5.11): ``DISB/<batch_no>`` with ``C``, ``RET/<batch_no>``
    or ``PTN/<bank_code>/<batch_no>`` with ``D``; anything else is unidentified (the
    batch_no it seems to name is kept for finance)."""
    if found := _MEMO_DISB.fullmatch(memo):
        return Classified(DISB if dc == "C" else UNIDENTIFIED, found.group(1), None)
    if found := _MEMO_RET.fullmatch(memo):
        return Classified(RET if dc == "D" else UNIDENTIFIED, found.group(1), None)
    if found := _MEMO_PTN.fullmatch(memo):
        if dc == "D":
            return Classified(PTN, found.group(2), found.group(1))
        return Classified(UNIDENTIFIED, found.group(2), None)
    return Classified(UNIDENTIFIED, None, None)


def _chunks(values: Iterable[Any], size: int = _IN_CHUNK) -> Iterator[list[Any]]:
    it = iter(values)
    while part := list(islice(it, size)):
        yield part


def _batches_named(conn: Connection, batch_nos: set[str]) -> dict[str, tuple[int, str] | None]:
    """(id, bureau) of each batch_no's DISB batch; None when two bureaus used it."""
    found: dict[str, tuple[int, str] | None] = {}
    query = keyed(conn, "SELECT id, bureau, batch_no FROM disb_batch WHERE batch_no IN :nos", "nos")
    for part in _chunks(sorted(batch_nos)):
        for row in conn.execute(query, {"nos": part}):
            found[row.batch_no] = None if row.batch_no in found else (int(row.id), row.bureau)
    return found


def _recorded(
    conn: Connection, sender: str, txn_refs: Sequence[str]
) -> dict[str, tuple[str, str, int, str]]:
    """The lines of ``sender`` recorded before under these txn_refs: what each said
    (value_date, dc, amount_fen, memo)."""
    query = keyed(
        conn,
        "SELECT txn_ref, value_date, dc, amount_fen, memo FROM statement_line "
        "WHERE sender = :s AND txn_ref IN :refs",
        "refs",
    )
    seen: dict[str, tuple[str, str, int, str]] = {}
    for part in _chunks(txn_refs):
        for row in conn.execute(query, {"s": sender, "refs": part}):
            seen[row.txn_ref] = (row.value_date, row.dc, int(row.amount_fen), row.memo or "")
    return seen


#: the position of a STMT line's key in its layout
_TXN_REF_AT = STMT.names.index("txn_ref")


def stmt_key(sender: str, txn_ref: str) -> str:
    """A statement line's idempotency key and its R09 item's ``ref``."""
    return f"stmt:{sender}:{txn_ref}"


def apply_statement(
    conn: Connection,
    reader: StatementReader,
    *,
    sender: str,
    file_id: int,
    business_date: str,
    now: datetime,
) -> dict[str, int]:
    """Record and post every line of one STMT file (ICD §5.11, DOMAIN §6), in the caller's
    transaction. A line failing the layout (its first failing field, ICD §4.2) or
    repeating a txn_ref within the file (E107) is recorded nowhere and counted in
    ``problems``; a txn_ref recorded before, in any file, is skipped (``repeated``: a
    statement line seen twice is posted once). A ``DISB`` credit adds to its batch's
    ``funded_fen`` also when the batch is already answered or unfunded (its
    reconciliation shows the over-funding); funding of a batch cut off unfunded goes on
    to RETURNS, to be sent back with what it had received. Returns counts per kind, ``repeated``,
    ``problems`` and ``applied`` (every line without a problem)."""
    lines: list[dict[str, Any]] = []
    in_file: set[str] = set()
    counts: Counter[str] = Counter()
    for chunk in reader.chunks():
        ok = chunk.ok
        names = chunk.field_names()
        line_nos = chunk.lines
        for pos in np.flatnonzero(~ok).tolist():
            log.warning(
                "STMT from %s line %d: field %s refused (%s); not recorded",
                sender,
                int(line_nos[pos]),
                names[pos],
                chunk.fail_code[pos],
            )
        counts["problems"] += int((~ok).sum())
        # a refused line whose txn_ref is good still uses it: a later line repeating it in
        # this file is E107 (ICD §4.2: every occurrence after the first)
        keyed_refused = (~ok) & (chunk.fail_index > _TXN_REF_AT)
        refused_refs = dict(
            zip(
                line_nos[keyed_refused].tolist(),
                chunk.table.filter(pa.array(keyed_refused)).column("txn_ref").to_pylist(),
                strict=True,
            )
        )
        if not ok.any():
            in_file.update(refused_refs.values())
            continue
        good = chunk.table.filter(ok)
        amounts = fen_column(good.column("amount").combine_chunks()).tolist()
        refs = good.column("txn_ref").to_pylist()
        good_lines = line_nos[ok].tolist()
        good_seqs = chunk.seqs[ok].tolist()
        for i, (ref, value_date, dc, memo) in enumerate(
            zip(
                refs,
                good.column("value_date").to_pylist(),
                good.column("dc").to_pylist(),
                good.column("memo").to_pylist(),
                strict=True,
            )
        ):
            while refused_refs and next(iter(refused_refs)) < good_lines[i]:
                in_file.add(refused_refs.pop(next(iter(refused_refs))))
            if ref in in_file:
                log.warning(
                    "STMT from %s line %d: field txn_ref repeated in the file (E107); not recorded",
                    sender,
                    good_lines[i],
                )
                counts["problems"] += 1
                continue
            in_file.add(ref)
            lines.append(
                {
                    "seq": int(good_seqs[i]),
                    "txn_ref": ref,
                    "value_date": value_date,
                    "dc": dc,
                    "amount": amounts[i],
                    "memo": memo,
                }
            )
        in_file.update(refused_refs.values())
    counts["applied"] = len(lines)
    seen = _recorded(conn, sender, [line["txn_ref"] for line in lines])
    fresh = [line for line in lines if line["txn_ref"] not in seen]
    counts["repeated"] = len(lines) - len(fresh)
    # a line seen before is posted once; one that says something else under the same
    # txn_ref is not posted either, but a person must know the payment system sent it
    conflicts = []
    for line in lines:
        before = seen.get(line["txn_ref"])
        now_ = (line["value_date"], line["dc"], int(line["amount"]), line["memo"] or "")
        if before is None or before == now_:
            continue
        differ = ", ".join(
            name
            for name, was, is_ in zip(
                ("value_date", "dc", "amount", "memo"), before, now_, strict=True
            )
            if was != is_
        )
        log.warning(
            "STMT from %s SEQ %d: txn_ref %s recorded before with another %s; the first stands",
            sender,
            line["seq"],
            line["txn_ref"],
            differ,
        )
        conflicts.append((line["seq"] - 1, line["txn_ref"], "txn_ref seen before, other content"))
    if conflicts:
        name = conn.scalar(text("SELECT name FROM received_file WHERE id = :f"), {"f": file_id})
        report_problems(conn, str(name), conflicts, business_date)
        counts["conflicting"] = len(conflicts)

    classified = [classify(line["memo"], line["dc"]) for line in fresh]
    batches = _batches_named(
        conn, {c.batch_no for c in classified if c.kind != UNIDENTIFIED and c.batch_no}
    )
    rows: list[dict[str, Any]] = []
    transfers: dict[str, list[tuple[str, str, str, int]]] = {DISB: [], RET: [], PTN: []}
    funded: Counter[int] = Counter()
    #: the batch of each funding transfer, in order
    funded_batches: list[tuple[int, str]] = []
    unidentified: list[dict[str, Any]] = []
    for line, what in zip(fresh, classified, strict=True):
        kind = what.kind
        batch = batches.get(what.batch_no) if what.batch_no and kind != UNIDENTIFIED else None
        if kind != UNIDENTIFIED and batch is None:
            kind = UNIDENTIFIED
        key = stmt_key(sender, line["txn_ref"])
        bureau = batch[1] if batch is not None else None
        amount = int(line["amount"])
        if batch is not None and bureau is not None:
            if kind == DISB:
                transfers[DISB].append((key, ledger.settlement(), ledger.clearing(bureau), amount))
                funded_batches.append(batch)
                funded[batch[0]] += amount
            elif kind == RET:
                transfers[RET].append((key, ledger.returns(bureau), ledger.settlement(), amount))
            else:
                assert what.bank_code is not None
                transfers[PTN].append(
                    (key, ledger.due_to_partner(what.bank_code), ledger.settlement(), amount)
                )
        else:
            unidentified.append(
                {
                    "batch_no": what.batch_no or "",
                    "ref": key,
                    "amount": amount,
                    "d": business_date,
                }
            )
        counts[kind] += 1
        rows.append(
            {
                "sender": sender,
                "txn_ref": line["txn_ref"],
                "file_id": file_id,
                "business_date": business_date,
                "value_date": line["value_date"],
                "dc": line["dc"],
                "amount_fen": amount,
                "memo": line["memo"],
                "kind": kind,
                "bureau": bureau,
                "batch_no": what.batch_no,
                "bank_code": what.bank_code if kind == PTN else None,
                "posted": kind != UNIDENTIFIED,
            }
        )
    if rows:
        conn.execute(
            text(
                "INSERT INTO statement_line (sender, txn_ref, file_id, business_date, value_date, "
                "dc, amount_fen, memo, kind, bureau, batch_no, bank_code, posted) VALUES (:sender, "
                ":txn_ref, :file_id, :business_date, :value_date, :dc, :amount_fen, :memo, :kind, "
                ":bureau, :batch_no, :bank_code, :posted)"
            ),
            rows,
        )
    cut_off: set[int] = set()
    for batch_id, fen in sorted(funded.items()):
        # the batches before the ledger's accounts, as a posting takes them (a posting
        # of a batch this funds again would otherwise deadlock with this); its status
        # read as this update leaves it, after a cut-off under way has committed
        status, funded_date = conn.execute(
            text(
                "UPDATE disb_batch SET funded_fen = funded_fen + :f WHERE id = :i "
                "RETURNING status, funded_date"
            ),
            {"i": batch_id, "f": fen},
        ).one()
        if was_unfunded(status, funded_date):
            cut_off.add(batch_id)
    # funding of a batch already cut off unfunded is returned with what it had received
    # (its lines were answered 301): clearing to returns, as the cut-off moved the rest
    late = [
        (f"unfunded:{key}", ledger.clearing(bureau), ledger.returns(bureau), amount)
        for (key, _, _, amount), (batch_id, bureau) in zip(
            transfers[DISB], funded_batches, strict=True
        )
        if batch_id in cut_off
    ]
    for kind, legs in transfers.items():
        if legs:
            ledger.post_transfers(conn, _POSTING_KIND[kind], business_date, legs, now)
    if late:
        ledger.post_transfers(conn, "disb_unfunded", business_date, late, now)
    if unidentified:
        conn.execute(
            text(
                "INSERT INTO recon_break (bureau, batch_no, reason, ref, amount_fen, first_date, "
                "last_date) VALUES ('', :batch_no, 'R09', :ref, :amount, :d, :d) "
                "ON CONFLICT (bureau, batch_no, reason, ref) DO NOTHING"
            ),
            unidentified,
        )
    for kind in (DISB, RET, PTN, UNIDENTIFIED, "repeated", "problems", "applied"):
        counts.setdefault(kind, 0)
    log.info(
        "STMT from %s: %d funding, %d return, %d partner, %d unidentified, %d repeated, %d refused",
        sender,
        counts[DISB],
        counts[RET],
        counts[PTN],
        counts[UNIDENTIFIED],
        counts["repeated"],
        counts["problems"],
    )
    return dict(counts)


@dataclass(frozen=True)
class Instruction:
    """A payment finance must send from the settlement account: ``RET`` a batch's failed
    amounts back to the bureau, ``PTN`` a batch's credits at a partner bank to that bank,
    with the memo the statement must carry and the day it is due (ICD §5.12)."""

    bureau: str
    batch_no: str
    kind: str
    bank: str
    amount_fen: int
    memo: str
    due_date: str


def return_instructions(
    conn: Connection, business_date: str, holidays: Iterable[str] = ()
) -> list[Instruction]:
    """What finance must still send as of the end of ``business_date`` for every batch
    answered by then (DISBRSP written) and not yet reconciled BALANCED: per batch its
    failed amount, or for an ``unfunded`` batch everything it was funded (its ``301``
    lines were never paid), less what was returned (``RET``); per (batch, partner bank)
    what was credited there less what was settled (``PTN``). Due at the end of the
    business day after the DISBRSP (Monday to Friday). Sorted by due date, bureau,
    batch_no, kind, bank."""
    d = business_date
    open_batches = (
        "SELECT b.id, b.bureau, b.batch_no, b.status, b.answered_date, b.funded_date "
        "FROM disb_batch b "
        "WHERE b.answered_date <= :d AND NOT EXISTS (SELECT 1 FROM recon_batch r "
        "WHERE r.bureau = b.bureau AND r.batch_no = b.batch_no AND r.business_date <= :d "
        "AND r.status = 'BALANCED')"
    )
    batches = {int(r.id): r for r in conn.execute(text(open_batches), {"d": d})}
    if not batches:
        return []
    failed: dict[int, int] = dict(
        conn.execute(
            text(
                f"SELECT l.batch_id, SUM(l.amount_fen) FROM disb_line l JOIN ({open_batches}) b "
                "ON b.id = l.batch_id WHERE l.answered_date <= :d AND l.result <> '0000' "
                "GROUP BY l.batch_id"
            ),
            {"d": d},
        ).all()
    )
    credited = conn.execute(
        text(
            f"SELECT l.batch_id, l.partner, SUM(l.credited_fen) FROM disb_line l JOIN "
            f"({open_batches}) b ON b.id = l.batch_id WHERE l.answered_date <= :d "
            "AND l.result = '0000' AND l.partner IS NOT NULL GROUP BY l.batch_id, l.partner"
        ),
        {"d": d},
    ).all()
    moved = conn.execute(
        text(
            f"SELECT b.id, s.kind, s.bank_code, SUM(s.amount_fen) FROM statement_line s JOIN "
            f"({open_batches}) b ON b.bureau = s.bureau AND b.batch_no = s.batch_no "
            "WHERE s.business_date <= :d AND s.kind IN ('DISB', 'RET', 'PTN') "
            "GROUP BY b.id, s.kind, s.bank_code"
        ),
        {"d": d},
    ).all()
    funded: Counter[int] = Counter()
    returned: Counter[int] = Counter()
    settled: Counter[tuple[int, str]] = Counter()
    for batch_id, kind, bank, fen in moved:
        if kind == DISB:
            funded[batch_id] += int(fen)
        elif kind == RET:
            returned[batch_id] += int(fen)
        else:
            settled[(batch_id, bank)] += int(fen)
    found: list[Instruction] = []
    for batch_id, b in batches.items():
        due = add_business_days(b.answered_date, 1, holidays)
        owed = (
            funded[batch_id]
            if was_unfunded(b.status, b.funded_date)
            else int(failed.get(batch_id, 0))
        )
        if owed > returned[batch_id]:
            found.append(
                Instruction(
                    b.bureau,
                    b.batch_no,
                    RET,
                    "",
                    owed - returned[batch_id],
                    f"RET/{b.batch_no}",
                    due,
                )
            )
    for batch_id, bank, fen in credited:
        b = batches[batch_id]
        owed = int(fen) - settled[(batch_id, bank)]
        if owed > 0:
            found.append(
                Instruction(
                    b.bureau,
                    b.batch_no,
                    PTN,
                    bank,
                    owed,
                    f"PTN/{bank}/{b.batch_no}",
                    add_business_days(b.answered_date, 1, holidays),
                )
            )
    return sorted(found, key=lambda i: (i.due_date, i.bureau, i.batch_no, i.kind, i.bank))


_CSV_HEADER = (
    "人社局 bureau",
    "批次号 batch_no",
    "类型 kind",
    "收款银行 bank",
    "金额(元) amount_yuan",
    "附言 memo",
    "到期日 due_date",
)


def write_instructions(rows: Iterable[Instruction], path: Path) -> int:
    """The instructions as a CSV for finance: UTF-8 with a BOM (so Excel shows Chinese
    headers), CRLF, amounts in yuan with two decimals. Returns the number of rows."""
    n = 0
    with path.open("w", encoding="utf-8-sig", newline="") as out:
        writer = csv.writer(out, lineterminator="\r\n")
        writer.writerow(_CSV_HEADER)
        for row in rows:
            writer.writerow(
                (
                    row.bureau,
                    row.batch_no,
                    row.kind,
                    row.bank,
                    ledger.yuan(row.amount_fen),
                    row.memo,
                    row.due_date,
                )
            )
            n += 1
    return n


__all__ = [
    "DISB",
    "PTN",
    "RET",
    "UNIDENTIFIED",
    "Classified",
    "Instruction",
    "apply_statement",
    "classify",
    "return_instructions",
    "stmt_key",
    "write_instructions",
]
