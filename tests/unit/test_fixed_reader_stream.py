"""The fixed-width reader streams an open file (ICD §4.3): it holds a chunk of records,
never the whole file, and reads the same rows and rejections as from the file's bytes."""

from __future__ import annotations

import io
from typing import BinaryIO, cast

import pytest

from schemas.codec import FixedReader, Header, read_all, write_fixed
from schemas.codes import FileCode
from schemas.files import FileLevelError
from schemas.layouts import PERSO, PERSORSP


class _CountingFile(io.RawIOBase):
    """A binary file that counts the bytes handed out, at most ``piece`` per read."""

    def __init__(self, data: bytes, piece: int | None = None) -> None:
        self._data = io.BytesIO(data)
        self._piece = piece
        self.handed_out = 0

    def readable(self) -> bool:
        return True

    def read(self, size: int | None = -1) -> bytes:
        if self._piece is not None and (size is None or size < 0 or size > self._piece):
            size = self._piece
        block = self._data.read(size)
        self.handed_out += len(block)
        return block


def _persorsp(n: int) -> bytes:
    rows = [
        [
            f"A{i:08d}",
            f"6217881{i:012d}",
            "00",
            "",
            "440103D156000005" + "0" * 16,
            "3B6F00",
            "箱号0001",
            "20261122",
        ]
        for i in range(n)
    ]
    out = io.BytesIO()
    write_fixed(
        out, PERSORSP, Header("PERSORSP", "F01", "B001", "F0120261122001", "20261122", n), rows
    )
    return out.getvalue()


def _perso(n: int) -> bytes:
    rows = [
        [
            f"A{i:08d}" if i % 5 else f"a{i:08d}",
            "01",
            "440103199001011234",
            "张三丰" if i % 2 else "李𠀀四",
            "1",
            "01",
            "19900101",
            "440103",
            "20261122",
            "20361122",
            "B001",
            "6217881000000000016",
            "01",
            f"A{i:08d}.jpg",
        ]
        for i in range(n)
    ]
    out = io.BytesIO()
    write_fixed(out, PERSO, Header("PERSO", "B001", "F01", "B20261122001", "20261122", n), rows)
    return out.getvalue()


def test_a_fixed_width_file_is_read_from_its_handle_one_chunk_at_a_time() -> None:
    data = _persorsp(5000)
    handle = _CountingFile(data)
    reader = FixedReader(cast(BinaryIO, handle), PERSORSP, chunk_lines=100)
    chunks = reader.chunks()

    first = next(chunks)

    assert len(first) == 100
    assert handle.handed_out < len(data) // 4
    assert len(first) + sum(len(chunk) for chunk in chunks) == 5000
    assert handle.handed_out == len(data)
    assert reader.trailer is not None and reader.trailer.record_count == reader.detail_count


@pytest.mark.parametrize("piece", [1, 5, 166, 4096])
def test_a_file_handed_out_in_pieces_reads_as_its_bytes_do(piece: int) -> None:
    data = _perso(40)  # names of 2- and 4-byte characters; every fifth card_no refused
    whole = read_all(FixedReader(data, PERSO))

    streamed = read_all(FixedReader(cast(BinaryIO, _CountingFile(data, piece)), PERSO, 7))

    assert streamed[0].equals(whole[0])
    assert streamed[1] == whole[1]
    assert [r.field for r in whole[1]] == ["card_no"] * 8
    assert "李𠀀四" in whole[0].column("name").to_pylist()


def test_bytes_that_do_not_decode_in_a_later_chunk_are_f03_when_that_chunk_is_read() -> None:
    data = _persorsp(300)
    at = data.index(b"A00000250")
    data = data[:at] + b"A\xff\xff" + data[at + 3 :]
    reader = FixedReader(io.BytesIO(data), PERSORSP, chunk_lines=100)
    chunks = reader.chunks()
    assert [len(next(chunks)), len(next(chunks))] == [100, 100]

    with pytest.raises(FileLevelError) as caught:
        next(chunks)

    assert caught.value.code == FileCode.F03


def test_a_streamed_file_without_its_trailer_is_f08_after_its_last_chunk() -> None:
    data = _persorsp(250)
    cut = data.rindex(b"T00000250")
    reader = FixedReader(io.BytesIO(data[:cut]), PERSORSP, chunk_lines=100)

    with pytest.raises(FileLevelError) as caught:
        read_all(reader)

    assert caught.value.code == FileCode.F08
    assert reader.detail_count == 249  # the last detail was taken for the trailer
