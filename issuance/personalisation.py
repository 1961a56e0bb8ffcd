"""Personalisation data to the card factory (ICD §4.3, §5.5).

Every card whose PAN is known goes to the factory exactly once, in fixed-width PERSO
files of at most ``max_records`` records with a photo zip holding the photos byte for
byte as the bureau sent them. The issue date is the PERSO file's business date; the
card is valid ten years (29 February → 28 February).
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path, PurePosixPath

import pyarrow as pa
import pyarrow.compute as pc
from sqlalchemy import Connection, Engine, String, bindparam, text

from exchange.outbox import Drop, originate, queue_path
from exchange.storage import Storage
from issuance.zipcopy import PhotoSources, copy_photos
from persistence import registry
from persistence.db import bulk_load, query_batches
from persistence.issuance_store import set_status
from schemas.codec import write_fixed_table
from schemas.layouts import PERSO
from schemas.states import ApplicationStatus

log = logging.getLogger("sscard.personalisation")


def expiry_of(issue_date: str, years: int = 10) -> str:
    """Issue date + ``years``; 29 February becomes 28 February (ICD §5.5)."""
    y, md = int(issue_date[:4]) + years, issue_date[4:]
    if md == "0229" and not (y % 4 == 0 and (y % 100 != 0 or y % 400 == 0)):
        md = "0228"
    return f"{y:04d}{md}"


#: A replacement without a photo (``05``–``07``) takes the photo on file: that of the
#: nearest earlier application in its chain of replaced cards that had one (decision 25).
_PENDING = """
WITH RECURSIVE earlier (start_id, app_id, photo, file_id, depth) AS (
    SELECT a.id, prev.id, prev.photo, prev.file_id, 1
    FROM application_state st
    JOIN application a ON a.id = st.application_id
    JOIN card oc ON oc.card_no = a.old_card_no
    JOIN application prev ON prev.id = oc.application_id
    WHERE st.status = :s AND st.bureau IN :bureaus AND a.photo = '' AND a.old_card_no <> ''
  UNION ALL
    SELECT e.start_id, prev.id, prev.photo, prev.file_id, e.depth + 1
    FROM earlier e
    JOIN application cur ON cur.id = e.app_id
    JOIN card oc ON oc.card_no = cur.old_card_no
    JOIN application prev ON prev.id = oc.application_id
    WHERE e.photo = '' AND cur.old_card_no <> '' AND e.depth < 20
)
SELECT a.id, a.card_no, a.id_type, a.id_no, a.name, a.gender, a.ethnicity, a.birth_date,
       a.region_code, a.bank_code, st.pan, st.pan_seq,
       COALESCE(NULLIF(a.photo, ''), on_file.photo, '') AS photo,
       CASE WHEN a.photo <> '' THEN f.local_path ELSE old_file.local_path END AS source
FROM application_state st
JOIN application a ON a.id = st.application_id
JOIN received_file f ON f.id = a.file_id
LEFT JOIN earlier on_file ON on_file.start_id = a.id AND on_file.photo <> ''
LEFT JOIN received_file old_file ON old_file.id = on_file.file_id
WHERE st.status = :s AND st.bureau IN :bureaus
ORDER BY st.application_id
"""


def photo_entry(card_no: str) -> str:
    """A photo's name in the PERSO zip: the card number, unique across bureaus and batches
    (the bureaus' own entry names may repeat from one batch to the next)."""
    return f"{card_no}.jpg"


def _write_photos(
    records: Iterable[tuple[str, str, str | None]],
    target: Path,
    business_date: str,
    sources: PhotoSources,
    zips: Callable[[str], Path],
) -> tuple[int, str]:
    """Copy the named photos from the bureaus' zips kept on arrival into ``target``,
    byte for byte (never re-encoded), each under its card's entry name; returns the
    number of photos and the zip's SHA-256."""
    by_source: dict[str, list[tuple[str, str]]] = defaultdict(list)
    for card_no, photo, source in records:
        if photo and source:
            by_source[source].append((photo, photo_entry(card_no)))
    by_zip = {
        str(zips(str(PurePosixPath(source).with_suffix(".zip")))): names
        for source, names in by_source.items()
    }
    return copy_photos(by_zip, target, business_date, sources)


#: the columns of ``_PENDING``, in select order
_PENDING_COLUMNS = {
    "id": pa.int64(),
    **{
        name: pa.string()
        for name in (
            "card_no id_type id_no name gender ethnicity birth_date region_code bank_code "
            "pan pan_seq photo source"
        ).split()
    },
}


def perso_columns(part: pa.Table, business_date: str, expiry: str) -> pa.Table:
    """The PERSO fields (ICD §5.5) of cards ready for production, as Arrow columns."""
    n = part.num_rows
    card_no = part.column("card_no")
    named = pc.not_equal(part.column("photo"), "")
    photo = pc.if_else(named, pc.binary_join_element_wise(card_no, ".jpg", ""), "")
    fields = {name: part.column(name) for name in PERSO.names if name in part.column_names}
    fields.update(
        issue_date=pa.array([business_date] * n, pa.string()),
        expiry_date=pa.array([expiry] * n, pa.string()),
        photo=photo,
    )
    return pa.table({name: fields[name] for name in PERSO.names})


def dispatch_perso(
    engine: Engine,
    *,
    hub: str,
    factory: str,
    conn_id: str,
    drop: str,
    business_date: str,
    now: datetime,
    bureaus: tuple[str, ...],
    work_dir: Path,
    store: Storage,
    max_records: int = 10_000,
) -> list[str]:
    """Queue PERSO files (and their photo zips) for every card of ``bureaus`` ready for
    production: all of them, in files of at most ``max_records`` records, in one
    transaction. Both files of a PERSO are written in the run's working directory and
    queued (into object storage when large); each zip is queued before its PERSO, so it
    is published first. The bureaus' photo zips are read from object storage.

    Three things overlap: this thread writes each PERSO file, one worker copies its
    photos, and another stores its records and queues its files (the only user of the
    connection once the cards are read), so Python and the database work at once."""
    names: list[str] = []
    expiry = expiry_of(business_date)
    spool = work_dir / "perso"
    drop_to = Drop(conn_id, drop, now, store)

    def zips(key: str) -> Path:
        return store.local_copy(key, work_dir)

    with engine.begin() as conn:
        pending = query_batches(
            conn,
            text(_PENDING).bindparams(
                bindparam("s", type_=String), bindparam("bureaus", expanding=True, type_=String)
            ),
            {"s": ApplicationStatus.ACCOUNT_OPEN, "bureaus": list(bureaus)},
            _PENDING_COLUMNS,
            max_records,
        )
        first_seq = registry.next_seq(conn, "PERSO", hub, factory, business_date)
        stored: list[Future[None]] = []
        with (
            PhotoSources() as sources,
            ThreadPoolExecutor(max_workers=1, thread_name_prefix="perso-photos") as copier,
            ThreadPoolExecutor(max_workers=1, thread_name_prefix="perso-db") as database,
        ):
            for number, part in enumerate(pending):
                count = part.num_rows
                perso = originate(
                    conn, "PERSO", hub, factory, business_date, count, seq=first_seq + number
                )
                name, header = perso.name, perso.header
                spool.mkdir(parents=True, exist_ok=True)
                with (spool / name).open("wb") as out:
                    write_fixed_table(
                        out, PERSO, header, perso_columns(part, business_date, expiry)
                    )
                photos = copier.submit(
                    _write_photos,
                    zip(
                        part.column("card_no").to_pylist(),
                        part.column("photo").to_pylist(),
                        part.column("source").to_pylist(),
                        strict=True,
                    ),
                    spool / (name[:-4] + ".zip"),
                    business_date,
                    sources,
                    zips,
                )
                sent = pa.table(
                    {
                        "application_id": part.column("id"),
                        "card_no": part.column("card_no"),
                        "pan": part.column("pan"),
                        "factory": pa.array([factory] * count, pa.string()),
                        "perso_name": pa.array([name] * count, pa.string()),
                        "seq": pa.array(range(1, count + 1), pa.int64()),
                        "issue_date": pa.array([business_date] * count, pa.string()),
                        "expiry_date": pa.array([expiry] * count, pa.string()),
                    }
                )
                outbox = _Outbox(drop_to, spool, name, count, factory)
                stored.append(database.submit(_store, conn, sent, photos, outbox))
                names.append(name)
                while len(stored) > _IN_FLIGHT or (stored and stored[0].done()):
                    stored.pop(0).result()
            for future in stored:
                future.result()
    if not names:
        log.info("no card waiting for personalisation")
    return names


#: PERSO files written ahead of the workers, at most (memory stays flat)
_IN_FLIGHT = 2


@dataclass(frozen=True)
class _Outbox:
    """Where a PERSO and its photo zip go."""

    dest: Drop
    spool: Path
    name: str
    records: int
    factory: str


def _store(
    conn: Connection, sent: pa.Table, photos: Future[tuple[int, str]], outbox: _Outbox
) -> None:
    """Record the cards of one PERSO as sent, then queue its photo zip (once written) and
    the PERSO itself."""
    bulk_load(conn, "perso_record", sent, sent.column_names)
    set_status(conn, sent.column("application_id"), ApplicationStatus.PERSO_SENT)
    count, sha = photos.result()
    zip_name = outbox.name[:-4] + ".zip"
    queue_path(
        conn,
        outbox.dest,
        name=zip_name,
        type_="PERSOZIP",
        path=outbox.spool / zip_name,
        sha256=sha,
        record_count=count,
    )
    queue_path(
        conn,
        outbox.dest,
        name=outbox.name,
        type_="PERSO",
        path=outbox.spool / outbox.name,
        record_count=outbox.records,
    )
    for done in (zip_name, outbox.name):
        (outbox.spool / done).unlink(missing_ok=True)
    log.info(
        "%s: %d card(s), %d photo(s) for factory %s",
        outbox.name,
        outbox.records,
        count,
        outbox.factory,
    )
