"""Operator commands for card servicing and the ledger (registered by :mod:`sscard.cli`).

- ``sscard account show PAN [--json]``: an account's status, flags, balance (the sum of
  its entries), cards and latest entries.
- ``sscard account credit PAN AMOUNT --ref KEY [--business-date YYYYMMDD]``: sandbox and
  tests only (``SSCARD_ALLOW_TEST_CREDIT=1``): Dr SETTLEMENT / Cr the account under the
  idempotency key ``credit:KEY`` (KEY 1 to 73 printable characters, so the whole key fits
  the ledger's 80).
- ``sscard account lock-pin PAN [--by WHO] [--json]``: the card system reported the PIN's
  wrong tries: ``pin_locked`` set, reported to the bureau in BANKEVT as ``22``.
- ``sscard card show CARD_NO [--json]``: a card's status, holder, application, the card it
  replaced or that replaced it, and its latest audit records.
- ``sscard ledger check [--json]``: exit 0 when the ledger is sound, 1 otherwise.
- ``sscard audit verify [--json]``: exit 0 when the audit chain is whole, 1 naming the
  first record that breaks it.

The database is ``SSCARD_DATABASE_URL``, opened as ``sscard status`` opens it: a missing,
unreachable or unmigrated database is one line on stderr and exit 2, and nothing is
created. A database failing once the command has begun (locked, its connection lost) is
one line and exit 2 as well; each command changes what it changes in one transaction,
rolled back. No output shows a full PAN (first 6 and last 4 digits) or a full ID number
(first 6 and last 2 characters).
"""

from __future__ import annotations

import argparse
import json
import os
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from banking.ledger import masked_pan

if TYPE_CHECKING:
    from sqlalchemy import Connection

#: lets ``sscard account credit`` post money from nowhere (sandbox and tests only)
ALLOW_TEST_CREDIT = "SSCARD_ALLOW_TEST_CREDIT"

CARD_STATUS_WORDS = {
    "0": "sealed (封存)",
    "1": "normal (正常)",
    "2": "formal loss (正式挂失)",
    "3": "locked (应用锁定)",
    "4": "temporary loss (临时挂失)",
    "9": "cancelled (注销)",
}


class _Refused(Exception):
    """A command's clear refusal: its message and exit code."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


def masked_id(id_no: str) -> str:
    """An ID number as it may be shown: its first 6 characters (the region) and last 2,
    the rest starred; a short one entirely starred."""
    if len(id_no) < 10:
        return "*" * len(id_no)
    return id_no[:6] + "*" * (len(id_no) - 8) + id_no[-2:]


def _pan(value: str) -> str:
    if not re.fullmatch(r"[0-9]{16,19}", value):
        raise argparse.ArgumentTypeError("a PAN is 16 to 19 digits")
    return value


def _card_no(value: str) -> str:
    if not re.fullmatch(r"[0-9A-Z]{9}", value):
        raise argparse.ArgumentTypeError("a card_no is 9 digits or capital letters")
    return value


#: a test credit's idempotency key is ``credit:`` and the operator's ``--ref``
CREDIT_PREFIX = "credit:"


def _ref(value: str) -> str:
    """A test credit's ``--ref``: printable, not only spaces, and short enough that
    ``credit:REF`` fits the ledger's idempotency key."""
    from banking.ledger import IDEM_MAX

    longest = IDEM_MAX - len(CREDIT_PREFIX)
    if not value.strip() or len(value) > longest or not value.isprintable():
        raise argparse.ArgumentTypeError(
            f"a reference is 1 to {longest} printable characters, not only spaces"
        )
    return value


def _when(value: datetime | str | None) -> str:
    if value is None:
        return ""
    moment = datetime.fromisoformat(value) if isinstance(value, str) else value
    moment = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).isoformat(timespec="seconds")


def _emit(args: argparse.Namespace, report: dict[str, Any], lines: list[str]) -> None:
    if args.json:
        print(json.dumps(report, ensure_ascii=False))
    else:
        print("\n".join(lines))


def _run(func: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    """A command whose refusals, unusable database and failing database end in one line
    and their code."""

    def run(args: argparse.Namespace) -> int:
        from sqlalchemy import exc as sa_exc

        from issuance.status import DatabaseUnusable
        from sscard.cli import failed

        try:
            return func(args)
        except (_Refused, DatabaseUnusable) as exc:
            return failed(args, str(exc), exc.code if isinstance(exc, _Refused) else 2)
        except sa_exc.SQLAlchemyError as exc:
            return failed(args, f"the database failed, nothing was changed: {_reason(exc)}")

    return run


def _reason(exc: BaseException) -> str:
    """A database error's first line, as an operator may see it (:func:`sscard.cli.quoted`)."""
    from sscard.cli import quoted

    inner = getattr(exc, "orig", None) or exc
    return quoted((str(inner).strip().splitlines() or [type(inner).__name__])[0])


@contextmanager
def _reading() -> Iterator[Connection]:
    from issuance.status import open_for_reading, reading
    from sscard.config import database_url

    engine = open_for_reading(database_url())
    try:
        with reading(engine) as conn:
            yield conn
    finally:
        engine.dispose()


def _account_show(args: argparse.Namespace) -> int:
    from sqlalchemy import text

    from banking import ledger

    shown = masked_pan(args.pan)
    with _reading() as conn:
        row = conn.execute(
            text(
                "SELECT status, loss, pin_locked, debit_blocked, credit_blocked, "
                "id_no, bank_code FROM account WHERE pan = :p"
            ),
            {"p": args.pan},
        ).one_or_none()
        if row is None:
            raise _Refused(f"no account {shown}", 1)
        derived = ledger.balance(conn, args.pan)
        cards = conn.execute(
            text(
                "SELECT card_no, pan_seq, status, issue_date, expiry_date FROM card "
                "WHERE pan = :p ORDER BY pan_seq, card_no"
            ),
            {"p": args.pan},
        ).all()
        recent = ledger.entries(conn, args.pan, 20)
    report: dict[str, Any] = {
        "pan": shown,
        "bank_code": row.bank_code,
        "status": row.status,
        "flags": {
            "loss": row.loss,
            "pin_locked": bool(row.pin_locked),
            "debit_blocked": bool(row.debit_blocked),
            "credit_blocked": bool(row.credit_blocked),
        },
        "balance_fen": derived,
        "balance_yuan": ledger.yuan(derived),
        "holder_id_no": masked_id(row.id_no),
        "cards": [
            {
                "card_no": c.card_no,
                "pan_seq": c.pan_seq,
                "status": c.status,
                "status_words": CARD_STATUS_WORDS.get(c.status, "unknown"),
                "issue_date": c.issue_date,
                "expiry_date": c.expiry_date,
            }
            for c in cards
        ],
        "entries": [
            {
                "txn_id": e.txn_id,
                "idem_key": e.idem_key,
                "kind": e.kind,
                "business_date": e.business_date,
                "amount_fen": e.amount_fen,
                "amount_yuan": ledger.yuan(e.amount_fen),
                "created_at": _when(e.created_at),
            }
            for e in recent
        ],
    }
    flags = report["flags"]
    lines = [
        f"account {shown}  bank {row.bank_code}  status {row.status}",
        f"  loss {flags['loss']}  pin_locked {_yes(flags['pin_locked'])}  "
        f"debit_blocked {_yes(flags['debit_blocked'])}  "
        f"credit_blocked {_yes(flags['credit_blocked'])}",
        f"  balance {derived} fen = {ledger.yuan(derived)} yuan (from its entries)",
    ]
    lines.append(f"  holder {masked_id(row.id_no)}")
    lines.append(f"  cards ({len(cards)}):")
    lines += [
        f"    {c['card_no']}  pan_seq {c['pan_seq'] or '-'}  {c['status']} {c['status_words']}  "
        f"issued {c['issue_date'] or '-'}  expires {c['expiry_date'] or '-'}"
        for c in report["cards"]
    ]
    lines.append(f"  latest entries ({len(recent)}):")
    lines += [
        f"    txn {e['txn_id']:>8}  {e['business_date']}  {e['kind']:<12} "
        f"{e['amount_yuan']:>14}  {e['idem_key']}  {e['created_at']}"
        for e in report["entries"]
    ]
    _emit(args, report, lines)
    return 0


def _yes(flag: bool) -> str:
    return "yes" if flag else "no"


def _card_show(args: argparse.Namespace) -> int:
    from sqlalchemy import text

    with _reading() as conn:
        card = conn.execute(
            text(
                "SELECT card_no, application_id, bureau, id_no, bank_code, pan, pan_seq, status, "
                "status_date, status_by, issue_date, expiry_date FROM card WHERE card_no = :c"
            ),
            {"c": args.card_no},
        ).one_or_none()
        if card is None:
            raise _Refused(f"no card {args.card_no}", 1)
        app = None
        if card.application_id is not None:
            app = conn.execute(
                text("SELECT app_no, app_type, old_card_no FROM application WHERE id = :i"),
                {"i": card.application_id},
            ).one_or_none()
        replaced_by = conn.execute(
            text(
                "SELECT card_no, app_no, app_type FROM application WHERE old_card_no = :c "
                "ORDER BY id"
            ),
            {"c": args.card_no},
        ).all()
        records = conn.execute(
            text(
                "SELECT id, at, business_date, op, channel, actor, ref, before, after "
                "FROM audit_record WHERE card_no = :c ORDER BY id DESC LIMIT 20"
            ),
            {"c": args.card_no},
        ).all()
    pan = masked_pan(card.pan) if card.pan else ""
    report: dict[str, Any] = {
        "card_no": card.card_no,
        "status": card.status,
        "status_words": CARD_STATUS_WORDS.get(card.status, "unknown"),
        "status_date": card.status_date,
        "status_by": card.status_by,
        "bureau": card.bureau,
        "bank_code": card.bank_code,
        "pan": pan,
        "pan_seq": card.pan_seq,
        "issue_date": card.issue_date,
        "expiry_date": card.expiry_date,
        "holder_id_no": masked_id(card.id_no),
        "application": {"app_no": app.app_no, "app_type": app.app_type} if app else None,
        "replaces": (app.old_card_no or None) if app else None,
        "replaced_by": [
            {"card_no": r.card_no, "app_no": r.app_no, "app_type": r.app_type} for r in replaced_by
        ],
        "audit": [
            {
                "id": int(r.id),
                "at": _when(r.at),
                "business_date": r.business_date,
                "op": r.op,
                "channel": r.channel,
                "actor": r.actor,
                "ref": r.ref,
                "before": r.before,
                "after": r.after,
            }
            for r in records
        ],
    }
    lines = [
        f"card {card.card_no}  status {card.status} {report['status_words']}  "
        f"since {card.status_date or '-'} by {card.status_by or '-'}",
        f"  bureau {card.bureau}  bank {card.bank_code}  pan {pan or '-'}  "
        f"pan_seq {card.pan_seq or '-'}",
        f"  issued {card.issue_date or '-'}  expires {card.expiry_date or '-'}  "
        f"holder {masked_id(card.id_no)}",
        "  application "
        + (f"{app.app_no} (type {app.app_type})" if app else "-")
        + (f"  replaces {report['replaces']}" if report["replaces"] else ""),
    ]
    lines += [
        f"  replaced by {r['card_no']} (application {r['app_no']}, type {r['app_type']})"
        for r in report["replaced_by"]
    ]
    lines.append(f"  latest audit records ({len(records)}):")
    lines += [
        f"    #{a['id']}  {a['at']}  {a['business_date']}  {a['op']:<6} {a['channel']:<8} "
        f"{a['actor']}  {a['before'] or '-'} -> {a['after'] or '-'}  {a['ref']}"
        for a in report["audit"]
    ]
    _emit(args, report, lines)
    return 0


def _account_credit(args: argparse.Namespace) -> int:
    from sqlalchemy import text

    from banking import ledger
    from persistence.db import make_engine
    from sscard.config import database_url

    if os.environ.get(ALLOW_TEST_CREDIT) != "1":
        raise _Refused(
            f"refused: test credits post money from nowhere; set {ALLOW_TEST_CREDIT}=1 "
            "(sandbox and tests only)",
            2,
        )
    try:
        fen = ledger.fen_of(args.amount)
    except ValueError as exc:
        raise _Refused(str(exc), 2) from exc
    if fen == 0:
        raise _Refused("an amount of 0.00 credits nothing", 2)
    day = args.business_date or datetime.now(ZoneInfo("Asia/Shanghai")).strftime("%Y%m%d")
    key = f"{CREDIT_PREFIX}{args.ref}"
    shown = masked_pan(args.pan)
    with _reading():
        pass  # the same checks as the reading commands: present, reachable, at head
    engine = make_engine(database_url())
    try:
        with engine.begin() as conn:
            ledger.hold_credit_lock(conn)  # as a DISB posting: no balance move meanwhile
            row = conn.execute(
                text("SELECT status, credit_blocked FROM account WHERE pan = :p"),
                {"p": args.pan},
            ).one_or_none()
            if row is None:
                raise _Refused(f"no account {shown}", 1)
            if row.status == "closed" or row.credit_blocked:
                raise _Refused(f"account {shown} takes no credit (closed or credit_blocked)", 1)
            try:
                done = ledger.post(
                    conn,
                    key,
                    "test_credit",
                    day,
                    [ledger.Leg(ledger.settlement(), -fen), ledger.Leg(args.pan, fen)],
                    datetime.now(UTC),
                )
            except ledger.LedgerError as exc:
                raise _Refused(str(exc), 1) from exc
            after = ledger.balance(conn, args.pan)
    finally:
        engine.dispose()
    report = {
        "pan": shown,
        "idem_key": key,
        "amount_fen": fen,
        "business_date": day,
        "posted": done,
        "balance_fen": after,
    }
    what = "posted" if done else "already posted (nothing done)"
    _emit(
        args,
        report,
        [f"{key}: {ledger.yuan(fen)} yuan to {shown} {what}; balance {ledger.yuan(after)} yuan"],
    )
    return 0


def _actor(value: str) -> str:
    """A name for the audit trail: 1 to 40 characters, not only spaces."""
    if not value.strip() or len(value) > 40:
        raise argparse.ArgumentTypeError("a name of 1 to 40 characters")
    return value


def _account_lock_pin(args: argparse.Namespace) -> int:
    """The card system reported the PIN's wrong tries: ``pin_locked``, BANKEVT ``22``."""
    from persistence.db import make_engine
    from servicing.days import lock_pin
    from sscard.config import ConfigError, database_url, load_counterparties

    try:
        parties = load_counterparties()
    except (ConfigError, OSError) as exc:
        raise _Refused(f"counterparty configuration unusable: {exc}", 2) from exc
    now = datetime.now(UTC)
    day = now.astimezone(ZoneInfo(parties.timezone)).strftime("%Y%m%d")
    shown = masked_pan(args.pan)
    with _reading():
        pass  # the same checks as the reading commands: present, reachable, at head
    engine = make_engine(database_url())
    try:
        locked = lock_pin(
            engine, hub=parties.hub, pan=args.pan, business_date=day, now=now, actor=args.by
        )
    except LookupError as exc:
        raise _Refused(f"no hub account {shown}", 1) from exc
    finally:
        engine.dispose()
    what = (
        "locked; the bureau learns it in BANKEVT (22)"
        if locked
        else "already locked (nothing done)"
    )
    _emit(args, {"pan": shown, "locked": locked}, [f"PIN of {shown}: {what}"])
    return 0


def _ledger_check(args: argparse.Namespace) -> int:
    from banking import ledger

    with _reading() as conn:
        found = ledger.check(conn)
    report = {
        "ok": found.ok(),
        "unbalanced": found.unbalanced,
        "negative": found.negative,
        "cache_mismatches": found.cache_mismatches,
        "entries_without_transaction": found.orphans,
    }
    _emit(
        args,
        report,
        [
            f"unbalanced transactions:  {found.unbalanced}",
            f"negative customer balances: {found.negative}",
            f"hub accounts' cached balances differing from entries: {found.cache_mismatches}",
            f"entries without their transaction: {found.orphans}",
            "ledger sound" if found.ok() else "LEDGER NOT SOUND",
        ],
    )
    return 0 if found.ok() else 1


def _audit_verify(args: argparse.Namespace) -> int:
    from banking import audit

    with _reading() as conn:
        found = audit.verify(conn)
    report = {
        "ok": found.first_bad is None,
        "records": found.records,
        "first_bad": found.first_bad,
        "why": found.why,
    }
    if found.first_bad is None:
        line = f"audit chain whole: {found.records} record(s)"
    else:
        line = f"audit chain broken at record {found.first_bad}: {found.why}"
    _emit(args, report, [line])
    return 0 if found.first_bad is None else 1


def add_commands(sub: Any) -> None:  # argparse's private _SubParsersAction
    """Add the servicing commands to ``sscard``'s sub-commands."""
    from sscard.cli import _business_date

    def json_flag(p: argparse.ArgumentParser) -> None:
        p.add_argument("--json", action="store_true", help="print exactly one JSON object")

    account = sub.add_parser("account", help="a customer account (SSCARD_DATABASE_URL)")
    acts = account.add_subparsers(dest="action", required=True)
    show = acts.add_parser(
        "show", help="status, flags, balance, cards and latest entries; exit 1 unknown PAN"
    )
    show.add_argument("pan", type=_pan, metavar="PAN")
    json_flag(show)
    show.set_defaults(func=_run(_account_show))
    cr = acts.add_parser(
        "credit",
        help=f"sandbox and tests: Dr SETTLEMENT / Cr the account (needs {ALLOW_TEST_CREDIT}=1)",
    )
    cr.add_argument("pan", type=_pan, metavar="PAN")
    cr.add_argument("amount", metavar="AMOUNT", help="yuan, e.g. 123.45")
    cr.add_argument(
        "--ref",
        required=True,
        type=_ref,
        help="idempotency key, 1 to 73 printable characters (posted as credit:KEY)",
    )
    cr.add_argument(
        "--business-date", type=_business_date, help="YYYYMMDD (default: today in Asia/Shanghai)"
    )
    json_flag(cr)
    cr.set_defaults(func=_run(_account_credit))
    lp = acts.add_parser(
        "lock-pin",
        help="record a PIN locked after wrong tries (the card system's report): BANKEVT 22",
    )
    lp.add_argument("pan", type=_pan, metavar="PAN")
    lp.add_argument(
        "--by",
        default="operator",
        type=_actor,
        help="who reports it, 1 to 40 characters (kept in the audit trail)",
    )
    json_flag(lp)
    lp.set_defaults(func=_run(_account_lock_pin))

    card = sub.add_parser("card", help="a card (SSCARD_DATABASE_URL)")
    card_acts = card.add_subparsers(dest="action", required=True)
    cs = card_acts.add_parser(
        "show", help="status, holder, application, replacements and latest audit records"
    )
    cs.add_argument("card_no", type=_card_no, metavar="CARD_NO")
    json_flag(cs)
    cs.set_defaults(func=_run(_card_show))

    led = sub.add_parser("ledger", help="the ledger's invariants")
    led_acts = led.add_subparsers(dest="action", required=True)
    lc = led_acts.add_parser("check", help="exit 0 when sound, 1 otherwise")
    json_flag(lc)
    lc.set_defaults(func=_run(_ledger_check))

    aud = sub.add_parser("audit", help="the hash-chained audit trail")
    aud_acts = aud.add_subparsers(dest="action", required=True)
    av = aud_acts.add_parser("verify", help="exit 0 when whole, 1 naming the first broken record")
    json_flag(av)
    av.set_defaults(func=_run(_audit_verify))


__all__ = ["ALLOW_TEST_CREDIT", "CARD_STATUS_WORDS", "add_commands", "masked_id"]
