"""SQL of the issuance steps after intake: PAN serials, accounts, partner requests,
personalisation records, production results and the card returns to the bureau."""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from typing import Any

import pyarrow as pa
from sqlalchemy import Connection, text

from persistence.db import bulk_load, is_postgres
from schemas.states import ApplicationStatus


def take_serials_upto(conn: Connection, prefix: str, count: int, capacity: int) -> tuple[int, int]:
    """Reserve up to ``count`` consecutive serials of ``prefix`` among ``1..capacity``;
    returns the first and how many were taken (0 when the prefix is used up). The
    counter's row is locked first (``FOR UPDATE`` on PostgreSQL, the write lock on
    SQLite), so concurrent runs never share a serial."""
    conn.execute(
        text(
            "INSERT INTO pan_counter (prefix, next_serial) VALUES (:p, 1) ON CONFLICT (prefix) DO NOTHING"
        ),
        {"p": prefix},
    )
    lock = " FOR UPDATE" if conn.dialect.name == "postgresql" else ""
    first = int(
        conn.execute(
            text(f"SELECT next_serial FROM pan_counter WHERE prefix = :p{lock}"), {"p": prefix}
        ).scalar_one()
    )
    taken = max(0, min(count, capacity - first + 1))
    if taken:
        conn.execute(
            text("UPDATE pan_counter SET next_serial = :n WHERE prefix = :p"),
            {"p": prefix, "n": first + taken},
        )
    return first, taken


def bulk_update(conn: Connection, table: str, key: str, data: pa.Table) -> None:
    """Set columns of ``table`` from ``data`` (its first column is the key) in one statement."""
    if data.num_rows == 0:
        return
    cols = [c for c in data.column_names if c != key]

    def sql_type(name: str) -> str:
        kind = data.schema.field(name).type
        if pa.types.is_integer(kind):
            return "BIGINT"
        return "BOOLEAN" if pa.types.is_boolean(kind) else "TEXT"

    ddl = ", ".join(f"{c} {sql_type(c)}" for c in data.column_names)
    if is_postgres(conn):
        temp = f"tmp_{table}_update"
        conn.execute(text(f"CREATE TEMP TABLE {temp} ({ddl}) ON COMMIT DROP"))
    else:
        # SQLite cannot drop a table while a statement of the connection is still being
        # read (a caller going through a query in batches): the staging table, one per
        # set of columns, is kept for the connection and emptied instead
        temp = f"tmp_{table}_{zlib.crc32(ddl.encode()):08x}"
        conn.execute(text(f"CREATE TEMP TABLE IF NOT EXISTS {temp} ({ddl})"))
        conn.execute(text(f"DELETE FROM temp.{temp}"))
    bulk_load(conn, temp, data, data.column_names)
    sets = ", ".join(f"{c} = t.{c}" for c in cols)
    conn.execute(text(f"UPDATE {table} SET {sets} FROM {temp} t WHERE {table}.{key} = t.{key}"))
    conn.execute(
        text(f"DROP TABLE {temp}") if is_postgres(conn) else text(f"DELETE FROM temp.{temp}")
    )


def set_status(
    conn: Connection, application_ids: pa.Array | pa.ChunkedArray, status: ApplicationStatus
) -> None:
    """Move the given applications to ``status``: one statement over an array of ids on
    PostgreSQL, through :func:`bulk_update` on SQLite."""
    if not len(application_ids):
        return
    if is_postgres(conn):
        conn.execute(
            text("UPDATE application_state SET status = :s WHERE application_id = ANY(:ids)"),
            {"s": status, "ids": application_ids.to_pylist()},
        )
    else:
        bulk_update(
            conn,
            "application_state",
            "application_id",
            pa.table(
                {
                    "application_id": application_ids,
                    "status": pa.array([status] * len(application_ids), pa.string()),
                }
            ),
        )


def rows(conn: Connection, sql: str, **params: Any) -> Sequence[Any]:
    return conn.execute(text(sql), params).all()


def execute(conn: Connection, sql: str, **params: Any) -> int:
    return int(conn.execute(text(sql), params).rowcount or 0)
