"""Answer paths benchmark: taking a PERSORSP and an ACCTOPENRSP of N records, against the floor.

    uv run python -m bench.answers --records 200000 [1000000 ...] [--db sqlite|postgres|both]

Setup (not timed): a fresh database (a new SQLite file, or the ``public`` schema of a
dedicated PostgreSQL database, ``sscard_bench_answers`` by default, dropped, recreated and
migrated) holding 2N applications made by ``INSERT … SELECT`` over a generated series:
applications 1…N in a PERSO to factory F01 (``perso_sent``, one ``perso_record`` each),
N+1…2N sent to partner bank B002 (``partner_sent``, one ``partner_request`` each); then
``ANALYZE`` and a checkpoint on PostgreSQL. The answer files are written once per size under
``var/bench/answers/<N>/`` (reused while the generator version matches): a PERSORSP of N
records (every 50th card failed ``M001``, every 100th a card never sent) and an ACCTOPENRSP
of N lines (every 50th refused ``E199``, every 100th an unknown req_no, PANs passing Luhn).

Measurement, each in a fresh process with its own peak RSS:

- ``PERSORSP`` / ``ACCTOPENRSP``: the file opened, its reader built over the handle (chunks
  of 50,000 lines) and the handler run, in one transaction, committed: what the exchange does
  for a landed file once its control file is checked. A run fails unless the counts are the
  planned ones.
- ``floor`` of the same file, in the same run: the bare cost of the same records going in:
  the bytes read in blocks of 50,000 lines, decoded from GB18030 (every byte; the fixed-width
  reader itself skips the decoding of a chunk that is all ASCII), parsed into Arrow columns
  (pyarrow's CSV reader for the delimited file, byte offsets for the fixed-width one) and
  loaded with the same bulk load as the stage (COPY on PostgreSQL, executemany on SQLite)
  into an unindexed temporary table, in one transaction, committed.

Printed: seconds, records/s, peak RSS, the floor and the ratio to it per file, size and
database; then peak RSS from the smallest to the largest size (flat means < ×1.25).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from time import perf_counter
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from bench.intake import DEFAULT_PG_URL, DEFAULT_WORKDIR, ENV_PG_URL, ROOT, fresh_database
from bench.memory import peak_mib

GENERATOR_VERSION = 1
DAY = "20261123"
SENT_DAY = "20261122"
CHUNK_LINES = 50_000
#: peak RSS growth from the smallest to the largest run that still counts as flat
FLAT = 1.25
FILES = ("PERSORSP", "ACCTOPENRSP")
PERSORSP_NAME = f"PERSORSP_F01_B001_{DAY}_001.txt"
ACCTOPENRSP_NAME = f"ACCTOPENRSP_B002_B001_{DAY}_001.txt"
#: the received_file ids of the APPLY the applications came from and of the two answers
APPLY_ID, PERSORSP_ID, ACCTOPENRSP_ID = 1, 2, 3


def expected(kind: str, n: int) -> dict[str, int]:
    """The counts a correct hub gives for the generated file of ``n`` records."""
    unknown = n // 100
    refused = (n + 25) // 50
    done = n - unknown - refused
    if kind == "PERSORSP":
        return {"applied": done + refused, "made": done, "failed": refused, "problems": unknown}
    return {"applied": done + refused, "opened": done, "refused": refused, "problems": unknown}


# --------------------------------------------------------------------------- inputs


def _persorsp_rows(n: int) -> Any:
    for i in range(1, n + 1):
        card = f"X{i:08d}" if i % 100 == 0 else f"C{i:08d}"
        pan = f"6217881{i:012d}"
        if i % 50 == 25:
            yield [card, pan, "01", "M001", "", "", "", DAY]
        else:
            code = f"440103D156000005{i:016X}"
            yield [card, pan, "00", "", code, "3B6F00", f"BOX{i // 500:07d}", DAY]


def _acctopenrsp_rows(n: int) -> Any:
    from banking.pan import PanRange, make_pans

    partner = PanRange("6229990")
    for start in range(1, n + 1, CHUNK_LINES):
        count = min(CHUNK_LINES, n + 1 - start)
        for i, pan in zip(
            range(start, start + count), make_pans(partner, start, count), strict=True
        ):
            application = n + i
            req_no = f"AO9{application:011d}" if i % 100 == 0 else f"AO{application:012d}"
            if i % 50 == 25:
                yield [req_no, "01", "E199", "拒绝开户", "", ""]
            else:
                yield [req_no, "00", "", "", pan, "01"]


def ensure_inputs(n: int, workdir: Path) -> dict[str, Path]:
    """The PERSORSP and ACCTOPENRSP of ``n`` records, written once (streaming)."""
    from schemas.codec import Header, write_delimited, write_fixed
    from schemas.layouts import ACCTOPENRSP, PERSORSP

    directory = workdir / str(n)
    paths = {"PERSORSP": directory / PERSORSP_NAME, "ACCTOPENRSP": directory / ACCTOPENRSP_NAME}
    meta = directory / "meta.json"
    want = {"version": GENERATOR_VERSION, "records": n}
    if meta.exists() and json.loads(meta.read_text()) == want:
        if all(p.exists() for p in paths.values()):
            print(f"inputs for {n:,} records: cached in {directory}", flush=True)
            return paths
    directory.mkdir(parents=True, exist_ok=True)
    meta.unlink(missing_ok=True)
    start = perf_counter()
    with paths["PERSORSP"].open("wb") as out:
        header = Header("PERSORSP", "F01", "B001", f"F01{DAY}001", DAY, n)
        write_fixed(out, PERSORSP, header, _persorsp_rows(n))
    with paths["ACCTOPENRSP"].open("wb") as out:
        header = Header("ACCTOPENRSP", "B002", "B001", f"B002{DAY}001", DAY, n)
        write_delimited(out, ACCTOPENRSP, header, _acctopenrsp_rows(n))
    meta.write_text(json.dumps(want))
    size = sum(p.stat().st_size for p in paths.values()) / 2**20
    print(
        f"inputs for {n:,} records: written in {perf_counter() - start:.1f} s "
        f"({size:,.0f} MiB) in {directory}",
        flush=True,
    )
    return paths


# --------------------------------------------------------------------------- database


def _series(postgres: bool) -> tuple[str, str]:
    """A WITH prefix and a FROM item giving ``g`` = :lo … :hi."""
    if postgres:
        return "", "generate_series(CAST(:lo AS integer), CAST(:hi AS integer)) AS s(g)"
    return "WITH RECURSIVE s(g) AS (SELECT :lo UNION ALL SELECT g + 1 FROM s WHERE g < :hi) ", "s"


def _pad(postgres: bool, width: int) -> str:
    return f"lpad(g::text, {width}, '0')" if postgres else f"printf('%0{width}d', g)"


def setup(url: str, n: int) -> None:
    """2N applications, N in a PERSO, N sent to a partner, set-wise inside the database."""
    from sqlalchemy import text

    from persistence.db import make_engine

    engine = make_engine(url)
    postgres = url.startswith("postgresql")
    with_, series = _series(postgres)
    pad12, pad8 = _pad(postgres, 12), _pad(postgres, 8)
    statements = (
        f"""{with_}INSERT INTO application (id, bureau, app_no, file_id, seq, app_type, id_type,
               id_no, id_valid_to, name, gender, ethnicity, birth_date, nationality, occupation,
               mobile, region_code, bank_code, card_no, old_card_no, keep_account,
               replace_reason, photo, address, business_date, content_sha)
            SELECT g, 'R440100', 'B' || {pad12}, {APPLY_ID}, g, '01', '01', '440103' || {pad12},
                   '20361122', '张三丰', '1', '01', '19800101', 'CHN', '', '13900000000', '440103',
                   CASE WHEN g <= CAST(:n AS integer) THEN 'B001' ELSE 'B002' END, 'C' || {pad8}, '', '', '',
                   'p.jpg', '', '{SENT_DAY}', 'bench'
            FROM {series}""",
        f"""{with_}INSERT INTO application_state (application_id, bureau, status, pan, pan_seq)
            SELECT g, 'R440100', CASE WHEN g <= CAST(:n AS integer) THEN 'perso_sent' ELSE 'partner_sent' END,
                   CASE WHEN g <= CAST(:n AS integer) THEN '6217881' || {pad12} END,
                   CASE WHEN g <= CAST(:n AS integer) THEN '01' END
            FROM {series}""",
        f"""{with_}INSERT INTO perso_record (application_id, card_no, pan, factory, perso_name,
                                      seq, issue_date, expiry_date)
            SELECT g, 'C' || {pad8}, '6217881' || {pad12}, 'F01',
                   'PERSO_B001_F01_{SENT_DAY}_001.txt', g, '{SENT_DAY}', '20361122'
            FROM {series}""",
        f"""{with_}INSERT INTO partner_request (req_no, application_id, bank_code, request_name,
                                         sent_date)
            SELECT 'AO' || {pad12}, g, 'B002', 'ACCTOPEN_B001_B002_{SENT_DAY}_001.txt',
                   '{SENT_DAY}'
            FROM {series}""",
    )
    #: the applications each statement makes rows for
    spans = ((1, 2 * n), (1, 2 * n), (1, n), (n + 1, 2 * n))
    files = (
        (APPLY_ID, f"APPLY_R440100_B001_{SENT_DAY}_001.txt"),
        (PERSORSP_ID, PERSORSP_NAME),
        (ACCTOPENRSP_ID, ACCTOPENRSP_NAME),
    )
    with engine.begin() as conn:
        for file_id, name in files:
            conn.execute(
                text(
                    "INSERT INTO received_file (id, conn_id, name, sha256, size, outcome, "
                    "accepted_count, rejected_count, first_seen_at) VALUES (:id, 'bench', :name, "
                    ":sha, 0, 'accepted', 0, 0, CURRENT_TIMESTAMP)"
                ),
                {"id": file_id, "name": name, "sha": "0" * 64},
            )
        for statement, (lo, hi) in zip(statements, spans, strict=True):
            conn.execute(text(statement), {"lo": lo, "hi": hi, "n": n})
    if postgres:
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("ANALYZE"))
            conn.execute(text("CHECKPOINT"))
    engine.dispose()


# --------------------------------------------------------------------------- one measurement (child)


def _peak_mib() -> float:
    return peak_mib()


def _take(spec: dict[str, Any]) -> dict[str, Any]:
    """Reader over the open file and handler, in one transaction."""
    from types import SimpleNamespace

    from issuance.accounts import apply_account_answers
    from issuance.production import apply_production_results
    from persistence.db import make_engine
    from schemas.codec import DelimitedReader, FixedReader
    from schemas.layouts import ACCTOPENRSP, PERSORSP

    path = Path(spec["path"])
    n = spec["n"]
    engine = make_engine(spec["url"])
    with engine.connect():
        pass
    landed: Any = SimpleNamespace(name=path.name)
    start = perf_counter()
    with path.open("rb") as fh, engine.begin() as conn:
        if spec["file"] == "PERSORSP":
            reader = FixedReader(fh, PERSORSP, CHUNK_LINES, control_count=n)
            counts = apply_production_results(conn, reader, landed, PERSORSP_ID, DAY)
        else:
            delimited = DelimitedReader(fh, ACCTOPENRSP, "GB18030", CHUNK_LINES, n)
            counts = apply_account_answers(conn, delimited, landed, ACCTOPENRSP_ID, DAY)
    seconds = perf_counter() - start
    engine.dispose()
    want = expected(spec["file"], n)
    problems = [] if counts == want else [f"counts {counts}, planned {want}"]
    return {"seconds": seconds, "peak_mib": _peak_mib(), "problems": problems}


def _blocks(fh: io.BufferedReader, size: int) -> Any:
    """Blocks of whole lines of about ``size`` bytes."""
    rest = b""
    while block := fh.read(size):
        data = rest + block
        cut = data.rfind(b"\n") + 1
        rest = data[cut:]
        if cut:
            yield data[:cut]
    if rest:
        yield rest


def _fixed_columns(raw: bytes, first: bool, record: int) -> pa.Table:
    """The detail records of ``raw`` (whole records with CRLF) cut at byte offsets."""
    from schemas.layouts import PERSORSP

    matrix = np.frombuffer(raw, dtype=np.uint8).reshape(-1, record + 2)
    matrix = matrix[(1 if first else 0) :]
    if len(matrix) and matrix[-1, 0] == ord("T"):
        matrix = matrix[:-1]
    rows = len(matrix)
    columns = {}
    pos = 9
    for f in PERSORSP.fields:
        width = f.width or 0
        data = np.ascontiguousarray(matrix[:, pos : pos + width]).tobytes()
        offsets = np.arange(0, (rows + 1) * width, width, dtype=np.int32)
        values = pa.StringArray.from_buffers(rows, pa.py_buffer(offsets), pa.py_buffer(data))
        columns[f.name] = pc.utf8_rtrim(values, characters=" ")
        pos += width
    seq = pa.StringArray.from_buffers(
        rows,
        pa.py_buffer(np.arange(0, (rows + 1) * 8, 8, dtype=np.int32)),
        pa.py_buffer(np.ascontiguousarray(matrix[:, 1:9]).tobytes()),
    )
    return pa.table({"seq": seq, **columns})


def _delimited_columns(text: str, names: Sequence[str]) -> pa.Table:
    """The detail lines of ``text`` parsed by pyarrow's CSV reader, split at ``|``."""
    if text.startswith("H|"):
        text = text[text.index("\n") + 1 :]
    last = text.rfind("\n", 0, len(text) - 1) + 1
    if text.startswith("T|", last):
        text = text[:last]
    table = pacsv.read_csv(
        io.BytesIO(text.encode("utf-8")),
        read_options=pacsv.ReadOptions(column_names=["type", "seq", *names]),
        parse_options=pacsv.ParseOptions(delimiter="|", quote_char=False),
        convert_options=pacsv.ConvertOptions(
            column_types={name: pa.string() for name in ["type", "seq", *names]},
            strings_can_be_null=False,
            quoted_strings_can_be_null=False,
        ),
    )
    return table.drop_columns(["type"])


def _floor(spec: dict[str, Any]) -> dict[str, Any]:
    """Decode, parse and bulk-load the same records into an unindexed table."""
    from sqlalchemy import text

    from persistence.db import bulk_load, is_postgres, make_engine
    from schemas.layouts import ACCTOPENRSP, PERSORSP

    path = Path(spec["path"])
    layout = PERSORSP if spec["file"] == "PERSORSP" else ACCTOPENRSP
    names = ["seq", *layout.names]
    record = (layout.record_length or 0) if layout.framing == "fixed" else 0
    engine = make_engine(spec["url"])
    with engine.connect():
        pass
    rows = 0
    start = perf_counter()
    with path.open("rb") as fh, engine.begin() as conn:
        ddl = ", ".join(f"{name} TEXT" for name in names)
        suffix = " ON COMMIT DROP" if is_postgres(conn) else ""
        conn.execute(text(f"CREATE TEMP TABLE answers_floor ({ddl}){suffix}"))
        size = CHUNK_LINES * (record + 2 if record else 64)
        for i, raw in enumerate(_blocks(fh, size)):
            decoded = raw.decode("gb18030")
            if record:
                table = _fixed_columns(raw, i == 0, record)
            else:
                table = _delimited_columns(decoded, layout.names)
            bulk_load(conn, "answers_floor", table, names)
            rows += table.num_rows
        if not is_postgres(conn):
            conn.execute(text("DROP TABLE temp.answers_floor"))
    seconds = perf_counter() - start
    engine.dispose()
    problems = [] if rows == spec["n"] else [f"floor loaded {rows} records, not {spec['n']}"]
    return {"seconds": seconds, "peak_mib": _peak_mib(), "problems": problems}


def measure(spec: dict[str, Any]) -> dict[str, Any]:
    import logging

    # the records the generator planned as problems are counted, not logged
    logging.getLogger("sscard").setLevel(logging.ERROR)
    result = _floor(spec) if spec["step"] == "floor" else _take(spec)
    return {**spec, **result}


# --------------------------------------------------------------------------- the driver


def _child(spec: dict[str, Any]) -> dict[str, Any]:
    child = subprocess.run(
        [sys.executable, "-m", "bench.answers", "--measure", json.dumps(spec)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
        check=False,
    )
    if child.returncode != 0:
        raise SystemExit(f"{spec['step']} {spec['file']} on {spec['db']} failed")
    result: dict[str, Any] = json.loads(child.stdout.strip().splitlines()[-1])
    return result


def print_table(results: list[dict[str, Any]]) -> None:
    head = (
        f"{'file':<12} {'database':<9} {'records':>10} {'seconds':>8} {'records/s':>10} "
        f"{'peak MiB':>9} {'floor s':>8} {'× floor':>8} {'floor MiB':>9}  check"
    )
    print()
    print(head)
    print("-" * len(head))
    for take in (r for r in results if r["step"] == "take"):
        floor = next(
            r
            for r in results
            if r["step"] == "floor"
            and (r["file"], r["db"], r["n"]) == (take["file"], take["db"], take["n"])
        )
        problems = take["problems"] + floor["problems"]
        print(
            f"{take['file']:<12} {take['db']:<9} {take['n']:>10,} {take['seconds']:>8.2f} "
            f"{take['n'] / take['seconds']:>10,.0f} {take['peak_mib']:>9,.0f} "
            f"{floor['seconds']:>8.2f} {take['seconds'] / floor['seconds']:>8.1f} "
            f"{floor['peak_mib']:>9,.0f}  {'ok' if not problems else 'FAILED'}"
        )
        for problem in problems:
            print(f"    {problem}")


def print_flatness(results: list[dict[str, Any]]) -> bool:
    flat = True
    print()
    for file in FILES:
        for db in ("sqlite", "postgres"):
            runs = sorted(
                (r for r in results if (r["step"], r["file"], r["db"]) == ("take", file, db)),
                key=lambda r: r["n"],
            )
            if len(runs) >= 2:
                small, large = runs[0], runs[-1]
                growth = large["peak_mib"] / small["peak_mib"]
                ok = growth < FLAT
                flat &= ok
                print(
                    f"{'met   ' if ok else 'MISSED'} {file} {db}: peak RSS {small['peak_mib']:,.0f} MiB "
                    f"at {small['n']:,}, {large['peak_mib']:,.0f} MiB at {large['n']:,} "
                    f"(×{growth:.2f}; flat means < ×{FLAT})"
                )
    return flat


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.answers", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--records", type=int, nargs="+", default=[200_000])
    parser.add_argument("--db", choices=("sqlite", "postgres", "both"), default="both")
    parser.add_argument(
        "--pg-url",
        default=os.environ.get(ENV_PG_URL, DEFAULT_PG_URL).replace(
            "sscard_bench", "sscard_bench_answers"
        ),
        help="a PostgreSQL database the benchmark may wipe",
    )
    parser.add_argument("--workdir", type=Path, default=DEFAULT_WORKDIR / "answers")
    parser.add_argument("--measure", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.measure:
        print(json.dumps(measure(json.loads(args.measure))), flush=True)
        return 0

    results: list[dict[str, Any]] = []
    for n in args.records:
        paths = ensure_inputs(n, args.workdir)
        for db in ["sqlite", "postgres"] if args.db == "both" else [args.db]:
            run_dir = args.workdir / str(n) / db
            run_dir.mkdir(parents=True, exist_ok=True)
            url = fresh_database(db, run_dir, args.pg_url)
            start = perf_counter()
            setup(url, n)
            print(
                f"{db}: {2 * n:,} applications set up in {perf_counter() - start:.1f} s",
                flush=True,
            )
            for file in FILES:
                for step in ("floor", "take"):
                    spec = {"step": step, "file": file, "db": db, "n": n, "url": url}
                    results.append(_child({**spec, "path": str(paths[file])}))
                    r = results[-1]
                    print(
                        f"  {file} {step}: {r['seconds']:.2f} s, peak {r['peak_mib']:,.0f} MiB",
                        flush=True,
                    )
    print_table(results)
    flat = print_flatness(results)
    failed = any(r["problems"] for r in results)
    return 1 if failed or not flat else 0


if __name__ == "__main__":
    sys.exit(main())
