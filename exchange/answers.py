"""The answer-intake pipeline: files a counterparty sends in answer to the hub's (a
partner bank's ACCTOPENRSP, STATUSRSP, BANKEVT, a factory's PERSORSP), and the requests
answered line by line in one transaction (STATUS, CHANNEL).

A flow gives its TYPE and a handler that applies the lines of one file inside the file's
transaction; everything else is here: name and header checks (F04), the control file
(F01), repeats (F05), the reader streaming the file from the working directory in
chunks, the registry row, the hub's copy in object storage.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import date, datetime, timedelta

from sqlalchemy import Connection, Engine, text

from exchange.flows import Flow
from exchange.pickup import (
    FileOutcome,
    Intake,
    Landed,
    PartyInbox,
    file_values,
    keep_copy,
)
from persistence import registry
from schemas.codec import DelimitedReader, FixedReader, Header
from schemas.codes import FileCode
from schemas.files import Control, FileLevelError, FileName, hub_batch_no
from schemas.layouts import LAYOUTS
from transport.remote import Remote

log = logging.getLogger("sscard.exchange")

Reader = DelimitedReader | FixedReader
#: applies one file's lines in its transaction; counts, ``applied`` = lines applied
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


def check_request_header(header: Header, fname: FileName, inbox: PartyInbox) -> None:
    """A request (STATUS, CHANNEL, DISB) is dated today or up to ``max_forward_days``
    ahead, never earlier (ICD §3); its header agrees with its name (F04)."""
    if (header.sender, header.receiver, header.business_date) != (
        fname.sender,
        fname.receiver,
        fname.business_date,
    ):
        raise FileLevelError(FileCode.F04, "header differs from the file name")
    if not (
        inbox.business_date
        <= header.business_date
        <= _day(inbox.business_date, inbox.max_forward_days)
    ):
        raise FileLevelError(FileCode.F04, "business date not allowed")


HeaderCheck = Callable[[Header, FileName, PartyInbox], None]


#: the hub's requests a counterparty answers with ``<TYPE>RSP`` (ICD §3); PERSORSP is no
#: such response (the factory numbers its files itself)
_ANSWERED = ("ACCTOPEN", "STATUS", "DISB")


def _check_answers_a_request(conn: Connection, header: Header, fname: FileName) -> None:
    """A response names the request it answers (ICD §3: ``<TYPE>RSP``, parties swapped,
    the request's date and SEQ) and carries that request's BATCH_NO: one answering no
    file the hub sent, or with another BATCH_NO, is F04 (its lines would be matched to
    requests by their keys alone)."""
    if not fname.type.endswith("RSP") or fname.type[:-3] not in _ANSWERED:
        return
    request = FileName(
        fname.type[:-3], fname.receiver, fname.sender, fname.business_date, fname.seq
    )
    sent = conn.scalar(
        text("SELECT 1 FROM outbound_file WHERE name = :n AND type = :t"),
        {"n": str(request), "t": request.type},
    )
    if sent is None:
        raise FileLevelError(FileCode.F04, f"answers no file the hub sent ({request})")
    expected = hub_batch_no(request.type, request.receiver, request.business_date, request.seq)
    if header.batch_no != expected:
        raise FileLevelError(
            FileCode.F04, f"BATCH_NO is not that of the request it answers ({expected})"
        )


def receive(
    remote: Remote,
    engine: Engine,
    inbox: PartyInbox,
    flow: Flow,
    handler: Handler,
    chunk_lines: int = 50_000,
    check_header: HeaderCheck = check_answer_header,
) -> list[FileOutcome]:
    """Every complete file of ``flow`` from ``inbox.party``, and every file of a TYPE that
    party does not send when ``flow`` answers strangers (F04). Answers and returns are
    dated back (:func:`check_answer_header`), requests ahead (:func:`check_request_header`)."""

    def accept(
        landed: Landed, waiting_id: int | None, first_seen: datetime
    ) -> tuple[FileOutcome, int | None]:
        return _take(
            engine, inbox, flow, handler, landed, chunk_lines, check_header, waiting_id, first_seen
        )

    return Intake(remote, engine, inbox, flow, accept, records_sight=True).run()


def _take(
    engine: Engine,
    inbox: PartyInbox,
    flow: Flow,
    handler: Handler,
    landed: Landed,
    chunk_lines: int,
    check_header: HeaderCheck = check_answer_header,
    sight_id: int | None = None,
    first_seen: datetime | None = None,
) -> tuple[FileOutcome, int]:
    fname = FileName.parse(landed.name)
    if fname.type != flow.type or fname.ext != "txt":
        raise FileLevelError(FileCode.F04, "wrong TYPE: not a file this counterparty sends")
    if fname.sender != inbox.party or fname.receiver != inbox.hub:
        raise FileLevelError(FileCode.F04, "file is not from this counterparty to this hub")
    control = Control.parse(landed.control, landed.name)
    control.verify(landed.size, landed.sha256)
    layout = LAYOUTS[flow.type]
    assert landed.path is not None
    with landed.path.open("rb") as fh:
        reader: Reader = (
            FixedReader(fh, layout, chunk_lines, control_count=control.record_count)
            if layout.framing == "fixed"
            else DelimitedReader(fh, layout, inbox.encoding, chunk_lines, control.record_count)
        )
        check_header(reader.header, fname, inbox)
        with engine.begin() as conn:
            _check_answers_a_request(conn, reader.header, fname)
            if registry.conflicting(
                conn, fname.sender, flow.type, landed.name, reader.header.batch_no, landed.sha256
            ):
                raise FileLevelError(
                    FileCode.F05, "NAME or BATCH_NO already processed with other content"
                )
            values = file_values(inbox, landed, fname, "accepted", first_seen or inbox.now)
            values.update(batch_no=reader.header.batch_no, processed_at=inbox.now)
            if sight_id is None:
                file_id = registry.record_file(conn, **values)
            else:
                file_id = sight_id
                registry.update_file(conn, file_id, **values)
            counts = handler(conn, reader, landed, file_id)
            registry.update_file(
                conn,
                file_id,
                record_count=reader.detail_count,
                accepted_count=counts.get("applied", 0),
                rejected_count=reader.detail_count - counts.get("applied", 0),
                local_path=keep_copy(inbox, landed, layout),
            )
    return FileOutcome(landed.name, "accepted", None, counts), file_id
