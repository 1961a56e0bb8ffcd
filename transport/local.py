"""A ``Remote`` on a local directory: for unit tests, benchmarks and the simulators."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import ClassVar

from transport.remote import (
    BaseRemote,
    EntryKind,
    RemoteEntry,
    copy_to_file,
    decode_name,
    digest_of,
    sorted_entries,
    split_path,
)


class LocalRemote(BaseRemote):
    """The tree under ``root`` seen as a counterparty's SFTP tree, with the same semantics
    as ``SftpRemote``: ``.part`` then an atomic ``os.replace``, and moves that never
    overwrite (a file: hard link, then unlink; a directory: a rename when nothing has the
    name, as OpenSSH's sftp-server does)."""

    _log: ClassVar[logging.Logger] = logging.getLogger(__name__)

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def _path(self, path: str, *, allow_base: bool = False) -> Path:
        return self.root.joinpath(*split_path(path, allow_base=allow_base))

    def list_dir(self, path: str) -> list[RemoteEntry]:
        """Names are read as bytes and decoded as a server's would be
        (:func:`~transport.remote.decode_name`); a symbolic link is ``other``."""
        found = []
        try:
            with os.scandir(os.fsencode(self._path(path, allow_base=True))) as entries:
                for e in entries:
                    kind: EntryKind = "other"
                    if e.is_file(follow_symlinks=False):
                        kind = "file"
                    elif e.is_dir(follow_symlinks=False):
                        kind = "dir"
                    size = e.stat(follow_symlinks=False).st_size if kind == "file" else 0
                    found.append(RemoteEntry(decode_name(e.name), size, kind))
        except FileNotFoundError:
            return []
        return sorted_entries(found)

    def read_bytes(self, path: str, limit: int | None = None) -> bytes:
        with self._path(path).open("rb") as src:
            return src.read() if limit is None else src.read(limit + 1)

    def download(self, path: str, local_path: Path, limit: int | None = None) -> tuple[int, str]:
        with self._path(path).open("rb") as src:
            return copy_to_file(src, local_path, limit)

    def checksum(self, path: str) -> tuple[int, str]:
        with self._path(path).open("rb") as src:
            return digest_of(src)

    def exists(self, path: str) -> bool:
        return self._path(path, allow_base=True).exists()

    def makedirs(self, path: str) -> None:
        self._path(path, allow_base=True).mkdir(parents=True, exist_ok=True)

    def remove(self, path: str) -> None:
        self._path(path).unlink()

    def close(self) -> None:
        pass

    def _upload(
        self, path: str, data: bytes, before_rename: Callable[[], None] | None = None
    ) -> None:
        target = self._path(path)
        part = target.with_name(target.name + ".part")
        with open(part, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        if before_rename is not None:
            before_rename()
        os.replace(part, target)

    def _rename_no_replace(self, src: str, dst: str) -> bool:
        source, target = self._path(src), self._path(dst)
        if source.is_dir() and not source.is_symlink():
            if os.path.lexists(target):
                return False
            os.rename(source, target)
            return True
        try:
            os.link(source, target, follow_symlinks=False)
        except FileExistsError:
            return False
        source.unlink()
        return True
