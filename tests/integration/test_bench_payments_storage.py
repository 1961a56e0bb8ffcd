"""The payments benchmark's ``storage`` step on PostgreSQL: after a small run of
intake→DISBRSP it writes the run's records again alone, times each part and leaves
nothing behind."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import Engine, inspect, text

from bench.payments import STORAGE_PARTS, _pay, _storage, setup, verdicts, write_inputs


def test_the_records_of_a_run_are_written_again_alone_and_their_ratio_reported(
    engine: Engine, db_url: str, tmp_path: Path
) -> None:
    if engine.dialect.name != "postgresql":
        pytest.skip("the benchmark measures PostgreSQL")
    n = 700
    inputs = write_inputs(n, tmp_path / "input")
    setup(db_url, n)
    spec = {
        "n": n,
        "url": db_url,
        "disb": inputs["disb"],
        "stmt": inputs["stmt"],
        "run_dir": str(tmp_path / "run"),
        "planned": inputs["planned"],
    }
    paid = _pay(spec)
    assert paid["problems"] == []

    stored = _storage(spec)

    assert stored["problems"] == []
    assert list(stored["substeps"]) == list(STORAGE_PARTS)
    assert all(s > 0 for s in stored["substeps"].values())
    assert not {"bare_line", "bare_entry", "bare_line_src", "bare_entry_src"} & set(
        inspect(engine).get_table_names()
    )
    with engine.connect() as conn:
        # the run's own records are untouched
        assert conn.scalar(text("SELECT COUNT(*) FROM disb_line")) == n
    row = {
        "step": "storage",
        "lines": n,
        "seconds": 6.0,
        "substeps": dict(zip(STORAGE_PARTS, (2.0, 1.0, 0.5, 1.5, 1.0), strict=True)),
        "floor_seconds": 2.0,
        "ratio": 3.0,
        "target_ratio": None,
        "peak_mib": 100.0,
    }
    assert (
        "storage at 700 lines: the records alone (lines, outcomes, credit entries, read back) "
        "2.0× the floor, with the hub's reader 3.0×; the lines alone, read and read back (no "
        "outcome update, no entry per credit) 2.0×"
    ) in verdicts([row])
