"""Where one task leaves files for another: object storage at a configurable URL.

Any task may run on any worker, so nothing a later task reads may live only on one
worker's disk. What the hub keeps of a file (a received copy a later step reads, such as
a bureau's photo zip; an outbound file too large for its outbox row, such as a PERSO
photo zip) is written here before the database transaction that refers to it commits.
A crash between the two leaves at most an object no row names: harmless, since keys
carry the content's digest and a retry writes the same key.

The URL is any fsspec URL: a local directory (``file:///srv/sscard/storage`` or a plain
path, the embedded default ``<var>/storage``), or an S3-compatible bucket
(``s3://bucket/prefix`` with ``s3fs`` installed; endpoint and keys through fsspec's own
configuration or ``SSCARD_STORAGE_OPTIONS``, a JSON object of storage options).
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import fsspec
from fsspec.implementations.local import LocalFileSystem


def _safe_key(key: str) -> str:
    parts = key.split("/")
    if key.startswith("/") or any(p in ("", ".", "..") or "\x00" in p for p in parts):
        raise ValueError(f"unsafe storage key {key!r}")
    return key


@dataclass
class Storage:
    """Objects under one URL, addressed by relative keys (``received/sftp_r440100/…``)."""

    url: str
    options: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        fs, root = fsspec.core.url_to_fs(self.url, **self.options)
        self._fs = fs
        self._root = root.rstrip("/")
        self._local = isinstance(fs, LocalFileSystem)
        if self._local:
            Path(self._root).mkdir(parents=True, exist_ok=True)

    def _path(self, key: str) -> str:
        return f"{self._root}/{_safe_key(key)}"

    def put_file(self, local: Path, key: str, *, move: bool = False) -> str:
        """Store a local file under ``key`` (replacing an object of that key). With
        ``move`` a local store takes the file by a rename where it can (no copy of a
        photo zip of hundreds of MB); the local file is gone afterwards either way."""
        target = self._path(key)
        if self._local:
            Path(target).parent.mkdir(parents=True, exist_ok=True)
            tmp = f"{target}.{os.getpid()}.tmp"
            if move:
                shutil.move(local, tmp)
            else:
                shutil.copyfile(local, tmp)
            os.replace(tmp, target)
        else:
            self._fs.put_file(str(local), target)
            if move:
                local.unlink()
        return key

    @contextlib.contextmanager
    def open(self, key: str) -> Iterator[IO[bytes]]:
        """The object, seekable (a zip is read through it)."""
        with self._fs.open(self._path(key), "rb") as fh:
            yield fh

    def read_bytes(self, key: str) -> bytes:
        data: bytes = self._fs.cat_file(self._path(key))
        return data

    def get_file(self, key: str, local: Path) -> None:
        self._fs.get_file(self._path(key), str(local))

    def local_copy(self, key: str, work_dir: Path) -> Path:
        """A local file holding the object: the object itself in a local store, else a
        copy downloaded into ``work_dir`` (once per run)."""
        if self._local:
            return Path(self._path(key))
        target = work_dir / "storage" / _safe_key(key)
        if not target.exists():
            target.parent.mkdir(parents=True, exist_ok=True)
            self._fs.get_file(self._path(key), str(target))
        return target

    def exists(self, key: str) -> bool:
        return bool(self._fs.exists(self._path(key)))

    def remove(self, key: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            self._fs.rm_file(self._path(key))

    def keys(self, prefix: str = "") -> list[str]:
        """Every key under ``prefix`` (for tests and housekeeping)."""
        base = self._path(prefix) if prefix else self._root
        try:
            found = self._fs.find(base)
        except FileNotFoundError:
            return []
        root = self._root.lstrip("/") if not self._local else self._root
        out = []
        for p in found:
            p = str(p)
            rel = p[len(root) :] if p.startswith(root) else p.split(root, 1)[-1]
            out.append(rel.lstrip("/"))
        return sorted(out)
