"""The payments benchmark's DISB writer: a valid DISB in the ICD format, its bad lines
where planned."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from bench.payments import BAD_KINDS, BATCH_NO, DISB_NAME, bad_kind, write_disb
from schemas.codec import DelimitedReader
from schemas.layouts import DISB


def test_the_disb_reads_back_with_its_planned_bad_lines(tmp_path: Path) -> None:
    n = 1_000
    path = tmp_path / DISB_NAME
    written = write_disb(n, path)
    data = path.read_bytes()
    assert data.startswith(f"H|DISB|R440100|B001|{BATCH_NO}|".encode())
    assert data.endswith(b"\r\n") and data.count(b"\r\n") == n + 2
    with path.open("rb") as fh:
        reader = DelimitedReader(fh, DISB, "GB18030", 300, n)
        failed = {}
        for chunk in reader.chunks():
            for seq, at, code in zip(chunk.seqs, chunk.fail_index, chunk.fail_code, strict=True):
                if 0 <= at < len(DISB.names):
                    failed[int(seq)] = str(code)
    assert reader.header.total_fen == written["total_fen"]
    planned = written["planned"]
    assert len(planned) == n // 100 and set(planned.values()) == set(BAD_KINDS)
    assert all(bad_kind(seq) == code for seq, code in planned.items())
    # the field checks find the 208 lines; the others are found against the hub's data
    assert failed == {seq: "208" for seq, code in planned.items() if code == "208"}
    assert Counter(planned.values())["208"] >= 1
