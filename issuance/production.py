"""Production results from the card factory (ICD §5.6).

Records are matched to what was sent to the returning factory by (card_no, pan), possibly
across several PERSORSP files and days. A made card becomes a card in status 0 (sealed) with its card
identification code, ATR, box number and made date; a failed card ends the application
at stage 2 with the factory's ``M`` reason. A record for a card never sent, a second
record for a card, or a record whose PAN contradicts the PERSO is reported and never
applied; so is a record for a card sent to another factory.
"""

from __future__ import annotations

import logging

from sqlalchemy import Connection

from exchange.pickup import Landed
from persistence import answer_store
from schemas.codec import DelimitedReader, FixedReader

log = logging.getLogger("sscard.production")


def apply_production_results(
    conn: Connection,
    reader: DelimitedReader | FixedReader,
    landed: Landed,
    file_id: int,
    business_date: str,
) -> dict[str, int]:
    """Apply a PERSORSP, a chunk at a time, with a fixed number of statements per chunk
    (:func:`persistence.answer_store.apply_production_chunk`). Records refused by the
    layout, and records that cannot be applied, are reported in ``return_problem``."""
    counts = {"applied": 0, "made": 0, "failed": 0, "problems": 0}
    stage = answer_store.PERSORSP_STAGE
    answer_store.open_stage(conn, stage)
    for chunk in reader.chunks():
        answer_store.stage_chunk(conn, stage, chunk, answer_store.layout_problems(chunk))
        done = answer_store.apply_production_chunk(
            conn, reader.header.sender, landed.name, business_date
        )
        counts["made"] += done.done
        counts["failed"] += done.refused
        counts["problems"] += done.problems
    answer_store.close_stage(conn, stage)
    counts["applied"] = counts["made"] + counts["failed"]
    if counts["problems"]:
        log.warning(
            "%s: %d record(s) not applied (see return_problem)", landed.name, counts["problems"]
        )
    return counts
