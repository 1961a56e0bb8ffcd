"""The append-only, hash-chained audit trail (DOMAIN §3): who, which channel, when,
before and after of every status change, activation, PIN operation and balance move.

Each record's ``hash`` is the SHA-256 (hex) of its canonical form: the JSON array
``[prev_hash, at, business_date, card_no, pan, op, channel, actor, ref, before, after]``,
with ``detail`` (a break resolution's reason) appended when it is not empty, so a record
without one hashes as records did before the column existed (UTF-8, no spaces, strings
JSON-escaped, so no value can shift into its neighbour), with ``at`` in ISO 8601 UTC to
the microsecond. ``prev_hash`` is the previous record's
``hash`` (by id), 64 zeros for the first. Changing, inserting or deleting a record breaks
the chain at that record or the next; :func:`verify` names where. ``before`` and
``after`` hold statuses or flags, never a PIN or anything derived from one.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from itertools import islice

from sqlalchemy import Connection, text

from persistence.db import insert_many

GENESIS = "0" * 64
#: the PostgreSQL advisory lock serialising appenders (any fixed bigint; "AUDIT" in ASCII)
ADVISORY_LOCK = 0x4155444954
_CHUNK = 10_000


@dataclass(frozen=True)
class AuditEntry:
    business_date: str
    card_no: str
    pan: str
    op: str
    channel: str
    actor: str
    ref: str
    before: str
    after: str
    detail: str = ""


@dataclass
class Verified:
    """The chain's check: how many records were read, the id of the first that does not
    match (None when all do) and why."""

    records: int
    first_bad: int | None
    why: str | None

    def ok(self) -> bool:
        return self.first_bad is None


def _utc_text(at: datetime) -> str:
    if at.tzinfo is None:
        at = at.replace(tzinfo=UTC)  # SQLite keeps no zone: the hub writes UTC
    return at.astimezone(UTC).isoformat(timespec="microseconds")


def record_hash(prev_hash: str, at: datetime, entry: AuditEntry) -> str:
    """The SHA-256 hex of the record's canonical form (this module's docstring)."""
    fields = [
        prev_hash,
        _utc_text(at),
        entry.business_date,
        entry.card_no,
        entry.pan,
        entry.op,
        entry.channel,
        entry.actor,
        entry.ref,
        entry.before,
        entry.after,
        *([entry.detail] if entry.detail else []),
    ]
    canonical = json.dumps(fields, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def append(conn: Connection, entries: Sequence[AuditEntry], at: datetime) -> int:
    """Append ``entries`` in order at ``at`` (timezone-aware), chained to the last
    record; returns how many were appended. Appenders are serialised: on PostgreSQL by a
    transaction-level advisory lock taken first, on SQLite by its single writer (a
    transaction that read a chain end another has since extended fails to write)."""
    if at.tzinfo is None:
        raise ValueError("an audit record's time must carry its zone")
    if not entries:
        return 0
    at = at.astimezone(UTC)
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": ADVISORY_LOCK})
    prev = conn.scalar(text("SELECT hash FROM audit_record ORDER BY id DESC LIMIT 1")) or GENESIS
    it = iter(entries)
    while batch := list(islice(it, _CHUNK)):
        rows = []
        for entry in batch:
            digest = record_hash(prev, at, entry)
            rows.append({**entry.__dict__, "at": at, "prev_hash": prev, "hash": digest})
            prev = digest
        # a file's records in one COPY on PostgreSQL (in order: ids follow the chain)
        insert_many(conn, "audit_record", rows)
    return len(entries)


def verify(conn: Connection, batch: int = 50_000) -> Verified:
    """Read the chain in id order, ``batch`` records at a time, and stop at the first
    record whose ``prev_hash`` is not the hash of the record before it, or whose ``hash``
    is not that of its content."""
    prev = GENESIS
    last_id = 0
    count = 0
    while True:
        rows = conn.execute(
            text(
                "SELECT id, at, business_date, card_no, pan, op, channel, actor, ref, before, "
                "after, detail, prev_hash, hash FROM audit_record WHERE id > :last "
                "ORDER BY id LIMIT :n"
            ),
            {"last": last_id, "n": batch},
        ).all()
        if not rows:
            return Verified(count, None, None)
        for row in rows:
            count += 1
            record_id = int(row[0])
            at = datetime.fromisoformat(row[1]) if isinstance(row[1], str) else row[1]
            if row[12] != prev:
                return Verified(count, record_id, "prev_hash does not match the record before")
            if record_hash(row[12], at, AuditEntry(*row[2:12])) != row[13]:
                return Verified(count, record_id, "hash does not match its content")
            prev = row[13]
            last_id = record_id


__all__ = ["ADVISORY_LOCK", "GENESIS", "AuditEntry", "Verified", "append", "record_hash", "verify"]
