"""The hash-chained audit trail (DOMAIN §3): appended records verify; a changed field, a
deleted record or a fork is named by the record where the chain breaks."""

from __future__ import annotations

import hashlib
import json
import threading
from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy import Engine, text

from banking import audit
from banking.audit import AuditEntry

AT = datetime(2026, 11, 22, 10, 30, 15, 123456, tzinfo=timezone(timedelta(hours=8)))


def entry(n: int) -> AuditEntry:
    return AuditEntry(
        business_date="20261122",
        card_no=f"A{n:08d}",
        pan="6222020000000000019",
        op="L1",
        channel="CNTR01",
        actor="teller7",
        ref=f"REQ{n}",
        before="1",
        after="4",
    )


def ids(engine: Engine) -> list[int]:
    with engine.connect() as conn:
        return list(conn.scalars(text("SELECT id FROM audit_record ORDER BY id")))


def test_appended_records_form_a_chain_that_verifies(engine: Engine) -> None:
    with engine.begin() as conn:
        assert audit.append(conn, [entry(1), entry(2)], AT) == 2
    with engine.begin() as conn:
        assert audit.append(conn, [entry(3)], AT + timedelta(seconds=1)) == 1
    with engine.connect() as conn:
        assert audit.verify(conn, batch=2) == audit.Verified(3, None, None)
        first, second = conn.execute(
            text("SELECT prev_hash, hash FROM audit_record ORDER BY id LIMIT 2")
        ).all()
    assert first[0] == "0" * 64
    assert second[0] == first[1]


def test_the_hash_covers_every_field_and_the_time_in_utc() -> None:
    base = audit.record_hash("0" * 64, AT, entry(1))
    assert base == audit.record_hash("0" * 64, AT.astimezone(UTC), entry(1))
    assert base != audit.record_hash("0" * 64, AT + timedelta(microseconds=1), entry(1))
    assert base != audit.record_hash("1" * 64, AT, entry(1))
    fields = entry(1).__dict__
    for name in fields:
        changed = AuditEntry(**{**fields, name: fields[name] + "x"})
        assert audit.record_hash("0" * 64, AT, changed) != base, name
    # no value can shift into its neighbour
    a = AuditEntry(**{**fields, "before": "1,", "after": "4"})
    b = AuditEntry(**{**fields, "before": "1", "after": ",4"})
    assert audit.record_hash("0" * 64, AT, a) != audit.record_hash("0" * 64, AT, b)


def test_a_record_without_detail_hashes_as_records_written_before_the_column_existed() -> None:
    e = entry(1)
    canonical = [
        "0" * 64,
        AT.astimezone(UTC).isoformat(timespec="microseconds"),
        *(getattr(e, name) for name in ("business_date", "card_no", "pan", "op", "channel")),
        *(getattr(e, name) for name in ("actor", "ref", "before", "after")),
    ]
    digest = hashlib.sha256(
        json.dumps(canonical, ensure_ascii=False, separators=(",", ":")).encode()
    ).hexdigest()
    assert audit.record_hash("0" * 64, AT, e) == digest
    with_reason = AuditEntry(**{**e.__dict__, "detail": "refund handled by branch"})
    assert audit.record_hash("0" * 64, AT, with_reason) != digest


def test_a_tampered_after_field_is_named_by_its_id(engine: Engine) -> None:
    with engine.begin() as conn:
        audit.append(conn, [entry(n) for n in range(5)], AT)
    third = ids(engine)[2]
    with engine.begin() as conn:
        conn.execute(text("UPDATE audit_record SET after = '1' WHERE id = :i"), {"i": third})
    with engine.connect() as conn:
        found = audit.verify(conn, batch=2)
    assert (found.first_bad, found.why) == (third, "hash does not match its content")
    assert found.records == 3


def test_a_deleted_middle_record_is_found(engine: Engine) -> None:
    with engine.begin() as conn:
        audit.append(conn, [entry(n) for n in range(5)], AT)
    kept = ids(engine)
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM audit_record WHERE id = :i"), {"i": kept[2]})
    with engine.connect() as conn:
        found = audit.verify(conn)
    assert (found.first_bad, found.why) == (kept[3], "prev_hash does not match the record before")


def test_a_naive_time_is_refused(engine: Engine) -> None:
    with pytest.raises(ValueError, match="zone"), engine.begin() as conn:
        audit.append(conn, [entry(1)], datetime(2026, 11, 22))


def test_many_records_append_in_one_call(engine: Engine) -> None:
    with engine.begin() as conn:
        assert audit.append(conn, [entry(n) for n in range(25_000)], AT) == 25_000
    with engine.connect() as conn:
        assert audit.verify(conn, batch=7_000) == audit.Verified(25_000, None, None)


def test_concurrent_appenders_keep_one_chain(engine: Engine) -> None:
    if engine.dialect.name != "postgresql":
        pytest.skip("SQLite serialises writers itself")
    barrier = threading.Barrier(4)
    errors: list[BaseException] = []

    def appender(k: int) -> None:
        try:
            for round_ in range(5):
                with engine.begin() as conn:
                    if round_ == 0:
                        barrier.wait()
                    audit.append(conn, [entry(k * 100 + round_ * 10 + i) for i in range(3)], AT)
        except Exception as exc:
            errors.append(exc)

    threads = [threading.Thread(target=appender, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    with engine.connect() as conn:
        assert audit.verify(conn) == audit.Verified(60, None, None)
        forks = conn.scalar(text("SELECT COUNT(*) - COUNT(DISTINCT prev_hash) FROM audit_record"))
    assert forks == 0
