"""Properties of the ledger (DOMAIN §6) under any sequence of postings and transfers
(balanced or not, overdrawing or not, keys repeated): every transaction sums to zero, no
customer balance is negative, the hub's cached balances equal the entries, a key is posted once, and a
refused posting leaves no trace. Checked against a model on a migrated SQLite file."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Connection, Engine, text

from banking import ledger
from banking.ledger import LedgerError, Leg
from persistence.db import make_engine, upgrade
from tests.unit.conftest import examples

NOW = datetime(2026, 11, 22, tzinfo=UTC)
CUSTOMERS = ["6222020000000000019", "6222020000000000027", "6222020000000000035"]
INTERNAL = ["SETTLEMENT", "CLEARING:R440100", "DUE:B002"]
ACCOUNTS = CUSTOMERS + INTERNAL
KEYS = [f"k{n}" for n in range(6)]


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    url = f"sqlite:///{Path(tmp_path_factory.mktemp('ledger')) / 'hub.db'}"
    upgrade(url)
    engine = make_engine(url)
    yield engine
    engine.dispose()


def reset(engine: Engine) -> None:
    with engine.begin() as conn:
        for table in ("ledger_entry", "ledger_txn", "ledger_account", "account"):
            conn.execute(text(f"DELETE FROM {table}"))
        for pan in CUSTOMERS:
            conn.execute(
                text(
                    "INSERT INTO account (pan, bank_code, id_no, status, loss, pin_locked, "
                    "debit_blocked, credit_blocked) VALUES (:p, 'B001', "
                    "'440101199001011234', 'active', 'none', 0, 0, 0)"
                ),
                {"p": pan},
            )


amounts = st.integers(-300, 300)
legs = st.lists(st.tuples(st.sampled_from(ACCOUNTS), amounts), min_size=1, max_size=4)
postings = st.tuples(st.just("post"), st.sampled_from(KEYS), legs, st.booleans())
transfers = st.tuples(
    st.just("transfers"),
    st.lists(
        st.tuples(
            st.sampled_from(KEYS),
            st.sampled_from(ACCOUNTS),
            st.sampled_from(ACCOUNTS),
            st.integers(1, 300),
        ).filter(lambda r: r[1] != r[2]),
        max_size=6,
    ),
)
operations = st.lists(st.one_of(postings, transfers), max_size=12)


def footprint(conn: Connection) -> tuple[object, ...]:
    return tuple(
        tuple(conn.execute(text(sql)).all())
        for sql in (
            "SELECT id, idem_key FROM ledger_txn ORDER BY id",
            "SELECT COUNT(*) FROM ledger_entry",
            "SELECT account, SUM(amount_fen) FROM ledger_entry GROUP BY account ORDER BY account",
            "SELECT code, balance_fen FROM ledger_account ORDER BY code",
        )
    )


@settings(
    max_examples=examples(60),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(operations)
def test_any_sequence_of_postings_keeps_the_ledger_sound(
    hub: Engine, ops: list[tuple[object, ...]]
) -> None:
    reset(hub)
    model: dict[str, int] = dict.fromkeys(ACCOUNTS, 0)
    posted: set[str] = set()
    for op in ops:
        with hub.connect() as conn:
            before = footprint(conn)
        if op[0] == "post":
            _, key, raw, balanced = op
            assert isinstance(key, str) and isinstance(raw, list)
            if balanced:
                raw = [*raw, (raw[0][0], -sum(a for _, a in raw))]
            the_legs = [Leg(a, f) for a, f in raw]
            net: dict[str, int] = {}
            for leg in the_legs:
                net[leg.account] = net.get(leg.account, 0) + leg.amount_fen
            if any(leg.amount_fen == 0 for leg in the_legs) or sum(net.values()) != 0:
                expect: object = LedgerError
            elif key in posted:
                expect = False
            elif any(a in CUSTOMERS and model[a] + d < 0 for a, d in net.items()):
                expect = LedgerError
            else:
                expect = True
            try:
                with hub.begin() as conn:
                    got: object = ledger.post(conn, key, "test", "20261122", the_legs, NOW)
            except LedgerError:
                got = LedgerError
            assert got == expect
            if expect is True:
                posted.add(key)
                for account, d in net.items():
                    model[account] += d
        else:
            rows = op[1]
            assert isinstance(rows, list)
            fresh: dict[str, tuple[str, str, int]] = {}
            for key, debit, credit, fen in rows:
                if key not in posted and key not in fresh:
                    fresh[key] = (debit, credit, fen)
            net = {}
            for debit, credit, fen in fresh.values():
                net[debit] = net.get(debit, 0) - fen
                net[credit] = net.get(credit, 0) + fen
            refused = any(a in CUSTOMERS and model[a] + d < 0 for a, d in net.items())
            try:
                with hub.begin() as conn:
                    count = ledger.post_transfers(conn, "test", "20261122", rows, NOW, chunk=2)
            except LedgerError:
                count = -1
            assert count == (-1 if refused else len(fresh))
            if not refused:
                posted.update(fresh)
                for account, d in net.items():
                    model[account] += d
        with hub.connect() as conn:
            after = footprint(conn)
            if after[0] == before[0]:
                assert after == before  # nothing posted: nothing else changed either
            assert ledger.check(conn).ok()
            assert {a: ledger.balance(conn, a) for a in ACCOUNTS} == model
            assert ledger.balances(conn, CUSTOMERS) == {a: model[a] for a in CUSTOMERS}
            # a single posting's key is its transaction's; a set posting's, its entries'
            keys = list(ledger.posted_keys(conn))
            assert sorted(keys) == sorted(posted)
            assert all(model[a] >= 0 for a in CUSTOMERS)
