"""The database floor of APPLY intake on PostgreSQL: what storing accepted lines costs
when nothing else has to be done.

    uv run python -m bench.pg_floor [--rows 200000] [--pg-url URL]

A fresh migrated database (``sscard_bench_floor`` by default, wiped). Rows shaped like
accepted APPLY lines (a 20-character ``app_no`` in file order; ID and card numbers unique
and in random order, as a bureau's batch has them; the other fields at typical widths)
are made inside PostgreSQL by ``generate_series`` into an unlogged source table, so no
client work is timed. Each step is then an ``INSERT … SELECT`` of every row, committed,
best of three (the target emptied between tries):

- ``heap only``: a table shaped like ``application`` without any index;
- ``application``: the real table, with its primary key, its unique keys (bureau and
  app_no, card_no) and its lookup indexes (id_no, old cards being replaced);
- ``application_state``: one narrow row per application;
- ``application_state + FK``: the same with a foreign key to ``application``, the per-row
  check that intake no longer makes (docs/decisions.md, decision 31).

Intake has to do at least the ``application`` and ``application_state`` steps for every
accepted line; their sum is the fastest it could store a file on this PostgreSQL, before
reading, checking or answering a single line.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from pathlib import Path
from time import perf_counter

from sqlalchemy import Connection, create_engine, text

from bench.intake import ENV_PG_URL, fresh_database

DEFAULT_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/sscard_bench_floor"
TRIES = 3

_SOURCE = """
CREATE UNLOGGED TABLE floor_src AS
SELECT g AS id, 'R440100' AS bureau, 'R4401002026112200' || lpad(g::text, 7, '0') AS app_no,
       1 AS file_id, g AS seq, '01' AS app_type, '01' AS id_type,
       '440103' || lpad(id_rank::text, 12, '0') AS id_no, '20361122' AS id_valid_to,
       '张三丰' AS name, '1' AS gender, '01' AS ethnicity, '19800101' AS birth_date,
       'CHN' AS nationality, '' AS occupation, '13900000000' AS mobile, '440103' AS region_code,
       'B001' AS bank_code, 'A' || lpad(card_rank::text, 8, '0') AS card_no,
       '' AS old_card_no, '' AS keep_account, '' AS replace_reason,
       'R4401002026112200' || lpad(g::text, 7, '0') || '.jpg' AS photo,
       '广东省广州市越秀区东风中路五百号' AS address, '20261122' AS business_date,
       md5(g::text) || '00000000' AS content_sha
FROM (SELECT g, row_number() OVER (ORDER BY md5('i' || g)) AS id_rank,
             row_number() OVER (ORDER BY md5('c' || g)) AS card_rank
      FROM generate_series(1, :rows) AS g) AS s
ORDER BY g
"""

_COLUMNS = (
    "id, bureau, app_no, file_id, seq, app_type, id_type, id_no, id_valid_to, name, gender, "
    "ethnicity, birth_date, nationality, occupation, mobile, region_code, bank_code, card_no, "
    "old_card_no, keep_account, replace_reason, photo, address, business_date, content_sha"
)


def _best(conn: Connection, target: str, insert: str) -> float:
    best = float("inf")
    for _ in range(TRIES):
        conn.execute(text(f"TRUNCATE {target}"))
        conn.commit()
        start = perf_counter()
        conn.execute(text(insert))
        conn.commit()
        best = min(best, perf_counter() - start)
    return best


def measure(url: str, rows: int, report: Callable[[str, float], None]) -> dict[str, float]:
    engine = create_engine(url)
    seconds: dict[str, float] = {}
    with engine.connect() as conn:
        conn.execute(text("SET jit = off"))
        conn.execute(text(_SOURCE), {"rows": rows})
        conn.execute(text("ANALYZE floor_src"))
        conn.execute(text("CREATE TABLE floor_heap (LIKE application INCLUDING DEFAULTS)"))
        conn.execute(text("CREATE TABLE floor_state_fk (LIKE application_state INCLUDING ALL)"))
        conn.execute(
            text(
                "ALTER TABLE floor_state_fk ADD FOREIGN KEY (application_id) "
                "REFERENCES application (id)"
            )
        )
        conn.commit()
        steps = (
            ("heap only", "floor_heap", "INSERT INTO floor_heap SELECT * FROM floor_src"),
            (
                "application",
                "application CASCADE",
                f"INSERT INTO application ({_COLUMNS}) SELECT {_COLUMNS} FROM floor_src",
            ),
            (
                "application_state",
                "application_state",
                "INSERT INTO application_state (application_id, bureau, status) "
                "SELECT id, bureau, 'accepted' FROM application",
            ),
            (
                "application_state + FK",
                "floor_state_fk",
                "INSERT INTO floor_state_fk (application_id, bureau, status) "
                "SELECT id, bureau, 'accepted' FROM application",
            ),
        )
        for label, target, insert in steps:
            seconds[label] = _best(conn, target, insert)
            report(label, seconds[label])
    engine.dispose()
    return seconds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.pg_floor", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument(
        "--pg-url",
        default=os.environ.get(f"{ENV_PG_URL}_FLOOR", DEFAULT_URL),
        help=f"a PostgreSQL database the benchmark may wipe (default {DEFAULT_URL})",
    )
    args = parser.parse_args(argv)
    url = fresh_database("postgres", Path(), args.pg_url)
    rows = args.rows

    def report(label: str, seconds: float) -> None:
        print(f"{label:<24} {seconds:6.2f} s  {rows / seconds:>10,.0f} rows/s", flush=True)

    print(f"storing {rows:,} accepted lines on PostgreSQL, best of {TRIES}:")
    seconds = measure(url, rows, report)
    floor = seconds["application"] + seconds["application_state"]
    print(
        f"{'floor (both tables)':<24} {floor:6.2f} s  {rows / floor:>10,.0f} rows/s"
        f"  (the 50,000 records/s target allows {rows / 50_000:.2f} s for everything)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
