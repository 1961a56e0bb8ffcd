"""The hub's double-entry ledger (DOMAIN §6).

Conventions:

- An entry's ``amount_fen`` credits its account when positive and debits it when
  negative; the legs of a posting sum to zero. Amounts are integer fen, never floats.
- Customer accounts are ``account`` rows addressed by their PAN (all digits); the hub's
  own accounts are ``ledger_account`` rows addressed by codes (:func:`settlement`,
  :func:`clearing`, :func:`returns`, :func:`due_to_partner`), created on first use.
- Every posting carries an idempotency key, unique, and posting a key again does
  nothing: a single posting's (:func:`post`) is its transaction's ``ledger_txn.idem_key``;
  a set posting (:func:`post_transfers`, :func:`post_transfers_from`: a batch's benefit
  credits, a statement's lines) is one transaction whose every transfer has its own key
  on its credit entry (``ledger_entry.idem_key``: ``disb:<bureau>:<pay_no>``, …), the
  debit sides netted into one entry per debited account. A customer balance never goes
  below zero.
- A customer's balance is the sum of its entries (:func:`balance`, :func:`balances`),
  never a copy: a posting that credits a million accounts writes its entries and touches
  no ``account`` row, so it neither rewrites nor locks them while the cards go on being
  serviced. A posting that debits a customer locks that ``account`` row first (on
  PostgreSQL; SQLite has one writer), so two debits of one account are checked one after
  the other against every entry before them. ``ledger_account.balance_fen`` (the hub's
  own few accounts) is a cache updated in the transaction that writes the entries;
  :func:`check` compares it with the entries.
- A credit never lands on an account after its balance was read to empty it for good (a
  replacement's balance move, an account closing at zero): the postings that credit
  customer accounts and those readings hold one lock, shared and exclusive
  (:func:`hold_credit_lock`), not a lock on each credited row.

A refused posting raises :class:`LedgerError`; whatever the call wrote is then undone by
the caller's rollback (the functions never commit).
"""

from __future__ import annotations

import hashlib
import re
import uuid
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from itertools import islice
from typing import Any

from sqlalchemy import Connection, text

from exchange.logsafe import masked_numbers

#: the hub's settlement account: its position with the payment system
SETTLEMENT = "SETTLEMENT"
#: the key of the PostgreSQL advisory lock of :func:`hold_credit_lock` ("SSCREDIT")
CREDIT_LOCK = 0x5353_4352_4544_4954

_KIND_OF_PREFIX = {"CLEARING": "clearing", "RETURNS": "returns", "DUE": "due_to_partner"}
_CODE = re.compile(r"(CLEARING|RETURNS|DUE):([0-9A-Za-z]{1,8})")
_PAN = re.compile(r"[0-9]{12,19}")
_DATE = re.compile(r"[0-9]{8}")
_YUAN = re.compile(r"[0-9]{1,10}\.[0-9]{2}")
#: the longest idempotency key the ledger keeps (`ledger_txn.idem_key`, `ledger_entry.idem_key`)
IDEM_MAX = 80
_KIND_MAX = 20


class LedgerError(Exception):
    """A posting refused: unbalanced legs, an amount that is not a non-zero ``int``, an
    unknown customer account, or a customer balance that would go below zero. The
    message never holds a full PAN (:func:`masked_pan`)."""


@dataclass(frozen=True)
class Leg:
    """One side of a posting: ``amount_fen`` > 0 credits ``account``, < 0 debits it."""

    account: str
    amount_fen: int


@dataclass(frozen=True)
class EntryView:
    """An entry of an account with its posting, as :func:`entries` lists them."""

    txn_id: int
    idem_key: str
    kind: str
    business_date: str
    amount_fen: int
    created_at: datetime


@dataclass
class LedgerCheck:
    """What :func:`check` found: transactions whose entries do not sum to zero (or that
    have none), customer accounts whose entries sum below zero, hub accounts whose cached
    balance differs from their entries, and entries without their transaction."""

    unbalanced: int
    negative: int
    cache_mismatches: int
    orphans: int = 0

    def ok(self) -> bool:
        return (
            self.unbalanced == 0
            and self.negative == 0
            and self.cache_mismatches == 0
            and self.orphans == 0
        )


def settlement() -> str:
    return SETTLEMENT


def clearing(bureau: str) -> str:
    """The bureau's clearing account (代发过渡户)."""
    return _code("CLEARING", bureau)


def returns(bureau: str) -> str:
    return _code("RETURNS", bureau)


def clearing_sql(bureau_sql: str) -> str:
    """SQL for the clearing account of the bureau a column names (checked as an account
    like any other when posted)."""
    return f"'CLEARING:' || {bureau_sql}"


def returns_sql(bureau_sql: str) -> str:
    """SQL for the returns account of the bureau a column names."""
    return f"'RETURNS:' || {bureau_sql}"


def due_to_partner(bank: str) -> str:
    return _code("DUE", bank)


def _code(prefix: str, owner: str) -> str:
    code = f"{prefix}:{owner}"
    if not _CODE.fullmatch(code):
        raise LedgerError(f"not a ledger account owner: {owner!r}")
    return code


def masked_pan(pan: str) -> str:
    """A PAN as it may be shown: its first 6 and last 4 digits."""
    return pan[:6] + "****" + pan[-4:] if len(pan) > 10 else "****"


def _shown(account: str) -> str:
    """An account value as an error may show it: a PAN masked, and in anything else
    every number that may be a PAN or an ID number (a PAN with a space in it)."""
    return masked_pan(account) if account.isdigit() else masked_numbers(account)


def _is_customer(account: str) -> bool:
    return bool(_PAN.fullmatch(account))


def _internal(account: str) -> tuple[str, str] | None:
    """(kind, owner) of a hub account's code, None for anything else."""
    if account == SETTLEMENT:
        return "settlement", ""
    found = _CODE.fullmatch(account)
    return (_KIND_OF_PREFIX[found.group(1)], found.group(2)) if found else None


def _check_account(account: object) -> str:
    if not isinstance(account, str) or not (_is_customer(account) or _internal(account)):
        shown = _shown(account) if isinstance(account, str) else masked_numbers(repr(account))
        raise LedgerError(f"not an account: {shown}")
    return account


def _check_amount(amount: object) -> int:
    if type(amount) is not int or amount == 0:
        raise LedgerError(f"an amount must be a non-zero int of fen, not {amount!r}")
    return amount


def _check_header(idem_key: str, kind: str, business_date: str) -> None:
    if not isinstance(idem_key, str) or not 0 < len(idem_key) <= IDEM_MAX:
        raise LedgerError(f"an idempotency key is 1 to {IDEM_MAX} characters")
    if not isinstance(kind, str) or not 0 < len(kind) <= _KIND_MAX:
        raise LedgerError(f"a posting's kind is 1 to {_KIND_MAX} characters")
    if not isinstance(business_date, str) or not _DATE.fullmatch(business_date):
        raise LedgerError("a business date is YYYYMMDD")


def _ensure_internal(conn: Connection, codes: Iterable[str]) -> None:
    rows = []
    for code in sorted(set(codes)):
        found = _internal(code)
        assert found is not None
        rows.append({"code": code, "kind": found[0], "owner": found[1]})
    if rows:
        conn.execute(
            text(
                "INSERT INTO ledger_account (code, kind, owner, balance_fen) "
                "VALUES (:code, :kind, :owner, 0) ON CONFLICT (code) DO NOTHING"
            ),
            rows,
        )


def post(
    conn: Connection,
    idem_key: str,
    kind: str,
    business_date: str,
    legs: Sequence[Leg],
    now: datetime,
) -> bool:
    """Post ``legs`` under ``idem_key`` (DOMAIN §6). True when posted; False when the key
    was posted before (nothing is done, also when another transaction posts it at the
    same time: the unique key decides). Raises :class:`LedgerError` for a refused posting;
    the caller's transaction must then roll back."""
    _check_header(idem_key, kind, business_date)
    if not legs:
        raise LedgerError("a posting needs legs")
    net: dict[str, int] = {}
    for leg in legs:
        account = _check_account(leg.account)
        net[account] = net.get(account, 0) + _check_amount(leg.amount_fen)
    if sum(net.values()) != 0:
        raise LedgerError(f"legs do not sum to zero ({sum(net.values())} fen)")

    if conn.scalar(
        text(
            "SELECT 1 FROM ledger_txn WHERE idem_key = :k UNION ALL "
            "SELECT 1 FROM ledger_entry WHERE idem_key = :k"
        ),
        {"k": idem_key},
    ):
        return False
    customers = sorted(a for a in net if _is_customer(a))
    lock = " FOR UPDATE" if conn.dialect.name == "postgresql" else ""
    for pan in customers:
        # a debited account is locked before its balance is read: a second debit of it
        # waits here and then reads this one's entries
        found = conn.scalar(
            text(f"SELECT 1 FROM account WHERE pan = :p{lock if net[pan] < 0 else ''}"),
            {"p": pan},
        )
        if found is None:
            raise LedgerError(f"no such account: {masked_pan(pan)}")
    for pan in customers:
        if net[pan] < 0 and balance(conn, pan) + net[pan] < 0:
            raise LedgerError(f"insufficient balance: {masked_pan(pan)}")

    txn_id = conn.scalar(
        text(
            "INSERT INTO ledger_txn (idem_key, kind, business_date, created_at) "
            "VALUES (:k, :kind, :d, :now) ON CONFLICT (idem_key) DO NOTHING RETURNING id"
        ),
        {"k": idem_key, "kind": kind, "d": business_date, "now": now},
    )
    if txn_id is None:
        return False
    conn.execute(
        text("INSERT INTO ledger_entry (txn_id, account, amount_fen) VALUES (:t, :a, :f)"),
        [{"t": txn_id, "a": leg.account, "f": leg.amount_fen} for leg in legs],
    )
    internal = sorted(a for a in net if not _is_customer(a))
    _ensure_internal(conn, internal)
    if internal:
        conn.execute(
            text("UPDATE ledger_account SET balance_fen = balance_fen + :f WHERE code = :c"),
            [{"c": code, "f": net[code]} for code in internal],
        )
    return True


def hold_credit_lock(conn: Connection, *, exclusive: bool = False) -> None:
    """Hold the credit lock until this transaction ends. A posting that credits customer
    accounts holds it shared from before it checks that they still take credits, so such
    postings run side by side; a transaction that credit-blocks an account and reads its
    balance to move it or to close it at zero holds it ``exclusive``: it waits for the
    postings under way and then reads their credits, and a posting starting meanwhile
    waits and then finds the account blocked. No account row is locked. SQLite has one
    writer: the transaction takes the database's write lock now, before it reads a
    balance (a read first, then a write, would let a posting commit in between)."""
    if conn.dialect.name == "postgresql":
        lock = "pg_advisory_xact_lock" if exclusive else "pg_advisory_xact_lock_shared"
        conn.execute(text(f"SELECT {lock}(:k)"), {"k": CREDIT_LOCK})
    else:
        from persistence.db import sqlite_write_lock  # pyarrow with it: not for `sscard status`

        sqlite_write_lock(conn)


def _chunks(rows: Iterable[Any], size: int) -> Iterator[list[Any]]:
    it = iter(rows)
    while batch := list(islice(it, size)):
        yield batch


_STAGE_COLUMNS = "seq, idem_key, debit, credit, amount_fen"


def _create_stage(conn: Connection, name: str) -> None:
    conn.execute(
        text(
            f"CREATE TEMPORARY TABLE {name} (seq BIGINT NOT NULL, idem_key VARCHAR(200) NOT NULL, "
            "debit VARCHAR(40) NOT NULL, credit VARCHAR(40) NOT NULL, amount_fen BIGINT NOT NULL)"
        )
    )


def post_transfers(
    conn: Connection,
    kind: str,
    business_date: str,
    rows: Iterable[tuple[str, str, str, int]],
    now: datetime,
    chunk: int = 50_000,
) -> int:
    """Post many two-leg transfers ``(idem_key, debit_account, credit_account,
    amount_fen)`` as one set posting (:func:`post_transfers_from`), the rows checked here
    and staged a ``chunk`` at a time (COPY on PostgreSQL, executemany on SQLite)."""
    _check_header("-", kind, business_date)
    pg = conn.dialect.name == "postgresql"
    stage = f"ledger_rows_{uuid.uuid4().hex[:12]}"
    _create_stage(conn, stage)
    seq = 0
    raw = conn.connection.driver_connection
    assert raw is not None
    for batch in _chunks(rows, chunk):
        staged = []
        for idem_key, debit, credit, amount in batch:
            if not isinstance(idem_key, str) or not 0 < len(idem_key) <= IDEM_MAX:
                raise LedgerError(f"an idempotency key is 1 to {IDEM_MAX} characters")
            _check_account(debit)
            _check_account(credit)
            if debit == credit:
                raise LedgerError(f"a transfer from an account to itself: {_shown(debit)}")
            if _check_amount(amount) < 0:
                raise LedgerError(f"a transfer's amount is positive, not {amount!r}")
            seq += 1
            staged.append((seq, idem_key, debit, credit, amount))
        if pg:
            with (
                raw.cursor() as cur,
                cur.copy(f"COPY {stage} ({_STAGE_COLUMNS}) FROM STDIN") as copy,
            ):
                for row in staged:
                    copy.write_row(row)
        else:
            raw.executemany(f"INSERT INTO temp.{stage} VALUES (?, ?, ?, ?, ?)", staged)
    posted = (
        post_transfers_from(
            conn, kind, business_date, f"SELECT {_STAGE_COLUMNS} FROM {stage}", {}, now
        )
        if seq
        else 0
    )
    # a refused call leaves its temporary tables to the caller's rollback
    conn.execute(text(f"DROP TABLE {stage}"))
    return posted


def post_transfers_from(
    conn: Connection,
    kind: str,
    business_date: str,
    select: str,
    params: dict[str, Any],
    now: datetime,
    *,
    fresh: bool = False,
) -> int:
    """Post the two-leg transfers a query of this database selects, as columns ``seq,
    idem_key, debit, credit, amount_fen`` (DOMAIN §6: a day's benefit credits, read
    straight from their DISB lines), as **one set posting**: one transaction whose
    entries are one keyed entry per transfer on its credit side (the transfer's
    idempotency key, unique in the ledger) and the debit sides netted into one entry per
    debited account. Keys posted before are skipped, and a key repeated in the rows is
    posted once, its first row (lowest ``seq``) winning. A malformed row, an unknown
    customer account or a customer balance that would end below zero (the call's
    transfers netted per account) raises :class:`LedgerError`, and the caller's rollback
    keeps nothing of the call. Two transactions racing on the same rows post them once:
    the set posting's own key is derived from its first transfer's key. ``fresh``: the
    caller knows its keys are distinct and never posted (a funded DISB batch's lines,
    each ``pay_no`` once per bureau, ICD ``209``), so the rows are not looked up in the
    whole ledger, whose size would set the cost; a repeated key then fails the call on
    the ledger's unique index instead of being skipped. Returns how many transfers were
    posted."""
    _check_header("-", kind, business_date)
    pg = conn.dialect.name == "postgresql"
    tag = uuid.uuid4().hex[:12]
    new, delta = f"ledger_new_{tag}", f"ledger_delta_{tag}"
    if pg:
        # the sorts and hashes over a day's rows stay in memory (this transaction only)
        conn.execute(text("SET LOCAL work_mem = '512MB'"))
        conn.execute(text("SET LOCAL jit = off"))
    columns = "seq, idem_key, debit, credit, amount_fen"
    conn.execute(
        text(
            f"CREATE TEMPORARY TABLE {new} AS SELECT {columns} FROM ({select}) r"
            if fresh
            else f"CREATE TEMPORARY TABLE {new} AS SELECT {columns} "
            "FROM (SELECT r.*, ROW_NUMBER() OVER (PARTITION BY idem_key ORDER BY seq) AS nth "
            f"FROM ({select}) r) firsts WHERE nth = 1 AND NOT EXISTS (SELECT 1 FROM "
            "ledger_entry e WHERE e.idem_key = firsts.idem_key) AND NOT EXISTS "
            "(SELECT 1 FROM ledger_txn t WHERE t.idem_key = firsts.idem_key)"
        ),
        params,
    )
    if pg:
        conn.execute(text(f"ANALYZE {new}"))
    count = int(conn.scalar(text(f"SELECT COUNT(*) FROM {new}")) or 0)
    if count == 0:
        _drop(conn, new)
        return 0
    bad = conn.execute(
        text(
            f"SELECT idem_key, debit, credit, amount_fen FROM {new} WHERE amount_fen <= 0 "
            f"OR debit = credit OR LENGTH(idem_key) > {IDEM_MAX} OR LENGTH(idem_key) = 0 "
            "LIMIT 1"
        )
    ).first()
    if bad is not None:
        if not 0 < len(bad.idem_key) <= IDEM_MAX:
            raise LedgerError(f"an idempotency key is 1 to {IDEM_MAX} characters")
        if bad.debit == bad.credit:
            raise LedgerError(f"a transfer from an account to itself: {_shown(bad.debit)}")
        raise LedgerError(f"a transfer's amount is positive, not {bad.amount_fen!r}")
    # the hub's own accounts are SETTLEMENT and codes with a colon; all else must be a
    # customer's account
    hub_own = "{0} = 'SETTLEMENT' OR {0} LIKE '%:%'"
    # what the call moves on the hub's accounts (their cached balances) and on each
    # customer account it debits (netted with what it credits that account); a
    # customer's credit alone needs no sum: it only adds to the entries
    conn.execute(
        text(
            f"CREATE TEMPORARY TABLE {delta} AS SELECT account, SUM(amount_fen) AS amount_fen "
            f"FROM (SELECT debit AS account, -amount_fen AS amount_fen FROM {new} UNION ALL "
            f"SELECT credit, amount_fen FROM {new} WHERE {hub_own.format('credit')} "
            f"OR credit IN (SELECT debit FROM {new})) legs GROUP BY account"
        )
    )
    internal: list[str] = []
    for account in conn.scalars(
        text(f"SELECT account FROM {delta} WHERE {hub_own.format('account')}")
    ):
        if _internal(account) is None:
            raise LedgerError(f"not an account: {_shown(account)}")
        internal.append(account)
    _ensure_internal(conn, internal)
    for side in ("credit", "debit"):
        unknown = conn.scalars(
            text(
                f"SELECT n.{side} FROM {new} n WHERE NOT ({hub_own.format('n.' + side)}) "
                f"AND NOT EXISTS (SELECT 1 FROM account a WHERE a.pan = n.{side}) LIMIT 1"
            )
        ).first()
        if unknown is not None:
            shown = str(unknown)
            raise LedgerError(
                f"no such account: {masked_pan(shown)}"
                if _is_customer(shown)
                else f"not an account: {_shown(shown)}"
            )
    debited = (
        f"SELECT account FROM {delta} WHERE amount_fen < 0 AND NOT ({hub_own.format('account')})"
    )
    if pg:
        # the debited accounts locked (in one order) before their balances are read
        conn.execute(
            text(
                f"SELECT a.pan FROM account a WHERE a.pan IN ({debited}) ORDER BY a.pan FOR UPDATE"
            )
        )
    short = conn.scalars(
        text(
            f"SELECT d.account FROM {delta} d WHERE d.amount_fen < 0 AND NOT "
            f"({hub_own.format('d.account')}) AND COALESCE((SELECT SUM(e.amount_fen) FROM ledger_entry e "
            "WHERE e.account = d.account), 0) + d.amount_fen < 0 ORDER BY d.account LIMIT 1"
        )
    ).first()
    if short is not None:
        raise LedgerError(f"insufficient balance: {masked_pan(short)}")

    first = conn.scalar(text(f"SELECT idem_key FROM {new} ORDER BY seq LIMIT 1"))
    digest = hashlib.sha256(str(first).encode()).hexdigest()[:32]
    txn_id = conn.scalar(
        text(
            "INSERT INTO ledger_txn (idem_key, kind, business_date, created_at) "
            "VALUES (:k, :kind, :d, :now) ON CONFLICT (idem_key) DO NOTHING RETURNING id"
        ),
        {"k": f"set:{kind}:{digest}", "kind": kind, "d": business_date, "now": now},
    )
    if txn_id is None:
        # another transaction posted these transfers meanwhile
        _drop(conn, delta, new)
        return 0
    conn.execute(
        text(
            "INSERT INTO ledger_entry (txn_id, account, amount_fen, idem_key) "
            f"SELECT :t, credit, amount_fen, idem_key FROM {new} ORDER BY seq"
        ),
        {"t": txn_id},
    )
    conn.execute(
        text(
            "INSERT INTO ledger_entry (txn_id, account, amount_fen) "
            f"SELECT :t, debit, -SUM(amount_fen) FROM {new} GROUP BY debit ORDER BY debit"
        ),
        {"t": txn_id},
    )
    if pg and internal:
        # the hub's accounts locked in code order, as a single posting updates them: an
        # UPDATE … FROM takes its rows in no set order, so two postings sharing two
        # accounts (a bureau's clearing, a partner's due) could deadlock
        conn.execute(
            text("SELECT 1 FROM ledger_account WHERE code = ANY(:c) ORDER BY code FOR UPDATE"),
            {"c": sorted(internal)},
        )
    conn.execute(
        text(
            "UPDATE ledger_account SET balance_fen = ledger_account.balance_fen + d.amount_fen "
            f"FROM {delta} d WHERE ledger_account.code = d.account"
        )
    )
    _drop(conn, delta, new)
    return count


def _drop(conn: Connection, *tables: str) -> None:
    """Temporary tables of a call that succeeded (a refused call leaves its own to the
    caller's rollback: a failed statement may have aborted the transaction)."""
    for name in tables:
        conn.execute(text(f"DROP TABLE {name}"))


def posted_keys(conn: Connection) -> set[str]:
    """Every idempotency key posted: single postings' and each transfer's of a set posting."""
    return set(
        conn.scalars(
            text(
                "SELECT t.idem_key FROM ledger_txn t WHERE NOT EXISTS (SELECT 1 FROM "
                "ledger_entry e WHERE e.txn_id = t.id AND e.idem_key IS NOT NULL) "
                "UNION SELECT idem_key FROM ledger_entry WHERE idem_key IS NOT NULL"
            )
        )
    )


def balance(conn: Connection, account: str) -> int:
    """The account's balance: the sum of its entries; 0 for one without any."""
    found = conn.scalar(
        text("SELECT COALESCE(SUM(amount_fen), 0) FROM ledger_entry WHERE account = :a"),
        {"a": account},
    )
    return int(found or 0)


def balances(conn: Connection, accounts: Iterable[str], chunk: int = 5000) -> dict[str, int]:
    """The balance of each of ``accounts`` (the sum of its entries; 0 for one without)."""
    from persistence.db import keyed

    wanted = sorted(set(accounts))
    found = dict.fromkeys(wanted, 0)
    stmt = keyed(
        conn,
        "SELECT account, SUM(amount_fen) FROM ledger_entry WHERE account IN :keys GROUP BY account",
        "keys",
    )
    for batch in _chunks(wanted, chunk):
        found.update((a, int(s)) for a, s in conn.execute(stmt, {"keys": batch}))
    return found


def entries(conn: Connection, account: str, limit: int = 20) -> list[EntryView]:
    """The account's latest ``limit`` entries, newest first."""
    found = conn.execute(
        text(
            "SELECT t.id, COALESCE(e.idem_key, t.idem_key), t.kind, t.business_date, e.amount_fen, t.created_at "
            "FROM ledger_entry e JOIN ledger_txn t ON t.id = e.txn_id "
            "WHERE e.account = :a ORDER BY e.txn_id DESC, e.id DESC LIMIT :n"
        ),
        {"a": account, "n": limit},
    ).all()
    return [EntryView(int(r[0]), r[1], r[2], r[3], int(r[4]), _when(r[5])) for r in found]


def _when(value: datetime | str) -> datetime:
    return datetime.fromisoformat(value) if isinstance(value, str) else value


def check(conn: Connection) -> LedgerCheck:
    """The ledger's invariants (DOMAIN §6), counted over the whole ledger."""
    unbalanced = conn.scalar(
        text(
            "SELECT COUNT(*) FROM ledger_txn t LEFT JOIN (SELECT txn_id, SUM(amount_fen) AS s "
            "FROM ledger_entry GROUP BY txn_id) e ON e.txn_id = t.id "
            "WHERE e.txn_id IS NULL OR e.s <> 0"
        )
    )
    negative = conn.scalar(
        text(
            "SELECT COUNT(*) FROM (SELECT e.account FROM ledger_entry e "
            "JOIN account a ON a.pan = e.account GROUP BY e.account "
            "HAVING SUM(e.amount_fen) < 0) n"
        )
    )
    derived = "SELECT account, SUM(amount_fen) AS s FROM ledger_entry GROUP BY account"
    mismatches = conn.scalar(
        text(
            f"SELECT COUNT(*) FROM ledger_account x LEFT JOIN ({derived}) d "
            "ON d.account = x.code WHERE x.balance_fen <> COALESCE(d.s, 0)"
        )
    )
    orphans = conn.scalar(
        text(
            "SELECT COUNT(*) FROM ledger_entry e WHERE NOT EXISTS "
            "(SELECT 1 FROM ledger_txn t WHERE t.id = e.txn_id)"
        )
    )
    return LedgerCheck(
        int(unbalanced or 0), int(negative or 0), int(mismatches or 0), int(orphans or 0)
    )


def yuan(fen: int) -> str:
    """``123456`` → ``"1234.56"`` (integer arithmetic; a minus sign when negative)."""
    sign = "-" if fen < 0 else ""
    whole, cents = divmod(abs(fen), 100)
    return f"{sign}{whole}.{cents:02d}"


def fen_of(yuan_text: str) -> int:
    """``"1234.50"`` → ``123450``; ValueError for anything but ``^[0-9]{1,10}\\.[0-9]{2}$``."""
    if not isinstance(yuan_text, str) or not _YUAN.fullmatch(yuan_text):
        raise ValueError("an amount in yuan is digits, a point and two digits (123.45)")
    whole, cents = yuan_text.split(".")
    return int(whole) * 100 + int(cents)


__all__ = [
    "CREDIT_LOCK",
    "IDEM_MAX",
    "SETTLEMENT",
    "EntryView",
    "LedgerCheck",
    "LedgerError",
    "Leg",
    "balance",
    "balances",
    "check",
    "clearing",
    "due_to_partner",
    "entries",
    "fen_of",
    "hold_credit_lock",
    "masked_pan",
    "post",
    "post_transfers",
    "post_transfers_from",
    "posted_keys",
    "returns",
    "settlement",
    "yuan",
]
