"""The remote side of a counterparty connection, and the ICD write protocol on top of it.

ICD §2: every connection has a ``pickup`` and a ``drop`` directory. A writer uploads
``NAME.part`` and renames it to ``NAME``, then uploads ``NAME.ok.part`` and renames it to
``NAME.ok``; a reader takes ``NAME`` only once ``NAME.ok`` is there. Taken files move into
``pickup/archive/YYYYMMDD/`` (or ``pickup/rejected/YYYYMMDD/``) and archives are never
overwritten.

Paths are POSIX strings relative to the remote's base directory (``"pickup"``,
``"pickup/archive/20261122"``); ``""`` is the base directory itself.

A listing is untrusted input too (ICD §2): ``list_dir`` returns every entry a server
lists, whatever its name or kind, and never raises for one. A name that cannot be used as
a path component (not UTF-8, ``.``, ``..``, or holding ``/`` or NUL) comes back with
``addressable`` False and every method refuses it as a path (``RemoteNameError``); any
other name is addressable, ICD-valid or not (the reader rejects it F07).
"""

from __future__ import annotations

import hashlib
import logging
import posixpath
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import ClassVar, Literal, Protocol, Self

from schemas.files import SAFE_NAME, Control
from transport.errors import PublishConflictError, RemoteNameError, TransportError

#: how many ``NAME.1``, ``NAME.2``… are tried before a move gives up
MAX_ARCHIVE_SUFFIX = 999
#: bytes read and written at a time by ``download`` and ``checksum``
DOWNLOAD_BLOCK = 1 << 20

#: what a listed entry is: a regular file, a directory, or anything else (a symbolic
#: link, a device, a socket, an entry the server gave no type)
EntryKind = Literal["file", "dir", "other"]


def decode_name(raw: bytes) -> str:
    """A listed name as text: UTF-8, with any byte that is not UTF-8 kept as a lone
    surrogate (``surrogateescape``), so the name is shown and compared, never lost, and
    is not addressable (:func:`addressable`)."""
    return raw.decode("utf-8", "surrogateescape")


def addressable(name: str) -> bool:
    """Whether a listed name can be used as one component of a remote path: valid UTF-8
    (no lone surrogate from :func:`decode_name`), not empty, ``.`` or ``..``, and
    holding no ``/`` or NUL. The same rule :func:`split_path` applies to every path."""
    if name in ("", ".", "..") or "/" in name or "\x00" in name:
        return False
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


@dataclass(frozen=True)
class RemoteEntry:
    """One entry of a remote directory; ``name`` is untrusted input (ICD §2). ``size`` is
    the file's size for a regular file and 0 for anything else. ``addressable`` says
    whether ``name`` can be used in a path (:func:`addressable`); an entry that is not
    can be reported, never read, moved or removed through a ``Remote``."""

    name: str
    size: int
    kind: EntryKind

    @property
    def is_file(self) -> bool:
        return self.kind == "file"

    @property
    def addressable(self) -> bool:
        return addressable(self.name)


def files(entries: Iterable[RemoteEntry]) -> list[RemoteEntry]:
    """The addressable regular files among ``entries``, in their order: what a reader
    may take. Directories, other kinds and names unfit for a path are left out; a caller
    that answers those (F07, a directory moved to ``rejected/``) looks at ``entries``."""
    return [e for e in entries if e.is_file and e.addressable]


def sorted_entries(entries: Iterable[RemoteEntry]) -> list[RemoteEntry]:
    """Entries in the order ``list_dir`` returns them: by name (code point order)."""
    return sorted(entries, key=lambda e: e.name)


class Remote(Protocol):
    """A counterparty's SFTP tree (or a local stand-in for it)."""

    def list_dir(self, path: str) -> list[RemoteEntry]:
        """Every entry of ``path`` (files, directories, anything else) sorted by name,
        ``.part`` files included, ``.`` and ``..`` left out when they are the directory
        and its parent; a missing directory is empty. Never raises for an entry, whatever
        its name: a name unfit for a path comes back with ``addressable`` False.
        :func:`files` keeps the regular files a reader may take."""
        ...

    def read_bytes(self, path: str, limit: int | None = None) -> bytes:
        """The file's content; ``FileNotFoundError`` when it is missing. With ``limit``,
        no more than ``limit + 1`` bytes are read: more than ``limit`` says the file is
        larger, whatever size the server listed, and the rest is never read."""
        ...

    def download(self, path: str, local_path: Path, limit: int | None = None) -> tuple[int, str]:
        """Copy the file to ``local_path`` in blocks (memory stays flat however large the
        file) and return its size and SHA-256 (hex), computed while copying;
        ``FileNotFoundError`` when it is missing. With ``limit`` (the size a control file
        declares) the copy stops at ``limit + 1`` bytes: a size above ``limit`` says the
        file is larger, its remaining bytes are never read, and the size and SHA-256 are
        those of the bytes copied."""
        ...

    def download_apart(
        self, path: str, local_path: Path, limit: int | None = None
    ) -> tuple[int, str]:
        """``download``, safe to run in another thread while this process goes on with
        other work (never with this remote at the same time)."""
        ...

    def checksum(self, path: str) -> tuple[int, str]:
        """Size and SHA-256 (hex) of the file, read in blocks: memory stays flat however
        large the file, and nothing is written locally (a file rejected F07 is recorded by
        its digest, never copied). ``FileNotFoundError`` when it is missing."""
        ...

    def exists(self, path: str) -> bool: ...

    def makedirs(self, path: str) -> None: ...

    def move(self, path: str, dest_dir: str) -> str:
        """Move a file or a directory into ``dest_dir`` (created if missing) keeping its
        name, or ``NAME.1``, ``NAME.2``… when the name is taken; nothing there is ever
        overwritten. Returns the new path; ``FileNotFoundError`` when ``path`` is
        missing."""
        ...

    def publish(
        self,
        dir: str,
        name: str,
        data: bytes,
        record_count: int,
        staged: Callable[[], None] | None = None,
    ) -> bool:
        """Write ``name`` and its ``name.ok`` by the ICD §2 protocol. True when it uploaded,
        False when the same file is already published; ``PublishConflictError`` when a
        different ``name.ok`` is there. ``staged`` is called once ``name`` is in place and
        ``name.ok.part`` written, just before the rename that lets the counterparty take
        the file."""
        ...

    def remove(self, path: str) -> None: ...

    def close(self) -> None: ...

    def __enter__(self) -> Self: ...

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...


def safe_join(base: Path, name: str) -> Path:
    """``base / name`` for a remote file name, refusing any name a local path must not be
    built from: only ``[A-Za-z0-9_.-]{1,100}``, never ``.`` or ``..`` (ICD §2)."""
    if not isinstance(name, str) or not SAFE_NAME.fullmatch(name) or name in (".", ".."):
        raise RemoteNameError(f"unsafe remote name {name!r}")
    return base / name


def split_path(path: str, *, allow_base: bool = False) -> tuple[str, ...]:
    """The components of a relative remote path. Refuses absolute paths and components
    that are not :func:`addressable` (empty, ``.``, ``..``, NUL-bearing, not UTF-8), so no
    path leaves the base directory or names what a listing could not. ``""`` is the base
    directory itself, allowed only where a directory is meant."""
    if path == "":
        if allow_base:
            return ()
        raise RemoteNameError("empty remote path")
    parts = tuple(path.split("/"))
    for part in parts:
        if not addressable(part):
            raise RemoteNameError(f"unsafe remote path {path!r}")
    return parts


class _Readable(Protocol):
    def read(self, size: int) -> bytes: ...


def digest_of(src: _Readable) -> tuple[int, str]:
    """Size and SHA-256 (hex) of what ``src`` yields, read in ``DOWNLOAD_BLOCK`` blocks."""
    digest = hashlib.sha256()
    size = 0
    while block := src.read(DOWNLOAD_BLOCK):
        digest.update(block)
        size += len(block)
    return size, digest.hexdigest()


def next_read(copied: int, limit: int | None, block: int = DOWNLOAD_BLOCK) -> int:
    """How many bytes to ask for next, ``copied`` being copied already: a block, or no
    more than reach ``limit + 1`` (0: stop, the file is known to be larger than
    ``limit``)."""
    return block if limit is None else max(0, min(block, limit + 1 - copied))


def copy_to_file(src: _Readable, local_path: Path, limit: int | None = None) -> tuple[int, str]:
    """Copy ``src`` to ``local_path`` in ``DOWNLOAD_BLOCK`` blocks, no more than
    ``limit + 1`` bytes with a ``limit``; size and SHA-256 (hex) of what was copied. A copy
    that fails part-way is removed."""
    digest = hashlib.sha256()
    size = 0
    try:
        with open(local_path, "wb") as dst:
            while (want := next_read(size, limit)) and (block := src.read(want)):
                digest.update(block)
                dst.write(block)
                size += len(block)
    except BaseException:
        local_path.unlink(missing_ok=True)
        raise
    return size, digest.hexdigest()


def join(dir: str, name: str) -> str:
    return posixpath.join(dir, name) if dir else name


def archive_names(name: str) -> list[str]:
    """``name``, then ``name.1`` … ``name.999``: the names a move may use, in order."""
    return [name] + [f"{name}.{n}" for n in range(1, MAX_ARCHIVE_SUFFIX + 1)]


class BaseRemote(ABC):
    """``publish``, ``move`` and the context manager, written once over a few primitives."""

    _log: ClassVar[logging.Logger] = logging.getLogger(__name__)

    @abstractmethod
    def list_dir(self, path: str) -> list[RemoteEntry]: ...

    @abstractmethod
    def read_bytes(self, path: str, limit: int | None = None) -> bytes: ...

    @abstractmethod
    def download(
        self, path: str, local_path: Path, limit: int | None = None
    ) -> tuple[int, str]: ...

    def download_apart(
        self, path: str, local_path: Path, limit: int | None = None
    ) -> tuple[int, str]:
        return self.download(path, local_path, limit)

    @abstractmethod
    def checksum(self, path: str) -> tuple[int, str]: ...

    @abstractmethod
    def exists(self, path: str) -> bool: ...

    @abstractmethod
    def makedirs(self, path: str) -> None: ...

    @abstractmethod
    def remove(self, path: str) -> None: ...

    @abstractmethod
    def close(self) -> None: ...

    @abstractmethod
    def _upload(
        self, path: str, data: bytes, before_rename: Callable[[], None] | None = None
    ) -> None:
        """Write ``path.part``, call ``before_rename`` if given, then atomically rename it
        over ``path``."""

    @abstractmethod
    def _rename_no_replace(self, src: str, dst: str) -> bool:
        """Rename the file or directory ``src`` to ``dst``; False, with nothing changed,
        when ``dst`` exists."""

    def publish(
        self,
        dir: str,
        name: str,
        data: bytes,
        record_count: int,
        staged: Callable[[], None] | None = None,
    ) -> bool:
        """ICD §2 write protocol, idempotent for a re-run of the same task.

        - ``name.ok`` present with exactly our control line: already published, no-op.
        - ``name.ok`` present with anything else: ``PublishConflictError``; a complete file
          the counterparty may already be reading is never overwritten.
        - ``name`` present without ``name.ok``: an earlier attempt stopped between the
          renames; ``name`` is uploaded again through ``.part`` and replaced.

        ``staged`` is called between the last upload and the last rename: ``name`` is in
        place, ``name.ok.part`` written, and nothing of the file can have been taken yet.
        What it records durably (the outbox's mark) is known to hold from then on; an error
        it raises leaves the file unpublished.
        """
        split_path(dir, allow_base=True)
        safe_join(Path(), name)
        control = Control.for_bytes(name, data, record_count).render()
        ok_path = join(dir, name + ".ok")
        try:
            existing = self.read_bytes(ok_path, limit=len(control))
        except FileNotFoundError:
            existing = None
        if existing == control:
            self._log.info("already published %r", join(dir, name))
            return False
        if existing is not None:
            raise PublishConflictError(
                f"{ok_path} exists with a different control line; refusing to overwrite"
            )
        self.makedirs(dir)
        self._upload(join(dir, name), data)
        self._upload(ok_path, control, staged)
        self._log.info(
            "published %s (%d bytes, %d records)", join(dir, name), len(data), record_count
        )
        return True

    def move(self, path: str, dest_dir: str) -> str:
        """Move the file or directory ``path`` into ``dest_dir`` keeping its name; an
        archived entry is never overwritten, a later arrival of the same name becomes
        ``NAME.1``, ``NAME.2``…"""
        name = split_path(path)[-1]
        split_path(dest_dir, allow_base=True)
        self.makedirs(dest_dir)
        taken = {e.name for e in self.list_dir(dest_dir)}
        for candidate in archive_names(name):
            if candidate in taken:
                continue
            target = join(dest_dir, candidate)
            if self._rename_no_replace(path, target):
                self._log.info("moved %r to %r", path, target)
                return target
            taken.add(candidate)
        raise TransportError(f"no free name for {name} in {dest_dir}")

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
