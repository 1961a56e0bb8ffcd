"""The pre-check answers every fixture file of ``tests/fixtures/apply/`` as ICD §6 says: each
bad file with its folder's F-code, the valid files line by line.

The fixtures are written once by ``tests/fixtures/make_apply_fixtures.py``.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from issuance.precheck import PrecheckResult, precheck
from sandbox.bureau import FILE_KINDS
from sscard.config import load_counterparties, precheck_settings

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "apply"
BUSINESS_DATE = "20261122"
BAD_FOLDERS = sorted(p.name for p in FIXTURES.iterdir() if p.is_dir() and p.name.startswith("F"))

#: the 24-line file: (line, SEQ, field, code) of every rejected line; the rest are accepted
BAD_LINES = [
    (4, 3, "birth_date", "E102"),
    (5, 4, "gender", "E103"),
    (7, 6, "mobile", "E114"),
    (9, 8, "region_code", "E112"),
    (10, 9, "card_no", "E106"),
    (11, 10, "name", "E104"),
    (12, 11, "id_no", "E101"),
    (14, 13, "ethnicity", "E115"),
    (15, 14, "photo", "E113"),
    (16, 15, "bank_code", "E111"),
    (17, 16, "card_no", "E105"),
    (19, 18, "old_card_no", "E109"),
    (21, 20, "app_type", "E117"),
    (22, 21, "id_no", "E108"),
    (23, 22, "*", "E116"),
    (25, 24, "app_no", "E107"),
]


def data_file(folder: Path) -> Path:
    (path,) = folder.glob("*.txt")
    return path


def check(path: Path) -> PrecheckResult:
    return precheck(path, precheck_settings(load_counterparties()), BUSINESS_DATE)


def test_there_is_a_fixture_folder_for_every_file_level_variant_but_f05() -> None:
    assert BAD_FOLDERS == sorted(kind for kind in FILE_KINDS if kind != "F05")


@pytest.mark.parametrize("kind", BAD_FOLDERS)
def test_every_bad_fixture_file_is_rejected_with_its_folders_f_code(kind: str) -> None:
    result = check(data_file(FIXTURES / kind))

    assert result.file_code == kind[:3]
    assert result.as_json()["accepted"] == 0
    assert result.as_json()["rejected"] == []


def test_variants_of_one_f_code_fail_for_different_reasons() -> None:
    details: dict[str, set[str]] = {}
    for kind in BAD_FOLDERS:
        result = check(data_file(FIXTURES / kind))
        details.setdefault(kind[:3], set()).add(result.file_detail)

    assert len(details["F04"]) == 2
    assert len(details["F10"]) == 3


def test_the_good_fixture_file_is_accepted_with_every_line() -> None:
    result = check(FIXTURES / "valid" / "APPLY_R440100_B001_20261122_001.txt")

    assert result.file_code is None
    assert result.accepted == 5
    assert result.rejected == []


def test_the_fixture_file_with_bad_lines_rejects_exactly_those_lines_with_their_codes() -> None:
    result = check(FIXTURES / "valid" / "APPLY_R440100_B001_20261122_002.txt")

    assert result.file_code is None
    assert [(r.line, r.seq, r.field, r.code) for r in result.rejected] == BAD_LINES
    assert result.accepted == 24 - len(BAD_LINES)
