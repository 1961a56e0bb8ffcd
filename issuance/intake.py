"""APPLY intake (ICD §2–§6, §5.1–§5.2): take complete application batches from a bureau's
pickup directory, answer every line in an APPLYRSP, store the accepted applications.

One file is one transaction: its lines, its answers, its registry row and its response
(in the outbox) are committed together or not at all, so a crash half-way leaves no
trace (at most a response file under ``var/outbox`` that no outbox row names) and the
next run redoes the file. Files are archived on the server only after their outcome is
committed; a file seen before (same NAME and SHA-256) is archived again and changes
nothing else.
"""

from __future__ import annotations

import hashlib
import logging
import os
import queue
import threading
import traceback
from collections import Counter, deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from functools import partial
from itertools import pairwise
from pathlib import Path
from typing import BinaryIO

import numpy as np
import numpy.typing as npt
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from sqlalchemy import Connection, Engine

from issuance.apply_rules import (
    ApplyRules,
    Deferred,
    business_window,
    check_apply_chunk,
    photo_missing,
)
from issuance.inbox import Inbox
from issuance.photos import PhotoNames, PhotoZip, check_photo_zip
from persistence import apply_store, registry
from persistence.db import describe_database_error, is_outage
from schemas.codec import NO_FAIL, Chunk, DelimitedReader, Header, write_delimited
from schemas.codes import FileCode, LineCode, message, reason_text
from schemas.files import SAFE_NAME, Control, FileLevelError, FileName
from schemas.layouts import APPLY, APPLYRSP, answered_key
from transport.errors import PublishConflictError, TransportError
from transport.remote import Remote, safe_join

log = logging.getLogger("sscard.intake")


#: lines naming a photo that may be stored before the photo zip has landed (their names are
#: kept until it has: about 50 bytes a line)
MAX_UNSETTLED = 400_000


@dataclass(frozen=True)
class IntakeContext:
    """Everything one intake run needs to know: who, which day, which rules."""

    conn_id: str
    hub: str
    bureau: str
    encoding: str
    pickup: str
    drop: str
    business_date: str
    now: datetime
    rules: ApplyRules
    max_forward_days: int = 5
    zip_wait: timedelta = timedelta(hours=2)
    var_dir: Path = Path("var")
    chunk_lines: int = 50_000


@dataclass
class FileOutcome:
    """What happened to one file: shown in task logs and returned to the DAG."""

    name: str
    outcome: str
    file_code: str | None = None
    counts: dict[str, int] = field(default_factory=dict)
    response: str | None = None

    @property
    def accepted(self) -> int:
        return self.counts.get("00", 0)

    @property
    def rejected(self) -> int:
        return sum(n for k, n in self.counts.items() if k != "00")

    def summary(self) -> str:
        if self.outcome == "accepted" and self.response is None:
            return f"{self.name}: accepted; " + ", ".join(
                f"{k}={n}" for k, n in self.counts.items()
            )
        if self.outcome == "accepted":
            by_code = (
                ", ".join(f"{k}={n}" for k, n in sorted(self.counts.items()) if k != "00") or "none"
            )
            return (
                f"{self.name}: accepted; lines={self.accepted + self.rejected} "
                f"accepted={self.accepted} rejected={self.rejected} ({by_code}); response {self.response}"
            )
        if self.outcome == "rejected":
            return (
                f"{self.name}: file rejected {self.file_code} ({message(self.file_code or 'F01')})"
            )
        return f"{self.name}: {self.outcome}"


# --------------------------------------------------------------------------- checks without a database


def check_name(name: str, hub: str, bureau: str | None) -> FileName:
    """ICD §3: the name must parse (F07), name an APPLY text file sent to the hub (F04)."""
    fname = FileName.parse(name)
    if fname.type != "APPLY" or fname.ext != "txt":
        raise FileLevelError(FileCode.F04, "wrong TYPE: not a file a bureau sends to the hub")
    if fname.receiver != hub:
        raise FileLevelError(FileCode.F04, "file is not addressed to this hub")
    if bureau is not None and fname.sender != bureau:
        raise FileLevelError(FileCode.F04, "sender is not the bureau of this connection")
    return fname


def check_header(
    header: Header, fname: FileName, business_date: str, max_forward_days: int
) -> None:
    """ICD §3, §4.1: header agrees with the name; a request is dated today up to
    ``max_forward_days`` ahead, never earlier (F04)."""
    if (header.sender, header.receiver) != (fname.sender, fname.receiver):
        raise FileLevelError(FileCode.F04, "header SENDER/RECEIVER differ from the file name")
    if header.business_date != fname.business_date:
        raise FileLevelError(FileCode.F04, "header BUSINESS_DATE differs from the file name")
    first, last = business_window(business_date, max_forward_days)
    if not first <= header.business_date <= last:
        raise FileLevelError(FileCode.F04, "business date not allowed")
    if header.total_fen != 0:
        raise FileLevelError(FileCode.F09, "APPLY total amount must be 0.00")


def validated_chunks(
    reader: DelimitedReader, rules: ApplyRules, photos: PhotoZip | Deferred | None
) -> Iterator[Chunk]:
    """Every line rule that needs no database, chunk by chunk (the photo rule too, unless
    it is ``Deferred``)."""
    valid = photos.valid if isinstance(photos, PhotoZip) else photos
    for chunk in reader.chunks():
        check_apply_chunk(chunk, rules, valid)
        yield chunk


def names_photos(chunk: Chunk) -> bool:
    return bool(pc.any(pc.not_equal(chunk.column("photo"), "")).as_py())


def _content_sha(chunk: Chunk) -> pa.Array:
    """A digest of each line's content after the key, to tell a repeat from a reuse: the
    SHA-1 (hex) of its fields joined with ``|`` in UTF-8, hashed straight from the joined
    column's buffer."""
    cols = [chunk.column(n) for n in APPLY.names[1:]]
    joined = pc.binary_join_element_wise(*cols, "|").combine_chunks()
    n = len(joined)
    offsets = np.frombuffer(
        joined.buffers()[1], dtype=np.int32, count=n + 1, offset=joined.offset * 4
    ).tolist()
    data = memoryview(joined.buffers()[2] or b"")
    sha1 = hashlib.sha1
    return pa.array(
        [sha1(data[a:b], usedforsecurity=False).hexdigest() for a, b in pairwise(offsets)],
        pa.string(),
    )


def chunk_repeats(chunk: Chunk) -> npt.NDArray[np.int64]:
    """For each line, the earliest field whose key an earlier line of the same chunk has
    (ICD §4.2: an ``app_no``, the ``id_no`` of a ``01``, a ``card_no``, an ``old_card_no``
    for the same ``id_no``), ``NO_FAIL`` if none. Lines with a wrong number of fields take
    no part."""
    first = np.full(len(chunk), NO_FAIL, dtype=np.int64)
    taking_part = chunk.fail_index >= 0
    for name, _, keys, cover in apply_store.REPEATS:
        mask = taking_part
        if cover is not None:
            column, value, equal = cover
            mask = mask & ((chunk.strings(column) == value) == equal)
        rows = np.flatnonzero(mask)
        if rows.size < 2:
            continue
        frame = pd.DataFrame({k: chunk.strings(k)[rows] for k in keys})
        repeated = rows[frame.duplicated(keep="first").to_numpy()]
        first[repeated] = np.minimum(first[repeated], APPLY.index(name))
    return first


def stage_table(chunk: Chunk) -> pa.Table:
    fail_idx = chunk.fail_index.astype(np.int64)
    return pa.table(
        {
            "seq": chunk.table.column("_seq"),
            "line_no": chunk.table.column("_line"),
            "content_sha": _content_sha(chunk),
            "fail_idx": pa.array(fail_idx),
            "fail_code": pa.array(chunk.fail_code.tolist(), pa.string()),
            "fail_field": pa.array(chunk.field_names(), pa.string()),
            "dup_idx": pa.array(chunk_repeats(chunk)),
            **{n: chunk.column(n) for n in APPLY.names},
        }
    )


# --------------------------------------------------------------------------- writing answers


def render_response(
    out: BinaryIO,
    header: Header,
    hub: str,
    encoding: str,
    rows: Iterator[tuple[str, str, str]],
    count: int,
) -> None:
    """APPLYRSP (ICD §5.2): the request's BATCH_NO and date, one line per APPLY line."""
    rsp_header = Header(
        "APPLYRSP", hub, header.sender, header.batch_no, header.business_date, count
    )
    write_delimited(
        out,
        APPLYRSP,
        rsp_header,
        (
            (answered_key(app_no), result, code, reason_text(code) if code else "")
            for app_no, result, code in rows
        ),
        encoding,
    )


def render_rej(name: str, code: str) -> bytes:
    """``NAME.rej``: one UTF-8 line ``NAME|CODE|message`` (ICD §6)."""
    return f"{name}|{code}|{message(code, 'zh')} / {message(code, 'en')}\r\n".encode()


# --------------------------------------------------------------------------- the run


@dataclass(frozen=True)
class Landed:
    """A data file and its control file copied from the pickup directory to local disk."""

    name: str
    path: Path
    control: bytes
    size: int
    sha256: str
    #: the photo zip of an APPLY, when it and its control file have arrived; landed by
    #: :func:`land_photos` while the lines are read
    zip_name: str | None = None
    #: the digest of the companions as found: the control file, the zip's control file
    companions: str = ""


#: file-level rejections decided by a file's companions (its control file, its photo zip)
#: rather than its own bytes: the same data file delivered again with them corrected is
#: taken afresh (docs/decisions.md 4)
COMPANION_CODES = frozenset({str(FileCode.F01), str(FileCode.F10)})

#: what else a bureau sends to the hub (ICD §5.7 STATUS, §5.10 DISB): left in the pickup
#: for the flows that take them; a file of any other TYPE is APPLY intake's to answer F04
OTHER_BUREAU_TYPES = frozenset({"STATUS", "DISB"})


def complete_files(remote: Remote, pickup: str) -> tuple[list[str], list[str]]:
    """Data files whose ``.ok`` has arrived, and the files still waiting: data files
    without their ``.ok``, and photo zips whose data file has not arrived (ICD §2).

    Photo zips are companions of their APPLY, never files of their own, whichever of the
    two arrives first; ``.part`` files are never read.
    """
    names = {e.name for e in remote.list_dir(pickup)}
    data = sorted(n for n in names if not n.endswith((".ok", ".part", ".rej", ".zip")))
    ready = [n for n in data if f"{n}.ok" in names]
    early_zips = sorted(
        n for n in names if n.endswith(".zip") and f"{n.removesuffix('.zip')}.txt" not in names
    )
    return ready, [n for n in data if n not in ready] + early_zips


def land(remote: Remote, ctx: Inbox, name: str) -> Landed:
    """Copy a data file and its control file to ``var/received/<conn>/<date>/``, and note
    whether its photo zip and the zip's control file have both arrived. The remote name is
    validated before any local path is built, and a name that does not match ICD §3 (to
    be rejected F07) is kept as ``F07-<SHA-256 prefix>``, never under its own name."""
    local_dir = ctx.var_dir / "received" / ctx.conn_id / ctx.business_date
    local_dir.mkdir(parents=True, exist_ok=True)
    try:
        FileName.parse(name)
        named = True
    except FileLevelError:  # F07: such a name never builds a local path (ICD §2)
        named = False
    path = safe_join(local_dir, name if named else f"landing-{os.getpid()}-{threading.get_ident()}")
    size, sha = remote.download(f"{ctx.pickup}/{name}", path)
    if not named:
        path = path.replace(local_dir / f"F07-{sha[:32]}")
    control = remote.read_bytes(f"{ctx.pickup}/{name}.ok")
    path.with_name(f"{path.name}.ok").write_bytes(control)
    zip_name: str | None = None
    zip_control = b"(no photo zip)"
    if name.endswith(".txt"):
        candidate = name[:-4] + ".zip"
        if remote.exists(f"{ctx.pickup}/{candidate}") and remote.exists(
            f"{ctx.pickup}/{candidate}.ok"
        ):
            zip_name = candidate
            zip_control = remote.read_bytes(f"{ctx.pickup}/{candidate}.ok")
    companions = hashlib.sha256(control + b"\n--\n" + zip_control).hexdigest()
    return Landed(name, path, control, size, sha, zip_name, companions)


def land_photos(remote: Remote, ctx: Inbox, landed: Landed) -> PhotoZip:
    """Copy the photo zip and its control file beside the data file and check them (F10).
    Intake runs this in a thread of its own while the lines are read and checked, so the
    zip is downloaded apart (``Remote.download_apart``), and nothing else uses ``remote``
    meanwhile."""
    assert landed.zip_name is not None
    zip_path = safe_join(landed.path.parent, landed.zip_name)
    digest = remote.download_apart(f"{ctx.pickup}/{landed.zip_name}", zip_path)
    control = remote.read_bytes(f"{ctx.pickup}/{landed.zip_name}.ok")
    safe_join(landed.path.parent, f"{landed.zip_name}.ok").write_bytes(control)
    photos = check_photo_zip(zip_path, control, landed.zip_name, digest)
    log.info(
        "%s: photo zip landed and checked: %d entries, %d valid photos",
        landed.zip_name,
        photos.entries,
        len(photos.valid),
    )
    return photos


def _companions(remote: Remote, pickup: str, name: str) -> list[str]:
    names = [name, f"{name}.ok"]
    if name.endswith(".txt"):
        zip_name = name[:-4] + ".zip"
        names += [zip_name, f"{zip_name}.ok"]
    return [n for n in names if remote.exists(f"{pickup}/{n}")]


def archive(remote: Remote, ctx: Inbox, name: str, rejected: bool) -> None:
    """Move the file and its companions to ``pickup/archive|rejected/YYYYMMDD/`` (ICD §2)."""
    dest = f"{ctx.pickup}/{'rejected' if rejected else 'archive'}/{ctx.business_date}"
    for n in _companions(remote, ctx.pickup, name):
        remote.move(f"{ctx.pickup}/{n}", dest)


def companions_changed(prior: registry.PriorFile, landed: Landed) -> bool:
    """The same data file was rejected F01 or F10 (decided by its companions) and comes
    again with other companions: it is taken afresh (docs/decisions.md 4)."""
    return prior.file_code in COMPANION_CODES and prior.companions_sha256 != landed.companions


def process_file(remote: Remote, engine: Engine, ctx: IntakeContext, name: str) -> FileOutcome:
    """Take one complete file from the pickup directory to its committed outcome."""
    if not SAFE_NAME.fullmatch(name):
        return _reject_unsafe(remote, engine, ctx, name)
    landed = land(remote, ctx, name)
    with engine.connect() as conn:
        prior = registry.find_same(conn, ctx.conn_id, name, landed.sha256)
    if prior is not None and prior.outcome in ("accepted", "rejected"):
        if companions_changed(prior, landed):
            log.info(
                "%s: delivered again after %s with its companions changed: taken afresh",
                name,
                prior.file_code,
            )
            prior = None
        else:
            archive(remote, ctx, name, rejected=prior.outcome == "rejected")
            log.info("%s: delivered again with the same content; archived, nothing else done", name)
            return FileOutcome(name, "redelivered", prior.file_code)
    waiting_id = prior.id if prior is not None else None
    first_seen = prior.first_seen_at if prior is not None else ctx.now
    try:
        outcome = _accept(remote, engine, ctx, landed, waiting_id, first_seen)
    except FileLevelError as exc:
        outcome = reject_file(engine, ctx, landed, exc, waiting_id, first_seen)
    if outcome.outcome in ("accepted", "rejected"):
        archive(remote, ctx, name, rejected=outcome.outcome == "rejected")
    log.info("%s", outcome.summary())
    return outcome


def _reject_unsafe(remote: Remote, engine: Engine, ctx: Inbox, name: str) -> FileOutcome:
    """A name unsafe to write (ICD §2): F07, no local copy under that name and no ``.rej``."""
    data = remote.read_bytes(f"{ctx.pickup}/{name}")
    sha = hashlib.sha256(data).hexdigest()
    with engine.begin() as conn:
        if registry.find_same(conn, ctx.conn_id, name[:100], sha) is None:
            registry.record_file(
                conn,
                conn_id=ctx.conn_id,
                name=name[:100],
                sha256=sha,
                size=len(data),
                outcome="rejected",
                file_code=str(FileCode.F07),
                detail="file name unsafe; no .rej written",
                accepted_count=0,
                rejected_count=0,
                first_seen_at=ctx.now,
                processed_at=ctx.now,
            )
    archive(remote, ctx, name, rejected=True)
    log.warning("a file with an unsafe name was rejected F07 and moved to rejected/")
    return FileOutcome(name, "rejected", str(FileCode.F07))


class _WaitForZip(Exception):
    pass


def _accept(
    remote: Remote,
    engine: Engine,
    ctx: IntakeContext,
    landed: Landed,
    waiting_id: int | None,
    first_seen: datetime,
) -> FileOutcome:
    fname = check_name(landed.name, ctx.hub, ctx.bureau)
    control = Control.parse(landed.control, landed.name)
    control.verify(landed.size, landed.sha256)
    with landed.path.open("rb") as fh:
        reader = DelimitedReader(fh, APPLY, ctx.encoding, ctx.chunk_lines, control.record_count)
        header = reader.header
        check_header(header, fname, ctx.business_date, ctx.max_forward_days)
        with engine.connect() as conn:
            if registry.conflicting(
                conn, header.sender, "APPLY", landed.name, header.batch_no, landed.sha256
            ):
                raise FileLevelError(
                    FileCode.F05, "NAME or BATCH_NO already processed with other content"
                )
        # The response is written into the outbox spool before the transaction commits:
        # whatever stops the file from committing removes it.
        response = ctx.var_dir / "outbox" / ctx.business_date / str(fname.response())
        # The photo zip lands and is checked while the lines are read, checked and stored;
        # the photo rule then applies to the lines stored before it had landed (see
        # _load), and the file never leaves here (to be archived) while it is landing.
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="photos") as lander:
            photos = (
                lander.submit(land_photos, remote, ctx, landed)
                if landed.zip_name is not None
                else None
            )
            try:
                with engine.begin() as conn:
                    return _load(
                        conn, ctx, landed, reader, header, photos, waiting_id, first_seen, response
                    )
            except _WaitForZip:
                response.unlink(missing_ok=True)
            except FileLevelError as exc:
                # A file-level failure found in the lines gives way to the zip's own (as if
                # the zip had been checked before the first line), and to a zip that could
                # not be landed at all.
                response.unlink(missing_ok=True)
                zip_failure = photos.exception() if photos is not None else None
                if zip_failure is None or zip_failure is exc:
                    raise
                if isinstance(zip_failure, FileLevelError):
                    raise zip_failure from None
                # The zip could not be landed (a transport failure): the file is taken
                # again by a later run rather than answered for its lines alone.
                raise zip_failure from exc
            except BaseException:
                response.unlink(missing_ok=True)
                raise
    if ctx.now - first_seen >= ctx.zip_wait:
        raise FileLevelError(FileCode.F10, "photo zip missing past zip_wait")
    with engine.begin() as conn:
        if waiting_id is None:
            registry.record_file(conn, **_file_values(ctx, landed, fname, "waiting", first_seen))
    log.info(
        "%s: waiting for its photo zip (first seen %s, F10 at %s)",
        landed.name,
        first_seen.isoformat(),
        (first_seen + ctx.zip_wait).isoformat(),
    )
    return FileOutcome(landed.name, "waiting")


def _file_values(
    ctx: Inbox, landed: Landed, fname: FileName | None, outcome: str, first_seen: datetime
) -> dict[str, object]:
    return {
        "conn_id": ctx.conn_id,
        "name": landed.name[:100],
        "type": fname.type if fname else None,
        "sender": fname.sender if fname else None,
        "receiver": fname.receiver if fname else None,
        "business_date": fname.business_date if fname else None,
        "sha256": landed.sha256,
        "size": landed.size,
        "outcome": outcome,
        "accepted_count": 0,
        "rejected_count": 0,
        "local_path": str(landed.path),
        "first_seen_at": first_seen,
    }


def _load(
    conn: Connection,
    ctx: IntakeContext,
    landed: Landed,
    reader: DelimitedReader,
    header: Header,
    photos: Future[PhotoZip] | None,
    waiting_id: int | None,
    first_seen: datetime,
    response_path: Path,
) -> FileOutcome:
    fname = FileName.parse(landed.name)
    values = _file_values(ctx, landed, fname, "accepted", first_seen)
    values.update(batch_no=header.batch_no, processed_at=ctx.now)
    if waiting_id is None:
        file_id = registry.record_file(conn, **values)
    else:
        file_id = waiting_id
        registry.update_file(conn, file_id, **values)
    apply_store.create_stage(conn)
    renewal_limit = _renewal_limit(ctx.business_date)
    response_name = response_path.name
    response_path.parent.mkdir(parents=True, exist_ok=True)
    # A chunk's answers are final once it is checked, stored and, when the file names
    # photos, the photo rule has been applied to it: a third thread writes them to APPLYRSP
    # while the database goes on with the next chunk.
    # The queue is short: chunks settled together when the zip lands wait here for the
    # writer one at a time rather than all at once in memory.
    answered: queue.Queue[list[tuple[str, str, str]] | None] = queue.Queue(maxsize=2)
    written: Future[None] | None = None

    def pass_on(part: list[tuple[str, str, str]] | None) -> None:
        """Hand answers to the writer, waiting while it catches up; if it has stopped, its
        error is raised where it is awaited below, not waited for here."""
        while True:
            try:
                answered.put(part, timeout=0.5)
                return
            except queue.Full:
                if written is not None and written.done():
                    return

    # Chunks stored before the photo zip had landed wait here for the photo rule: the zip
    # is downloaded and checked while the lines are read, checked and stored.
    unsettled: deque[tuple[int, int, pa.Table, pa.Table]] = deque()

    def settle(valid: PhotoNames | None) -> None:
        """The photo rule (E113) for every chunk stored and not yet settled, then its
        answers, in SEQ order (``valid`` None: the file names no photo)."""
        while unsettled:
            lo, hi, lines, stored = unsettled.popleft()
            if valid is not None:
                missing = photo_missing(lines.column("photo"), valid)
                seqs = lines.column("seq").to_numpy()[missing].tolist()
                apply_store.reject_lines(conn, seqs, stored, "photo", LineCode.E113)
            pass_on(apply_store.chunk_answers(conn, lo, hi))

    def load(table: pa.Table, lo: int, hi: int) -> None:
        apply_store.stage(conn, table)
        apply_store.check_chunk(conn, header.sender, file_id, renewal_limit, lo, hi, ctx.hub)
        stored = apply_store.store_chunk(
            conn, file_id, header.sender, ctx.business_date, table, lo, hi
        )
        named = table.filter(pc.not_equal(table.column("photo"), "")).select(["seq", "photo"])
        unsettled.append((lo, hi, named, stored))
        if photos is None:
            settle(None)
        elif photos.done() or sum(len(c[2]) for c in unsettled) > MAX_UNSETTLED:
            # Beyond MAX_UNSETTLED lines ahead of the zip, the lines wait for it.
            settle(photos.result().valid)

    def answers() -> Iterator[tuple[str, str, str]]:
        while (part := answered.get()) is not None:
            yield from part

    with (
        response_path.open("wb") as out,
        ThreadPoolExecutor(max_workers=1, thread_name_prefix="applyrsp") as writer,
    ):
        written = writer.submit(
            render_response, out, header, ctx.hub, ctx.encoding, answers(), header.record_count
        )
        try:
            chunks = validated_chunks(reader, ctx.rules, Deferred.PHOTOS)
            _stage_lines(landed.name, chunks, photos is not None, load)
            # A file of no lines still has its zip checked.
            settle(photos.result().valid if photos is not None else None)
        finally:
            pass_on(None)
        written.result()
    apply_store.commit_lines(conn, file_id, header.sender)
    counts = apply_store.answer_counts(conn)
    registry.queue_outbound(
        conn,
        conn_id=ctx.conn_id,
        directory=ctx.drop,
        name=response_name,
        type_="APPLYRSP",
        path=response_path,
        record_count=reader.detail_count,
        created_at=ctx.now,
        source_file_id=file_id,
    )
    accepted = counts.get("00", 0)
    registry.update_file(
        conn,
        file_id,
        record_count=reader.detail_count,
        accepted_count=accepted,
        rejected_count=reader.detail_count - accepted,
    )
    apply_store.drop_stage(conn)
    return FileOutcome(landed.name, "accepted", None, counts, response_name)


def _stage_lines(
    name: str,
    chunks: Iterator[Chunk],
    has_photos: bool,
    load: Callable[[pa.Table, int, int], None],
) -> None:
    """Stage, check and store every checked chunk, in order. The database works on one
    chunk (in a worker thread, the driver waiting without the GIL) while the next one is
    read and checked; the connection is never used by both threads at once, and a failure
    waits for the chunk in flight before it leaves."""
    named = False
    staged = 0
    loading: Future[None] | None = None
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="stage") as loader:
        for chunk in chunks:
            named = named or names_photos(chunk)
            if named and not has_photos:
                raise _WaitForZip
            table = stage_table(chunk)
            if loading is not None:
                loading.result()
            loading = loader.submit(load, table, staged + 1, staged + len(chunk))
            staged += len(chunk)
            log.info("%s: %d lines checked", name, staged)
        if loading is not None:
            loading.result()


def _renewal_limit(business_date: str) -> str:
    """The latest expiry date a renewal may have today (renewal opens 60 days before expiry)."""
    d = date(int(business_date[:4]), int(business_date[4:6]), int(business_date[6:])) + timedelta(
        days=60
    )
    return d.strftime("%Y%m%d")


def reject_file(
    engine: Engine,
    ctx: Inbox,
    landed: Landed,
    exc: FileLevelError,
    waiting_id: int | None,
    first_seen: datetime,
) -> FileOutcome:
    """Record a file-level rejection and queue ``NAME.rej`` (only for a name safe to write)."""
    try:
        fname: FileName | None = FileName.parse(landed.name)
    except FileLevelError:
        fname = None
    values = _file_values(ctx, landed, fname, "rejected", first_seen)
    values.update(file_code=str(exc.code), detail=exc.detail[:200], processed_at=ctx.now)
    if str(exc.code) in COMPANION_CODES:
        values.update(companions_sha256=landed.companions)
    with engine.begin() as conn:
        if waiting_id is None:
            file_id = registry.record_file(conn, **values)
        else:
            file_id = waiting_id
            registry.update_file(conn, file_id, **values)
        _queue_rej(conn, ctx, landed.name, exc.code, file_id)
    log.warning("%s: rejected as a whole, %s: %s", landed.name, exc.code, exc.detail)
    return FileOutcome(landed.name, "rejected", str(exc.code))


def _queue_rej(conn: Connection, ctx: Inbox, name: str, code: str, file_id: int) -> None:
    """``NAME.rej`` for the sender (ICD §6), only for a name safe to write (ICD §2)."""
    if SAFE_NAME.fullmatch(name):
        registry.queue_answer_again(
            conn,
            conn_id=ctx.conn_id,
            directory=ctx.drop,
            name=f"{name}.rej",
            type_="REJ",
            data=render_rej(name, code),
            record_count=1,
            created_at=ctx.now,
            source_file_id=file_id,
        )


def deliver(remote: Remote, engine: Engine, conn_id: str, now: datetime) -> int:
    """Publish every file in the outbox for ``conn_id`` (``.part`` → rename → ``.ok``)."""
    with engine.connect() as conn:
        pending = registry.pending_outbound(conn, conn_id)
    delivered = 0
    for item in pending:
        try:
            remote.publish(item.directory, item.name, item.data, item.record_count)
        except PublishConflictError:
            if item.type != "REJ":
                raise  # a file the hub names itself never meets another of its name
            # the .rej of an earlier delivery of the same NAME is still there
            log.warning(
                "%s: an earlier file of this name is still in %s; kept in the outbox until "
                "the counterparty has taken it",
                item.name,
                item.directory,
            )
            continue
        with engine.begin() as conn:
            registry.mark_delivered(conn, item, now)
        delivered += 1
        log.info("delivered %s to %s (%d records)", item.name, item.directory, item.record_count)
    return delivered


def run_intake(remote: Remote, engine: Engine, ctx: IntakeContext) -> list[FileOutcome]:
    """Every complete file in the bureau's pickup directory, one transaction each."""
    ready, incomplete = complete_files(remote, ctx.pickup)
    if incomplete:
        log.info(
            "%d file(s) not complete yet (a data file without its .ok, or a photo zip "
            "without its data file): %s",
            len(incomplete),
            ", ".join(incomplete[:20]),
        )
    outcomes = _zips_alone(remote, engine, ctx, [n for n in incomplete if n.endswith(".zip")])
    for name in ready:
        try:
            fname: FileName | None = FileName.parse(name)
        except FileLevelError:
            fname = None
        if fname is not None and fname.type in OTHER_BUREAU_TYPES:
            continue
        outcomes.append(take_apart(name, partial(process_file, remote, engine, ctx)))
    tally = Counter(o.outcome for o in outcomes)
    log.info(
        "intake %s: %d file(s): %s; lines accepted=%d rejected=%d",
        ctx.bureau,
        len(outcomes),
        dict(tally),
        sum(o.accepted for o in outcomes),
        sum(o.rejected for o in outcomes),
    )
    raise_if_failed(outcomes)  # the run fails at the end so the operators see it
    return outcomes


def take_apart(name: str, take: Callable[[str], FileOutcome]) -> FileOutcome:
    """``take(name)`` for one file, or the outcome ``failed`` when it fails for a reason no
    reason code covers: nothing of the file was committed, it stays in the pickup, the
    error is logged without a field value and the other files go on. A server or a
    database that cannot be used is raised: the whole run is retried."""
    try:
        return take(name)
    except TransportError:
        raise
    except Exception as exc:
        if is_outage(exc):
            raise
        log.error(
            "%s: could not be processed (%s); left in pickup for the next run\n%s",
            name,
            describe_failure(exc),
            "".join(traceback.format_tb(exc.__traceback__)),
        )
        return FileOutcome(name, "failed")


def raise_if_failed(outcomes: list[FileOutcome]) -> None:
    """``IntakeIncomplete`` naming the files :func:`take_apart` left in the pickup."""
    failed = [o.name for o in outcomes if o.outcome == "failed"]
    if failed:
        raise IntakeIncomplete(failed)


def describe_failure(exc: BaseException) -> str:
    """What failed, for the log, without a field value: a database error by its type, its
    SQLSTATE and its statement (the database's own message and detail may quote the
    values, such as a key that already exists); any other error by its type and message,
    and the types of the errors that caused it."""
    text = describe_database_error(exc) or f"{type(exc).__name__}: {str(exc)[:300]}"
    causes: list[str] = []
    cause = exc.__cause__ or exc.__context__
    while cause is not None and len(causes) < 5:
        if cause is not getattr(exc, "orig", None):
            causes.append(type(cause).__name__)
        cause = cause.__cause__ or cause.__context__
    return text + (f" (caused by {', '.join(causes)})" if causes else "")


def _zips_alone(
    remote: Remote, engine: Engine, ctx: IntakeContext, zips: list[str]
) -> list[FileOutcome]:
    """Photo zips whose data file has not come: they wait for it up to ``zip_wait`` from
    the first run that saw them alone, then are rejected F04 (a zip is no file of its
    own) with their ``.rej``, so nothing waits unanswered for ever."""
    with engine.begin() as conn:
        since = registry.zips_waiting_alone(conn, ctx.conn_id, zips, ctx.now)
    outcomes = []
    for name, (row_id, first_seen) in since.items():
        if ctx.now - first_seen < ctx.zip_wait:
            log.info(
                "%s: photo zip waiting for its data file until %s",
                name,
                (first_seen + ctx.zip_wait).isoformat(),
            )
            continue
        with engine.begin() as conn:
            registry.update_file(
                conn,
                row_id,
                outcome="rejected",
                file_code=str(FileCode.F04),
                detail="photo zip without its data file past zip_wait",
                processed_at=ctx.now,
            )
            _queue_rej(conn, ctx, name, FileCode.F04, row_id)
        archive(remote, ctx, name, rejected=True)
        log.warning("%s: photo zip without its data file past zip_wait: rejected F04", name)
        outcomes.append(FileOutcome(name, "rejected", str(FileCode.F04)))
    return outcomes


class IntakeIncomplete(Exception):
    """Files that failed for a reason no reason code covers (a defect, or a fault of this
    machine): each is left in the pickup, untouched, for the next run, after the other
    files were processed; their errors are in the log above."""

    def __init__(self, names: list[str]) -> None:
        self.names = names
        super().__init__(
            f"{len(names)} file(s) could not be processed and were left in pickup for the "
            f"next run (see the errors logged above): {', '.join(names[:20])}"
        )
