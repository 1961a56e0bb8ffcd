"""Set-based APPLY checks against what the database holds (ICD §4.2, §5.1; DOMAIN §5).

Lines already checked line by line are staged in a temporary table, one chunk at a time,
with the fields the rules read; the rules that need other lines of the file or the
database (E106, E107, E108, E109, E110, E118 and the repeat of an earlier answer) run as
a few SQL statements over the chunk just staged, and its accepted lines are then copied
from the chunk as read into their tables, so the database works on one chunk while the
next one is read and memory stays flat whatever the file's size.

A chunk's answers never depend on where the chunks begin and end. Every rule that looks
at the database sees it as it was before the file: rows this file stored for its earlier
chunks are left out. The repeat rule inside the file looks at every earlier line of the
file: the lines of the same chunk, the accepted lines of earlier chunks (their
application rows, found through the indexes the database checks use anyway) and the
other lines of earlier chunks (a small table of their keys). A rule touches a line only
when its field comes before the line's current failure, so the earliest failing field in
layout order wins whatever the order of the statements.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from sqlalchemy import Connection, text

from persistence.db import bulk_load, is_postgres
from persistence.models import in_list
from schemas.codec import NO_FAIL
from schemas.layouts import APPLY
from schemas.states import OPEN_ACCOUNT, REPLACEABLE, ApplicationStatus, CardStatus

FIELDS = APPLY.names
STAGE = "apply_stage"
#: the keys of the lines of earlier chunks that were not accepted (ICD §4.2 repeats)
PRIOR = "apply_prior"
#: the fields of a line the rules below look at; the others go straight to ``application``
STAGED_FIELDS = (
    "app_no",
    "app_type",
    "id_no",
    "bank_code",
    "card_no",
    "old_card_no",
    "keep_account",
    "replace_reason",
)
STAGE_COLUMNS = (
    "seq",
    "line_no",
    "content_sha",
    "fail_idx",
    "fail_code",
    "fail_field",
    "dup_idx",
    *STAGED_FIELDS,
)
#: the columns of ``application`` intake writes: all but the file's and the day's are the
#: line's own
APPLICATION_COLUMNS = ("id", "bureau", "file_id", "seq", "business_date", "content_sha", *FIELDS)
PRIOR_COLUMNS = ("seq", "app_no", "app_type", "id_no", "card_no", "old_card_no")
_IDX = {name: i for i, name in enumerate(FIELDS)}


def create_stage(conn: Connection) -> None:
    """The staging table of the file's lines and the table of keys of its lines not
    accepted. On PostgreSQL, JIT compilation is off for the transaction: each statement
    does little work per row, and compiling it cost more than running it."""
    cols = ", ".join(f"{name} TEXT NOT NULL" for name in STAGED_FIELDS)
    ddl = (
        f"seq INTEGER PRIMARY KEY, line_no INTEGER NOT NULL, content_sha TEXT NOT NULL, "
        f"fail_idx INTEGER NOT NULL, fail_code TEXT, fail_field TEXT, dup_idx INTEGER NOT NULL, "
        f"repeat_result TEXT, repeat_code TEXT, repeat_field TEXT, {cols}"
    )
    prior = ", ".join(f"{name} TEXT NOT NULL" for name in PRIOR_COLUMNS[1:])
    prior_ddl = f"seq INTEGER PRIMARY KEY, {prior}"
    if is_postgres(conn):
        conn.execute(text("SET LOCAL jit = off"))
        conn.execute(text("SET LOCAL plan_cache_mode = force_custom_plan"))
        conn.execute(text("SET LOCAL default_statistics_target = 10"))
        conn.execute(text(f"CREATE TEMP TABLE {STAGE} ({ddl}) ON COMMIT DROP"))
        conn.execute(text(f"CREATE TEMP TABLE {PRIOR} ({prior_ddl}) ON COMMIT DROP"))
    else:
        drop_stage(conn)
        conn.execute(text(f"CREATE TEMP TABLE {STAGE} ({ddl})"))
        conn.execute(text(f"CREATE TEMP TABLE {PRIOR} ({prior_ddl})"))
    for field, _, keys, _ in REPEATS:
        conn.execute(text(f"CREATE INDEX ix_{PRIOR}_{field} ON {PRIOR} ({', '.join(keys)})"))


def drop_stage(conn: Connection) -> None:
    if not is_postgres(conn):
        conn.execute(text(f"DROP TABLE IF EXISTS temp.{STAGE}"))
        conn.execute(text(f"DROP TABLE IF EXISTS temp.{PRIOR}"))


def stage(conn: Connection, table: pa.Table) -> None:
    bulk_load(conn, STAGE, table, STAGE_COLUMNS)


def _fail(field: str, code: str) -> str:
    return f"fail_idx = {_IDX[field]}, fail_code = '{code}', fail_field = '{field}'"


def _open(field: str) -> str:
    """The line is in the chunk, has not failed at an earlier field, and is not a repeat."""
    return (
        f"{STAGE}.seq BETWEEN :lo AND :hi AND {STAGE}.fail_idx > {_IDX[field]} "
        f"AND {STAGE}.repeat_result IS NULL"
    )


#: in-file repeats (ICD §4.2): the field a repeated key rejects, with its code, the key's
#: fields, and the field and value a line needs to take part (None: every line)
REPEATS: tuple[tuple[str, str, tuple[str, ...], tuple[str, str, bool] | None], ...] = (
    ("app_no", "E107", ("app_no",), None),
    ("id_no", "E108", ("id_no",), ("app_type", "01", True)),
    ("card_no", "E106", ("card_no",), None),
    ("old_card_no", "E109", ("old_card_no", "id_no"), ("old_card_no", "", False)),
)
_REPEAT_CODE = " ".join(f"WHEN {_IDX[field]} THEN '{code}'" for field, code, _, _ in REPEATS)
_REPEAT_FIELD = " ".join(f"WHEN {_IDX[field]} THEN '{field}'" for field, _, _, _ in REPEATS)


_S = STAGE


def _in_province(alias: str) -> str:
    """The row's ``bureau`` is of the sending bureau's province: a bureau's code is ``R`` and
    its GB/T 2260 division code, whose first two digits are the province (ICD §1, DOMAIN §1;
    decision 17)."""
    return f"substr({alias}.bureau, 2, 2) = substr(:sender, 2, 2)"


#: the old card is in a status its line's app_type allows (DOMAIN §5)
_REPLACEABLE = " OR ".join(
    f"({_S}.app_type = '{app_type}' AND c.status IN {in_list(sorted(statuses))})"
    for app_type, statuses in REPLACEABLE.items()
)
#: the database rules (field, code, lines they apply to, failing condition), one statement
#: each so that every condition is a plain join the planner can drive from the chunk
_RULES: tuple[tuple[str, str, str, str], ...] = (
    # E107: the key was answered before for other content (an application of any file, this
    # one's earlier chunks included, or a rejected line).
    (
        "app_no",
        "E107",
        "",
        f"EXISTS (SELECT 1 FROM application a WHERE a.bureau = :sender AND a.app_no = {_S}.app_no)",
    ),
    (
        "app_no",
        "E107",
        "",
        f"EXISTS (SELECT 1 FROM apply_line p WHERE p.sender = :sender AND p.app_no = {_S}.app_no)",
    ),
    # E108 one person one card within the province: a card not cancelled, or an application
    # still in progress (this file's earlier `01` lines included), through a bureau of the
    # sending bureau's province.
    (
        "id_no",
        "E108",
        f"{_S}.app_type = '01'",
        f"EXISTS (SELECT 1 FROM card c WHERE c.id_no = {_S}.id_no "
        f"AND c.status <> '{CardStatus.CANCELLED}' AND {_in_province('c')})",
    ),
    (
        "id_no",
        "E108",
        f"{_S}.app_type = '01'",
        f"""EXISTS (SELECT 1 FROM application a
                    JOIN application_state st ON st.application_id = a.id
                    WHERE a.id_no = {_S}.id_no AND st.fail_stage IS NULL
                    AND {_in_province("a")}
                    AND (a.file_id <> :file_id OR a.app_type = '01')
                    AND NOT EXISTS (SELECT 1 FROM card c2 WHERE c2.card_no = a.card_no))""",
    ),
    # E106: the card number was issued (or applied for, in this file too) before.
    ("card_no", "E106", "", f"EXISTS (SELECT 1 FROM application a WHERE a.card_no = {_S}.card_no)"),
    ("card_no", "E106", "", f"EXISTS (SELECT 1 FROM card c WHERE c.card_no = {_S}.card_no)"),
    # E109: the old card must be the applicant's, in a status the app_type allows, and not
    # already being replaced (DOMAIN §5) ...
    (
        "old_card_no",
        "E109",
        f"{_S}.app_type IN {in_list(REPLACEABLE)}",
        f"""NOT EXISTS (
              SELECT 1 FROM card c WHERE c.card_no = {_S}.old_card_no AND c.id_no = {_S}.id_no
                AND ({_REPLACEABLE}))""",
    ),
    (
        "old_card_no",
        "E109",
        f"{_S}.app_type IN {in_list(REPLACEABLE)}",
        f"""EXISTS (SELECT 1 FROM application a
                    JOIN application_state st ON st.application_id = a.id
                    WHERE a.old_card_no = {_S}.old_card_no AND a.old_card_no <> ''
                      AND a.file_id <> :file_id
                    AND st.fail_stage IS NULL
                    AND NOT EXISTS (SELECT 1 FROM card c2 WHERE c2.card_no = a.card_no))""",
    ),
    # ... and in this file, the same old card named for the same person by an earlier
    # accepted line.
    (
        "old_card_no",
        "E109",
        f"{_S}.old_card_no <> ''",
        f"""EXISTS (SELECT 1 FROM application a
                    WHERE a.id_no = {_S}.id_no AND a.old_card_no = {_S}.old_card_no
                      AND a.file_id = :file_id)""",
    ),
    # E110: keeping the bank card number needs the same bank and an open account: at the
    # hub, its account; at a partner bank, which keeps its accounts itself (decision 23), a
    # card with a PAN, the partner answering for the account when asked to keep it.
    (
        "keep_account",
        "E110",
        f"{_S}.keep_account = '1'",
        f"""NOT EXISTS (
              SELECT 1 FROM card c
              WHERE c.card_no = {_S}.old_card_no AND c.bank_code = {_S}.bank_code
                AND c.pan IS NOT NULL
                AND (c.bank_code <> :hub OR EXISTS (
                      SELECT 1 FROM account ac
                      WHERE ac.pan = c.pan AND ac.status IN {in_list(sorted(OPEN_ACCOUNT))})))""",
    ),
    # E118: renewal for expiry only from 60 days before the old card's expiry date.
    (
        "replace_reason",
        "E118",
        f"{_S}.app_type = '06' AND {_S}.replace_reason = '1'",
        f"""EXISTS (SELECT 1 FROM card c WHERE c.card_no = {_S}.old_card_no
                    AND (c.expiry_date IS NULL OR c.expiry_date > :limit))""",
    ),
)


def _covered(alias: str, cover: tuple[str, str, bool] | None) -> str:
    """The SQL condition of a line taking part in a repeat rule (see :data:`REPEATS`)."""
    if cover is None:
        return "TRUE"
    column, value, equal = cover
    return f"{alias}.{column} {'=' if equal else '<>'} '{value}'"


#: the repeat rule across chunks for the lines not accepted: an earlier line of the file
#: with the key, from the table of their keys (accepted ones are found by _RULES)
_PRIOR_RULES = tuple(
    (
        field,
        code,
        _covered(_S, cover),
        f"EXISTS (SELECT 1 FROM {PRIOR} q WHERE {_covered('q', cover)} AND "
        + " AND ".join(f"q.{key} = {_S}.{key}" for key in keys)
        + ")",
    )
    for field, code, keys, cover in REPEATS
)


#: the columns of the tables this file grows that the checks look up, for the planner
_LOOKED_UP = {
    "application": "bureau, app_no, id_no, card_no, old_card_no, file_id, app_type",
    "application_state": "fail_stage",
}


def _refresh_statistics(conn: Connection, stored: int) -> None:
    """Sample again the tables this file grows when the planner's figures for them are
    smaller than what the file has stored so far (PostgreSQL). Otherwise, loading a large
    file into a young database, the planner would take a table the file has grown to a
    million rows for a few hundred and drive its joins from the wrong side. Doubling at
    least between samples, a 1,000,000-line file samples a handful of times; a database in
    service is never sampled here.

    ANALYZE holds its lock on a table until the file commits, so a file loaded at the same
    time into the same young database waits for it. Both tables are sampled together,
    always in the same order, so two such files never wait for each other."""
    oids = ", ".join(f"to_regclass('{table}')" for table in _LOOKED_UP)
    fewest = conn.scalar(text(f"SELECT MIN(reltuples) FROM pg_class WHERE oid IN ({oids})"))
    if fewest is not None and fewest < stored:
        for table, columns in _LOOKED_UP.items():
            conn.execute(text(f"ANALYZE {table} ({columns})"))


def check_chunk(
    conn: Connection, sender: str, file_id: int, renewal_limit: str, lo: int, hi: int, hub: str
) -> None:
    """Every database and whole-file rule for the staged lines with SEQ ``lo``…``hi``
    (ICD §4.2, §5.1, DOMAIN §5). The lines before ``lo`` must have been checked and
    stored (:func:`store_chunk`) already."""
    s = STAGE
    chunk = {"lo": lo, "hi": hi}
    mine = {"sender": sender, "file_id": file_id, **chunk}
    if is_postgres(conn):
        # The planner needs to know how many lines the chunk holds: a small sample will do.
        conn.execute(
            text(f"ANALYZE {s} (seq, fail_idx, repeat_result, app_type, keep_account, old_card_no)")
        )
        conn.execute(text(f"ANALYZE {PRIOR}"))
        _refresh_statistics(conn, stored=lo - 1)

    # A key already answered with the same content is answered again, unchanged (ICD §4.2):
    # accepted before (its application row), or rejected before (its apply_line row).
    conn.execute(
        text(
            f"""UPDATE {s} SET repeat_result = '00', repeat_code = '', repeat_field = ''
                FROM application a
                WHERE a.bureau = :sender AND a.app_no = {s}.app_no AND a.content_sha = {s}.content_sha
                  AND a.file_id <> :file_id
                  AND {s}.seq BETWEEN :lo AND :hi AND {s}.fail_idx >= 0"""
        ),
        mine,
    )
    conn.execute(
        text(
            f"""UPDATE {s} SET repeat_result = p.result, repeat_code = p.reason_code,
                   repeat_field = p.reason_field
                FROM apply_line p
                WHERE p.sender = :sender AND p.app_no = {s}.app_no AND p.content_sha = {s}.content_sha
                  AND {s}.seq BETWEEN :lo AND :hi AND {s}.fail_idx >= 0
                  AND {s}.repeat_result IS NULL"""
        ),
        mine,
    )

    # Repeats inside the file: every occurrence after the first (ICD §4.2). ``dup_idx`` is
    # the earliest field whose key an earlier line of the same chunk has (found while the
    # chunk was read); the statements below find the earlier lines of earlier chunks, with
    # the same code at the same field.
    conn.execute(
        text(
            f"""UPDATE {s} SET fail_idx = dup_idx,
                  fail_code = CASE dup_idx {_REPEAT_CODE} END,
                  fail_field = CASE dup_idx {_REPEAT_FIELD} END
                WHERE seq BETWEEN :lo AND :hi AND dup_idx < fail_idx AND repeat_result IS NULL"""
        ),
        chunk,
    )

    params = {"limit": renewal_limit, "hub": hub, **mine}
    for field, code, where, condition in _RULES + _PRIOR_RULES:
        conn.execute(
            text(
                f"""UPDATE {s} SET {_fail(field, code)}
                    WHERE {f"{where} AND " if where else ""}{_open(field)} AND {condition}"""
            ),
            params,
        )


def reject_lines(
    conn: Connection, seqs: list[int], stored: pa.Table, field: str, code: str
) -> None:
    """Lines failing a rule applied after they were checked and stored (the photo rule,
    once the zip has landed): rejected at ``field`` with ``code`` unless they fail at an
    earlier field. Those among ``stored`` (``seq``, ``id``, from :func:`store_chunk`) are
    removed again and their keys kept like those of any line not accepted, so later lines
    repeating them are answered as they would have been had the rule come first."""
    if not seqs:
        return
    _where_in(
        conn,
        f"UPDATE {STAGE} SET {_fail(field, code)} WHERE fail_idx > {_IDX[field]} AND",
        "seq",
        seqs,
    )
    hit = stored.filter(pc.is_in(stored.column("seq"), value_set=pa.array(seqs, pa.int64())))
    if hit.num_rows == 0:
        return
    ids = hit.column("id").to_pylist()
    _where_in(conn, "DELETE FROM application_state WHERE", "application_id", ids)
    _where_in(conn, "DELETE FROM application WHERE", "id", ids)
    prior = ", ".join(PRIOR_COLUMNS)
    _where_in(
        conn,
        f"INSERT INTO {PRIOR} ({prior}) SELECT {prior} FROM {STAGE} WHERE",
        "seq",
        hit.column("seq").to_pylist(),
    )


def _where_in(conn: Connection, statement: str, column: str, values: list[int]) -> None:
    """``statement`` (ending in ``WHERE`` or ``AND``) for the rows whose ``column`` is one
    of ``values``: one statement with an array on PostgreSQL, one per value on SQLite."""
    if is_postgres(conn):
        conn.execute(text(f"{statement} {column} = ANY(:values)"), {"values": values})
    else:
        conn.execute(text(f"{statement} {column} = :value"), [{"value": v} for v in values])


#: a staged line's answer: the earlier answer of a repeat, else accepted or its failure
_RESULT = f"""CASE WHEN repeat_result IS NOT NULL THEN repeat_result
                   WHEN fail_idx = {NO_FAIL} THEN '00' ELSE '01' END"""
_CODE = f"""CASE WHEN repeat_result IS NOT NULL THEN repeat_code
                 WHEN fail_idx = {NO_FAIL} THEN '' ELSE fail_code END"""
_FIELD = f"""CASE WHEN repeat_result IS NOT NULL THEN repeat_field
                  WHEN fail_idx = {NO_FAIL} THEN '' ELSE fail_field END"""
_ACCEPTED = f"fail_idx = {NO_FAIL} AND repeat_result IS NULL"


def store_chunk(
    conn: Connection,
    file_id: int,
    sender: str,
    business_date: str,
    lines: pa.Table,
    lo: int,
    hi: int,
) -> pa.Table:
    """Store every accepted application of the checked lines ``lo``…``hi`` with its state,
    in SEQ order, and the keys of the others for the repeat rule of later chunks. A repeat
    of a key answered before is not stored again: its first answer stands. Returns the
    ``seq`` and ``id`` of the applications stored.

    ``lines`` holds the chunk's lines as read (``seq``, ``content_sha`` and every APPLY
    field): the accepted ones are copied from it into ``application`` and
    ``application_state`` with their ids taken beforehand, so the database writes each row
    once, by COPY, and never reads it back."""
    s = STAGE
    chunk = {"lo": lo, "hi": hi}
    seqs = (
        conn.execute(
            text(f"SELECT seq FROM {s} WHERE seq BETWEEN :lo AND :hi AND {_ACCEPTED} ORDER BY seq"),
            chunk,
        )
        .scalars()
        .all()
    )
    stored = pa.table({"seq": pa.array([], pa.int64()), "id": pa.array([], pa.int64())})
    if seqs:
        accepted = lines.filter(
            pc.is_in(lines.column("seq"), value_set=pa.array(seqs, lines.schema.field("seq").type))
        )
        n = accepted.num_rows
        ids = _take_ids(conn, n)
        bureau = pa.repeat(sender, n)
        rows = {
            "id": ids,
            "bureau": bureau,
            "file_id": pa.repeat(file_id, n),
            "business_date": pa.repeat(business_date, n),
            **{name: accepted.column(name) for name in ("seq", "content_sha", *FIELDS)},
        }
        bulk_load(conn, "application", pa.table(rows), APPLICATION_COLUMNS)
        state = pa.table(
            {
                "application_id": ids,
                "bureau": bureau,
                "status": pa.repeat(ApplicationStatus.ACCEPTED.value, n),
            }
        )
        bulk_load(conn, "application_state", state, ("application_id", "bureau", "status"))
        stored = pa.table({"seq": accepted.column("seq").cast(pa.int64()), "id": ids})
    prior = ", ".join(PRIOR_COLUMNS)
    conn.execute(
        text(
            f"""INSERT INTO {PRIOR} ({prior}) SELECT {prior} FROM {s}
                WHERE seq BETWEEN :lo AND :hi AND fail_idx >= 0 AND NOT ({_ACCEPTED})"""
        ),
        chunk,
    )
    return stored


def _take_ids(conn: Connection, n: int) -> pa.Array:
    """``n`` new application ids, increasing. PostgreSQL: from the table's sequence, so a
    file loaded at the same time takes others; they are one run unless another writer
    took ids in between, and only then are they read one by one. SQLite: above the
    highest id, as this transaction has held the database's write lock since it recorded
    the file."""
    if is_postgres(conn):
        sequence = conn.scalar(text("SELECT pg_get_serial_sequence('application', 'id')"))
        first, last, ids = conn.execute(
            text(
                """SELECT MIN(id), MAX(id),
                          CASE WHEN MAX(id) - MIN(id) + 1 <> COUNT(*)
                               THEN array_agg(id ORDER BY id) END
                   FROM (SELECT nextval(CAST(:sequence AS regclass)) AS id
                         FROM generate_series(1, :n)) AS taken"""
            ),
            {"sequence": sequence, "n": n},
        ).one()
        return pa.array(np.arange(first, last + 1) if ids is None else ids, pa.int64())
    before = conn.execute(text("SELECT COALESCE(MAX(id), 0) FROM application")).scalar_one()
    return pa.array(np.arange(before + 1, before + n + 1), pa.int64())


def commit_lines(conn: Connection, file_id: int, sender: str) -> None:
    """Store every rejected line's answer, once every chunk is checked and stored. A
    repeat of a key answered before is not stored again: its first answer stands."""
    conn.execute(
        text(
            # An app_no of more than 64 characters is no key (its line is E116 at app_no):
            # its first 64 characters are kept, which no key can equal either.
            f"""INSERT INTO apply_line (file_id, seq, line_no, sender, app_no, content_sha,
                                        result, reason_code, reason_field)
                SELECT :file_id, seq, line_no, :sender, substr(app_no, 1, 64), content_sha, '01', fail_code,
                       fail_field
                FROM {STAGE} WHERE fail_idx <> {NO_FAIL} AND repeat_result IS NULL"""
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


def chunk_answers(conn: Connection, lo: int, hi: int) -> list[tuple[str, str, str]]:
    """(app_no, result, reason_code) of the checked lines ``lo``…``hi``, in SEQ order."""
    stmt = text(
        f"SELECT app_no, {_RESULT}, {_CODE} FROM {STAGE} WHERE seq BETWEEN :lo AND :hi ORDER BY seq"
    )
    return [(r[0], r[1], r[2]) for r in conn.execute(stmt, {"lo": lo, "hi": hi})]
