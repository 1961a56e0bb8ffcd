"""Set-based application of the answers to the hub's own requests: production results
from a card factory (PERSORSP, ICD §5.6) and account answers from a partner bank
(ACCTOPENRSP, ICD §5.4).

A file is taken one chunk at a time. The chunk's records are staged in a temporary
table (COPY on PostgreSQL, executemany on SQLite) with the line number and, for a line
already refused by the layout or a rule checked in Arrow, its problem. A fixed number of
statements then match the staged records to what the hub sent, mark the records that
cannot be applied with their problem, apply the others with ``UPDATE … FROM`` and
``INSERT … SELECT``, and report the problems in ``return_problem``: the number of
statements does not depend on the number of records, and memory holds one chunk.

Each chunk sees the database as the earlier chunks of the same file left it, so an
answer repeated in a later chunk meets the first one as an answer given before; inside
a chunk the first of the lines that could be applied for a key is applied and the later
ones are answered like a repeat. Both give what reading the file line by line gives.
"""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc
from sqlalchemy import Connection, text

from persistence.db import bulk_load, is_postgres
from schemas.codec import Chunk
from schemas.states import ApplicationStatus, CardStatus, FailStage

#: the staging table of PERSORSP records and the fields it keeps
PERSORSP_STAGE = "persorsp_stage"
#: the staging table of ACCTOPENRSP lines and the fields it keeps
ACCTOPENRSP_STAGE = "acctopenrsp_stage"
STAGED_FIELDS = {
    PERSORSP_STAGE: (
        "card_no",
        "pan",
        "result",
        "reason_code",
        "card_id_code",
        "atr",
        "box_no",
        "made_date",
    ),
    ACCTOPENRSP_STAGE: ("req_no", "result", "reason_code", "pan", "pan_seq"),
}

#: ``problem`` of a line not applied and not reported: the same answer given again
SAME_AGAIN = ""


@dataclass(frozen=True)
class ChunkCounts:
    """What a chunk did: lines applied with each result, and problems reported."""

    done: int
    refused: int
    problems: int


def open_stage(conn: Connection, stage: str) -> None:
    """The staging table for one file, empty. On PostgreSQL it is dropped at commit; for
    the rest of the file's transaction JIT compilation is off (each statement does little
    per row) and a sort or hash of a chunk's lines fits in memory."""
    fields = ", ".join(f"{name} TEXT NOT NULL" for name in STAGED_FIELDS[stage])
    ddl = f"line_no INTEGER NOT NULL, {fields}, problem TEXT, application_id BIGINT"
    if is_postgres(conn):
        conn.execute(text("SET LOCAL jit = off"))
        conn.execute(text("SET LOCAL work_mem = '64MB'"))
        conn.execute(text(f"DROP TABLE IF EXISTS pg_temp.{stage}"))
        conn.execute(text(f"CREATE TEMP TABLE {stage} ({ddl}) ON COMMIT DROP"))
    else:
        conn.execute(text(f"DROP TABLE IF EXISTS temp.{stage}"))
        conn.execute(text(f"CREATE TEMP TABLE {stage} ({ddl})"))


def close_stage(conn: Connection, stage: str) -> None:
    if is_postgres(conn):
        conn.execute(text(f"DROP TABLE IF EXISTS pg_temp.{stage}"))
    else:
        conn.execute(text(f"DROP TABLE IF EXISTS temp.{stage}"))


def layout_problems(chunk: Chunk) -> pa.Array:
    """Per line, ``layout <code>`` for a line the layout refused, else null."""
    codes = pa.array(chunk.fail_code, pa.string())
    problems: pa.Array = pc.binary_join_element_wise("layout ", codes, "")
    return problems


def stage_chunk(conn: Connection, stage: str, chunk: Chunk, problems: pa.Array) -> None:
    """Replace the staged lines with ``chunk``'s (``problems``: null for a line that may
    be applied)."""
    fields = STAGED_FIELDS[stage]
    if is_postgres(conn):
        conn.execute(text(f"TRUNCATE {stage}"))
    else:
        conn.execute(text(f"DELETE FROM temp.{stage}"))
    table = pa.table(
        {
            "line_no": chunk.column("_line"),
            **{name: chunk.column(name) for name in fields},
            "problem": problems,
        }
    )
    bulk_load(conn, stage, table, table.column_names)
    if is_postgres(conn):
        # the planner drives every join from the chunk: it needs to know its size
        conn.execute(text(f"ANALYZE {stage} ({fields[0]}, problem)"))


def _sample_again(conn: Connection, stage: str) -> None:
    """PostgreSQL: sample the staged lines again once their problems and applications are
    set, before they are applied: the figures taken when they were loaded say every line
    may be applied and none has an application, and with them the planner would scan the
    whole of each table an update joins instead of reading the chunk's rows by key."""
    if is_postgres(conn):
        conn.execute(text(f"ANALYZE {stage} (problem, result, application_id)"))


def _report_problems(conn: Connection, stage: str, key: str, file_name: str, day: str) -> None:
    conn.execute(
        text(
            f"""INSERT INTO return_problem (file_name, line_no, key, problem, business_date)
                SELECT :name, line_no, substr({key}, 1, 30), problem, :day FROM {stage}
                WHERE problem <> '' ORDER BY line_no"""
        ),
        {"name": file_name, "day": day},
    )


def _counts(conn: Connection, stage: str) -> ChunkCounts:
    row = conn.execute(
        text(
            f"""SELECT COALESCE(SUM(CASE WHEN problem IS NULL AND result = '00' THEN 1 END), 0),
                       COALESCE(SUM(CASE WHEN problem IS NULL AND result <> '00' THEN 1 END), 0),
                       COALESCE(SUM(CASE WHEN problem <> '' THEN 1 END), 0)
                FROM {stage}"""
        )
    ).one()
    return ChunkCounts(int(row[0]), int(row[1]), int(row[2]))


_P = PERSORSP_STAGE


def apply_production_chunk(
    conn: Connection, sender: str, file_name: str, business_date: str
) -> ChunkCounts:
    """Apply the staged PERSORSP records of factory ``sender`` (ICD §5.6). A record is
    matched to the card sent to that factory by card_no; a card never sent to it, a PAN
    other than the PERSO's, a card returned before (in an earlier file or chunk, or
    earlier in this chunk) or a made card giving a card identification code another card
    has (or an earlier record of the chunk gave) is reported, never applied. A
    made card (``00``) becomes a sealed card with the factory's card identification code,
    ATR, box number and made date; a failed one (``01``) ends its application at stage 2
    with the factory's reason. Returns made, failed and problems."""
    states = {
        "perso_sent": str(ApplicationStatus.PERSO_SENT),
        "made": str(ApplicationStatus.MADE),
        "failed": str(ApplicationStatus.FAILED),
        "factory": str(FailStage.FACTORY),
        "sealed": str(CardStatus.SEALED),
    }
    conn.execute(
        text(
            f"""UPDATE {_P} SET application_id = p.application_id,
                  problem = CASE WHEN p.pan <> {_P}.pan THEN 'pan differs from the PERSO'
                                 WHEN p.result IS NOT NULL OR st.status <> :perso_sent
                                 THEN 'card returned before' END
                FROM perso_record p JOIN application_state st ON st.application_id = p.application_id
                WHERE p.card_no = {_P}.card_no AND p.factory = :factory
                  AND {_P}.problem IS NULL"""
        ),
        {**states, "factory": sender},
    )
    conn.execute(
        text(
            f"""UPDATE {_P} SET problem = 'card_no not in any PERSO'
                WHERE problem IS NULL AND application_id IS NULL"""
        )
    )
    conn.execute(
        text(
            f"""UPDATE {_P} SET problem = 'card returned before'
                FROM (SELECT card_no, MIN(line_no) AS first_line FROM {_P}
                      WHERE problem IS NULL GROUP BY card_no HAVING COUNT(*) > 1) f
                WHERE f.card_no = {_P}.card_no AND {_P}.problem IS NULL
                  AND {_P}.line_no > f.first_line"""
        )
    )
    # a card identification code is per chip, new on every card (DOMAIN §1): a made
    # record giving one that a card already has, or an earlier record of this chunk gave
    conn.execute(
        text(
            f"""UPDATE {_P} SET problem = 'card_id_code of another card'
                WHERE problem IS NULL AND result = '00'
                  AND EXISTS (SELECT 1 FROM card c WHERE c.card_id_code = {_P}.card_id_code)"""
        )
    )
    conn.execute(
        text(
            f"""UPDATE {_P} SET problem = 'card_id_code of another card'
                FROM (SELECT card_id_code, MIN(line_no) AS first_line FROM {_P}
                      WHERE problem IS NULL AND result = '00'
                      GROUP BY card_id_code HAVING COUNT(*) > 1) f
                WHERE f.card_id_code = {_P}.card_id_code AND {_P}.problem IS NULL
                  AND {_P}.result = '00' AND {_P}.line_no > f.first_line"""
        )
    )
    _sample_again(conn, _P)
    conn.execute(
        text(
            f"""INSERT INTO card (card_no, application_id, bureau, id_type, id_no, name, bank_code,
                                  pan, pan_seq, status, issue_date, expiry_date, card_id_code,
                                  atr, box_no, made_date)
                SELECT s.card_no, a.id, a.bureau, a.id_type, a.id_no, a.name, a.bank_code,
                       p.pan, st.pan_seq, :sealed, p.issue_date, p.expiry_date, s.card_id_code,
                       s.atr, s.box_no, s.made_date
                FROM {_P} s
                JOIN perso_record p ON p.application_id = s.application_id
                JOIN application a ON a.id = s.application_id
                JOIN application_state st ON st.application_id = s.application_id
                WHERE s.problem IS NULL AND s.result = '00'"""
        ),
        states,
    )
    conn.execute(
        text(
            f"""UPDATE application_state
                SET status = CASE WHEN s.result = '00' THEN :made ELSE :failed END,
                    fail_stage = CASE WHEN s.result = '00' THEN NULL ELSE :factory END,
                    reason_code = CASE WHEN s.result = '00' THEN NULL ELSE s.reason_code END,
                    final_date = :day
                FROM {_P} s
                WHERE s.application_id = application_state.application_id AND s.problem IS NULL"""
        ),
        {**states, "day": business_date},
    )
    conn.execute(
        text(
            f"""UPDATE perso_record SET result = s.result, result_name = :name
                FROM {_P} s
                WHERE s.application_id = perso_record.application_id AND s.problem IS NULL"""
        ),
        {"name": file_name},
    )
    _report_problems(conn, _P, "card_no", file_name, business_date)
    return _counts(conn, _P)


_A = ACCTOPENRSP_STAGE


def apply_account_chunk(
    conn: Connection, sender: str, file_name: str, business_date: str
) -> ChunkCounts:
    """Apply the staged ACCTOPENRSP lines of partner ``sender`` (ICD §5.4). A line is
    matched to the request by req_no; a key the hub did not send to this partner is
    reported, and so is a ``00`` giving a replacement that keeps its number (换卡不换号)
    a PAN other than its old card's (DOMAIN §5): the request waits for a right answer. A key answered before (in an earlier file or chunk, or earlier in this
    chunk) is passed over when the answer is the same (result, reason code, PAN and
    ``pan_seq``) and reported when it differs: the first answer stands (ICD §4.2).
    ``00`` sets the application's PAN and ``pan_seq``; ``01`` fails it at stage 1 with
    the partner's own reason code. Returns opened, refused and problems."""
    conn.execute(
        text(
            f"""UPDATE {_A} SET application_id = p.application_id,
                  problem = CASE WHEN p.result IS NULL THEN NULL
                                 WHEN p.result = {_A}.result
                                  AND COALESCE(p.reason_code, '') = {_A}.reason_code
                                  AND COALESCE(st.pan, '') = {_A}.pan
                                  AND COALESCE(st.pan_seq, '') = {_A}.pan_seq
                                 THEN :same ELSE 'answered before, differently' END
                FROM partner_request p
                JOIN application_state st ON st.application_id = p.application_id
                WHERE p.req_no = {_A}.req_no AND p.bank_code = :sender AND {_A}.problem IS NULL"""
        ),
        {"sender": sender, "same": SAME_AGAIN},
    )
    conn.execute(
        text(
            f"""UPDATE {_A} SET problem = 'unknown req_no'
                WHERE problem IS NULL AND application_id IS NULL"""
        )
    )
    conn.execute(
        text(
            f"""UPDATE {_A} SET problem = 'pan differs from the kept old_pan'
                FROM application a JOIN card oc ON oc.card_no = a.old_card_no
                WHERE a.id = {_A}.application_id AND {_A}.problem IS NULL
                  AND {_A}.result = '00' AND a.keep_account = '1'
                  AND oc.pan IS NOT NULL AND oc.pan <> {_A}.pan"""
        )
    )
    conn.execute(
        text(
            f"""UPDATE {_A}
                SET problem = CASE WHEN f.result = {_A}.result AND f.reason_code = {_A}.reason_code
                                    AND f.pan = {_A}.pan AND f.pan_seq = {_A}.pan_seq
                                   THEN :same ELSE 'answered before, differently' END
                FROM (SELECT s.req_no, s.result, s.reason_code, s.pan, s.pan_seq, s.line_no
                      FROM {_A} s
                      JOIN (SELECT req_no, MIN(line_no) AS first_line FROM {_A}
                            WHERE problem IS NULL GROUP BY req_no HAVING COUNT(*) > 1) m
                        ON m.req_no = s.req_no AND m.first_line = s.line_no) f
                WHERE f.req_no = {_A}.req_no AND {_A}.problem IS NULL
                  AND {_A}.line_no > f.line_no"""
        ),
        {"same": SAME_AGAIN},
    )
    _sample_again(conn, _A)
    conn.execute(
        text(
            f"""UPDATE partner_request
                SET answered_date = :day, result = s.result, reason_code = s.reason_code
                FROM {_A} s WHERE s.req_no = partner_request.req_no AND s.problem IS NULL"""
        ),
        {"day": business_date},
    )
    conn.execute(
        text(
            f"""UPDATE application_state SET pan = s.pan, pan_seq = s.pan_seq, status = :open
                FROM {_A} s
                WHERE s.application_id = application_state.application_id
                  AND s.problem IS NULL AND s.result = '00'"""
        ),
        {"open": str(ApplicationStatus.ACCOUNT_OPEN)},
    )
    conn.execute(
        text(
            f"""UPDATE application_state
                SET status = :failed, fail_stage = :bank, reason_code = s.reason_code,
                    final_date = :day
                FROM {_A} s
                WHERE s.application_id = application_state.application_id
                  AND s.problem IS NULL AND s.result <> '00'"""
        ),
        {
            "failed": str(ApplicationStatus.FAILED),
            "bank": str(FailStage.BANK),
            "day": business_date,
        },
    )
    _report_problems(conn, _A, "req_no", file_name, business_date)
    return _counts(conn, _A)
