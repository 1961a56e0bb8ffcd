"""One run at a time per counterparty connection.

Two runs taking the same pickup at once (a zombie task and its retry, a manual run
beside the scheduled one) would land, answer and archive the same files. Each run holds
a lock named after the connection while it takes files: on PostgreSQL a session advisory
lock, released by the server when the holder's connection ends (a killed worker never
keeps it); on SQLite (one machine) a lease row that expires after ``lease``. A run that
does not get the lock leaves the files to the holder and does nothing.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

from sqlalchemy import Connection, Engine, text

log = logging.getLogger("sscard.exchange")


def _key(name: str) -> int:
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)


def one_at_a_time(conn: Connection, name: str) -> None:
    """Wait until no other transaction holds ``name``, then hold it until this one ends:
    a transaction-level advisory lock on PostgreSQL; on SQLite (one writer) the
    database's write lock, taken now."""
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _key(name)})
    else:
        from persistence.db import sqlite_write_lock  # pyarrow with it: not for `sscard status`

        sqlite_write_lock(conn)


@contextlib.contextmanager
def exclusive(
    engine: Engine, name: str, *, lease: timedelta = timedelta(hours=1)
) -> Iterator[bool]:
    """``True`` inside when this run holds the lock ``name``, ``False`` when another does."""
    if engine.dialect.name == "postgresql":
        with engine.connect() as conn:
            got = bool(conn.scalar(text("SELECT pg_try_advisory_lock(:k)"), {"k": _key(name)}))
            conn.commit()
            try:
                yield got
            finally:
                if got:
                    conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": _key(name)})
                    conn.commit()
        return
    now = datetime.now(UTC)
    token = f"{now.timestamp()}-{id(now)}"
    with engine.begin() as conn:
        conn.execute(
            text("DELETE FROM run_lock WHERE name = :n AND expires_at < :now"),
            {"n": name, "now": now},
        )
        got = (
            conn.execute(
                text(
                    "INSERT INTO run_lock (name, holder, expires_at) VALUES (:n, :h, :e) "
                    "ON CONFLICT (name) DO NOTHING"
                ),
                {"n": name, "h": token, "e": now + lease},
            ).rowcount
            == 1
        )
    try:
        yield got
    finally:
        if got:
            with engine.begin() as conn:
                conn.execute(
                    text("DELETE FROM run_lock WHERE name = :n AND holder = :h"),
                    {"n": name, "h": token},
                )
