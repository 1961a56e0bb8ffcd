"""Benefit payments benchmark: a bureau's DISB file of N lines taken in, funded, posted and
answered (DISBRSP), then the day reconciled, against the floor.

    uv run python -m bench.payments --lines 1000000 [3000000 ...] [--json] [--profile DIR]

Setup (not timed): per size, the ``public`` schema of a dedicated PostgreSQL database
(``sscard_bench_payments`` by default, created when missing) dropped, recreated and migrated;
N made cards with their applications, application states and hub accounts (``preopened``)
bulk-loaded set-wise (pyarrow tables through ``persistence.db.bulk_load``: COPY), a chunk of
cards at a time; then ``VACUUM ANALYZE`` (as autovacuum leaves tables opened long before
the day) and a checkpoint. Written under ``var/bench/payments/<N>/``
(streaming, GB18030, CRLF, by this module's own writer in the ICD format):

- ``DISB_R440100_B001_<date>_001.txt``: N lines, line i paying account i (benefit ``110``);
  one line in 100 is bad, by turns: ``208`` amount 0.00, ``103`` a PAN no account has,
  ``104`` another id_no, ``105`` another name, ``209`` the pay_no of the line before,
  ``E117`` benefit type ``210``, ``106`` an account seeded ``closed``.
- a STMT of one line: the bureau's fund account paying ``DISB/<batch_no>`` its total.

With ``--partner-every K`` one good line in K (SEQ ≡ 3 mod K) pays a card the hub made for
partner bank ``B002``, which holds its account: those lines are forwarded in a DISB to
B002 (``send_partner_disb``, timed as ``forwarding``), B002's DISBRSP answering every one
``0000`` is written by this module (not timed: the partner's work) and merged back
(``apply_partner_disbrsp``, timed as ``partner merge``) before the bureau's DISBRSP.

Measurement, each in a fresh process with its own peak RSS:

- ``intake→DISBRSP``: ``intake`` (the file registered, ``apply_disb`` over a
  ``DelimitedReader`` on the file, one transaction), ``funding`` (the STMT registered and
  applied by ``apply_statement``), ``posting`` (``post_funded``) and ``DISBRSP``
  (``answer_batches``: the response composed into the outbox), each timed, and their sum.
  A run fails unless every good line is ``0000``, every bad line has its planned code and
  one DISBRSP of N lines is queued.
- ``reconciliation``: ``reconcile(conn, date, ["R440100"])`` in one transaction, committed.
- ``storage``: the records intake→DISBRSP leaves, written and read back alone in the
  same database after the run (``_storage``): the file through the hub's reader, the
  run's lines inserted into a copy of ``disb_line``, their outcome UPDATE, the run's
  credit entries inserted into a copy of ``ledger_entry``, the lines read back in SEQ
  order. What the hub's model costs before any check, join or file is made.
- ``floor`` of the DISB file, in the same run: its bytes read in blocks of 50,000 lines,
  decoded from GB18030, parsed into Arrow columns by pyarrow's CSV reader (``|``) and
  COPYed into a plain unindexed table, committed (as ``bench.answers``).

Printed: seconds, records/s, peak RSS, the ratio to the floor and the targets
(intake→DISBRSP ≤ 3× the floor, reconciliation ≤ 1× the floor, peak RSS < 1.5 GiB and
flat, < ×1.25, from the smallest to the largest size). ``--profile DIR`` runs both steps
under cProfile and prints their hottest functions.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from collections import Counter
from datetime import datetime
from pathlib import Path
from time import perf_counter
from typing import Any
from zoneinfo import ZoneInfo

from bench.intake import DEFAULT_PG_URL, DEFAULT_WORKDIR, ENV_PG_URL, ROOT, fresh_database
from bench.memory import peak_mib

HUB = "B001"
BUREAU = "R440100"
PAYSYS = "P01"
DAY = "20261207"
SEQ = "001"
BATCH_NO = f"D{DAY}{SEQ}"
PERIOD = DAY[:6]
BENEFIT = "110"
SHANGHAI = ZoneInfo("Asia/Shanghai")
NOW = datetime(2026, 12, 7, 16, 0, tzinfo=SHANGHAI)
BIRTH_DATE = "19800101"
NAME = "张三丰"
OTHER_NAME = "李四光"
CHUNK_LINES = 50_000
SEED_CHUNK = 250_000
APPLY_ID = 1
DISB_NAME = f"DISB_{BUREAU}_{HUB}_{DAY}_{SEQ}.txt"
STMT_NAME = f"STMT_{PAYSYS}_{HUB}_{DAY}_{SEQ}.txt"
#: one line in BAD_EVERY is bad, the kinds by turns; the code each one gets
BAD_EVERY = 100
BAD_KINDS = ("208", "103", "104", "105", "209", "E117", "106")
#: the partner bank whose cards some lines pay (``--partner-every``), at SEQ ≡ 3 mod K
PARTNER = "B002"
PARTNER_AT = 3
#: targets: step seconds over the floor's, peak RSS, growth counted as flat
TARGET_RATIO = {"intake→DISBRSP": 3.0, "reconciliation": 1.0}
TARGET_MIB = 1536
FLAT = 1.25
STEPS = ("floor", "intake→DISBRSP", "reconciliation", "storage")
SUBSTEPS = ("intake", "funding", "posting", "DISBRSP")


def card_no_of(i: int) -> str:
    return f"C{i:08d}"


def id_no_of(i: int) -> str:
    return f"440103{BIRTH_DATE}{i % 1000:03d}X"


def pay_no_of(i: int) -> str:
    return f"{BUREAU}{DAY}{SEQ}{i:07d}"


def bad_kind(i: int) -> str | None:
    """The planted fault of line i (its answer code), or None for a good line; line 1
    carries the file's benefit type and is always good."""
    if i % BAD_EVERY != BAD_EVERY // 2:
        return None
    return BAD_KINDS[(i // BAD_EVERY) % len(BAD_KINDS)]


def is_partner(i: int, every: int) -> bool:
    """Line i pays a card of the partner bank (one good line in ``every``; 0: none)."""
    return every > 0 and i % every == PARTNER_AT % every and bad_kind(i) is None


def amount_fen_of(i: int) -> int:
    """500.00 to 2,000.00 yuan: 3,000,000 of them still fit a DISB's 10-digit total."""
    return 50_000 + (i * 7919) % 150_001


def _pan_range() -> Any:
    from banking.pan import PanRange

    return PanRange("6217881")


def _unknown_pan(i: int) -> str:
    """A Luhn-valid PAN of another BIN: no account has it."""
    from banking.pan import PanRange, make_pans

    return make_pans(PanRange("6217889"), i, 1)[0]


# --------------------------------------------------------------------------- database


def setup(url: str, n: int, partner_every: int = 0) -> None:
    """N made cards 1…N with applications, states and hub accounts (``preopened``; the
    accounts of the ``106`` lines ``closed``), bulk-loaded a chunk at a time; the cards of
    partner lines (:func:`is_partner`) are the partner bank's, with no hub account."""
    import pyarrow as pa
    from sqlalchemy import text

    from banking.pan import make_pans
    from persistence import registry
    from persistence.db import bulk_load, make_engine

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
            accepted_count=n,
            rejected_count=0,
            first_seen_at=NOW,
            processed_at=NOW,
        )
        assert apply_id == APPLY_ID
        for start in range(1, n + 1, SEED_CHUNK):
            count = min(SEED_CHUNK, n + 1 - start)
            ids = list(range(start, start + count))
            card_nos = [card_no_of(i) for i in ids]
            id_nos = [id_no_of(i) for i in ids]
            pan_list = make_pans(_pan_range(), start, count)

            def const(value: object, type_: Any = None, count: int = count) -> pa.Array:
                return pa.array([value] * count, type=type_ or pa.string())

            partner = [is_partner(i, partner_every) for i in ids]
            banks = pa.array([PARTNER if p else HUB for p in partner])

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
                    "bank_code": banks,
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
                    "bank_code": banks,
                    "pan": pa.array(pan_list),
                    "pan_seq": const("01"),
                    "status": const("1"),
                    "issue_date": const("20261201"),
                    "expiry_date": const("20361206"),
                }
            )
            account = pa.table(
                {
                    "pan": pa.array(pan_list),
                    "bank_code": const(HUB),
                    "id_no": pa.array(id_nos),
                    "status": pa.array(
                        ["closed" if bad_kind(i) == "106" else "preopened" for i in ids]
                    ),
                    "loss": const("none"),
                    "pin_locked": const(False, pa.bool_()),
                    "debit_blocked": const(False, pa.bool_()),
                    "credit_blocked": const(False, pa.bool_()),
                }
            ).filter(pa.array([not p for p in partner]))
            for table_name, data in (
                ("application", application),
                ("application_state", state),
                ("card", card),
                ("account", account),
            ):
                bulk_load(conn, table_name, data, data.column_names)
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        # a pension day's cards and accounts were opened long before it: autovacuum has
        # visited them (hint bits set, pages all-visible), which a fresh COPY has not
        conn.execute(text("VACUUM ANALYZE"))
        conn.execute(text("CHECKPOINT"))
    engine.dispose()


# --------------------------------------------------------------------------- inputs


def _amount(fen: int) -> str:
    return f"{fen // 100}.{fen % 100:02d}"


def write_disb(n: int, path: Path) -> dict[str, Any]:
    """The DISB of N lines, streamed to ``path`` a chunk at a time; returns its total and
    the planned answer of every bad line (by SEQ)."""
    pan_range = _pan_range()
    from banking.pan import make_pans

    planned: dict[int, str] = {}
    total = 0
    body = path.with_suffix(".body")
    with body.open("wb") as out:
        for start in range(1, n + 1, CHUNK_LINES):
            count = min(CHUNK_LINES, n + 1 - start)
            pan_list = make_pans(pan_range, start, count)
            lines = []
            for i, pan in zip(range(start, start + count), pan_list, strict=True):
                pay_no, id_no, name, btype = pay_no_of(i), id_no_of(i), NAME, BENEFIT
                fen = amount_fen_of(i)
                kind = bad_kind(i)
                if kind is not None:
                    planned[i] = kind
                    if kind == "208":
                        fen = 0
                    elif kind == "103":
                        pan = _unknown_pan(i)
                    elif kind == "104":
                        id_no = id_no_of(i + 1)
                    elif kind == "105":
                        name = OTHER_NAME
                    elif kind == "209":
                        pay_no = pay_no_of(i - 1)
                    elif kind == "E117":
                        btype = "210"
                total += fen
                lines.append(
                    f"D|{i}|{pay_no}|{id_no}|{name}|{card_no_of(i)}|{pan}|{_amount(fen)}|"
                    f"{btype}|{PERIOD}|\r\n"
                )
            out.write("".join(lines).encode("gb18030"))
    with path.open("wb") as out, body.open("rb") as src:
        out.write(
            f"H|DISB|{BUREAU}|{HUB}|{BATCH_NO}|{DAY}|{n}|{_amount(total)}|1.0\r\n".encode("ascii")
        )
        shutil.copyfileobj(src, out, 1 << 22)
        out.write(f"T|{n}|{_amount(total)}\r\n".encode("ascii"))
    body.unlink()
    return {"total_fen": total, "planned": planned}


def write_inputs(n: int, directory: Path) -> dict[str, Any]:
    from sandbox.payments import funding, make_stmt_file

    shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir(parents=True)
    start = perf_counter()
    disb = write_disb(n, directory / DISB_NAME)
    name, data, _control = make_stmt_file(
        [funding(BATCH_NO, disb["total_fen"], f"PS{DAY}000001", DAY)],
        sender=PAYSYS,
        hub=HUB,
        business_date=DAY,
    )
    assert name == STMT_NAME, name
    (directory / STMT_NAME).write_bytes(data)
    return {
        "disb": str(directory / DISB_NAME),
        "stmt": str(directory / STMT_NAME),
        "total_fen": disb["total_fen"],
        "planned": {str(k): v for k, v in disb["planned"].items()},
        "seconds": perf_counter() - start,
    }


# --------------------------------------------------------------------------- one measurement (child)


def _peak_mib() -> float:
    return peak_mib()


def _warm_up() -> float:
    """pandas, which the reader's columns pull in lazily through pyarrow: a cost per
    process, not per line, so it is left out of the timing (as in ``bench.intake``)."""
    start = perf_counter()
    import pandas  # noqa: F401

    return perf_counter() - start


def _register(conn: Any, path: Path, kind: str, sender: str, batch_no: str, count: int) -> int:
    from persistence import registry

    return registry.record_file(
        conn,
        conn_id=f"bench_{sender.lower()}",
        name=path.name,
        type=kind,
        sender=sender,
        receiver=HUB,
        batch_no=batch_no,
        business_date=DAY,
        sha256="1" * 64,
        size=path.stat().st_size,
        record_count=count,
        outcome="accepted",
        accepted_count=count,
        rejected_count=0,
        first_seen_at=NOW,
        processed_at=NOW,
    )


def _pay(spec: dict[str, Any]) -> dict[str, Any]:
    """Intake, funding, posting and DISBRSP, each timed; then the answers checked."""
    from sqlalchemy import text

    from exchange.outbox import Drop
    from exchange.storage import Storage
    from payments.intake import DisbContext, apply_disb
    from payments.settle import answer_batches, post_funded
    from persistence.db import make_engine
    from reconciliation.statements import apply_statement
    from schemas.codec import DelimitedReader
    from schemas.layouts import DISB, STMT

    n = spec["n"]
    disb, stmt = Path(spec["disb"]), Path(spec["stmt"])
    run_dir = Path(spec["run_dir"])
    engine = make_engine(spec["url"])
    with engine.connect():
        pass
    _warm_up()
    seconds: dict[str, float] = {}
    start = perf_counter()
    with disb.open("rb") as fh, engine.begin() as conn:
        file_id = _register(conn, disb, "DISB", BUREAU, BATCH_NO, n)
        reader = DelimitedReader(fh, DISB, "GB18030", CHUNK_LINES, n)
        counts = apply_disb(conn, reader, DisbContext(HUB, BUREAU, DAY, file_id, BATCH_NO))
    seconds["intake"] = perf_counter() - start
    start = perf_counter()
    with stmt.open("rb") as fh, engine.begin() as conn:
        stmt_id = _register(conn, stmt, "STMT", PAYSYS, f"M{DAY}{SEQ}", 1)
        funded = apply_statement(
            conn,
            DelimitedReader(fh, STMT, "GB18030", CHUNK_LINES, 1),
            sender=PAYSYS,
            file_id=stmt_id,
            business_date=DAY,
            now=NOW,
        )
    seconds["funding"] = perf_counter() - start
    start = perf_counter()
    posted = post_funded(engine, hub=HUB, business_date=DAY, now=NOW)
    seconds["posting"] = perf_counter() - start
    forwarded = 0
    if spec.get("partner_every"):
        from payments.settle import apply_partner_disbrsp, send_partner_disb
        from schemas.layouts import DISBRSP

        start = perf_counter()
        sent = send_partner_disb(
            engine,
            hub=HUB,
            bank_code=PARTNER,
            dest=Drop(f"sftp_{PARTNER.lower()}", "drop", NOW, Storage(str(run_dir / "store"))),
            encoding="GB18030",
            business_date=DAY,
            work_dir=run_dir / "work",
        )
        seconds["forwarding"] = perf_counter() - start
        if not sent:
            raise SystemExit(f"no line of {n:,} pays a card of {PARTNER}: raise --lines")
        (request_name,) = sent  # one batch of one benefit type: one file
        with engine.connect() as conn:
            row = conn.execute(
                text("SELECT data, path FROM outbound_file WHERE name = :n"), {"n": request_name}
            ).one()
        request = (
            bytes(row.data)
            if row.data is not None
            else Storage(str(run_dir / "store")).read_bytes(row.path)
        )
        answer = run_dir / "partner_answer.txt"
        forwarded = partner_answers(request, answer)
        start = perf_counter()
        with answer.open("rb") as fh, engine.begin() as conn:
            apply_partner_disbrsp(
                conn,
                DelimitedReader(fh, DISBRSP, "GB18030", CHUNK_LINES, forwarded),
                bank_code=PARTNER,
                business_date=DAY,
                now=NOW,
                file_name=answer.name,
            )
        seconds["partner merge"] = perf_counter() - start
    start = perf_counter()
    drop = Drop(f"sftp_{BUREAU.lower()}", "drop", NOW, Storage(str(run_dir / "store")))
    with engine.begin() as conn:
        names = answer_batches(
            conn,
            bureau=BUREAU,
            dest=drop,
            encoding="GB18030",
            business_date=DAY,
            work_dir=run_dir / "work",
        )
    seconds["DISBRSP"] = perf_counter() - start
    peak = _peak_mib()

    problems: list[str] = []
    planned: dict[int, str] = {int(k): v for k, v in spec["planned"].items()}
    if funded.get("DISB") != 1:
        problems.append(f"the STMT funding was not applied: {funded}")
    if posted.batches != 1:
        problems.append(f"{posted.batches} batch(es) posted, not 1")
    partner_lines = sum(is_partner(i, spec.get("partner_every", 0)) for i in range(1, n + 1))
    if forwarded != partner_lines:
        problems.append(f"{forwarded} line(s) forwarded to {PARTNER}, not {partner_lines}")
    with engine.connect() as conn:
        results: dict[str, int] = dict(
            conn.execute(
                text("SELECT result, COUNT(*) FROM disb_line WHERE batch_id = :b GROUP BY result"),
                {"b": counts["batch_id"]},
            ).all()
        )
        want = Counter(planned.values())
        want["0000"] = n - len(planned)
        if results != dict(want):
            problems.append(f"results {dict(sorted(results.items()))}, planned {dict(want)}")
        found: dict[int, str] = dict(
            conn.execute(
                text("SELECT seq, result FROM disb_line WHERE batch_id = :b AND result <> '0000'"),
                {"b": counts["batch_id"]},
            ).all()
        )
        wrong = [
            seq for seq in sorted(set(found) | set(planned)) if found.get(seq) != planned.get(seq)
        ]
        if wrong:
            problems.append(
                f"{len(wrong)} bad line(s) without their planned code, e.g. SEQ {wrong[:5]}"
            )
        queued = conn.execute(
            text("SELECT name, record_count FROM outbound_file WHERE type = 'DISBRSP'")
        ).all()
        if [tuple(q) for q in queued] != [(names[0] if names else "", n)]:
            problems.append(f"DISBRSP queued {queued}, not one of {n} lines")
        status = conn.execute(
            text("SELECT status FROM disb_batch WHERE id = :b"), {"b": counts["batch_id"]}
        ).scalar_one()
        if status != "answered":
            problems.append(f"batch {status}, not answered")
    engine.dispose()
    return {
        "seconds": sum(seconds.values()),
        "substeps": seconds,
        "peak_mib": peak,
        "problems": problems,
    }


def partner_answers(request: bytes, path: Path) -> int:
    """The partner bank's DISBRSP to a forwarded DISB: every line credited (``0000``) under
    the partner's own bank_ref, written to ``path``; returns its line count."""
    import pyarrow as pa
    import pyarrow.compute as pc

    from schemas.codec import DelimitedReader, Header, write_delimited_tables
    from schemas.layouts import DISB, DISBRSP

    reader = DelimitedReader(request, DISB, "GB18030", CHUNK_LINES)
    tables = []
    for chunk in reader.chunks():
        n = len(chunk)
        tables.append(
            pa.table(
                {
                    "pay_no": chunk.column("pay_no"),
                    "result": pa.array(["0000"] * n),
                    "credited_amount": chunk.column("amount"),
                    "posted_time": pa.array([NOW.strftime("%Y%m%d%H%M%S")] * n),
                    "bank_ref": pc.binary_join_element_wise("P", chunk.column("pay_no"), ""),
                    "reason_code": pa.array([""] * n),
                    "reason_text": pa.array([""] * n),
                }
            )
        )
    h = reader.header
    header = Header(
        "DISBRSP",
        h.receiver,
        h.sender,
        h.batch_no,
        h.business_date,
        h.record_count,
        h.total_fen,
    )
    with path.open("wb") as out:
        return write_delimited_tables(out, DISBRSP, header, tables, "GB18030")


def _reconcile(spec: dict[str, Any]) -> dict[str, Any]:
    from persistence.db import make_engine
    from reconciliation.daily import reconcile

    engine = make_engine(spec["url"])
    with engine.connect():
        pass
    _warm_up()
    start = perf_counter()
    with engine.begin() as conn:
        rows = reconcile(conn, DAY, [BUREAU])
    seconds = perf_counter() - start
    peak = _peak_mib()
    engine.dispose()
    problems = []
    if len(rows) != 1 or rows[0].instructed_count != spec["n"]:
        problems.append(f"reconciled {[(r.batch_no, r.instructed_count) for r in rows]}")
    outcome = f"{rows[0].status} {rows[0].break_reason}".strip() if rows else "none"
    return {"seconds": seconds, "peak_mib": peak, "problems": problems, "outcome": outcome}


def _floor(spec: dict[str, Any]) -> dict[str, Any]:
    """Decode, parse and COPY the DISB's lines into a plain unindexed table."""
    from sqlalchemy import text

    from bench.answers import _blocks, _delimited_columns
    from persistence.db import bulk_load, make_engine
    from schemas.layouts import DISB

    names = ["seq", *DISB.names]
    engine = make_engine(spec["url"])
    with engine.begin() as conn:
        conn.execute(text("DROP TABLE IF EXISTS payments_floor"))
        ddl = ", ".join(f"{name} TEXT" for name in names)
        conn.execute(text(f"CREATE TABLE payments_floor ({ddl})"))
    _warm_up()
    rows = 0
    start = perf_counter()
    with Path(spec["disb"]).open("rb") as fh, engine.begin() as conn:
        for raw in _blocks(fh, CHUNK_LINES * 128):
            table = _delimited_columns(raw.decode("gb18030"), list(DISB.names))
            bulk_load(conn, "payments_floor", table, names)
            rows += table.num_rows
    seconds = perf_counter() - start
    peak = _peak_mib()
    with engine.begin() as conn:
        conn.execute(text("DROP TABLE payments_floor"))
    engine.dispose()
    problems = [] if rows == spec["n"] else [f"floor loaded {rows} lines, not {spec['n']}"]
    return {"seconds": seconds, "peak_mib": peak, "problems": problems}


#: the parts of ``storage``: the records a funded, answered DISB leaves (lines, their
#: outcomes, one keyed ledger entry per credit) written and read back alone
STORAGE_PARTS = ("hub reader", "lines", "outcomes", "credit entries", "read back")


def _storage(spec: dict[str, Any]) -> dict[str, Any]:
    """What the records of intake→DISBRSP cost to write alone, on this PostgreSQL, in this
    run: the file read and field-checked by the hub's reader (no database); the run's
    ``disb_line`` rows, as intake left them, inserted into a copy of the table (its keys
    and fill factor); the posting's outcome UPDATE of those rows; the run's keyed credit
    entries inserted into a copy of ``ledger_entry`` (its keys); the lines read back in
    SEQ order as DISBRSP reads them (COPY to the client). Each part one statement,
    committed, after a checkpoint; the sources are unlogged copies made untimed. Their
    sum is the least the hub's model can cost before a single line is checked against
    an account: the checks, the joins and the file written come on top."""
    from sqlalchemy import text

    from persistence.db import make_engine
    from schemas.codec import DelimitedReader
    from schemas.layouts import DISB

    engine = make_engine(spec["url"])
    _warm_up()
    seconds: dict[str, float] = {}
    start = perf_counter()
    lines = 0
    with Path(spec["disb"]).open("rb") as fh:
        for chunk in DelimitedReader(fh, DISB, "GB18030", CHUNK_LINES, spec["n"]).chunks():
            lines += len(chunk)
    seconds["hub reader"] = perf_counter() - start
    line_cols = (
        "batch_id, seq, bureau, pay_no, keyed, pan, amount_fen, result, credited_fen, "
        "posted_time, bank_ref, partner, partner_key, partner_request, partner_sent_date, "
        "answered_date"
    )
    with engine.begin() as conn:
        fill = conn.scalar(
            text(
                "SELECT array_to_string(reloptions, ', ') FROM pg_class "
                "WHERE relname = 'disb_line' AND relkind = 'r'"
            )
        )
        for name in ("bare_line", "bare_entry", "bare_line_src", "bare_entry_src"):
            conn.execute(text(f"DROP TABLE IF EXISTS {name}"))
        # the lines as intake wrote them: those credited since were still waiting
        conn.execute(
            text(
                "CREATE UNLOGGED TABLE bare_line_src AS SELECT batch_id, seq, bureau, pay_no, "
                "keyed, pan, amount_fen, CASE WHEN result = '0000' THEN NULL ELSE result END AS result, "
                "0 AS credited_fen, NULL AS posted_time, NULL AS bank_ref, partner, "
                "partner_key, partner_request, partner_sent_date, CASE WHEN result = '0000' "
                "THEN NULL ELSE answered_date END AS answered_date FROM disb_line ORDER BY seq"
            )
        )
        conn.execute(
            text(
                "CREATE UNLOGGED TABLE bare_entry_src AS SELECT txn_id, account, amount_fen, "
                "idem_key FROM ledger_entry WHERE idem_key LIKE 'disb:%' ORDER BY id"
            )
        )
        conn.execute(text("CREATE TABLE bare_line (LIKE disb_line INCLUDING ALL)"))
        if fill:
            conn.execute(text(f"ALTER TABLE bare_line SET ({fill})"))
        conn.execute(text("CREATE TABLE bare_entry (LIKE ledger_entry INCLUDING ALL)"))
        conn.execute(text("ANALYZE bare_line_src"))
        conn.execute(text("ANALYZE bare_entry_src"))
        credits = int(conn.scalar(text("SELECT COUNT(*) FROM bare_entry_src")) or 0)
    timed = (
        (
            "lines",
            f"INSERT INTO bare_line ({line_cols}) SELECT {line_cols} FROM bare_line_src "
            "ORDER BY seq",
        ),
        (
            "outcomes",
            "UPDATE bare_line SET result = '0000', credited_fen = amount_fen, "
            "posted_time = '20261207160000', bank_ref = 'H' || lpad(CAST(batch_id AS TEXT), 9, "
            "'0') || lpad(CAST(seq AS TEXT), 8, '0'), answered_date = '20261207' "
            "WHERE result IS NULL AND partner IS NULL",
        ),
        (
            "credit entries",
            "INSERT INTO bare_entry (txn_id, account, amount_fen, idem_key) "
            "SELECT txn_id, account, amount_fen, idem_key FROM bare_entry_src",
        ),
    )
    for part, statement in timed:
        with engine.connect() as conn:
            conn.execute(text("CHECKPOINT"))
            conn.execute(text("SET jit = off"))
            start = perf_counter()
            conn.execute(text(statement))
            conn.commit()
            seconds[part] = perf_counter() - start
    read = 0
    with engine.connect() as conn:
        conn.execute(text("CHECKPOINT"))
        raw = conn.connection.driver_connection
        assert raw is not None
        start = perf_counter()
        with (
            raw.cursor() as cur,
            cur.copy(
                "COPY (SELECT pay_no, result, credited_fen, posted_time, bank_ref FROM bare_line "
                "ORDER BY batch_id, seq) TO STDOUT WITH (FORMAT csv)"
            ) as copy,
        ):
            for block in copy:
                read += len(block)
        seconds["read back"] = perf_counter() - start
    peak = _peak_mib()
    with engine.begin() as conn:
        for name in ("bare_line", "bare_entry", "bare_line_src", "bare_entry_src"):
            conn.execute(text(f"DROP TABLE {name}"))
    engine.dispose()
    problems = []
    if lines != spec["n"]:
        problems.append(f"the hub's reader read {lines} lines, not {spec['n']}")
    if not credits or not read:
        problems.append(f"nothing to store: {credits} credit entries, {read} bytes read back")
    return {
        "seconds": sum(seconds.values()),
        "substeps": seconds,
        "peak_mib": peak,
        "problems": problems,
    }


def measure(spec: dict[str, Any]) -> dict[str, Any]:
    import logging

    logging.getLogger("sscard").setLevel(logging.ERROR)
    step = {
        "floor": _floor,
        "intake→DISBRSP": _pay,
        "reconciliation": _reconcile,
        "storage": _storage,
    }[spec["step"]]
    if spec.get("profile"):
        import cProfile

        profiler = cProfile.Profile()
        result = profiler.runcall(step, spec)
        profiler.dump_stats(spec["profile"])
    else:
        result = step(spec)
    return {**spec, **result, "planned": None}


# --------------------------------------------------------------------------- the driver


def _child(spec: dict[str, Any]) -> dict[str, Any]:
    # the spec (with every planned bad line) goes through a file: a command line is too short
    spec_file = Path(spec["run_dir"]) / f"spec-{spec['step']}-{spec['n']}.json"
    spec_file.parent.mkdir(parents=True, exist_ok=True)
    spec_file.write_text(json.dumps(spec))
    child = subprocess.run(
        [sys.executable, "-m", "bench.payments", "--measure", f"@{spec_file}"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
        check=False,
    )
    if child.returncode != 0:
        raise SystemExit(f"{spec['step']} of {spec['n']:,} lines failed")
    result: dict[str, Any] = json.loads(child.stdout.strip().splitlines()[-1])
    return result


def _pg_url(url: str) -> str:
    from sqlalchemy import make_url

    if make_url(url).database in (None, "", "test", "postgres"):
        raise SystemExit(f"refusing to wipe database {make_url(url).database!r}")
    return url


def run_size(n: int, args: argparse.Namespace, say: Any) -> list[dict[str, Any]]:
    directory = args.workdir / str(n)
    inputs = write_inputs(n, directory / "input")
    size = Path(inputs["disb"]).stat().st_size / 2**20
    say(f"{n:,} lines: DISB written in {inputs['seconds']:.1f} s ({size:,.0f} MiB)")
    run_dir = directory / "postgres"
    shutil.rmtree(run_dir, ignore_errors=True)
    run_dir.mkdir(parents=True)
    url = fresh_database("postgres", run_dir, args.pg_url)
    start = perf_counter()
    setup(url, n, args.partner_every)
    say(f"  {n:,} cards and accounts set up in {perf_counter() - start:.1f} s")
    results = []
    for step in STEPS:
        spec = {
            "step": step,
            "n": n,
            "url": url,
            "disb": inputs["disb"],
            "stmt": inputs["stmt"],
            "run_dir": str(run_dir),
            "planned": inputs["planned"] if step == "intake→DISBRSP" else {},
            "partner_every": args.partner_every,
        }
        if args.profile and step in ("intake→DISBRSP", "reconciliation"):
            args.profile.mkdir(parents=True, exist_ok=True)
            tag = "pay" if step == "intake→DISBRSP" else "recon"
            spec["profile"] = str((args.profile / f"{tag}_{n}.prof").resolve())
        r = _child(spec)
        results.append(r)
        subs = r.get("substeps")
        detail = " (" + ", ".join(f"{k} {v:.2f}" for k, v in subs.items()) + ")" if subs else ""
        say(f"  {step}: {r['seconds']:.2f} s{detail}, peak {r['peak_mib']:,.0f} MiB")
    return results


def rows_of(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    rows = []
    for r in results:
        floor = next(f for f in results if f["step"] == "floor" and f["n"] == r["n"])
        row = {
            "step": r["step"],
            "lines": r["n"],
            "seconds": r["seconds"],
            "records_per_s": r["n"] / r["seconds"] if r["seconds"] else 0.0,
            "peak_mib": r["peak_mib"],
            "floor_seconds": floor["seconds"],
            "ratio": r["seconds"] / floor["seconds"],
            "target_ratio": TARGET_RATIO.get(r["step"]),
            "problems": r["problems"],
        }
        if "substeps" in r:
            row["substeps"] = r["substeps"]
        if "outcome" in r:
            row["outcome"] = r["outcome"]
        rows.append(row)
    return rows


def verdicts(rows: list[dict[str, Any]]) -> list[str]:
    out = []
    for r in rows:
        if r["target_ratio"] is not None:
            ok = r["ratio"] <= r["target_ratio"]
            out.append(
                f"{r['step']} at {r['lines']:,} lines: {r['ratio']:.1f}× the floor, target "
                f"≤ {r['target_ratio']:.0f}×: {'met' if ok else 'MISSED'}"
            )
        ok = r["peak_mib"] < TARGET_MIB
        out.append(
            f"{r['step']} at {r['lines']:,} lines: peak RSS {r['peak_mib']:,.0f} MiB, target "
            f"< {TARGET_MIB:,} MiB: {'met' if ok else 'MISSED'}"
        )
    for r in rows:
        if r["step"] == "storage" and r.get("substeps"):
            parts = r["substeps"]
            floor = r["floor_seconds"]
            records = sum(v for k, v in parts.items() if k != "hub reader")
            kept = parts["hub reader"] + parts["lines"] + parts["read back"]
            out.append(
                f"storage at {r['lines']:,} lines: the records alone (lines, outcomes, credit "
                f"entries, read back) {records / floor:.1f}× the floor, with the hub's reader "
                f"{r['ratio']:.1f}×; the lines alone, read and read back (no outcome update, "
                f"no entry per credit) {kept / floor:.1f}×"
            )
    sizes = sorted({r["lines"] for r in rows})
    if len(sizes) > 1:
        for step in STEPS[1:]:
            low = next(r for r in rows if r["step"] == step and r["lines"] == sizes[0])
            high = next(r for r in rows if r["step"] == step and r["lines"] == sizes[-1])
            growth = high["peak_mib"] / low["peak_mib"]
            out.append(
                f"{step} peak RSS {sizes[0]:,} → {sizes[-1]:,} lines: ×{growth:.2f}, flat is "
                f"< ×{FLAT}: {'met' if growth < FLAT else 'MISSED'}"
            )
    else:
        out.append("peak RSS flatness: run two sizes (e.g. --lines 1000000 3000000) to judge")
    return out


def print_table(rows: list[dict[str, Any]]) -> None:
    head = (
        f"{'step':<16} {'lines':>9} {'seconds':>8} {'records/s':>10} {'peak MiB':>9} "
        f"{'floor s':>8} {'× floor':>8} {'target':>7}  check"
    )
    print()
    print(head)
    print("-" * len(head))
    for r in rows:
        target = f"≤ {r['target_ratio']:.0f}×" if r["target_ratio"] is not None else ""
        print(
            f"{r['step']:<16} {r['lines']:>9,} {r['seconds']:>8.2f} {r['records_per_s']:>10,.0f} "
            f"{r['peak_mib']:>9,.0f} {r['floor_seconds']:>8.2f} {r['ratio']:>8.2f} "
            f"{target:>7}  {'ok' if not r['problems'] else 'FAILED'}"
        )
        for name, s in r.get("substeps", {}).items():
            print(f"  {name:<14} {'':>9} {s:>8.2f} {r['lines'] / s if s else 0:>10,.0f}")
        if "outcome" in r:
            print(f"  batch {r['outcome']}")
        for problem in r["problems"]:
            print(f"    {problem}")
    print()
    for line in verdicts(rows):
        print(line)


def print_profiles(directory: Path, top: int = 25) -> None:
    import pstats

    for path in sorted(directory.glob("*.prof")):
        print(f"\n--- {path.name}: top {top} by own time")
        pstats.Stats(str(path)).sort_stats("tottime").print_stats(top)
        print(f"--- {path.name}: top {top} by cumulative time")
        pstats.Stats(str(path)).sort_stats("cumulative").print_stats(top)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.payments", description=__doc__.splitlines()[0]
    )
    parser.add_argument(
        "--lines", type=int, nargs="+", default=[1_000_000], help="lines in the DISB, one run each"
    )
    parser.add_argument(
        "--pg-url",
        default=os.environ.get(ENV_PG_URL, DEFAULT_PG_URL).replace(
            "sscard_bench", "sscard_bench_payments"
        ),
        help="a PostgreSQL database the benchmark may wipe",
    )
    parser.add_argument("--workdir", type=Path, default=DEFAULT_WORKDIR / "payments")
    parser.add_argument(
        "--partner-every",
        type=int,
        default=0,
        metavar="K",
        help=f"one good line in K pays a card of partner bank {PARTNER}: forwarded, answered "
        "0000 and merged back before the DISBRSP (default 0: none)",
    )
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    parser.add_argument("--profile", type=Path, help="run the steps under cProfile, stats here")
    parser.add_argument("--measure", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.measure:
        text_ = args.measure
        if text_.startswith("@"):
            text_ = Path(text_[1:]).read_text()
        print(json.dumps(measure(json.loads(text_))), flush=True)
        return 0
    args.pg_url = _pg_url(args.pg_url)

    def say(message: str) -> None:
        print(message, file=sys.stderr if args.json else sys.stdout, flush=True)

    results: list[dict[str, Any]] = []
    for n in sorted(set(args.lines)):
        results += run_size(n, args, say)
    rows = rows_of(results)
    if args.json:
        print(json.dumps({"rows": rows, "verdicts": verdicts(rows)}, indent=2))
    else:
        print_table(rows)
        if args.profile:
            print_profiles(args.profile)
    return 1 if any(r["problems"] for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
