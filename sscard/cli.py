"""``sscard``: the hub's command line.

- ``sscard validate FILE [--json] [--business-date YYYYMMDD]``: pre-check an APPLY file
  the way intake will (exit 0 file accepted, 1 file rejected, 2 wrong use).
- ``sscard db upgrade``: migrate the hub's database (``SSCARD_DATABASE_URL``); exit 2 with
  one line when it cannot be reached or the URL is not one.
- ``sscard status [--json] [--business-date YYYYMMDD]``: where the work stands
  (applications per stage with their next step and when it is due, partner requests and
  their E140 day, the day's files per counterparty, the outbox); exit 0 ok, 1 needs
  attention, 2 critical (the thresholds in ``issuance.status``) or database unusable.
- ``sscard refused-returns [--json] [--business-date YYYYMMDD]``: the returned records
  the hub refused to apply (file, line, key, problem).
- ``sscard demo [--size LINES] [--business-date YYYYMMDD]``: the sandbox's business day,
  end to end, on a migrated database (exit 2 with one line when it is missing, unreachable
  or not migrated, as for ``sscard status``).
- ``sscard config check [--config PATH] [--json] [--no-connections]``: every problem of the
  counterparty configuration, one line each (exit 1), or what is configured (exit 0);
  2 on wrong use.

A command that cannot do its work (wrong use, a missing file, an unusable database or
configuration) says why in one line on stderr, naming the command, and exits non-zero;
with ``--json`` it also prints one object on stdout, ``{"error": TEXT, "exit": CODE}``
(``sscard status`` and ``sscard refused-returns`` add ``"level": 2, "status":
"critical"``).

Every command whose reader stops reading (``sscard breaks list | head``) ends quietly with
exit 141, as a program that SIGPIPE ended.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn
from zoneinfo import ZoneInfo

import yaml

from schemas.codes import message

if TYPE_CHECKING:
    from issuance.status import StatusSettings
    from sscard.config import Counterparties


def quoted(text: str) -> str:
    """Text the hub did not write (what was typed, a database's error) as one line of a
    message: control characters escaped, numbers that may be a PAN or an ID number masked."""
    from exchange.logsafe import masked_numbers

    return masked_numbers("".join(c if c.isprintable() else repr(c)[1:-1] for c in text))


#: what ``sscard status`` and ``sscard refused-returns`` add to a failure's JSON object
CRITICAL: dict[str, Any] = {"level": 2, "status": "critical"}


class Parser(argparse.ArgumentParser):
    """argparse's parser, whose wrong use is one line on stderr with the command's usage
    (the values typed shown with their PANs and ID numbers masked, control characters
    escaped) and exit 2; with ``--json`` among the arguments, also ``{"error", "exit"}`` on
    stdout (with the keys of ``failure``) like any failure of the command."""

    _json = False

    def __init__(self, *args: Any, failure: dict[str, Any] | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.failure = failure or {}

    def add_subparsers(self, **kwargs: Any) -> Any:  # argparse's private _SubParsersAction
        kwargs.setdefault("parser_class", _Command)
        return super().add_subparsers(**kwargs)

    def parse_known_args(  # type: ignore[override]
        self, args: list[str] | None = None, namespace: argparse.Namespace | None = None
    ) -> tuple[argparse.Namespace, list[str]]:
        given = sys.argv[1:] if args is None else list(args)
        self._json = "--json" in given[: given.index("--")] if "--" in given else "--json" in given
        return super().parse_known_args(given, namespace)

    def error(self, message: str) -> NoReturn:
        reason = quoted(message)
        usage = " ".join(self.format_usage().split())
        print(f"{self.prog}: {reason}; {usage}", file=sys.stderr)
        if self._json:
            print(json.dumps({**self.failure, "error": reason, "exit": 2}, ensure_ascii=False))
        sys.exit(2)


class _Command(Parser):
    """A sub-command's parser: an argument it does not know is its own wrong use, named
    with its own usage, not the top-level parser's."""

    def parse_known_args(  # type: ignore[override]
        self, args: list[str] | None = None, namespace: argparse.Namespace | None = None
    ) -> tuple[argparse.Namespace, list[str]]:
        found, extras = super().parse_known_args(args, namespace)
        if extras:
            self.error(f"unrecognized arguments: {' '.join(extras)}")
        return found, extras


def _today() -> str:
    return datetime.now(ZoneInfo("Asia/Shanghai")).strftime("%Y%m%d")


#: the business dates a command takes: the hub's dates, with years to spare both ways
FIRST_DATE, LAST_DATE = "20000101", "20991231"


def _business_date(text: str) -> str:
    if not re.fullmatch(r"[0-9]{8}", text):
        raise argparse.ArgumentTypeError("business date must be YYYYMMDD")
    try:
        datetime.strptime(text, "%Y%m%d")
    except ValueError as exc:
        raise argparse.ArgumentTypeError("business date is not a valid date") from exc
    if not FIRST_DATE <= text <= LAST_DATE:
        raise argparse.ArgumentTypeError(f"business date must be from {FIRST_DATE} to {LAST_DATE}")
    return text


def failed(args: argparse.Namespace, reason: str, code: int = 2, **shape: Any) -> int:
    """A command that cannot do its work: ``reason`` in one line on stderr, naming the
    command, and with ``--json`` one object on stdout, ``{"error": reason, "exit": code}``
    beside the keys of ``shape``. Returns ``code``."""
    action = getattr(args, "action", None)
    name = f"sscard {args.command}" + (f" {action}" if action else "")
    print(f"{name}: {reason}", file=sys.stderr)
    if getattr(args, "json", False):
        print(json.dumps({**shape, "error": reason, "exit": code}, ensure_ascii=False))
    return code


def _is_file(path: Path) -> bool:
    """``path`` names a regular file; a name the system refuses (too long) names none."""
    try:
        return path.is_file()
    except OSError:
        return False


def _validate(args: argparse.Namespace) -> int:
    from issuance.precheck import precheck
    from sscard.config import load_counterparties, precheck_settings

    path = Path(args.file)
    if not _is_file(path):
        return failed(args, f"no such file: {path}")
    try:
        parties = load_counterparties(args.config)
    except (OSError, ValueError, yaml.YAMLError) as exc:  # ConfigError is a ValueError
        return failed(args, f"counterparty configuration unusable: {exc}")
    try:
        result = precheck(path, precheck_settings(parties), args.business_date or _today())
    except OSError as exc:  # the file or a companion (FILE.ok, its zip) cannot be read
        return failed(args, f"cannot read {exc.filename or path}: {exc.strerror or exc}")
    if args.json:
        print(json.dumps(result.as_json(), ensure_ascii=False))
    else:
        if result.file_code:
            print(f"{result.file}: 文件被拒绝 / FILE REJECTED {result.file_code}")
            print(f"  {message(result.file_code, 'zh')}")
            print(f"  {message(result.file_code, 'en')}")
            if result.file_detail:
                print(f"  ({result.file_detail})")
        else:
            for r in result.rejected:
                seq = r.seq if r.seq is not None else "-"
                print(
                    f"line {r.line:>7}  SEQ {seq:>7}  {r.field:<15} {r.code}  "
                    f"{message(r.code, 'zh')} / {message(r.code, 'en')}"
                )
            print(
                f"{result.file}: 文件通过 / file accepted: {result.accepted} line(s) accepted, "
                f"{len(result.rejected)} rejected"
            )
            print(
                "  not checked here (the hub's database decides): repeats of earlier files "
                "(E106/E107), cards already held in the province (E108), old cards (E109/E110/E118)"
            )
    return 1 if result.file_code else 0


def _db(args: argparse.Namespace) -> int:
    from alembic.util import CommandError
    from sqlalchemy import exc as sa_exc
    from sqlalchemy.engine import make_url

    from issuance.status import NOT_A_URL
    from persistence.db import upgrade
    from sscard.config import database_url

    url = database_url()
    where = url.split("@")[-1]
    try:
        make_url(url)
    except (sa_exc.ArgumentError, ValueError):  # ValueError: a port that is no number
        return failed(args, NOT_A_URL)
    try:
        upgrade(url)
    except (sa_exc.SQLAlchemyError, ImportError, CommandError) as exc:
        # CommandError: the database is at a revision this hub does not know
        inner = getattr(exc, "orig", None) or exc
        reason = (str(inner).strip().splitlines() or [type(inner).__name__])[0]
        return failed(args, f"cannot migrate the database at {where}: {quoted(reason)}")
    print(f"database at head: {where}")
    return 0


def _status_settings(parties: Counterparties) -> StatusSettings:
    from issuance.status import StatusSettings
    from sscard.schedules import BUSINESS, cron

    return StatusSettings(
        partner_wait_days={
            p.code: int(p.option("partner_wait_days", 1)) for p in parties.partner_banks
        },
        zip_wait_minutes={
            b.conn_id: int(b.option("zip_wait_minutes", 120)) for b in parties.bureaus
        },
        party_of={p.conn_id: p.code for p in parties.all()},
        crons={dag_id: cron(dag_id) for dag_id in BUSINESS},
        timezone=parties.timezone,
        holidays=parties.holidays,
    )


def _status(args: argparse.Namespace) -> int:
    from issuance.status import DatabaseUnusable, open_for_reading, render, work_status
    from sscard.config import database_url, load_counterparties

    try:
        parties = load_counterparties(args.config)
    except (OSError, ValueError, yaml.YAMLError) as exc:  # ConfigError is a ValueError
        return _unusable(args, f"counterparty configuration unusable: {exc}")
    day = args.business_date or datetime.now(ZoneInfo(parties.timezone)).strftime("%Y%m%d")
    try:
        engine = open_for_reading(database_url())
        try:
            status = work_status(engine, day, _status_settings(parties), now=datetime.now(UTC))
        finally:
            engine.dispose()
    except DatabaseUnusable as exc:
        return _unusable(args, str(exc))
    if args.json:
        print(json.dumps(status.as_json(), ensure_ascii=False))
    else:
        print(render(status))
    return int(status.level)


def _unusable(args: argparse.Namespace, reason: str) -> int:
    """One line on stderr (and, with ``--json``, one object on stdout at level 2); exit 2."""
    return failed(args, reason, **CRITICAL)


def _refused_returns(args: argparse.Namespace) -> int:
    from issuance.status import (
        DatabaseUnusable,
        open_for_reading,
        refused_returns,
        render_refused,
    )
    from sscard.config import database_url

    day = args.business_date or _today()
    try:
        engine = open_for_reading(database_url())
        try:
            records = refused_returns(engine, day)
        finally:
            engine.dispose()
    except DatabaseUnusable as exc:
        return _unusable(args, str(exc))
    if args.json:
        report = {
            "business_date": day,
            "count": len(records),
            "records": [r.as_json() for r in records],
        }
        print(json.dumps(report, ensure_ascii=False))
    else:
        print(render_refused(day, records))
    return 0


def _demo(args: argparse.Namespace) -> int:
    """The sandbox's days, once the counterparty file and the database are usable (the
    database checked as the reading commands check it: present, reachable, migrated)."""
    from issuance.status import DatabaseUnusable
    from sandbox.demo import main as demo_main
    from sscard.config import load_counterparties
    from sscard.servicing_cli import _reading

    try:
        load_counterparties()
    except (OSError, ValueError, yaml.YAMLError) as exc:  # ConfigError is a ValueError
        return failed(args, f"counterparty configuration unusable: {exc}")
    try:
        with _reading():
            pass
    except DatabaseUnusable as exc:
        return failed(args, str(exc))
    return demo_main(size=args.size, business_date=args.business_date)


def _size(text: str) -> int:
    """The demo's APPLY lines: 1 to 99,999,999 (a trailer's RECORD_COUNT has 8 digits)."""
    if not re.fullmatch(r"[0-9]{1,8}", text) or int(text) == 0:
        raise argparse.ArgumentTypeError("a size is a number of lines from 1 to 99999999")
    return int(text)


def _config_check(args: argparse.Namespace) -> int:
    from sscard.config import check_counterparties, config_path

    path = config_path(args.config)
    if not _is_file(path):
        return failed(args, f"no such file: {path}")
    try:
        check = check_counterparties(path, connections=not args.no_connections)
    except OSError as exc:
        return failed(args, f"cannot read {path}: {exc.strerror or exc}")
    if args.json:
        print(json.dumps(check.as_json(), ensure_ascii=False))
    else:
        print(check.render())
    return 1 if check.problems else 0


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="sscard", description="Social security card hub")
    sub = parser.add_subparsers(dest="command", required=True)

    v = sub.add_parser("validate", help="pre-check an APPLY file (no database needed)")
    v.add_argument(
        "file", help="the APPLY file; FILE.ok, FILE's .zip and .zip.ok beside it are checked too"
    )
    v.add_argument("--json", action="store_true", help="print exactly one JSON object")
    v.add_argument(
        "--business-date", type=_business_date, help="YYYYMMDD (default: today in Asia/Shanghai)"
    )
    v.add_argument(
        "--config", help="counterparty file (default: SSCARD_COUNTERPARTIES or the shipped one)"
    )
    v.set_defaults(func=_validate)

    d = sub.add_parser("db", help="database maintenance")
    d.add_argument("action", choices=["upgrade"])
    d.set_defaults(func=_db)

    from issuance.status import thresholds_help

    st = sub.add_parser(
        "status",
        help="where the work stands (SSCARD_DATABASE_URL); exit 0 ok, 1 attention, 2 critical",
        description="Where the work stands: applications per stage with the next step, who "
        "takes it and when it is due; partner requests and their E140 day; the day's files "
        "per counterparty; the outbox. Reads only: a missing database is never created.",
        epilog=thresholds_help(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
        failure=CRITICAL,
    )
    st.add_argument(
        "--json", action="store_true", help="print exactly one JSON object (with its level)"
    )
    st.add_argument(
        "--business-date",
        type=_business_date,
        help="YYYYMMDD (default: today in Asia/Shanghai); for a past date, ages and "
        "deadlines are measured at its end",
    )
    st.add_argument(
        "--config", help="counterparty file (default: SSCARD_COUNTERPARTIES or the shipped one)"
    )
    st.set_defaults(func=_status)

    rr = sub.add_parser(
        "refused-returns",
        help="returned records the hub refused to apply (table return_problem)",
        description="The factory's and partner banks' returned records the hub refused to "
        "apply on a business date (unknown card or request, repeat, PAN differing from the "
        "PERSO): file, line, key and problem. Settle them with the counterparty.",
        failure=CRITICAL,
    )
    rr.add_argument("--json", action="store_true", help="print exactly one JSON object")
    rr.add_argument(
        "--business-date", type=_business_date, help="YYYYMMDD (default: today in Asia/Shanghai)"
    )
    rr.set_defaults(func=_refused_returns)

    demo = sub.add_parser("demo", help="run the sandbox's business day end to end")
    demo.add_argument(
        "--size", type=_size, default=200, help="lines of the bureau's APPLY batch (default 200)"
    )
    demo.add_argument("--business-date", type=_business_date)
    demo.set_defaults(func=_demo)

    cfg = sub.add_parser("config", help="check the counterparty configuration")
    cfg.add_argument("action", choices=["check"])
    cfg.add_argument(
        "--config", help="counterparty file (default: SSCARD_COUNTERPARTIES or the shipped one)"
    )
    cfg.add_argument("--json", action="store_true", help="print exactly one JSON object")
    cfg.add_argument(
        "--no-connections",
        action="store_true",
        help="check the file alone, not whether Airflow resolves each conn_id",
    )
    cfg.set_defaults(func=_config_check)

    from sscard.breaks_cli import add_commands as add_breaks
    from sscard.servicing_cli import add_commands

    add_commands(sub)
    add_breaks(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        code = int(args.func(args))
        sys.stdout.flush()
    except BrokenPipeError:
        # the reader stopped reading (``sscard breaks list | head``): no traceback, nothing
        # left for Python to flush at exit, and 141 like a program that SIGPIPE ended
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    except KeyboardInterrupt:
        # Ctrl-C: one line, no traceback, and 130 like a program SIGINT ended; a command
        # writes in one transaction, which its connection's close rolls back unless done
        print(f"sscard {args.command}: interrupted", file=sys.stderr)
        return 130
    return code


if __name__ == "__main__":
    sys.exit(main())
