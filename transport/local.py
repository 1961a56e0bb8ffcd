"""A ``Remote`` on a local directory: for unit tests, benchmarks and the simulators."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import ClassVar

from transport.remote import BaseRemote, RemoteEntry, copy_to_file, split_path


class LocalRemote(BaseRemote):
    """The tree under ``root`` seen as a counterparty's SFTP tree, with the same semantics
    as ``SftpRemote``: ``.part`` then an atomic ``os.replace``, and moves that never
    overwrite (hard link, then unlink)."""

    _log: ClassVar[logging.Logger] = logging.getLogger(__name__)

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def _path(self, path: str, *, allow_base: bool = False) -> Path:
        return self.root.joinpath(*split_path(path, allow_base=allow_base))

    def list_dir(self, path: str) -> list[RemoteEntry]:
        try:
            with os.scandir(self._path(path, allow_base=True)) as entries:
                found = [
                    RemoteEntry(e.name, e.stat(follow_symlinks=False).st_size)
                    for e in entries
                    if e.is_file(follow_symlinks=False)
                ]
        except FileNotFoundError:
            return []
        return sorted(found, key=lambda e: e.name)

    def read_bytes(self, path: str) -> bytes:
        return self._path(path).read_bytes()

    def download(self, path: str, local_path: Path) -> tuple[int, str]:
        with self._path(path).open("rb") as src:
            return copy_to_file(src, local_path)

    def exists(self, path: str) -> bool:
        return self._path(path, allow_base=True).exists()

    def makedirs(self, path: str) -> None:
        self._path(path, allow_base=True).mkdir(parents=True, exist_ok=True)

    def remove(self, path: str) -> None:
        self._path(path).unlink()

    def close(self) -> None:
        pass

    def _names(self, dir: str) -> set[str]:
        try:
            return set(os.listdir(self._path(dir, allow_base=True)))
        except FileNotFoundError:
            return set()

    def _upload(self, path: str, data: bytes) -> None:
        target = self._path(path)
        part = target.with_name(target.name + ".part")
        with open(part, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(part, target)

    def _rename_no_replace(self, src: str, dst: str) -> bool:
        source = self._path(src)
        try:
            os.link(source, self._path(dst))
        except FileExistsError:
            return False
        source.unlink()
        return True
