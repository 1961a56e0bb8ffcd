"""One codec for every layout of :mod:`schemas.layouts`: delimited and fixed-width files.

Reading streams a file in chunks of lines (memory stays flat however large the file),
checks the framing of ICD §4 (raising :class:`FileLevelError` with its F-code) and
validates every field of every detail line with vectorised Arrow kernels. Each chunk
carries, per line, the first failing field in layout order and its reason code
(ICD §4.2); services add their own cross-field and database rules to the same chunk
with :meth:`Chunk.reject`, which keeps the earliest field.

Writing checks what the receiver's parser relies on: no ``|``, CR or LF inside a value,
byte widths in GB18030, no fixed-width text value ending in a space (the reader strips
the padding), CRLF line ends, header and trailer agreeing with the lines.
"""

from __future__ import annotations

import io
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import BinaryIO

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from schemas.codes import FileCode
from schemas.files import FileLevelError
from schemas.layouts import Field, Layout

ENCODINGS = {"GB18030": "gb18030", "UTF-8": "utf-8"}
#: fail_index of a line whose number of fields is wrong: it precedes every field
WHOLE_LINE = -1
#: fail_index of a line with no failure
NO_FAIL = np.iinfo(np.int16).max
WHOLE_LINE_FIELD = "*"

_BATCH_NO = re.compile(r"[0-9A-Za-z]{1,20}")
_AMOUNT = re.compile(r"[0-9]{1,10}\.[0-9]{2}")
_COUNT = re.compile(r"[0-9]{1,10}")
_DATE = re.compile(r"[0-9]{8}")
_BLOCK = 4 << 20


class WriterError(ValueError):
    """A value or a record cannot be written as the layout requires (refused before writing)."""


def fen_to_amount(fen: int) -> str:
    """Integer fen to the ICD's ``1234.50`` (ICD §4.1)."""
    sign = "-" if fen < 0 else ""
    fen = abs(fen)
    return f"{sign}{fen // 100}.{fen % 100:02d}"


#: an amount as the ICD writes it (``1234.50``; a sign where a value may be negative)
_AMOUNT_TEXT = r"-?[0-9]{1,10}\.[0-9]{2}"


def amount_to_fen(text: str) -> int:
    """``1234.50`` to integer fen, never through a float."""
    if not re.fullmatch(_AMOUNT_TEXT, text):
        raise ValueError("not an amount")
    negative = text.startswith("-")
    yuan, cents = text.lstrip("-").split(".")
    fen = int(yuan) * 100 + int(cents)
    return -fen if negative else fen


def gb18030_length(text: str) -> int:
    return len(text.encode("gb18030"))


def _valid_date(text: str) -> bool:
    if not _DATE.fullmatch(text):
        return False
    y, m, d = int(text[:4]), int(text[4:6]), int(text[6:])
    if not 1 <= m <= 12 or d < 1 or y < 1:
        return False
    days = [
        31,
        29 if (y % 4 == 0 and (y % 100 != 0 or y % 400 == 0)) else 28,
        31,
        30,
        31,
        30,
        31,
        31,
        30,
        31,
        30,
        31,
    ]
    return d <= days[m - 1]


@dataclass(frozen=True)
class Header:
    """Line 1 of a file (ICD §4.1, §4.3)."""

    type: str
    sender: str
    receiver: str
    batch_no: str
    business_date: str
    record_count: int
    total_fen: int = 0
    version: str = "1.0"


@dataclass(frozen=True)
class Trailer:
    record_count: int
    total_fen: int = 0


@dataclass(frozen=True)
class Rejection:
    """One rejected line: physical line number (header = 1), SEQ, field, value, code."""

    line: int
    seq: int | None
    field: str
    value: str
    code: str


@dataclass
class Chunk:
    """A run of detail lines, their fields as strings, and each line's first failure."""

    layout: Layout
    table: pa.Table
    fail_index: npt.NDArray[np.int16]
    fail_code: npt.NDArray[np.object_]

    @property
    def lines(self) -> npt.NDArray[np.int64]:
        return np.asarray(self.table.column("_line").to_numpy(), dtype=np.int64)

    @property
    def seqs(self) -> npt.NDArray[np.int64]:
        return np.asarray(self.table.column("_seq").to_numpy(), dtype=np.int64)

    def column(self, name: str) -> pa.ChunkedArray:
        return self.table.column(name)

    def strings(self, name: str) -> npt.NDArray[np.object_]:
        return np.asarray(self.table.column(name).to_numpy(zero_copy_only=False), dtype=object)

    def reject(self, mask: npt.NDArray[np.bool_], field_name: str, code: str) -> None:
        """Reject lines in ``mask`` at ``field_name`` unless an earlier field already failed."""
        index = WHOLE_LINE if field_name == WHOLE_LINE_FIELD else self.layout.index(field_name)
        better = np.asarray(mask, dtype=bool) & (self.fail_index > index)
        self.fail_index[better] = index
        self.fail_code[better] = code

    @property
    def ok(self) -> npt.NDArray[np.bool_]:
        return np.asarray(self.fail_index == NO_FAIL, dtype=bool)

    def field_names(self) -> list[str]:
        names = self.layout.names
        return [
            "" if i == NO_FAIL else WHOLE_LINE_FIELD if i == WHOLE_LINE else names[i]
            for i in self.fail_index.tolist()
        ]

    def rejections(self) -> Iterator[Rejection]:
        names = self.layout.names
        lines = self.lines
        seqs = self.seqs
        for pos in np.flatnonzero(~self.ok).tolist():
            i = int(self.fail_index[pos])
            name = WHOLE_LINE_FIELD if i == WHOLE_LINE else names[i]
            value = "" if i == WHOLE_LINE else str(self.table.column(name)[pos].as_py())
            seq = int(seqs[pos])
            yield Rejection(
                int(lines[pos]), seq if seq > 0 else None, name, value, str(self.fail_code[pos])
            )

    def __len__(self) -> int:
        return int(self.table.num_rows)


# --------------------------------------------------------------------------- validation


def _np(arr: pa.Array | pa.ChunkedArray) -> npt.NDArray[np.bool_]:
    return np.asarray(arr.to_numpy(zero_copy_only=False), dtype=bool)


@lru_cache(maxsize=1)
def _gb18030_widths() -> npt.NDArray[np.uint8]:
    """GB18030 byte length of every code point of the Basic Multilingual Plane (0 for the
    surrogates, which no valid string holds): 1 for ASCII, 2 or 4 otherwise."""
    return np.array(
        [0 if 0xD800 <= cp <= 0xDFFF else len(chr(cp).encode("gb18030")) for cp in range(0x10000)],
        dtype=np.uint8,
    )


def _byte_lengths(col: pa.Array | pa.ChunkedArray) -> npt.NDArray[np.int64]:
    """GB18030 byte length of every value (null: 0), from the UTF-8 bytes of the whole
    column at once. ASCII and 4-byte UTF-8 characters keep their length; each 2- and
    3-byte UTF-8 character takes the GB18030 width of its code point (2 or 4)."""
    arr = col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col
    arr = arr.cast(pa.string()) if arr.type != pa.string() else arr
    n = len(arr)
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    bounds = np.frombuffer(arr.buffers()[1], dtype=np.int32, count=n + 1, offset=arr.offset * 4)
    start = int(bounds[0])
    offsets = bounds.astype(np.int64) - start
    lengths = np.diff(offsets)
    data = arr.buffers()[2]
    if data is None or offsets[-1] == 0:
        return lengths
    raw = np.frombuffer(data, dtype=np.uint8)[start : start + int(offsets[-1])]
    lead2 = np.flatnonzero((raw & 0xE0) == 0xC0)
    lead3 = np.flatnonzero((raw & 0xF0) == 0xE0)
    if lead2.size or lead3.size:
        cp2 = _bits(raw, lead2, 0x1F) << 6 | _bits(raw, lead2 + 1, 0x3F)
        cp3 = (
            _bits(raw, lead3, 0x0F) << 12
            | _bits(raw, lead3 + 1, 0x3F) << 6
            | _bits(raw, lead3 + 2, 0x3F)
        )
        table = _gb18030_widths().astype(np.int64)
        at = np.concatenate([lead2, lead3])
        extra = np.concatenate([table[cp2] - 2, table[cp3] - 3])
        value = np.searchsorted(offsets, at, side="right") - 1
        lengths += np.bincount(value, weights=extra, minlength=n).astype(np.int64)
    if arr.null_count:
        lengths[np.asarray(arr.is_null().to_numpy(zero_copy_only=False), dtype=bool)] = 0
    return np.asarray(lengths, dtype=np.int64)


def _bits(raw: npt.NDArray[np.uint8], at: npt.NDArray[np.intp], mask: int) -> npt.NDArray[np.int64]:
    return np.asarray(raw[at], dtype=np.int64) & mask


_DAYS_IN_MONTH = np.array([31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31], dtype=np.int64)


def valid_date_digits(digits: npt.NDArray[np.integer]) -> npt.NDArray[np.bool_]:
    """Rows of 8 (``YYYYMMDD``) or 14 (``YYYYMMDDHHMMSS``) digit values that name a real
    date (and time): month 1–12, a day the month has in that year (Gregorian leap years),
    year 0001 or later, hours 0–23, minutes and seconds 0–59."""
    d = np.asarray(digits, dtype=np.int64)
    year = d[:, 0] * 1000 + d[:, 1] * 100 + d[:, 2] * 10 + d[:, 3]
    month = d[:, 4] * 10 + d[:, 5]
    day = d[:, 6] * 10 + d[:, 7]
    leap = (year % 4 == 0) & ((year % 100 != 0) | (year % 400 == 0))
    known = (month >= 1) & (month <= 12)
    last = _DAYS_IN_MONTH[np.where(known, month, 1) - 1] + (leap & (month == 2))
    ok = known & (year >= 1) & (day >= 1) & (day <= last)
    if d.shape[1] == 14:
        hour, minute, second = (d[:, i] * 10 + d[:, i + 1] for i in (8, 10, 12))
        ok &= (hour <= 23) & (minute <= 59) & (second <= 59)
    return np.asarray(ok, dtype=bool)


def _valid_dates(col: pa.Array, width: int) -> npt.NDArray[np.bool_]:
    """Values of exactly ``width`` digits (8: a date, 14: a date and time) that are real."""
    ok = np.zeros(len(col), dtype=bool)
    shaped = np.flatnonzero(_np(pc.match_substring_regex(col, f"^[0-9]{{{width}}}$")))
    if shaped.size:
        fixed = col.take(pa.array(shaped)).cast(pa.binary(width))
        raw = np.frombuffer(fixed.buffers()[1], dtype=np.uint8)
        start = fixed.offset * width
        digits = raw[start : start + shaped.size * width].reshape(-1, width) - ord("0")
        ok[shaped] = valid_date_digits(digits)
    return ok


def field_failures(f: Field, col: pa.Array, columns: dict[str, pa.Array]) -> npt.NDArray[np.bool_]:
    """Lines whose value of ``f`` breaks its presence, type, length or code list (ICD §4.2)."""
    empty = _np(pc.equal(pc.utf8_length(col), 0))
    if f.presence == "M":
        fail = empty.copy()
    elif f.presence == "O" or f.cond is None:
        fail = np.zeros(len(col), dtype=bool)
    else:
        ref = columns[f.cond.field]
        required = _np(pc.is_in(ref, value_set=pa.array(f.cond.values)))
        if f.cond.negate:
            required = ~required
        fail = required & empty
        if f.cond.otherwise == "forbidden":
            fail |= ~required & ~empty
    check = ~empty & ~fail
    if not check.any():
        return fail
    bad = np.zeros(len(col), dtype=bool)
    if f.values:
        bad |= ~_np(pc.is_in(col, value_set=pa.array(f.values)))
    if f.pattern:
        bad |= ~_np(pc.match_substring_regex(col, f"^(?:{f.pattern})$"))
    if f.kind == "date":
        bad |= ~_valid_dates(col, 8)
    elif f.kind == "time":
        bad |= ~_valid_dates(col, 14)
    elif f.kind == "month":
        bad |= ~_np(pc.match_substring_regex(col, "^[0-9]{4}(0[1-9]|1[0-2])$"))
    elif f.kind == "count":
        bad |= ~_np(pc.match_substring_regex(col, "^[0-9]{1,10}$"))
    elif f.kind in ("amount", "signed_amount"):
        sign = "-?" if f.kind == "signed_amount" else ""
        shaped = _np(pc.match_substring_regex(col, f"^{sign}[0-9]{{1,10}}\\.[0-9]{{2}}$"))
        bad |= ~shaped
        if f.min_fen:
            fen = np.zeros(len(col), dtype=np.int64)
            fen[shaped] = fen_column(col.filter(pa.array(shaped)))
            bad |= shaped & (fen < f.min_fen)
    limit = f.byte_limit
    if limit is not None:
        bad |= _byte_lengths(col) > limit
    # a CR inside a value (LF and CRLF end a line): no file can carry it on (ICD §4.1)
    bad |= _np(pc.match_substring(col, "\r"))
    return fail | (check & bad)


def amount_column(fen: pa.Array | pa.ChunkedArray) -> pa.Array:
    """Integer fen (not negative) to the ICD's ``1234.50``, vectorised: the inverse of
    :func:`fen_column` and :func:`fen_to_amount` for a column."""
    whole = pc.divide(fen, 100)
    cents = pc.subtract(fen, pc.multiply(whole, 100))
    joined = pc.binary_join_element_wise(
        pc.cast(whole, pa.string()), pc.utf8_lpad(pc.cast(cents, pa.string()), 2, "0"), "."
    )
    return joined.combine_chunks() if isinstance(joined, pa.ChunkedArray) else joined


def fen_column(col: pa.Array) -> npt.NDArray[np.int64]:
    """Amount strings (already checked) to integer fen, vectorised, no floats."""
    digits = pc.replace_substring(col, ".", "")
    return np.asarray(pc.cast(digits, pa.int64()).to_numpy(zero_copy_only=False), dtype=np.int64)


def amount_fen(col: pa.Array | pa.ChunkedArray) -> npt.NDArray[np.int64]:
    """Each value's integer fen where it is an amount (``1234.50``, ICD §4.1), 0 where it
    is not one: vectorised, no floats."""
    if isinstance(col, pa.ChunkedArray):
        col = col.combine_chunks()
    shaped = _np(pc.match_substring_regex(col, r"^[0-9]{1,10}\.[0-9]{2}$"))
    fen = np.zeros(len(col), dtype=np.int64)
    if shaped.any():
        fen[shaped] = fen_column(col.filter(pa.array(shaped)))
    return fen


def validate_columns(
    layout: Layout, columns: dict[str, pa.Array], n: int
) -> tuple[npt.NDArray[np.int16], npt.NDArray[np.object_]]:
    """First failing field (layout order) and its code, for every line."""
    fail_index = np.full(n, NO_FAIL, dtype=np.int16)
    fail_code = np.full(n, None, dtype=object)
    for i in range(len(layout.fields) - 1, -1, -1):
        f = layout.fields[i]
        bad = field_failures(f, columns[f.name], columns)
        fail_index[bad] = i
        fail_code[bad] = f.code
    return fail_index, fail_code


# --------------------------------------------------------------------------- delimited


def _parse_header(line: str) -> Header:
    parts = line.split("|")
    if len(parts) != 9 or parts[0] != "H":
        raise FileLevelError(FileCode.F04, "header must have 9 fields and start with H")
    _, type_, sender, receiver, batch_no, date, count, total, version = parts
    if not (
        re.fullmatch(r"[A-Z]{3,12}", type_)
        and re.fullmatch(r"[A-Z][0-9]{2,6}", sender)
        and re.fullmatch(r"[A-Z][0-9]{2,6}", receiver)
        and _BATCH_NO.fullmatch(batch_no)
        and _valid_date(date)
        and _COUNT.fullmatch(count)
        and _AMOUNT.fullmatch(total)
        and version == "1.0"
    ):
        raise FileLevelError(FileCode.F04, "header field malformed")
    return Header(
        type_, sender, receiver, batch_no, date, int(count), amount_to_fen(total), version
    )


def _parse_trailer(line: str) -> Trailer:
    parts = line.split("|")
    if len(parts) != 3 or not _COUNT.fullmatch(parts[1]) or not _AMOUNT.fullmatch(parts[2]):
        raise FileLevelError(FileCode.F08, "trailer malformed")
    return Trailer(int(parts[1]), amount_to_fen(parts[2]))


def _decoded_lines(stream: BinaryIO, encoding: str) -> Iterator[list[str]]:
    """Blocks of decoded lines; a block is cut only after LF, which no GB18030 or UTF-8
    multi-byte sequence contains. Undecodable bytes are F03."""
    codec = ENCODINGS[encoding]
    rest = b""
    first = True
    while True:
        block = stream.read(_BLOCK)
        data = rest + block
        if not block:
            cut = len(data)
        else:
            cut = data.rfind(b"\n") + 1
            if cut == 0:
                rest = data
                continue
        head, rest = data[:cut], data[cut:]
        if first:
            if codec == "utf-8" and head.startswith(b"\xef\xbb\xbf"):
                head = head[3:]
            # The header line comes alone: bytes that do not decode further on are F03
            # when the lines are read, after the header's own checks (decision 1).
            end = head.find(b"\n") + 1 or len(head)
            yield _decoded(head[:end], codec, encoding)
            head = head[end:]
            first = False
        yield _decoded(head, codec, encoding)
        if not block:
            return


def _decoded(data: bytes, codec: str, encoding: str) -> list[str]:
    """The lines of ``data`` (whole lines), without their line ends."""
    try:
        text = data.decode(codec)
    except UnicodeDecodeError as exc:
        raise FileLevelError(FileCode.F03, f"bytes not valid {encoding}") from exc
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return [ln[:-1] if ln.endswith("\r") else ln for ln in lines]


class DelimitedReader:
    """Streams a delimited file (ICD §4.1): header, chunks of validated lines, trailer.

    Framing failures raise :class:`FileLevelError`: F03 (decoding), F04 (header), F06
    (SEQ), F08 (trailer), and after the last chunk F02 (counts) and F09 (totals).
    """

    def __init__(
        self,
        stream: BinaryIO | bytes,
        layout: Layout,
        encoding: str = "GB18030",
        chunk_lines: int = 50_000,
        control_count: int | None = None,
    ) -> None:
        self.stream: BinaryIO = io.BytesIO(stream) if isinstance(stream, bytes) else stream
        self.layout = layout
        self.encoding = encoding
        self.chunk_lines = chunk_lines
        self.control_count = control_count
        self.trailer: Trailer | None = None
        self.detail_count = 0
        self.line_total_fen = 0
        self._blocks = _decoded_lines(self.stream, encoding)
        self._pending: list[str] = []
        self._exhausted = False
        self.header = self._read_header()

    def _fill(self, want: int) -> None:
        while len(self._pending) < want and not self._exhausted:
            block = next(self._blocks, None)
            if block is None:
                self._exhausted = True
            else:
                self._pending.extend(block)

    def _read_header(self) -> Header:
        self._fill(1)
        if not self._pending:
            raise FileLevelError(FileCode.F04, "file is empty")
        header = _parse_header(self._pending.pop(0))
        if header.type != self.layout.type:
            raise FileLevelError(FileCode.F04, f"header TYPE is not {self.layout.type}")
        return header

    def chunks(self) -> Iterator[Chunk]:
        line_no = 2
        while True:
            # keep one line back: the last line of the file is the trailer
            self._fill(self.chunk_lines + 1)
            if self._exhausted and len(self._pending) <= 1:
                break
            take = min(self.chunk_lines, len(self._pending) - 1)
            lines, self._pending = self._pending[:take], self._pending[take:]
            chunk = self._chunk(lines, line_no)
            line_no += take
            yield chunk
        if not self._pending or not self._pending[0].startswith("T|"):
            raise FileLevelError(FileCode.F08, "last line is not a trailer")
        self.trailer = _parse_trailer(self._pending[0])
        self._check_totals()

    def _check_totals(self) -> None:
        assert self.trailer is not None
        counts = {self.header.record_count, self.trailer.record_count, self.detail_count}
        if self.control_count is not None:
            counts.add(self.control_count)
        if len(counts) != 1:
            raise FileLevelError(FileCode.F02, "record counts differ")
        if self.header.total_fen != self.trailer.total_fen:
            raise FileLevelError(FileCode.F09, "header and trailer totals differ")
        if self.header.total_fen != self.line_total_fen:
            raise FileLevelError(FileCode.F09, "total amount differs from the sum of the lines")

    def _chunk(self, lines: list[str], first_line: int) -> Chunk:
        layout = self.layout
        n_fields = len(layout.fields) + 2
        n = len(lines)
        arr = pa.array(lines, pa.string())
        parts = pc.split_pattern(arr, "|")
        lengths = pc.list_value_length(parts).to_numpy()
        fixed = pc.list_slice(parts, 0, n_fields, return_fixed_size_list=True)
        record_type = pc.list_element(fixed, 0)
        seq_text = pc.fill_null(pc.list_element(fixed, 1), "")
        if not pc.all(pc.equal(record_type, "D")).as_py():
            raise FileLevelError(
                FileCode.F06, "a line between header and trailer is not a detail line"
            )
        if not pc.all(pc.match_substring_regex(seq_text, "^[1-9][0-9]{0,9}$")).as_py():
            raise FileLevelError(FileCode.F06, "detail SEQ missing or malformed")
        seqs = pc.cast(seq_text, pa.int64()).to_numpy()
        expected = np.arange(self.detail_count + 1, self.detail_count + 1 + n, dtype=np.int64)
        if not np.array_equal(seqs, expected):
            raise FileLevelError(FileCode.F06, "detail SEQ not contiguous from 1")
        self.detail_count += n

        good = lengths == n_fields
        columns: dict[str, pa.Array] = {}
        for i, f in enumerate(layout.fields):
            # a line with the wrong number of fields keeps what it has (its app_no is
            # echoed in the response); it is rejected E116 as a whole below
            columns[f.name] = pc.fill_null(pc.list_element(fixed, i + 2), "")
        fail_index, fail_code = validate_columns(layout, columns, n)
        fail_index[~good] = WHOLE_LINE
        fail_code[~good] = "E116"

        if layout.amount_field:
            self.line_total_fen += int(amount_fen(columns[layout.amount_field]).sum())

        table = pa.table(
            {
                "_line": pa.array(np.arange(first_line, first_line + n, dtype=np.int64)),
                "_seq": pa.array(seqs),
                **columns,
            }
        )
        return Chunk(layout, table, fail_index, fail_code)


#: what stands for each byte of a value the hub does not keep (decision 100)
MASK = "*"
#: secret values are hex (PIN blocks): a run of more hex digits than any other value of
#: such a file holds (a key, its longest, holds 30) is masked wherever it stands
_SECRET_RUN = re.compile(r"[0-9A-Fa-f]{31,}")


def masked_lines(stream: BinaryIO, layout: Layout, encoding: str) -> Iterator[bytes]:
    """The lines of a delimited file of ``layout`` as received, line ends included, with
    :data:`MASK` for every byte of each secret field's value (:attr:`Layout.secrets`) and
    of every run of 31 or more hex digits elsewhere (a block in a line of another shape,
    which the reader refuses whole): what the hub keeps of such a file. Every other byte
    stays as it came, bytes that do not decode included, so the copy has the file's size
    and its lines."""
    codec = ENCODINGS.get(encoding, encoding)
    at = [i + 2 for i in layout.secrets]
    n_fields = len(layout.fields) + 2

    def stars(value: str) -> str:
        return MASK * len(value.encode(codec, "surrogateescape"))

    for raw in stream:  # a line ends at LF, which no GB18030 or UTF-8 sequence holds
        body = raw.rstrip(b"\r\n")
        values = body.decode(codec, "surrogateescape").split("|")
        if values[0] == "D" and len(values) == n_fields:
            for i in at:
                values[i] = stars(values[i])
        text = _SECRET_RUN.sub(lambda m: stars(m.group()), "|".join(values))
        yield text.encode(codec, "surrogateescape") + raw[len(body) :]


_MAX_TOTAL_FEN = 9_999_999_999_99


def _check_header(header: Header) -> None:
    """Header values must be what a reader accepts (ICD §4.1); refused before writing."""
    if not (
        re.fullmatch(r"[A-Z][0-9]{2,6}", header.sender)
        and re.fullmatch(r"[A-Z][0-9]{2,6}", header.receiver)
        and _BATCH_NO.fullmatch(header.batch_no)
        and _valid_date(header.business_date)
        and 0 <= header.record_count
        and 0 <= header.total_fen <= _MAX_TOTAL_FEN
    ):
        raise WriterError(
            "header value not writable (SENDER, RECEIVER, BATCH_NO, date, count or total)"
        )


def _check_value(f: Field, value: str) -> bytes:
    if "|" in value or "\r" in value or "\n" in value:
        raise WriterError(f"{f.name}: a value with |, CR or LF cannot be written")
    encoded = value.encode("gb18030")
    if f.max_bytes is not None and len(encoded) > f.max_bytes:
        raise WriterError(f"{f.name}: value longer than {f.max_bytes} bytes")
    return encoded


def _delimited_head(layout: Layout, header: Header, codec: str) -> bytes:
    return (
        f"H|{layout.type}|{header.sender}|{header.receiver}|{header.batch_no}|{header.business_date}"
        f"|{header.record_count}|{fen_to_amount(header.total_fen)}|1.0\r\n"
    ).encode(codec)


def _delimited_tail(layout: Layout, header: Header, count: int, total: int, codec: str) -> bytes:
    """The trailer of ``count`` lines totalling ``total`` fen; refused (after the lines were
    written) when it does not fit or does not match the header."""
    if not 0 <= total <= _MAX_TOTAL_FEN:
        raise WriterError(f"{layout.type}: total amount does not fit 10 digits of yuan")
    if count != header.record_count or total != header.total_fen:
        raise WriterError(
            f"{layout.type}: header says {header.record_count} lines, {count} written"
        )
    return f"T|{count}|{fen_to_amount(total)}\r\n".encode(codec)


def write_delimited(
    out: BinaryIO,
    layout: Layout,
    header: Header,
    rows: Iterable[Sequence[str]],
    encoding: str = "GB18030",
) -> int:
    """Write header, detail lines and trailer with CRLF (ICD §4.1). Returns the line count.

    ``header.record_count`` and ``header.total_fen`` must describe ``rows``; a mismatch
    raises :class:`WriterError` after writing, so callers write to a buffer or a
    temporary file and publish only on success.
    """
    codec = ENCODINGS[encoding]
    _check_header(header)
    n_fields = len(layout.fields)
    limits = [f for f in layout.fields if f.max_bytes is not None]
    limit_index = [layout.index(f.name) for f in limits]
    amount_index = layout.index(layout.amount_field) if layout.amount_field else None
    out.write(_delimited_head(layout, header, codec))
    count = 0
    total = 0
    buffer: list[str] = []
    for row in rows:
        if len(row) != n_fields:
            raise WriterError(f"{layout.type}: a row has {len(row)} fields, not {n_fields}")
        count += 1
        line = f"D|{count}|" + "|".join(row)
        if line.count("|") != n_fields + 1 or "\r" in line or "\n" in line:
            for f, value in zip(layout.fields, row, strict=True):
                _check_value(f, value)
        for f, i in zip(limits, limit_index, strict=True):
            value = row[i]
            if len(value) * 4 > (f.max_bytes or 0):
                _check_value(f, value)
        if amount_index is not None:
            total += amount_to_fen(row[amount_index])
        buffer.append(line)
        if len(buffer) >= 10_000:
            out.write(("\r\n".join(buffer) + "\r\n").encode(codec))
            buffer.clear()
    if buffer:
        out.write(("\r\n".join(buffer) + "\r\n").encode(codec))
    out.write(_delimited_tail(layout, header, count, total, codec))
    return count


def write_delimited_tables(
    out: BinaryIO,
    layout: Layout,
    header: Header,
    tables: Iterable[pa.Table],
    encoding: str = "GB18030",
) -> int:
    """:func:`write_delimited` for rows already in Arrow string columns named as the
    layout's fields, a table at a time: the same bytes and the same refusals, each check
    and the joining of the fields vectorised. Returns the line count."""
    codec = ENCODINGS[encoding]
    _check_header(header)
    amount_name = layout.amount_field
    out.write(_delimited_head(layout, header, codec))
    count = 0
    total = 0
    for table in tables:
        n = table.num_rows
        if n == 0:
            continue
        columns = []
        for f in layout.fields:
            col = table.column(f.name)
            col = pc.cast(
                col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col, pa.string()
            )
            if col.null_count:
                raise WriterError(f"{f.name}: a value is missing")
            if pc.any(pc.match_substring_regex(col, "[|\r\n]")).as_py():
                raise WriterError(f"{f.name}: a value with |, CR or LF cannot be written")
            if f.max_bytes is not None and int(_byte_lengths(col).max()) > f.max_bytes:
                raise WriterError(f"{f.name}: value longer than {f.max_bytes} bytes")
            if f.name == amount_name:
                if not pc.all(pc.match_substring_regex(col, f"^{_AMOUNT_TEXT}$")).as_py():
                    raise WriterError(f"{f.name}: not an amount")
                total += int(fen_column(col).sum())
            columns.append(col)
        seq = pc.cast(pa.array(np.arange(count + 1, count + n + 1)), pa.string())
        lines = pc.binary_join_element_wise(pa.scalar("D"), seq, *columns, "|")
        records = pc.binary_join_element_wise(lines, pa.scalar("\r\n"), "")
        out.write(_joined(records).encode(codec))
        count += n
    out.write(_delimited_tail(layout, header, count, total, codec))
    return count


# --------------------------------------------------------------------------- fixed width


def _fixed_text(value: str, width: int, numeric: bool, name: str) -> bytes:
    """One field padded to its byte width (ICD §4.3). A text value ending in a space is
    refused: its spaces would merge with the padding, which the reader strips, so the
    receiver would read a shorter value (or none) than the one written."""
    if numeric:
        if not value.isdigit() or not value.isascii():
            raise WriterError(f"{name}: numeric field must be digits")
        encoded = value.zfill(width).encode("ascii")
    else:
        if "\r" in value or "\n" in value:
            raise WriterError(f"{name}: a value with CR or LF cannot be written")
        if value.endswith(" "):
            raise WriterError(f"{name}: a text value ending in a space cannot be written")
        encoded = value.encode("gb18030")
        encoded += b" " * (width - len(encoded))
    if len(encoded) > width:
        raise WriterError(f"{name}: value does not fit in {width} bytes")
    return encoded


def _fixed_head(layout: Layout, header: Header) -> bytes:
    _check_header(header)
    head = (
        b"H"
        + _fixed_text(layout.type, 10, False, "TYPE")
        + _fixed_text(header.sender, 7, False, "SENDER")
        + _fixed_text(header.receiver, 7, False, "RECEIVER")
        + _fixed_text(header.batch_no, 20, False, "BATCH_NO")
        + _fixed_text(header.business_date, 8, True, "BUSINESS_DATE")
        + _fixed_text(str(header.record_count), 8, True, "RECORD_COUNT")
        + _fixed_text("1.0", 3, False, "VERSION")
    )
    return head.ljust(layout.record_length or 0, b" ") + b"\r\n"


def _fixed_tail(layout: Layout, header: Header, count: int) -> bytes:
    if count > 99_999_999:
        raise WriterError(f"{layout.type}: more records than the 8-digit seq holds")
    if count != header.record_count:
        raise WriterError(
            f"{layout.type}: header says {header.record_count} records, {count} written"
        )
    return (b"T" + _fixed_text(str(count), 8, True, "RECORD_COUNT")).ljust(
        layout.record_length or 0, b" "
    ) + b"\r\n"


def write_fixed(
    out: BinaryIO, layout: Layout, header: Header, rows: Iterable[Sequence[str]]
) -> int:
    """Write a fixed-width GB18030 file (ICD §4.3); every record exactly the layout's length."""
    out.write(_fixed_head(layout, header))
    count = 0
    n_fields = len(layout.fields)
    specs = [(f.width or 0, f.numeric) for f in layout.fields]
    buffer: list[bytes] = []
    for row in rows:
        if len(row) != n_fields:
            raise WriterError(f"{layout.type}: a row has {len(row)} fields, not {n_fields}")
        count += 1
        parts = [b"D%08d" % count]
        for (width, numeric), value in zip(specs, row, strict=True):
            if numeric:
                if len(value) > width or not (value.isdigit() and value.isascii()):
                    _fixed_text(value, width, numeric, layout.fields[len(parts) - 1].name)
                parts.append(value.zfill(width).encode("ascii"))
            else:
                encoded = value.encode("gb18030")
                if len(encoded) > width or "\r" in value or "\n" in value or value.endswith(" "):
                    _fixed_text(value, width, numeric, layout.fields[len(parts) - 1].name)
                parts.append(encoded.ljust(width, b" "))
        parts.append(b"\r\n")
        buffer.append(b"".join(parts))
        if len(buffer) >= 5_000:
            out.write(b"".join(buffer))
            buffer.clear()
    out.write(b"".join(buffer))
    out.write(_fixed_tail(layout, header, count))
    return count


def _fixed_column(f: Field, column: pa.Array | pa.ChunkedArray) -> pa.Array:
    """One field of every record, padded to its byte width, as text whose GB18030 encoding
    is exactly ``width`` bytes per value; refuses what :func:`write_fixed` refuses."""
    width = f.width or 0
    col = pc.cast(column, pa.string())
    if col.null_count:
        raise WriterError(f"{f.name}: a value is missing")
    if f.numeric:
        if not pc.all(pc.match_substring_regex(col, r"^[0-9]+$")).as_py() or (
            len(col) and pc.max(pc.utf8_length(col)).as_py() > width
        ):
            raise WriterError(f"{f.name}: numeric field must be digits within {width} bytes")
        return pc.utf8_lpad(col, width, "0")
    if pc.any(pc.match_substring_regex(col, "[\r\n]")).as_py():
        raise WriterError(f"{f.name}: a value with CR or LF cannot be written")
    if pc.any(pc.ends_with(col, " ")).as_py():
        raise WriterError(f"{f.name}: a text value ending in a space cannot be written")
    if pc.all(pc.string_is_ascii(col)).as_py() is not False:
        if len(col) and pc.max(pc.utf8_length(col)).as_py() > width:
            raise WriterError(f"{f.name}: value does not fit in {width} bytes")
        return pc.utf8_rpad(col, width, " ")
    padded = []
    for value in col.to_pylist():
        size = len(value.encode("gb18030"))
        if size > width:
            raise WriterError(f"{f.name}: value does not fit in {width} bytes")
        padded.append(value + " " * (width - size))
    return pa.array(padded, pa.string())


def write_fixed_table(out: BinaryIO, layout: Layout, header: Header, table: pa.Table) -> int:
    """:func:`write_fixed` for rows already in Arrow columns named as the layout's fields:
    the same bytes, each field padded by a vectorised kernel and the records encoded to
    GB18030 in one call."""
    out.write(_fixed_head(layout, header))
    count: int = table.num_rows
    length = layout.record_length or 0
    if count:
        seq = pc.utf8_lpad(pc.cast(pa.array(np.arange(1, count + 1)), pa.string()), 8, "0")
        parts = [pa.scalar("D"), seq]
        parts += [_fixed_column(f, table.column(f.name)) for f in layout.fields]
        records = pc.binary_join_element_wise(*parts, pa.scalar("\r\n"), "")
        text = _joined(records)
        body = text.encode("gb18030")
        if len(body) != count * (length + 2):
            raise WriterError(f"{layout.type}: a record is not {length} bytes")
        out.write(body)
    out.write(_fixed_tail(layout, header, count))
    return count


def _joined(records: pa.Array | pa.ChunkedArray) -> str:
    """The values of a string array concatenated, straight from its data buffer."""
    arr = records.combine_chunks() if isinstance(records, pa.ChunkedArray) else records
    n = len(arr)
    offsets = np.frombuffer(arr.buffers()[1], dtype=np.int32, count=n + 1, offset=arr.offset * 4)
    data = arr.buffers()[2]
    assert data is not None
    text: str = data.to_pybytes()[int(offsets[0]) : int(offsets[-1])].decode("utf-8")
    return text


@dataclass
class FixedReader:
    """Streams a fixed-width file (ICD §4.3): header, chunks of validated records, trailer.

    ``stream`` is an open binary file, read a block at a time, so memory holds one chunk
    of records whatever the file's size (bytes already in memory are read the same way).
    A block is cut only after LF, which no GB18030 multi-byte sequence contains; each
    field is cut at its byte offsets for every record of a chunk at once, and needs no
    decoding when its bytes are ASCII.

    Framing failures raise :class:`FileLevelError`: F03 (bytes not valid GB18030: bytes
    given whole are checked before their header; a stream's when the chunk holding them
    is read, so :meth:`chunks` may raise it after earlier chunks were yielded), F04
    (header), F06 (a record between header and trailer that is not a detail, or its seq),
    and after the last chunk F08 (trailer) and F02 (counts). A field whose own bytes do
    not decode (a character split at its edge) rejects its record E116 at that field.
    """

    stream: BinaryIO | bytes
    layout: Layout
    chunk_lines: int = 50_000
    control_count: int | None = None
    header: Header = field(init=False)
    trailer: Trailer | None = field(init=False, default=None)
    detail_count: int = field(init=False, default=0)

    def __post_init__(self) -> None:
        self._checked_whole = isinstance(self.stream, bytes)
        if isinstance(self.stream, bytes):
            _check_gb18030(self.stream)
        stream = io.BytesIO(self.stream) if isinstance(self.stream, bytes) else self.stream
        length = self.layout.record_length or 0
        self._read_size = max(1 << 16, min(_BLOCK, (self.chunk_lines + 1) * (length + 2)))
        self._blocks = self._record_blocks(stream)
        self._pending: list[bytes] = []
        self._exhausted = False
        self._fill(1)
        if not self._pending:
            raise FileLevelError(FileCode.F04, "file is empty")
        self.header = self._parse_header(self._pending.pop(0))

    def _record_blocks(self, stream: BinaryIO) -> Iterator[list[bytes]]:
        """The file's records without their line ends (CRLF or LF; the last record may
        have none), a block at a time."""
        rest = b""
        while True:
            block = stream.read(self._read_size)
            if not block:
                if rest:
                    yield [rest]
                return
            data = rest + block if rest else block
            cut = data.rfind(b"\n") + 1
            if cut == 0:
                rest = data
                continue
            rest = data[cut:]
            yield data[:cut].replace(b"\r\n", b"\n")[:-1].split(b"\n")

    def _fill(self, want: int) -> None:
        while len(self._pending) < want and not self._exhausted:
            block = next(self._blocks, None)
            if block is None:
                self._exhausted = True
            else:
                self._pending.extend(block)

    def _parse_header(self, rec: bytes) -> Header:
        layout = self.layout
        if len(rec) != layout.record_length or rec[:1] != b"H":
            raise FileLevelError(FileCode.F04, "header record malformed")
        _check_gb18030(rec)
        text = rec.decode("gb18030")
        type_, sender, receiver = text[1:11].rstrip(), text[11:18].rstrip(), text[18:25].rstrip()
        batch_no, date, count, version = text[25:45].rstrip(), text[45:53], text[53:61], text[61:64]
        if not (
            type_ == layout.type
            and re.fullmatch(r"[A-Z][0-9]{2,6}", sender)
            and re.fullmatch(r"[A-Z][0-9]{2,6}", receiver)
            and _BATCH_NO.fullmatch(batch_no)
            and _valid_date(date)
            and count.isascii()
            and count.isdigit()
            and version == "1.0"
            and text[64:].strip() == ""
        ):
            raise FileLevelError(FileCode.F04, "header field malformed")
        return Header(type_, sender, receiver, batch_no, date, int(count))

    def chunks(self) -> Iterator[Chunk]:
        line_no = 2
        while True:
            # keep one record back: the last record of the file is the trailer
            self._fill(self.chunk_lines + 1)
            if self._exhausted and len(self._pending) <= 1:
                break
            take = min(self.chunk_lines, len(self._pending) - 1)
            records, self._pending = self._pending[:take], self._pending[take:]
            chunk = self._chunk(records, line_no)
            line_no += take
            yield chunk
        self._check_trailer(self._pending[0] if self._pending else b"")

    def _chunk(self, records: list[bytes], first_line: int) -> Chunk:
        layout = self.layout
        length = layout.record_length or 0
        n = len(records)
        joined = b"\n".join(records) + b"\n"
        if not self._checked_whole:
            _check_gb18030(joined)
        good = np.fromiter(map(len, records), dtype=np.int64, count=n) == length
        if good.all():
            matrix = np.frombuffer(joined, dtype=np.uint8).reshape(n, length + 1)[:, :length]
        else:
            kept = b"".join(rec for rec, ok in zip(records, good.tolist(), strict=True) if ok)
            matrix = np.frombuffer(kept, dtype=np.uint8).reshape(-1, length)
        at = np.flatnonzero(good)
        seqs = np.zeros(n, dtype=np.int64)
        if at.size:
            digits = matrix[:, 1:9].astype(np.int64) - ord("0")
            if (matrix[:, 0] != ord("D")).any():
                raise FileLevelError(
                    FileCode.F06, "a record between header and trailer is not a detail"
                )
            if ((digits < 0) | (digits > 9)).any():
                raise FileLevelError(FileCode.F06, "detail seq malformed")
            seqs[at] = digits @ (10 ** np.arange(7, -1, -1, dtype=np.int64))
        for row in np.flatnonzero(~good).tolist():
            rec = records[row]
            if rec[:1] != b"D":
                raise FileLevelError(
                    FileCode.F06, "a record between header and trailer is not a detail"
                )
            if not rec[1:9].isdigit():
                raise FileLevelError(FileCode.F06, "detail seq malformed")
            seqs[row] = int(rec[1:9])
        expected = np.arange(self.detail_count + 1, self.detail_count + 1 + n, dtype=np.int64)
        if not np.array_equal(seqs, expected):
            raise FileLevelError(FileCode.F06, "detail seq not contiguous from 1")
        self.detail_count += n

        columns: dict[str, pa.Array] = {}
        undecodable = np.full(n, NO_FAIL, dtype=np.int16)
        pos = 9
        for i, f in enumerate(layout.fields):
            width = f.width or 0
            values, bad = _fixed_strings(matrix[:, pos : pos + width])
            pos += width
            undecodable[at[bad]] = np.minimum(undecodable[at[bad]], i)
            columns[f.name] = values if at.size == n else _spread(values, good)
        fail_index, fail_code = validate_columns(layout, columns, n)
        for row in np.flatnonzero(undecodable != NO_FAIL).tolist():
            i = int(undecodable[row])
            if fail_index[row] > i:
                fail_index[row] = i
                fail_code[row] = "E116"
        fail_index[~good] = WHOLE_LINE
        fail_code[~good] = "E116"
        table = pa.table(
            {
                "_line": pa.array(np.arange(first_line, first_line + n, dtype=np.int64)),
                "_seq": pa.array(seqs),
                **columns,
            }
        )
        return Chunk(layout, table, fail_index, fail_code)

    def _check_trailer(self, rec: bytes) -> None:
        if rec[:1] != b"T":
            raise FileLevelError(FileCode.F08, "last record is not a trailer")
        if not self._checked_whole:
            _check_gb18030(rec)
        if len(rec) != self.layout.record_length or not rec[1:9].isdigit() or rec[9:].strip(b" "):
            raise FileLevelError(FileCode.F08, "trailer record malformed")
        self.trailer = Trailer(int(rec[1:9]))
        counts = {self.header.record_count, self.trailer.record_count, self.detail_count}
        if self.control_count is not None:
            counts.add(self.control_count)
        if len(counts) != 1:
            raise FileLevelError(FileCode.F02, "record counts differ")


def _check_gb18030(data: bytes) -> None:
    """F03 unless ``data`` decodes as GB18030 (ASCII always does)."""
    if not data.isascii():
        try:
            data.decode("gb18030")
        except UnicodeDecodeError as exc:
            raise FileLevelError(FileCode.F03, "bytes not valid GB18030") from exc


def _fixed_strings(part: npt.NDArray[np.uint8]) -> tuple[pa.Array, npt.NDArray[np.bool_]]:
    """One field of many records (a row of its bytes per record) as text without its
    padding, and the records whose bytes do not decode on their own (their text is
    empty). ASCII bytes are their own UTF-8: they become an Arrow string array as they are."""
    rows, width = part.shape
    bad = np.zeros(rows, dtype=bool)
    if not (part >= 0x80).any():
        offsets = np.arange(0, (rows + 1) * width, width, dtype=np.int32)
        data = np.ascontiguousarray(part).tobytes()
        values = pa.StringArray.from_buffers(rows, pa.py_buffer(offsets), pa.py_buffer(data))
    else:
        # LF ends each value: it is no byte of a multi-byte character, so the values
        # decode in one call exactly when each decodes alone
        ended = np.concatenate([part, np.full((rows, 1), ord("\n"), dtype=np.uint8)], axis=1)
        try:
            texts = ended.tobytes().decode("gb18030").split("\n")[:-1]
        except UnicodeDecodeError:
            texts = []
            for row, raw in enumerate(part):
                try:
                    texts.append(raw.tobytes().decode("gb18030"))
                except UnicodeDecodeError:
                    texts.append("")
                    bad[row] = True
        values = pa.array(texts, pa.string())
    return pc.utf8_rtrim(values, characters=" "), bad


def _spread(values: pa.Array, good: npt.NDArray[np.bool_]) -> pa.Array:
    """``values`` of the records in ``good`` at their rows; the other rows empty."""
    index = np.where(good, np.cumsum(good) - 1, len(values))
    return pa.concat_arrays([values, pa.array([""], pa.string())]).take(pa.array(index))


def read_all(reader: DelimitedReader | FixedReader) -> tuple[pa.Table, list[Rejection]]:
    """Small files: every accepted row as one table and every rejection (raises on F-codes)."""
    accepted: list[pa.Table] = []
    rejected: list[Rejection] = []
    for chunk in reader.chunks():
        accepted.append(chunk.table.filter(pa.array(chunk.ok)))
        rejected.extend(chunk.rejections())
    if accepted:
        return pa.concat_tables(accepted), rejected
    schema = pa.schema(
        [("_line", pa.int64()), ("_seq", pa.int64())]
        + [(n, pa.string()) for n in reader.layout.names]
    )
    return schema.empty_table(), rejected
