"""APPLY intake (ICD §2–§6, §5.1–§5.2): take complete application batches from a bureau's
pickup directory, answer every line in an APPLYRSP, store the accepted applications.

The file exchange (:mod:`exchange.pickup`) lists, lands, archives and rejects; this
module is APPLY's own part of the request-intake pipeline: its name and header checks,
its line rules, the database rules and storing (``persistence.apply_store``), the photo
zip and the APPLYRSP. One file is one transaction: its lines, its answers, its registry
row and its response (in the outbox) are committed together or not at all.
"""

from __future__ import annotations

import hashlib
import logging
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta
from itertools import pairwise
from pathlib import Path
from typing import BinaryIO

import numpy as np
import numpy.typing as npt
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from sqlalchemy import Connection, Engine

from exchange.flows import Party, flow
from exchange.outbox import queue_path
from exchange.pickup import (
    FileOutcome,
    Inbox,
    Intake,
    Landed,
    declared_size,
    file_values,
    keep_copy,
    raise_if_failed,
)
from exchange.requests import AnswerStream, stage_overlapped
from exchange.storage import Storage
from issuance.apply_rules import (
    ApplyRules,
    Deferred,
    business_window,
    check_apply_chunk,
    photo_missing,
)
from issuance.photos import PhotoNames, PhotoZip, check_photo_zip
from persistence import apply_store, registry
from schemas.codec import NO_FAIL, Chunk, DelimitedReader, Header, write_delimited
from schemas.codes import FileCode, LineCode, reason_text
from schemas.files import Control, FileLevelError, FileName
from schemas.layouts import APPLY, APPLYRSP, answered_key
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
    work_dir: Path
    store: Storage
    max_forward_days: int = 5
    zip_wait: timedelta = timedelta(hours=2)
    chunk_lines: int = 50_000

    @property
    def party(self) -> str:
        return self.bureau


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


def land_photos(remote: Remote, ctx: Inbox, landed: Landed) -> PhotoZip:
    """Copy the photo zip and its control file beside the data file and check them (F10).
    Intake runs this in a thread of its own while the lines are read and checked, so the
    zip is downloaded apart (``Remote.download_apart``), and nothing else uses ``remote``
    meanwhile. As for the data file (:func:`~exchange.pickup.land`), a zip larger than its
    control file declares is read only to one byte past that size."""
    assert landed.zip_name is not None and landed.path is not None
    if not landed.zip_is_file:
        raise FileLevelError(FileCode.F10, "a directory stands where the photo zip should be")
    if landed.zip_control is None:
        raise FileLevelError(FileCode.F10, "photo zip control file malformed")
    zip_path = safe_join(landed.path.parent, landed.zip_name)
    control = landed.zip_control
    digest = remote.download_apart(
        f"{ctx.pickup}/{landed.zip_name}", zip_path, declared_size(control, landed.zip_name)
    )
    safe_join(landed.path.parent, f"{landed.zip_name}.ok").write_bytes(control)
    photos = check_photo_zip(zip_path, control, landed.zip_name, digest)
    log.info(
        "%s: photo zip landed and checked: %d entries, %d valid photos",
        landed.zip_name,
        photos.entries,
        len(photos.valid),
    )
    return photos


class _WaitForZip(Exception):
    """The file names photos and its photo zip has not arrived: it waits for it."""


def _accept(
    remote: Remote,
    engine: Engine,
    ctx: IntakeContext,
    landed: Landed,
    waiting_id: int | None,
    first_seen: datetime,
) -> tuple[FileOutcome, int | None]:
    fname = check_name(landed.name, ctx.hub, ctx.bureau)
    control = Control.parse(landed.control, landed.name)
    control.verify(landed.size, landed.sha256)
    assert landed.path is not None
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
        # The response is written in the run's working directory and queued (into object
        # storage when large) before the transaction commits; whatever stops the file
        # from committing removes it.
        response = ctx.work_dir / "outbox" / str(fname.response())
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
            registry.record_file(conn, **file_values(ctx, landed, fname, "waiting", first_seen))
    log.info(
        "%s: waiting for its photo zip (first seen %s, F10 at %s)",
        landed.name,
        first_seen.isoformat(),
        (first_seen + ctx.zip_wait).isoformat(),
    )
    return FileOutcome(landed.name, "waiting"), None


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
) -> tuple[FileOutcome, int]:
    fname = FileName.parse(landed.name)
    values = file_values(ctx, landed, fname, "accepted", first_seen)
    values.update(batch_no=header.batch_no, processed_at=ctx.now)
    if waiting_id is None:
        file_id = registry.record_file(conn, **values)
    else:
        file_id = waiting_id
        registry.update_file(conn, file_id, **values)
    apply_store.create_stage(conn)
    # the line rules' dates are the file's (ICD §5.1: not before *the* business date)
    renewal_limit = _renewal_limit(header.business_date)
    rules = replace(ctx.rules, business_date=header.business_date)
    response_name = response_path.name
    response_path.parent.mkdir(parents=True, exist_ok=True)
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
            stream.put(apply_store.chunk_answers(conn, lo, hi))

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

    named = [False]

    def prepare(chunk: Chunk) -> tuple[pa.Table, int]:
        named[0] = named[0] or names_photos(chunk)
        if named[0] and photos is None:
            raise _WaitForZip
        return stage_table(chunk), len(chunk)

    def write(rows: Iterator[tuple[str, str, str]]) -> None:
        render_response(out, header, ctx.hub, ctx.encoding, rows, header.record_count)

    with response_path.open("wb") as out, AnswerStream(write) as stream:
        chunks = validated_chunks(reader, rules, Deferred.PHOTOS)
        stage_overlapped(landed.name, chunks, prepare, load)
        # A file of no lines still has its zip checked.
        settle(photos.result().valid if photos is not None else None)
    apply_store.commit_lines(conn, file_id, header.sender)
    counts = apply_store.answer_counts(conn)
    queue_path(
        conn,
        ctx,
        name=response_name,
        type_="APPLYRSP",
        path=response_path,
        record_count=reader.detail_count,
        source_file_id=file_id,
    )
    accepted = counts.get("00", 0)
    if photos is not None:
        assert landed.path is not None
        zip_path = safe_join(landed.path.parent, landed.zip_name or "")
        zip_key = landed.stored_key(ctx.conn_id, ctx.business_date, landed.zip_name)
        ctx.store.put_file(zip_path, zip_key, move=True)
    registry.update_file(
        conn,
        file_id,
        record_count=reader.detail_count,
        accepted_count=accepted,
        rejected_count=reader.detail_count - accepted,
        local_path=keep_copy(ctx, landed, APPLY),
    )
    apply_store.drop_stage(conn)
    return FileOutcome(landed.name, "accepted", None, counts, response_name), file_id


def _renewal_limit(business_date: str) -> str:
    """The latest expiry date a renewal may have today (renewal opens 60 days before expiry)."""
    d = date(int(business_date[:4]), int(business_date[4:6]), int(business_date[6:])) + timedelta(
        days=60
    )
    return d.strftime("%Y%m%d")


def run_intake(remote: Remote, engine: Engine, ctx: IntakeContext) -> list[FileOutcome]:
    """Every complete APPLY file in the bureau's pickup directory, one transaction each;
    a file of a TYPE no bureau sends is answered F04, STATUS and DISB are left for their
    flows (:mod:`exchange.flows`)."""

    def accept(
        landed: Landed, waiting_id: int | None, first_seen: datetime
    ) -> tuple[FileOutcome, int | None]:
        return _accept(remote, engine, ctx, landed, waiting_id, first_seen)

    outcomes = Intake(
        remote, engine, ctx, flow("APPLY", Party.BUREAU), accept, alone_wait=ctx.zip_wait
    ).run()
    raise_if_failed(outcomes)  # the run fails at the end so the operators see it
    return outcomes
