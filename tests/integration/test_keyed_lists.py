"""``persistence.db.keyed``: a list of keys in a statement, the same rows on both
databases (one array parameter on PostgreSQL, an expanding list on SQLite)."""

from __future__ import annotations

from sqlalchemy import Engine, text

from persistence.db import keyed


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
