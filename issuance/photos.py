"""The APPLY photo zip (ICD §5.1): entries are untrusted names; each photo is a JPEG
358 px wide × 441 px high of at most 40,960 bytes, kept byte for byte as sent.

A zip of a million photos is checked with memory that stays small: its central directory
(APPNOTE 4.3.12, ZIP64 included) is read in blocks into a few arrays instead of one
``zipfile.ZipInfo`` per entry, each block judged as it is read, and the names of the valid
photos are kept as one sorted array of fixed-width bytes.
"""

from __future__ import annotations

import io
import os
import struct
import zipfile
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc
from PIL import Image, UnidentifiedImageError

from schemas.codes import FileCode
from schemas.files import Control, FileLevelError, sha256_of

PHOTO_WIDTH = 358
PHOTO_HEIGHT = 441
PHOTO_MAX_BYTES = 40_960

#: end of central directory, ZIP64 end of central directory and its locator (APPNOTE 4.3.14–16)
_END = struct.Struct("<4s4H2LH")
_END64 = struct.Struct("<4sQ2H2L4Q")
_END64_LOCATOR = struct.Struct("<4sLQL")
_LOCAL = struct.Struct("<4s5H3L2H")
_CENTRAL_LENGTHS = struct.Struct("<3H")
_CENTRAL_SIZE = 46
#: a central directory header (APPNOTE 4.3.12) as a packed little-endian record
_CENTRAL = np.dtype(
    {
        "names": ["signature", "flags", "method", "crc", "csize", "size", "offset"],
        "formats": ["<u4", "<u2", "<u2", "<u4", "<u4", "<u4", "<u4"],
        "offsets": [0, 8, 10, 16, 20, 24, 42],
        "itemsize": _CENTRAL_SIZE,
    }
)
#: the same fields, unpacked and with room for ZIP64 values
_WIDE = np.dtype(
    [
        ("signature", "<u4"),
        ("flags", "<u2"),
        ("method", "<u2"),
        ("crc", "<u4"),
        ("csize", "<u8"),
        ("size", "<u8"),
        ("offset", "<u8"),
    ]
)
_CENTRAL_SIGNATURE = 0x02014B50
#: the longest plain entry name
_NAME_LIMIT = 100
_PLAIN = np.zeros(256, dtype=bool)
_PLAIN[
    np.frombuffer(b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz_.-", np.uint8)
] = True
_U16, _U32 = 0xFFFF, 0xFFFFFFFF
_BLOCK = 1 << 20


class PhotoNames:
    """The names of a zip's valid photos: one sorted array of fixed-width ASCII names
    (a million 22-byte names take 22 MB, against about 100 MB as a frozenset of str)."""

    def __init__(self, names: Iterable[str] | npt.NDArray[np.bytes_]) -> None:
        if isinstance(names, np.ndarray):
            array = names
        else:
            array = np.array([n.encode("ascii") for n in names], dtype=np.bytes_)
        if array.size == 0:
            array = np.zeros(0, dtype="S1")
        self._names = array if _is_sorted(array) else np.sort(array)
        self._width = self._names.dtype.itemsize

    def __len__(self) -> int:
        return int(self._names.size)

    def __iter__(self) -> Iterator[str]:
        return (n.decode("ascii") for n in self._names.tolist())

    def __contains__(self, name: object) -> bool:
        if not isinstance(name, str):
            return False
        return bool(self.isin(pa.array([name], pa.string()))[0])

    def isin(self, values: pa.Array | pa.ChunkedArray) -> npt.NDArray[np.bool_]:
        """For each value, whether it is one of the names (null: no). Only ASCII values
        without a NUL and no longer than the longest name are looked up."""
        n = len(values)
        found = np.zeros(n, dtype=bool)
        if n == 0 or self._names.size == 0:
            return found
        fits = pc.and_(
            pc.and_not(pc.string_is_ascii(values), pc.match_substring(values, "\x00")),
            pc.less_equal(pc.binary_length(values), self._width),
        )
        candidates = np.flatnonzero(pc.fill_null(fits, False).to_numpy(zero_copy_only=False))
        if candidates.size == 0:
            return found
        wanted = np.array(
            pc.take(values, pa.array(candidates)).to_pylist(), dtype=self._names.dtype
        )
        at = np.searchsorted(self._names, wanted).clip(0, self._names.size - 1)
        found[candidates] = self._names[at] == wanted
        return found


def _is_sorted(array: npt.NDArray[np.bytes_]) -> bool:
    return bool((array[1:] >= array[:-1]).all())


@dataclass(frozen=True)
class PhotoZip:
    """A checked photo zip: its entry count and the names of the valid photos."""

    path: Path
    entries: int
    valid: PhotoNames


def photo_is_valid(data: bytes) -> bool:
    """A JPEG of exactly 358×441 pixels and at most 40,960 bytes (E113 otherwise), whole:
    its image data ends with the end-of-image marker. (Inside the image data a 0xFF byte
    is always followed by 0x00 or a restart marker, so an end-of-image marker after the
    last start-of-scan marker is the image's own: a photo cut short has none. Decoding
    every photo would say more, at about a millisecond each.) A header claiming more
    pixels than Pillow opens (a decompression bomb) is no valid photo either."""
    if len(data) > PHOTO_MAX_BYTES or not data.startswith(b"\xff\xd8"):
        return False
    scan = data.rfind(b"\xff\xda")
    if scan < 0 or data.rfind(b"\xff\xd9") < scan + 2:
        return False
    try:
        with Image.open(io.BytesIO(data)) as img:
            return img.format == "JPEG" and img.size == (PHOTO_WIDTH, PHOTO_HEIGHT)
    except (UnidentifiedImageError, Image.DecompressionBombError, OSError, ValueError):
        return False


@dataclass
class _Directory:
    """Every entry of a central directory, in its order: its name as ``zipfile`` reads it
    (cut at a NUL) in fixed-width bytes, and CRC, sizes, local header offset, flags and
    method. ``unsafe``: some name is not a plain file name (then ``names`` is not kept)."""

    names: npt.NDArray[np.bytes_]
    headers: npt.NDArray[np.void]
    unsafe: bool

    def __len__(self) -> int:
        return int(self.headers.size)


def _corrupt() -> FileLevelError:
    return FileLevelError(FileCode.F10, "photo zip corrupt")


def _end_record(fh: BinaryIO) -> tuple[int, int, int, int | None]:
    """Where the central directory starts, its size, how far bytes prepended to the zip
    moved every local header, found as ``zipfile`` finds them (APPNOTE 4.3.14–16), and how
    many entries the end record announces (None: more than it can say, and no ZIP64
    record)."""
    file_size = fh.seek(0, io.SEEK_END)
    tail_size = min(file_size, _END.size + _U16)
    fh.seek(file_size - tail_size)
    tail = fh.read(tail_size)
    at = tail.rfind(b"PK\x05\x06")
    if at < 0 or len(tail) - at < _END.size:
        raise _corrupt()
    end_pos = file_size - tail_size + at
    count, cd_size, cd_offset = _END.unpack_from(tail, at)[4:7]
    announced: int | None = None if count == _U16 else count
    head = end_pos
    if end_pos >= _END64_LOCATOR.size:
        fh.seek(end_pos - _END64_LOCATOR.size)
        sig, disk, _, disks = _END64_LOCATOR.unpack(fh.read(_END64_LOCATOR.size))
        if sig == b"PK\x06\x07":
            head = end_pos - _END64_LOCATOR.size - _END64.size
            if disk != 0 or disks > 1 or head < 0:
                raise _corrupt()
            fh.seek(head)
            record = _END64.unpack(fh.read(_END64.size))
            if record[0] != b"PK\x06\x06":
                raise _corrupt()
            announced, cd_size, cd_offset = record[7], record[8], record[9]
    concat = head - cd_size - cd_offset
    if concat < 0:
        raise _corrupt()
    return cd_offset + concat, cd_size, concat, announced


def _extra_values(extra: bytes, size: int, csize: int, offset: int) -> tuple[int, int, int]:
    """Check an extra field's blocks (APPNOTE 4.5) and take the 64-bit sizes and offset of
    its ZIP64 block for those the header holds as 0xFFFFFFFF, as ``zipfile`` does."""
    pos = 0
    while len(extra) - pos >= 4:
        tag, length = struct.unpack_from("<HH", extra, pos)
        if pos + 4 + length > len(extra):
            raise _corrupt()
        if tag == 1:
            body = extra[pos + 4 : pos + 4 + length]
            try:
                if size == _U32:
                    (size,), body = struct.unpack_from("<Q", body), body[8:]
                if csize == _U32:
                    (csize,), body = struct.unpack_from("<Q", body), body[8:]
                if offset == _U32:
                    (offset,) = struct.unpack_from("<Q", body)
            except struct.error as exc:
                raise _corrupt() from exc
        pos += 4 + length
    return size, csize, offset


def _directory_blocks(fh: BinaryIO) -> Iterator[_Directory]:
    """The central directory, read in blocks of ``_BLOCK`` bytes, one ``_Directory`` of
    the entries whose headers end in each: a Python loop only finds where each header
    starts; its fields and names are read for the whole block at once."""
    start, cd_size, concat, _ = _end_record(fh)
    fh.seek(start)
    left = cd_size
    rest = b""
    while left > 0:
        block = fh.read(min(_BLOCK, left))
        if not block:
            raise _corrupt()
        left -= len(block)
        buf = rest + block
        starts: list[int] = []
        with_extra: list[int] = []
        pos = 0
        while len(buf) - pos >= _CENTRAL_SIZE:
            n, m, k = _CENTRAL_LENGTHS.unpack_from(buf, pos + 28)
            end = pos + _CENTRAL_SIZE + n + m + k
            if end > len(buf):
                break
            if m:
                with_extra.append(len(starts))
            starts.append(pos)
            pos = end
        rest = buf[pos:]
        if left == 0 and rest:
            raise _corrupt()
        if not starts:
            continue
        raw = np.frombuffer(buf + bytes(_NAME_LIMIT + 2), dtype=np.uint8)
        first = np.asarray(starts, dtype=np.int64)
        rows = raw[first[:, None] + np.arange(_CENTRAL_SIZE)]
        headers = rows.view(_CENTRAL).ravel().astype(_WIDE)
        if (headers["signature"] != _CENTRAL_SIGNATURE).any():
            raise _corrupt()
        name_len = rows[:, 28].astype(np.int64) | rows[:, 29].astype(np.int64) << 8
        names, safe = _names(raw, first + _CENTRAL_SIZE, name_len)
        for i in with_extra:
            at = starts[i] + _CENTRAL_SIZE + int(name_len[i])
            m = int(rows[i, 30]) | int(rows[i, 31]) << 8
            h = headers[i]
            values = _extra_values(
                buf[at : at + m], int(h["size"]), int(h["csize"]), int(h["offset"])
            )
            h["size"], h["csize"], h["offset"] = values
        headers["offset"] += np.uint64(concat)
        yield _Directory(names, headers, not safe)


def _read_directory(fh: BinaryIO) -> _Directory:
    """The whole central directory at once (names kept only when every one is safe)."""
    blocks = list(_directory_blocks(fh))
    unsafe = any(b.unsafe for b in blocks)
    headers = np.concatenate([b.headers for b in blocks]) if blocks else np.zeros(0, dtype=_WIDE)
    names = (
        np.concatenate([b.names for b in blocks])
        if blocks and not unsafe
        else np.zeros(0, dtype="S1")
    )
    return _Directory(names, headers, unsafe)


def _names(
    raw: npt.NDArray[np.uint8], at: npt.NDArray[np.int64], lengths: npt.NDArray[np.int64]
) -> tuple[npt.NDArray[np.bytes_], bool]:
    """The names at ``at`` as fixed-width bytes, each cut at its first NUL like
    ``zipfile``, and whether every one is a plain file name: 1–100 characters of
    ``[0-9A-Za-z_.-]``, no ``..``. ``raw`` ends with ``_NAME_LIMIT + 2`` spare bytes."""
    width = min(int(lengths.max()), _NAME_LIMIT + 1) + 1
    columns = np.arange(width)
    window = raw[at[:, None] + columns]
    window[columns >= lengths[:, None]] = 0
    nul = window == 0
    cut = np.where(nul.any(axis=1), nul.argmax(axis=1), width)
    inside = columns < cut[:, None]
    window[~inside] = 0
    safe = (
        bool(((cut >= 1) & (cut <= _NAME_LIMIT)).all())
        and bool(_PLAIN[window[inside]].all())
        and not bool(((window[:, :-1] == ord(".")) & (window[:, 1:] == ord("."))).any())
    )
    if not safe:
        return np.zeros(0, dtype="S1"), False
    fixed = np.ascontiguousarray(window[:, : max(int(cut.max()), 1)])
    return fixed.view(f"S{fixed.shape[1]}").ravel(), True


#: how a photo may be stored in the zip: as is, or deflated (what every zip tool writes)
_METHODS = (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED)
#: general purpose flag bit 0: the entry is encrypted
_ENCRYPTED = 0x1


#: compressed bytes read at a time while an entry is inflated
_INFLATE_BLOCK = 1 << 16


def unpack_entry(
    read: Callable[[int], bytes], method: int, csize: int, size: int, crc: int
) -> bytes:
    """A photo entry's bytes, from its data as ``read(n)`` gives it (at most ``n`` bytes a
    call, ``b""`` at its end), checked against the central directory's sizes and CRC-32:
    ``zipfile.BadZipFile`` otherwise.

    An entry declared larger than a photo may be is refused unread, and never more than
    its declared size and one byte are inflated, ``_INFLATE_BLOCK`` compressed bytes at a
    time: a header that declares less than its data inflates to (a zip bomb: 1.3 MB of
    zeros inflate to 1.3 GB) is found after one byte too many. (``zipfile`` inflates up
    to 1 GiB at once and then cuts it to the declared size.)"""
    if size > PHOTO_MAX_BYTES:
        raise zipfile.BadZipFile("photo entry declared larger than a photo may be")
    if method == zipfile.ZIP_STORED:
        if csize != size:
            raise zipfile.BadZipFile("stored photo entry's sizes differ")
        data = read(size)
    elif method == zipfile.ZIP_DEFLATED:
        data = _inflate(read, csize, size + 1)
    else:
        raise zipfile.BadZipFile("photo entry stored other than plain or deflated")
    if len(data) != size:
        raise zipfile.BadZipFile("photo entry inflates to other than its declared size")
    if zlib.crc32(data) != crc:
        raise zipfile.BadZipFile("photo entry differs from its CRC-32")
    return data


def _inflate(read: Callable[[int], bytes], csize: int, limit: int) -> bytes:
    """A raw deflate stream of ``csize`` bytes, inflated up to ``limit`` bytes at most."""
    inflater = zlib.decompressobj(-zlib.MAX_WBITS)
    parts: list[bytes] = []
    made = 0
    left = csize
    pending = b""
    try:
        while made < limit:
            if not pending:
                if inflater.eof or left <= 0:
                    break
                pending = read(min(_INFLATE_BLOCK, left))
                if not pending:
                    raise zipfile.BadZipFile("photo entry cut short")
                left -= len(pending)
            part = inflater.decompress(pending, limit - made)
            pending = inflater.unconsumed_tail
            parts.append(part)
            made += len(part)
    except zlib.error as exc:
        raise zipfile.BadZipFile("photo entry not a deflate stream") from exc
    return b"".join(parts)


def _seek_data(fh: BinaryIO, offset: int, name: bytes) -> int:
    """Move ``fh`` to an entry's data, past its local header (APPNOTE 4.3.7), which must
    name the entry as its central directory does; where its data starts."""
    fh.seek(offset)
    local = fh.read(_LOCAL.size)
    if len(local) != _LOCAL.size:
        raise zipfile.BadZipFile("photo entry's local header cut short")
    fields = _LOCAL.unpack(local)
    if fields[0] != b"PK\x03\x04" or fh.read(fields[9]).split(b"\x00", 1)[0] != name:
        raise zipfile.BadZipFile("photo entry's local header differs from its directory")
    return fh.seek(fields[10], io.SEEK_CUR)


def _entry_bytes(fh: BinaryIO, name: bytes, header: np.void) -> tuple[bytes, int]:
    """One entry of the central directory, unpacked with the bounds of
    :func:`unpack_entry`, and where its data starts in the zip: F10 when it cannot be
    unpacked, or inflates to other than its declared size (a header that lies about its
    size is a corrupt zip, as a CRC that differs)."""
    try:
        start = _seek_data(fh, int(header["offset"]), name)
    except zipfile.BadZipFile as exc:
        raise _corrupt() from exc
    method, flags = int(header["method"]), int(header["flags"])
    if method not in _METHODS or flags & _ENCRYPTED:
        raise FileLevelError(FileCode.F10, "photo zip entry stored other than plain or deflated")
    try:
        data = unpack_entry(
            fh.read, method, int(header["csize"]), int(header["size"]), int(header["crc"])
        )
    except zipfile.BadZipFile as exc:
        raise _corrupt() from exc
    return data, start


#: a local header's signature and the lengths of its name and extra field (APPNOTE 4.3.7)
_LOCAL_LENGTHS = struct.Struct("<4s22xHH")
#: bytes read past a local header's name in the same ``pread``, for its extra field
_EXTRA_SLACK = 64


def _stored_data(fd: int, offset: int, name: bytes, csize: int) -> bytes | None:
    """An entry's data as the zip holds it (``csize`` bytes after its local header, read
    with one ``pread`` mostly), or None when its local header does not name it as
    :func:`_seek_data` requires."""
    head = _LOCAL.size + len(name)
    block = os.pread(fd, head + _EXTRA_SLACK + csize, offset)
    if len(block) < head:
        return None
    signature, name_len, extra_len = _LOCAL_LENGTHS.unpack_from(block)
    local_name = block[_LOCAL.size : _LOCAL.size + name_len].split(b"\x00", 1)[0]
    if signature != b"PK\x03\x04" or local_name != name:
        return None
    start = _LOCAL.size + name_len + extra_len
    if start + csize > len(block):
        return os.pread(fd, csize, offset + start)
    return block[start : start + csize]


def check_photo_zip(
    path: Path, control: bytes | None, expected_name: str, digest: tuple[int, str] | None = None
) -> PhotoZip:
    """Check a photo zip against its control file and read its entries (F10 on failure).

    ``digest`` is the zip's size and SHA-256 when already computed (while landing it).
    An entry whose name is not a plain file name (a directory part, ``..``, an absolute
    path, a character outside ``[0-9A-Za-z_.-]``) makes the whole zip unsafe: F10. The
    control file's SHA-256 covers every byte of the zip; each distinct photo is decoded
    once, and its CRC checked then: an entry of the same size and CRC-32 as a photo
    decoded before is that photo only when its stored bytes are that photo's, byte for
    byte (a bureau can give any bytes any CRC-32), and is decoded on its own otherwise.
    """
    if control is None:
        raise FileLevelError(FileCode.F10, "photo zip control file missing")
    try:
        ok = Control.parse(control, expected_name)
    except FileLevelError as exc:
        raise FileLevelError(FileCode.F10, "photo zip control file malformed") from exc
    if digest is None:
        with path.open("rb") as fh:
            digest = sha256_of(fh)
    if digest != (ok.size, ok.sha256):
        raise FileLevelError(
            FileCode.F10, "photo zip size or SHA-256 differs from its control file"
        )
    # The directory is read block by block, each block's photos judged as it comes, so
    # only the names and a flag per entry are kept (intake checks the zip while it reads
    # lines: a million entries peak at about 80 MB).
    entries = 0
    unsafe = False
    names: list[npt.NDArray[np.bytes_]] = []
    flags: list[npt.NDArray[np.bool_]] = []
    judged = _Judged()
    with path.open("rb") as fh, path.open("rb") as photos:
        announced = _end_record(fh)[3]
        if announced is not None and announced != ok.record_count:
            raise FileLevelError(
                FileCode.F10, "photo zip entry count differs from its control file"
            )
        for block in _directory_blocks(fh):
            entries += len(block)
            unsafe = unsafe or block.unsafe
            if not unsafe:
                names.append(block.names)
                flags.append(_valid_entries(photos, block, judged))
    if entries != ok.record_count:
        raise FileLevelError(FileCode.F10, "photo zip entry count differs from its control file")
    if unsafe:
        raise FileLevelError(FileCode.F10, "photo zip has an unsafe entry name")
    every = np.concatenate(names) if names else np.zeros(0, dtype="S1")
    del names
    order = np.argsort(every, kind="stable")
    every = every[order]
    if (every[1:] == every[:-1]).any():
        raise FileLevelError(FileCode.F10, "photo zip has repeated entry names")
    valid = np.concatenate(flags)[order] if flags else np.zeros(0, dtype=bool)
    del order
    return PhotoZip(path, entries, PhotoNames(every[valid]))


#: how a decoded photo is stored in the zip, and whether it is valid
_STORED = np.dtype([("good", "?"), ("method", "<u2"), ("csize", "<u8"), ("start", "<u8")])


class _Judged:
    """Photos already decoded, by (size, CRC): one sorted array of keys and, for each,
    its verdict and how and where in the zip its bytes are stored (a million distinct
    photos take 27 MB)."""

    def __init__(self) -> None:
        self.keys = np.zeros(0, dtype=np.uint64)
        self.photos = np.zeros(0, dtype=_STORED)

    def find(
        self, keys: npt.NDArray[np.uint64]
    ) -> tuple[npt.NDArray[np.bool_], npt.NDArray[np.intp]]:
        """For ``keys``: which are known, and where (meaningless for those not known)."""
        if self.keys.size == 0:
            return np.zeros(keys.size, dtype=bool), np.zeros(keys.size, dtype=np.intp)
        at = np.searchsorted(self.keys, keys).clip(max=self.keys.size - 1)
        return self.keys[at] == keys, at

    def add(self, keys: npt.NDArray[np.uint64], photos: npt.NDArray[np.void]) -> None:
        """Sorted distinct ``keys``, none known yet, with their photos."""
        at = np.searchsorted(self.keys, keys)
        self.keys = np.insert(self.keys, at, keys)
        self.photos = np.insert(self.photos, at, photos)


def _valid_entries(fh: BinaryIO, directory: _Directory, judged: _Judged) -> npt.NDArray[np.bool_]:
    """Which entries are valid photos, decoding one entry per distinct (CRC, size) not
    already ``judged`` (which it adds to). Any other entry of a known (CRC, size) takes
    that photo's verdict only when it is stored as that photo is (method, compressed
    size) and its stored bytes are that photo's, compared byte for byte; otherwise it is
    decoded on its own. The copies are read grouped by the photo they are compared with,
    so one photo's bytes are held at a time."""
    headers = directory.headers
    small = np.flatnonzero(headers["size"] <= PHOTO_MAX_BYTES)
    keys = (headers["size"][small] << np.uint64(32)) | headers["crc"][small].astype(np.uint64)
    distinct, first = np.unique(keys, return_index=True)
    new = np.flatnonzero(~judged.find(distinct)[0])
    decoded = small[first[new]]
    photos = np.zeros(new.size, dtype=_STORED)
    photos["method"] = headers["method"][decoded]
    photos["csize"] = headers["csize"][decoded]
    for j, i in enumerate(decoded.tolist()):
        data, start = _entry_bytes(fh, directory.names[i], headers[i])
        photos["good"][j], photos["start"][j] = photo_is_valid(data), start
    judged.add(distinct[new], photos)
    valid = np.zeros(len(directory), dtype=bool)
    valid[decoded] = photos["good"]
    copies = np.setdiff1d(small, decoded, assume_unique=True)
    at = judged.find(keys[np.searchsorted(small, copies)])[1]
    order = np.argsort(at, kind="stable")
    copies, at = copies[order], at[order]
    same_way = (
        (headers["method"][copies] == judged.photos["method"][at])
        & (headers["flags"][copies] & _ENCRYPTED == 0)
        & (headers["csize"][copies] == judged.photos["csize"][at])
    )
    fd = fh.fileno()
    held, photo, good = -1, b"", False
    verdicts: list[bool] = []
    for i, k, same, offset, csize, name in zip(
        copies.tolist(),
        at.tolist(),
        same_way.tolist(),
        headers["offset"][copies].tolist(),
        headers["csize"][copies].tolist(),
        directory.names[copies].tolist(),
        strict=True,
    ):
        if same:
            if k != held:
                held, photo = k, os.pread(fd, csize, int(judged.photos["start"][k]))
                good = bool(judged.photos["good"][k])
            if _stored_data(fd, offset, name, csize) == photo:
                verdicts.append(good)
                continue
        verdicts.append(photo_is_valid(_entry_bytes(fh, name, headers[i])[0]))
    valid[copies] = verdicts
    return valid


def _name_encoding(info: zipfile.ZipInfo) -> str:
    """How an entry's name is encoded in its headers (APPNOTE 4.4.4, bit 11)."""
    return "utf-8" if info.flag_bits & 0x800 else "cp437"
