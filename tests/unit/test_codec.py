"""The codec reads back what it writes for every layout, frames files as ICD §4 says, and
rejects each bad line once, at its first failing field."""

from __future__ import annotations

import io
import re
import string
from collections.abc import Callable
from functools import cache
from typing import Any, BinaryIO, cast

import pyarrow as pa
import pyarrow.compute as pc
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sandbox.bureau import make_apply_batch
from schemas.codec import (
    DelimitedReader,
    FixedReader,
    Header,
    Rejection,
    WriterError,
    _byte_lengths,
    _valid_dates,
    amount_column,
    amount_to_fen,
    fen_to_amount,
    gb18030_length,
    masked_lines,
    read_all,
    write_delimited,
    write_delimited_tables,
    write_fixed,
    write_fixed_table,
)
from schemas.codes import FileCode
from schemas.files import FileLevelError
from schemas.layouts import (
    APPLY,
    APPLYRSP,
    CHANNEL,
    DISB,
    DISBRSP,
    LAYOUTS,
    PERSO,
    PERSORSP,
    Field,
    Layout,
)
from tests.unit.conftest import examples

MAX_FEN = 999_999_999_999
FOUR_BYTE = "\U00020bb7\U0002a6a5\U00021484"  # 𠮷 𪚥 𡒄
#: free text: letters, spaces anywhere (a delimited value carries them all; a fixed-width
#: value only those before its last character), Chinese and four-byte characters
TEXT_ALPHABET = string.ascii_letters + " 张王李赵刘陈杨黄伟芳娜敏静丽强磊军洋勇艳杰·" + FOUR_BYTE
JI = "\U00020bb7"


# --------------------------------------------------------------------------- strategies


def _ymd(year: int, month: int, day: int) -> str:
    return f"{year:04d}{month:02d}{day:02d}"


DATES = st.dates().map(lambda d: _ymd(d.year, d.month, d.day))
TIMES = st.datetimes().map(
    lambda t: _ymd(t.year, t.month, t.day) + f"{t.hour:02d}{t.minute:02d}{t.second:02d}"
)
MONTHS = st.tuples(st.integers(1, 9999), st.integers(1, 12)).map(
    lambda ym: f"{ym[0]:04d}{ym[1]:02d}"
)


def _cut_to(limit: int) -> Callable[[str], str]:
    """The longest prefix whose GB18030 encoding fits ``limit`` bytes."""

    def cut(text: str) -> str:
        used = 0
        for i, ch in enumerate(text):
            used += gb18030_length(ch)
            if used > limit:
                return text[:i]
        return text

    return cut


def value_strategy(f: Field) -> st.SearchStrategy[str]:
    """A valid, non-empty value of ``f`` that its writer accepts, drawn from its declaration
    alone. A fixed-width text value never ends in a space: its spaces would be read as
    padding, so the writer refuses it (ICD §4.3)."""
    drawn = _declared_value(f)
    if f.width is not None and not f.numeric:
        return drawn.filter(lambda v: not v.endswith(" "))
    return drawn


def _declared_value(f: Field) -> st.SearchStrategy[str]:
    limit = f.byte_limit
    if f.values:
        return st.sampled_from(f.values)
    if f.kind == "date":
        return DATES
    if f.kind == "time":
        return TIMES
    if f.kind == "month":
        return MONTHS
    if f.kind == "amount":
        return st.integers(max(f.min_fen, 0), MAX_FEN).map(fen_to_amount)
    if f.kind == "signed_amount":
        return st.integers(-MAX_FEN, MAX_FEN).map(fen_to_amount)
    if f.kind == "count":
        return st.integers(0, 9_999_999_999).map(str)
    if f.numeric and f.width is not None:
        digits = st.text(string.digits, min_size=f.width, max_size=f.width)
        return digits.filter(lambda v: f.pattern is None or re.fullmatch(f.pattern, v) is not None)
    if f.pattern is not None:
        drawn = st.from_regex(f.pattern, fullmatch=True)
        return drawn if limit is None else drawn.filter(lambda v: gb18030_length(v) <= limit)
    return (
        st.text(TEXT_ALPHABET, min_size=1, max_size=min(limit or 30, 60))
        .map(_cut_to(limit or 120))
        .filter(bool)
    )


@cache
def row_strategy(layout_type: str) -> st.SearchStrategy[list[str]]:
    """A valid detail row: M filled, O either, C filled exactly when its condition holds."""
    layout = LAYOUTS[layout_type]
    filled = {f.name: value_strategy(f) for f in layout.fields}
    either = {name: st.one_of(st.just(""), strategy) for name, strategy in filled.items()}
    plain = [f for f in layout.fields if f.cond is None]
    conditional = [f for f in layout.fields if f.cond is not None]
    assert all(layout.field(f.cond.field).cond is None for f in conditional if f.cond)

    @st.composite
    def row(draw: st.DrawFn) -> list[str]:
        values: dict[str, str] = {}
        for f in plain:
            values[f.name] = draw(filled[f.name] if f.presence == "M" else either[f.name])
        for f in conditional:
            assert f.cond is not None
            holds = (values[f.cond.field] in f.cond.values) != f.cond.negate
            if holds:
                values[f.name] = draw(filled[f.name])
            elif f.cond.otherwise == "optional":
                values[f.name] = draw(either[f.name])
            else:
                values[f.name] = ""
        return [values[name] for name in layout.names]

    return row()


def _total(layout: Layout, rows: list[list[str]]) -> int:
    if layout.amount_field is None:
        return 0
    i = layout.index(layout.amount_field)
    return sum(amount_to_fen(row[i]) for row in rows)


@cache
def file_rows(layout_type: str) -> st.SearchStrategy[list[list[str]]]:
    """The detail rows of one file, their total within the header's TOTAL_AMOUNT."""
    layout = LAYOUTS[layout_type]
    rows = st.lists(row_strategy(layout_type), max_size=6)
    return rows.filter(lambda drawn: _total(layout, drawn) <= MAX_FEN)


def _header(layout: Layout, count: int, total_fen: int = 0) -> Header:
    return Header(layout.type, "R440100", "B001", "B20261122x01", "20261122", count, total_fen)


def _as_rows(table: pa.Table, layout: Layout) -> list[list[str]]:
    columns = [table.column(name).to_pylist() for name in layout.names]
    return [list(values) for values in zip(*columns, strict=True)] if columns else []


ROUND_TRIPS = [
    pytest.param(layout, encoding, id=f"{layout.type}-{encoding}")
    for layout in LAYOUTS.values()
    for encoding in (("GB18030", "UTF-8") if layout.framing == "delimited" else ("GB18030",))
]


@pytest.mark.parametrize(("layout", "encoding"), ROUND_TRIPS)
@settings(max_examples=examples(40), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_every_layout_reads_back_exactly_the_rows_it_wrote(
    layout: Layout, encoding: str, data: st.DataObject
) -> None:
    rows = data.draw(file_rows(layout.type), label="rows")
    total = _total(layout, rows)
    out = io.BytesIO()
    if layout.framing == "delimited":
        write_delimited(out, layout, _header(layout, len(rows), total), rows, encoding)
        reader: DelimitedReader | FixedReader = DelimitedReader(out.getvalue(), layout, encoding)
    else:
        write_fixed(out, layout, _header(layout, len(rows)), rows)
        by_column = io.BytesIO()
        columns = pa.table(
            {n: pa.array([r[i] for r in rows], pa.string()) for i, n in enumerate(layout.names)}
        )
        write_fixed_table(by_column, layout, _header(layout, len(rows)), columns)
        assert by_column.getvalue() == out.getvalue()
        reader = FixedReader(out.getvalue(), layout)

    table, rejected = read_all(reader)

    assert rejected == []
    assert _as_rows(table, layout) == rows
    assert table.column("_seq").to_pylist() == list(range(1, len(rows) + 1))
    assert table.column("_line").to_pylist() == list(range(2, len(rows) + 2))
    assert reader.trailer is not None
    assert reader.header.record_count == reader.trailer.record_count == len(rows)
    assert (reader.header.batch_no, reader.header.business_date) == ("B20261122x01", "20261122")
    if layout.framing == "delimited":
        assert reader.header.total_fen == reader.trailer.total_fen == total


# --------------------------------------------------------------------------- GB18030 and fixed width


def test_a_name_with_a_four_byte_character_survives_a_gb18030_round_trip_byte_for_byte() -> None:
    row = make_apply_batch(size=1, seed=3).rows[0]
    row[APPLY.index("name")] = f"王{JI}"
    out = io.BytesIO()
    write_delimited(out, APPLY, _header(APPLY, 1), [row])
    data = out.getvalue()

    table, rejected = read_all(DelimitedReader(data, APPLY))

    assert b"|\xcd\xf5\x95\x34\xb2\x35|" in data
    assert rejected == []
    assert table.column("name").to_pylist() == [f"王{JI}"]
    again = io.BytesIO()
    write_delimited(again, APPLY, _header(APPLY, 1), _as_rows(table, APPLY))
    assert again.getvalue() == data


def _perso_row(**changes: str) -> list[str]:
    values = {
        "card_no": "A12345678",
        "id_type": "01",
        "id_no": "E1234567",
        "name": f"张{JI}",
        "gender": "1",
        "ethnicity": "01",
        "birth_date": "19900307",
        "region_code": "440106",
        "issue_date": "20261122",
        "expiry_date": "20361122",
        "bank_code": "B001",
        "pan": "6217000010000000001",
        "pan_seq": "1",
        "photo": "A12345678.jpg",
    }
    values.update(changes)
    return [values[name] for name in PERSO.names]


def _perso(rows: list[list[str]]) -> bytes:
    """PERSO bytes of ``rows``, checking that the row writer and the column writer agree:
    the same bytes, or both refuse."""
    header = Header("PERSO", "B001", "F01", "P2026112201", "20261122", len(rows))
    columns = None
    if all(len(r) == len(PERSO.fields) for r in rows):
        columns = pa.table({n: [r[i] for r in rows] for i, n in enumerate(PERSO.names)})
    out = io.BytesIO()
    try:
        write_fixed(out, PERSO, header, rows)
    except WriterError:
        if columns is not None:
            with pytest.raises(WriterError):
                write_fixed_table(io.BytesIO(), PERSO, header, columns)
        raise
    if columns is not None:
        by_column = io.BytesIO()
        write_fixed_table(by_column, PERSO, header, columns)
        assert by_column.getvalue() == out.getvalue()
    return out.getvalue()


def test_a_perso_record_pads_text_right_with_spaces_and_numbers_left_with_zeros() -> None:
    data = _perso([_perso_row()])

    header = b"".join(
        [
            b"H",
            b"PERSO     ",
            b"B001   ",
            b"F01    ",
            b"P2026112201         ",
            b"20261122",
            b"00000001",
            b"1.0",
        ]
    )
    detail = b"".join(
        [
            b"D",
            b"00000001",
            b"A12345678",
            b"01",
            b"E1234567          ",
            b"\xd5\xc5\x95\x34\xb2\x35                        ",
            b"1",
            b"01",
            b"19900307",
            b"440106",
            b"20261122",
            b"20361122",
            b"B001",
            b"6217000010000000001",
            b"01",
            b"A12345678.jpg                           ",
        ]
    )
    trailer = b"T00000001"
    assert len(detail) == 166
    assert data == header.ljust(166) + b"\r\n" + detail + b"\r\n" + trailer.ljust(166) + b"\r\n"


def test_a_perso_name_is_measured_in_gb18030_bytes_and_one_that_does_not_fit_is_refused() -> None:
    fits = JI * 7 + "张"  # 8 characters, 7 × 4 + 2 = 30 bytes
    data = _perso([_perso_row(name=fits)])
    table, rejected = read_all(FixedReader(data, PERSO))
    assert rejected == []
    assert table.column("name").to_pylist() == [fits]

    for too_long in (JI * 8, "a" * 27 + JI):  # 8 characters but 32 bytes; 28 characters, 31 bytes
        with pytest.raises(WriterError):
            _perso([_perso_row(name=too_long)])


def test_a_name_over_30_gb18030_bytes_is_refused_when_written_and_rejected_when_read() -> None:
    row = make_apply_batch(size=1, seed=3).rows[0]
    row[APPLY.index("name")] = JI * 8
    with pytest.raises(WriterError):
        write_delimited(io.BytesIO(), APPLY, _header(APPLY, 1), [row])

    data = _framed("APPLY", ["D|1|" + "|".join(row)])
    _, rejected = read_all(DelimitedReader(data, APPLY))
    assert [(r.field, r.code) for r in rejected] == [("name", "E104")]


def _persorsp_row(box_no: str) -> list[str]:
    made = ["A00000001", "6217881000000000016", "00", "", "440103D156000005" + "0" * 16]
    return [*made, "3B6F00", box_no, "20261122"]


def _by_rows(layout: Layout, rows: list[list[str]]) -> bytes:
    out = io.BytesIO()
    write_fixed(out, layout, _header(layout, len(rows)), rows)
    return out.getvalue()


def _by_columns(layout: Layout, rows: list[list[str]]) -> bytes:
    out = io.BytesIO()
    columns = pa.table({n: [r[i] for r in rows] for i, n in enumerate(layout.names)})
    write_fixed_table(out, layout, _header(layout, len(rows)), columns)
    return out.getvalue()


@pytest.mark.parametrize("write", [_by_rows, _by_columns], ids=["by rows", "by columns"])
@pytest.mark.parametrize(
    ("layout", "row", "field"),
    [
        pytest.param(PERSORSP, _persorsp_row(" "), "box_no", id="a lone space"),
        pytest.param(PERSORSP, _persorsp_row("0 "), "box_no", id="one after a digit"),
        pytest.param(PERSORSP, _persorsp_row("BOX 1  "), "box_no", id="two after a word"),
        pytest.param(PERSO, _perso_row(name="张三 "), "name", id="after a Chinese name"),
        pytest.param(PERSO, _perso_row(name=f"王{JI} "), "name", id="after a 4-byte character"),
    ],
)
def test_a_fixed_width_text_value_ending_in_a_space_is_refused_before_writing(
    layout: Layout, row: list[str], field: str, write: Callable[[Layout, list[list[str]]], bytes]
) -> None:
    """The reader strips the padding (ICD §4.3), so such a value would be read back shorter,
    or empty: the writer refuses it and names the field, as it refuses a value too long."""
    with pytest.raises(WriterError, match=f"^{field}: a text value ending in a space"):
        write(layout, [row])


def test_a_fixed_width_text_value_keeps_its_leading_and_inner_spaces() -> None:
    data = _by_rows(PERSORSP, [_persorsp_row(" BOX  1")])
    assert _by_columns(PERSORSP, [_persorsp_row(" BOX  1")]) == data

    table, rejected = read_all(FixedReader(data, PERSORSP))

    assert rejected == []
    assert table.column("box_no").to_pylist() == [" BOX  1"]


@pytest.mark.parametrize("encoding", ["GB18030", "UTF-8"])
def test_a_delimited_value_keeps_its_spaces_at_both_ends(encoding: str) -> None:
    row = make_apply_batch(size=1, seed=3).rows[0]
    row[APPLY.index("address")] = " 广州市 天河区  "
    out = io.BytesIO()
    write_delimited(out, APPLY, _header(APPLY, 1), [row], encoding)

    table, rejected = read_all(DelimitedReader(out.getvalue(), APPLY, encoding))

    assert rejected == []
    assert table.column("address").to_pylist() == [" 广州市 天河区  "]


# --------------------------------------------------------------------------- line ends, separators, BOM


@pytest.mark.parametrize("bad", ["a|b", "a\rb", "a\nb", "a\r\nb"])
def test_the_writer_refuses_a_value_holding_a_separator_or_a_line_break(bad: str) -> None:
    row = make_apply_batch(size=1, seed=3).rows[0]
    row[APPLY.index("address")] = bad
    with pytest.raises(WriterError):
        write_delimited(io.BytesIO(), APPLY, _header(APPLY, 1), [row])


@pytest.mark.parametrize("bad", ["a\rb", "a\nb"])
def test_the_fixed_width_writer_refuses_a_value_holding_a_line_break(bad: str) -> None:
    with pytest.raises(WriterError):
        _perso([_perso_row(name=bad)])


def test_the_writer_refuses_a_header_value_holding_a_separator() -> None:
    header = Header("APPLYRSP", "B001", "R440100", "B|1", "20261122", 0)
    with pytest.raises(WriterError):
        write_delimited(io.BytesIO(), APPLYRSP, header, [])


def test_the_delimited_writer_refuses_a_row_with_the_wrong_number_of_fields() -> None:
    row = make_apply_batch(size=1, seed=3).rows[0]
    with pytest.raises(WriterError):
        write_delimited(io.BytesIO(), APPLY, _header(APPLY, 1), [row[:-1]])


def test_the_fixed_width_writer_refuses_a_row_with_the_wrong_number_of_fields() -> None:
    with pytest.raises(WriterError):
        _perso([_perso_row()[:-1]])


def _ends_every_line_with_crlf(data: bytes) -> bool:
    return data.endswith(b"\r\n") and data.count(b"\n") == data.count(b"\r\n")


def test_every_written_line_ends_with_crlf() -> None:
    batch = make_apply_batch(size=4, seed=3)
    for encoding in ("GB18030", "UTF-8"):
        out = io.BytesIO()
        write_delimited(out, APPLY, _header(APPLY, 4), batch.rows, encoding)
        assert _ends_every_line_with_crlf(out.getvalue())
        assert len(out.getvalue().split(b"\r\n")) == 4 + 2 + 1
    perso = _perso([_perso_row(), _perso_row(card_no="B12345678")])
    assert _ends_every_line_with_crlf(perso)
    assert [len(rec) for rec in perso.split(b"\r\n")[:-1]] == [166] * 4


def _variants(data: bytes) -> dict[str, bytes]:
    lf = data.replace(b"\r\n", b"\n")
    return {"LF only": lf, "no final line end": data[:-2], "LF only, no final line end": lf[:-1]}


@pytest.mark.parametrize("variant", ["LF only", "no final line end", "LF only, no final line end"])
def test_reading_accepts_lf_line_ends_and_a_last_line_without_one(variant: str) -> None:
    batch = make_apply_batch(size=4, seed=3)
    out = io.BytesIO()
    write_delimited(out, APPLY, _header(APPLY, 4), batch.rows)
    expected = read_all(DelimitedReader(out.getvalue(), APPLY))

    table, rejected = read_all(DelimitedReader(_variants(out.getvalue())[variant], APPLY))

    assert rejected == expected[1] == []
    assert table.equals(expected[0])

    perso = _perso([_perso_row(), _perso_row(card_no="B12345678")])
    fixed, fixed_rejected = read_all(FixedReader(_variants(perso)[variant], PERSO))
    assert fixed_rejected == []
    assert fixed.column("card_no").to_pylist() == ["A12345678", "B12345678"]


@pytest.mark.parametrize("box_no", ["BOX|0001", "BOX\r0001", "BOX\t0001"])
def test_a_persorsp_box_number_that_cardrsp_could_not_repeat_is_rejected(box_no: str) -> None:
    made = ["A00000001", "6217881000000000016", "00", "", "440103D156000005" + "0" * 16]
    rows = [[*made, "3B6F00", "BOX-0001", "20261122"], [*made, "3B6F00", "BOX0001", "20261122"]]
    rows[1][0] = "A00000002"
    out = io.BytesIO()
    write_fixed(out, PERSORSP, _header(PERSORSP, 2), rows)
    data = out.getvalue().replace(b"BOX-0001", box_no.encode())  # as a factory might send it

    table, rejected = read_all(FixedReader(data, PERSORSP))

    assert [(r.line, r.field, r.code) for r in rejected] == [(2, "box_no", "E116")]
    assert table.column("box_no").to_pylist() == ["BOX0001"]


def test_a_fixed_width_header_count_of_other_digits_than_ascii_is_f04() -> None:
    out = io.BytesIO()
    write_fixed(out, PERSORSP, _header(PERSORSP, 0), [])
    head, rest = out.getvalue().split(b"\r\n", 1)
    sup = "²".encode("gb18030")  # a digit to str.isdigit(), not to int()
    head = head[:53] + b"0000000" + sup + head[61 : 143 - len(sup) + 1]
    assert len(head) == 143

    with pytest.raises(FileLevelError) as caught:
        FixedReader(head + b"\r\n" + rest, PERSORSP)

    assert caught.value.code == FileCode.F04


def test_a_utf8_byte_order_mark_is_stripped_from_a_utf8_file() -> None:
    batch = make_apply_batch(size=2, seed=3)
    out = io.BytesIO()
    write_delimited(out, APPLY, _header(APPLY, 2), batch.rows, "UTF-8")

    reader = DelimitedReader(b"\xef\xbb\xbf" + out.getvalue(), APPLY, "UTF-8")
    table, rejected = read_all(reader)

    assert reader.header.type == "APPLY"
    assert rejected == []
    assert _as_rows(table, APPLY) == batch.rows


class _Trickle(io.RawIOBase):
    """A stream that hands out at most ``step`` bytes per read, like a slow pipe."""

    def __init__(self, data: bytes, step: int) -> None:
        self._data = io.BytesIO(data)
        self._step = step

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        return self._data.read(self._step if size < 0 else min(size, self._step))


def test_a_stream_delivered_a_few_bytes_at_a_time_reads_like_the_whole_file() -> None:
    batch = make_apply_batch(size=6, seed=3)
    rows = [list(row) for row in batch.rows]
    rows[0][APPLY.index("name")] = f"张{JI}{JI}"
    out = io.BytesIO()
    write_delimited(out, APPLY, _header(APPLY, 6), rows)
    data = out.getvalue()[:-2]

    whole = read_all(DelimitedReader(data, APPLY))
    trickled = read_all(DelimitedReader(cast(BinaryIO, _Trickle(data, 3)), APPLY))

    assert trickled[1] == whole[1] == []
    assert trickled[0].equals(whole[0])
    assert _as_rows(trickled[0], APPLY) == rows


# --------------------------------------------------------------------------- framing


def _framed(
    type_: str,
    details: list[str],
    *,
    count: int | None = None,
    total: str = "0.00",
    trailer: str | None = None,
    header: str | None = None,
    encoding: str = "gb18030",
) -> bytes:
    n = len(details)
    head = (
        header or f"H|{type_}|B001|R440100|B1|20261122|{n if count is None else count}|{total}|1.0"
    )
    tail = [trailer] if trailer is not None else [f"T|{n}|{total}"]
    return ("\r\n".join([head, *details, *tail]) + "\r\n").encode(encoding)


RSP_LINES = ["D|1|A1|00||", "D|2|A2|01|E104|姓名无效", "D|3|A3|00||"]


def _file_code(data: bytes, layout: Layout = APPLYRSP, **options: Any) -> FileCode:
    with pytest.raises(FileLevelError) as caught:
        read_all(DelimitedReader(data, layout, **options))
    return caught.value.code


def test_a_well_framed_file_with_no_detail_lines_is_valid() -> None:
    reader = DelimitedReader(_framed("APPLYRSP", []), APPLYRSP)
    table, rejected = read_all(reader)
    assert table.num_rows == 0 and rejected == []
    assert reader.trailer is not None and reader.trailer.record_count == 0


@pytest.mark.parametrize(
    ("data", "control_count"),
    [
        pytest.param(
            _framed("APPLYRSP", RSP_LINES, count=4, trailer="T|3|0.00"), None, id="header"
        ),
        pytest.param(_framed("APPLYRSP", RSP_LINES, trailer="T|2|0.00"), None, id="trailer"),
        pytest.param(_framed("APPLYRSP", RSP_LINES, count=2, trailer="T|2|0.00"), None, id="lines"),
        pytest.param(_framed("APPLYRSP", RSP_LINES), 4, id="control file"),
    ],
)
def test_record_counts_that_differ_reject_the_file_f02(
    data: bytes, control_count: int | None
) -> None:
    assert _file_code(data, control_count=control_count) == FileCode.F02


def test_a_control_count_that_agrees_with_the_file_is_accepted() -> None:
    table, _ = read_all(DelimitedReader(_framed("APPLYRSP", RSP_LINES), APPLYRSP, control_count=3))
    assert table.num_rows == 3


def test_bytes_that_do_not_decode_reject_the_file_f03() -> None:
    good = _framed("APPLYRSP", RSP_LINES)
    assert _file_code(good.replace(b"A2", b"A\xff\xff2")) == FileCode.F03
    gb_in_utf8 = _framed("APPLYRSP", RSP_LINES, encoding="gb18030")
    assert _file_code(gb_in_utf8, encoding="UTF-8") == FileCode.F03
    with pytest.raises(FileLevelError) as caught:
        FixedReader(_perso([_perso_row()]).replace(b"A12345678", b"A\xff\xff345678"), PERSO)
    assert caught.value.code == FileCode.F03


@pytest.mark.parametrize(
    "header",
    [
        pytest.param("H|APPLYRSP|B001|R440100|B1|20261122|3|0.00", id="8 fields"),
        pytest.param("X|APPLYRSP|B001|R440100|B1|20261122|3|0.00|1.0", id="not H"),
        pytest.param("H|APPLYRSP|B001|R440100|B1|20261122|3|0.00|2.0", id="version"),
        pytest.param("H|APPLYRSP|B001|R440100|B1|20230230|3|0.00|1.0", id="no such date"),
        pytest.param("H|APPLYRSP|B001|R440100|B-1|20261122|3|0.00|1.0", id="batch_no"),
        pytest.param("H|APPLYRSP|B001|R440100|B1|20261122|three|0.00|1.0", id="count"),
        pytest.param("H|APPLYRSP|B001|R440100|B1|20261122|3|0.0|1.0", id="total"),
        pytest.param("H|APPLYRSP|1001|R440100|B1|20261122|3|0.00|1.0", id="sender"),
        pytest.param("H|STATUSRSP|B001|R440100|B1|20261122|3|0.00|1.0", id="wrong TYPE"),
    ],
)
def test_a_malformed_header_or_a_wrong_type_rejects_the_file_f04(header: str) -> None:
    assert _file_code(_framed("APPLYRSP", RSP_LINES, header=header)) == FileCode.F04


def test_an_empty_file_is_f04() -> None:
    assert _file_code(b"") == FileCode.F04


@pytest.mark.parametrize(
    "seqs",
    [
        pytest.param(["1", "2", "4"], id="missing"),
        pytest.param(["1", "1", "2"], id="repeated"),
        pytest.param(["2", "1", "3"], id="out of order"),
        pytest.param(["1", "02", "3"], id="leading zero"),
        pytest.param(["1", "", "3"], id="empty"),
        pytest.param(["0", "1", "2"], id="from zero"),
    ],
)
def test_a_detail_seq_that_is_not_1_to_n_rejects_the_file_f06(seqs: list[str]) -> None:
    details = [
        line.replace("D|1|", f"D|{s}|", 1)
        for line, s in zip(["D|1|A1|00||", "D|1|A2|00||", "D|1|A3|00||"], seqs, strict=True)
    ]
    assert _file_code(_framed("APPLYRSP", details)) == FileCode.F06


def test_a_seq_error_in_a_later_chunk_is_still_f06() -> None:
    details = [f"D|{n}|A{n}|00||" for n in (*range(1, 10), 11, 12)]
    assert _file_code(_framed("APPLYRSP", details), chunk_lines=4) == FileCode.F06


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(
            _framed("APPLYRSP", RSP_LINES)[: -len(b"T|3|0.00\r\n")], id="cut after a line"
        ),
        pytest.param(_framed("APPLYRSP", RSP_LINES)[: -len(b"\r\nT|3|0.00\r\n")], id="no line end"),
        pytest.param(_framed("APPLYRSP", [])[: -len(b"T|0|0.00\r\n")], id="header only"),
        pytest.param(_framed("APPLYRSP", RSP_LINES, trailer="T|3"), id="trailer malformed"),
    ],
)
def test_a_file_without_its_trailer_is_truncated_f08(data: bytes) -> None:
    assert _file_code(data) == FileCode.F08


DISB_LINES = [
    "D|1|P1|440106199003071234|王芳|A12345678|6217000010000000001|1234.50|110|202611|",
    "D|2|P2|440106199003071234|王芳|A12345679|6217000010000000002|0.05|110|202611|",
]


def test_a_disb_file_whose_totals_agree_is_read_with_the_total_in_fen() -> None:
    reader = DelimitedReader(_framed("DISB", DISB_LINES, total="1234.55"), DISB)
    table, rejected = read_all(reader)
    assert rejected == [] and table.num_rows == 2
    assert reader.header.total_fen == reader.line_total_fen == 123455


@pytest.mark.parametrize(
    ("type_", "lines", "total", "trailer"),
    [
        pytest.param("DISB", DISB_LINES, "1234.55", "T|2|1234.56", id="header vs trailer"),
        pytest.param("DISB", DISB_LINES, "1234.56", "T|2|1234.56", id="lines vs header"),
        pytest.param("DISB", DISB_LINES, "0.00", "T|2|0.00", id="lines vs zero header"),
        pytest.param(
            "APPLYRSP", RSP_LINES, "1.00", "T|3|1.00", id="non-zero total without amounts"
        ),
    ],
)
def test_totals_that_differ_reject_the_file_f09(
    type_: str, lines: list[str], total: str, trailer: str
) -> None:
    layout = LAYOUTS[type_]
    assert _file_code(_framed(type_, lines, total=total, trailer=trailer), layout) == FileCode.F09


def _perso_records(n: int = 3) -> list[bytes]:
    rows = [_perso_row(card_no=f"A1234567{i}") for i in range(n)]
    return _perso(rows).split(b"\r\n")[:-1]


def _fixed_code(records: list[bytes], layout: Layout = PERSO, **options: Any) -> FileCode:
    with pytest.raises(FileLevelError) as caught:
        read_all(FixedReader(b"\r\n".join(records) + b"\r\n", layout, **options))
    return caught.value.code


def test_fixed_width_framing_failures_get_their_f_codes() -> None:
    head, *details, tail = _perso_records()
    bad_count = head[:53] + b"00000004" + head[61:]
    assert _fixed_code([bad_count, *details, tail]) == FileCode.F02
    assert _fixed_code([head, *details, tail], control_count=2) == FileCode.F02
    assert _fixed_code([head[:-1], *details, tail]) == FileCode.F04
    assert _fixed_code([head, *details, tail], PERSORSP) == FileCode.F04
    assert _fixed_code([head, details[1], details[0], details[2], tail]) == FileCode.F06
    assert _fixed_code([head, *details]) == FileCode.F08
    assert _fixed_code([]) == FileCode.F04


# --------------------------------------------------------------------------- line rejections


def _apply_rows(n: int, seed: int = 3) -> list[list[str]]:
    return [list(row) for row in make_apply_batch(size=n, seed=seed).rows]


def _read_apply(rows: list[list[str]], **options: Any) -> tuple[pa.Table, list[Rejection]]:
    details = [f"D|{i}|" + "|".join(row) for i, row in enumerate(rows, start=1)]
    return read_all(DelimitedReader(_framed("APPLY", details), APPLY, **options))


def test_a_line_gets_one_rejection_at_its_first_failing_field_in_layout_order() -> None:
    rows = _apply_rows(3)
    rows[0][APPLY.index("mobile")] = "123"
    rows[0][APPLY.index("app_type")] = "09"
    rows[0][APPLY.index("name")] = JI * 8
    rows[1][APPLY.index("mobile")] = "123"

    table, rejected = _read_apply(rows)

    assert [(r.line, r.seq, r.field, r.code) for r in rejected] == [
        (2, 1, "app_type", "E117"),
        (3, 2, "mobile", "E114"),
    ]
    assert rejected[0].value == "09"
    assert table.column("_seq").to_pylist() == [3]


@pytest.mark.parametrize("change", ["drop the last field", "add a field"])
def test_a_line_with_the_wrong_number_of_fields_is_e116_for_the_whole_line(change: str) -> None:
    rows = _apply_rows(2)
    rows[1] = rows[1][:-1] if change == "drop the last field" else [*rows[1], "extra"]
    rows[1][APPLY.index("app_type")] = "09"

    table, rejected = _read_apply(rows)

    assert [(r.line, r.seq, r.field, r.code) for r in rejected] == [(3, 2, "*", "E116")]
    assert table.num_rows == 1


def test_amounts_are_integer_fen_never_floats() -> None:
    assert amount_to_fen("1234.50") == 123450
    assert amount_to_fen("0.29") == 29  # 0.29 * 100 is 28.999… as a float
    assert amount_to_fen("9999999999.99") == 999_999_999_999
    assert amount_to_fen("-12.05") == -1205
    assert isinstance(amount_to_fen("1.10"), int)
    assert fen_to_amount(123450) == "1234.50"
    assert fen_to_amount(5) == "0.05"
    assert fen_to_amount(0) == "0.00"
    assert fen_to_amount(-1205) == "-12.05"
    for bad in ("1234.5", "1,234.50", "+1.00", "1e3", "12345678901.00", " 1.00", ""):
        with pytest.raises(ValueError):
            amount_to_fen(bad)


def test_a_zero_amount_is_refused_in_a_payment_but_allowed_in_a_response() -> None:
    zero = DISB_LINES[1].replace("|0.05|", "|0.00|")
    _, rejected = read_all(
        DelimitedReader(_framed("DISB", [DISB_LINES[0], zero], total="1234.50"), DISB)
    )
    assert [(r.seq, r.field, r.code) for r in rejected] == [(2, "amount", "208")]

    rsp = ["D|1|P1|103|0.00|||103|账户不存在"]
    table, rejected = read_all(DelimitedReader(_framed("DISBRSP", rsp), DISBRSP))
    assert rejected == [] and table.column("credited_amount").to_pylist() == ["0.00"]


@pytest.mark.parametrize(
    ("field", "value", "code"),
    [
        ("id_valid_to", "20230230", "E115"),
        ("birth_date", "20230230", "E102"),
        ("birth_date", "20230229", "E102"),
        ("birth_date", "19001301", "E102"),
        ("birth_date", "1990037", "E102"),
    ],
)
def test_a_date_that_is_not_on_the_calendar_is_rejected(field: str, value: str, code: str) -> None:
    rows = _apply_rows(1)
    rows[0][APPLY.index(field)] = value

    _, rejected = _read_apply(rows)

    assert [(r.field, r.code) for r in rejected] == [(field, code)]


def test_a_leap_day_is_a_valid_date() -> None:
    rows = _apply_rows(1)
    rows[0][APPLY.index("id_valid_to")] = "20280229"
    _, rejected = _read_apply(rows)
    assert rejected == []


def test_a_date_in_year_zero_is_rejected() -> None:
    rows = _apply_rows(1)
    rows[0][APPLY.index("id_valid_to")] = "00000101"
    _, rejected = _read_apply(rows)
    assert [(r.field, r.code) for r in rejected] == [("id_valid_to", "E115")]


def test_a_total_the_reader_cannot_read_is_never_written() -> None:
    rest = ("9999999999.99", "110", "202611", "")
    rows = [
        [pay_no, "440106199003071234", "王芳", "A12345678", "6217000010000000001", *rest]
        for pay_no in ("P1", "P2")
    ]
    out = io.BytesIO()
    try:
        write_delimited(out, DISB, _header(DISB, 2, 2 * MAX_FEN), rows)
    except WriterError:
        return
    reader = DelimitedReader(out.getvalue(), DISB)
    read_all(reader)
    assert reader.header.total_fen == 2 * MAX_FEN


# --------------------------------------------------------------------------- chunking


def test_reading_in_chunks_of_seven_lines_gives_the_same_rows_and_rejections() -> None:
    share = {code: 0.05 for code in ("E104", "E105", "E109", "E114", "E115", "E116", "E117")}
    batch = make_apply_batch(size=40, seed=5, bad_share=share)

    default = read_all(DelimitedReader(batch.data, APPLY))
    chunked = read_all(DelimitedReader(batch.data, APPLY, chunk_lines=7))

    assert len(default[1]) >= 10
    assert {r.code for r in default[1]} == {"E104", "E105", "E109", "E114", "E115", "E116", "E117"}
    assert chunked[1] == default[1]
    assert chunked[0].equals(default[0])
    assert len(list(DelimitedReader(batch.data, APPLY, chunk_lines=7).chunks())) == 6


def test_a_fixed_width_file_read_in_chunks_of_seven_gives_the_same_rows_and_rejections() -> None:
    rows = [_perso_row(card_no=f"A{i:08d}") for i in range(20)]
    rows[9][PERSO.index("card_no")] = "a00000009"
    rows[15][PERSO.index("pan")] = "12"
    data = _perso(rows)

    default = read_all(FixedReader(data, PERSO))
    chunked = read_all(FixedReader(data, PERSO, chunk_lines=7))

    assert [(r.line, r.field) for r in default[1]] == [(11, "card_no"), (17, "pan")]
    assert chunked[1] == default[1]
    assert chunked[0].equals(default[0])


# --------------------------------------------------------------------------- vectorised checks


def _dates_by_round_trip(values: list[str], fmt: str, width: int) -> list[bool]:
    """The reference: a value is a real date when Arrow parses it and prints it back
    unchanged (Arrow rolls 20230230 over to 20230302), and its year is not 0000."""
    col = pa.array(values, pa.string())
    shaped = pc.match_substring_regex(col, f"^[0-9]{{{width}}}$")
    parsed = pc.strptime(col, format=fmt, unit="s", error_is_null=True)
    same = pc.fill_null(pc.equal(pc.strftime(parsed, format=fmt), col), False)
    year_zero = pc.starts_with(col, "0000")
    return pc.and_(pc.and_(shaped, same), pc.invert(year_zero)).to_pylist()


def _digits(width: int) -> st.SearchStrategy[str]:
    """Digit strings near and beyond the edges of every date part, and a few non-digits."""
    parts = [
        st.sampled_from([0, 1, 4, 100, 1600, 1900, 2000, 2024, 2100, 2400, 9999]),
        st.integers(0, 13),
        st.integers(0, 32),
    ]
    if width == 14:
        parts += [st.integers(0, 25), st.integers(0, 61), st.integers(0, 61)]
    shaped = st.tuples(*parts).map(lambda p: f"{p[0]:04d}" + "".join(f"{v:02d}" for v in p[1:]))
    return st.one_of(shaped, st.text("0123456789 -x", max_size=16))


@pytest.mark.parametrize(("width", "fmt"), [(8, "%Y%m%d"), (14, "%Y%m%d%H%M%S")])
@settings(max_examples=examples(60), suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_dates_are_checked_as_arrow_parses_and_prints_them_back(
    width: int, fmt: str, data: st.DataObject
) -> None:
    values = data.draw(st.lists(_digits(width), min_size=1, max_size=200))

    ours = _valid_dates(pa.array(values, pa.string()), width).tolist()

    assert ours == _dates_by_round_trip(values, fmt, width)


@settings(max_examples=examples(80))
@given(
    st.lists(
        st.one_of(st.text(max_size=12), st.text(TEXT_ALPHABET + "é€ŉ丂〇ㄅ", max_size=12)),
        max_size=60,
    ),
    st.integers(0, 5),
)
def test_gb18030_byte_lengths_of_a_column_are_those_of_each_value_encoded(
    values: list[str], start: int
) -> None:
    col = pa.array(["skipped"] * start + values, pa.string()).slice(start)

    assert _byte_lengths(col).tolist() == [gb18030_length(v) for v in values]


@settings(deadline=None)  # the first call loads Arrow's compute kernels
@given(st.lists(st.integers(0, MAX_FEN), max_size=50))
def test_a_column_of_fen_reads_as_each_amount_does(fens: list[int]) -> None:
    assert amount_column(pa.array(fens, pa.int64())).to_pylist() == [fen_to_amount(f) for f in fens]


_RSP_TEXT = st.text(
    alphabet=st.sampled_from([*(string.ascii_letters + string.digits + " .-"), "张", "𠮷", "é"]),
    max_size=12,
)


@settings(deadline=None, max_examples=60)
@given(
    st.lists(
        st.tuples(
            st.from_regex(r"[0-9A-Za-z]{1,30}", fullmatch=True),
            st.sampled_from(["0000", "103", "106", "140"]),
            st.integers(0, 99_999_999).map(fen_to_amount),
            st.from_regex(r"[0-9]{14}", fullmatch=True),
            _RSP_TEXT,
            st.sampled_from(["", "103"]),
            _RSP_TEXT,
        ),
        max_size=40,
    ),
    st.integers(1, 7),
    st.sampled_from(["GB18030", "UTF-8"]),
)
def test_columns_are_written_as_the_same_lines_are(
    rows: list[tuple[str, ...]], block: int, encoding: str
) -> None:
    """A response written a table at a time is byte for byte the file written line by
    line, whatever the blocks."""
    total = sum(amount_to_fen(r[2]) for r in rows)
    header = Header("DISBRSP", "H440100", "R440100", "P20261207001", "20261207", len(rows), total)
    names = DISBRSP.names
    tables = [
        pa.table(
            {
                n: pa.array([r[k] for r in rows[i : i + block]], pa.string())
                for k, n in enumerate(names)
            }
        )
        for i in range(0, len(rows), block)
    ]
    by_lines, by_tables = io.BytesIO(), io.BytesIO()
    assert write_delimited(by_lines, DISBRSP, header, rows, encoding) == len(rows)
    assert write_delimited_tables(by_tables, DISBRSP, header, tables, encoding) == len(rows)
    assert by_tables.getvalue() == by_lines.getvalue()


@pytest.mark.parametrize(
    ("field", "value", "why"),
    [
        ("bank_ref", "A|B", "bank_ref: a value with |, CR or LF cannot be written"),
        ("reason_text", "a\r\nb", "reason_text: a value with |, CR or LF cannot be written"),
        ("reason_text", "张" * 101, "reason_text: value longer than 200 bytes"),
        ("credited_amount", "12.5", "credited_amount: not an amount"),
    ],
)
def test_columns_a_line_could_not_carry_are_refused(field: str, value: str, why: str) -> None:
    row = {
        "pay_no": "P1",
        "result": "0000",
        "credited_amount": "1.00",
        "posted_time": "20261207100000",
        "bank_ref": "R1",
        "reason_code": "",
        "reason_text": "",
    }
    row[field] = value
    header = Header("DISBRSP", "H440100", "R440100", "P20261207001", "20261207", 1, 100)
    table = pa.table({n: pa.array([row[n]], pa.string()) for n in DISBRSP.names})
    with pytest.raises(WriterError, match=re.escape(why)):
        write_delimited_tables(io.BytesIO(), DISBRSP, header, [table], "GB18030")


BLOCK = "01" + "5a" * 12 + "c3" * 6 + "7e" * 16  # the shape of a PIN block (ICD §5.9)


def test_a_kept_channel_file_holds_stars_where_its_pin_blocks_were_and_every_other_byte() -> None:
    rows = [
        ["Q1", "A1", "6217881000000012", "C00000001", "11010519491231002X", "张" + JI, BLOCK,
         "20261206100000", "440101001", "T0001"],
        ["Q2", "L1", "6217881000000020", "C00000002", "", "", "", "20261206100000", "440101001",
         "T0001"],
        ["Q3", "P1", "6217881000000038", "C00000003", "11010519491231002X", "王", "not-hex!",
         "20261206100000", "440101001", "T0001"],
    ]  # fmt: skip
    out = io.BytesIO()
    write_delimited(out, CHANNEL, Header("CHANNEL", "C01", "B001", "C1", "20261206", 3), rows)
    # a line of another shape (the reader refuses it whole) with a block where a name was,
    # and bytes that are no GB18030 at all
    odd = b"D|4|Q4|" + BLOCK.encode() + b"|\x81\xff|x\r\n"
    received = out.getvalue().replace(b"\r\nT|", b"\r\n" + odd + b"T|")

    kept = b"".join(masked_lines(io.BytesIO(received), CHANNEL, "GB18030"))

    assert BLOCK.encode() not in kept and b"not-hex!" not in kept
    assert len(kept) == len(received)
    assert kept == (
        received.replace(BLOCK.encode(), b"*" * len(BLOCK)).replace(b"not-hex!", b"********")
    )
    assert kept.count(b"*" * len(BLOCK)) == 2


def test_a_channel_lines_content_digest_keeps_its_blocks_key_id_and_nonce_not_its_ciphertext() -> (
    None
):
    """A request's content digest (ICD §4.2 repeats) tells a fresh PIN block (a fresh
    nonce) from the one sent before, and holds nothing of the ciphertext to test PINs
    against: the same nonce with another ciphertext gives the same digest."""
    from servicing.lines import read_lines

    other_pin = BLOCK[:26] + "d4" * 6 + "8f" * 16  # the same key id and nonce
    fresh = "01" + "6b" * 12 + BLOCK[26:]  # another nonce, the same ciphertext
    rows = [
        ["Q1", "A1", "6217881000000012", "C00000001", "11010519491231002X", "张", block,
         "20261206100000", "440101001", "T0001"]
        for block in (BLOCK, other_pin, fresh)
    ]  # fmt: skip
    out = io.BytesIO()
    write_delimited(out, CHANNEL, Header("CHANNEL", "C01", "B001", "C1", "20261206", 3), rows)
    lines = read_lines(DelimitedReader(out.getvalue(), CHANNEL, "GB18030"))
    first, same_nonce, new_nonce = (line.content_sha for line in lines)
    assert first == same_nonce != new_nonce
