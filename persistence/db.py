"""Engine, sessions and bulk loading for SQLite (embedded default) and PostgreSQL."""

from __future__ import annotations

import io
import re
import sqlite3
import tempfile
import uuid
from collections.abc import Iterator, Mapping, Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

import psycopg
import pyarrow as pa
import pyarrow.csv as pacsv
from sqlalchemy import Connection, Engine, TextClause, bindparam, create_engine, event, text
from sqlalchemy import exc as sa_exc

MIGRATIONS = Path(__file__).resolve().parent / "migrations"


def make_engine(url: str) -> Engine:
    """The database engine. A statement's parameters never appear in its error message
    (``hide_parameters``): they hold names, ID numbers and PANs, and errors are logged."""
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"timeout": 60}, hide_parameters=True)

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.close()

        return engine
    return create_engine(url, pool_pre_ping=True, hide_parameters=True)


@lru_cache(maxsize=8)
def engine_for(url: str) -> Engine:
    return make_engine(url)


def upgrade(url: str, revision: str = "head") -> None:
    """Bring the database to ``revision`` with Alembic."""
    from alembic import command
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    command.upgrade(cfg, revision)


def downgrade(url: str, revision: str = "base") -> None:
    from alembic import command
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    command.downgrade(cfg, revision)


def is_postgres(conn: Connection) -> bool:
    return conn.dialect.name == "postgresql"


def keyed(conn: Connection, sql: str, *names: str) -> TextClause:
    """``sql`` whose ``IN :name`` (or ``NOT IN :name``) lists take a Python list: on
    PostgreSQL one array parameter (``= ANY``, ``<> ALL``), so a statement of thousands
    of keys is parsed and planned as one value, not as thousands of placeholders; on
    SQLite an expanding list."""
    if is_postgres(conn):
        for name in names:
            sql = re.sub(rf"\bNOT IN :{name}\b", f"<> ALL(:{name})", sql)
            sql = re.sub(rf"\bIN :{name}\b", f"= ANY(:{name})", sql)
        return text(sql)
    return text(sql).bindparams(*(bindparam(name, expanding=True) for name in names))


def insert_many(
    conn: Connection,
    table: str,
    rows: Sequence[Mapping[str, Any]],
    *,
    ignore_conflicts: bool = False,
) -> None:
    """Insert ``rows`` (dicts with the same keys, in the order given) into ``table``: on
    PostgreSQL one COPY (through a temporary table and ``INSERT … ON CONFLICT DO NOTHING``
    when ``ignore_conflicts``), on SQLite executemany (``INSERT OR IGNORE``)."""
    if not rows:
        return
    columns = list(rows[0])
    names = ", ".join(columns)
    if not is_postgres(conn):
        verb = "INSERT OR IGNORE" if ignore_conflicts else "INSERT"
        values = ", ".join(f":{c}" for c in columns)
        conn.execute(text(f"{verb} INTO {table} ({names}) VALUES ({values})"), list(rows))
        return
    data = pa.Table.from_pylist(list(rows))
    if not ignore_conflicts:
        bulk_load(conn, table, data, columns)
        return
    stage = f"{table}_rows_{uuid.uuid4().hex[:12]}"
    conn.execute(
        text(f"CREATE TEMPORARY TABLE {stage} AS SELECT {names} FROM {table} WITH NO DATA")
    )
    conn.execute(text(f"ALTER TABLE {stage} ADD COLUMN row_no BIGINT"))
    data = data.append_column("row_no", pa.array(range(len(rows)), pa.int64()))
    bulk_load(conn, stage, data, [*columns, "row_no"])
    conn.execute(
        text(
            f"INSERT INTO {table} ({names}) SELECT {names} FROM {stage} ORDER BY row_no "
            "ON CONFLICT DO NOTHING"
        )
    )
    conn.execute(text(f"DROP TABLE {stage}"))


def sqlite_write_lock(conn: Connection) -> None:
    """SQLite: take the database's write lock now, held until this transaction ends, so
    what the transaction reads before it writes cannot be changed by another writer in
    between (a transaction reads under a shared lock until its first write). A write that
    changes nothing; PostgreSQL locks rows instead: nothing here."""
    if not is_postgres(conn):
        conn.execute(text("UPDATE ledger_account SET code = code WHERE 1 = 0"))


def bulk_load(conn: Connection, table: str, table_data: pa.Table, columns: Sequence[str]) -> None:
    """Append rows to ``table``: COPY on PostgreSQL, executemany on SQLite."""
    if table_data.num_rows == 0:
        return
    data = table_data.select(list(columns))
    if is_postgres(conn):
        buf = io.BytesIO()
        pacsv.write_csv(
            data, buf, pacsv.WriteOptions(include_header=False, quoting_style="all_valid")
        )
        raw = conn.connection.driver_connection
        assert raw is not None
        cols = ", ".join(columns)
        with (
            raw.cursor() as cur,
            cur.copy(f"COPY {table} ({cols}) FROM STDIN WITH (FORMAT csv)") as copy,
        ):
            copy.write(buf.getvalue())
    else:
        placeholders = ", ".join("?" for _ in columns)
        rows = list(zip(*(data.column(c).to_pylist() for c in columns), strict=True))
        raw = conn.connection.driver_connection
        assert raw is not None
        raw.executemany(f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({placeholders})", rows)


def _sqlite_batches(
    conn: Connection,
    sql: str,
    names: list[str],
    columns: Mapping[str, pa.DataType],
    rows_per_batch: int,
) -> Iterator[pa.Table]:
    """SQLite: the result is kept in a temporary table (rows numbered in the query's
    order) and read a batch at a time, each batch fetched whole, so no statement is left
    open while the caller writes between batches (SQLite aborts a read whose table is
    changed or dropped under it)."""
    temp = f"batches_{uuid.uuid4().hex}"
    conn.execute(text(f"CREATE TEMP TABLE {temp} AS {sql}"))
    try:
        last = 0
        while True:
            rows = conn.execute(
                text(f"SELECT rowid, * FROM temp.{temp} WHERE rowid > :r ORDER BY rowid LIMIT :n"),
                {"r": last, "n": rows_per_batch},
            ).all()
            if not rows:
                return
            last = rows[-1][0]
            yield pa.table(
                {n: pa.array([r[i + 1] for r in rows], columns[n]) for i, n in enumerate(names)}
            )
    finally:
        conn.execute(text(f"DROP TABLE IF EXISTS temp.{temp}"))


def query_batches(
    conn: Connection,
    stmt: TextClause,
    params: Mapping[str, Any],
    columns: Mapping[str, pa.DataType],
    rows_per_batch: int,
) -> Iterator[pa.Table]:
    """A query's rows as Arrow tables of ``rows_per_batch`` rows (the last may hold fewer),
    its columns named and typed by ``columns`` in select order.

    PostgreSQL: the result is copied out (``COPY … TO STDOUT``, the parameters rendered
    as literals by the dialect) to a temporary file and parsed by Arrow's CSV reader, so
    neither the driver nor Python touches a value and memory holds one batch. SQLite:
    see :func:`_sqlite_batches`."""
    names = list(columns)
    sql = str(
        stmt.bindparams(**params).compile(
            dialect=conn.dialect, compile_kwargs={"literal_binds": True}
        )
    )
    if not is_postgres(conn):
        yield from _sqlite_batches(conn, sql, names, columns, rows_per_batch)
        return
    raw = conn.connection.driver_connection
    assert raw is not None
    with tempfile.TemporaryFile() as spool:
        with raw.cursor() as cur, cur.copy(f"COPY ({sql}) TO STDOUT WITH (FORMAT csv)") as copy:
            for block in copy:
                spool.write(block)
        if not spool.tell():
            return
        spool.seek(0)
        # Arrow's reader keeps a few dozen blocks in flight: blocks of 1 MiB hold it near
        # 80 MiB whatever the result's size (4 MiB blocks held 200 MiB on 1,000,000 rows).
        reader = pacsv.open_csv(
            spool,
            read_options=pacsv.ReadOptions(
                column_names=names, block_size=1 << 20, use_threads=False
            ),
            convert_options=pacsv.ConvertOptions(
                column_types=dict(columns),
                # NULL is COPY's unquoted empty field, and nothing else: a value that
                # reads "N/A", "NULL" or "nan" (Arrow's other null markers) is that text
                null_values=[""],
                strings_can_be_null=True,
                quoted_strings_can_be_null=False,
            ),
        )
        held: list[pa.RecordBatch] = []
        count = 0
        for batch in reader:
            held.append(batch)
            count += batch.num_rows
            while count >= rows_per_batch:
                table = pa.Table.from_batches(held).combine_chunks()
                yield table.slice(0, rows_per_batch)
                rest = table.slice(rows_per_batch)
                held = rest.to_batches()
                count = rest.num_rows
        if count:
            yield pa.Table.from_batches(held, schema=reader.schema).combine_chunks()


#: a database that cannot be reached or used right now, as SQLAlchemy or a driver used
#: directly (COPY, executemany) raises it: the run is retried, no file is blamed
_OUTAGES: tuple[type[BaseException], ...] = (
    sa_exc.OperationalError,
    sa_exc.InterfaceError,
    psycopg.OperationalError,
    psycopg.InterfaceError,
    sqlite3.OperationalError,
    sqlite3.InterfaceError,
)


def is_outage(exc: BaseException) -> bool:
    return isinstance(exc, _OUTAGES)


def describe_database_error(exc: BaseException) -> str | None:
    """A database error for the log without a value: its type, SQLSTATE and statement
    (the database's own message and detail may quote values, such as a key that already
    exists or the row a COPY stopped at). ``None`` for any other error."""
    if isinstance(exc, sa_exc.DBAPIError):
        state = getattr(exc.orig, "sqlstate", None) or "-"
        statement = " ".join(str(exc.statement or "").split())[:300]
        return f"{type(exc).__name__} {type(exc.orig).__name__} (SQLSTATE {state}): {statement}"
    if isinstance(exc, psycopg.Error | sqlite3.Error):
        state = getattr(exc, "sqlstate", None) or "-"
        return f"{type(exc).__module__}.{type(exc).__name__} (SQLSTATE {state})"
    return None
