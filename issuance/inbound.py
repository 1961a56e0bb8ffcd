"""Taking answers from partner banks and card factories (ICD §2, §3): the same promises as
APPLY intake — only complete files, one transaction per file, re-delivery changes
nothing, other content under a used NAME or BATCH_NO is F05, a file rejected as a whole
is answered with ``NAME.rej`` — for any file type and a handler that applies its lines."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import date, timedelta
from functools import partial

from sqlalchemy import Connection, Engine

from issuance.inbox import PartyInbox
from issuance.intake import (
    FileOutcome,
    Landed,
    _file_values,
    _reject_unsafe,
    archive,
    companions_changed,
    complete_files,
    land,
    reject_file,
    take_apart,
)
from persistence import registry
from schemas.codec import DelimitedReader, FixedReader, Header
from schemas.codes import FileCode
from schemas.files import SAFE_NAME, Control, FileLevelError, FileName
from schemas.layouts import LAYOUTS
from transport.remote import Remote

log = logging.getLogger("sscard.inbound")

Reader = DelimitedReader | FixedReader
Handler = Callable[[Connection, Reader, Landed, int], dict[str, int]]


def _day(text: str, days: int) -> str:
    d = date(int(text[:4]), int(text[4:6]), int(text[6:])) + timedelta(days=days)
    return d.strftime("%Y%m%d")


def check_answer_header(header: Header, fname: FileName, inbox: PartyInbox) -> None:
    """A response or production return may be dated up to ``max_back_days`` back, never
    ahead (ICD §3); its header agrees with its name (F04)."""
    if (header.sender, header.receiver, header.business_date) != (
        fname.sender,
        fname.receiver,
        fname.business_date,
    ):
        raise FileLevelError(FileCode.F04, "header differs from the file name")
    if (
        not _day(inbox.business_date, -inbox.max_back_days)
        <= header.business_date
        <= inbox.business_date
    ):
        raise FileLevelError(FileCode.F04, "business date not allowed")


#: what else the counterparty that sends a TYPE sends the hub (ICD §1, §5.4, §5.7, §5.8,
#: §5.10): left in its pickup for the flows that take them; any other TYPE there is F04
SENT_ALONGSIDE: dict[str, frozenset[str]] = {
    "ACCTOPENRSP": frozenset({"STATUSRSP", "DISBRSP", "BANKEVT"}),
    "PERSORSP": frozenset(),
}


def receive(
    remote: Remote, engine: Engine, inbox: PartyInbox, type_: str, handler: Handler
) -> list[FileOutcome]:
    """Every complete ``type_`` file from ``inbox.party`` in the pickup directory, and
    every file of a TYPE that party does not send (F04). A file that fails for a reason no
    reason code covers is left in the pickup, untouched, with the outcome ``failed``
    (see :func:`issuance.intake.raise_if_failed`), and the other files go on."""
    ready, incomplete = complete_files(remote, inbox.pickup)
    if incomplete:
        log.info("%d file(s) not complete yet", len(incomplete))
    outcomes: list[FileOutcome] = []
    for name in ready:
        try:
            fname: FileName | None = FileName.parse(name)
        except FileLevelError:
            fname = None
        if fname is not None and fname.type in SENT_ALONGSIDE.get(type_, frozenset()):
            continue
        outcomes.append(
            take_apart(name, partial(_receive_one, remote, engine, inbox, type_, handler))
        )
    return outcomes


def _receive_one(
    remote: Remote, engine: Engine, inbox: PartyInbox, type_: str, handler: Handler, name: str
) -> FileOutcome:
    if not SAFE_NAME.fullmatch(name):
        return _reject_unsafe(remote, engine, inbox, name)
    landed = land(remote, inbox, name)
    with engine.connect() as conn:
        prior = registry.find_same(conn, inbox.conn_id, name, landed.sha256)
    if prior is not None and companions_changed(prior, landed):
        log.info(
            "%s: delivered again after %s with its control file changed: taken afresh",
            name,
            prior.file_code,
        )
    elif prior is not None:
        archive(remote, inbox, name, rejected=prior.outcome == "rejected")
        log.info("%s: delivered again with the same content; archived, nothing else done", name)
        return FileOutcome(name, "redelivered", prior.file_code)
    try:
        outcome = _take(engine, inbox, landed, type_, handler)
    except FileLevelError as exc:
        outcome = reject_file(engine, inbox, landed, exc, None, inbox.now)
    archive(remote, inbox, name, rejected=outcome.outcome == "rejected")
    log.info("%s", outcome.summary())
    return outcome


def _take(
    engine: Engine, inbox: PartyInbox, landed: Landed, type_: str, handler: Handler
) -> FileOutcome:
    fname = FileName.parse(landed.name)
    if fname.type != type_ or fname.ext != "txt":
        raise FileLevelError(FileCode.F04, "wrong TYPE: not a file this counterparty sends")
    if fname.sender != inbox.party or fname.receiver != inbox.hub:
        raise FileLevelError(FileCode.F04, "file is not from this counterparty to this hub")
    control = Control.parse(landed.control, landed.name)
    control.verify(landed.size, landed.sha256)
    layout = LAYOUTS[type_]
    data = landed.path.read_bytes()
    reader: Reader = (
        FixedReader(data, layout, control_count=control.record_count)
        if layout.framing == "fixed"
        else DelimitedReader(data, layout, inbox.encoding, control_count=control.record_count)
    )
    check_answer_header(reader.header, fname, inbox)
    with engine.begin() as conn:
        if registry.conflicting(
            conn, fname.sender, type_, landed.name, reader.header.batch_no, landed.sha256
        ):
            raise FileLevelError(
                FileCode.F05, "NAME or BATCH_NO already processed with other content"
            )
        values = _file_values(inbox, landed, fname, "accepted", inbox.now)
        values.update(batch_no=reader.header.batch_no, processed_at=inbox.now)
        file_id = registry.record_file(conn, **values)
        counts = handler(conn, reader, landed, file_id)
        registry.update_file(
            conn,
            file_id,
            record_count=reader.detail_count,
            accepted_count=counts.get("applied", 0),
            rejected_count=reader.detail_count - counts.get("applied", 0),
        )
    return FileOutcome(landed.name, "accepted", None, counts)
