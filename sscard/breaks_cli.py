"""Operator commands for reconciliation breaks (DOMAIN §7; ICD §5.12, §6 R-codes).

- ``sscard breaks list [--all] [--bureau B] [--json]``: the open breaks, oldest first (id,
  bureau, batch_no, reason code and its meaning in Chinese and English, amount in yuan,
  first seen, age in days); ``--all`` adds the matched and resolved ones.
- ``sscard breaks show ID [--json]``: a break, its batch's figures from its latest
  reconciliation, its lines not credited in full (failed, unanswered or credited another
  amount; SEQ, pay_no, PAN masked, amount, result; the first 200) and its statement lines.
- ``sscard breaks resolve ID --reason TEXT [--by WHO] [--json]``: a person closes an open
  break by hand: who, when and why are kept, with an audit record.

Exit codes: 0 done; 1 an unknown break, or one already resolved or matched; 2 wrong use
(an empty reason, bad arguments) or an unusable database (opened as ``sscard status``
opens it).
"""

from __future__ import annotations

import argparse
import getpass
import os
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from banking.ledger import masked_pan
from sscard.servicing_cli import _actor, _emit, _reading, _Refused, _run, _when

TIMEZONE = "Asia/Shanghai"
#: a break's batch lines ``breaks show`` lists at most (those not credited in full)
SHOWN_LINES = 200


def _today() -> str:
    from zoneinfo import ZoneInfo

    return datetime.now(ZoneInfo(TIMEZONE)).strftime("%Y%m%d")


def _holidays(args: argparse.Namespace) -> tuple[str, ...]:
    """The hub's configured holidays; when the counterparty file cannot be read, none,
    and one line on stderr saying the ages count Monday to Friday only."""
    import sys

    from sscard.config import ConfigError, load_counterparties

    try:
        return load_counterparties().holidays
    except (ConfigError, OSError) as exc:
        print(
            f"sscard {args.command} {args.action}: counterparty configuration unusable ({exc}): "
            "ages count Monday to Friday, without the configured holidays",
            file=sys.stderr,
        )
        return ()


def _age(first_date: str, until: str, holidays: tuple[str, ...]) -> int:
    """Business days after ``first_date`` up to ``until``, as finance's reports count."""
    from reconciliation.reports import business_days_between

    return business_days_between(first_date, until, holidays)


def _meaning(code: str) -> dict[str, str]:
    from schemas.codes import message

    return {"zh": message(code, "zh"), "en": message(code, "en")}


def _state(row: Any) -> str:
    if row.resolved_at is not None:
        return "resolved"
    if row.matched_date is not None:
        return "matched"
    return "open"


def _break_report(row: Any, today: str, holidays: tuple[str, ...]) -> dict[str, Any]:
    from banking.ledger import yuan

    state = _state(row)
    until = today if state == "open" else (row.matched_date or _day_of(row.resolved_at) or today)
    return {
        "id": int(row.id),
        "bureau": row.bureau,
        "batch_no": row.batch_no,
        "reason": row.reason,
        "meaning": _meaning(row.reason),
        "ref": row.ref,
        "amount_fen": int(row.amount_fen),
        "amount_yuan": yuan(int(row.amount_fen)),
        "first_date": row.first_date,
        "last_date": row.last_date,
        "age_days": max(_age(row.first_date, until, holidays), 0),
        "state": state,
        "matched_date": row.matched_date,
        "resolved_at": _when(row.resolved_at) or None,
        "resolved_by": row.resolved_by,
        "resolution": row.resolution,
    }


def _day_of(moment: Any) -> str | None:
    from reconciliation.daily import _local_day

    return _local_day(moment)


_COLUMNS = (
    "id, bureau, batch_no, reason, ref, amount_fen, first_date, last_date, matched_date, "
    "resolved_at, resolved_by, resolution"
)


def _list(args: argparse.Namespace) -> int:
    from sqlalchemy import text

    where = ["1 = 1"] if args.all else ["matched_date IS NULL", "resolved_at IS NULL"]
    params: dict[str, Any] = {}
    if args.bureau:
        where.append("bureau = :b")
        params["b"] = args.bureau
    with _reading() as conn:
        found = conn.execute(
            text(
                f"SELECT {_COLUMNS} FROM recon_break WHERE {' AND '.join(where)} "
                "ORDER BY first_date, id"
            ),
            params,
        ).all()
    today = _today()
    holidays = _holidays(args)  # read once, not once per break
    items = [_break_report(r, today, holidays) for r in found]
    lines = [
        f"{'id':>6}  {'bureau':<8} {'batch_no':<20} {'reason':<6} {'amount (yuan)':>15}  "
        f"{'first seen':<10} {'age':>4}  meaning"
    ]
    lines += [
        f"{b['id']:>6}  {b['bureau'] or '-':<8} {b['batch_no'] or '-':<20} {b['reason']:<6} "
        f"{b['amount_yuan']:>15}  {b['first_date']:<10} {b['age_days']:>4}  "
        f"{b['meaning']['zh']} / {b['meaning']['en']}"
        + ("" if b["state"] == "open" else f"  [{b['state']}]")
        for b in items
    ]
    what = "break(s)" if args.all else "open break(s)"
    lines.append(f"{len(items)} {what}")
    _emit(args, {"breaks": items, "count": len(items)}, lines)
    return 0


def _show(args: argparse.Namespace) -> int:
    from sqlalchemy import text

    from banking.ledger import yuan

    with _reading() as conn:
        row = conn.execute(
            text(f"SELECT {_COLUMNS} FROM recon_break WHERE id = :i"), {"i": args.id}
        ).one_or_none()
        if row is None:
            raise _Refused(f"no break {args.id}", 1)
        latest = None
        failed = 0
        items: list[Any] = []
        statements: list[Any] = []
        if row.batch_no and row.bureau:
            latest = conn.execute(
                text(
                    "SELECT * FROM recon_batch WHERE bureau = :b AND batch_no = :n "
                    "ORDER BY business_date DESC LIMIT 1"
                ),
                {"b": row.bureau, "n": row.batch_no},
            ).one_or_none()
            failed = int(
                conn.scalar(
                    text(
                        "SELECT COUNT(*) FROM disb_line l JOIN disb_batch b ON b.id = l.batch_id "
                        "WHERE b.bureau = :b AND b.batch_no = :n AND l.result IS NOT NULL "
                        "AND l.result <> '0000'"
                    ),
                    {"b": row.bureau, "n": row.batch_no},
                )
                or 0
            )
            items = list(
                conn.execute(
                    text(
                        "SELECT l.seq, l.pay_no, l.pan, l.amount_fen, l.result, l.credited_fen, "
                        "l.partner, l.answered_date FROM disb_line l JOIN disb_batch b "
                        "ON b.id = l.batch_id WHERE b.bureau = :b AND b.batch_no = :n "
                        "AND (l.result IS NULL OR l.result <> '0000' "
                        "OR l.credited_fen <> l.amount_fen) ORDER BY l.seq LIMIT :m"
                    ),
                    {"b": row.bureau, "n": row.batch_no, "m": SHOWN_LINES},
                )
            )
            statements = list(
                conn.execute(
                    text(
                        "SELECT sender, txn_ref, business_date, dc, kind, amount_fen, memo "
                        "FROM statement_line WHERE bureau = :b AND batch_no = :n "
                        "ORDER BY business_date, id"
                    ),
                    {"b": row.bureau, "n": row.batch_no},
                )
            )
        elif row.reason == "R09":
            sender, _, txn_ref = row.ref.removeprefix("stmt:").partition(":")
            statements = list(
                conn.execute(
                    text(
                        "SELECT sender, txn_ref, business_date, dc, kind, amount_fen, memo "
                        "FROM statement_line WHERE sender = :s AND txn_ref = :t"
                    ),
                    {"s": sender, "t": txn_ref},
                )
            )
    report = _break_report(row, _today(), _holidays(args))
    figures = None
    if latest is not None:
        figures = {
            k: (int(v) if isinstance(v, int) else v)
            for k, v in latest._mapping.items()
            if k != "bureau"
        }
    report["batch"] = figures
    report["failed_lines"] = failed
    report["lines"] = [
        {
            "seq": int(i.seq),
            "pay_no": i.pay_no,
            "pan": masked_pan(i.pan),
            "amount_fen": int(i.amount_fen),
            "amount_yuan": yuan(int(i.amount_fen)),
            "result": i.result,
            "credited_fen": int(i.credited_fen or 0),
            "credited_yuan": yuan(int(i.credited_fen or 0)),
            "partner": i.partner,
            "answered_date": i.answered_date,
        }
        for i in items
    ]
    report["statement_lines"] = [
        {
            "sender": s.sender,
            "txn_ref": s.txn_ref,
            "business_date": s.business_date,
            "dc": s.dc,
            "kind": s.kind,
            "amount_fen": int(s.amount_fen),
            "amount_yuan": yuan(int(s.amount_fen)),
            "memo": s.memo,
        }
        for s in statements
    ]
    lines = [
        f"break {report['id']}  {report['state']}  {report['reason']} "
        f"{report['meaning']['zh']} / {report['meaning']['en']}",
        f"  bureau {report['bureau'] or '-'}  batch {report['batch_no'] or '-'}  "
        f"amount {report['amount_yuan']} yuan  ref {report['ref'] or '-'}",
        f"  first seen {report['first_date']}  last seen {report['last_date']}  "
        f"age {report['age_days']} day(s)",
    ]
    if report["matched_date"]:
        lines.append(f"  matched on {report['matched_date']}")
    if report["resolved_at"]:
        lines.append(
            f"  resolved {report['resolved_at']} by {_printable(report['resolved_by'])}: "
            f"{_printable(report['resolution'])}"
        )
    if figures is not None:
        f = figures
        lines.append(
            f"  batch as of {f['business_date']}: {f['status']} {f['break_reason'] or ''}".rstrip()
        )
        lines.append(
            f"    instructed {f['instructed_count']} / {yuan(f['instructed_fen'])}  "
            f"credited {f['credited_count']} / {yuan(f['credited_fen'])}  "
            f"failed {f['failed_count']} / {yuan(f['failed_fen'])}"
        )
        lines.append(
            f"    funded {yuan(f['funded_fen'])}  returned {yuan(f['returned_fen'])}  "
            f"partner {yuan(f['partner_fen'])}  partner settled {yuan(f['partner_settled_fen'])}  "
            f"difference {yuan(f['difference_fen'])}"
        )
    if row.batch_no and row.bureau:
        lines.append(f"  failed lines: {failed}")
        shown = report["lines"]
        more = " (the first " + str(SHOWN_LINES) + ")" if len(shown) == SHOWN_LINES else ""
        lines.append(f"  lines not credited in full{more}: {len(shown)}")
        lines += [
            f"    SEQ {i['seq']:>7}  pay_no {_printable(i['pay_no']):<30} {_printable(i['pan']):<19} "
            f"{i['amount_yuan']:>15}  result {i['result'] or 'none yet'}  "
            f"credited {i['credited_yuan']}"
            + (f"  at {i['partner']}" if i["partner"] else "")
            + (f"  answered {i['answered_date']}" if i["answered_date"] else "")
            for i in shown
        ]
    lines.append(f"  statement lines ({len(statements)}):")
    lines += [
        f"    {s['business_date']}  {s['sender']}  {s['txn_ref']:<30} {s['kind']:<12} "
        f"{s['dc']} {s['amount_yuan']:>15}  {_printable(s['memo'])}"
        for s in report["statement_lines"]
    ]
    _emit(args, report, lines)
    return 0


def _printable(text: str | None) -> str:
    """Text from a counterparty or a form as the terminal may show it: a control character
    (an escape sequence could clear the screen or rewrite what is shown) as U+FFFD; the
    JSON output keeps the text as it is."""
    import re

    return re.sub(r"[\x00-\x1f\x7f-\x9f]", "\ufffd", text or "")


def _resolve(args: argparse.Namespace) -> int:
    from persistence.db import make_engine
    from reconciliation.daily import resolve_break
    from sscard.config import database_url

    if not args.reason.strip():
        raise _Refused("a resolution needs its reason: --reason TEXT", 2)
    who = (args.by or os.environ.get("USER") or _login() or "operator").strip()
    with _reading() as conn:
        pass  # the same checks as the reading commands: present, reachable, at head
    engine = make_engine(database_url())
    now = datetime.now(UTC)
    try:
        with engine.begin() as conn:
            done = resolve_break(conn, args.id, who=who, why=args.reason, now=now)
    except ValueError as exc:
        message = str(exc)
        code = 1 if message.startswith(("no break", "break ")) else 2
        raise _Refused(message, code) from exc
    finally:
        engine.dispose()
    report = {
        "id": done.id,
        "bureau": done.bureau,
        "batch_no": done.batch_no,
        "reason": done.reason,
        "resolved_at": _when(done.resolved_at),
        "resolved_by": done.resolved_by,
        "resolution": done.resolution,
    }
    _emit(
        args,
        report,
        [
            f"break {done.id} ({done.reason} {done.bureau or '-'} {done.batch_no or '-'}) "
            f"resolved by {_printable(done.resolved_by)} at {report['resolved_at']}: "
            f"{_printable(done.resolution)}"
        ],
    )
    return 0


def _login() -> str | None:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return None


def _break_id(value: str) -> int:
    if not value.isdigit() or not 1 <= int(value) < 2**63:
        raise argparse.ArgumentTypeError("a break id is a positive whole number")
    return int(value)


def _bureau(value: str) -> str:
    import re

    if not re.fullmatch(r"R[0-9]{6}", value):
        raise argparse.ArgumentTypeError("a bureau code is R and 6 digits")
    return value


def _resend(args: argparse.Namespace) -> int:
    """A file the counterparty lost (a response, or the ``NAME.rej`` of a file rejected as
    a whole) sent again: the outbox delivers it once more (never over a file still in its
    drop directory)."""
    import re

    from sqlalchemy import text

    from banking import audit
    from persistence.db import make_engine
    from schemas.files import SAFE_NAME
    from sscard.config import database_url

    data = r"[A-Z]{3,12}_[A-Z][0-9]{2,6}_[A-Z][0-9]{2,6}_[0-9]{8}_[0-9]{3}\.txt"
    rej = (
        args.name.endswith(".rej")
        and len(args.name) <= 64  # the audit record's ref keeps it whole
        and SAFE_NAME.fullmatch(args.name[:-4]) is not None
    )
    if not (re.fullmatch(data, args.name) or rej):
        raise _Refused(
            "NAME is a file name of ICD §3, e.g. DISBRSP_B001_R440100_20261123_001.txt, or "
            "the NAME.rej of a file rejected as a whole (at most 64 characters)",
            2,
        )
    who = (args.by or os.environ.get("USER") or _login() or "operator").strip()
    with _reading() as conn:
        pass  # the same checks as the reading commands: present, reachable, at head
    engine = make_engine(database_url())
    now = datetime.now(UTC)
    try:
        with engine.begin() as conn:
            found = conn.execute(
                text(
                    "SELECT id, conn_id, delivered_at FROM outbound_file WHERE name = :n "
                    "ORDER BY id DESC LIMIT 1"
                ),
                {"n": args.name},
            ).one_or_none()
            if found is None:
                raise _Refused(f"no file {args.name} in the outbox", 1)
            if found.delivered_at is None:
                raise _Refused(
                    f"{args.name} has not been delivered yet; it goes with the next delivery", 1
                )
            conn.execute(
                text("UPDATE outbound_file SET delivered_at = NULL WHERE id = :i"), {"i": found.id}
            )
            day = now.astimezone(ZoneInfo("Asia/Shanghai")).strftime("%Y%m%d")
            audit.append(
                conn,
                [
                    audit.AuditEntry(
                        day,
                        "",
                        "",
                        "outbox:resend",
                        "operator",
                        who[:40],
                        args.name,
                        "delivered",
                        "queued",
                    )
                ],
                now,
            )
    finally:
        engine.dispose()
    _emit(
        args,
        {"name": args.name, "conn_id": found.conn_id, "queued": True, "by": who},
        [f"{args.name}: queued again for {found.conn_id}; the next delivery publishes it"],
    )
    return 0


def add_commands(sub: Any) -> None:  # argparse's private _SubParsersAction
    """Add ``sscard breaks list|show|resolve`` to ``sscard``'s sub-commands."""

    def json_flag(p: argparse.ArgumentParser) -> None:
        p.add_argument("--json", action="store_true", help="print exactly one JSON object")

    breaks = sub.add_parser("breaks", help="reconciliation breaks (SSCARD_DATABASE_URL)")
    acts = breaks.add_subparsers(dest="action", required=True)
    ls = acts.add_parser("list", help="open breaks, oldest first")
    ls.add_argument("--all", action="store_true", help="also the matched and resolved ones")
    ls.add_argument("--bureau", type=_bureau, help="only this bureau's (R + 6 digits)")
    json_flag(ls)
    ls.set_defaults(func=_run(_list))
    sh = acts.add_parser("show", help="a break, its batch's figures and statement lines")
    sh.add_argument("id", type=_break_id, metavar="ID")
    json_flag(sh)
    sh.set_defaults(func=_run(_show))
    rs = acts.add_parser(
        "resolve", help="close an open break by hand (who, when, why; audited); exit 1 unknown"
    )
    rs.add_argument("id", type=_break_id, metavar="ID")
    rs.add_argument("--reason", required=True, help="why it is resolved (kept with the break)")
    rs.add_argument(
        "--by",
        type=_actor,
        help="who resolves it, 1 to 40 characters (default: $USER, else operator)",
    )
    json_flag(rs)
    rs.set_defaults(func=_run(_resolve))

    out = sub.add_parser("outbox", help="files the hub sends (SSCARD_DATABASE_URL)")
    out_acts = out.add_subparsers(dest="action", required=True)
    rsd = out_acts.add_parser(
        "resend", help="send a delivered file again (a counterparty lost it); audited"
    )
    rsd.add_argument("name", metavar="NAME")
    rsd.add_argument(
        "--by",
        type=_actor,
        help="who asks for it, 1 to 40 characters (default: $USER, else operator)",
    )
    json_flag(rsd)
    rsd.set_defaults(func=_run(_resend))


def main(argv: list[str] | None = None) -> int:
    """``breaks …`` on its own (``sscard.cli`` registers :func:`add_commands`)."""
    from sscard.cli import Parser

    parser = Parser(prog="sscard")
    add_commands(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return int(args.func(args))


__all__ = ["add_commands", "main"]
