"""File names (ICD §3) and control files (ICD §2), and the file-level error they raise."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import BinaryIO

from schemas.codes import FileCode, message

NAME_PATTERN = re.compile(
    r"^(?P<type>[A-Z]{3,12})_(?P<sender>[A-Z][0-9]{2,6})_(?P<receiver>[A-Z][0-9]{2,6})"
    r"_(?P<date>[0-9]{8})_(?P<seq>[0-9]{3})\.(?P<ext>txt|zip)$"
)
#: a name safe enough to answer with ``NAME.rej`` even when it breaks §3 (ICD §2)
SAFE_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,100}$")


class FileLevelError(Exception):
    """The whole file is rejected with ``code`` (ICD §6). ``detail`` never holds field values."""

    def __init__(self, code: FileCode, detail: str = "") -> None:
        self.code = code
        self.detail = detail
        super().__init__(f"{code}: {detail or message(code)}")


@dataclass(frozen=True)
class FileName:
    """``TYPE_SENDER_RECEIVER_YYYYMMDD_SEQ.EXT`` (ICD §3)."""

    type: str
    sender: str
    receiver: str
    business_date: str
    seq: str
    ext: str = "txt"

    @classmethod
    def parse(cls, name: str) -> FileName:
        """Parse a remote name; anything that does not match §3 is F07."""
        m = NAME_PATTERN.fullmatch(name)
        if m is None or m.group("seq") == "000":
            raise FileLevelError(
                FileCode.F07, "file name does not match TYPE_SENDER_RECEIVER_YYYYMMDD_SEQ.EXT"
            )
        return cls(m["type"], m["sender"], m["receiver"], m["date"], m["seq"], m["ext"])

    def __str__(self) -> str:
        return (
            f"{self.type}_{self.sender}_{self.receiver}_{self.business_date}_{self.seq}.{self.ext}"
        )

    def response(self) -> FileName:
        """The response's name: ``<TYPE>RSP``, parties swapped, same date and SEQ (ICD §3)."""
        return FileName(
            self.type + "RSP", self.receiver, self.sender, self.business_date, self.seq, "txt"
        )

    def companion(self, ext: str) -> FileName:
        return FileName(self.type, self.sender, self.receiver, self.business_date, self.seq, ext)


@dataclass(frozen=True)
class Control:
    """A control file ``NAME.ok``: ``NAME|BYTES|SHA256_HEX|RECORD_COUNT`` (ICD §2)."""

    name: str
    size: int
    sha256: str
    record_count: int

    @classmethod
    def parse(cls, data: bytes, expected_name: str) -> Control:
        """Parse ``NAME.ok``; any malformation is F01."""
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise FileLevelError(FileCode.F01, "control file is not UTF-8") from exc
        if text.endswith("\r\n"):
            text = text[:-2]
        elif text.endswith("\n"):
            text = text[:-1]
        parts = text.split("|")
        if (
            len(parts) != 4
            or parts[0] != expected_name
            or not re.fullmatch(r"[0-9]{1,15}", parts[1])
            or not re.fullmatch(r"[0-9a-fA-F]{64}", parts[2])
            or not re.fullmatch(r"[0-9]{1,10}", parts[3])
        ):
            raise FileLevelError(FileCode.F01, "control file malformed")
        return cls(parts[0], int(parts[1]), parts[2].lower(), int(parts[3]))

    @classmethod
    def for_bytes(cls, name: str, data: bytes, record_count: int) -> Control:
        return cls(name, len(data), hashlib.sha256(data).hexdigest(), record_count)

    def render(self) -> bytes:
        return f"{self.name}|{self.size}|{self.sha256}|{self.record_count}\r\n".encode()

    def verify(self, size: int, sha256: str) -> None:
        """The data file must have the announced size and SHA-256 (F01 otherwise)."""
        if size != self.size or sha256 != self.sha256:
            raise FileLevelError(FileCode.F01, "size or SHA-256 differs from the control file")


def sha256_of(stream: BinaryIO, block: int = 1 << 20) -> tuple[int, str]:
    """Size and SHA-256 of a stream, read in blocks (memory stays flat)."""
    digest = hashlib.sha256()
    size = 0
    while chunk := stream.read(block):
        digest.update(chunk)
        size += len(chunk)
    return size, digest.hexdigest()


#: one letter per TYPE the hub originates, so its BATCH_NOs never repeat across types
_BATCH_LETTER = {
    "ACCTOPEN": "A",
    "BANKEVT": "E",
    "CARDRSP": "C",
    "DISB": "D",
    "PERSO": "P",
    "RECON": "R",
    "STATUS": "S",
}


def hub_batch_no(type_: str, receiver: str, business_date: str, seq: int | str) -> str:
    """The BATCH_NO of a file the hub originates (ICD §3: its own BATCH_NO; §4.1: unique
    per sender): a letter for the TYPE, the receiver, the business date and the SEQ,
    e.g. ``CR44010020261122001`` (at most 20 characters for any party code)."""
    return f"{_BATCH_LETTER[type_]}{receiver}{business_date}{int(seq):03d}"
