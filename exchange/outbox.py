"""Files the hub writes (ICD §2, §3): composed, named and queued in the transaction that
decides them, delivered by a later task from the outbox.

Every hub-written file goes through here: a response is named after its request
(:func:`response_name`), any other file the hub originates takes the next SEQ of its
(TYPE, SENDER, RECEIVER, date) and a BATCH_NO of its own (:func:`originate`), a file
rejected as a whole is answered with ``NAME.rej`` (:func:`queue_rej`). Small files keep
their bytes in the outbox row; a large one (an APPLYRSP of a million lines, a PERSO photo
zip) is put into object storage under a key carrying its digest before the row commits,
so any worker can deliver it.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import BinaryIO, Protocol, cast

from sqlalchemy import Connection, Engine

from exchange.locks import exclusive
from exchange.storage import Storage
from persistence import registry
from schemas.codec import Header
from schemas.codes import message
from schemas.files import SAFE_NAME, FileName, hub_batch_no, sha256_of
from transport.errors import PublishConflictError
from transport.remote import Remote, join

log = logging.getLogger("sscard.exchange")

#: files up to this size keep their bytes in the outbox row; larger ones go to storage
INLINE_BYTES = 1 << 20


class Destination(Protocol):
    """Where a hub-written file goes: a counterparty connection's ``drop`` directory."""

    @property
    def conn_id(self) -> str: ...
    @property
    def drop(self) -> str: ...
    @property
    def now(self) -> datetime: ...
    @property
    def store(self) -> Storage: ...


@dataclass(frozen=True)
class Drop:
    """A :class:`Destination` for the steps that only write."""

    conn_id: str
    drop: str
    now: datetime
    store: Storage


def queue_path(
    conn: Connection,
    dest: Destination,
    *,
    name: str,
    type_: str,
    path: Path,
    record_count: int,
    source_file_id: int | None = None,
    sha256: str | None = None,
) -> int:
    """Queue the file written at ``path`` (in the run's working directory) under
    ``name``: its bytes in the row when small, else moved into object storage first."""
    data: bytes | None = None
    key: str | None = None
    if path.stat().st_size <= INLINE_BYTES:
        data = path.read_bytes()
    else:
        if sha256 is None:
            with path.open("rb") as fh:
                sha256 = sha256_of(fh)[1]
        key = dest.store.put_file(path, f"outbox/{dest.conn_id}/{name}/{sha256}", move=True)
    return registry.queue_outbound(
        conn,
        conn_id=dest.conn_id,
        directory=dest.drop,
        name=name,
        type_=type_,
        data=data,
        stored_as=key,
        sha256=sha256 if key is not None else None,
        record_count=record_count,
        created_at=dest.now,
        source_file_id=source_file_id,
    )


def response_name(request: FileName) -> str:
    """A response's name: ``<TYPE>RSP``, parties swapped, the request's date and SEQ (ICD §3)."""
    return str(request.response())


@dataclass(frozen=True)
class Originated:
    """A file the hub originates: its name and header (SEQ and BATCH_NO its own)."""

    name: str
    header: Header
    seq: int


def originate(
    conn: Connection,
    type_: str,
    sender: str,
    receiver: str,
    business_date: str,
    record_count: int,
    *,
    seq: int | None = None,
) -> Originated:
    """The name and header of the next file of (TYPE, SENDER, RECEIVER, date): SEQ from
    ``001`` counted over the outbox, a BATCH_NO unique per sender (ICD §3, §4.1)."""
    n = seq if seq is not None else registry.next_seq(conn, type_, sender, receiver, business_date)
    name = str(FileName(type_, sender, receiver, business_date, f"{n:03d}", "txt"))
    header = Header(
        type_,
        sender,
        receiver,
        hub_batch_no(type_, receiver, business_date, n),
        business_date,
        record_count,
    )
    return Originated(name, header, n)


def compose(
    conn: Connection,
    dest: Destination,
    work_dir: Path,
    *,
    name: str,
    type_: str,
    record_count: int,
    write: Callable[[BinaryIO], object],
    source_file_id: int | None = None,
) -> int:
    """Write a file with ``write`` into the working directory, then queue it."""
    work_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=work_dir, prefix=f"{type_}-", delete=False) as out:
        path = Path(out.name)
        try:
            write(cast(BinaryIO, out))
        except BaseException:
            out.close()
            path.unlink(missing_ok=True)
            raise
    try:
        return queue_path(
            conn,
            dest,
            name=name,
            type_=type_,
            path=path,
            record_count=record_count,
            source_file_id=source_file_id,
        )
    finally:
        path.unlink(missing_ok=True)


def render_rej(name: str, code: str) -> bytes:
    """``NAME.rej``: one UTF-8 line ``NAME|CODE|message`` (ICD §6)."""
    return f"{name}|{code}|{message(code, 'zh')} / {message(code, 'en')}\r\n".encode()


def queue_rej(conn: Connection, dest: Destination, name: str, code: str, file_id: int) -> None:
    """``NAME.rej`` for the sender (ICD §6), only for a name safe to write (ICD §2). A NAME
    rejected once and delivered again may need it a second time (a rejected NAME is not
    consumed)."""
    if SAFE_NAME.fullmatch(name):
        registry.queue_answer_again(
            conn,
            conn_id=dest.conn_id,
            directory=dest.drop,
            name=f"{name}.rej",
            type_="REJ",
            data=render_rej(name, code),
            record_count=1,
            created_at=dest.now,
            source_file_id=file_id,
        )


def deliver(remote: Remote, engine: Engine, store: Storage, conn_id: str, now: datetime) -> int:
    """Publish every file in the outbox for ``conn_id`` (``.part`` → rename → ``.ok``),
    one delivery run per connection at a time; content kept in object storage is read
    from there, so any worker can deliver.

    A file is marked staged, durably, just before the rename of its control file lets
    the counterparty take it (``Remote.publish``), and delivered once that rename is done.
    A run cut short between the two (a crash, a dropped connection) leaves the mark: the
    next run finds either something of the file still in the drop (``NAME``, ``NAME.ok``
    or ``NAME.ok.part``: published again, a no-op when it is complete) or nothing, which
    means the counterparty took it (the ICD lets a receiver remove only what it took), and
    it is not published again. A run cut short before the mark publishes the file anew:
    nothing of it could have been taken."""
    with exclusive(engine, f"drop:{conn_id}") as mine:
        if not mine:
            log.warning("%s: another run is delivering; this run leaves it to it", conn_id)
            return 0
        with engine.connect() as conn:
            pending = registry.pending_outbound(conn, conn_id)
        delivered = 0
        for item in pending:
            taken = item.staged and not _left_in_drop(remote, item)
            if not taken:
                data = item.stored if item.stored is not None else store.read_bytes(item.path or "")
                try:
                    remote.publish(
                        item.directory,
                        item.name,
                        data,
                        item.record_count,
                        staged=partial(_mark_staged, engine, item, now),
                    )
                except PublishConflictError:
                    if item.type != "REJ":
                        raise  # a file the hub names itself never meets another of its name
                    log.warning(
                        "%s: an earlier file of this name is still in %s; kept in the outbox "
                        "until the counterparty has taken it",
                        item.name,
                        item.directory,
                    )
                    continue
            with engine.begin() as conn:
                registry.mark_delivered(conn, item, now)
            delivered += 1
            if taken:
                log.info(
                    "%s: taken from %s by the counterparty before its delivery was recorded; "
                    "not published again",
                    item.name,
                    item.directory,
                )
            else:
                log.info(
                    "delivered %s to %s (%d records)", item.name, item.directory, item.record_count
                )
    return delivered


def _mark_staged(engine: Engine, item: registry.PendingOutbound, now: datetime) -> None:
    with engine.begin() as conn:
        registry.mark_staged(conn, item, now)


def _left_in_drop(remote: Remote, item: registry.PendingOutbound) -> bool:
    """Whether anything of a staged file is still in the drop: the file, its control file,
    or its control file's ``.part``."""
    return any(
        remote.exists(join(item.directory, item.name + suffix))
        for suffix in ("", ".ok", ".ok.part")
    )
