"""Card ops on accounts at partner banks (ICD §5.7, §5.8; DOMAIN §5): the hub forwards
them in STATUS files under its own req_no, applies the partner's STATUSRSP (the bureau's
lines get their outcome), answers E140 at ``partner_wait``, and relays the partner's own
BANKEVT to the bureau."""

from __future__ import annotations

import logging
from collections.abc import Collection
from datetime import datetime
from pathlib import Path

from sqlalchemy import Connection, Engine, text

from exchange.outbox import Drop, compose, originate
from persistence.db import keyed
from persistence.issuance_store import rows
from schemas.codec import DelimitedReader, write_delimited
from schemas.layouts import STATUS
from schemas.states import CardOp, CardStatus, Result, card_transition
from servicing.book import AUTO, Book
from servicing.lines import read_lines
from servicing.requests import resolve_lines

#: the ops a forwarded STATUS line carries (partner_status.op)
_CARD_OPS = frozenset(op.value for op in CardOp)

log = logging.getLogger("sscard.servicing")


def send_status_requests(
    engine: Engine,
    *,
    hub: str,
    bank_code: str,
    dest: Drop,
    encoding: str,
    business_date: str,
    work_dir: Path,
) -> str | None:
    """One STATUS file to a partner bank with every op waiting for it."""
    with engine.begin() as conn:
        pending = rows(
            conn,
            "SELECT p.req_no, p.op, p.card_no, c.id_no, c.name, p.op_time, p.channel "
            "FROM partner_status p JOIN card c ON c.card_no = p.card_no "
            "WHERE p.bank_code = :b AND p.request_name IS NULL ORDER BY p.req_no",
            b=bank_code,
        )
        if not pending:
            return None
        request = originate(conn, "STATUS", hub, bank_code, business_date, len(pending))
        lines = [
            (r.req_no, r.op, r.card_no, r.id_no, r.name, r.op_time, r.channel, "") for r in pending
        ]
        compose(
            conn,
            dest,
            work_dir,
            name=request.name,
            type_="STATUS",
            record_count=len(lines),
            write=lambda out: write_delimited(out, STATUS, request.header, lines, encoding),
        )
        conn.execute(
            text("UPDATE partner_status SET request_name = :n, sent_date = :d WHERE req_no = :r"),
            [{"n": request.name, "d": business_date, "r": r.req_no} for r in pending],
        )
    log.info("%s: %d card op(s) forwarded to partner %s", request.name, len(pending), bank_code)
    return request.name


def apply_status_answers(
    conn: Connection,
    reader: DelimitedReader,
    *,
    hub: str,
    bank_code: str,
    business_date: str,
    now: datetime,
    file_name: str,
) -> dict[str, int]:
    """A partner's STATUSRSP: ``00`` moves the card to the op's target status; ``01``
    passes the partner's own code to the bureau; ``02`` is already. An unknown key or a
    second answer is a return problem, never applied."""
    lines = read_lines(reader)
    keys = [ln.get("req_no") for ln in lines]
    open_ops = {}
    for i in range(0, len(keys), 5000):
        stmt = keyed(
            conn,
            "SELECT req_no, op, card_no, target, answered_date FROM partner_status "
            "WHERE bank_code = :b AND req_no IN :keys",
            "keys",
        )
        for r in conn.execute(stmt, {"b": bank_code, "keys": keys[i : i + 5000]}):
            open_ops[r.req_no] = r
    book = Book(hub, business_date, now, actor=bank_code)
    book.load(conn, card_nos=[r.card_no for r in open_ops.values()])
    answered, problems = [], []
    seen: set[str] = set()
    for line in lines:
        op = open_ops.get(line.get("req_no"))
        if line.failed or op is None or op.answered_date is not None or op.req_no in seen:
            # a key answered before, or earlier in this file: only its first answer stands
            problems.append(
                (
                    line.seq,
                    line.get("req_no")[:30],
                    "unknown or repeated answer" if not line.failed else f"layout {line.code}",
                )
            )
            continue
        seen.add(op.req_no)
        result, reason = line.get("result"), line.get("reason_code")
        card = book.card(op.card_no)
        if (
            result == Result.DONE
            and card is not None
            and op.op in _CARD_OPS
            and card_transition(card.status, CardOp(op.op)).result is Result.REFUSED
        ):
            # the card moved meanwhile where this op cannot take it (a cancellation is
            # final): never applied; the bureau's line gets its E140 if nothing else comes
            problems.append(
                (line.seq, op.req_no, f"not possible for a card in status {card.status}")
            )
            continue
        if result == Result.DONE and card is not None:
            target = CardStatus(op.target)
            if card.status != target:
                book.set_card_status(card, target, by=bank_code, op=f"card:{op.op}", ref=op.req_no)
                if target is CardStatus.CANCELLED:
                    book.cancelled(card)
        answered.append((op.req_no, result, reason if result == Result.REFUSED else ""))
    book.flush(conn)
    if answered:
        conn.execute(
            text(
                "UPDATE partner_status SET answered_date = :d, result = :res, reason_code = :code "
                "WHERE req_no = :r"
            ),
            [{"d": business_date, "res": res, "code": code, "r": r} for r, res, code in answered],
        )
    resolved = resolve_lines(conn, answered)
    report_problems(conn, file_name, problems, business_date)
    log.info(
        "%s: %d answer(s) applied, %d bureau line(s) resolved, %d problem(s)",
        file_name,
        len(answered),
        resolved,
        len(problems),
    )
    return {"applied": len(answered), "problems": len(problems), "resolved": resolved}


def expire_status_requests(
    engine: Engine,
    bank_code: str,
    wait_days: int,
    business_date: str,
    holidays: Collection[str] = (),
) -> int:
    """Ops unanswered once their ``partner_wait`` has run out: an op sent on S waits to
    the end of S + ``wait_days`` business days (ICD §2, decision 70, as DISB lines do),
    then E140 to the bureau; the card stays as it was (a forwarded cancellation of a
    replaced card stays cancelled, DOMAIN §5, and is shown to operations)."""
    from reconciliation.daily import still_waiting_from

    waiting_from = still_waiting_from(business_date, wait_days, holidays)
    with engine.begin() as conn:
        due = rows(
            conn,
            "SELECT req_no, channel FROM partner_status WHERE bank_code = :b AND answered_date IS NULL "
            "AND sent_date IS NOT NULL AND sent_date < :waiting_from",
            b=bank_code,
            waiting_from=waiting_from,
        )
        if not due:
            return 0
        conn.execute(
            text(
                "UPDATE partner_status SET answered_date = :d, result = '01', reason_code = 'E140' "
                "WHERE req_no = :r"
            ),
            [{"d": business_date, "r": r.req_no} for r in due],
        )
        resolve_lines(conn, [(r.req_no, Result.REFUSED.value, "E140") for r in due])
    auto = sum(1 for r in due if r.channel == AUTO)
    log.warning(
        "partner %s: %d card op(s) unanswered past partner_wait: E140 (%d cancellation(s) of "
        "replaced cards among them: the cards stay cancelled; ask the partner to confirm)",
        bank_code,
        len(due),
        auto,
    )
    return len(due)


def relay_partner_events(
    conn: Connection,
    reader: DelimitedReader,
    *,
    hub: str,
    bank_code: str,
    business_date: str,
    now: datetime,
    file_name: str,
) -> dict[str, int]:
    """A partner's own BANKEVT (ICD §5.8): each event of one of its cards is relayed to the
    card's bureau in the hub's next BANKEVT; status ops also move the card's status the
    hub keeps. Events of cards that are not this partner's are return problems."""
    lines = read_lines(reader)
    book = Book(hub, business_date, now, actor=bank_code)
    book.load(conn, card_nos=[ln.get("card_no") for ln in lines if not ln.failed])
    relayed, problems = 0, []
    for line in lines:
        card = book.card(line.get("card_no"))
        if line.failed or card is None or card.bank_code != bank_code:
            problems.append(
                (
                    line.seq,
                    line.get("evt_no")[:30],
                    f"layout {line.code}" if line.failed else "not a card of this bank",
                )
            )
            continue
        op = line.get("op")
        if op in {o.value for o in CardOp}:
            outcome = card_transition(card.status, CardOp(op), replacement_applied=False)
            if outcome.result is Result.DONE:
                book.set_card_status(
                    card, outcome.status, by=bank_code, op=f"card:{op}", ref=line.get("evt_no")
                )
        book.event(
            card, op, line.get("op_time"), line.get("channel"), line.get("evt_no"), source=bank_code
        )
        relayed += 1
    book.flush(conn)
    report_problems(conn, file_name, problems, business_date)
    log.info("%s: %d event(s) relayed to bureaus, %d problem(s)", file_name, relayed, len(problems))
    return {"applied": relayed, "problems": len(problems)}


def report_problems(
    conn: Connection, file_name: str, problems: list[tuple[int, str, str]], business_date: str
) -> None:
    """A counterparty's answers the hub refused to apply, ``(seq, key, why)``: listed in
    ``return_problem`` and the log (the first 20), never applied."""
    if problems:
        conn.execute(
            text(
                "INSERT INTO return_problem (file_name, line_no, key, problem, business_date) "
                "VALUES (:f, :l, :k, :p, :d)"
            ),
            [
                {"f": file_name, "l": seq + 1, "k": key, "p": why, "d": business_date}
                for seq, key, why in problems
            ],
        )
        for seq, _, why in problems[:20]:
            log.warning("%s line %d: %s; not applied", file_name, seq + 1, why)
