"""The APPLY line rules of ICD §5.1 that go beyond the layout: resident ID check digit and
birth date, names, gender and birth date against the ID, nationality, region, bank, photo."""

from __future__ import annotations

from collections.abc import Collection
from datetime import date, timedelta
from typing import Literal

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from stdnum.cn import ric
from stdnum.exceptions import InvalidComponent

from issuance.apply_rules import check_apply_chunk, resident_id_valid, rules_for
from issuance.photos import PhotoNames
from sandbox.bureau import make_apply_batch, render
from schemas.codec import DelimitedReader, Header
from schemas.layouts import APPLY
from tests.unit.conftest import examples

BUSINESS_DATE = "20261122"
RULES = rules_for(BUSINESS_DATE, frozenset({"B001", "B002", "B003"}), "R440100")
JI = "\U00020bb7"  # 𠮷, four bytes in GB18030


# --------------------------------------------------------------------------- resident ID


def with_check(first17: str) -> str:
    """``first17`` followed by its GB 11643 check character, as stdnum computes it."""
    return first17 + ric.calc_check_digit(first17 + "0")


def reference(number: str) -> bool:
    """The part of ``stdnum.cn.ric.validate`` that the hub applies to every 18-character
    number: 17 ASCII digits, the check character (upper-case ``X``) and a birth date
    that is on the calendar."""
    if len(number) != 18 or not (number[:17].isascii() and number[:17].isdigit()):
        return False
    if number[17] != ric.calc_check_digit(number):
        return False
    try:
        ric.get_birth_date(number)
    except InvalidComponent:
        return False
    return True


def stdnum_accepts(number: str) -> bool | None:
    """``stdnum.cn.ric.is_valid``, or None where its birth-place table has no county and it
    raises KeyError instead of answering."""
    try:
        return ric.is_valid(number)
    except KeyError:
        return None


AREAS = st.one_of(
    st.sampled_from(["110101", "440106", "440305", "650102", "110000", "440000"]),
    st.text("0123456789", min_size=6, max_size=6),
)
BIRTHS = st.dates(min_value=date(1, 1, 1)).map(lambda d: f"{d.year:04d}{d.month:02d}{d.day:02d}")
VALID_IDS = st.builds(
    lambda area, birth, seq: with_check(area + birth + seq),
    AREAS,
    BIRTHS,
    st.text("0123456789", min_size=3, max_size=3),
)


@st.composite
def mutated(draw: st.DrawFn) -> str:
    chars = list(draw(VALID_IDS))
    how = draw(st.sampled_from(["replace", "swap", "check"]))
    i = draw(st.integers(0, 16))
    if how == "replace":
        chars[i] = draw(st.sampled_from("0123456789XxA "))
    elif how == "swap":
        chars[i], chars[i + 1] = chars[i + 1], chars[i]
    else:
        chars[17] = draw(st.sampled_from("0123456789Xx"))
    return "".join(chars)


ID_LIKE = st.one_of(
    VALID_IDS,
    mutated(),
    st.text("0123456789X", min_size=18, max_size=18),
    st.text("0123456789X", max_size=20),
)


@settings(max_examples=examples(300), deadline=None)
@given(numbers=st.lists(ID_LIKE, min_size=1, max_size=8))
def test_resident_id_check_agrees_with_stdnum_on_check_digit_and_birth_date(
    numbers: list[str],
) -> None:
    """``resident_id_valid`` against python-stdnum, number by number, in one vectorised call.

    It is compared with the check character (``calc_check_digit``) and birth date
    (``get_birth_date``) parts of ``stdnum.cn.ric.validate``, not with ``is_valid`` as a
    whole: stdnum also looks the first six digits up in its own table of birth places
    (which the hub leaves to region rules) and raises KeyError for some codes, and it
    accepts a lower-case ``x`` that ICD §5.1 does not. Where stdnum does answer for an
    upper-case number, its yes must be ours too.
    """

    ours = resident_id_valid(np.array(numbers, dtype=object)).tolist()

    assert ours == [reference(n) for n in numbers]
    for number, verdict in zip(numbers, ours, strict=True):
        if number == number.upper() and stdnum_accepts(number):
            assert verdict


def test_well_known_resident_ids_are_valid_and_a_changed_digit_is_not() -> None:
    ids = ["11010519491231002X", "360426199101010071", "11010519491231002x", "11010519491231003X"]

    assert resident_id_valid(np.array(ids, dtype=object)).tolist() == [True, True, False, False]


def test_a_resident_id_with_a_date_off_the_calendar_is_invalid() -> None:
    ids = [
        with_check("440106" + d + "123") for d in ("19990229", "20000229", "19901301", "19900100")
    ]

    assert resident_id_valid(np.array(ids, dtype=object)).tolist() == [False, True, False, False]


def test_a_resident_id_born_in_year_zero_is_invalid() -> None:
    number = with_check("110101" + "00000101" + "123")
    assert reference(number) is False

    assert resident_id_valid(np.array([number], dtype=object)).tolist() == [False]


# --------------------------------------------------------------------------- lines


def a_line(seed: int = 0) -> list[str]:
    """A valid ``01`` application of a resident of the bureau's province, its app_no and
    photo named after ``seed``."""
    row = list(make_apply_batch(size=1, seed=seed).rows[0])
    return changed(row, app_no=f"A{seed:06d}", photo=f"A{seed:06d}.jpg")


def a_foreigners_line(seed: int = 0) -> list[str]:
    """A valid ``01`` application with a passport (id_type ``03``)."""
    row = a_line(seed)
    for name, value in {
        "id_type": "03",
        "id_no": "E12345678",
        "name": "John Smith",
        "gender": "1",
        "birth_date": "19850704",
        "nationality": "USA",
    }.items():
        row[APPLY.index(name)] = value
    return row


def changed(row: list[str], **values: str) -> list[str]:
    row = list(row)
    for name, value in values.items():
        row[APPLY.index(name)] = value
    return row


def rejections(
    rows: list[list[str]], photos: Collection[str] | Literal["all"] | None = "all"
) -> list[tuple[int, str, str]]:
    """(SEQ, field, code) of every rejected line after the codec and the rules of §5.1;
    ``photos`` are the valid photos of the zip (``"all"``: every photo the lines name,
    None: no zip)."""
    header = Header("APPLY", "R440100", "B001", "B1", BUSINESS_DATE, len(rows))
    valid = frozenset(row[APPLY.index("photo")] for row in rows) if photos == "all" else photos
    found: list[tuple[int, str, str]] = []
    for chunk in DelimitedReader(render(header, rows), APPLY).chunks():
        check_apply_chunk(chunk, RULES, valid)
        found.extend((r.seq or 0, r.field, r.code) for r in chunk.rejections())
    return found


def test_valid_lines_of_residents_and_foreigners_pass_every_rule() -> None:
    assert rejections([a_line(1), a_line(2), a_foreigners_line(3)]) == []


@pytest.mark.parametrize(
    ("id_type", "name", "code"),
    [
        ("01", f"张{JI}", None),
        ("01", f"王{JI}{JI}", None),
        ("01", "买买提·艾力", None),
        ("01", "䶮堃", None),
        ("01", "John Smith", "E104"),
        ("01", "Li", "E104"),
        ("01", "王 芳", "E104"),
        ("01", "王3", "E104"),
        ("03", "John Smith", None),
        ("03", "李 Smith", None),
        ("03", "买买提·艾力", None),
        ("03", f"张{JI}", None),
        ("03", "John  Smith", "E104"),
        ("03", " John", "E104"),
        ("03", "John ", "E104"),
        ("03", "John3", "E104"),
        ("03", "John_Smith", "E104"),
    ],
)
def test_names_are_chinese_for_resident_ids_and_may_use_latin_letters_and_single_spaces_otherwise(
    id_type: str, name: str, code: str | None
) -> None:
    row = a_line(4) if id_type == "01" else a_foreigners_line(4)

    found = rejections([changed(row, name=name)])

    assert found == ([] if code is None else [(1, "name", code)])


def test_gender_must_match_the_parity_of_id_digit_17_for_resident_ids() -> None:
    row = a_line(5)
    id_no, gender = row[APPLY.index("id_no")], row[APPLY.index("gender")]
    assert gender == ("1" if int(id_no[16]) % 2 else "2")
    other = "2" if gender == "1" else "1"

    assert rejections([row, changed(row, gender=other)]) == [(2, "gender", "E103")]
    foreigner = a_foreigners_line(5)
    assert rejections([changed(foreigner, gender="2")]) == []


def test_birth_date_must_equal_id_digits_7_to_14_for_resident_ids() -> None:
    row = a_line(6)
    birth = row[APPLY.index("birth_date")]
    assert birth == row[APPLY.index("id_no")][6:14]
    next_day = f"{date(int(birth[:4]), int(birth[4:6]), int(birth[6:])) + timedelta(days=1):%Y%m%d}"

    assert rejections([changed(row, birth_date=next_day)]) == [(1, "birth_date", "E102")]
    assert rejections([changed(a_foreigners_line(6), birth_date="19700101")]) == []


def test_a_birth_date_after_the_business_date_is_rejected() -> None:
    assert rejections([changed(a_foreigners_line(7), birth_date="20261123")]) == [
        (1, "birth_date", "E102")
    ]


def test_an_id_no_with_a_wrong_check_character_is_e101() -> None:
    row = a_line(8)
    id_no = row[APPLY.index("id_no")]
    wrong = id_no[:17] + ("0" if id_no[17] != "0" else "1")

    assert rejections([changed(row, id_no=wrong)]) == [(1, "id_no", "E101")]


def test_id_validity_before_the_business_date_is_e115() -> None:
    row = a_line(9)

    assert rejections(
        [
            changed(row, id_valid_to="20261121"),
            changed(a_line(10), id_valid_to=BUSINESS_DATE),
            changed(a_line(11), id_valid_to="99991231"),
        ]
    ) == [(1, "id_valid_to", "E115")]


@pytest.mark.parametrize(
    ("foreign", "nationality", "code"),
    [
        (False, "CHN", None),
        (False, "USA", "E115"),
        (True, "USA", None),
        (True, "CHN", None),
        (True, "XYZ", "E115"),
        (False, "XYZ", "E115"),
    ],
)
def test_nationality_is_an_iso_code_and_chn_for_resident_ids(
    foreign: bool, nationality: str, code: str | None
) -> None:
    row = a_foreigners_line(12) if foreign else a_line(12)

    found = rejections([changed(row, nationality=nationality)])

    assert found == ([] if code is None else [(1, "nationality", code)])


@pytest.mark.parametrize(
    ("region", "code"),
    [("440106", None), ("440305", None), ("110101", "E112"), ("449999", "E112")],
)
def test_a_region_code_outside_the_bureaus_province_or_unknown_is_e112(
    region: str, code: str | None
) -> None:
    found = rejections([changed(a_line(13), region_code=region)])

    assert found == ([] if code is None else [(1, "region_code", code)])


@pytest.mark.parametrize(("bank", "code"), [("B001", None), ("B003", None), ("B999", "E111")])
def test_a_bank_that_is_neither_the_hub_nor_a_partner_is_e111(bank: str, code: str | None) -> None:
    found = rejections([changed(a_line(14), bank_code=bank)])

    assert found == ([] if code is None else [(1, "bank_code", code)])


def test_a_photo_named_but_missing_from_the_zip_is_e113() -> None:
    rows = [a_line(15), a_line(16)]
    present = frozenset({rows[0][APPLY.index("photo")]})

    assert rejections(rows, present) == [(2, "photo", "E113")]
    assert rejections(rows, None) == [(1, "photo", "E113"), (2, "photo", "E113")]


def test_the_valid_photos_of_a_checked_zip_answer_as_a_set_of_names_does() -> None:
    rows = [a_line(n) for n in range(40, 46)]
    named = [row[APPLY.index("photo")] for row in rows]
    present = {named[0], named[3], named[4], "OTHER.jpg"}

    assert rejections(rows, PhotoNames(present)) == rejections(rows, frozenset(present))
    assert rejections(rows, PhotoNames([])) == rejections(rows, frozenset())


def test_a_replacement_without_a_photo_reuses_the_one_on_file() -> None:
    row = changed(a_line(17), app_type="05", old_card_no="A12345678", keep_account="0", photo="")

    assert rejections([row], None) == []


def test_the_first_failing_field_wins_between_layout_and_line_rules() -> None:
    row = a_line(18)
    id_no = row[APPLY.index("id_no")]
    wrong_id = id_no[:17] + ("0" if id_no[17] != "0" else "1")
    gender = "2" if row[APPLY.index("gender")] == "1" else "1"

    found = rejections(
        [
            changed(row, id_no=wrong_id, mobile="123"),
            changed(a_line(19), bank_code="B999", gender=gender),
            changed(a_line(20), region_code="110101", mobile="123"),
            changed(a_line(21), ethnicity="77", bank_code="B999"),
        ]
    )

    assert found == [
        (1, "id_no", "E101"),
        (2, "gender", "E103"),
        (3, "mobile", "E114"),
        (4, "ethnicity", "E115"),
    ]
