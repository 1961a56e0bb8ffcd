"""How database errors are told apart and logged (no field value ever reaches a log)."""

from __future__ import annotations

import sqlite3

import psycopg
import pytest

from persistence.db import describe_database_error, is_outage


@pytest.mark.parametrize(
    ("error", "outage"),
    [
        (sqlite3.OperationalError("database is locked"), True),
        (psycopg.OperationalError("connection lost"), True),
        (sqlite3.IntegrityError("UNIQUE constraint failed: card.card_no"), False),
        (psycopg.errors.UniqueViolation("Key (card_no)=(A12345678) already exists"), False),
        (ValueError("a defect"), False),
    ],
)
def test_a_database_that_cannot_be_used_is_an_outage_and_nothing_else_is(
    error: Exception, outage: bool
) -> None:
    assert is_outage(error) is outage


def test_a_drivers_error_is_described_without_its_message() -> None:
    error = psycopg.errors.UniqueViolation("DETAIL: Key (id_no)=(44222419850831189X) exists")

    described = describe_database_error(error)

    assert described is not None and "UniqueViolation" in described
    assert "44222419850831189X" not in described
    assert describe_database_error(ValueError("x")) is None
