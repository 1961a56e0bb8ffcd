"""Production results from the card factory (ICD §5.6).

Records are matched to what was sent by (card_no, pan), possibly across several PERSORSP
files and days. A made card becomes a card in status 0 (sealed) with its card
identification code, ATR, box number and made date; a failed card ends the application
at stage 2 with the factory's ``M`` reason. A record for a card never sent, a second
record for a card, or a record whose PAN contradicts the PERSO is reported and never
applied.
"""

from __future__ import annotations

import logging

import pyarrow as pa
from sqlalchemy import Connection, bindparam, text

from issuance.intake import Landed
from persistence.db import bulk_load
from persistence.issuance_store import bulk_update
from schemas.codec import DelimitedReader, FixedReader
from schemas.states import ApplicationStatus, CardStatus, FailStage

log = logging.getLogger("sscard.production")

_SENT = text(
    "SELECT p.card_no, p.pan, p.application_id, p.result, p.issue_date, p.expiry_date, "
    "a.bureau, a.id_type, a.id_no, a.name, a.bank_code, st.pan_seq, st.status "
    "FROM perso_record p JOIN application a ON a.id = p.application_id "
    "JOIN application_state st ON st.application_id = p.application_id WHERE p.card_no IN :cards"
).bindparams(bindparam("cards", expanding=True))


def apply_production_results(
    conn: Connection,
    reader: DelimitedReader | FixedReader,
    landed: Landed,
    file_id: int,
    business_date: str,
) -> dict[str, int]:
    counts = {"applied": 0, "made": 0, "failed": 0, "problems": 0}
    problems: list[dict[str, object]] = []
    seen: set[str] = set()
    for chunk in reader.chunks():
        recs = chunk.table.to_pylist()
        ok = chunk.ok
        sent = {}
        cards = sorted({r["card_no"] for r in recs})
        for i in range(0, len(cards), 900):
            for row in conn.execute(_SENT, {"cards": cards[i : i + 900]}):
                sent[row.card_no] = row
        new_cards: list[dict[str, object]] = []
        app_updates: list[tuple[int, str, str | None, str | None]] = []
        perso_updates: list[tuple[int, str]] = []
        for i, r in enumerate(recs):
            card_no, line_no = r["card_no"], int(r["_line"])

            def problem(what: str, line_no: int = line_no, card_no: str = card_no) -> None:
                problems.append(
                    {
                        "file_name": landed.name,
                        "line_no": line_no,
                        "key": card_no[:30],
                        "problem": what,
                        "business_date": business_date,
                    }
                )

            if not ok[i]:
                problem(f"layout {chunk.fail_code[i]}")
                continue
            s = sent.get(card_no)
            if s is None:
                problem("card_no not in any PERSO")
                continue
            if s.pan != r["pan"]:
                problem("pan differs from the PERSO")
                continue
            if s.result is not None or card_no in seen or s.status != ApplicationStatus.PERSO_SENT:
                problem("card returned before")
                continue
            seen.add(card_no)
            perso_updates.append((s.application_id, r["result"]))
            if r["result"] == "00":
                new_cards.append(
                    {
                        "card_no": card_no,
                        "application_id": s.application_id,
                        "bureau": s.bureau,
                        "id_type": s.id_type,
                        "id_no": s.id_no,
                        "name": s.name,
                        "bank_code": s.bank_code,
                        "pan": s.pan,
                        "pan_seq": s.pan_seq,
                        "status": CardStatus.SEALED,
                        "issue_date": s.issue_date,
                        "expiry_date": s.expiry_date,
                        "card_id_code": r["card_id_code"],
                        "atr": r["atr"],
                        "box_no": r["box_no"],
                        "made_date": r["made_date"],
                    }
                )
                app_updates.append((s.application_id, ApplicationStatus.MADE, None, None))
                counts["made"] += 1
            else:
                app_updates.append(
                    (
                        s.application_id,
                        ApplicationStatus.FAILED,
                        FailStage.FACTORY,
                        r["reason_code"],
                    )
                )
                counts["failed"] += 1
        if new_cards:
            bulk_load(conn, "card", pa.Table.from_pylist(new_cards), list(new_cards[0]))
        if app_updates:
            bulk_update(
                conn,
                "application_state",
                "application_id",
                pa.table(
                    {
                        "application_id": pa.array([a[0] for a in app_updates], pa.int64()),
                        "status": [a[1] for a in app_updates],
                        "fail_stage": pa.array([a[2] for a in app_updates], pa.string()),
                        "reason_code": pa.array([a[3] for a in app_updates], pa.string()),
                        "final_date": [business_date] * len(app_updates),
                    }
                ),
            )
            bulk_update(
                conn,
                "perso_record",
                "application_id",
                pa.table(
                    {
                        "application_id": pa.array([p[0] for p in perso_updates], pa.int64()),
                        "result": [p[1] for p in perso_updates],
                        "result_name": [landed.name] * len(perso_updates),
                    }
                ),
            )
        counts["applied"] += len(app_updates)
    if problems:
        bulk_load(conn, "return_problem", pa.Table.from_pylist(problems), list(problems[0]))
        log.warning("%s: %d record(s) not applied (see return_problem)", landed.name, len(problems))
    counts["problems"] = len(problems)
    return counts
