"""Card servicing benchmark: a CHANNEL file of A1 financial activations and a STATUS file
of N lines each, through ``apply_channel`` and ``apply_status``, against the floor.

    uv run python -m bench.servicing --lines 100000 [--status-lines M] [--db postgres|sqlite] [--json]

Setup (not timed): a fresh database (a new SQLite file, or the ``public`` schema of a
dedicated PostgreSQL database, ``sscard_bench_servicing`` by default, dropped, recreated
and migrated) holding 2N made cards, loaded set-wise (pyarrow tables through
``persistence.db.bulk_load``: COPY on PostgreSQL) with their applications, application
states and hub accounts (``preopened``): cards 1…N sealed-then-enabled (status ``1``) for
CHANNEL, cards N+1…2N for STATUS (every 50th still sealed); then ``ANALYZE`` and a
checkpoint on PostgreSQL. The files are written under ``var/bench/servicing/<N>/`` (GB18030,
CRLF, :func:`schemas.codec.write_delimited`), fresh each run as the PIN blocks carry
random nonces:

- ``CHANNEL_C01_B001_…``: N ``A1`` lines, each with a strong random PIN sealed by
  :func:`banking.pin.seal_pin_block` under zone key 1 of ``C01``, ``op_time`` the run's
  "now" in Asia/Shanghai, so every block is inside ``pin_window``: every line is ``00``.
- ``STATUS_R440100_B001_…``: N lines, mostly ``01`` temporary losses, some ``02``, ``03`` on
  cards lost earlier in the file, ``11`` on the sealed cards and a few unknown cards
  (``E119``); the answer of every line is planned.

Measurement, each in a fresh process with its own peak RSS:

- ``CHANNEL`` / ``STATUS``: in one ``engine.begin()`` transaction, the file registered
  (``persistence.registry.record_file``), opened, read by a ``DelimitedReader`` and applied,
  committed: time from open to commit. A run fails unless ``service_line`` holds exactly the
  planned answers (CHANNEL: all ``00``, every account active with a verification value).
- PIN work, in the CHANNEL process after the step: one wall-clock pass over the same lines
  of :func:`banking.pin.open_pin_block` + :func:`banking.pin.weak_reason` +
  :func:`banking.pin.verification_value`, printed as a share of the CHANNEL step's time.
- ``floor`` of each file, in the same run: the bytes read in blocks of 50,000 lines, decoded
  from GB18030, parsed into Arrow columns by pyarrow's CSV reader (``|``) and bulk-loaded
  (COPY on PostgreSQL) into an unindexed temporary table, committed (as ``bench.answers``).

Printed: seconds, records/s, peak RSS, floor and ratio per file; the PIN share; where the
APPLY intake ratio comes from (``make bench``: ``bench.intake --floor``).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
from collections import Counter
from datetime import datetime, timedelta
from pathlib import Path
from time import perf_counter
from typing import Any
from zoneinfo import ZoneInfo

from bench.intake import DEFAULT_PG_URL, DEFAULT_WORKDIR, ENV_PG_URL, ROOT, fresh_database
from bench.memory import peak_mib

HUB = "B001"
BUREAU = "R440100"
CHANNEL_SENDER = "C01"
DAY = "20261206"
SHANGHAI = ZoneInfo("Asia/Shanghai")
#: the run's "now": the hub found both files' ``.ok`` at this instant
NOW = datetime(2026, 12, 6, 10, 0, tzinfo=SHANGHAI)
OP_TIME = f"{NOW:%Y%m%d%H%M%S}"
WINDOW = timedelta(minutes=10)
ZONE_KEY = bytes(range(32))
PVK = bytes(range(32, 64))
ZONE_KEY_ID = 1
PVK_ID = "PVK1"
BIRTH_DATE = "19800101"
NAME = "张三丰"
CHUNK_LINES = 50_000
APPLY_ID = 1
CHANNEL_NAME = f"CHANNEL_{CHANNEL_SENDER}_{HUB}_{DAY}_001.txt"
STATUS_NAME = f"STATUS_{BUREAU}_{HUB}_{DAY}_001.txt"
FILES = ("CHANNEL", "STATUS")
#: STATUS mix, per line: unknown card, 11 on a sealed card, 03 on a card lost earlier,
#: 02, the rest 01
SEALED_EVERY = 50
UNKNOWN_SHARE = 0.01
UNBLOCK_SHARE = 0.10
FORMAL_SHARE = 0.07


def card_no_of(i: int) -> str:
    return f"C{i:08d}"


def id_no_of(i: int) -> str:
    return f"440103{BIRTH_DATE}{i % 1000:03d}X"


def pans(n: int) -> list[str]:
    """The PANs of cards 1…n (Luhn-valid, 19 digits)."""
    from banking.pan import PanRange, make_pans

    return make_pans(PanRange("6217881"), 1, n)


# --------------------------------------------------------------------------- database


def setup(url: str, n: int, m: int) -> None:
    """N + M made cards with applications, states and preopened hub accounts, bulk-loaded:
    1…N for CHANNEL, N+1…N+M for STATUS."""
    import pyarrow as pa
    from sqlalchemy import text

    from persistence import registry
    from persistence.db import bulk_load, is_postgres, make_engine

    total = n + m
    ids = list(range(1, total + 1))
    card_nos = [card_no_of(i) for i in ids]
    id_nos = [id_no_of(i) for i in ids]
    pan_list = pans(total)

    def const(value: object, type_: Any = None) -> pa.Array:
        return pa.array([value] * total, type=type_ or pa.string())

    # cards N+1…N+M, every SEALED_EVERY-th is still sealed (the STATUS file enables them)
    statuses = ["0" if i > n and (i - n) % SEALED_EVERY == 0 else "1" for i in ids]
    application = pa.table(
        {
            "id": pa.array(ids, pa.int64()),
            "bureau": const(BUREAU),
            "app_no": pa.array([f"A{i:012d}" for i in ids]),
            "file_id": const(APPLY_ID, pa.int64()),
            "seq": pa.array(ids, pa.int64()),
            "app_type": const("01"),
            "id_type": const("01"),
            "id_no": pa.array(id_nos),
            "id_valid_to": const("20361206"),
            "name": const(NAME),
            "gender": const("1"),
            "ethnicity": const("01"),
            "birth_date": const(BIRTH_DATE),
            "nationality": const("CHN"),
            "occupation": const(""),
            "mobile": const("13900000000"),
            "region_code": const("440103"),
            "bank_code": const(HUB),
            "card_no": pa.array(card_nos),
            "old_card_no": const(""),
            "keep_account": const(""),
            "replace_reason": const(""),
            "photo": const("p.jpg"),
            "address": const(""),
            "business_date": const("20261101"),
            "content_sha": const("bench"),
        }
    )
    state = pa.table(
        {
            "application_id": pa.array(ids, pa.int64()),
            "bureau": const(BUREAU),
            "status": const("made"),
            "pan": pa.array(pan_list),
            "pan_seq": const("01"),
        }
    )
    card = pa.table(
        {
            "card_no": pa.array(card_nos),
            "application_id": pa.array(ids, pa.int64()),
            "bureau": const(BUREAU),
            "id_type": const("01"),
            "id_no": pa.array(id_nos),
            "name": const(NAME),
            "bank_code": const(HUB),
            "pan": pa.array(pan_list),
            "pan_seq": const("01"),
            "status": pa.array(statuses),
            "issue_date": const("20261201"),
            "expiry_date": const("20361206"),
        }
    )
    account = pa.table(
        {
            "pan": pa.array(pan_list),
            "bank_code": const(HUB),
            "id_no": pa.array(id_nos),
            "status": const("preopened"),
            "loss": const("none"),
            "pin_locked": const(False, pa.bool_()),
            "debit_blocked": const(False, pa.bool_()),
            "credit_blocked": const(False, pa.bool_()),
        }
    )
    engine = make_engine(url)
    with engine.begin() as conn:
        apply_id = registry.record_file(
            conn,
            conn_id="bench",
            name=f"APPLY_{BUREAU}_{HUB}_20261101_001.txt",
            type="APPLY",
            sender=BUREAU,
            receiver=HUB,
            batch_no="SEED",
            business_date="20261101",
            sha256="0" * 64,
            size=0,
            outcome="accepted",
            accepted_count=total,
            rejected_count=0,
            first_seen_at=NOW,
            processed_at=NOW,
        )
        assert apply_id == APPLY_ID
        for table_name, data in (
            ("application", application),
            ("application_state", state),
            ("card", card),
            ("account", account),
        ):
            bulk_load(conn, table_name, data, data.column_names)
        postgres = is_postgres(conn)
    if postgres:
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("ANALYZE"))
            conn.execute(text("CHECKPOINT"))
    engine.dispose()


# --------------------------------------------------------------------------- inputs


def _strong_pin(rng: random.Random, card_no: str, id_no: str) -> str:
    from banking.pin import Pin, weak_reason

    while True:
        digits = f"{rng.randrange(10**6):06d}"
        if weak_reason(Pin(digits), id_no=id_no, card_no=card_no, birth_date=BIRTH_DATE) is None:
            return digits


def channel_rows(n: int, rng: random.Random) -> list[tuple[str, ...]]:
    """N A1 lines on cards 1…N, each with its PIN block."""
    from banking.pin import PinContext, seal_pin_block

    pan_list = pans(n)
    rows: list[tuple[str, ...]] = []
    for i in range(1, n + 1):
        req_no = f"CH{i:010d}"
        card_no, id_no, pan = card_no_of(i), id_no_of(i), pan_list[i - 1]
        ctx = PinContext(req_no, "A1", pan, card_no, OP_TIME, CHANNEL_SENDER)
        block = seal_pin_block(_strong_pin(rng, card_no, id_no), ctx, ZONE_KEY_ID, ZONE_KEY)
        rows.append((req_no, "A1", pan, card_no, id_no, NAME, block, OP_TIME, "440101001", "T0001"))
    return rows


def status_rows(n: int, m: int, rng: random.Random) -> tuple[list[tuple[str, ...]], dict[str, int]]:
    """M lines on cards N+1…N+M and the answers a correct hub gives, as ``result`` or
    ``01:<reason>`` counts."""
    rows: list[tuple[str, ...]] = []
    planned: Counter[str] = Counter()
    lost: list[int] = []  # cards given a 01 earlier in the file, not yet unblocked
    sealed = [i for i in range(n + 1, n + m + 1) if (i - n) % SEALED_EVERY == 0]
    normal = iter(i for i in range(n + 1, n + m + 1) if (i - n) % SEALED_EVERY != 0)
    sealed_left = iter(sealed)
    # spread the sealed cards' 11 lines evenly over the file
    enable_at = {round(k * m / len(sealed)) for k in range(len(sealed))} if sealed else set()
    for seq in range(1, m + 1):
        req_no = f"ST{seq:010d}"
        draw = rng.random()
        card: int | None
        if seq - 1 in enable_at:
            op, card = "11", next(sealed_left)
        elif draw < UNKNOWN_SHARE:
            op, card = "01", None
        elif draw < UNKNOWN_SHARE + UNBLOCK_SHARE and lost:
            op, card = "03", lost.pop(rng.randrange(len(lost)))
        else:
            card = next(normal, None)
            if card is None:  # every normal card used: unblock one lost earlier
                op, card = "03", lost.pop()
            elif draw < UNKNOWN_SHARE + UNBLOCK_SHARE + FORMAL_SHARE:
                op = "02"
            else:
                op = "01"
                lost.append(card)
        if card is None:
            rows.append((req_no, op, f"X{seq:08d}", id_no_of(seq), NAME, OP_TIME, "WINDOW1", ""))
            planned["01:E119"] += 1
        else:
            rows.append(
                (req_no, op, card_no_of(card), id_no_of(card), NAME, OP_TIME, "WINDOW1", "")
            )
            planned["00"] += 1
    return rows, dict(sorted(planned.items()))


def write_inputs(n: int, m: int, directory: Path) -> dict[str, Any]:
    """The CHANNEL of ``n`` lines, the STATUS of ``m`` and the STATUS plan."""
    from schemas.codec import Header, write_delimited
    from schemas.layouts import CHANNEL, STATUS

    shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir(parents=True)
    rng = random.Random(f"bench.servicing|{n}|{m}")
    paths = {"CHANNEL": directory / CHANNEL_NAME, "STATUS": directory / STATUS_NAME}
    start = perf_counter()
    rows = channel_rows(n, rng)
    with paths["CHANNEL"].open("wb") as out:
        header = Header("CHANNEL", CHANNEL_SENDER, HUB, f"CHA{DAY}001", DAY, n)
        write_delimited(out, CHANNEL, header, rows, "GB18030")
    srows, planned = status_rows(n, m, rng)
    with paths["STATUS"].open("wb") as out:
        header = Header("STATUS", BUREAU, HUB, f"STA{DAY}001", DAY, m)
        write_delimited(out, STATUS, header, srows, "GB18030")
    return {
        "paths": {k: str(v) for k, v in paths.items()},
        "planned": {"CHANNEL": {"00": n}, "STATUS": planned},
        "seconds": perf_counter() - start,
    }


# --------------------------------------------------------------------------- one measurement (child)


def _peak_mib() -> float:
    return peak_mib()


def _warm_up() -> float:
    """pandas, which the reader's columns pull in lazily through pyarrow: a cost per
    process, not per line, so it is timed apart (as in ``bench.intake``)."""
    start = perf_counter()
    import pandas  # noqa: F401

    return perf_counter() - start


def _keys() -> Any:
    from banking.keystore import MemoryKeyStore

    return MemoryKeyStore({(CHANNEL_SENDER, ZONE_KEY_ID): ZONE_KEY}, {PVK_ID: PVK}, current=PVK_ID)


def _answers(conn: Any, file_id: int) -> dict[str, int]:
    from sqlalchemy import text

    rows = conn.execute(
        text(
            "SELECT result, reason_code, COUNT(*) AS n FROM service_line WHERE file_id = :f "
            "GROUP BY result, reason_code"
        ),
        {"f": file_id},
    ).all()
    return dict(
        sorted(
            (str(r.result) if r.result != "01" else f"01:{r.reason_code}", int(r.n)) for r in rows
        )
    )


def _take(spec: dict[str, Any]) -> dict[str, Any]:
    """Register, read and apply the file in one transaction, committed; check the answers."""
    from sqlalchemy import text

    from persistence import registry
    from persistence.db import make_engine
    from schemas.codec import DelimitedReader
    from schemas.layouts import CHANNEL, STATUS
    from servicing.requests import Ctx, apply_channel, apply_status

    kind, n = spec["file"], spec["n"]
    path = Path(spec["path"])
    engine = make_engine(spec["url"])
    with engine.connect():
        pass
    keys = _keys()
    warm_up_s = _warm_up()
    sender = CHANNEL_SENDER if kind == "CHANNEL" else BUREAU
    layout = CHANNEL if kind == "CHANNEL" else STATUS
    start = perf_counter()
    with path.open("rb") as fh, engine.begin() as conn:
        file_id = registry.record_file(
            conn,
            conn_id=f"bench_{sender.lower()}",
            name=path.name,
            type=kind,
            sender=sender,
            receiver=HUB,
            batch_no=f"{kind[:3]}{DAY}001",
            business_date=DAY,
            sha256="1" * 64,
            size=path.stat().st_size,
            record_count=n,
            outcome="accepted",
            accepted_count=n,
            rejected_count=0,
            first_seen_at=NOW,
            processed_at=NOW,
        )
        reader = DelimitedReader(fh, layout, "GB18030", CHUNK_LINES, n)
        ctx = Ctx(HUB, sender, DAY, NOW, file_id)
        if kind == "CHANNEL":
            apply_channel(conn, reader, ctx, keys, NOW, WINDOW)
        else:
            apply_status(conn, reader, ctx)
    seconds = perf_counter() - start
    peak = _peak_mib()
    problems: list[str] = []
    with engine.connect() as conn:
        answers = _answers(conn, file_id)
        if answers != spec["planned"]:
            problems.append(f"answers {answers}, planned {spec['planned']}")
        if kind == "CHANNEL":
            active = conn.execute(
                text("SELECT COUNT(*) FROM account WHERE status = 'active'")
            ).scalar_one()
            values = conn.execute(text("SELECT COUNT(*) FROM pin_verification")).scalar_one()
            if (active, values) != (n, n):
                problems.append(f"{active} accounts active, {values} verification values, not {n}")
    engine.dispose()
    result: dict[str, Any] = {
        "seconds": seconds,
        "peak_mib": peak,
        "warm_up_s": warm_up_s,
        "problems": problems,
    }
    if kind == "CHANNEL":
        result["pin_seconds"] = _pin_pass(path, n, keys)
    return result


def _pin_pass(path: Path, n: int, keys: Any) -> float:
    """The bare PIN work of the CHANNEL step over the same lines, wall clock: opening every
    block, the weak-PIN rules and the verification value (the lines are read untimed)."""
    from banking.pin import PinContext, open_pin_block, verification_value, weak_reason
    from schemas.codec import DelimitedReader
    from schemas.layouts import CHANNEL
    from servicing.lines import read_lines

    with path.open("rb") as fh:
        lines = read_lines(DelimitedReader(fh, CHANNEL, "GB18030", CHUNK_LINES, n))
    contexts = [
        (
            PinContext(
                ln.get("req_no"),
                ln.get("op"),
                ln.get("pan"),
                ln.get("card_no"),
                ln.get("op_time"),
                CHANNEL_SENDER,
            ),
            ln.get("pin_block"),
            ln.get("id_no"),
        )
        for ln in lines
    ]
    start = perf_counter()
    for ctx, block, id_no in contexts:
        opened = open_pin_block(block, ctx, keys)
        if weak_reason(
            opened.pin, id_no=id_no, card_no=ctx.card_no, birth_date=BIRTH_DATE, previous=None
        ):
            raise SystemExit("a planned strong PIN was found weak")
        _pvk_id, pvk = keys.verification_key()
        verification_value(ctx.pan, opened.pin, pvk)
    return perf_counter() - start


def _floor(spec: dict[str, Any]) -> dict[str, Any]:
    """Decode, parse and bulk-load the same lines into an unindexed temporary table."""
    from sqlalchemy import text

    from bench.answers import _blocks, _delimited_columns
    from persistence.db import bulk_load, is_postgres, make_engine
    from schemas.layouts import CHANNEL, STATUS

    path = Path(spec["path"])
    layout = CHANNEL if spec["file"] == "CHANNEL" else STATUS
    names = ["seq", *layout.names]
    engine = make_engine(spec["url"])
    with engine.connect():
        pass
    rows = 0
    _warm_up()
    start = perf_counter()
    with path.open("rb") as fh, engine.begin() as conn:
        ddl = ", ".join(f"{name} TEXT" for name in names)
        suffix = " ON COMMIT DROP" if is_postgres(conn) else ""
        conn.execute(text(f"CREATE TEMP TABLE servicing_floor ({ddl}){suffix}"))
        for raw in _blocks(fh, CHUNK_LINES * 128):
            table = _delimited_columns(raw.decode("gb18030"), list(layout.names))
            bulk_load(conn, "servicing_floor", table, names)
            rows += table.num_rows
        if not is_postgres(conn):
            conn.execute(text("DROP TABLE temp.servicing_floor"))
    seconds = perf_counter() - start
    engine.dispose()
    problems = [] if rows == spec["n"] else [f"floor loaded {rows} lines, not {spec['n']}"]
    return {"seconds": seconds, "peak_mib": _peak_mib(), "problems": problems}


def measure(spec: dict[str, Any]) -> dict[str, Any]:
    import logging

    logging.getLogger("sscard").setLevel(logging.ERROR)
    result = _floor(spec) if spec["step"] == "floor" else _take(spec)
    return {**spec, **result}


# --------------------------------------------------------------------------- the driver


def _child(spec: dict[str, Any]) -> dict[str, Any]:
    child = subprocess.run(
        [sys.executable, "-m", "bench.servicing", "--measure", json.dumps(spec)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
        check=False,
    )
    if child.returncode != 0:
        raise SystemExit(f"{spec['step']} {spec['file']} on {spec['db']} failed")
    result: dict[str, Any] = json.loads(child.stdout.strip().splitlines()[-1])
    return result


def intake_reference() -> str:
    """Where the APPLY intake's ratio to its floor comes from: bench.intake keeps no result
    file, so it is measured by ``make bench`` (``bench.intake --floor``)."""
    return (
        "APPLY intake against its floor: run `make bench` (bench.intake --floor) "
        "for the intake ratio on this machine"
    )


def rows_of(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per file: the step, its floor and the ratio."""
    out = []
    for take in (r for r in results if r["step"] == "take"):
        floor = next(
            r
            for r in results
            if r["step"] == "floor" and (r["file"], r["db"]) == (take["file"], take["db"])
        )
        row = {
            "file": take["file"],
            "db": take["db"],
            "lines": take["n"],
            "seconds": take["seconds"],
            "records_per_s": take["n"] / take["seconds"],
            "peak_mib": take["peak_mib"],
            "floor_seconds": floor["seconds"],
            "floor_peak_mib": floor["peak_mib"],
            "ratio": take["seconds"] / floor["seconds"],
            "problems": take["problems"] + floor["problems"],
        }
        if "pin_seconds" in take:
            row["pin_seconds"] = take["pin_seconds"]
            row["pin_share"] = take["pin_seconds"] / take["seconds"]
        out.append(row)
    return out


def print_table(rows: list[dict[str, Any]]) -> None:
    head = (
        f"{'file':<8} {'database':<9} {'lines':>9} {'seconds':>8} {'records/s':>10} "
        f"{'peak MiB':>9} {'floor s':>8} {'× floor':>8} {'floor MiB':>9}  check"
    )
    print()
    print(head)
    print("-" * len(head))
    for r in rows:
        print(
            f"{r['file']:<8} {r['db']:<9} {r['lines']:>9,} {r['seconds']:>8.2f} "
            f"{r['records_per_s']:>10,.0f} {r['peak_mib']:>9,.0f} {r['floor_seconds']:>8.2f} "
            f"{r['ratio']:>8.1f} {r['floor_peak_mib']:>9,.0f}  "
            f"{'ok' if not r['problems'] else 'FAILED'}"
        )
        for problem in r["problems"]:
            print(f"    {problem}")
    print()
    for r in rows:
        if "pin_seconds" in r:
            print(
                f"PIN work in CHANNEL ({r['db']}): open_pin_block + weak_reason + "
                f"verification_value over {r['lines']:,} lines {r['pin_seconds']:.2f} s, "
                f"{100 * r['pin_share']:.1f} % of the step ({r['seconds']:.2f} s)"
            )
    print(intake_reference())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.servicing", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--lines", type=int, default=100_000, help="lines in each file")
    parser.add_argument(
        "--status-lines",
        type=int,
        help="lines in the STATUS file when not --lines (Book.current_card makes STATUS "
        "quadratic in the cards a run loads)",
    )
    parser.add_argument("--db", choices=("sqlite", "postgres"), default="postgres")
    parser.add_argument(
        "--pg-url",
        default=os.environ.get(ENV_PG_URL, DEFAULT_PG_URL).replace(
            "sscard_bench", "sscard_bench_servicing"
        ),
        help="a PostgreSQL database the benchmark may wipe",
    )
    parser.add_argument("--workdir", type=Path, default=DEFAULT_WORKDIR / "servicing")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    parser.add_argument("--measure", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.measure:
        print(json.dumps(measure(json.loads(args.measure))), flush=True)
        return 0

    def say(message: str) -> None:
        print(message, file=sys.stderr if args.json else sys.stdout, flush=True)

    n, db = args.lines, args.db
    m = args.status_lines or n
    sizes = {"CHANNEL": n, "STATUS": m}
    directory = args.workdir / str(n)
    inputs = write_inputs(n, m, directory / "input")
    say(
        f"inputs for {n:,} CHANNEL and {m:,} STATUS lines: written in {inputs['seconds']:.1f} s in {directory}"
    )
    run_dir = directory / db
    run_dir.mkdir(parents=True, exist_ok=True)
    url = fresh_database(db, run_dir, args.pg_url)
    start = perf_counter()
    setup(url, n, m)
    say(f"{db}: {n + m:,} cards set up in {perf_counter() - start:.1f} s")
    results: list[dict[str, Any]] = []
    for file in FILES:
        for step in ("floor", "take"):
            spec = {
                "step": step,
                "file": file,
                "db": db,
                "n": sizes[file],
                "url": url,
                "path": inputs["paths"][file],
                "planned": inputs["planned"][file],
            }
            results.append(_child(spec))
            r = results[-1]
            say(f"  {file} {step}: {r['seconds']:.2f} s, peak {r['peak_mib']:,.0f} MiB")
    rows = rows_of(results)
    if args.json:
        print(json.dumps({"rows": rows, "intake": intake_reference()}, indent=2))
    else:
        print_table(rows)
    return 1 if any(r["problems"] for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
