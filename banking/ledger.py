"""The hub's double-entry ledger (DOMAIN §6).

Conventions:

- An entry's ``amount_fen`` credits its account when positive and debits it when
  negative; the legs of a posting sum to zero. Amounts are integer fen, never floats.
- Customer accounts are ``account`` rows addressed by their PAN (all digits); the hub's
  own accounts are ``ledger_account`` rows addressed by codes (:func:`settlement`,
  :func:`clearing`, :func:`returns`, :func:`due_to_partner`), created on first use.
- Every posting carries an idempotency key (``ledger_txn.idem_key``, unique): posting a
  key again does nothing. A customer balance never goes below zero.
- ``account.balance_fen`` and ``ledger_account.balance_fen`` are caches updated in the
  transaction that writes the entries; the entries are the truth (:func:`balance`,
  :func:`check`).

A refused posting raises :class:`LedgerError`; whatever the call wrote is then undone by
the caller's rollback (the functions never commit).
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from itertools import islice
from typing import Any

from sqlalchemy import Connection, bindparam, text

#: the hub's settlement account: its position with the payment system
SETTLEMENT = "SETTLEMENT"

_KIND_OF_PREFIX = {"CLEARING": "clearing", "RETURNS": "returns", "DUE": "due_to_partner"}
_CODE = re.compile(r"(CLEARING|RETURNS|DUE):([0-9A-Za-z]{1,8})")
_PAN = re.compile(r"[0-9]{12,19}")
_DATE = re.compile(r"[0-9]{8}")
_YUAN = re.compile(r"[0-9]{1,10}\.[0-9]{2}")
_IDEM_MAX = 80
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
    have none), customer accounts whose entries sum below zero, and cached balances
    differing from their entries."""

    unbalanced: int
    negative: int
    cache_mismatches: int

    def ok(self) -> bool:
        return self.unbalanced == 0 and self.negative == 0 and self.cache_mismatches == 0


def settlement() -> str:
    return SETTLEMENT


def clearing(bureau: str) -> str:
    """The bureau's clearing account (代发过渡户)."""
    return _code("CLEARING", bureau)


def returns(bureau: str) -> str:
    return _code("RETURNS", bureau)


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
    return masked_pan(account) if account.isdigit() else account


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
        shown = _shown(account) if isinstance(account, str) else repr(account)
        raise LedgerError(f"not an account: {shown}")
    return account


def _check_amount(amount: object) -> int:
    if type(amount) is not int or amount == 0:
        raise LedgerError(f"an amount must be a non-zero int of fen, not {amount!r}")
    return amount


def _check_header(idem_key: str, kind: str, business_date: str) -> None:
    if not isinstance(idem_key, str) or not 0 < len(idem_key) <= _IDEM_MAX:
        raise LedgerError(f"an idempotency key is 1 to {_IDEM_MAX} characters")
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

    if conn.scalar(text("SELECT id FROM ledger_txn WHERE idem_key = :k"), {"k": idem_key}):
        return False
    customers = sorted(a for a in net if _is_customer(a))
    lock = " FOR UPDATE" if conn.dialect.name == "postgresql" else ""
    held: dict[str, int] = {}
    for pan in customers:
        cached = conn.scalar(
            text(f"SELECT balance_fen FROM account WHERE pan = :p{lock}"), {"p": pan}
        )
        if cached is None:
            raise LedgerError(f"no such account: {masked_pan(pan)}")
        held[pan] = int(cached)
    for pan in customers:
        if held[pan] + net[pan] < 0:
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
    for pan in customers:
        moved = conn.execute(
            text(
                "UPDATE account SET balance_fen = balance_fen + :f "
                "WHERE pan = :p AND balance_fen + :f >= 0"
            ),
            {"p": pan, "f": net[pan]},
        )
        if moved.rowcount != 1:
            raise LedgerError(f"insufficient balance: {masked_pan(pan)}")
    internal = sorted(a for a in net if not _is_customer(a))
    _ensure_internal(conn, internal)
    if internal:
        conn.execute(
            text("UPDATE ledger_account SET balance_fen = balance_fen + :f WHERE code = :c"),
            [{"c": code, "f": net[code]} for code in internal],
        )
    return True


def _chunks(rows: Iterable[Any], size: int) -> Iterator[list[Any]]:
    it = iter(rows)
    while batch := list(islice(it, size)):
        yield batch


def post_transfers(
    conn: Connection,
    kind: str,
    business_date: str,
    rows: Iterable[tuple[str, str, str, int]],
    now: datetime,
    chunk: int = 50_000,
) -> int:
    """Post many two-leg transfers ``(idem_key, debit_account, credit_account,
    amount_fen)`` set-wise (DOMAIN §6: the day's benefit credits). Keys posted before are
    skipped, and a key repeated in ``rows`` is posted once, its first row winning. The
    rows are staged in a temporary table (COPY on PostgreSQL, executemany on SQLite) a
    ``chunk`` at a time; transactions, entries and the cached balances are then written
    by a few statements. A customer account whose balance would end below zero (the
    call's transfers netted per account), an unknown customer account or a malformed row
    raises :class:`LedgerError`, and the caller's rollback keeps nothing of the call.
    Returns how many transfers were posted."""
    _check_header("-", kind, business_date)
    pg = conn.dialect.name == "postgresql"
    tag = uuid.uuid4().hex[:12]
    stage, new, posted, delta = (f"ledger_{n}_{tag}" for n in ("stage", "new", "posted", "delta"))
    big = "BIGINT" if pg else "INTEGER"
    if pg:
        # the sorts and hashes over a day's rows stay in memory (this transaction only)
        conn.execute(text("SET LOCAL work_mem = '256MB'"))
    conn.execute(
        text(
            f"CREATE TEMPORARY TABLE {stage} (seq {big} NOT NULL, idem_key VARCHAR(80) NOT NULL, "
            "debit VARCHAR(40) NOT NULL, credit VARCHAR(40) NOT NULL, amount_fen BIGINT NOT NULL)"
        )
    )
    internal: set[str] = set()
    seq = 0
    raw = conn.connection.driver_connection
    assert raw is not None
    for batch in _chunks(rows, chunk):
        staged = []
        for idem_key, debit, credit, amount in batch:
            if not isinstance(idem_key, str) or not 0 < len(idem_key) <= _IDEM_MAX:
                raise LedgerError(f"an idempotency key is 1 to {_IDEM_MAX} characters")
            _check_account(debit)
            _check_account(credit)
            if debit == credit:
                raise LedgerError(f"a transfer from an account to itself: {_shown(debit)}")
            if _check_amount(amount) < 0:
                raise LedgerError(f"a transfer's amount is positive, not {amount!r}")
            for account in (debit, credit):
                if not _is_customer(account):
                    internal.add(account)
            seq += 1
            staged.append((seq, idem_key, debit, credit, amount))
        if pg:
            with (
                raw.cursor() as cur,
                cur.copy(
                    f"COPY {stage} (seq, idem_key, debit, credit, amount_fen) FROM STDIN"
                ) as copy,
            ):
                for row in staged:
                    copy.write_row(row)
        else:
            raw.executemany(f"INSERT INTO temp.{stage} VALUES (?, ?, ?, ?, ?)", staged)
    if seq == 0:
        conn.execute(text(f"DROP TABLE {stage}"))
        return 0
    if pg:
        conn.execute(text(f"ANALYZE {stage}"))

    conn.execute(
        text(
            f"CREATE TEMPORARY TABLE {new} AS SELECT seq, idem_key, debit, credit, amount_fen "
            f"FROM (SELECT s.*, ROW_NUMBER() OVER (PARTITION BY idem_key ORDER BY seq) AS nth "
            f"FROM {stage} s) firsts WHERE nth = 1 AND NOT EXISTS "
            "(SELECT 1 FROM ledger_txn t WHERE t.idem_key = firsts.idem_key)"
        )
    )
    if pg:
        conn.execute(text(f"ANALYZE {new}"))
    conn.execute(text(f"CREATE TEMPORARY TABLE {posted} (txn_id {big}, idem_key VARCHAR(80))"))
    params = {"kind": kind, "d": business_date, "now": now}
    insert_txns = (
        "INSERT INTO ledger_txn (idem_key, kind, business_date, created_at) "
        f"SELECT idem_key, :kind, :d, :now FROM {new} WHERE true ORDER BY seq "
        "ON CONFLICT (idem_key) DO NOTHING"
    )
    if pg:
        # only the keys this transaction inserted: another may post some at the same time
        conn.execute(
            text(
                f"WITH ins AS ({insert_txns} RETURNING id, idem_key) "
                f"INSERT INTO {posted} (txn_id, idem_key) SELECT id, idem_key FROM ins"
            ),
            params,
        )
        conn.execute(text(f"ANALYZE {posted}"))
    else:
        # SQLite serialises writers: what `new` read is still true when this writes
        conn.execute(text(insert_txns), params)
        conn.execute(
            text(
                f"INSERT INTO {posted} (txn_id, idem_key) SELECT t.id, n.idem_key "
                f"FROM {new} n JOIN ledger_txn t ON t.idem_key = n.idem_key"
            )
        )
    count = int(conn.scalar(text(f"SELECT COUNT(*) FROM {posted}")) or 0)
    if count == 0:
        for name in (posted, new, stage):
            conn.execute(text(f"DROP TABLE {name}"))
        return 0

    conn.execute(
        text(
            f"CREATE TEMPORARY TABLE {delta} AS SELECT account, SUM(amount_fen) AS amount_fen "
            f"FROM (SELECT n.debit AS account, -n.amount_fen AS amount_fen FROM {posted} p "
            f"JOIN {new} n ON n.idem_key = p.idem_key UNION ALL "
            f"SELECT n.credit, n.amount_fen FROM {posted} p JOIN {new} n ON n.idem_key = p.idem_key"
            ") legs GROUP BY account"
        )
    )
    if pg:
        conn.execute(text(f"ANALYZE {delta}"))
    used = conn.scalars(
        text(f"SELECT account FROM {delta} WHERE account IN :codes").bindparams(
            bindparam("codes", expanding=True)
        ),
        {"codes": sorted(internal) or [""]},
    )
    _ensure_internal(conn, list(used))
    internal_codes = "SELECT code FROM ledger_account"
    unknown = conn.scalars(
        text(
            f"SELECT d.account FROM {delta} d WHERE d.account NOT IN ({internal_codes}) "
            "AND NOT EXISTS (SELECT 1 FROM account a WHERE a.pan = d.account) LIMIT 1"
        )
    ).first()
    if unknown is not None:
        raise LedgerError(f"no such account: {masked_pan(unknown)}")
    if pg:
        conn.execute(
            text(
                f"SELECT a.pan FROM account a JOIN {delta} d ON d.account = a.pan "
                "WHERE d.amount_fen < 0 ORDER BY a.pan FOR UPDATE OF a"
            )
        )
    short = conn.scalars(
        text(
            f"SELECT a.pan FROM account a JOIN {delta} d ON d.account = a.pan "
            "WHERE a.balance_fen + d.amount_fen < 0 ORDER BY a.pan LIMIT 1"
        )
    ).first()
    if short is not None:
        raise LedgerError(f"insufficient balance: {masked_pan(short)}")

    conn.execute(
        text(
            "INSERT INTO ledger_entry (txn_id, account, amount_fen) "
            "SELECT txn_id, account, amount_fen FROM ("
            f"SELECT p.txn_id, n.debit AS account, -n.amount_fen AS amount_fen, 0 AS side "
            f"FROM {posted} p JOIN {new} n ON n.idem_key = p.idem_key UNION ALL "
            f"SELECT p.txn_id, n.credit, n.amount_fen, 1 FROM {posted} p "
            f"JOIN {new} n ON n.idem_key = p.idem_key) legs ORDER BY txn_id, side"
        )
    )
    for table, key in (("account", "pan"), ("ledger_account", "code")):
        conn.execute(
            text(
                f"UPDATE {table} SET balance_fen = {table}.balance_fen + d.amount_fen "
                f"FROM {delta} d WHERE {table}.{key} = d.account"
            )
        )
    for name in (delta, posted, new, stage):
        conn.execute(text(f"DROP TABLE {name}"))
    return count


def balance(conn: Connection, account: str) -> int:
    """The account's balance from its entries (not the cache); 0 for one without any."""
    found = conn.scalar(
        text("SELECT COALESCE(SUM(amount_fen), 0) FROM ledger_entry WHERE account = :a"),
        {"a": account},
    )
    return int(found or 0)


def entries(conn: Connection, account: str, limit: int = 20) -> list[EntryView]:
    """The account's latest ``limit`` entries, newest first."""
    found = conn.execute(
        text(
            "SELECT t.id, t.idem_key, t.kind, t.business_date, e.amount_fen, t.created_at "
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
    mismatches = sum(
        int(
            conn.scalar(
                text(
                    f"SELECT COUNT(*) FROM {table} x LEFT JOIN ({derived}) d "
                    f"ON d.account = x.{key} WHERE x.balance_fen <> COALESCE(d.s, 0)"
                )
            )
            or 0
        )
        for table, key in (("account", "pan"), ("ledger_account", "code"))
    )
    return LedgerCheck(int(unbalanced or 0), int(negative or 0), mismatches)


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
    "SETTLEMENT",
    "EntryView",
    "LedgerCheck",
    "LedgerError",
    "Leg",
    "balance",
    "check",
    "clearing",
    "due_to_partner",
    "entries",
    "fen_of",
    "masked_pan",
    "post",
    "post_transfers",
    "returns",
    "settlement",
    "yuan",
]
