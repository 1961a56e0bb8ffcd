"""The APPLY photo zip (ICD §5.1): entries are untrusted names; each photo is a JPEG
358 px wide × 441 px high of at most 40,960 bytes, kept byte for byte as sent."""

from __future__ import annotations

import io
import re
import zipfile
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from schemas.codes import FileCode
from schemas.files import Control, FileLevelError, sha256_of

PHOTO_WIDTH = 358
PHOTO_HEIGHT = 441
PHOTO_MAX_BYTES = 40_960
_SAFE_ENTRY = re.compile(r"[0-9A-Za-z_.-]{1,100}")


@dataclass(frozen=True)
class PhotoZip:
    """A checked photo zip: its entry count and the names of the valid photos."""

    path: Path
    entries: int
    valid: frozenset[str]


def photo_is_valid(data: bytes) -> bool:
    """A JPEG of exactly 358×441 pixels and at most 40,960 bytes (E113 otherwise)."""
    if len(data) > PHOTO_MAX_BYTES or not data.startswith(b"\xff\xd8"):
        return False
    try:
        with Image.open(io.BytesIO(data)) as img:
            return img.format == "JPEG" and img.size == (PHOTO_WIDTH, PHOTO_HEIGHT)
    except (UnidentifiedImageError, OSError, ValueError):
        return False


def check_photo_zip(path: Path, control: bytes | None, expected_name: str) -> PhotoZip:
    """Check a photo zip against its control file and read its entries (F10 on failure).

    An entry whose name is not a plain file name (a directory part, ``..``, an absolute
    path, a character outside ``[0-9A-Za-z_.-]``) makes the whole zip unsafe: F10.
    """
    if control is None:
        raise FileLevelError(FileCode.F10, "photo zip control file missing")
    try:
        ok = Control.parse(control, expected_name)
    except FileLevelError as exc:
        raise FileLevelError(FileCode.F10, "photo zip control file malformed") from exc
    with path.open("rb") as fh:
        size, sha = sha256_of(fh)
    if (size, sha) != (ok.size, ok.sha256):
        raise FileLevelError(
            FileCode.F10, "photo zip size or SHA-256 differs from its control file"
        )
    try:
        with zipfile.ZipFile(path) as zf:
            infos = zf.infolist()
            if len(infos) != ok.record_count:
                raise FileLevelError(
                    FileCode.F10, "photo zip entry count differs from its control file"
                )
            for info in infos:
                if (
                    info.is_dir()
                    or not _SAFE_ENTRY.fullmatch(info.filename)
                    or ".." in info.filename
                ):
                    raise FileLevelError(FileCode.F10, "photo zip has an unsafe entry name")
            names = [i.filename for i in infos]
            if len(set(names)) != len(names):
                raise FileLevelError(FileCode.F10, "photo zip has repeated entry names")
            valid: set[str] = set()
            seen: dict[tuple[int, int], bool] = {}
            for info in infos:
                if info.file_size > PHOTO_MAX_BYTES:
                    continue
                key = (info.CRC, info.file_size)
                if key not in seen:
                    seen[key] = photo_is_valid(zf.read(info))
                if seen[key]:
                    valid.add(info.filename)
            bad = zf.testzip()
            if bad is not None:
                raise FileLevelError(FileCode.F10, "photo zip entry corrupt")
    except zipfile.BadZipFile as exc:
        raise FileLevelError(FileCode.F10, "photo zip corrupt") from exc
    return PhotoZip(path, len(infos), frozenset(valid))


def read_photo(path: Path, entry: str) -> bytes:
    """One photo, byte for byte as the bureau sent it (for personalisation)."""
    with zipfile.ZipFile(path) as zf:
        return zf.read(entry)
