"""Issuance benchmark: account opening and PERSO generation for N accepted applications.

    uv run python -m bench.issuance --applications 200000 [--db sqlite|postgres|both]

Setup (not timed): a fresh database holding N accepted ``01`` applications of the hub
(loaded with COPY / executemany) that name photos in one archived APPLY zip of four
valid 358 × 441 JPEGs. Each step then runs in its own process, so its peak RSS is its
own: ``open_hub_accounts`` (PAN serials, accounts, applications updated) and
``dispatch_perso`` (fixed-width PERSO files of 10,000 records with their photo zips,
queued in the outbox). Target (the issuance issue): at least 50,000 records/s per step
on PostgreSQL with 2 cores, memory flat.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import zipfile
from datetime import UTC, datetime
from pathlib import Path
from time import perf_counter
from typing import Any

import pyarrow as pa

from bench.intake import DEFAULT_PG_URL, DEFAULT_WORKDIR, ENV_PG_URL, ROOT, fresh_database
from bench.memory import peak_mib

DAY = "20261122"
TARGET_RECORDS_PER_S = 50_000
#: peak RSS growth from the smallest to the largest run that still counts as flat
FLAT = 1.25
NOW = datetime(2026, 11, 22, 2, 0, tzinfo=UTC)


def setup(url: str, n: int, workdir: Path) -> None:
    """N accepted applications and the archived photo zip they name."""
    from persistence.db import bulk_load, make_engine
    from sandbox.people import make_people, photo_cache
    from schemas.states import ApplicationStatus

    photos = photo_cache(4, 0, fast=True)
    source = workdir / "APPLY_R440100_B001_20261122_001.txt"
    workdir.mkdir(parents=True, exist_ok=True)
    source.write_bytes(b"")
    with zipfile.ZipFile(source.with_suffix(".zip"), "w", zipfile.ZIP_STORED) as zf:
        for i, data in enumerate(photos):
            zf.writestr(f"p{i}.jpg", data)
    people = make_people(min(n, 5000), seed=1)
    engine = make_engine(url)
    with engine.begin() as conn:
        from sqlalchemy import text

        conn.execute(
            text(
                "INSERT INTO received_file (id, conn_id, name, sha256, size, outcome, accepted_count,"
                " rejected_count, local_path, first_seen_at) VALUES (1, 'bench', :n, :s, 0, 'accepted',"
                " :c, 0, :p, :t)"
            ),
            {"n": source.name, "s": "0" * 64, "c": n, "p": source.name, "t": NOW},
        )
        for start in range(0, n, 50_000):
            ids = range(start + 1, min(n, start + 50_000) + 1)
            ps = [people[i % len(people)] for i in ids]
            table = pa.table(
                {
                    "id": pa.array(list(ids), pa.int64()),
                    "bureau": ["R440100"] * len(ids),
                    "app_no": [f"B{i:012d}" for i in ids],
                    "file_id": pa.array([1] * len(ids), pa.int64()),
                    "seq": pa.array(list(ids), pa.int64()),
                    "app_type": ["01"] * len(ids),
                    "id_type": ["01"] * len(ids),
                    "id_no": [p.id_no for p in ps],
                    "id_valid_to": [p.id_valid_to for p in ps],
                    "name": [p.name for p in ps],
                    "gender": [p.gender for p in ps],
                    "ethnicity": [p.ethnicity for p in ps],
                    "birth_date": [p.birth_date for p in ps],
                    "nationality": ["CHN"] * len(ids),
                    "occupation": [p.occupation for p in ps],
                    "mobile": [p.mobile for p in ps],
                    "region_code": [p.region_code for p in ps],
                    "bank_code": ["B001"] * len(ids),
                    "card_no": [f"C{i:08d}" for i in ids],
                    "old_card_no": [""] * len(ids),
                    "keep_account": [""] * len(ids),
                    "replace_reason": [""] * len(ids),
                    "photo": [f"p{i % 4}.jpg" for i in ids],
                    "address": [p.address for p in ps],
                    "business_date": [DAY] * len(ids),
                    "content_sha": [f"{i:040x}" for i in ids],
                }
            )
            bulk_load(conn, "application", table, table.column_names)
            state = pa.table(
                {
                    "application_id": table.column("id"),
                    "bureau": table.column("bureau"),
                    "status": [ApplicationStatus.ACCEPTED.value] * len(ids),
                }
            )
            bulk_load(conn, "application_state", state, state.column_names)
    engine.dispose()


def measure(spec: dict[str, Any]) -> dict[str, Any]:
    from banking.pan import PanRange
    from exchange.storage import Storage
    from issuance.accounts import open_hub_accounts
    from issuance.personalisation import dispatch_perso
    from persistence.db import make_engine

    engine = make_engine(spec["url"])
    with engine.connect():
        pass
    start = perf_counter()
    if spec["step"] == "accounts":
        done = open_hub_accounts(engine, "B001", PanRange("6217881"), DAY).new_accounts
    else:
        names = dispatch_perso(
            engine,
            hub="B001",
            factory="F01",
            conn_id="bench_f01",
            drop="drop",
            business_date=DAY,
            now=NOW,
            bureaus=("R440100",),
            work_dir=Path(spec["workdir"]) / "work",
            store=Storage(spec["workdir"]),
        )
        seconds = perf_counter() - start
        from sqlalchemy import text

        with engine.connect() as conn:
            done = int(conn.execute(text("SELECT COUNT(*) FROM perso_record")).scalar_one())
        print(f"{len(names)} PERSO file(s)", file=sys.stderr)
        return _result(spec, done, seconds)
    seconds = perf_counter() - start
    return _result(spec, done, seconds)


def _result(spec: dict[str, Any], done: int, seconds: float) -> dict[str, Any]:
    return {
        "step": spec["step"],
        "db": spec["db"],
        "n": spec["n"],
        "done": done,
        "seconds": seconds,
        "peak_mib": peak_mib(),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.issuance", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--applications", type=int, nargs="+", default=[200_000])
    parser.add_argument("--db", choices=("sqlite", "postgres", "both"), default="both")
    parser.add_argument(
        "--pg-url",
        default=os.environ.get(ENV_PG_URL, DEFAULT_PG_URL).replace(
            "sscard_bench", "sscard_bench_issuance"
        ),
    )
    parser.add_argument("--measure", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.measure:
        print(json.dumps(measure(json.loads(args.measure))), flush=True)
        return 0

    results = []
    for n in args.applications:
        for db in ["sqlite", "postgres"] if args.db == "both" else [args.db]:
            run_dir = DEFAULT_WORKDIR / "issuance" / str(n) / db
            run_dir.mkdir(parents=True, exist_ok=True)
            url = fresh_database(db, run_dir, args.pg_url)
            print(f"setting up {n:,} accepted applications on {db} …", flush=True)
            setup(url, n, run_dir / "archive")
            for step in ("accounts", "perso"):
                spec = {
                    "step": step,
                    "db": db,
                    "n": n,
                    "url": url,
                    "workdir": str(run_dir / "archive"),
                }
                child = subprocess.run(
                    [sys.executable, "-m", "bench.issuance", "--measure", json.dumps(spec)],
                    cwd=ROOT,
                    stdout=subprocess.PIPE,
                    text=True,
                    check=True,
                )
                results.append(json.loads(child.stdout.strip().splitlines()[-1]))
    print(
        f"{'step':<10} {'database':<10} {'records':>10} {'seconds':>8} {'records/s':>10} {'peak MiB':>9}"
    )
    ok = True
    for r in results:
        rate = r["n"] / r["seconds"] if r["seconds"] else 0.0
        print(
            f"{r['step']:<10} {r['db']:<10} {r['n']:>10,} {r['seconds']:>8.2f} {rate:>10,.0f} {r['peak_mib']:>9.0f}"
        )
        ok &= r["done"] == r["n"]
    print("all records processed" if ok else "SOME RECORDS WERE NOT PROCESSED")
    print()
    for r in results:
        if r["db"] == "postgres":
            rate = r["n"] / r["seconds"] if r["seconds"] else 0.0
            verdict = "met   " if rate >= TARGET_RECORDS_PER_S else "MISSED"
            print(
                f"{verdict} {r['step']} postgres {r['n']:,}: {rate:,.0f} records/s "
                f"(target ≥ {TARGET_RECORDS_PER_S:,})"
            )
    for step in ("accounts", "perso"):
        for db in ("sqlite", "postgres"):
            runs = sorted(
                (r for r in results if r["step"] == step and r["db"] == db), key=lambda r: r["n"]
            )
            if len(runs) >= 2:
                small, large = runs[0], runs[-1]
                growth = large["peak_mib"] / small["peak_mib"]
                verdict = "met   " if growth < FLAT else "MISSED"
                print(
                    f"{verdict} {step} {db}: peak RSS {small['peak_mib']:,.0f} MiB at {small['n']:,}, "
                    f"{large['peak_mib']:,.0f} MiB at {large['n']:,} (×{growth:.2f}; flat means < ×{FLAT})"
                )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
