"""``persistence.db``'s statement helpers give the same rows on both databases:
``keyed`` (a list of keys: one array parameter on PostgreSQL, an expanding list on
SQLite) and ``insert_many`` (one COPY on PostgreSQL, executemany on SQLite)."""

from __future__ import annotations

import psycopg
import pytest
from sqlalchemy import Engine, text
from sqlalchemy.exc import IntegrityError

from persistence.db import insert_many, keyed


def test_in_and_not_in_lists_select_the_same_rows_whatever_their_length(engine: Engine) -> None:
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO ledger_account (code, kind, owner, balance_fen) VALUES (:c, :k, '', 0)"
            ),
            [
                {"c": "CLEARING:R440100", "k": "clearing"},
                {"c": "RETURNS:R440100", "k": "returns"},
                {"c": "DUE:B002", "k": "due_to_partner"},
            ],
        )
        stmt = keyed(
            conn,
            "SELECT code FROM ledger_account WHERE code IN :keys AND kind NOT IN :kinds "
            "ORDER BY code",
            "keys",
            "kinds",
        )
        many = [f"X{i}" for i in range(6_000)] + ["DUE:B002", "RETURNS:R440100"]
        found = conn.scalars(stmt, {"keys": many, "kinds": ["returns"]}).all()
        assert found == ["DUE:B002"]
        assert conn.scalars(stmt, {"keys": [], "kinds": ["returns"]}).all() == []
        assert conn.scalars(stmt, {"keys": many, "kinds": []}).all() == [
            "DUE:B002",
            "RETURNS:R440100",
        ]


def test_insert_many_keeps_values_and_order_and_can_skip_conflicts(engine: Engine) -> None:
    rows = [{"channel": "B001", "key_id": 1, "nonce": f"N{i:03d}"} for i in range(300)] + [
        {"channel": "B001", "key_id": 2, "nonce": 'quote" comma, bar|'}
    ]
    with engine.begin() as conn:
        insert_many(conn, "pin_nonce", rows)
        # repeats skipped, the new row kept
        insert_many(
            conn,
            "pin_nonce",
            [*rows[:5], {"channel": "B001", "key_id": 3, "nonce": ""}],
            ignore_conflicts=True,
        )
        found = conn.execute(
            text("SELECT key_id, nonce FROM pin_nonce ORDER BY key_id, nonce")
        ).all()
    assert [tuple(r) for r in found] == [
        *((1, f"N{i:03d}") for i in range(300)),
        (2, 'quote" comma, bar|'),
        (3, ""),
    ]
    # a repeat not asked to be skipped fails (raised by the driver under COPY)
    with pytest.raises((IntegrityError, psycopg.errors.UniqueViolation)):
        with engine.begin() as conn:
            insert_many(conn, "pin_nonce", rows[:1])
