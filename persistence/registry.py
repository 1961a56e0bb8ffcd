"""The registry of received files and the outbox of files to send (ICD §2).

Both live in the hub's database so that a file's outcome, its answers and the
response to send are committed in one transaction.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import cast

from sqlalchemy import Connection, Table, and_, delete, insert, or_, select, update

from persistence.models import OutboundFile, ReceivedFile

RECEIVED = cast(Table, ReceivedFile.__table__)
OUTBOUND = cast(Table, OutboundFile.__table__)


@dataclass(frozen=True)
class PriorFile:
    id: int
    outcome: str
    file_code: str | None
    first_seen_at: datetime
    companions_sha256: str | None = None


def find_same(conn: Connection, conn_id: str, name: str, sha256: str) -> PriorFile | None:
    """The latest record of this exact file (name and content) from this connection."""
    row = conn.execute(
        select(
            RECEIVED.c.id,
            RECEIVED.c.outcome,
            RECEIVED.c.file_code,
            RECEIVED.c.first_seen_at,
            RECEIVED.c.companions_sha256,
        )
        .where(RECEIVED.c.conn_id == conn_id, RECEIVED.c.name == name, RECEIVED.c.sha256 == sha256)
        .order_by(RECEIVED.c.id.desc())
        .limit(1)
    ).first()
    if row is None:
        return None
    seen = row.first_seen_at
    # SQLite keeps no zone: the hub writes UTC everywhere
    return PriorFile(
        row.id,
        row.outcome,
        row.file_code,
        seen if seen.tzinfo else seen.replace(tzinfo=UTC),
        row.companions_sha256,
    )


def first_seen(conn: Connection, file_id: int) -> datetime:
    """When the hub first found the file ``file_id`` complete (its ``.ok`` there)."""
    seen: datetime = conn.execute(
        select(RECEIVED.c.first_seen_at).where(RECEIVED.c.id == file_id)
    ).scalar_one()
    return seen if seen.tzinfo else seen.replace(tzinfo=UTC)


def conflicting(
    conn: Connection, sender: str, type_: str, name: str, batch_no: str, sha256: str
) -> bool:
    """An accepted file of this sender that consumed this NAME with other content, or this
    BATCH_NO under another NAME or with other content (F05). The same bytes under another
    NAME are no re-delivery of that file (ICD §2 names NAME and SHA-256 together): its
    BATCH_NO is taken."""
    row = conn.execute(
        select(RECEIVED.c.id)
        .where(
            RECEIVED.c.outcome == "accepted",
            RECEIVED.c.sender == sender,
            or_(
                and_(RECEIVED.c.name == name, RECEIVED.c.sha256 != sha256),
                and_(
                    RECEIVED.c.type == type_,
                    RECEIVED.c.batch_no == batch_no,
                    or_(RECEIVED.c.name != name, RECEIVED.c.sha256 != sha256),
                ),
            ),
        )
        .limit(1)
    ).first()
    return row is not None


@dataclass(frozen=True)
class Unarchived:
    id: int
    name: str
    outcome: str
    type: str = ""


def unarchived(conn: Connection, conn_id: str) -> list[Unarchived]:
    """Files of ``conn_id`` whose outcome is committed but whose move to ``archive/`` or
    ``rejected/`` did not finish (a connection dropped half-way)."""
    rows = conn.execute(
        select(RECEIVED.c.id, RECEIVED.c.name, RECEIVED.c.outcome, RECEIVED.c.type)
        .where(
            RECEIVED.c.conn_id == conn_id,
            RECEIVED.c.outcome.in_(("accepted", "rejected")),
            RECEIVED.c.archived_at.is_(None),
        )
        .order_by(RECEIVED.c.id)
    ).all()
    return [Unarchived(r.id, r.name, r.outcome, r.type or "") for r in rows]


#: ``detail`` of the row that dates a photo zip waiting for its data file
ZIP_ALONE = "photo zip waiting for its data file"


def zips_waiting_alone(
    conn: Connection, conn_id: str, names: Sequence[str], now: datetime
) -> dict[str, tuple[int, datetime]]:
    """Since when each of ``names`` (photo zips whose data file has not arrived) has been
    seen alone, as (registry id, first seen), recording the ones seen for the first time.
    Zips no longer alone (their data file came, or they left) are forgotten."""
    rows = conn.execute(
        select(RECEIVED.c.id, RECEIVED.c.name, RECEIVED.c.first_seen_at).where(
            RECEIVED.c.conn_id == conn_id,
            RECEIVED.c.outcome == "waiting",
            RECEIVED.c.detail == ZIP_ALONE,
        )
    ).all()
    # a name is stored as its first 100 characters, and looked up the same way
    seen = {r.name: r for r in rows}
    stored = {name[:100] for name in names}
    gone = [r.id for name, r in seen.items() if name not in stored]
    if gone:
        conn.execute(delete(RECEIVED).where(RECEIVED.c.id.in_(gone)))
    since: dict[str, tuple[int, datetime]] = {}
    for name in names:
        if name[:100] in seen:
            row = seen[name[:100]]
            first = row.first_seen_at
            since[name] = (row.id, first if first.tzinfo else first.replace(tzinfo=UTC))
        else:
            since[name] = (
                record_file(
                    conn,
                    conn_id=conn_id,
                    name=name[:100],
                    sha256="",
                    size=0,
                    outcome="waiting",
                    detail=ZIP_ALONE,
                    accepted_count=0,
                    rejected_count=0,
                    first_seen_at=now,
                ),
                now,
            )
    return since


def record_file(conn: Connection, **values: object) -> int:
    """Insert a registry row and return its id."""
    result = conn.execute(insert(RECEIVED).values(**values).returning(RECEIVED.c.id))
    return int(result.scalar_one())


def update_file(conn: Connection, file_id: int, **values: object) -> None:
    conn.execute(update(RECEIVED).where(RECEIVED.c.id == file_id).values(**values))


def queue_outbound(
    conn: Connection,
    *,
    conn_id: str,
    directory: str,
    name: str,
    type_: str,
    data: bytes | None = None,
    stored_as: str | None = None,
    sha256: str | None = None,
    record_count: int,
    created_at: datetime,
    source_file_id: int | None = None,
) -> int:
    """Put a file in the outbox; the delivery step publishes it (``.part`` → rename → ``.ok``).

    Small files keep their bytes in the row (``data``). A large one (a PERSO photo zip) is
    put into object storage first and only its key is stored (``path``), with the
    ``sha256`` its writer computed; a crash before the commit leaves at most an object no
    row names (see :mod:`exchange.outbox`)."""
    if (data is None) == (stored_as is None):
        raise ValueError("an outbound file has either data or a storage key")
    if stored_as is not None:
        if sha256 is None:
            raise ValueError("a stored outbound file needs its SHA-256")
        sha = sha256
    else:
        assert data is not None
        sha = hashlib.sha256(data).hexdigest()
    result = conn.execute(
        insert(OUTBOUND)
        .values(
            conn_id=conn_id,
            directory=directory,
            name=name,
            type=type_,
            data=data,
            path=stored_as,
            sha256=sha,
            record_count=record_count,
            with_control=True,
            source_file_id=source_file_id,
            created_at=created_at,
        )
        .returning(OUTBOUND.c.id)
    )
    return int(result.scalar_one())


def queue_answer_again(
    conn: Connection,
    *,
    conn_id: str,
    directory: str,
    name: str,
    type_: str,
    data: bytes,
    record_count: int,
    created_at: datetime,
    source_file_id: int,
) -> int:
    """Queue an answer whose name is fixed by the request's (a ``NAME.rej``), which a NAME
    rejected once and delivered again may need a second time (ICD §2: a rejected NAME is
    not consumed). An earlier answer of that name is replaced and delivered again: where
    the counterparty has not taken the earlier file yet, the same content is left as it
    is and other content waits until it has (the hub never overwrites a file in a drop
    directory)."""
    sha = hashlib.sha256(data).hexdigest()
    row = conn.execute(
        select(OUTBOUND.c.id, OUTBOUND.c.sha256).where(
            OUTBOUND.c.conn_id == conn_id,
            OUTBOUND.c.directory == directory,
            OUTBOUND.c.name == name,
        )
    ).first()
    if row is None:
        return queue_outbound(
            conn,
            conn_id=conn_id,
            directory=directory,
            name=name,
            type_=type_,
            data=data,
            record_count=record_count,
            created_at=created_at,
            source_file_id=source_file_id,
        )
    conn.execute(
        update(OUTBOUND)
        .where(OUTBOUND.c.id == row.id)
        .values(
            data=data,
            path=None,
            sha256=sha,
            record_count=record_count,
            created_at=created_at,
            source_file_id=source_file_id,
            delivered_at=None,
            staged_at=None,
        )
    )
    return int(row.id)


@dataclass(frozen=True)
class PendingOutbound:
    id: int
    directory: str
    name: str
    stored: bytes | None
    path: str | None
    record_count: int
    type: str
    sha256: str
    #: its publishing reached the last rename in an earlier run (:func:`mark_staged`)
    staged: bool = False


def pending_outbound(conn: Connection, conn_id: str) -> list[PendingOutbound]:
    rows = conn.execute(
        select(
            OUTBOUND.c.id,
            OUTBOUND.c.directory,
            OUTBOUND.c.name,
            OUTBOUND.c.data,
            OUTBOUND.c.path,
            OUTBOUND.c.record_count,
            OUTBOUND.c.type,
            OUTBOUND.c.sha256,
            OUTBOUND.c.staged_at,
        )
        .where(OUTBOUND.c.conn_id == conn_id, OUTBOUND.c.delivered_at.is_(None))
        .order_by(OUTBOUND.c.id)
    ).all()
    return [
        PendingOutbound(
            r.id,
            r.directory,
            r.name,
            bytes(r.data) if r.data is not None else None,
            r.path,
            r.record_count,
            r.type,
            r.sha256,
            r.staged_at is not None,
        )
        for r in rows
    ]


def mark_staged(conn: Connection, item: PendingOutbound, when: datetime) -> None:
    """The file is in place in the drop and its control file written under ``.part``;
    only the rename that lets the counterparty take it remains (unless the row was given
    other content meanwhile)."""
    conn.execute(
        update(OUTBOUND)
        .where(OUTBOUND.c.id == item.id, OUTBOUND.c.sha256 == item.sha256)
        .values(staged_at=when)
    )


def mark_delivered(conn: Connection, item: PendingOutbound, when: datetime) -> None:
    """Delivered, unless the row was given other content meanwhile (an answer queued again,
    :func:`queue_answer_again`): that content is still to be delivered. The staged mark
    ends with the delivery, so a file queued again later is published afresh."""
    conn.execute(
        update(OUTBOUND)
        .where(OUTBOUND.c.id == item.id, OUTBOUND.c.sha256 == item.sha256)
        .values(delivered_at=when, staged_at=None)
    )


def next_seq(conn: Connection, type_: str, sender: str, receiver: str, business_date: str) -> int:
    """The next SEQ of a file the hub originates: per (TYPE, SENDER, RECEIVER, date) from
    001 (ICD §3)."""
    prefix = f"{type_}_{sender}_{receiver}_{business_date}_"
    names = conn.execute(
        select(OUTBOUND.c.name).where(OUTBOUND.c.name.like(prefix + "%"))
    ).scalars()
    seqs = [
        int(n[len(prefix) : len(prefix) + 3])
        for n in names
        if n.startswith(prefix) and n[len(prefix) : len(prefix) + 3].isdigit()
    ]
    return max(seqs, default=0) + 1
