"""Set-based APPLY checks against what the database holds (ICD §4.2, §5.1; DOMAIN §5).

Lines already checked line by line are staged in a temporary table; the rules that
need other lines of the file or the database (E106, E107, E108, E109, E110, E118 and
the repeat of an earlier answer) run as a few SQL statements over the whole file, so
memory stays flat whatever the file's size. Every statement keeps the earliest failing
field in layout order: it touches a line only when its field comes before the line's
current failure.
"""

from __future__ import annotations

from collections.abc import Iterator

import pyarrow as pa
from sqlalchemy import Connection, text

from persistence.db import bulk_load, is_postgres
from schemas.codec import NO_FAIL
from schemas.layouts import APPLY

FIELDS = APPLY.names
STAGE = "apply_stage"
STAGE_COLUMNS = ("seq", "line_no", "content_sha", "fail_idx", "fail_code", "fail_field", *FIELDS)
_IDX = {name: i for i, name in enumerate(FIELDS)}


def create_stage(conn: Connection) -> None:
    cols = ", ".join(f"{name} TEXT NOT NULL" for name in FIELDS)
    ddl = (
        f"seq INTEGER PRIMARY KEY, line_no INTEGER NOT NULL, content_sha TEXT NOT NULL, "
        f"fail_idx INTEGER NOT NULL, fail_code TEXT, fail_field TEXT, "
        f"repeat_result TEXT, repeat_code TEXT, repeat_field TEXT, {cols}"
    )
    if is_postgres(conn):
        conn.execute(text(f"CREATE TEMP TABLE {STAGE} ({ddl}) ON COMMIT DROP"))
    else:
        conn.execute(text(f"DROP TABLE IF EXISTS temp.{STAGE}"))
        conn.execute(text(f"CREATE TEMP TABLE {STAGE} ({ddl})"))


def drop_stage(conn: Connection) -> None:
    if not is_postgres(conn):
        conn.execute(text(f"DROP TABLE IF EXISTS temp.{STAGE}"))


def stage(conn: Connection, table: pa.Table) -> None:
    bulk_load(conn, STAGE, table, STAGE_COLUMNS)


def _fail(field: str, code: str) -> str:
    return f"fail_idx = {_IDX[field]}, fail_code = '{code}', fail_field = '{field}'"


def _open(field: str) -> str:
    """The line has not failed at an earlier field, and is not a repeat."""
    return f"{STAGE}.fail_idx > {_IDX[field]} AND {STAGE}.repeat_result IS NULL"


#: in-file repeats (ICD §4.2): the occurrence number computed, the key, the lines it covers
_REPEATS = (
    ("rn_app", "app_no", ""),
    ("rn_person", "id_no", "app_type = '01'"),
    ("rn_card", "card_no", ""),
    ("rn_old", "old_card_no, id_no", "old_card_no <> ''"),
)


def _occurrences() -> str:
    """Each line whose key occurs more than once in the file, with its occurrence number
    for each key (1 for a key it does not repeat). Only the keys seen more than once are
    numbered, so the window functions never sort the whole file."""
    s = STAGE
    names = [name for name, _, _ in _REPEATS]
    parts = []
    for name, key, cover in _REPEATS:
        numbers = ", ".join(
            f"ROW_NUMBER() OVER (PARTITION BY {key} ORDER BY seq) AS {n}"
            if n == name
            else f"1 AS {n}"
            for n in names
        )
        cover_where = f" AND {cover}" if cover else ""
        parts.append(
            f"""SELECT seq, {numbers} FROM {s}
                WHERE fail_idx >= 0{cover_where} AND ({key}) IN (
                  SELECT {key} FROM {s} WHERE fail_idx >= 0{cover_where}
                  GROUP BY {key} HAVING COUNT(*) > 1)"""
        )
    union = " UNION ALL ".join(parts)
    maxima = ", ".join(f"MAX({n}) AS {n}" for n in names)
    return f"SELECT seq, {maxima} FROM ({union}) AS u GROUP BY seq"


def run_checks(conn: Connection, sender: str, renewal_limit: str) -> None:
    """All database and whole-file rules, in one pass each (ICD §4.2, §5.1, DOMAIN §5).

    On PostgreSQL, JIT compilation is off for the transaction: each statement does little
    work per row, and compiling it cost more than running it."""
    s = STAGE
    if is_postgres(conn):
        conn.execute(text("SET LOCAL jit = off"))
        conn.execute(
            text(f"ANALYZE {s} (seq, fail_idx, app_no, app_type, id_no, card_no, old_card_no)")
        )

    # A key already answered with the same content is answered again, unchanged (ICD §4.2):
    # accepted before (its application row), or rejected before (its apply_line row).
    conn.execute(
        text(
            f"""UPDATE {s} SET repeat_result = '00', repeat_code = '', repeat_field = ''
                FROM application a
                WHERE a.bureau = :sender AND a.app_no = {s}.app_no AND a.content_sha = {s}.content_sha
                  AND {s}.fail_idx >= 0"""
        ),
        {"sender": sender},
    )
    conn.execute(
        text(
            f"""UPDATE {s} SET repeat_result = p.result, repeat_code = p.reason_code,
                   repeat_field = p.reason_field
                FROM apply_line p
                WHERE p.sender = :sender AND p.app_no = {s}.app_no AND p.content_sha = {s}.content_sha
                  AND {s}.fail_idx >= 0 AND {s}.repeat_result IS NULL"""
        ),
        {"sender": sender},
    )

    # Repeats inside the file: every occurrence after the first (ICD §4.2).
    i_app, i_id, i_card, i_old = _IDX["app_no"], _IDX["id_no"], _IDX["card_no"], _IDX["old_card_no"]
    conn.execute(
        text(
            f"""UPDATE {s} SET
                  fail_code = CASE
                    WHEN d.rn_app > 1 AND {s}.fail_idx > {i_app} THEN 'E107'
                    WHEN d.rn_person > 1 AND {s}.fail_idx > {i_id} THEN 'E108'
                    WHEN d.rn_card > 1 AND {s}.fail_idx > {i_card} THEN 'E106'
                    WHEN d.rn_old > 1 AND {s}.fail_idx > {i_old} THEN 'E109'
                    ELSE {s}.fail_code END,
                  fail_field = CASE
                    WHEN d.rn_app > 1 AND {s}.fail_idx > {i_app} THEN 'app_no'
                    WHEN d.rn_person > 1 AND {s}.fail_idx > {i_id} THEN 'id_no'
                    WHEN d.rn_card > 1 AND {s}.fail_idx > {i_card} THEN 'card_no'
                    WHEN d.rn_old > 1 AND {s}.fail_idx > {i_old} THEN 'old_card_no'
                    ELSE {s}.fail_field END,
                  fail_idx = CASE
                    WHEN d.rn_app > 1 AND {s}.fail_idx > {i_app} THEN {i_app}
                    WHEN d.rn_person > 1 AND {s}.fail_idx > {i_id} THEN {i_id}
                    WHEN d.rn_card > 1 AND {s}.fail_idx > {i_card} THEN {i_card}
                    WHEN d.rn_old > 1 AND {s}.fail_idx > {i_old} THEN {i_old}
                    ELSE {s}.fail_idx END
                FROM ({_occurrences()}) AS d
                WHERE d.seq = {s}.seq AND {s}.repeat_result IS NULL
                  AND (d.rn_app > 1 OR d.rn_person > 1 OR d.rn_card > 1 OR d.rn_old > 1)"""
        )
    )

    # E107: the key was answered before, for other content.
    conn.execute(
        text(
            f"""UPDATE {s} SET {_fail("app_no", "E107")}
                WHERE {_open("app_no")} AND (
                  EXISTS (SELECT 1 FROM application a WHERE a.bureau = :sender AND a.app_no = {s}.app_no)
                  OR EXISTS (SELECT 1 FROM apply_line p WHERE p.sender = :sender AND p.app_no = {s}.app_no))"""
        ),
        {"sender": sender},
    )
    # E108 one person one card: a card not cancelled, or an application still in progress.
    conn.execute(
        text(
            f"""UPDATE {s} SET {_fail("id_no", "E108")}
                WHERE {s}.app_type = '01' AND {_open("id_no")} AND (
                  EXISTS (SELECT 1 FROM card c WHERE c.id_no = {s}.id_no AND c.status <> '9')
                  OR EXISTS (SELECT 1 FROM application a
                             JOIN application_state st ON st.application_id = a.id
                             WHERE a.id_no = {s}.id_no AND st.fail_stage IS NULL
                             AND NOT EXISTS (SELECT 1 FROM card c2 WHERE c2.card_no = a.card_no)))"""
        )
    )
    # E106: the card number was issued (or applied for) before.
    conn.execute(
        text(
            f"""UPDATE {s} SET {_fail("card_no", "E106")}
                WHERE {_open("card_no")} AND (
                  EXISTS (SELECT 1 FROM application a WHERE a.card_no = {s}.card_no)
                  OR EXISTS (SELECT 1 FROM card c WHERE c.card_no = {s}.card_no))"""
        )
    )
    # E109: the old card must be the applicant's, in a status the app_type allows, and not
    # already being replaced (DOMAIN §5).
    conn.execute(
        text(
            f"""UPDATE {s} SET {_fail("old_card_no", "E109")}
                WHERE {s}.app_type IN ('05', '06', '07') AND {_open("old_card_no")} AND (
                  NOT EXISTS (
                    SELECT 1 FROM card c WHERE c.card_no = {s}.old_card_no AND c.id_no = {s}.id_no
                      AND ((({s}.app_type = '05') AND c.status = '2')
                        OR ({s}.app_type IN ('06', '07') AND c.status IN ('0', '1', '2', '4'))))
                  OR EXISTS (SELECT 1 FROM application a
                             JOIN application_state st ON st.application_id = a.id
                             WHERE a.old_card_no = {s}.old_card_no AND st.fail_stage IS NULL
                             AND NOT EXISTS (SELECT 1 FROM card c2 WHERE c2.card_no = a.card_no)))"""
        )
    )
    # E110: keeping the bank card number needs the same bank and an open account.
    conn.execute(
        text(
            f"""UPDATE {s} SET {_fail("keep_account", "E110")}
                WHERE {s}.keep_account = '1' AND {_open("keep_account")} AND NOT EXISTS (
                  SELECT 1 FROM card c JOIN account ac ON ac.pan = c.pan
                  WHERE c.card_no = {s}.old_card_no AND c.bank_code = {s}.bank_code
                    AND ac.status IN ('preopened', 'active'))"""
        )
    )
    # E118: renewal for expiry only from 60 days before the old card's expiry date.
    conn.execute(
        text(
            f"""UPDATE {s} SET {_fail("replace_reason", "E118")}
                WHERE {s}.app_type = '06' AND {s}.replace_reason = '1' AND {_open("replace_reason")}
                  AND EXISTS (SELECT 1 FROM card c WHERE c.card_no = {s}.old_card_no
                              AND (c.expiry_date IS NULL OR c.expiry_date > :limit))"""
        ),
        {"limit": renewal_limit},
    )


#: a staged line's answer: the earlier answer of a repeat, else accepted or its failure
_RESULT = f"""CASE WHEN repeat_result IS NOT NULL THEN repeat_result
                   WHEN fail_idx = {NO_FAIL} THEN '00' ELSE '01' END"""
_CODE = f"""CASE WHEN repeat_result IS NOT NULL THEN repeat_code
                 WHEN fail_idx = {NO_FAIL} THEN '' ELSE fail_code END"""
_FIELD = f"""CASE WHEN repeat_result IS NOT NULL THEN repeat_field
                  WHEN fail_idx = {NO_FAIL} THEN '' ELSE fail_field END"""
_ACCEPTED = f"fail_idx = {NO_FAIL} AND repeat_result IS NULL"


def commit_lines(conn: Connection, file_id: int, sender: str, business_date: str) -> None:
    """Store every accepted application with its state, and every rejected line's answer.

    A repeat of a key answered before is not stored again: its first answer stands."""
    s = STAGE
    cols = ", ".join(FIELDS)
    insert = f"""INSERT INTO application (bureau, file_id, seq, business_date, content_sha, {cols})
                 SELECT :sender, :file_id, seq, :bd, content_sha, {cols} FROM {s}
                 WHERE {_ACCEPTED} ORDER BY seq"""
    params = {"sender": sender, "file_id": file_id, "bd": business_date}
    if is_postgres(conn):
        conn.execute(
            text(
                f"""WITH new AS ({insert} RETURNING id, bureau)
                    INSERT INTO application_state (application_id, bureau, status)
                    SELECT id, bureau, 'accepted' FROM new"""
            ),
            params,
        )
    else:
        # SQLite: this transaction holds the write lock, so the new rows are those above
        # the highest id before the insert.
        before = conn.execute(text("SELECT COALESCE(MAX(id), 0) FROM application")).scalar_one()
        conn.execute(text(insert), params)
        conn.execute(
            text(
                "INSERT INTO application_state (application_id, bureau, status) "
                "SELECT id, bureau, 'accepted' FROM application WHERE id > :before"
            ),
            {"before": before},
        )
    conn.execute(
        text(
            f"""INSERT INTO apply_line (file_id, seq, line_no, sender, app_no, content_sha,
                                        result, reason_code, reason_field)
                SELECT :file_id, seq, line_no, :sender, app_no, content_sha, '01', fail_code,
                       fail_field
                FROM {s} WHERE fail_idx <> {NO_FAIL} AND repeat_result IS NULL"""
        ),
        {"sender": sender, "file_id": file_id},
    )


def answer_counts(conn: Connection) -> dict[str, int]:
    """Lines of the staged file per outcome: ``00`` for accepted, the reason code for
    rejected."""
    rows = conn.execute(
        text(
            f"SELECT CASE WHEN {_RESULT} = '00' THEN '00' ELSE {_CODE} END AS k, COUNT(*) AS n "
            f"FROM {STAGE} GROUP BY 1 ORDER BY 1"
        )
    ).all()
    return {r.k: int(r.n) for r in rows}


def answers(conn: Connection, batch: int = 20_000) -> Iterator[tuple[str, str, str]]:
    """(app_no, result, reason_code) of every staged line, in SEQ order, streamed."""
    stmt = text(f"SELECT app_no, {_RESULT}, {_CODE} FROM {STAGE} ORDER BY seq")
    result = conn.execute(stmt.execution_options(yield_per=batch))
    for row in result:
        yield row[0], row[1], row[2]
