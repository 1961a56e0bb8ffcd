"""Answer files to the hub's own requests are applied set-wise, a chunk at a time: the
statements a PERSORSP (ICD §5.6) or an ACCTOPENRSP (ICD §5.4) costs do not grow with its
records, and an answer repeated in a later chunk is met as an answer given before."""

from __future__ import annotations

import io
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import pyarrow as pa
import pytest
from sqlalchemy import Engine, event, select, text

from banking.pan import PanRange, make_pans
from issuance.accounts import apply_account_answers
from issuance.production import apply_production_results
from persistence.db import bulk_load
from persistence.models import ApplicationState, Card, PartnerRequest, ReturnProblem
from schemas.codec import DelimitedReader, FixedReader, Header, write_delimited, write_fixed
from schemas.layouts import ACCTOPENRSP, PERSORSP

DAY = "20261123"
PARTNER_PANS = PanRange("6229990")


def _seed(engine: Engine, n: int) -> None:
    """Applications 1…n in a PERSO to factory F01; n+1…2n sent to partner B002."""
    ids = list(range(1, 2 * n + 1))
    made = [i <= n for i in ids]
    application = pa.table(
        {
            "id": pa.array(ids, pa.int64()),
            "bureau": ["R440100"] * len(ids),
            "app_no": [f"A{i:012d}" for i in ids],
            "file_id": pa.array([1] * len(ids), pa.int64()),
            "seq": pa.array(ids, pa.int64()),
            **{
                name: [value] * len(ids)
                for name, value in (
                    ("app_type", "01"),
                    ("id_type", "01"),
                    ("id_valid_to", "20361122"),
                    ("name", "张三"),
                    ("gender", "1"),
                    ("ethnicity", "01"),
                    ("birth_date", "19900101"),
                    ("nationality", "CHN"),
                    ("occupation", ""),
                    ("mobile", "13900000000"),
                    ("region_code", "440103"),
                    ("old_card_no", ""),
                    ("keep_account", ""),
                    ("replace_reason", ""),
                    ("photo", "p.jpg"),
                    ("address", ""),
                    ("business_date", "20261122"),
                    ("content_sha", "0" * 40),
                )
            },
            "id_no": [f"440103{i:012d}" for i in ids],
            "bank_code": ["B001" if m else "B002" for m in made],
            "card_no": [f"C{i:08d}" for i in ids],
        }
    )
    state = pa.table(
        {
            "application_id": application.column("id"),
            "bureau": application.column("bureau"),
            "status": ["perso_sent" if m else "partner_sent" for m in made],
            "pan": [f"6217881{i:012d}" if m else None for i, m in zip(ids, made, strict=True)],
            "pan_seq": ["01" if m else None for m in made],
        }
    )
    perso = pa.table(
        {
            "application_id": pa.array(ids[:n], pa.int64()),
            "card_no": [f"C{i:08d}" for i in ids[:n]],
            "pan": [f"6217881{i:012d}" for i in ids[:n]],
            "factory": ["F01"] * n,
            "perso_name": ["PERSO_B001_F01_20261122_001.txt"] * n,
            "seq": pa.array(ids[:n], pa.int64()),
            "issue_date": ["20261122"] * n,
            "expiry_date": ["20361122"] * n,
        }
    )
    requests = pa.table(
        {
            "req_no": [f"AO{i:012d}" for i in ids[n:]],
            "application_id": pa.array(ids[n:], pa.int64()),
            "bank_code": ["B002"] * n,
            "request_name": ["ACCTOPEN_B001_B002_20261122_001.txt"] * n,
            "sent_date": ["20261122"] * n,
        }
    )
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO received_file (id, conn_id, name, sha256, size, outcome, "
                "accepted_count, rejected_count, first_seen_at) VALUES (1, 'sftp_r440100', "
                "'APPLY_R440100_B001_20261122_001.txt', :sha, 0, 'accepted', 0, 0, "
                "CURRENT_TIMESTAMP)"
            ),
            {"sha": "0" * 64},
        )
        for table, data in (
            ("application", application),
            ("application_state", state),
            ("perso_record", perso),
            ("partner_request", requests),
        ):
            bulk_load(conn, table, data, data.column_names)


def _persorsp(cards: list[int]) -> bytes:
    """Every 10th card failed (M001); a card never sent after every 100th."""
    rows = []
    for i in cards:
        if i % 10 == 0:
            rows.append([f"C{i:08d}", f"6217881{i:012d}", "01", "M001", "", "", "", DAY])
        else:
            made = [f"C{i:08d}", f"6217881{i:012d}", "00", "", f"440103D156000005{i:016X}"]
            rows.append([*made, "3B6F00", f"BOX{i:05d}", DAY])
        if i % 100 == 0:
            rows.append([f"X{i:08d}", f"6217881{i:012d}", "00", "", rows[-1][4], "3B", "B", DAY])
    out = io.BytesIO()
    header = Header("PERSORSP", "F01", "B001", "F0120261123001", DAY, len(rows))
    write_fixed(out, PERSORSP, header, rows)
    return out.getvalue()


def _acctopenrsp(applications: list[int], first_pan: int = 1) -> bytes:
    """Every 10th request refused (E199); an unknown req_no after every 100th."""
    pans = make_pans(PARTNER_PANS, first_pan, len(applications))
    rows = []
    for i, pan in zip(applications, pans, strict=True):
        if i % 10 == 0:
            rows.append([f"AO{i:012d}", "01", "E199", "拒绝", "", ""])
        else:
            rows.append([f"AO{i:012d}", "00", "", "", pan, "01"])
        if i % 100 == 0:
            rows.append([f"AO9{i:011d}", "00", "", "", pan, "01"])
    out = io.BytesIO()
    header = Header("ACCTOPENRSP", "B002", "B001", "B00220261123001", DAY, len(rows))
    write_delimited(out, ACCTOPENRSP, header, rows)
    return out.getvalue()


Handler = Callable[..., dict[str, int]]


def _take(
    engine: Engine, handler: Handler, reader: FixedReader | DelimitedReader, name: str
) -> tuple[dict[str, int], list[str]]:
    """The handler's counts and every statement it had executed, in one transaction."""
    statements: list[str] = []

    def seen(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        statements.append(statement)

    landed: Any = SimpleNamespace(name=name)
    with engine.begin() as conn:
        event.listen(engine, "before_cursor_execute", seen)
        try:
            counts = handler(conn, reader, landed, 1, DAY)
        finally:
            event.remove(engine, "before_cursor_execute", seen)
    return counts, statements


def _production(engine: Engine, cards: list[int], chunk_lines: int = 50_000) -> Any:
    reader = FixedReader(io.BytesIO(_persorsp(cards)), PERSORSP, chunk_lines)
    return _take(engine, apply_production_results, reader, f"PERSORSP_F01_B001_{DAY}_001.txt")


def _accounts(engine: Engine, apps: list[int], chunk_lines: int = 50_000, pan: int = 1) -> Any:
    reader = DelimitedReader(
        io.BytesIO(_acctopenrsp(apps, pan)), ACCTOPENRSP, "GB18030", chunk_lines
    )
    return _take(engine, apply_account_answers, reader, f"ACCTOPENRSP_B002_B001_{DAY}_001.txt")


@pytest.mark.parametrize("answer", ["PERSORSP", "ACCTOPENRSP"])
def test_an_answer_file_of_5000_records_takes_the_statements_one_of_50_takes(
    engine: Engine, answer: str
) -> None:
    n = 5050
    _seed(engine, n)
    first = 1 if answer == "PERSORSP" else n + 1
    small_ids = list(range(first, first + 50))
    large_ids = list(range(first + 50, first + 5050))
    if answer == "PERSORSP":
        small, small_sql = _production(engine, small_ids)
        large, large_sql = _production(engine, large_ids)
        expected = {"applied": 5000, "made": 4500, "failed": 500, "problems": 50}
    else:
        small, small_sql = _accounts(engine, small_ids)
        large, large_sql = _accounts(engine, large_ids, pan=51)
        expected = {"applied": 5000, "opened": 4500, "refused": 500, "problems": 50}

    assert large == expected
    assert small["applied"] == 50
    assert len(large_sql) == len(small_sql)
    assert len(large_sql) < 25


def test_a_card_returned_again_in_a_later_chunk_is_reported_and_never_applied_twice(
    engine: Engine,
) -> None:
    _seed(engine, 6)
    counts, _ = _production(engine, [1, 2, 3, 1, 4, 2], chunk_lines=2)

    assert counts == {"applied": 4, "made": 4, "failed": 0, "problems": 2}
    with engine.connect() as conn:
        cards = conn.execute(select(Card.card_no).order_by(Card.card_no)).scalars().all()
        problems = conn.execute(
            select(ReturnProblem.line_no, ReturnProblem.problem).order_by(ReturnProblem.line_no)
        ).all()
    assert cards == ["C00000001", "C00000002", "C00000003", "C00000004"]
    assert problems == [(5, "card returned before"), (7, "card returned before")]


def test_an_account_answer_repeated_in_a_later_chunk_is_passed_over_or_reported_if_different(
    engine: Engine,
) -> None:
    _seed(engine, 3)
    pans = make_pans(PARTNER_PANS, 1, 3)
    rows = [
        ["AO000000000004", "00", "", "", pans[0], "01"],
        ["AO000000000005", "01", "E199", "拒绝", "", ""],
        ["AO000000000004", "00", "", "", pans[0], "01"],  # the same answer again
        ["AO000000000005", "00", "", "", pans[1], "01"],  # a different answer
        ["AO000000000006", "00", "", "", pans[2][:-1] + "x", "01"],  # not a PAN: layout
        ["AO000000000006", "00", "", "", pans[2], "01"],
    ]
    out = io.BytesIO()
    write_delimited(
        out, ACCTOPENRSP, Header("ACCTOPENRSP", "B002", "B001", "B1", DAY, len(rows)), rows
    )
    reader = DelimitedReader(io.BytesIO(out.getvalue()), ACCTOPENRSP, "GB18030", 2)

    counts, _ = _take(engine, apply_account_answers, reader, "ACCTOPENRSP_B002_B001_x.txt")

    assert counts == {"applied": 3, "opened": 2, "refused": 1, "problems": 2}
    with engine.connect() as conn:
        states = conn.execute(
            select(
                ApplicationState.status, ApplicationState.reason_code, ApplicationState.pan
            ).where(ApplicationState.application_id > 3)
        ).all()
        answered = conn.execute(select(PartnerRequest.result).order_by(PartnerRequest.req_no))
        problems = conn.execute(
            select(ReturnProblem.line_no, ReturnProblem.problem).order_by(ReturnProblem.line_no)
        ).all()
    assert sorted(states, key=str) == sorted(
        [
            ("account_open", None, pans[0]),
            ("failed", "E199", None),
            ("account_open", None, pans[2]),
        ],
        key=str,
    )
    assert list(answered.scalars()) == ["00", "01", "00"]
    assert problems == [(5, "answered before, differently"), (6, "layout E119")]
