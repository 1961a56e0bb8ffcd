"""The photo zip of an APPLY (ICD §5.1): read from its central directory without one
``ZipInfo`` per entry, with the same checks and the same answers as ``zipfile`` gives."""

from __future__ import annotations

import io
import random
import struct
import tracemalloc
import zipfile
import zlib
from collections.abc import Callable
from pathlib import Path

import pyarrow as pa
import pytest

from issuance import photos as photos_module
from issuance.photos import (
    PHOTO_MAX_BYTES,
    PhotoNames,
    _read_directory,
    check_photo_zip,
)
from sandbox.people import oversized_photo, photo_cache, png_photo, small_photo
from schemas.files import Control, FileLevelError
from tests.support.photos import forged_copy

NAME = "APPLY_R440100_B001_20261122_001.zip"


def write_zip(
    path: Path,
    entries: list[tuple[str, bytes]],
    *,
    compression: int = zipfile.ZIP_STORED,
    zip64: bool = False,
    extra: bytes = b"",
    prefix: bytes = b"",
) -> Path:
    buffer = io.BytesIO()
    buffer.write(prefix)
    with zipfile.ZipFile(buffer, "w", compression) as zf:
        for name, data in entries:
            info = zipfile.ZipInfo(name, (2026, 11, 22, 9, 0, 0))
            info.compress_type = compression
            info.extra = extra
            with zf.open(info, "w", force_zip64=zip64) as out:
                out.write(data)
    path.write_bytes(buffer.getvalue())
    return path


def control_of(path: Path, count: int | None = None) -> bytes:
    data = path.read_bytes()
    entries = len(zipfile.ZipFile(path).infolist()) if count is None else count
    return Control.for_bytes(path.name, data, entries).render()


def checked(path: Path, count: int | None = None) -> PhotoNames:
    return check_photo_zip(path, control_of(path, count), path.name).valid


def f10_detail(path: Path, count: int | None = None) -> str:
    with pytest.raises(FileLevelError) as caught:
        checked(path, count)
    assert caught.value.code == "F10"
    return caught.value.detail


@pytest.fixture
def photos() -> tuple[bytes, ...]:
    return photo_cache(3, 0, fast=True)


def test_valid_photos_are_found_by_name_and_each_distinct_photo_decides_for_its_copies(
    tmp_path: Path, photos: tuple[bytes, ...]
) -> None:
    entries = [
        ("A1.jpg", photos[0]),
        ("A2.jpg", photos[1]),
        ("A3.jpg", photos[0]),
        ("B1.jpg", small_photo()),
        ("B2.jpg", png_photo()),
        ("B3.jpg", oversized_photo()),
        ("B4.jpg", small_photo()),
        ("A4.jpg", photos[2]),
    ]
    for compression in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
        path = write_zip(tmp_path / NAME, entries, compression=compression)

        valid = checked(path)

        assert sorted(valid) == ["A1.jpg", "A2.jpg", "A3.jpg", "A4.jpg"]
        assert "A3.jpg" in valid and "B1.jpg" not in valid and "a1.jpg" not in valid
        looked_up = pa.array(
            ["A2.jpg", "B4.jpg", None, "", "A4.jpg", "名.jpg", "A1.jpg" * 20, "A1.jpg\x00"]
        )
        assert valid.isin(looked_up).tolist() == [
            True,
            False,
            False,
            False,
            True,
            False,
            False,
            False,
        ]


@pytest.mark.parametrize(
    "compression", [zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED], ids=["stored", "deflated"]
)
@pytest.mark.parametrize("first", ["genuine", "forged"])
@pytest.mark.parametrize("blocks", ["one block", "a block each"])
def test_an_entry_with_a_valid_photos_size_and_crc_but_other_bytes_is_no_valid_photo(
    tmp_path: Path,
    photos: tuple[bytes, ...],
    monkeypatch: pytest.MonkeyPatch,
    compression: int,
    first: str,
    blocks: str,
) -> None:
    if blocks == "a block each":  # the second entry is judged after the first is cached
        monkeypatch.setattr(photos_module, "_BLOCK", 64)
    genuine = [("A1.jpg", photos[0]), ("A2.jpg", photos[0])]
    forged = [("B1.jpg", forged_copy(photos[0]))]
    entries = genuine + forged if first == "genuine" else forged + genuine
    path = write_zip(tmp_path / NAME, entries, compression=compression)

    assert sorted(checked(path)) == ["A1.jpg", "A2.jpg"]


def test_a_copy_of_a_photo_whose_local_header_names_another_entry_makes_the_zip_f10(
    tmp_path: Path, photos: tuple[bytes, ...]
) -> None:
    path = write_zip(tmp_path / NAME, [("A1.jpg", photos[0]), ("A2.jpg", photos[0])])
    data = bytearray(path.read_bytes())
    second = data.find(b"PK\x01\x02", data.find(b"PK\x01\x02") + 1)
    data[second + 42 : second + 46] = bytes(4)  # A2's data is said to be A1's
    path.write_bytes(bytes(data))

    assert f10_detail(path) == "photo zip corrupt"


@pytest.mark.parametrize(
    "name", ["../evil.jpg", "dir/a.jpg", "/abs.jpg", "a b.jpg", "照片.jpg", "a..jpg", "x" * 101]
)
def test_an_entry_that_is_not_a_plain_file_name_makes_the_zip_f10(
    tmp_path: Path, photos: tuple[bytes, ...], name: str
) -> None:
    path = write_zip(tmp_path / NAME, [("A1.jpg", photos[0]), (name, photos[1])])

    assert f10_detail(path) == "photo zip has an unsafe entry name"


def test_a_name_of_exactly_100_characters_is_plain(
    tmp_path: Path, photos: tuple[bytes, ...]
) -> None:
    path = write_zip(tmp_path / NAME, [("x" * 96 + ".jpg", photos[0])])

    assert list(checked(path)) == ["x" * 96 + ".jpg"]


def test_a_repeated_entry_name_makes_the_zip_f10(tmp_path: Path, photos: tuple[bytes, ...]) -> None:
    path = tmp_path / NAME
    with pytest.warns(UserWarning, match="Duplicate name"):
        write_zip(path, [("A1.jpg", photos[0]), ("A2.jpg", photos[1]), ("A1.jpg", photos[2])])

    assert f10_detail(path) == "photo zip has repeated entry names"


def test_an_entry_count_other_than_the_control_files_makes_the_zip_f10(
    tmp_path: Path, photos: tuple[bytes, ...]
) -> None:
    path = write_zip(tmp_path / NAME, [("A1.jpg", photos[0]), ("A2.jpg", photos[1])])

    assert f10_detail(path, count=3) == "photo zip entry count differs from its control file"


def test_a_photo_whose_bytes_do_not_match_its_crc_makes_the_zip_f10(
    tmp_path: Path, photos: tuple[bytes, ...]
) -> None:
    path = write_zip(tmp_path / NAME, [("A1.jpg", photos[0])])
    data = bytearray(path.read_bytes())
    data[30 + len("A1.jpg") + 100] ^= 0xFF
    path.write_bytes(bytes(data))

    assert f10_detail(path) == "photo zip corrupt"


@pytest.mark.parametrize("damage", ["deflate stream", "method", "encrypted"])
def test_a_photo_that_cannot_be_unpacked_makes_the_zip_f10(
    damage: str, tmp_path: Path, photos: tuple[bytes, ...]
) -> None:
    path = write_zip(tmp_path / NAME, [("A1.jpg", photos[0])], compression=zipfile.ZIP_DEFLATED)
    data = bytearray(path.read_bytes())
    central = data.find(b"PK\x01\x02")
    if damage == "deflate stream":
        data[30 + len("A1.jpg") + 5 : 30 + len("A1.jpg") + 25] = b"\xff" * 20
    elif damage == "method":  # deflate64, which zipfile cannot unpack
        data[8:10] = data[central + 10 : central + 12] = struct.pack("<H", 9)
    else:
        data[6] |= 1
        data[central + 8] |= 1
    path.write_bytes(bytes(data))

    assert f10_detail(path) in (
        "photo zip corrupt",
        "photo zip entry stored other than plain or deflated",
    )


def deflated_zeros(n: int) -> bytes:
    """A raw deflate stream of ``n`` zero bytes, made in milliseconds: after a full flush
    each mebibyte of zeros compresses to the same bytes (about 1 KB)."""
    deflater = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    mebibyte = deflater.compress(bytes(1 << 20)) + deflater.flush(zlib.Z_FULL_FLUSH)
    rest = deflater.compress(bytes(n % (1 << 20))) + deflater.flush()
    return mebibyte * (n >> 20) + rest


def with_lying_size(
    path: Path, declared: int, actual: int, *, method: int = zipfile.ZIP_DEFLATED
) -> Path:
    """A zip of one entry ``A1.jpg`` of ``actual`` zero bytes whose headers declare
    ``declared`` bytes, and the CRC-32 of what a reader that stops at the declared size
    sees: a zip bomb behind a lying header (200 MB of zeros deflate to 200 KB)."""
    data = deflated_zeros(actual) if method == zipfile.ZIP_DEFLATED else bytes(actual)
    name = b"A1.jpg"
    crc = 0
    for start in range(0, min(declared, actual), 1 << 20):
        crc = zlib.crc32(bytes(min(1 << 20, declared - start, actual - start)), crc)
    sizes = (crc, len(data), declared)
    local = struct.pack("<4s5H3L2H", b"PK\x03\x04", 20, 0, method, 0, 0, *sizes, len(name), 0)
    central = struct.pack(
        "<4s6H3L5H2L", b"PK\x01\x02", 20, 20, 0, method, 0, 0, *sizes, len(name), 0, 0, 0, 0, 0, 0
    )
    end_at = len(local) + len(name) + len(data)
    end = struct.pack("<4s4H2LH", b"PK\x05\x06", 0, 0, 1, 1, len(central) + len(name), end_at, 0)
    path.write_bytes(local + name + data + central + name + end)
    return path


def peak_memory(work: Callable[[], object]) -> tuple[object, int]:
    """What ``work`` returns (or raises) and the most memory Python held meanwhile."""
    tracemalloc.start()
    try:
        outcome = work()
    except Exception as exc:  # handed back to be asserted on
        outcome = exc
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    return outcome, peak


#: a bomb's inflated size, and the most memory reading it may take
BOMB, BOUND = 200_000_000, 4 << 20


def test_an_entry_that_inflates_beyond_its_declared_size_makes_the_zip_f10_without_inflating_it_all(
    tmp_path: Path,
) -> None:
    path = with_lying_size(tmp_path / NAME, 10_240, BOMB)
    control = control_of(path)

    refused, peak = peak_memory(lambda: check_photo_zip(path, control, NAME))

    assert isinstance(refused, FileLevelError) and refused.code == "F10"
    assert refused.detail == "photo zip corrupt"
    assert peak < BOUND


def test_an_entry_that_inflates_to_less_than_its_declared_size_makes_the_zip_f10(
    tmp_path: Path,
) -> None:
    path = with_lying_size(tmp_path / NAME, 20_480, 10_240)

    assert f10_detail(path) == "photo zip corrupt"


@pytest.mark.parametrize("method", [zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED])
def test_an_entry_declared_larger_than_a_photo_may_be_is_no_valid_photo_and_is_never_unpacked(
    tmp_path: Path, method: int
) -> None:
    # unpacked, its 100 bytes would not be the size it declares: the zip would be F10
    path = with_lying_size(tmp_path / NAME, PHOTO_MAX_BYTES + 1, 100, method=method)

    assert list(checked(path)) == []


@pytest.mark.parametrize("kept", [200, 1_000, -2])
def test_a_photo_cut_short_is_not_a_valid_photo(
    kept: int, tmp_path: Path, photos: tuple[bytes, ...]
) -> None:
    path = write_zip(tmp_path / NAME, [("A1.jpg", photos[0][:kept]), ("A2.jpg", photos[1])])

    valid = checked(path)
    assert "A1.jpg" not in valid and "A2.jpg" in valid


def test_bytes_that_are_no_zip_make_it_f10(tmp_path: Path) -> None:
    path = tmp_path / NAME
    path.write_bytes(b"PK\x03\x04 not really a zip")

    assert f10_detail(path, count=0) == "photo zip corrupt"


def test_a_digest_computed_while_landing_the_zip_is_checked_instead_of_hashing_it_again(
    tmp_path: Path, photos: tuple[bytes, ...]
) -> None:
    path = write_zip(tmp_path / NAME, [("A1.jpg", photos[0])])
    control = control_of(path)
    ok = Control.parse(control, NAME)

    assert list(check_photo_zip(path, control, NAME, (ok.size, ok.sha256)).valid) == ["A1.jpg"]
    with pytest.raises(FileLevelError) as caught:
        check_photo_zip(path, control, NAME, (ok.size, "0" * 64))
    assert caught.value.detail == "photo zip size or SHA-256 differs from its control file"


def directory_of(path: Path) -> list[tuple[str, int, int, int, int]]:
    with path.open("rb") as fh:
        found = _read_directory(fh)
    h = found.headers
    return [
        (n.decode(), int(c), int(s), int(z), int(o))
        for n, c, s, z, o in zip(
            found.names.tolist(), h["crc"], h["size"], h["csize"], h["offset"], strict=True
        )
    ]


def directory_by_zipfile(path: Path) -> list[tuple[str, int, int, int, int]]:
    with zipfile.ZipFile(path) as zf:
        return [
            (i.filename, i.CRC, i.file_size, i.compress_size, i.header_offset)
            for i in zf.infolist()
        ]


@pytest.mark.parametrize(
    "options",
    [
        {},
        {"compression": zipfile.ZIP_DEFLATED},
        {"zip64": True},
        {"extra": struct.pack("<HHB4s", 0x5455, 5, 1, b"\x00\x00\x00\x00")},
        {"prefix": b"#!/bin/sh\nexit 0\n" * 10},
    ],
    ids=["stored", "deflated", "zip64-entries", "extra-field", "prepended-bytes"],
)
def test_the_central_directory_reads_as_zipfile_reads_it(
    tmp_path: Path, options: dict[str, object]
) -> None:
    rng = random.Random(7)
    entries = [
        (f"{rng.randrange(10**9):09d}_{i}.jpg", rng.randbytes(rng.randrange(0, 3000)))
        for i in range(300)
    ]
    path = write_zip(tmp_path / NAME, entries, **options)  # type: ignore[arg-type]

    assert directory_of(path) == directory_by_zipfile(path)


def with_zip64_directory(path: Path) -> Path:
    """The same zip with every size and offset of its central directory moved into a
    ZIP64 extra field (as writers do past 4 GiB), and a ZIP64 end record."""
    data = path.read_bytes()
    with zipfile.ZipFile(path) as zf:
        infos = zf.infolist()
        start = zf.start_dir
    directory = b""
    for info in infos:
        name = info.filename.encode()
        extra = struct.pack("<HHQQQ", 1, 24, info.file_size, info.compress_size, info.header_offset)
        head = (b"PK\x01\x02", 45, 3, 45, 0, info.flag_bits, info.compress_type, 0, 0)
        wide = (info.CRC, 0xFFFFFFFF, 0xFFFFFFFF, len(name), len(extra), 0, 0, 0, 0, 0xFFFFFFFF)
        directory += struct.pack("<4s4B4HL2L5H2L", *head, *wide) + name + extra
    n = len(infos)
    end64 = start + len(directory)
    tail = struct.pack("<4sQ2H2L4Q", b"PK\x06\x06", 44, 45, 45, 0, 0, n, n, len(directory), start)
    tail += struct.pack("<4sLQL", b"PK\x06\x07", 0, end64, 1)
    tail += struct.pack("<4s4H2LH", b"PK\x05\x06", 0, 0, 0xFFFF, 0xFFFF, 0xFFFFFFFF, 0xFFFFFFFF, 0)
    path.write_bytes(data[:start] + directory + tail)
    return path


def test_sizes_and_offsets_in_zip64_extra_fields_are_read_as_zipfile_reads_them(
    tmp_path: Path, photos: tuple[bytes, ...]
) -> None:
    entries = [("A1.jpg", photos[0]), ("A2.jpg", photos[1]), ("B1.jpg", small_photo())]
    path = with_zip64_directory(write_zip(tmp_path / NAME, entries))

    assert directory_of(path) == directory_by_zipfile(path)
    assert directory_of(path)[1][4] > 0
    assert sorted(checked(path)) == ["A1.jpg", "A2.jpg"]


def test_more_entries_than_a_plain_zip_counts_are_read_from_its_zip64_end_record(
    tmp_path: Path,
) -> None:
    entries = [(f"{i:06d}.jpg", b"") for i in range(0x10000 + 5)]
    path = write_zip(tmp_path / NAME, entries)

    found = directory_of(path)

    assert len(found) == 0x10000 + 5
    assert found == directory_by_zipfile(path)


def test_a_photo_whose_header_claims_billions_of_pixels_is_no_valid_photo(
    tmp_path: Path, photos: tuple[bytes, ...]
) -> None:
    frame = photos[0].index(b"\xff\xc0")
    # its frame header says 65535 x 65535 pixels: a decompression bomb, answered E113
    bomb = photos[0][: frame + 5] + b"\xff\xff\xff\xff" + photos[0][frame + 9 :]
    path = write_zip(tmp_path / NAME, [("A1.jpg", bomb), ("A2.jpg", photos[1])])

    valid = checked(path)
    assert "A1.jpg" not in valid and "A2.jpg" in valid
