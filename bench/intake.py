"""APPLY intake benchmark: records per second and peak memory of ``run_intake``.

    uv run python -m bench.intake --lines 200000 [1000000 ...] [--db sqlite|postgres|both]
                                  [--transport local|sftp]

Inputs. For each size, one APPLY file of ``01`` applications with about 2 % bad lines (every
kind of :data:`sandbox.bureau.LINE_KINDS`, so the answer is known line by line), its photo zip
(one stored entry per line that names a photo, drawn from four small valid 358 × 441 JPEGs)
and both ``.ok`` control files, under ``var/bench/<N>/input/``. Generation streams to disk, so
its memory stays flat however many lines; the files are reused while the generator version
matches and both files still agree with their ``.ok``.

Measurement. Each run is a fresh process (its peak RSS is its own) against a fresh database: a
new SQLite file, or the ``public`` schema of a dedicated PostgreSQL database dropped, recreated
and migrated. The inputs are linked into a pickup directory, read through a
:class:`transport.local.LocalRemote` (``--transport local``, the default: the files are copied
on this machine) or through :class:`transport.sftp.SftpRemote` from an OpenSSH ``sshd`` on
loopback started for the run (``--transport sftp``: downloaded as from a bureau's server, the
way production takes them); the clock runs from just before ``run_intake`` (read,
validate, stage, database checks, insert, APPLYRSP into the outbox, archive) to its return;
``deliver`` of the APPLYRSP is timed on its own. A run fails unless the file is accepted with
exactly the per-reason counts the generator planned and the APPLYRSP is published.

Targets (the intake issue): at least 50,000 records/s on PostgreSQL with 2 cores; peak RSS
under 1 GiB and not growing with the file's size.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import random
import shutil
import string
import struct
import subprocess
import sys
import tempfile
import zlib
from collections import Counter
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from pathlib import Path
from time import perf_counter
from typing import Any, BinaryIO
from zoneinfo import ZoneInfo

from bench.memory import peak_mib
from sandbox.bureau import UNKNOWN_BANK, _row
from sandbox.people import (
    Person,
    long_name,
    make_mobile,
    make_person,
    other_province_codes,
    oversized_photo,
    parse_date,
    photo_cache,
    png_photo,
    small_photo,
)
from schemas.codec import ENCODINGS
from schemas.files import Control, FileLevelError, FileName, sha256_of
from schemas.layouts import APPLY

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_WORKDIR = ROOT / "var" / "bench"
DEFAULT_PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/sscard_bench"
ENV_PG_URL = "SSCARD_BENCH_PG_URL"

GENERATOR_VERSION = 1
HUB = "B001"
BUREAU = "R440100"
BANKS = ("B001", "B002", "B003")
BUSINESS_DATE = "20261122"
NOW = datetime(2026, 11, 22, 9, 0, tzinfo=ZoneInfo("Asia/Shanghai"))
ENCODING = "GB18030"
BAD_SHARE = 0.02
CONN_ID = "bench_r440100"

TARGET_RECORDS_PER_S = 50_000
TARGET_RSS_MIB = 1024

_APP_NO, _APP_TYPE, _ID_NO, _ID_VALID_TO, _NAME, _GENDER, _ETHNICITY, _BIRTH_DATE = (
    APPLY.index(n)
    for n in "app_no app_type id_no id_valid_to name gender ethnicity birth_date".split()
)
_MOBILE, _REGION, _BANK, _CARD_NO, _KEEP_ACCOUNT, _PHOTO = (
    APPLY.index(n) for n in "mobile region_code bank_code card_no keep_account photo".split()
)
#: the bad-line kinds of :data:`sandbox.bureau.LINE_KINDS` this generator makes, drawn evenly
BAD_KINDS = tuple(
    "E101 E102 E103 E104 E105 E106 E107 E108 E109 E111 E112 E113 E114 E115 E116 E117".split()
)
_DUPLICATES = frozenset({"E106", "E107", "E108"})
#: an odd multiplier prime to 10: position → 8 card digits is a permutation of 0…10^8-1
_CARD_STRIDE = 7_919_123


# --------------------------------------------------------------------------- inputs


@dataclass(frozen=True)
class Inputs:
    """A generated APPLY with its zip, and the answer counts a correct hub gives."""

    directory: Path
    name: str
    zip_name: str
    lines: int
    photos: int
    expected: dict[str, int]

    @property
    def files(self) -> list[str]:
        return [self.zip_name, f"{self.zip_name}.ok", self.name, f"{self.name}.ok"]


class _Sink:
    """A file being written, with its running size and SHA-256 (for its ``.ok``)."""

    def __init__(self, path: Path) -> None:
        self._fh = path.open("wb")
        self._sha = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes) -> None:
        self._fh.write(data)
        self._sha.update(data)
        self.size += len(data)

    def hexdigest(self) -> str:
        return self._sha.hexdigest()

    def close(self) -> None:
        self._fh.close()


#: local file header, central directory header, end of central directory (APPNOTE 4.3)
_LOCAL = struct.Struct("<4s2B4HL2L2H")
_CENTRAL = struct.Struct("<4s4B4HL2L5H2L")
_END = struct.Struct("<4s4H2LH")
_END64 = struct.Struct("<4sQ2H2L4Q")
_END64_LOCATOR = struct.Struct("<4sLQL")
_U16, _U32 = 0xFFFF, 0xFFFFFFFF


class _StoredZip:
    """A zip of stored entries written straight to disk, its central directory spooled to a
    temporary file: ``zipfile`` keeps every ``ZipInfo`` until it closes, which for a million
    entries is hundreds of MB. ZIP64 records are added when counts or offsets need them."""

    def __init__(self, sink: _Sink, spool: BinaryIO, business_date: str) -> None:
        self._sink = sink
        self._spool = spool
        y, m, d = int(business_date[:4]), int(business_date[4:6]), int(business_date[6:])
        self._dos_date = ((y - 1980) << 9) | (m << 5) | d
        self.count = 0

    def add(self, name: str, data: bytes, crc: int) -> None:
        raw = name.encode("ascii")
        size = len(data)
        offset = self._sink.size
        stamp = (0, self._dos_date, crc, size, size, len(raw))
        self._sink.write(_LOCAL.pack(b"PK\x03\x04", 20, 0, 0, 0, *stamp, 0) + raw)
        self._sink.write(data)
        extra = b""
        version = 20
        if offset >= _U32:
            extra = struct.pack("<HHQ", 1, 8, offset)
            offset, version = _U32, 45
        head = (b"PK\x01\x02", version, 0, version, 0, 0, 0)
        tail = (len(extra), 0, 0, 0, 0, offset)
        self._spool.write(_CENTRAL.pack(*head, *stamp, *tail) + raw + extra)
        self.count += 1

    def close(self) -> None:
        cd_offset = self._sink.size
        self._spool.seek(0)
        while block := self._spool.read(1 << 20):
            self._sink.write(block)
        cd_size = self._sink.size - cd_offset
        n = self.count
        if n >= _U16 or cd_offset >= _U32 or cd_size >= _U32:
            end64 = self._sink.size
            self._sink.write(_END64.pack(b"PK\x06\x06", 44, 45, 45, 0, 0, n, n, cd_size, cd_offset))
            self._sink.write(_END64_LOCATOR.pack(b"PK\x06\x07", 0, end64, 1))
        entries = min(n, _U16)
        sizes = (min(cd_size, _U32), min(cd_offset, _U32))
        self._sink.write(_END.pack(b"PK\x05\x06", 0, 0, entries, entries, *sizes, 0))


def _lines(
    n: int, rng: random.Random, batch_no: str
) -> Iterator[tuple[list[str], str | None, bytes | None]]:
    """Each line's fields, its planned reason code (None: accepted) and its photo (None: no
    zip entry). Bad lines are wrong in exactly one field, as :mod:`sandbox.bureau` makes
    them; the sources of duplicates are the latest accepted line. ID numbers are kept unique
    by their first 17 digits, card numbers by construction from the position."""
    province = BUREAU[1:3]
    year = int(BUSINESS_DATE[:4])
    pool = photo_cache(4, 0, fast=True)
    seen_ids: set[int] = set()
    last: tuple[list[str], Person] | None = None
    turns: Counter[str] = Counter()

    def person() -> Person:
        while True:
            candidate = make_person(rng, province=province, business_date=BUSINESS_DATE)
            body = int(candidate.id_no[:17])
            if body not in seen_ids:
                seen_ids.add(body)
                return candidate

    def card_no(position: int) -> str:
        digits = f"{(position * _CARD_STRIDE + 13_579) % 10**8:08d}"
        lead = rng.choice(string.ascii_uppercase) if rng.random() < 0.5 else rng.choice("123456789")
        return lead + digits

    for position in range(n):
        kind = rng.choice(BAD_KINDS) if rng.random() < BAD_SHARE else None
        if kind in _DUPLICATES and last is None:
            kind = None
        app_no = f"{batch_no}{position + 1:07d}"
        photo = f"{app_no}.jpg"
        bank = BANKS[position % len(BANKS)]
        if kind == "E108":
            assert last is not None
            applicant = last[1]
        else:
            applicant = person()
        row = _row(app_no, applicant, bank, card_no(position), photo)
        content: bytes | None = rng.choice(pool)
        turn = turns[kind or ""]
        turns[kind or ""] += 1
        if kind == "E107":
            assert last is not None
            row[_APP_NO] = last[0][_APP_NO]
        elif kind == "E106":
            assert last is not None
            row[_CARD_NO] = last[0][_CARD_NO]
        elif kind == "E101":
            right = row[_ID_NO][-1]
            row[_ID_NO] = row[_ID_NO][:-1] + rng.choice([c for c in "0123456789X" if c != right])
        elif kind == "E102":
            row[_BIRTH_DATE] = _shift(row[_BIRTH_DATE], rng.choice((-1, 1)))
        elif kind == "E103":
            row[_GENDER] = "2" if row[_GENDER] == "1" else "1"
        elif kind == "E104":
            row[_NAME] = row[_NAME][:1] + "3" + row[_NAME][2:] if turn % 2 == 0 else long_name(rng)
        elif kind == "E105":
            card = row[_CARD_NO]
            row[_CARD_NO] = (card if not card.isdigit() else "A" + card[1:]).lower()
        elif kind == "E109":
            row[_APP_TYPE], row[_KEEP_ACCOUNT] = "05", "0"
        elif kind == "E111":
            row[_BANK] = UNKNOWN_BANK
        elif kind == "E112":
            row[_REGION] = rng.choice(other_province_codes(province, year))
        elif kind == "E113":
            content = (None, small_photo(), png_photo(), oversized_photo())[turn % 4]
        elif kind == "E114":
            row[_MOBILE] = make_mobile(rng)[:10]
        elif kind == "E115":
            if turn % 2 == 0:
                row[_ETHNICITY] = "77"
            else:
                row[_ID_VALID_TO] = _shift(BUSINESS_DATE, -1)
        elif kind == "E116":
            del row[_PHOTO]
            content = None
        elif kind == "E117":
            row[_APP_TYPE] = "09"
        if kind is None:
            last = (row, applicant)
        yield row, kind, content


def _shift(text: str, days: int) -> str:
    return f"{parse_date(text) + timedelta(days=days):%Y%m%d}"


def generate(n: int, directory: Path) -> Inputs:
    """Write the APPLY, its zip and both ``.ok`` into ``directory`` (created), streaming."""
    directory.mkdir(parents=True)
    batch_no = f"{BUSINESS_DATE}001"
    name = str(FileName("APPLY", BUREAU, HUB, BUSINESS_DATE, "001"))
    zip_name = name[:-4] + ".zip"
    rng = random.Random(f"bench|{n}|{GENERATOR_VERSION}")
    codec = ENCODINGS[ENCODING]
    crcs: dict[bytes, int] = {}
    expected: Counter[str] = Counter()
    data = _Sink(directory / name)
    archive = _Sink(directory / zip_name)
    with tempfile.TemporaryFile(dir=directory) as spool:
        photos = _StoredZip(archive, spool, BUSINESS_DATE)
        data.write(
            f"H|APPLY|{BUREAU}|{HUB}|{batch_no}|{BUSINESS_DATE}|{n}|0.00|1.0\r\n".encode(codec)
        )
        buffer: list[str] = []
        for seq, (row, kind, content) in enumerate(_lines(n, rng, batch_no), start=1):
            buffer.append(f"D|{seq}|" + "|".join(row))
            expected[kind or "00"] += 1
            if content is not None:
                crc = crcs.get(content)
                if crc is None:
                    crc = crcs[content] = zlib.crc32(content)
                photos.add(f"{batch_no}{seq:07d}.jpg", content, crc)
            if len(buffer) >= 10_000:
                data.write(("\r\n".join(buffer) + "\r\n").encode(codec))
                buffer.clear()
        if buffer:
            data.write(("\r\n".join(buffer) + "\r\n").encode(codec))
        data.write(f"T|{n}|0.00\r\n".encode(codec))
        photos.close()
    data.close()
    archive.close()
    (directory / f"{zip_name}.ok").write_bytes(
        Control(zip_name, archive.size, archive.hexdigest(), photos.count).render()
    )
    (directory / f"{name}.ok").write_bytes(Control(name, data.size, data.hexdigest(), n).render())
    inputs = Inputs(directory, name, zip_name, n, photos.count, dict(sorted(expected.items())))
    meta = {"version": GENERATOR_VERSION, **asdict(inputs)}
    del meta["directory"]
    (directory / "meta.json").write_text(json.dumps(meta, indent=2))
    return inputs


def _cached(directory: Path, n: int) -> Inputs | None:
    try:
        meta = json.loads((directory / "meta.json").read_text())
    except (FileNotFoundError, ValueError):
        return None
    if meta.get("version") != GENERATOR_VERSION or meta.get("lines") != n:
        return None
    try:
        for name in (meta["name"], meta["zip_name"]):
            ok = Control.parse((directory / f"{name}.ok").read_bytes(), name)
            with (directory / name).open("rb") as fh:
                size, sha = sha256_of(fh)
            if (size, sha) != (ok.size, ok.sha256):
                return None
        return Inputs(
            directory, meta["name"], meta["zip_name"], n, meta["photos"], meta["expected"]
        )
    except (FileNotFoundError, KeyError, FileLevelError):
        return None


def ensure_inputs(n: int, workdir: Path) -> Inputs:
    """The inputs for ``n`` lines, generated once (into a temporary directory, then renamed)."""
    directory = workdir / str(n) / "input"
    cached = _cached(directory, n)
    if cached is not None:
        print(f"inputs for {n:,} lines: cached in {directory}", flush=True)
        return cached
    shutil.rmtree(directory, ignore_errors=True)
    staging = directory.with_name("input.tmp")
    shutil.rmtree(staging, ignore_errors=True)
    start = perf_counter()
    generate(n, staging)
    staging.rename(directory)
    inputs = _cached(directory, n)
    assert inputs is not None
    rss = peak_mib()
    size = sum((directory / f).stat().st_size for f in (inputs.name, inputs.zip_name)) / 2**20
    print(
        f"inputs for {n:,} lines: generated in {perf_counter() - start:.1f} s "
        f"({size:,.0f} MiB, generator peak RSS {rss:,.0f} MiB) in {directory}",
        flush=True,
    )
    return inputs


# --------------------------------------------------------------------------- databases


def fresh_database(db: str, run_dir: Path, pg_url: str) -> str:
    """An empty, migrated database for one run; returns its URL."""
    from sqlalchemy import create_engine, make_url, text

    from persistence.db import upgrade

    if db == "sqlite":
        path = run_dir / "sscard.db"
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
        url = f"sqlite:///{path}"
    else:
        url = pg_url
        target = make_url(url)
        admin = create_engine(target.set(database="postgres"), isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            exists = conn.execute(
                text("SELECT 1 FROM pg_database WHERE datname = :d"), {"d": target.database}
            ).first()
            if exists is None:
                conn.execute(text(f'CREATE DATABASE "{target.database}"'))
        admin.dispose()
        engine = create_engine(url)
        with engine.begin() as conn:
            conn.execute(text("DROP SCHEMA IF EXISTS public CASCADE"))
            conn.execute(text("CREATE SCHEMA public"))
        engine.dispose()
    upgrade(url)
    return url


def _link_inputs(inputs: Inputs, pickup: Path) -> None:
    pickup.mkdir(parents=True)
    for name in inputs.files:
        try:
            os.link(inputs.directory / name, pickup / name)
        except OSError:
            shutil.copyfile(inputs.directory / name, pickup / name)


# --------------------------------------------------------------------------- one measurement (child)


def _rss_mib() -> float:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def _peak_mib() -> float:
    return peak_mib()


def _warm_up() -> float:
    """Imports that intake triggers lazily (pandas through pyarrow's ``to_numpy``, PIL's image
    plugins): a cost per process, not per record, so it is timed apart."""
    start = perf_counter()
    import pandas  # noqa: F401
    from PIL import Image

    Image.init()
    return perf_counter() - start


def measure(spec: dict[str, Any]) -> dict[str, Any]:
    """Run intake and delivery once, in this process, and check the outcome."""
    import logging

    from sqlalchemy import text

    from exchange.outbox import deliver
    from exchange.storage import Storage
    from issuance.apply_rules import rules_for
    from issuance.intake import IntakeContext, run_intake
    from persistence.db import make_engine
    from transport.local import LocalRemote
    from transport.remote import Remote
    from transport.sftp import SftpRemote, SftpSettings

    logging.basicConfig(
        level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(name)s %(message)s"
    )
    run_dir = Path(spec["run_dir"])
    engine = make_engine(spec["url"])
    with engine.connect():
        pass
    sftp = spec.get("sftp")
    remote: Remote = (
        SftpRemote(
            SftpSettings(
                host="127.0.0.1",
                port=sftp["port"],
                username=sftp["username"],
                key_file=Path(sftp["key_file"]),
                host_key=sftp["host_key"],
                base_dir=str((run_dir / "remote").resolve()),
            )
        )
        if sftp
        else LocalRemote(run_dir / "remote")
    )
    ctx = IntakeContext(
        conn_id=CONN_ID,
        hub=HUB,
        bureau=BUREAU,
        encoding=ENCODING,
        pickup="pickup",
        drop="drop",
        business_date=BUSINESS_DATE,
        now=NOW,
        rules=rules_for(BUSINESS_DATE, frozenset(BANKS), BUREAU),
        work_dir=run_dir / "work",
        store=Storage(str(run_dir / "storage")),
    )
    warm_up_s = _warm_up()
    baseline = _rss_mib()
    profiler = None
    if spec.get("profile"):
        import cProfile

        profiler = cProfile.Profile()
    start = perf_counter()
    if profiler is not None:
        profiler.enable()
    outcomes = run_intake(remote, engine, ctx)
    if profiler is not None:
        profiler.disable()
    intake_s = perf_counter() - start
    intake_peak = _peak_mib()
    start = perf_counter()
    delivered = deliver(remote, engine, ctx.store, CONN_ID, NOW)
    deliver_s = perf_counter() - start
    if profiler is not None:
        profiler.dump_stats(spec["profile"])

    problems: list[str] = []
    if len(outcomes) != 1 or outcomes[0].outcome != "accepted":
        problems.append(f"expected one accepted file, got {[o.summary() for o in outcomes]}")
    counts = outcomes[0].counts if outcomes else {}
    if counts != spec["expected"]:
        problems.append(f"answer counts {counts} differ from the planned {spec['expected']}")
    with engine.connect() as conn:
        stored = conn.execute(text("SELECT COUNT(*) FROM application")).scalar_one()
    if stored != spec["expected"].get("00"):
        problems.append(f"{stored} applications stored, {spec['expected'].get('00')} expected")
    response = outcomes[0].response if outcomes else None
    ok_path = run_dir / "remote" / "drop" / f"{response}.ok"
    if delivered != 1 or not ok_path.exists():
        problems.append("APPLYRSP not delivered")
    elif Control.parse(ok_path.read_bytes(), str(response)).record_count != spec["lines"]:
        problems.append("APPLYRSP does not answer every line")
    engine.dispose()
    remote.close()
    return {
        "db": spec["db"],
        "transport": "sftp" if sftp else "local",
        "lines": spec["lines"],
        "intake_s": intake_s,
        "deliver_s": deliver_s,
        "warm_up_s": warm_up_s,
        "baseline_mib": baseline,
        "intake_peak_mib": intake_peak,
        "peak_mib": _peak_mib(),
        "accepted": counts.get("00", 0),
        "expected_accepted": spec["expected"].get("00", 0),
        "problems": problems,
    }


# --------------------------------------------------------------------------- the driver


def run_one(
    db: str,
    inputs: Inputs,
    workdir: Path,
    pg_url: str,
    profile: Path | None,
    sftp: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Prepare a fresh database and pickup directory, then measure in a child process."""
    run_dir = workdir / str(inputs.lines) / db
    shutil.rmtree(run_dir, ignore_errors=True)
    run_dir.mkdir(parents=True)
    url = fresh_database(db, run_dir, pg_url)
    _link_inputs(inputs, run_dir / "remote" / "pickup")
    spec = {
        "db": db,
        "url": url,
        "run_dir": str(run_dir),
        "lines": inputs.lines,
        "expected": inputs.expected,
        "profile": str(profile) if profile else None,
        "sftp": sftp,
    }
    log_path = workdir / str(inputs.lines) / f"{db}.log"
    over = " over SFTP" if sftp else ""
    print(f"measuring {db}{over}, {inputs.lines:,} lines (log: {log_path}) …", flush=True)
    with log_path.open("w") as log:
        child = subprocess.run(
            [sys.executable, "-m", "bench.intake", "--measure", json.dumps(spec)],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=log,
            text=True,
            check=False,
        )
    if child.returncode != 0:
        tail = log_path.read_text().splitlines()[-20:]
        raise SystemExit(f"{db} run failed (exit {child.returncode}):\n" + "\n".join(tail))
    result: dict[str, Any] = json.loads(child.stdout.strip().splitlines()[-1])
    shutil.rmtree(run_dir / "remote", ignore_errors=True)
    shutil.rmtree(run_dir / "var", ignore_errors=True)
    return result


def print_table(results: list[dict[str, Any]]) -> None:
    head = (
        f"{'database':<10} {'via':<5} {'lines':>10} {'intake s':>9} {'records/s':>10} {'deliver s':>9} "
        f"{'warm-up s':>9} {'base MiB':>9} {'peak MiB':>9}  check"
    )
    print()
    print(head)
    print("-" * len(head))
    for r in results:
        check = "ok" if not r["problems"] else "FAILED"
        print(
            f"{r['db']:<10} {r['transport']:<5} {r['lines']:>10,} {r['intake_s']:>9.2f} {r['lines'] / r['intake_s']:>10,.0f} "
            f"{r['deliver_s']:>9.2f} {r['warm_up_s']:>9.2f} {r['baseline_mib']:>9,.0f} {r['peak_mib']:>9,.0f}  "
            f"{check} ({r['accepted']:,}/{r['expected_accepted']:,} accepted)"
        )
        for problem in r["problems"]:
            print(f"    {problem}")


#: the ratio of intake to its storage floor the exchange issue aims at
TARGET_FLOOR_RATIO = 2.0


def print_floor_ratios(results: list[dict[str, Any]]) -> None:
    """The bare cost of storing the same number of accepted lines (``bench.pg_floor``:
    ``application`` and ``application_state`` rows with their indexes, made inside
    PostgreSQL, best of three), measured now on this machine, and intake's ratio to it:
    machines differ by up to 3×, the ratio much less."""
    from bench.pg_floor import DEFAULT_URL, measure

    runs = [r for r in results if r["db"] == "postgres"]
    if not runs:
        return
    floors: dict[int, float] = {}
    for r in runs:
        if r["lines"] not in floors:
            url = fresh_database(
                "postgres", Path(), os.environ.get(f"{ENV_PG_URL}_FLOOR", DEFAULT_URL)
            )
            seconds = measure(url, r["lines"], lambda label, s: None)
            floors[r["lines"]] = seconds["application"] + seconds["application_state"]
    head = f"{'lines':>10} {'intake s':>9} {'floor s':>8} {'intake/floor':>13}"
    print()
    print("PostgreSQL intake against its storage floor, same run:")
    print(head)
    print("-" * len(head))
    for r in runs:
        floor = floors[r["lines"]]
        print(
            f"{r['lines']:>10,} {r['intake_s']:>9.2f} {floor:>8.2f} {r['intake_s'] / floor:>12.2f}×"
            f"  (aim ≤ {TARGET_FLOOR_RATIO:.0f}×)"
        )


def _verdict(ok: bool) -> str:
    return "met   " if ok else "MISSED"


def print_targets(results: list[dict[str, Any]]) -> bool:
    """The issue's targets, judged on what was measured."""
    met = True
    print()
    for r in results:
        if r["db"] == "postgres":
            rate = r["lines"] / r["intake_s"]
            ok = rate >= TARGET_RECORDS_PER_S
            met &= ok
            print(
                f"{_verdict(ok)} postgres {r['lines']:,}: {rate:,.0f} records/s "
                f"(target ≥ {TARGET_RECORDS_PER_S:,})"
            )
        ok = r["peak_mib"] < TARGET_RSS_MIB
        met &= ok
        print(
            f"{_verdict(ok)} {r['db']} {r['lines']:,}: peak RSS {r['peak_mib']:,.0f} MiB "
            f"(target < {TARGET_RSS_MIB:,})"
        )
    for db in ("sqlite", "postgres"):
        runs = sorted((r for r in results if r["db"] == db), key=lambda r: r["lines"])
        if len(runs) >= 2:
            small, large = runs[0], runs[-1]
            growth = large["peak_mib"] / small["peak_mib"]
            ok = growth < 1.25
            met &= ok
            print(
                f"{_verdict(ok)} {db}: peak RSS {small['peak_mib']:,.0f} MiB at {small['lines']:,} lines, "
                f"{large['peak_mib']:,.0f} MiB at {large['lines']:,} (×{growth:.2f}; flat means < ×1.25)"
            )
    return met


def print_profile(path: Path, top: int = 15) -> None:
    import pstats

    print(f"\nprofile {path} (top {top} by cumulative time):")
    stats = pstats.Stats(str(path), stream=sys.stdout)
    stats.strip_dirs().sort_stats("cumulative").print_stats(top)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.intake", description=__doc__.splitlines()[0]
    )
    parser.add_argument(
        "--lines", type=int, nargs="+", default=[200_000], help="file sizes in lines"
    )
    parser.add_argument("--db", choices=("sqlite", "postgres", "both"), default="both")
    parser.add_argument(
        "--pg-url",
        default=os.environ.get(ENV_PG_URL, DEFAULT_PG_URL),
        help=f"a PostgreSQL database the benchmark may wipe (default ${ENV_PG_URL} or {DEFAULT_PG_URL})",
    )
    parser.add_argument(
        "--transport",
        choices=("local", "sftp"),
        default="local",
        help="read the pickup directory locally, or over SFTP from an OpenSSH sshd on loopback",
    )
    parser.add_argument("--workdir", type=Path, default=DEFAULT_WORKDIR)
    parser.add_argument(
        "--profile", type=Path, help="write a cProfile of each run_intake into this directory"
    )
    parser.add_argument(
        "--strict", action="store_true", help="exit 2 when a target is missed (for a CI gate)"
    )
    parser.add_argument(
        "--floor",
        action="store_true",
        help="also measure the storage floor (bench.pg_floor) at each size, in the same run, "
        "and print intake / floor",
    )
    parser.add_argument("--measure", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.measure:
        print(json.dumps(measure(json.loads(args.measure))), flush=True)
        return 0

    databases = ["sqlite", "postgres"] if args.db == "both" else [args.db]
    results: list[dict[str, Any]] = []
    profiles: list[Path] = []
    with contextlib.ExitStack() as stack:
        sftp = None
        if args.transport == "sftp":
            from sandbox.openssh import OpenSshServer

            server = stack.enter_context(OpenSshServer(args.workdir / "sshd"))
            sftp = {
                "port": server.port,
                "username": server.username,
                "key_file": str(server.client_key_path),
                "host_key": server.host_key_line,
            }
        for n in args.lines:
            inputs = ensure_inputs(n, args.workdir)
            for db in databases:
                profile = None
                if args.profile:
                    args.profile.mkdir(parents=True, exist_ok=True)
                    profile = args.profile / f"intake-{db}-{n}.prof"
                    profiles.append(profile)
                results.append(run_one(db, inputs, args.workdir, args.pg_url, profile, sftp))
    print_table(results)
    if args.floor:
        print_floor_ratios(results)
    met = print_targets(results)
    for profile in profiles:
        print_profile(profile)
    if any(r["problems"] for r in results):
        return 1
    return 2 if args.strict and not met else 0


if __name__ == "__main__":
    sys.exit(main())
