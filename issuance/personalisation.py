"""Personalisation data to the card factory (ICD §4.3, §5.5).

Every card whose PAN is known goes to the factory exactly once, in fixed-width PERSO
files of at most ``max_records`` records with a photo zip holding the photos byte for
byte as the bureau sent them. The issue date is the PERSO file's business date; the
card is valid ten years (29 February → 28 February).
"""

from __future__ import annotations

import io
import logging
from collections import defaultdict
from datetime import datetime
from pathlib import Path

import pyarrow as pa
from sqlalchemy import Engine, bindparam, text

from issuance.accounts import ACCOUNT_OPEN, PERSO_SENT
from issuance.zipcopy import copy_photos
from persistence import registry
from persistence.db import bulk_load
from persistence.issuance_store import bulk_update
from schemas.codec import Header, write_fixed
from schemas.layouts import PERSO

log = logging.getLogger("sscard.personalisation")


def expiry_of(issue_date: str, years: int = 10) -> str:
    """Issue date + ``years``; 29 February becomes 28 February (ICD §5.5)."""
    y, md = int(issue_date[:4]) + years, issue_date[4:]
    if md == "0229" and not (y % 4 == 0 and (y % 100 != 0 or y % 400 == 0)):
        md = "0228"
    return f"{y:04d}{md}"


_PENDING = """
SELECT a.id, a.card_no, a.id_type, a.id_no, a.name, a.gender, a.ethnicity, a.birth_date,
       a.region_code, a.bank_code, st.pan, st.pan_seq,
       COALESCE(NULLIF(a.photo, ''), old_app.photo, '') AS photo,
       CASE WHEN a.photo <> '' THEN f.local_path ELSE old_file.local_path END AS source
FROM application_state st
JOIN application a ON a.id = st.application_id
JOIN received_file f ON f.id = a.file_id
LEFT JOIN card oc ON oc.card_no = a.old_card_no AND a.photo = ''
LEFT JOIN application old_app ON old_app.id = oc.application_id
LEFT JOIN received_file old_file ON old_file.id = old_app.file_id
WHERE st.status = :s AND st.bureau IN :bureaus
ORDER BY st.application_id
"""


def photo_entry(card_no: str) -> str:
    """A photo's name in the PERSO zip: the card number, unique across bureaus and batches
    (the bureaus' own entry names may repeat from one batch to the next)."""
    return f"{card_no}.jpg"


def _write_photos(
    records: list[tuple[str, str, str | None]], target: Path, business_date: str
) -> int:
    """Copy the named photos from the bureaus' zips kept on arrival into ``target``,
    byte for byte (never re-encoded), each under its card's entry name."""
    by_source: dict[str, list[tuple[str, str]]] = defaultdict(list)
    for card_no, photo, source in records:
        if photo and source:
            by_source[source].append((photo, photo_entry(card_no)))
    by_zip = {str(Path(source).with_suffix(".zip")): names for source, names in by_source.items()}
    return copy_photos(by_zip, target, business_date)


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
    spool_dir: Path,
    max_records: int = 10_000,
) -> list[str]:
    """Queue PERSO files (and their photo zips) for every card of ``bureaus`` ready for
    production: all of them, in files of at most ``max_records`` records."""
    names: list[str] = []
    with engine.begin() as conn:
        pending = conn.execute(
            text(_PENDING).bindparams(bindparam("bureaus", expanding=True)),
            {"s": ACCOUNT_OPEN, "bureaus": list(bureaus)},
        ).all()
        expiry = expiry_of(business_date)
        for start in range(0, len(pending), max_records):
            part = pending[start : start + max_records]
            seq = registry.next_seq(conn, "PERSO", hub, factory, business_date)
            name = f"PERSO_{hub}_{factory}_{business_date}_{seq:03d}.txt"
            zip_name = name[:-4] + ".zip"
            records = [
                (
                    r.card_no,
                    r.id_type,
                    r.id_no,
                    r.name,
                    r.gender,
                    r.ethnicity,
                    r.birth_date,
                    r.region_code,
                    business_date,
                    expiry,
                    r.bank_code,
                    r.pan,
                    r.pan_seq,
                    photo_entry(r.card_no) if r.photo else "",
                )
                for r in part
            ]
            data = io.BytesIO()
            header = Header(
                "PERSO", hub, factory, f"{business_date}{seq:03d}", business_date, len(records)
            )
            write_fixed(data, PERSO, header, records)
            spool = spool_dir / business_date
            spool.mkdir(parents=True, exist_ok=True)
            photos = _write_photos(
                [(r.card_no, r.photo, r.source) for r in part], spool / zip_name, business_date
            )
            registry.queue_outbound(
                conn,
                conn_id=conn_id,
                directory=drop,
                name=zip_name,
                type_="PERSOZIP",
                path=spool / zip_name,
                record_count=photos,
                created_at=now,
            )
            registry.queue_outbound(
                conn,
                conn_id=conn_id,
                directory=drop,
                name=name,
                type_="PERSO",
                data=data.getvalue(),
                record_count=len(records),
                created_at=now,
            )
            sent = pa.table(
                {
                    "application_id": pa.array([r.id for r in part], pa.int64()),
                    "card_no": [r.card_no for r in part],
                    "pan": [r.pan for r in part],
                    "factory": [factory] * len(part),
                    "perso_name": [name] * len(part),
                    "seq": pa.array(range(1, len(part) + 1), pa.int64()),
                    "issue_date": [business_date] * len(part),
                    "expiry_date": [expiry] * len(part),
                }
            )
            bulk_load(conn, "perso_record", sent, sent.column_names)
            bulk_update(
                conn,
                "application_state",
                "application_id",
                pa.table(
                    {
                        "application_id": sent.column("application_id"),
                        "status": [PERSO_SENT] * len(part),
                    }
                ),
            )
            names.append(name)
            log.info("%s: %d card(s), %d photo(s) for factory %s", name, len(part), photos, factory)
    if not names:
        log.info("no card waiting for personalisation")
    return names
