"""Production returns to the bureau, CARDRSP (ICD §5.3): every business day, every card
that reached a final outcome since the previous CARDRSP, each exactly once — made
cards, and failures at the bank (stage 1) and at the factory (stage 2)."""

from __future__ import annotations

import logging
from datetime import datetime
from pathlib import Path

import pyarrow as pa
from sqlalchemy import Engine

from exchange.outbox import Drop, compose, originate
from exchange.storage import Storage
from persistence import registry
from persistence.issuance_store import bulk_update, rows
from schemas.codec import write_delimited
from schemas.codes import reason_text
from schemas.layouts import CARDRSP
from schemas.states import FailStage

log = logging.getLogger("sscard.card_returns")

_FINAL = """
SELECT a.id, a.app_no, a.card_no, a.id_no, a.name, a.bank_code, st.pan, st.pan_seq,
       st.fail_stage, st.reason_code, c.issue_date, c.expiry_date, c.card_id_code, c.atr, c.box_no
FROM application_state st
JOIN application a ON a.id = st.application_id
LEFT JOIN card c ON c.card_no = a.card_no AND c.application_id = a.id
WHERE st.bureau = :bureau AND st.final_date IS NOT NULL AND st.final_date <= :d
  AND st.cardrsp_name IS NULL
ORDER BY st.final_date, st.application_id
"""


def write_card_returns(
    engine: Engine,
    *,
    hub: str,
    bureau: str,
    conn_id: str,
    drop: str,
    encoding: str,
    business_date: str,
    now: datetime,
    work_dir: Path,
    store: Storage,
) -> str | None:
    """Queue the day's CARDRSP for ``bureau``. The first run of a day always writes one
    (with no lines when nothing happened); a later run of the same day writes another
    only for outcomes reached since, so re-running changes nothing."""
    with engine.begin() as conn:
        final = rows(conn, _FINAL, bureau=bureau, d=business_date)
        seq = registry.next_seq(conn, "CARDRSP", hub, bureau, business_date)
        if seq > 1 and not final:
            log.info("CARDRSP for %s of %s already written; nothing new", bureau, business_date)
            return None
        cardrsp = originate(conn, "CARDRSP", hub, bureau, business_date, len(final), seq=seq)
        name = cardrsp.name
        lines = []
        for r in final:
            made = r.fail_stage is None
            at_bank = r.fail_stage == FailStage.BANK
            lines.append(
                (
                    r.app_no,
                    r.card_no,
                    r.id_no,
                    r.name,
                    r.issue_date if made else "",
                    r.expiry_date if made else "",
                    r.card_id_code if made else "",
                    r.atr if made else "",
                    r.bank_code,
                    "" if at_bank else (r.pan or ""),
                    "" if at_bank else (r.pan_seq or ""),
                    r.box_no if made else "",
                    FailStage.MADE if made else r.fail_stage,
                    "" if made else r.reason_code,
                    "" if made else reason_text(r.reason_code),
                )
            )
        compose(
            conn,
            Drop(conn_id, drop, now, store),
            work_dir,
            name=name,
            type_="CARDRSP",
            record_count=len(lines),
            write=lambda out: write_delimited(out, CARDRSP, cardrsp.header, lines, encoding),
        )
        if final:
            bulk_update(
                conn,
                "application_state",
                "application_id",
                pa.table(
                    {
                        "application_id": pa.array([r.id for r in final], pa.int64()),
                        "cardrsp_name": [name] * len(final),
                    }
                ),
            )
    log.info(
        "%s: %d card(s): %d made, %d failed at the bank, %d failed at the factory",
        name,
        len(lines),
        sum(1 for line in lines if line[12] == FailStage.MADE),
        sum(1 for line in lines if line[12] == FailStage.BANK),
        sum(1 for line in lines if line[12] == FailStage.FACTORY),
    )
    return name
