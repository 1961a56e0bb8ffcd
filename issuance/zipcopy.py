"""Copy photos from the bureaus' zips into a PERSO zip byte for byte (ICD §5.5).

A stored entry's bytes are taken as they are and their CRC-32 checked against the
source's, so no photo is decoded or re-encoded: the copy costs one ``pread``, a CRC and
two header packs per photo, and the target's SHA-256 is computed as it is written. The
central directory of each source zip is read once per :class:`PhotoSources` (by
:mod:`zipfile`, ZIP64 included), however many PERSO files take photos from it.
Compressed entries are inflated by :func:`issuance.photos.unpack_entry`. No entry is
read past its declared size, nor one declared larger than a photo may be: never more
than a photo's bytes are held per entry, whatever the source's headers say.
"""

from __future__ import annotations

import hashlib
import os
import struct
import zipfile
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from issuance.photos import PHOTO_MAX_BYTES, unpack_entry

_LOCAL = struct.Struct("<IHHHHHIIIHH")
_CENTRAL = struct.Struct("<IHHHHHHIIIHHHHHII")
_END = struct.Struct("<IHHHHIIH")
_LIMIT = 0xFFFFFFFF
#: general purpose flag bits (APPNOTE 4.4.4): encrypted, sizes in a data descriptor
_ENCRYPTED, _DESCRIPTOR = 0x1, 0x8
#: bytes read past a stored entry's name in the same ``pread``, for its extra field
_EXTRA_SLACK = 64
#: bytes gathered before one write to the target
_WRITE_BLOCK = 1 << 20


def _dos_stamp(business_date: str) -> tuple[int, int]:
    year, month, day = int(business_date[:4]), int(business_date[4:6]), int(business_date[6:])
    return 0, ((year - 1980) << 9) | (month << 5) | day


@dataclass(frozen=True)
class _Entry:
    header_offset: int
    name_len: int
    size: int
    csize: int
    crc: int
    method: int
    flags: int

    @property
    def stored(self) -> bool:
        """Stored as is, with its sizes in its local header: copied with one ``pread``."""
        return self.method == zipfile.ZIP_STORED and not self.flags & _DESCRIPTOR


def _unpacked(fd: int, entry: _Entry, zip_path: str) -> bytes:
    """A compressed entry (or one with a data descriptor), read in blocks after its
    local header and inflated with the bounds of ``unpack_entry``."""
    local = os.pread(fd, 30, entry.header_offset)
    if len(local) != 30:
        raise zipfile.BadZipFile(f"photo entry damaged in {Path(zip_path).name}")
    name_len, extra_len = struct.unpack_from("<HH", local, 26)
    at = entry.header_offset + 30 + name_len + extra_len

    def read(n: int) -> bytes:
        nonlocal at
        block = os.pread(fd, n, at)
        at += len(block)
        return block

    try:
        return unpack_entry(read, entry.method, entry.csize, entry.size, entry.crc)
    except zipfile.BadZipFile as exc:
        raise zipfile.BadZipFile(f"photo entry damaged in {Path(zip_path).name}") from exc


class PhotoSources:
    """The bureaus' photo zips kept on arrival, opened once each, indexed by entry name."""

    def __init__(self) -> None:
        self._index: dict[str, dict[str, _Entry]] = {}
        self._files: dict[str, BinaryIO] = {}

    def __enter__(self) -> PhotoSources:
        return self

    def __exit__(self, *exc: object) -> None:
        for fh in self._files.values():
            fh.close()
        self._files.clear()

    def _entries(self, zip_path: str) -> dict[str, _Entry]:
        index = self._index.get(zip_path)
        if index is None:
            with zipfile.ZipFile(zip_path) as zf:
                index = {
                    info.filename: _Entry(
                        info.header_offset,
                        len(
                            info.orig_filename.encode(
                                "utf-8" if info.flag_bits & 0x800 else "cp437"
                            )
                        ),
                        info.file_size,
                        info.compress_size,
                        info.CRC,
                        info.compress_type,
                        info.flag_bits,
                    )
                    for info in zf.infolist()
                }
            self._index[zip_path] = index
            self._files[zip_path] = open(zip_path, "rb")
        return index

    def read(self, zip_path: str, name: str) -> tuple[bytes, int]:
        """An entry's bytes and CRC-32, checked against the source's central directory;
        ``zipfile.BadZipFile`` for an entry missing, encrypted, declared larger than a
        photo may be, or whose data is not what its header declares."""
        entry = self._entries(zip_path).get(name)
        if entry is None:
            raise zipfile.BadZipFile(f"photo entry missing in {Path(zip_path).name}")
        if entry.size > PHOTO_MAX_BYTES:
            raise zipfile.BadZipFile(f"photo entry larger than a photo in {Path(zip_path).name}")
        if entry.flags & _ENCRYPTED:
            raise zipfile.BadZipFile(f"photo entry encrypted in {Path(zip_path).name}")
        fd = self._files[zip_path].fileno()
        if not entry.stored:
            return _unpacked(fd, entry, zip_path), entry.crc
        start = 30 + entry.name_len
        block = os.pread(fd, start + _EXTRA_SLACK + entry.size, entry.header_offset)
        name_len, extra_len = struct.unpack_from("<HH", block, 26)
        begin = 30 + name_len + extra_len
        data = block[begin : begin + entry.size]
        if len(data) < entry.size:
            data = os.pread(fd, entry.size, entry.header_offset + begin)
        if len(data) != entry.size or zlib.crc32(data) != entry.crc:
            raise zipfile.BadZipFile(f"photo entry damaged in {Path(zip_path).name}")
        return data, entry.crc


def copy_photos(
    sources: Mapping[str, Sequence[tuple[str, str]]],
    target: Path,
    business_date: str,
    photos: PhotoSources | None = None,
) -> tuple[int, str]:
    """Write ``target`` with, for each source zip, its entries renamed (``(entry, new_name)``).
    Returns the number of entries written and the target's SHA-256 (hex)."""
    if photos is None:
        with PhotoSources() as own:
            return copy_photos(sources, target, business_date, own)
    dos_time, dos_date = _dos_stamp(business_date)
    central: list[bytes] = []
    offset = 0
    count = 0
    sha = hashlib.sha256()
    pending: list[bytes] = []
    held = 0
    with target.open("wb") as out:

        def flush() -> None:
            nonlocal held
            block = b"".join(pending)
            sha.update(block)
            out.write(block)
            pending.clear()
            held = 0

        for zip_path, names in sources.items():
            for entry, new_name in names:
                data, crc = photos.read(zip_path, entry)
                encoded = new_name.encode("ascii")
                size = len(data)
                if offset + size + 30 + len(encoded) > _LIMIT or count >= 0xFFFF:
                    raise ValueError("PERSO photo zip too large for a plain zip")
                pending.append(
                    _LOCAL.pack(
                        0x04034B50, 20, 0, 0, dos_time, dos_date, crc, size, size, len(encoded), 0
                    )
                    + encoded
                )
                pending.append(data)
                held += size
                if held >= _WRITE_BLOCK:
                    flush()
                central.append(
                    _CENTRAL.pack(
                        0x02014B50,
                        20,
                        20,
                        0,
                        0,
                        dos_time,
                        dos_date,
                        crc,
                        size,
                        size,
                        len(encoded),
                        0,
                        0,
                        0,
                        0,
                        0o100644 << 16,
                        offset,
                    )
                    + encoded
                )
                offset += 30 + len(encoded) + size
                count += 1
        directory = b"".join(central)
        pending.append(directory)
        pending.append(_END.pack(0x06054B50, 0, 0, count, count, len(directory), offset, 0))
        flush()
    return count, sha.hexdigest()
