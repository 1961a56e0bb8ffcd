"""The day's reconciliation of benefit payments (ICD §5.12, DOMAIN §7): each bureau's DISB
batches as of the end of a business date, the breaks carried forward until they match or
a person resolves them, and the bureau's RECON.

:func:`reconcile` computes a batch's figures from what was known by the end of the date
(lines answered by then, statement lines of that date or earlier) and stores them in
``recon_batch``; a past date computed again gives the same rows, and its RECON
(:func:`write_recon`, composed from the stored rows) the same bytes. The status is
``BREAK`` with the first R-code that applies in ICD §6's order, else ``PENDING`` when
what is missing is not due yet, else ``BALANCED``:

- R01 a line without its result although the batch is funded or past its cut-off, and
  not waiting for a partner bank inside ``partner_wait`` (from ``partner_sent_date``);
  a partner line of a batch funded on the date and not forwarded yet is not due until
  the next date (it goes out with the next forwarding run);
- R02 a ``0000`` line whose credited amount differs from its instructed amount;
- R03 the batch is ``unfunded``, or past its cut-off (the end of its business date)
  funded short of its header TOTAL_AMOUNT;
- R04 funded beyond the TOTAL_AMOUNT;
- R05 money paid out that the hub never instructed: ``RET`` debits beyond what is to be
  returned, or ``PTN`` debits to a bank beyond what was credited at that bank;
- R06 two statement lines of one sender with different txn_refs but the same value date,
  dc, amount and memo (a suspected double posting by the payment system);
- R07 returns short of the failed amount (of an unfunded batch: of what it was funded)
  after their due date, the end of the business day after the DISBRSP;
- R08 a partner bank's settlement short of what was credited there after that due date.

Unidentified statement lines are R09 items of their own (``recon_break`` rows written by
:mod:`reconciliation.statements`), never part of a batch's line.
"""

from __future__ import annotations

import io
import logging
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Connection, bindparam, text

from banking import audit
from exchange.outbox import Drop, compose, originate
from schemas.codec import Header, fen_to_amount, write_delimited
from schemas.files import FileName, hub_batch_no
from schemas.layouts import RECON

log = logging.getLogger("sscard.reconciliation")

TIMEZONE = ZoneInfo("Asia/Shanghai")
BALANCED, PENDING, BREAK = "BALANCED", "PENDING", "BREAK"
#: ICD §6's order: a batch's break_reason is the first of these that applies
ORDER = ("R01", "R02", "R03", "R04", "R05", "R06", "R07", "R08")
#: the benefit type RECON gives a batch none of whose lines had one of ICD §5.10's (its
#: ``disb_batch.benefit_type`` is empty): RECON's field is mandatory and one of those codes
UNTYPED = "900"


# --------------------------------------------------------------------------- calendar


def _date(day: str) -> date:
    return date(int(day[:4]), int(day[4:6]), int(day[6:]))


def is_business_day(day: str, holidays: Iterable[str] = ()) -> bool:
    """Monday to Friday, not a configured holiday (ICD §5.12)."""
    return _date(day).weekday() < 5 and day not in set(holidays)


def add_business_days(day: str, n: int, holidays: Iterable[str] = ()) -> str:
    """The ``n``-th business day after ``day`` (``day`` itself need not be one)."""
    off = set(holidays)
    d = _date(day)
    while n > 0:
        d += timedelta(days=1)
        if d.weekday() < 5 and d.strftime("%Y%m%d") not in off:
            n -= 1
    return d.strftime("%Y%m%d")


def still_waiting_from(day: str, wait_days: int, holidays: Iterable[str]) -> str:
    """The earliest ``partner_sent_date`` whose ``partner_wait`` has not run out by the
    end of ``day``: a line sent on S waits until the end of S + ``wait_days`` business
    days, which grows with S."""
    earliest = day
    d = _date(day)
    for _ in range(3 * wait_days + 15):
        d -= timedelta(days=1)
        candidate = d.strftime("%Y%m%d")
        if add_business_days(candidate, wait_days, holidays) < day:
            break
        earliest = candidate
    return earliest


def was_unfunded(status: str, funded_date: str | None) -> bool:
    """A batch answered ``301`` at its funding cut-off: ``unfunded``, or ``answered`` (its
    DISBRSP written) without ever having been funded."""
    return status == "unfunded" or (status == "answered" and funded_date is None)


def _local_day(moment: datetime | str | None) -> str | None:
    if moment is None:
        return None
    at = datetime.fromisoformat(moment) if isinstance(moment, str) else moment
    at = at if at.tzinfo else at.replace(tzinfo=UTC)
    return at.astimezone(TIMEZONE).strftime("%Y%m%d")


# --------------------------------------------------------------------------- reconcile


@dataclass(frozen=True)
class ReconRow:
    """A batch's reconciliation as of the end of ``business_date`` (a RECON line)."""

    bureau: str
    business_date: str
    batch_no: str
    benefit_type: str
    instructed_count: int
    instructed_fen: int
    credited_count: int
    credited_fen: int
    failed_count: int
    failed_fen: int
    funded_fen: int
    returned_fen: int
    partner_fen: int
    partner_settled_fen: int
    difference_fen: int
    status: str
    break_reason: str


@dataclass
class _Lines:
    instructed_count: int = 0
    instructed_fen: int = 0
    credited_count: int = 0
    credited_fen: int = 0
    failed_count: int = 0
    failed_fen: int = 0
    partner_fen: int = 0
    wrong_amount: int = 0
    wrong_amount_fen: int = 0
    unanswered: int = 0
    unanswered_fen: int = 0
    waiting: int = 0
    #: partner lines not answered and not yet forwarded by the end of the date
    unsent: int = 0


def _expanding(sql: str, name: str = "ids") -> Any:
    return text(sql).bindparams(bindparam(name, expanding=True))


def _open_breaks(conn: Connection, bureau: str, day: str) -> list[Any]:
    """The bureau's batch breaks open at the end of ``day``: found by then, not matched
    by then, not resolved by then."""
    found = conn.execute(
        text(
            "SELECT id, batch_no, reason, first_date, last_date, matched_date, resolved_at "
            "FROM recon_break WHERE bureau = :b AND reason <> 'R09' AND first_date <= :d "
            "AND (matched_date IS NULL OR matched_date > :d)"
        ),
        {"b": bureau, "d": day},
    ).all()
    return [r for r in found if (_local_day(r.resolved_at) or "99999999") > day]


def _candidates(
    conn: Connection, bureau: str, day: str, holidays: tuple[str, ...] = ()
) -> list[Any]:
    """The bureau's batches on ``day``'s RECON: received (dated that day), funded,
    answered or with lines answered, with statement lines that day, with an open break,
    PENDING on their latest earlier reconciliation, BREAK on it and not yet judged past
    the due date of their returns and settlements (a break resolved by hand does not
    end the watch on what else the batch still owes), or already reconciled for that
    day."""
    open_nos = sorted({r.batch_no for r in _open_breaks(conn, bureau, day)})
    sql = (
        "SELECT b.id, b.bureau, b.batch_no, b.business_date, b.benefit_type, b.total_fen, b.status, "
        "b.answered_date, b.funded_date FROM disb_batch b WHERE b.bureau = :b AND b.business_date <= :d AND ("
        "b.business_date = :d OR b.funded_date = :d OR b.answered_date = :d "
        "OR b.batch_no IN :ids "
        "OR EXISTS (SELECT 1 FROM disb_line l WHERE l.batch_id = b.id AND l.answered_date = :d) "
        "OR EXISTS (SELECT 1 FROM statement_line s WHERE s.bureau = b.bureau "
        "AND s.batch_no = b.batch_no AND s.business_date = :d) "
        "OR EXISTS (SELECT 1 FROM recon_batch r WHERE r.bureau = b.bureau "
        "AND r.batch_no = b.batch_no AND r.business_date = :d) "
        "OR EXISTS (SELECT 1 FROM recon_batch r WHERE r.bureau = b.bureau "
        "AND r.batch_no = b.batch_no AND r.status <> 'BALANCED' AND r.business_date = "
        "(SELECT MAX(p.business_date) FROM recon_batch p WHERE p.bureau = b.bureau "
        "AND p.batch_no = b.batch_no AND p.business_date < :d))"
        ") ORDER BY b.batch_no"
    )
    found = conn.execute(_expanding(sql), {"b": bureau, "d": day, "ids": open_nos or [""]})
    return [b for b in found if _watched(conn, b, day, open_nos, holidays)]


def _watched(
    conn: Connection, b: Any, day: str, open_nos: list[str], holidays: tuple[str, ...]
) -> bool:
    """Whether a candidate stays on ``day``'s RECON: any reason to be there but a BREAK
    on its latest earlier reconciliation keeps it; that one alone keeps it while that
    row shows lines, returns or settlements still owed, until the first day they are
    overdue has been judged."""
    if b.batch_no in open_nos or day in (b.business_date, b.funded_date, b.answered_date):
        return True
    latest = conn.execute(
        text(
            "SELECT r.status, r.instructed_count, r.credited_count, r.failed_count, "
            "r.failed_fen, r.funded_fen, r.returned_fen, r.partner_fen, r.partner_settled_fen "
            "FROM recon_batch r WHERE r.bureau = :bu AND r.batch_no = :n "
            "AND r.business_date < :d ORDER BY r.business_date DESC LIMIT 1"
        ),
        {"bu": b.bureau, "n": b.batch_no, "d": day},
    ).first()
    if latest is None or latest.status != BREAK:
        return True
    again = conn.execute(
        text(
            "SELECT 1 FROM recon_batch r WHERE r.bureau = :bu AND r.batch_no = :n "
            "AND r.business_date = :d UNION ALL SELECT 1 FROM disb_line l WHERE l.batch_id = :i "
            "AND l.answered_date = :d UNION ALL SELECT 1 FROM statement_line s "
            "WHERE s.bureau = :bu AND s.batch_no = :n AND s.business_date = :d"
        ),
        {"bu": b.bureau, "n": b.batch_no, "d": day, "i": b.id},
    ).first()
    if again is not None:
        return True
    to_return = latest.funded_fen if was_unfunded(b.status, b.funded_date) else latest.failed_fen
    owed = (
        latest.credited_count + latest.failed_count < latest.instructed_count
        or latest.returned_fen < to_return
        or latest.partner_settled_fen < latest.partner_fen
    )
    if not owed:
        return False
    if b.answered_date is None or b.answered_date > day:
        return True  # its lines still owe their answers: R01 is judged every day
    first_overdue = add_business_days(add_business_days(b.answered_date, 1, holidays), 1, holidays)
    return day <= first_overdue


def reconcile(
    conn: Connection,
    business_date: str,
    bureaus: Sequence[str],
    *,
    partner_wait_days: int | Mapping[str, int] = 1,
    holidays: Iterable[str] = (),
) -> list[ReconRow]:
    """Each bureau's batches as of the end of ``business_date`` (ICD §5.12, DOMAIN §7;
    this module's docstring gives the rules), stored in ``recon_batch`` (that date's row
    of a batch replaced) and the breaks brought up to date: a batch found BREAK gets or
    keeps its (bureau, batch_no, reason) item, ``last_date`` the date; an open item no
    longer found is matched on the date; a resolved item stays resolved; open R09 items
    are carried forward. Computing a past date again gives the same rows and changes no
    item's ``first_date``. ``partner_wait_days``: one wait for every partner bank, or each
    bank's own (a bank not named waits 1 business day). Returns the rows, by bureau and
    batch_no."""
    day = business_date
    off = tuple(holidays)
    waits = (
        dict(partner_wait_days)
        if isinstance(partner_wait_days, Mapping)
        else {"": partner_wait_days}
    )
    waiting_from = {
        bank: still_waiting_from(day, wait, off) for bank, wait in sorted(waits.items())
    }
    waiting_from.setdefault("", still_waiting_from(day, 1, off))
    result: list[ReconRow] = []
    for bureau in bureaus:
        batches = _candidates(conn, bureau, day, off)
        ids = [int(b.id) for b in batches]
        lines = _line_figures(conn, ids, day, waiting_from)
        partner_by_bank = _partner_by_bank(conn, ids, day)
        moved = _statement_figures(conn, bureau, [b.batch_no for b in batches], day)
        doubled = _doubled(conn, bureau, day)
        rows: list[ReconRow] = []
        breaks: list[dict[str, Any]] = []
        for b in batches:
            row, amount = _judge(
                bureau,
                day,
                b,
                lines.get(int(b.id), _Lines()),
                partner_by_bank[int(b.id)],
                moved[b.batch_no],
                doubled.get(b.batch_no, 0),
                off,
            )
            rows.append(row)
            # every code found is an item of its own (the row names the first): a
            # return overdue behind an over-funding waits for a person too
            breaks += [
                {"b": bureau, "n": b.batch_no, "r": code, "a": fen, "d": day}
                for code, fen in amount.items()
            ]
        _store(conn, rows)
        _keep_breaks(conn, bureau, day, [b.batch_no for b in batches], breaks)
        result += rows
        log.info(
            "%s %s: %d batch(es) reconciled, %d BREAK, %d PENDING",
            bureau,
            day,
            len(rows),
            sum(r.status == BREAK for r in rows),
            sum(r.status == PENDING for r in rows),
        )
    conn.execute(
        text(
            "UPDATE recon_break SET last_date = :d WHERE reason = 'R09' AND matched_date IS NULL "
            "AND resolved_at IS NULL AND first_date <= :d AND last_date < :d"
        ),
        {"d": day},
    )
    return result


def _line_figures(
    conn: Connection, ids: list[int], day: str, waiting_from: Mapping[str, str]
) -> dict[int, _Lines]:
    """Each batch's line figures; ``waiting_from``: per partner bank (``""`` any other)
    the earliest send date still inside its ``partner_wait``."""
    if not ids:
        return {}
    answered = "(l.result IS NOT NULL AND l.answered_date <= :d)"
    credited = f"({answered} AND l.result = '0000')"
    failed = f"({answered} AND l.result <> '0000')"
    banks = sorted(b for b in waiting_from if b)
    since = (
        "CASE "
        + "".join(f"WHEN l.partner = :bank{i} THEN :w{i} " for i in range(len(banks)))
        + "ELSE :w END"
        if banks
        else ":w"
    )
    waiting = (
        f"(NOT {answered} AND l.partner IS NOT NULL AND l.partner_sent_date <= :d "
        f"AND l.partner_sent_date >= {since})"
    )
    unsent = (
        f"(NOT {answered} AND l.partner IS NOT NULL AND (l.partner_sent_date IS NULL "
        "OR l.partner_sent_date > :d))"
    )
    sql = (
        "SELECT l.batch_id, COUNT(*), COALESCE(SUM(l.amount_fen), 0), "
        f"SUM(CASE WHEN {credited} THEN 1 ELSE 0 END), "
        f"SUM(CASE WHEN {credited} THEN l.credited_fen ELSE 0 END), "
        f"SUM(CASE WHEN {failed} THEN 1 ELSE 0 END), "
        f"SUM(CASE WHEN {failed} THEN l.amount_fen ELSE 0 END), "
        f"SUM(CASE WHEN {credited} AND l.partner IS NOT NULL THEN l.credited_fen ELSE 0 END), "
        f"SUM(CASE WHEN {credited} AND l.credited_fen <> l.amount_fen THEN 1 ELSE 0 END), "
        f"SUM(CASE WHEN {credited} AND l.credited_fen <> l.amount_fen "
        "THEN ABS(l.credited_fen - l.amount_fen) ELSE 0 END), "
        f"SUM(CASE WHEN NOT {answered} THEN 1 ELSE 0 END), "
        f"SUM(CASE WHEN NOT {answered} THEN l.amount_fen ELSE 0 END), "
        f"SUM(CASE WHEN {waiting} THEN 1 ELSE 0 END), "
        f"SUM(CASE WHEN {unsent} THEN 1 ELSE 0 END) "
        "FROM disb_line l WHERE l.batch_id IN :ids GROUP BY l.batch_id"
    )
    found: dict[int, _Lines] = {}
    for part in _parts(ids):
        params: dict[str, Any] = {"ids": part, "d": day, "w": waiting_from[""]}
        for i, bank in enumerate(banks):
            params[f"bank{i}"], params[f"w{i}"] = bank, waiting_from[bank]
        for r in conn.execute(_expanding(sql), params).all():
            found[int(r[0])] = _Lines(*(int(v or 0) for v in r[1:]))
    return found


def _parts(values: list[Any], size: int = 1_000) -> list[list[Any]]:
    return [values[i : i + size] for i in range(0, len(values), size)]


def _partner_by_bank(conn: Connection, ids: list[int], day: str) -> defaultdict[int, Counter[str]]:
    found: defaultdict[int, Counter[str]] = defaultdict(Counter)
    sql = (
        "SELECT l.batch_id, l.partner, SUM(l.credited_fen) FROM disb_line l "
        "WHERE l.batch_id IN :ids AND l.result = '0000' AND l.answered_date <= :d "
        "AND l.partner IS NOT NULL GROUP BY l.batch_id, l.partner"
    )
    for part in _parts(ids):
        for batch_id, bank, fen in conn.execute(_expanding(sql), {"ids": part, "d": day}).all():
            found[int(batch_id)][bank] += int(fen)
    return found


@dataclass
class _Moved:
    funded: int = 0
    returned: int = 0
    settled: Counter[str] | None = None

    def settled_at(self) -> Counter[str]:
        if self.settled is None:
            self.settled = Counter()
        return self.settled


def _statement_figures(
    conn: Connection, bureau: str, batch_nos: list[str], day: str
) -> defaultdict[str, _Moved]:
    found: defaultdict[str, _Moved] = defaultdict(_Moved)
    sql = (
        "SELECT batch_no, kind, bank_code, SUM(amount_fen) FROM statement_line "
        "WHERE bureau = :b AND batch_no IN :ids AND business_date <= :d "
        "AND kind IN ('DISB', 'RET', 'PTN') GROUP BY batch_no, kind, bank_code"
    )
    for part in _parts(batch_nos):
        for batch_no, kind, bank, fen in conn.execute(
            _expanding(sql), {"b": bureau, "ids": part, "d": day}
        ).all():
            moved = found[batch_no]
            if kind == "DISB":
                moved.funded += int(fen)
            elif kind == "RET":
                moved.returned += int(fen)
            else:
                moved.settled_at()[bank] += int(fen)
    return found


def _doubled(conn: Connection, bureau: str, day: str) -> dict[str, int]:
    """R06: per batch_no, the amount of statement lines repeating another line of the
    same sender (same value date, dc, amount and memo, another txn_ref)."""
    sql = (
        "SELECT batch_no, SUM(amount_fen * (n - 1)) FROM (SELECT batch_no, amount_fen, "
        "COUNT(*) AS n FROM statement_line WHERE bureau = :b AND business_date <= :d "
        "AND kind <> 'UNIDENTIFIED' GROUP BY sender, batch_no, value_date, dc, amount_fen, memo "
        "HAVING COUNT(*) > 1) twins GROUP BY batch_no"
    )
    return {r[0]: int(r[1]) for r in conn.execute(text(sql), {"b": bureau, "d": day}).all()}


def _judge(
    bureau: str,
    day: str,
    b: Any,
    lines: _Lines,
    partner_by_bank: Counter[str],
    moved: _Moved,
    doubled_fen: int,
    holidays: tuple[str, ...],
) -> tuple[ReconRow, dict[str, int]]:
    """The batch's row, and each R-code found with the amount it concerns."""
    total = int(b.total_fen)
    funded, returned = moved.funded, moved.returned
    settled = moved.settled_at()
    unfunded = was_unfunded(b.status, b.funded_date)
    to_return = funded if unfunded else lines.failed_fen
    past_cutoff = b.business_date < day
    answered = b.answered_date is not None and b.answered_date <= day
    overdue = answered and day > add_business_days(b.answered_date, 1, holidays)
    banks = sorted(set(partner_by_bank) | set(settled))
    over_settled = sum(max(settled[k] - partner_by_bank[k], 0) for k in banks)
    short_settled = sum(max(partner_by_bank[k] - settled[k], 0) for k in banks)
    # partner lines of a batch funded on the day go out with the next forwarding run:
    # not due until the end of the next business day (decision 71)
    funded_on = b.funded_date
    grace = lines.unsent if funded_on and day < add_business_days(funded_on, 1, holidays) else 0
    not_waiting = lines.unanswered - lines.waiting - grace

    found: dict[str, int] = {}
    if not_waiting and (funded >= total or past_cutoff):
        found["R01"] = lines.unanswered_fen
    if lines.wrong_amount:
        found["R02"] = lines.wrong_amount_fen
    if unfunded or (past_cutoff and funded < total):
        found["R03"] = max(total - funded, 0)
    if funded > total:
        found["R04"] = funded - total
    if returned > to_return or over_settled:
        found["R05"] = max(returned - to_return, 0) + over_settled
    if doubled_fen:
        found["R06"] = doubled_fen
    if overdue and returned < to_return:
        found["R07"] = to_return - returned
    if overdue and short_settled:
        found["R08"] = short_settled
    reason = next((code for code in ORDER if code in found), "")

    difference = (
        funded - (lines.credited_fen - lines.partner_fen) - returned - sum(settled.values())
    )
    if reason:
        status = BREAK
    elif (
        difference == 0
        and lines.unanswered == 0
        and returned == to_return
        and short_settled == 0
        and over_settled == 0
    ):
        status = BALANCED
    else:
        status = PENDING
    row = ReconRow(
        bureau=bureau,
        business_date=day,
        batch_no=b.batch_no,
        benefit_type=b.benefit_type,
        instructed_count=lines.instructed_count,
        instructed_fen=lines.instructed_fen,
        credited_count=lines.credited_count,
        credited_fen=lines.credited_fen,
        failed_count=lines.failed_count,
        failed_fen=lines.failed_fen,
        funded_fen=funded,
        returned_fen=returned,
        partner_fen=lines.partner_fen,
        partner_settled_fen=sum(settled.values()),
        difference_fen=difference,
        status=status,
        break_reason=reason,
    )
    return row, {code: found[code] for code in ORDER if code in found}


def _store(conn: Connection, rows: list[ReconRow]) -> None:
    if not rows:
        return
    conn.execute(
        text(
            "DELETE FROM recon_batch WHERE bureau = :bureau AND business_date = :business_date "
            "AND batch_no = :batch_no"
        ),
        [
            {"bureau": r.bureau, "business_date": r.business_date, "batch_no": r.batch_no}
            for r in rows
        ],
    )
    names = list(asdict(rows[0]))
    conn.execute(
        text(
            f"INSERT INTO recon_batch ({', '.join(names)}) "
            f"VALUES ({', '.join(':' + n for n in names)})"
        ),
        [asdict(r) for r in rows],
    )


def _keep_breaks(
    conn: Connection, bureau: str, day: str, batch_nos: list[str], breaks: list[dict[str, Any]]
) -> None:
    """Found items inserted or carried forward (a matched one found again after its match
    is open again; a resolved one is left as it is); the open items of these batches not
    found on ``day`` matched on it. Nothing moves back for a past date computed again."""
    if breaks:
        conn.execute(
            text(
                "INSERT INTO recon_break (bureau, batch_no, reason, ref, amount_fen, first_date, "
                "last_date) VALUES (:b, :n, :r, '', :a, :d, :d) "
                "ON CONFLICT (bureau, batch_no, reason, ref) DO UPDATE SET "
                "last_date = :d, amount_fen = :a, matched_date = NULL "
                "WHERE recon_break.resolved_at IS NULL AND recon_break.last_date <= :d "
                "AND (recon_break.matched_date IS NULL OR recon_break.matched_date <= :d)"
            ),
            breaks,
        )
    if breaks:
        # what the date found of each item, kept per date (a past date written again
        # reports what was known then)
        conn.execute(
            text(
                "INSERT INTO recon_break_day (break_id, business_date, amount_fen) "
                "SELECT id, :d, :a FROM recon_break WHERE bureau = :b AND batch_no = :n "
                "AND reason = :r AND ref = '' ON CONFLICT (break_id, business_date) "
                "DO UPDATE SET amount_fen = :a"
            ),
            breaks,
        )
    found = {(x["n"], x["r"]) for x in breaks}
    if not batch_nos:
        return
    gone = [
        {"i": r.id, "d": day}
        for r in conn.execute(
            _expanding(
                "SELECT id, batch_no, reason FROM recon_break WHERE bureau = :b AND reason <> 'R09' "
                "AND batch_no IN :ids AND matched_date IS NULL AND resolved_at IS NULL "
                "AND first_date <= :d AND last_date <= :d"
            ),
            {"b": bureau, "ids": batch_nos, "d": day},
        )
        if (r.batch_no, r.reason) not in found
    ]
    if gone:
        conn.execute(text("UPDATE recon_break SET matched_date = :d WHERE id = :i"), gone)


# --------------------------------------------------------------------------- RECON


def _recon_seq(conn: Connection, hub: str, bureau: str, day: str) -> int | None:
    prefix = f"RECON_{hub}_{bureau}_{day}_"
    names = conn.scalars(
        text("SELECT name FROM outbound_file WHERE type = 'RECON' AND name LIKE :p"),
        {"p": prefix + "%"},
    ).all()
    seqs = [
        int(n[len(prefix) : len(prefix) + 3])
        for n in names
        if n[len(prefix) : len(prefix) + 3].isdigit()
    ]
    return min(seqs) if seqs else None


def _recon_lines(conn: Connection, bureau: str, day: str) -> list[tuple[str, ...]]:
    found = conn.execute(
        text(
            "SELECT batch_no, benefit_type, instructed_count, instructed_fen, credited_count, "
            "credited_fen, failed_count, failed_fen, funded_fen, returned_fen, partner_fen, "
            "partner_settled_fen, difference_fen, status, break_reason FROM recon_batch "
            "WHERE bureau = :b AND business_date = :d ORDER BY batch_no"
        ),
        {"b": bureau, "d": day},
    ).all()
    a = fen_to_amount
    return [
        (
            r.batch_no,
            r.benefit_type or UNTYPED,
            str(r.instructed_count),
            a(int(r.instructed_fen)),
            str(r.credited_count),
            a(int(r.credited_fen)),
            str(r.failed_count),
            a(int(r.failed_fen)),
            a(int(r.funded_fen)),
            a(int(r.returned_fen)),
            a(int(r.partner_fen)),
            a(int(r.partner_settled_fen)),
            a(int(r.difference_fen)),
            r.status,
            r.break_reason if r.status == BREAK else "",
        )
        for r in found
    ]


def _render(
    hub: str, bureau: str, day: str, seq: int, lines: list[tuple[str, ...]], encoding: str
) -> bytes:
    header = Header("RECON", hub, bureau, hub_batch_no("RECON", bureau, day, seq), day, len(lines))
    out = io.BytesIO()
    write_delimited(out, RECON, header, lines, encoding)
    return out.getvalue()


def recon_bytes(
    conn: Connection, hub: str, bureau: str, business_date: str, encoding: str
) -> bytes:
    """The bureau's RECON of ``business_date`` as composed from the stored ``recon_batch``
    rows (the SEQ of the one in the outbox, else the next one)."""
    from persistence import registry

    seq = _recon_seq(conn, hub, bureau, business_date)
    if seq is None:
        seq = registry.next_seq(conn, "RECON", hub, bureau, business_date)
    return _render(
        hub, bureau, business_date, seq, _recon_lines(conn, bureau, business_date), encoding
    )


def write_recon(
    conn: Connection,
    *,
    hub: str,
    bureau: str,
    business_date: str,
    dest: Drop,
    encoding: str,
    work_dir: Path,
) -> str | None:
    """The bureau's RECON for ``business_date`` (ICD §5.12): its ``recon_batch`` rows of
    that date by batch_no, with no detail lines when there were none; written once per
    (bureau, date) like BANKEVT. ``None`` when that date's RECON is in the outbox already."""
    if _recon_seq(conn, hub, bureau, business_date) is not None:
        return None
    lines = _recon_lines(conn, bureau, business_date)
    made = originate(conn, "RECON", hub, bureau, business_date, len(lines))
    data = _render(hub, bureau, business_date, made.seq, lines, encoding)
    assert FileName.parse(made.name).seq == f"{made.seq:03d}"
    compose(
        conn,
        dest,
        work_dir,
        name=made.name,
        type_="RECON",
        record_count=len(lines),
        write=lambda out: out.write(data),
    )
    log.info("%s: %d batch line(s) for %s", made.name, len(lines), bureau)
    return made.name


# --------------------------------------------------------------------------- resolution


@dataclass(frozen=True)
class Resolved:
    id: int
    bureau: str
    batch_no: str
    reason: str
    ref: str
    resolved_at: datetime
    resolved_by: str
    resolution: str


def resolve_break(
    conn: Connection,
    break_id: int,
    *,
    who: str,
    why: str,
    now: datetime,
    channel: str = "operator",
) -> Resolved:
    """A person closes an open item by hand (DOMAIN §7: who, when, why): ``resolved_at``,
    ``resolved_by`` and ``resolution`` set, and an audit record (op ``break:resolve``,
    ``open`` → ``resolved``, ref ``break:<id>``, the reason as its ``detail``). ValueError for an unknown id, an item
    already resolved or matched, an empty or over-long reason or name."""
    why = why.strip()
    who = who.strip()
    if not why:
        raise ValueError("a resolution needs its reason (why)")
    if len(why) > 200:
        raise ValueError("a resolution's reason is at most 200 characters")
    if not who or len(who) > 40:
        raise ValueError("who resolves is 1 to 40 characters")
    if channel not in ("operator", "airflow"):
        raise ValueError("a resolution's channel is operator or airflow")
    if now.tzinfo is None:
        raise ValueError("a resolution's time must carry its zone")
    row = conn.execute(
        text(
            "SELECT id, bureau, batch_no, reason, ref, matched_date, resolved_at, resolved_by "
            "FROM recon_break WHERE id = :i"
        ),
        {"i": break_id},
    ).one_or_none()
    if row is None:
        raise ValueError(f"no break {break_id}")
    if row.resolved_at is not None:
        raise ValueError(f"break {break_id} was resolved already (by {row.resolved_by})")
    if row.matched_date is not None:
        raise ValueError(f"break {break_id} matched on {row.matched_date}: nothing to resolve")
    done = conn.execute(
        text(
            "UPDATE recon_break SET resolved_at = :at, resolved_by = :who, resolution = :why "
            "WHERE id = :i AND resolved_at IS NULL AND matched_date IS NULL"
        ),
        {"at": now, "who": who, "why": why, "i": break_id},
    )
    if done.rowcount != 1:
        raise ValueError(f"break {break_id} changed meanwhile; look again")
    audit.append(
        conn,
        [
            audit.AuditEntry(
                business_date=now.astimezone(TIMEZONE).strftime("%Y%m%d"),
                card_no="",
                pan="",
                op="break:resolve",
                channel=channel,
                actor=who,
                ref=f"break:{break_id}",
                before="open",
                after="resolved",
                detail=why,
            )
        ],
        now,
    )
    return Resolved(int(row.id), row.bureau, row.batch_no, row.reason, row.ref, now, who, why)


__all__ = [
    "BALANCED",
    "BREAK",
    "ORDER",
    "PENDING",
    "ReconRow",
    "Resolved",
    "add_business_days",
    "is_business_day",
    "recon_bytes",
    "reconcile",
    "resolve_break",
    "write_recon",
]
