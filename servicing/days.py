"""The end of a servicing day (DOMAIN §2, §5; ICD §5.8): replacements whose new card was
enabled are finished, temporary losses past their days lapse, emptied accounts of
cancelled cards close, cards entering the renewal window are reported, and each bureau
gets the day's BANKEVT (also when nothing happened). Each step is safe to run again."""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from sqlalchemy import Engine, text

from exchange.outbox import Drop, compose, originate
from persistence.issuance_store import rows
from schemas.codec import write_delimited
from schemas.layouts import BANKEVT
from schemas.states import AccountStatus, CardOp, CardStatus
from servicing.book import AUTO, Book

log = logging.getLogger("sscard.servicing")


def _day(text_: str, days: int) -> str:
    d = date(int(text_[:4]), int(text_[4:6]), int(text_[6:])) + timedelta(days=days)
    return d.strftime("%Y%m%d")


def op_time_of(now: datetime) -> str:
    return now.astimezone(ZoneInfo("Asia/Shanghai")).strftime("%Y%m%d%H%M%S")


@dataclass(frozen=True)
class DayEnd:
    replacements: int
    lapsed: int
    closed: int
    renewal_window: int


def finish_replacements(engine: Engine, hub: str, business_date: str, now: datetime) -> int:
    """Replacements whose new card is enabled but not finished yet (a step cut short, or
    the new card enabled by a partner's event): finished now, once. A new card cancelled
    while still sealed was never enabled: the old card goes on (DOMAIN §5)."""
    with engine.begin() as conn:
        due = rows(
            conn,
            "SELECT c.card_no FROM application a JOIN card c ON c.application_id = a.id "
            "LEFT JOIN replacement r ON r.application_id = a.id "
            "WHERE a.old_card_no <> '' AND r.application_id IS NULL "
            "AND c.status NOT IN (:sealed, :cancelled)",
            sealed=CardStatus.SEALED.value,
            cancelled=CardStatus.CANCELLED.value,
        )
        if not due:
            return 0
        book = Book(hub, business_date, now, actor="end-of-day")
        book.load(conn, card_nos=[r.card_no for r in due])
        for r in due:
            card = book.cards[r.card_no]
            book.finish_replacement(card, op_time_of(now))
        book.flush(conn)
        return len(book.replacements)


def lapse_temporary_losses(
    engine: Engine,
    hub: str,
    bureau: str,
    business_date: str,
    now: datetime,
    *,
    temp_loss_days: int,
    bank_temp_loss_days: int,
) -> int:
    """Temporary losses back to normal after their calendar days (DOMAIN §2): counted from
    the op's date, ``bank_temp_loss_days`` when taken at a bank channel (``status_by`` a
    channel code), ``temp_loss_days`` otherwise; reported as BANKEVT ``03`` ``AUTO``."""
    with engine.begin() as conn:
        candidates = rows(
            conn,
            "SELECT card_no, status_date, status_by FROM card WHERE status = :s AND bank_code = :hub "
            "AND bureau = :bureau",
            s=CardStatus.TEMPORARY_LOSS.value,
            hub=hub,
            bureau=bureau,
        )
        due = [
            r.card_no
            for r in candidates
            if r.status_date
            and _day(
                r.status_date,
                bank_temp_loss_days if (r.status_by or "").startswith("C") else temp_loss_days,
            )
            <= business_date
        ]
        if not due:
            return 0
        book = Book(hub, business_date, now, actor="end-of-day")
        book.load(conn, card_nos=due)
        for card_no in due:
            card = book.cards[card_no]
            book.card_op(
                card,
                CardOp.UNBLOCK,
                by=AUTO,
                op_time=op_time_of(now),
                ref=f"lapse:{business_date}",
                event_channel=AUTO,
                event_key=f"lapse:{card_no}:{card.status_date}",
                unblock_as_holder=False,
            )
        book.flush(conn)
    log.info("%s: %d temporary loss(es) lapsed back to normal", bureau, len(due))
    return len(due)


def close_emptied_accounts(engine: Engine, hub: str, business_date: str, now: datetime) -> int:
    """Credit-blocked hub accounts of cancelled cards whose balance is now zero (the holder
    withdrew it at a counter) close (DOMAIN §5)."""
    with engine.begin() as conn:
        due = rows(
            conn,
            "SELECT a.pan FROM account a WHERE a.bank_code = :hub AND a.credit_blocked "
            "AND a.status <> :closed AND NOT EXISTS (SELECT 1 FROM ledger_entry e "
            "WHERE e.account = a.pan GROUP BY e.account HAVING SUM(e.amount_fen) <> 0) "
            "AND NOT EXISTS (SELECT 1 FROM card c "
            "WHERE c.pan = a.pan AND c.status <> :cancelled)",
            hub=hub,
            closed=AccountStatus.CLOSED.value,
            cancelled=CardStatus.CANCELLED.value,
        )
        if not due:
            return 0
        book = Book(hub, business_date, now, actor="end-of-day")
        book.load(conn, pans=[r.pan for r in due])
        for r in due:
            account = book.accounts[r.pan]
            book.set_account(account, by=AUTO, ref="emptied", status=AccountStatus.CLOSED)
        book.flush(conn)
    log.info("%d emptied account(s) of cancelled cards closed", len(due))
    return len(due)


def renewal_window(engine: Engine, business_date: str, days: int = 60) -> dict[str, int]:
    """Cards entering the renewal window today (DOMAIN §5: renewal from ``days`` before
    expiry), per bureau, for the bureaus' and branches' outreach."""
    with engine.connect() as conn:
        found = rows(
            conn,
            "SELECT bureau, COUNT(*) AS n FROM card WHERE expiry_date = :d "
            "AND status IN ('0', '1', '2', '4') GROUP BY bureau",
            d=_day(business_date, days),
        )
    counts = {r.bureau: int(r.n) for r in found}
    for bureau, n in sorted(counts.items()):
        log.info(
            "%s: %d card(s) enter the renewal window today (expiry in %d days)", bureau, n, days
        )
    return counts


def write_bankevt(
    engine: Engine,
    *,
    hub: str,
    bureau: str,
    dest: Drop,
    encoding: str,
    business_date: str,
    work_dir: Path,
) -> str | None:
    """The bureau's BANKEVT for ``business_date`` (ICD §5.8): every event not yet reported
    up to that day, written once per business day, with no detail lines when nothing
    happened. ``None`` when that day's BANKEVT was written already."""
    with engine.begin() as conn:
        if rows(
            conn,
            "SELECT 1 FROM bank_event_day WHERE bureau = :b AND business_date = :d",
            b=bureau,
            d=business_date,
        ):
            return None
        events = rows(
            conn,
            "SELECT e.id, e.evt_no, e.op, e.card_no, c.id_no, e.op_time, e.channel FROM bank_event e "
            "JOIN card c ON c.card_no = e.card_no WHERE e.bureau = :b AND e.business_date <= :d "
            "AND e.bankevt_name IS NULL ORDER BY e.business_date, e.id",
            b=bureau,
            d=business_date,
        )
        request = originate(conn, "BANKEVT", hub, bureau, business_date, len(events))
        lines = [(e.evt_no, e.op, e.card_no, e.id_no, e.op_time, e.channel) for e in events]
        compose(
            conn,
            dest,
            work_dir,
            name=request.name,
            type_="BANKEVT",
            record_count=len(lines),
            write=lambda out: write_delimited(out, BANKEVT, request.header, lines, encoding),
        )
        if events:
            conn.execute(
                text("UPDATE bank_event SET bankevt_name = :n WHERE id = :i"),
                [{"n": request.name, "i": e.id} for e in events],
            )
        conn.execute(
            text(
                "INSERT INTO bank_event_day (bureau, business_date, name, record_count) "
                "VALUES (:b, :d, :n, :c)"
            ),
            {"b": bureau, "d": business_date, "n": request.name, "c": len(events)},
        )
    log.info("%s: %d event(s) for %s", request.name, len(events), bureau)
    return request.name


def lock_pin(
    engine: Engine, *, hub: str, pan: str, business_date: str, now: datetime, actor: str
) -> bool:
    """Record a PIN locked after wrong tries (the card system's feed or an operator):
    ``pin_locked`` set, reported in BANKEVT as ``22`` (ICD §5.8). False when it was
    locked already."""
    with engine.begin() as conn:
        book = Book(hub, business_date, now, actor=actor)
        book.load(conn, pans=[pan])
        account = book.accounts.get(pan)
        if account is None:
            raise LookupError("no hub account with that PAN")
        if account.pin_locked:
            return False
        card = book.current_card(pan)
        book.set_account(account, by=AUTO, ref=f"lock:{now.isoformat()}", pin_locked=True)
        if card is not None:
            # the event's key names the account by a digest: no full PAN is stored
            digest = hashlib.sha256(pan.encode()).hexdigest()[:24]
            book.event(card, "22", op_time_of(now), AUTO, f"pinlock:{digest}:{now.isoformat()}")
        book.flush(conn)
    return True
