"""Taking files from a counterparty's pickup directory (ICD §2), for every flow.

The promises every flow keeps, written once here:

- only complete files (``NAME.ok`` there), never a ``.part``; a flow takes only its own
  TYPE (:mod:`exchange.flows`) and the kind's first flow answers strangers (F04);
- one transaction per file: its outcome, its answers and its outbound files are
  committed together or not at all; what a later task reads of it (the received copy,
  large outbound files) is in object storage before that commit;
- a file seen before (same NAME and SHA-256) is archived again and changes nothing
  else; other content under a used NAME or BATCH_NO is F05;
- archiving is restartable: the outcome row records when the move finished, and a
  later run finishes a move a dropped connection cut short (companions included);
- one file's failure is that file's: a file-level code and ``NAME.rej``, or, for a
  failure no code covers, the file left untouched for the next run (``failed``) while
  the others go on; a hostile name is F07 (never read whole, never a local path) or,
  when it cannot even be addressed, skipped with an escaped log line;
- one run at a time per connection (:mod:`exchange.locks`).
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
import traceback
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Protocol

from sqlalchemy import Engine

from exchange.flows import Flow, answers_strangers, companions_of, sent_by
from exchange.flows import flow as flow_of
from exchange.locks import exclusive
from exchange.logsafe import masked_numbers, shown
from exchange.outbox import queue_rej
from exchange.storage import Storage
from persistence import registry
from persistence.db import describe_database_error, is_outage
from schemas.codec import masked_lines
from schemas.codes import FileCode, message
from schemas.files import SAFE_NAME, Control, FileLevelError, FileName
from schemas.layouts import LAYOUTS, Layout
from transport.errors import TransportError
from transport.remote import Remote, RemoteEntry, safe_join

log = logging.getLogger("sscard.exchange")

#: a control file is one short line (ICD §2); a longer one is F01 without being read
MAX_CONTROL_BYTES = 4096
#: a file without a usable control file is F01 whatever it holds: only this much of it is
#: read (to keep a copy and know it again when it is delivered again)
MAX_UNCONTROLLED_BYTES = 16 << 20
#: the directories the hub itself keeps in a pickup directory
KEPT_DIRS = frozenset({"archive", "rejected"})


class Inbox(Protocol):
    """One counterparty connection on one business date, as every flow sees it."""

    @property
    def conn_id(self) -> str: ...
    @property
    def party(self) -> str: ...
    @property
    def hub(self) -> str: ...
    @property
    def pickup(self) -> str: ...
    @property
    def drop(self) -> str: ...
    @property
    def encoding(self) -> str: ...
    @property
    def business_date(self) -> str: ...
    @property
    def now(self) -> datetime: ...
    @property
    def work_dir(self) -> Path: ...
    @property
    def store(self) -> Storage: ...


@dataclass(frozen=True)
class PartyInbox:
    """An :class:`Inbox` for a partner bank or a card factory."""

    conn_id: str
    party: str
    hub: str
    pickup: str
    drop: str
    encoding: str
    business_date: str
    now: datetime
    work_dir: Path
    store: Storage
    max_back_days: int = 10
    max_forward_days: int = 5


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
        name = shown(self.name)
        if self.outcome == "accepted" and self.response is None:
            return f"{name}: accepted; " + ", ".join(f"{k}={n}" for k, n in self.counts.items())
        if self.outcome == "accepted":
            by_code = (
                ", ".join(f"{k}={n}" for k, n in sorted(self.counts.items()) if k != "00") or "none"
            )
            return (
                f"{name}: accepted; lines={self.accepted + self.rejected} "
                f"accepted={self.accepted} rejected={self.rejected} ({by_code}); "
                f"response {self.response}"
            )
        if self.outcome == "rejected":
            return f"{name}: file rejected {self.file_code} ({message(self.file_code or 'F01')})"
        return f"{name}: {self.outcome}"


@dataclass(frozen=True)
class Landed:
    """A data file and its control file copied from the pickup directory into the run's
    working directory. ``problem`` is the file-level code found while landing (a
    directory where the file or its control file should be). ``size`` and ``sha256`` are
    those of the bytes landed: for a file larger than its control file declares, its
    first declared + 1 bytes, where the download stopped (F01 then, :func:`land`)."""

    name: str
    path: Path | None
    control: bytes
    size: int
    sha256: str
    #: the photo zip of an APPLY, when it and its control file have arrived
    zip_name: str | None = None
    #: the digest of the companions as found: the control file, the zip's control file
    companions: str = ""
    problem: FileLevelError | None = None
    #: False when a directory (or anything but a file) stands where the zip should be
    zip_is_file: bool = True
    #: the zip's control file as read while landing; None when it is not a file or is
    #: larger than a control file, so it is never read
    zip_control: bytes | None = None

    @property
    def local_name(self) -> str:
        """The name of the hub's copy: the remote name, or ``F07-<digest>`` for a name
        that does not match ICD §3 (never a local path built from it)."""
        return self.path.name if self.path is not None else self.name

    def stored_key(self, conn_id: str, business_date: str, name: str | None = None) -> str:
        """Where the hub keeps its copy of this file (or of ``name`` beside it)."""
        return f"received/{conn_id}/{business_date}/{self.sha256[:16] or 'none'}/{name or self.local_name}"


#: file-level rejections decided by a file's companions (its control file, its photo zip)
#: rather than its own bytes: the same data file delivered again with them corrected is
#: taken afresh (docs/decisions.md 4)
COMPANION_CODES = frozenset({str(FileCode.F01), str(FileCode.F10)})


# --------------------------------------------------------------------------- listing


@dataclass(frozen=True)
class Survey:
    """What a flow finds in a pickup directory."""

    entries: Mapping[str, RemoteEntry]
    #: data files of the flow whose ``.ok`` has arrived
    ready: list[str]
    #: data files still without their ``.ok``
    incomplete: list[str]
    #: companions (photo zips) whose data file has not arrived
    alone: list[str]


def survey(remote: Remote, inbox: Inbox, flow: Flow) -> Survey:
    """List the pickup directory once. An entry whose name cannot be used at all (not
    UTF-8, holding ``/`` or NUL, ``.`` or ``..``) is skipped with an escaped log line and
    the others go on; a directory where a data file, a control file or a zip should be
    is listed like a file and answered by its code when taken."""
    entries: dict[str, RemoteEntry] = {}
    for e in remote.list_dir(inbox.pickup):
        if not getattr(e, "addressable", True):
            log.warning(
                "%s: an entry named %s in %s cannot be addressed and was skipped; ask the "
                "counterparty to remove it",
                inbox.conn_id,
                shown(e.name),
                inbox.pickup,
            )
            continue
        if e.name in KEPT_DIRS:
            if getattr(e, "kind", "file") != "dir":
                _move_off_kept_name(remote, inbox, e.name)
            continue
        entries[e.name] = e
    names = set(entries)
    kinds_types = sent_by(flow.sender)
    takes_strangers = answers_strangers(flow)

    def companion(n: str) -> bool:
        return n.endswith((".ok", ".part", ".rej", *(f".{ext}" for ext in flow.companions)))

    def mine(n: str) -> bool:
        try:
            fname = FileName.parse(n)
        except FileLevelError:
            return takes_strangers
        if fname.type == flow.type and fname.ext == "txt":
            return True
        return takes_strangers and (fname.type not in kinds_types or fname.ext != "txt")

    data = sorted(n for n in names if not companion(n) and mine(n))
    ready = [n for n in data if f"{n}.ok" in names]
    alone = sorted(
        n
        for n in names
        if n.endswith(tuple(f".{e}" for e in flow.companions))
        and f"{n.rsplit('.', 1)[0]}.txt" not in names
    )
    return Survey(entries, ready, [n for n in data if n not in ready], alone)


# --------------------------------------------------------------------------- landing


def land(remote: Remote, inbox: Inbox, name: str, entries: Mapping[str, RemoteEntry]) -> Landed:
    """Copy a data file and its control file into the run's working directory, and note
    whether its photo zip and the zip's control file have both arrived. A name that does
    not match ICD §3 (to be rejected F07) is kept as ``F07-<SHA-256 prefix>``, never
    under its own name; a directory where the file or its control file should be is
    F01 (no file to check against its control file). The control file is read first: a
    file larger than it declares is downloaded only to one byte past that size, so a
    server streaming without end fills no disk, and the size check answers it F01; a
    file without a usable control file (F01 whatever it holds) is read no further than
    :data:`MAX_UNCONTROLLED_BYTES`."""
    local_dir = inbox.work_dir / "received"
    local_dir.mkdir(parents=True, exist_ok=True)
    ok = entries.get(f"{name}.ok")
    zip_name: str | None = None
    zip_control: bytes | None = None
    zip_seen = b"(no photo zip)"
    if name.endswith(".txt"):
        candidate = name[:-4] + ".zip"
        if candidate in entries and f"{candidate}.ok" in entries:
            zip_name = candidate
            zip_ok = entries[f"{candidate}.ok"]
            if _is_file(zip_ok) and zip_ok.size <= MAX_CONTROL_BYTES:
                zip_control = remote.read_bytes(
                    f"{inbox.pickup}/{candidate}.ok", limit=MAX_CONTROL_BYTES
                )
                if len(zip_control) > MAX_CONTROL_BYTES:  # listed small, yet larger
                    zip_control = None
            zip_seen = b"(not a control file)" if zip_control is None else zip_control
    if not _is_file(entries.get(name)):
        return Landed(
            name,
            None,
            b"",
            0,
            "",
            zip_name,
            problem=FileLevelError(
                FileCode.F01, "a directory stands where the data file should be"
            ),
        )
    declared: int | None = None
    if ok is None or not _is_file(ok) or ok.size > MAX_CONTROL_BYTES:
        control = b""
        problem: FileLevelError | None = FileLevelError(FileCode.F01, "control file malformed")
    else:
        control = remote.read_bytes(f"{inbox.pickup}/{name}.ok", limit=MAX_CONTROL_BYTES)
        if len(control) > MAX_CONTROL_BYTES:  # listed small, yet larger: never read whole
            control = b""
            problem = FileLevelError(FileCode.F01, "control file malformed")
        else:
            problem = None
            declared = declared_size(control, name)
    try:
        FileName.parse(name)
        named = True
    except FileLevelError:  # F07: such a name never builds a local path (ICD §2)
        named = False
    path = safe_join(local_dir, name if named else f"landing-{os.getpid()}-{threading.get_ident()}")
    limit = MAX_UNCONTROLLED_BYTES if declared is None else declared
    size, sha = remote.download(f"{inbox.pickup}/{name}", path, limit=limit)
    if declared is None and size > limit:
        log.warning("%s: no usable control file; not read past %d bytes", shown(name), size)
    elif declared is not None and size > declared:
        log.warning(
            "%s: larger than the %d bytes its control file declares; not read past %d bytes",
            shown(name),
            declared,
            size,
        )
    if not named:
        path = path.replace(local_dir / f"F07-{sha[:32]}")
    companions = hashlib.sha256(control + b"\n--\n" + zip_seen).hexdigest()
    zip_is_file = zip_name is None or _is_file(entries.get(zip_name))
    return Landed(
        name, path, control, size, sha, zip_name, companions, problem, zip_is_file, zip_control
    )


def declared_size(control: bytes, name: str) -> int | None:
    """The size the control file ``control`` declares for ``name``; None when it is
    malformed (the file is F01 then, whatever it holds)."""
    try:
        return Control.parse(control, name).size
    except FileLevelError:
        return None


def _name_first(name: str, flow: Flow, inbox: Inbox) -> None:
    """The name's checks, which come before the control file's (decision 1): F07 for a
    name not of ICD §3, F04 for another TYPE or another receiver."""
    fname = FileName.parse(name)
    hub = getattr(inbox, "hub", None)
    if fname.type != flow.type or fname.ext != "txt" or (hub and fname.receiver != hub):
        raise FileLevelError(FileCode.F04, "not a file of this flow addressed to this hub")


def _is_file(entry: RemoteEntry | None) -> bool:
    return entry is not None and getattr(entry, "kind", "file") == "file"


def keep_copy(inbox: Inbox, landed: Landed, layout: Layout) -> str | None:
    """Put the hub's copy of a landed file of ``layout`` into object storage (before the
    transaction that records it commits); its key, recorded as the file's ``local_path``.
    The landed file leaves the working directory. A layout with secret fields (CHANNEL's
    PIN blocks) is kept with ``*`` in their place (:func:`masked_lines`, decision 100):
    nothing reads a kept copy to process it again, a run cut short before its commit
    takes the file from the pickup anew, and the registry keeps the SHA-256 of the bytes
    as received, by which a re-delivery is known."""
    if landed.path is None or not landed.path.exists():
        return None
    key = landed.stored_key(inbox.conn_id, inbox.business_date)
    kept = landed.path
    if layout.secrets:
        kept = landed.path.with_name(f"{landed.path.name}.masked")
        with landed.path.open("rb") as src, kept.open("wb") as out:
            out.writelines(masked_lines(src, layout, inbox.encoding))
        landed.path.unlink()
    inbox.store.put_file(kept, key, move=True)
    return key


# --------------------------------------------------------------------------- archiving


def archive(
    remote: Remote,
    engine: Engine,
    inbox: Inbox,
    flow: Flow,
    name: str,
    rejected: bool,
    file_id: int | None,
) -> None:
    """Move the file, then its control file and companions, to
    ``pickup/archive|rejected/YYYYMMDD/`` (ICD §2). The registry row ``file_id`` is
    marked archived only once every move is done: a run cut short is finished by the
    next (:func:`finish_archives`)."""
    dest = f"{inbox.pickup}/{'rejected' if rejected else 'archive'}/{inbox.business_date}"
    if file_id is not None:
        with engine.begin() as conn:
            registry.update_file(conn, file_id, archived_at=None)
    for n in [name, *companions_of(flow, name)]:
        if remote.exists(f"{inbox.pickup}/{n}"):
            remote.move(f"{inbox.pickup}/{n}", dest)
    if file_id is not None:
        with engine.begin() as conn:
            registry.update_file(conn, file_id, archived_at=inbox.now)


def finish_archives(remote: Remote, engine: Engine, inbox: Inbox, flow: Flow) -> int:
    """Finish the moves an earlier run started and could not end (a dropped
    connection): whatever of those files is still in the pickup goes where the rest went."""
    with engine.connect() as conn:
        unfinished = registry.unarchived(conn, inbox.conn_id)
    for row in unfinished:
        log.info("%s: finishing its archiving, cut short by an earlier run", shown(row.name))
        # the file's own flow names what travels with it (an APPLY's zip), whichever
        # flow of this connection happens to run now
        try:
            own = flow_of(row.type, flow.sender)
        except KeyError:
            own = flow
        archive(remote, engine, inbox, own, row.name, row.outcome == "rejected", row.id)
    return len(unfinished)


# --------------------------------------------------------------------------- rejections


def file_values(
    inbox: Inbox, landed: Landed, fname: FileName | None, outcome: str, first_seen: datetime
) -> dict[str, object]:
    """A registry row's values for ``landed``."""
    return {
        "conn_id": inbox.conn_id,
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
        "first_seen_at": first_seen,
    }


def record_sight(engine: Engine, inbox: Inbox, landed: Landed) -> int:
    """The registry row (``seen``) of a complete file found for the first time, committed
    before the file is taken: its outcome replaces it, and a run that fails on the file
    leaves it for the run that takes the file later."""
    try:
        fname: FileName | None = FileName.parse(landed.name)
    except FileLevelError:
        fname = None
    with engine.begin() as conn:
        return registry.record_file(conn, **file_values(inbox, landed, fname, "seen", inbox.now))


def reject_file(
    engine: Engine,
    inbox: Inbox,
    flow: Flow,
    landed: Landed,
    exc: FileLevelError,
    waiting_id: int | None,
    first_seen: datetime,
) -> tuple[FileOutcome, int]:
    """Record a file-level rejection, keep the file's copy (as ``flow``'s files are kept,
    whatever the file turned out to be) and queue ``NAME.rej`` (only for a name safe to
    write)."""
    try:
        fname: FileName | None = FileName.parse(landed.name)
    except FileLevelError:
        fname = None
    values = file_values(inbox, landed, fname, "rejected", first_seen)
    values.update(file_code=str(exc.code), detail=exc.detail[:200], processed_at=inbox.now)
    if str(exc.code) in COMPANION_CODES:
        values.update(companions_sha256=landed.companions)
    values.update(local_path=keep_copy(inbox, landed, LAYOUTS[flow.type]))
    with engine.begin() as conn:
        if waiting_id is None:
            file_id = registry.record_file(conn, **values)
        else:
            file_id = waiting_id
            registry.update_file(conn, file_id, **values)
        queue_rej(conn, inbox, landed.name, exc.code, file_id)
    log.warning("%s: rejected as a whole, %s: %s", shown(landed.name), exc.code, exc.detail)
    return FileOutcome(landed.name, "rejected", str(exc.code)), file_id


def _move_off_kept_name(remote: Remote, inbox: Inbox, name: str) -> None:
    """Something not a directory stands where the hub keeps ``archive/`` or
    ``rejected/``: it is moved into the other one (dated), so neither the files of this
    run nor of later ones are kept from their place (nothing is deleted)."""
    other = next(iter(KEPT_DIRS - {name}))
    dest = f"{inbox.pickup}/{other}/{inbox.business_date}"
    try:
        moved = remote.move(f"{inbox.pickup}/{name}", dest)
    except (OSError, TransportError) as exc:
        log.error(
            "%s: %s in %s is not a directory and could not be moved (%s): files cannot be "
            "archived until the counterparty removes it",
            inbox.conn_id,
            shown(name),
            inbox.pickup,
            type(exc).__name__,
        )
        return
    log.warning(
        "%s: %s in %s was not a directory (the hub keeps its %s/ there): moved to %s",
        inbox.conn_id,
        shown(name),
        inbox.pickup,
        name,
        shown(moved),
    )


def reject_unsafe(
    remote: Remote,
    engine: Engine,
    inbox: Inbox,
    flow: Flow,
    name: str,
    entry: RemoteEntry | None = None,
) -> FileOutcome:
    """A name unsafe to write (ICD §2): F07, no local copy and no ``.rej``; a file is
    digested on the server in blocks, never read whole; a directory or anything else not
    a plain file is recorded without reading it (a link could lead to an endless
    device)."""
    if entry is not None and not getattr(entry, "is_file", True):
        size, sha = 0, hashlib.sha256(b"").hexdigest()
    else:
        size, sha = remote.checksum(f"{inbox.pickup}/{name}")
    with engine.begin() as conn:
        prior = registry.find_same(conn, inbox.conn_id, name[:100], sha)
        if prior is None:
            registry.record_file(
                conn,
                conn_id=inbox.conn_id,
                name=name[:100],
                sha256=sha,
                size=size,
                outcome="rejected",
                file_code=str(FileCode.F07),
                detail="file name unsafe; no .rej written",
                accepted_count=0,
                rejected_count=0,
                first_seen_at=inbox.now,
                processed_at=inbox.now,
                archived_at=inbox.now,
            )
    archive(remote, engine, inbox, flow, name, True, None)
    log.warning("%s: file name unsafe: rejected F07 and moved to rejected/", shown(name))
    return FileOutcome(name, "rejected", str(FileCode.F07))


def companions_changed(prior: registry.PriorFile, landed: Landed) -> bool:
    """The same data file was rejected F01 or F10 (decided by its companions) and comes
    again with other companions: it is taken afresh (docs/decisions.md 4)."""
    return prior.file_code in COMPANION_CODES and prior.companions_sha256 != landed.companions


# --------------------------------------------------------------------------- the run

#: what a flow does with one landed file: its committed outcome and registry id, or a
#: ``FileLevelError`` (answered here with ``NAME.rej``); ``(waiting_id, first_seen)``
#: tell a file that waited before (for its photo zip) from a new one
Accept = Callable[[Landed, int | None, datetime], tuple[FileOutcome, int | None]]


@dataclass(frozen=True)
class Intake:
    """One flow's run over one pickup directory."""

    remote: Remote
    engine: Engine
    inbox: Inbox
    flow: Flow
    accept: Accept
    #: how long a companion (photo zip) may wait alone for its data file
    alone_wait: timedelta = timedelta(hours=2)
    #: record when a complete file was first found, committed before it is taken, so a
    #: later run taking it after a failure knows that time (``seen`` in the registry)
    records_sight: bool = False

    def run(self) -> list[FileOutcome]:
        """Every complete file of the flow, one transaction each; files that failed for
        a reason no code covers are listed by :func:`raise_if_failed` (not raised here,
        so the caller may go on with deadlines and deliveries first)."""
        inbox = self.inbox
        with exclusive(self.engine, f"pickup:{inbox.conn_id}") as mine:
            if not mine:
                log.warning(
                    "%s: another run is taking files from %s; this run leaves them to it",
                    inbox.conn_id,
                    inbox.pickup,
                )
                return []
            finish_archives(self.remote, self.engine, inbox, self.flow)
            found = survey(self.remote, inbox, self.flow)
            if found.incomplete or found.alone:
                log.info(
                    "%d file(s) not complete yet (a data file without its .ok, or a photo "
                    "zip without its data file): %s",
                    len(found.incomplete) + len(found.alone),
                    ", ".join(shown(n) for n in (found.incomplete + found.alone)[:20]),
                )
            outcomes = self._alone(found.alone) if self.flow.companions else []
            for name in found.ready:
                outcomes.append(take_apart(name, lambda n: self.take(n, found.entries)))
        tally = Counter(o.outcome for o in outcomes)
        log.info(
            "%s %s from %s: %d file(s): %s; lines accepted=%d rejected=%d",
            self.flow.type,
            inbox.business_date,
            inbox.party,
            len(outcomes),
            dict(tally),
            sum(o.accepted for o in outcomes),
            sum(o.rejected for o in outcomes),
        )
        return outcomes

    def take(self, name: str, entries: Mapping[str, RemoteEntry]) -> FileOutcome:
        """One complete file from the pickup directory to its committed outcome."""
        remote, engine, inbox, flow = self.remote, self.engine, self.inbox, self.flow
        if not SAFE_NAME.fullmatch(name):
            return reject_unsafe(remote, engine, inbox, flow, name, entries.get(name))
        landed = land(remote, inbox, name, entries)
        try:
            return self._settle(landed)
        finally:  # the working copy goes when the file's turn ends, kept or not
            if landed.path is not None:
                landed.path.unlink(missing_ok=True)

    def _settle(self, landed: Landed) -> FileOutcome:
        """A landed file to its committed outcome."""
        remote, engine, inbox, flow = self.remote, self.engine, self.inbox, self.flow
        name = landed.name
        prior = None
        if landed.path is not None:  # a directory standing for the file has no content
            with engine.connect() as conn:
                prior = registry.find_same(conn, inbox.conn_id, name, landed.sha256)
        if prior is not None and prior.outcome in ("accepted", "rejected"):
            if companions_changed(prior, landed):
                log.info(
                    "%s: delivered again after %s with its companions changed: taken afresh",
                    shown(name),
                    prior.file_code,
                )
                prior = None
            else:
                archive(remote, engine, inbox, flow, name, prior.outcome == "rejected", prior.id)
                log.info(
                    "%s: delivered again with the same content; archived, nothing else done",
                    shown(name),
                )
                return FileOutcome(name, "redelivered", prior.file_code)
        waiting_id = prior.id if prior is not None else None
        first_seen = prior.first_seen_at if prior is not None else inbox.now
        if prior is None and self.records_sight and landed.path is not None:
            waiting_id = record_sight(engine, inbox, landed)
        try:
            if landed.problem is not None:
                _name_first(name, flow, inbox)  # F07, F04 before the control file's F01
                raise landed.problem
            outcome, file_id = self.accept(landed, waiting_id, first_seen)
        except FileLevelError as exc:
            outcome, file_id = reject_file(engine, inbox, flow, landed, exc, waiting_id, first_seen)
        if outcome.outcome in ("accepted", "rejected"):
            archive(remote, engine, inbox, flow, name, outcome.outcome == "rejected", file_id)
        log.info("%s", outcome.summary())
        return outcome

    def _alone(self, names: list[str]) -> list[FileOutcome]:
        """Companions (photo zips) whose data file has not come: they wait for it up to
        ``alone_wait`` from the first run that saw them alone, then are rejected F04 (a
        zip is no file of its own) with their ``.rej``, so nothing waits unanswered."""
        inbox, engine = self.inbox, self.engine
        with engine.begin() as conn:
            since = registry.zips_waiting_alone(conn, inbox.conn_id, names, inbox.now)
        outcomes = []
        for name, (row_id, first_seen) in since.items():
            if inbox.now - first_seen < self.alone_wait:
                log.info(
                    "%s: photo zip waiting for its data file until %s",
                    shown(name),
                    (first_seen + self.alone_wait).isoformat(),
                )
                continue
            with engine.begin() as conn:
                registry.update_file(
                    conn,
                    row_id,
                    outcome="rejected",
                    file_code=str(FileCode.F04),
                    detail="photo zip without its data file past zip_wait",
                    processed_at=inbox.now,
                )
                queue_rej(conn, inbox, name, FileCode.F04, row_id)
            archive(self.remote, engine, inbox, _lone(self.flow), name, True, row_id)
            log.warning(
                "%s: photo zip without its data file past zip_wait: rejected F04", shown(name)
            )
            outcomes.append(FileOutcome(name, "rejected", str(FileCode.F04)))
        return outcomes


def _lone(flow: Flow) -> Flow:
    """``flow`` with no companions: a lone zip moves with its own control file only."""
    return Flow(flow.type, flow.sender, flow.dag)


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
            shown(name),
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
    values, such as a key that already exists); any other error by its type and message
    (its PANs and ID numbers masked: a ``KeyError`` may be keyed by one), and the types
    of the errors that caused it."""
    text = describe_database_error(exc) or (
        f"{type(exc).__name__}: {shown(masked_numbers(str(exc)))[:300]}"
    )
    causes: list[str] = []
    cause = exc.__cause__ or exc.__context__
    while cause is not None and len(causes) < 5:
        if cause is not getattr(exc, "orig", None):
            causes.append(type(cause).__name__)
        cause = cause.__cause__ or cause.__context__
    return text + (f" (caused by {', '.join(causes)})" if causes else "")


class IntakeIncomplete(Exception):
    """Files that failed for a reason no reason code covers (a defect, or a fault of this
    machine): each is left in the pickup, untouched, for the next run, after the other
    files were processed; their errors are in the log above."""

    def __init__(self, names: list[str]) -> None:
        self.names = names
        super().__init__(
            f"{len(names)} file(s) could not be processed and were left in pickup for the "
            f"next run (see the errors logged above): {', '.join(shown(n) for n in names[:20])}"
        )
