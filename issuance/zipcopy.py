"""Copy photos from the bureaus' zips into a PERSO zip byte for byte (ICD §5.5).

A stored entry's bytes are taken as they are and their CRC-32 checked against the
source's, so no photo is decoded or re-encoded: the copy costs two ``pread`` calls, a
CRC and two header writes per photo. Compressed entries, and zips that would
need ZIP64, go through :mod:`zipfile`.
"""

from __future__ import annotations

import os
import struct
import zipfile
import zlib
from collections.abc import Mapping, Sequence
from pathlib import Path

_LOCAL = struct.Struct("<IHHHHHIIIHH")
_CENTRAL = struct.Struct("<IHHHHHHIIIHHHHHII")
_END = struct.Struct("<IHHHHIIH")
_LIMIT = 0xFFFFFFFF


def _dos_stamp(business_date: str) -> tuple[int, int]:
    year, month, day = int(business_date[:4]), int(business_date[4:6]), int(business_date[6:])
    return 0, ((year - 1980) << 9) | (month << 5) | day


def copy_photos(
    sources: Mapping[str, Sequence[tuple[str, str]]], target: Path, business_date: str
) -> int:
    """Write ``target`` with, for each source zip, its entries renamed (``(entry, new_name)``).
    Returns the number of entries written."""
    dos_time, dos_date = _dos_stamp(business_date)
    central: list[bytes] = []
    offset = 0
    count = 0
    with target.open("wb") as out:
        for zip_path, names in sources.items():
            with zipfile.ZipFile(zip_path) as zf, open(zip_path, "rb") as raw:
                fd = raw.fileno()
                for entry, new_name in names:
                    info = zf.getinfo(entry)
                    if info.compress_type == zipfile.ZIP_STORED and not info.flag_bits & 0x08:
                        head = os.pread(fd, 30, info.header_offset)
                        name_len, extra_len = struct.unpack("<HH", head[26:30])
                        data = os.pread(
                            fd, info.file_size, info.header_offset + 30 + name_len + extra_len
                        )
                        if len(data) != info.file_size or zlib.crc32(data) != info.CRC:
                            raise zipfile.BadZipFile(
                                f"photo entry damaged in {Path(zip_path).name}"
                            )
                    else:
                        data = zf.read(entry)
                    encoded = new_name.encode("ascii")
                    if offset + len(data) + 30 + len(encoded) > _LIMIT or count >= 0xFFFF:
                        raise ValueError("PERSO photo zip too large for a plain zip")
                    size = len(data)
                    out.write(
                        _LOCAL.pack(
                            0x04034B50,
                            20,
                            0,
                            0,
                            dos_time,
                            dos_date,
                            info.CRC,
                            size,
                            size,
                            len(encoded),
                            0,
                        )
                    )
                    out.write(encoded)
                    out.write(data)
                    central.append(
                        _CENTRAL.pack(
                            0x02014B50,
                            20,
                            20,
                            0,
                            0,
                            dos_time,
                            dos_date,
                            info.CRC,
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
        out.write(directory)
        out.write(_END.pack(0x06054B50, 0, 0, count, count, len(directory), offset, 0))
    return count
