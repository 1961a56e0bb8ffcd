"""The ``Remote`` contract (ICD §2), one suite run against every adapter: a local
directory (``LocalRemote``), the embedded asyncssh server and a real OpenSSH sshd (both
through ``SftpRemote``). Each adapter serves a fresh local directory, ``root``, so a test
prepares the remote tree and checks it with plain file operations."""

from __future__ import annotations

import hashlib
import os
import stat
import tracemalloc
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import ClassVar

import asyncssh
import pytest

from sandbox.sftp_server import EmbeddedSftpServer
from schemas.files import Control
from tests.support.sshd import OpenSshServer
from transport.errors import PublishConflictError, RemoteNameError
from transport.local import LocalRemote
from transport.remote import BaseRemote, RemoteEntry, files
from transport.sftp import SftpRemote, SftpSettings

NAME = "APPLY_R440100_B001_20261122_001.txt"
ZIP = "APPLY_R440100_B001_20261122_001.zip"
DATA = "1|张三|100.00\r\n2|李四|200.00\r\n".encode("gb18030")
NOT_UTF8 = b"APPLY_R440100_B001_20261122_\xff\xfe.txt"


class _HostileSftp(asyncssh.SFTPServer):
    """Lists, after a directory's real entries, the entries planted for it: names no
    file system holds (``/``, NUL, ``.`` or ``..`` as a file), as a hostile server may."""

    planted: ClassVar[dict[bytes, list[asyncssh.SFTPName]]] = {}

    async def scandir(self, path: bytes) -> AsyncIterator[asyncssh.SFTPName]:
        async for entry in super().scandir(path):
            yield entry
        for entry in self.planted.get(os.path.normpath(self.map_path(path)), []):
            yield entry


class _HostileServer(EmbeddedSftpServer):
    sftp_class = _HostileSftp


@dataclass
class Adapter:
    """A ``Remote`` and the local directory it serves as its base directory."""

    kind: str
    remote: BaseRemote
    root: Path

    def plant(self, path: str | bytes, data: bytes = b"") -> Path | bytes:
        """A file at ``path`` under ``root`` (bytes: a name that need not be UTF-8)."""
        if isinstance(path, bytes):
            target = os.path.join(os.fsencode(self.root), path)
            os.makedirs(os.path.dirname(target), exist_ok=True)
            with open(target, "wb") as f:
                f.write(data)
            return target
        local = self.root / path
        local.parent.mkdir(parents=True, exist_ok=True)
        local.write_bytes(data)
        return local

    def list_also(self, dir: str, entries: dict[bytes, int]) -> None:
        """Make the server list ``entries`` (name: ``st_mode``) in ``dir`` besides what
        is there; only a server written to misbehave can."""
        if self.kind != "embedded":
            pytest.skip(f"{self.kind} lists only names a file system holds")
        local = os.path.normpath(os.fsencode(self.root / dir))
        _HostileSftp.planted[local] = [
            asyncssh.SFTPName(name, attrs=asyncssh.SFTPAttrs(permissions=mode, size=3))
            for name, mode in entries.items()
        ]


def _settings(conn: dict[str, object]) -> SftpSettings:
    return SftpSettings.from_airflow(
        SimpleNamespace(
            host=conn["host"], port=conn["port"], login=conn["login"], extra_dejson=conn["extra"]
        )
    )


@pytest.fixture(scope="module")
def embedded_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedSftpServer]:
    state = tmp_path_factory.mktemp("contract-embedded")
    with _HostileServer(state / "root", state_dir=state / "state") as server:
        yield server


@pytest.fixture(
    params=["local", "embedded", pytest.param("openssh", marks=pytest.mark.sftp)],
)
def adapter(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Adapter]:
    login = uuid.uuid4().hex
    remote: BaseRemote
    if request.param == "local":
        root = tmp_path / "remote"
        root.mkdir()
        remote = LocalRemote(root)
    elif request.param == "embedded":
        server: EmbeddedSftpServer = request.getfixturevalue("embedded_server")
        root = server.root / login
        root.mkdir()
        remote = SftpRemote(_settings(server.connection(login)))
    else:
        sshd: OpenSshServer = request.getfixturevalue("sshd")
        root = sshd.served_root / login
        root.mkdir()
        remote = SftpRemote(_settings(sshd.connection(root)))
    with remote:
        yield Adapter(request.param, remote, root)


def _tree(*roots: Path) -> dict[bytes, bytes]:
    """Every file under ``roots`` with its content."""
    found = {}
    for root in roots:
        for dirpath, _, names in os.walk(os.fsencode(root)):
            for name in names:
                path = os.path.join(dirpath, name)
                with open(path, "rb") as f:
                    found[path] = f.read()
    return found


# ------------------------------------------------------------------ list_dir


def test_list_dir_returns_every_entry_sorted_by_name_with_its_kind_part_files_included(
    adapter: Adapter,
) -> None:
    adapter.plant("pickup/b.txt", b"12345")
    adapter.plant("pickup/a.txt", b"1")
    adapter.plant("pickup/a.txt.ok.part")
    (adapter.root / "pickup" / "archive" / "20261122").mkdir(parents=True)
    (adapter.root / "pickup" / "link").symlink_to(adapter.root / "pickup" / "a.txt")

    assert adapter.remote.list_dir("pickup") == [
        RemoteEntry("a.txt", 1, "file"),
        RemoteEntry("a.txt.ok.part", 0, "file"),
        RemoteEntry("archive", 0, "dir"),
        RemoteEntry("b.txt", 5, "file"),
        RemoteEntry("link", 0, "other"),
    ]
    assert [e.is_file for e in adapter.remote.list_dir("pickup")] == [
        True,
        True,
        False,
        True,
        False,
    ]


def test_a_directory_of_many_entries_is_listed_whole(adapter: Adapter) -> None:
    names = [f"{n:04d}.txt" for n in range(250)]  # more than one SFTP NAME response
    for name in names:
        adapter.plant(f"pickup/{name}", b"x")

    assert [e.name for e in adapter.remote.list_dir("pickup")] == names


def test_listing_a_missing_directory_finds_nothing(adapter: Adapter) -> None:
    assert adapter.remote.list_dir("pickup") == []
    assert adapter.remote.list_dir("") == []


def test_directories_named_like_a_data_file_or_a_zip_are_listed_as_directories(
    adapter: Adapter,
) -> None:
    (adapter.root / "pickup" / NAME).mkdir(parents=True)
    (adapter.root / "pickup" / ZIP).mkdir()
    adapter.plant(f"pickup/{NAME}.ok", b"x")

    entries = adapter.remote.list_dir("pickup")

    assert [(e.name, e.kind, e.addressable) for e in entries] == [
        (NAME, "dir", True),
        (f"{NAME}.ok", "file", True),
        (ZIP, "dir", True),
    ]
    assert files(entries) == [RemoteEntry(f"{NAME}.ok", 1, "file")]


def test_a_name_that_is_not_utf8_is_listed_unaddressable_beside_the_valid_files(
    adapter: Adapter,
) -> None:
    adapter.plant(b"pickup/" + NOT_UTF8, b"bad")
    adapter.plant(f"pickup/{NAME}", DATA)

    entries = adapter.remote.list_dir("pickup")

    bad = NOT_UTF8.decode("utf-8", "surrogateescape")
    assert entries == [RemoteEntry(NAME, len(DATA), "file"), RemoteEntry(bad, 3, "file")]
    assert [e.addressable for e in entries] == [True, False]
    assert files(entries) == [RemoteEntry(NAME, len(DATA), "file")]
    with pytest.raises(RemoteNameError):
        adapter.remote.read_bytes(f"pickup/{bad}")
    with pytest.raises(RemoteNameError):
        adapter.remote.move(f"pickup/{bad}", "pickup/rejected/20261122")
    assert adapter.remote.read_bytes(f"pickup/{NAME}") == DATA


def test_names_no_file_system_holds_are_listed_unaddressable_and_never_stop_the_listing(
    adapter: Adapter,
) -> None:
    adapter.plant(f"pickup/{NAME}", DATA)
    regular = stat.S_IFREG | 0o644
    adapter.list_also(
        "pickup",
        {b"../../etc/passwd": regular, b"a\x00b.txt": regular, b".": regular, b"..": regular},
    )

    entries = adapter.remote.list_dir("pickup")

    assert [(e.name, e.kind, e.addressable) for e in entries] == [
        (".", "file", False),
        ("..", "file", False),
        ("../../etc/passwd", "file", False),
        (NAME, "file", True),
        ("a\x00b.txt", "file", False),
    ]
    assert files(entries) == [RemoteEntry(NAME, len(DATA), "file")]


def test_a_name_outside_the_icd_but_fit_for_a_path_is_addressable(adapter: Adapter) -> None:
    for name in ("名单.txt", "a b.txt", "x" * 101):
        adapter.plant(f"pickup/{name}", name.encode())

    entries = adapter.remote.list_dir("pickup")

    assert all(e.addressable for e in entries)
    assert [adapter.remote.read_bytes(f"pickup/{e.name}") for e in entries] == [
        e.name.encode() for e in entries
    ]


# ------------------------------------------------------------------ reading


def test_read_bytes_returns_the_content_and_a_missing_file_raises_file_not_found(
    adapter: Adapter,
) -> None:
    adapter.plant(f"pickup/{NAME}", DATA)

    assert adapter.remote.read_bytes(f"pickup/{NAME}") == DATA
    with pytest.raises(FileNotFoundError):
        adapter.remote.read_bytes("pickup/nothing.txt")


def test_download_copies_the_file_and_returns_its_size_and_sha256(
    adapter: Adapter, tmp_path: Path
) -> None:
    data = DATA * 100_000
    adapter.plant(f"pickup/{NAME}", data)

    got = adapter.remote.download(f"pickup/{NAME}", tmp_path / NAME)

    assert got == (len(data), hashlib.sha256(data).hexdigest())
    assert (tmp_path / NAME).read_bytes() == data


@pytest.mark.parametrize("limit", [100, 9 << 20], ids=["small", "past-apart_from"])
def test_a_download_with_a_limit_stops_one_byte_past_it_however_large_the_file(
    limit: int, adapter: Adapter, tmp_path: Path
) -> None:
    planted = adapter.plant(f"pickup/{NAME}", DATA)
    os.truncate(planted, 1 << 30)  # a gibibyte, mostly a hole

    got = adapter.remote.download(f"pickup/{NAME}", tmp_path / NAME, limit=limit)

    copied = (tmp_path / NAME).read_bytes()
    assert got == (limit + 1, hashlib.sha256(copied).hexdigest())
    assert len(copied) == limit + 1 and copied.startswith(DATA)


def test_a_download_with_a_limit_the_file_keeps_copies_it_whole(
    adapter: Adapter, tmp_path: Path
) -> None:
    adapter.plant(f"pickup/{NAME}", DATA)

    got = adapter.remote.download(f"pickup/{NAME}", tmp_path / NAME, limit=len(DATA))

    assert got == (len(DATA), hashlib.sha256(DATA).hexdigest())
    assert (tmp_path / NAME).read_bytes() == DATA


def test_downloading_a_missing_file_raises_file_not_found_and_writes_nothing(
    adapter: Adapter, tmp_path: Path
) -> None:
    with pytest.raises(FileNotFoundError):
        adapter.remote.download("pickup/nothing.txt", tmp_path / "nothing.txt")

    assert not (tmp_path / "nothing.txt").exists()


@pytest.mark.parametrize("size", [0, 1, 5 << 20, (9 << 20) + 7])
def test_checksum_returns_size_and_sha256_and_writes_nothing(
    size: int, adapter: Adapter, tmp_path: Path
) -> None:
    data = (DATA * (size // len(DATA) + 1))[:size]
    adapter.plant(f"pickup/{NAME}", data)
    before = _tree(tmp_path, adapter.root)

    assert adapter.remote.checksum(f"pickup/{NAME}") == (size, hashlib.sha256(data).hexdigest())
    assert _tree(tmp_path, adapter.root) == before


def test_checksum_of_a_large_file_never_holds_it_in_memory(adapter: Adapter) -> None:
    if adapter.kind == "embedded":
        pytest.skip("the embedded server runs in this process: its own buffers would count")
    data = os.urandom(1 << 20) * 48
    adapter.plant(f"pickup/{NAME}", data)

    tracemalloc.start()
    try:
        got = adapter.remote.checksum(f"pickup/{NAME}")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    assert got == (len(data), hashlib.sha256(data).hexdigest())
    assert peak < len(data) // 4


def test_checksum_of_a_missing_file_raises_file_not_found(adapter: Adapter) -> None:
    with pytest.raises(FileNotFoundError):
        adapter.remote.checksum("pickup/nothing.txt")


def test_exists_sees_files_and_directories(adapter: Adapter) -> None:
    adapter.plant(f"pickup/{NAME}", DATA)

    assert adapter.remote.exists(f"pickup/{NAME}")
    assert adapter.remote.exists("pickup")
    assert adapter.remote.exists("")
    assert not adapter.remote.exists("pickup/nothing.txt")
    assert not adapter.remote.exists("drop")


# ------------------------------------------------------------------ writing


def test_makedirs_creates_every_missing_level_and_may_be_repeated(adapter: Adapter) -> None:
    adapter.remote.makedirs("pickup/archive/20261122")
    adapter.remote.makedirs("pickup/archive/20261122")
    adapter.remote.makedirs("")

    assert (adapter.root / "pickup" / "archive" / "20261122").is_dir()
    assert adapter.remote.list_dir("pickup") == [RemoteEntry("archive", 0, "dir")]


def test_moving_a_file_into_a_dated_archive_creates_it_and_never_overwrites(
    adapter: Adapter,
) -> None:
    moved = []
    for content in (b"one", b"two", b"three"):
        adapter.plant(f"pickup/{NAME}", content)
        moved.append(adapter.remote.move(f"pickup/{NAME}", "pickup/archive/20261122"))

    archive = adapter.root / "pickup" / "archive" / "20261122"
    assert moved == [
        f"pickup/archive/20261122/{NAME}",
        f"pickup/archive/20261122/{NAME}.1",
        f"pickup/archive/20261122/{NAME}.2",
    ]
    assert [(p.name, p.read_bytes()) for p in sorted(archive.iterdir())] == [
        (NAME, b"one"),
        (f"{NAME}.1", b"two"),
        (f"{NAME}.2", b"three"),
    ]
    assert adapter.remote.list_dir("pickup") == [RemoteEntry("archive", 0, "dir")]


def test_moving_a_missing_file_raises_file_not_found(adapter: Adapter) -> None:
    with pytest.raises(FileNotFoundError):
        adapter.remote.move(f"pickup/{NAME}", "pickup/archive/20261122")


def test_a_directory_named_like_a_data_file_is_moved_whole_and_never_overwrites(
    adapter: Adapter,
) -> None:
    for content in (b"one", b"two"):
        adapter.plant(f"pickup/{NAME}/inside.txt", content)
        adapter.remote.move(f"pickup/{NAME}", "pickup/rejected/20261122")

    rejected = adapter.root / "pickup" / "rejected" / "20261122"
    assert adapter.remote.list_dir("pickup/rejected/20261122") == [
        RemoteEntry(NAME, 0, "dir"),
        RemoteEntry(f"{NAME}.1", 0, "dir"),
    ]
    assert (rejected / NAME / "inside.txt").read_bytes() == b"one"
    assert (rejected / f"{NAME}.1" / "inside.txt").read_bytes() == b"two"
    assert adapter.remote.list_dir("pickup") == [RemoteEntry("rejected", 0, "dir")]


def test_a_move_never_replaces_an_empty_directory_of_the_same_name(adapter: Adapter) -> None:
    (adapter.root / "pickup" / "rejected" / NAME).mkdir(parents=True)
    (adapter.root / "pickup" / NAME).mkdir()

    assert adapter.remote.move(f"pickup/{NAME}", "pickup/rejected") == f"pickup/rejected/{NAME}.1"
    adapter.plant(f"pickup/{NAME}", DATA)
    assert adapter.remote.move(f"pickup/{NAME}", "pickup/rejected") == f"pickup/rejected/{NAME}.2"


def test_publish_writes_the_data_then_its_control_file_and_leaves_no_part_file(
    adapter: Adapter,
) -> None:
    assert adapter.remote.publish("drop", NAME, DATA, 2) is True

    control = Control.for_bytes(NAME, DATA, 2).render()
    assert (adapter.root / "drop" / NAME).read_bytes() == DATA
    assert (adapter.root / "drop" / f"{NAME}.ok").read_bytes() == control
    assert control == f"{NAME}|{len(DATA)}|{hashlib.sha256(DATA).hexdigest()}|2\r\n".encode()
    assert adapter.remote.list_dir("drop") == [
        RemoteEntry(NAME, len(DATA), "file"),
        RemoteEntry(f"{NAME}.ok", len(control), "file"),
    ]


def test_publishing_the_same_file_again_changes_nothing(adapter: Adapter) -> None:
    adapter.remote.publish("drop", NAME, DATA, 2)
    before = {p.name: p.stat() for p in (adapter.root / "drop").iterdir()}

    assert adapter.remote.publish("drop", NAME, DATA, 2) is False

    after = {p.name: p.stat() for p in (adapter.root / "drop").iterdir()}
    assert {n: (s.st_ino, s.st_mtime_ns) for n, s in after.items()} == {
        n: (s.st_ino, s.st_mtime_ns) for n, s in before.items()
    }


def test_publish_calls_staged_with_the_file_in_place_before_its_control_file_is(
    adapter: Adapter,
) -> None:
    drop = adapter.root / "drop"
    seen: list[list[str]] = []

    adapter.remote.publish(
        "drop", NAME, DATA, 2, staged=lambda: seen.append(sorted(p.name for p in drop.iterdir()))
    )

    assert seen == [[NAME, f"{NAME}.ok.part"]]
    assert sorted(p.name for p in drop.iterdir()) == [NAME, f"{NAME}.ok"]


def test_a_failure_where_staged_is_called_leaves_the_file_not_yet_takeable(
    adapter: Adapter,
) -> None:
    def fails() -> None:
        raise ConnectionError("the database went away")

    with pytest.raises(ConnectionError):
        adapter.remote.publish("drop", NAME, DATA, 2, staged=fails)

    assert not (adapter.root / "drop" / f"{NAME}.ok").exists()


def test_a_half_published_file_is_uploaded_again_and_completed(adapter: Adapter) -> None:
    adapter.plant(f"drop/{NAME}", DATA[:5])
    adapter.plant(f"drop/{NAME}.part", DATA[:3])

    assert adapter.remote.publish("drop", NAME, DATA, 2) is True

    drop = adapter.root / "drop"
    assert (drop / NAME).read_bytes() == DATA
    assert (drop / f"{NAME}.ok").read_bytes() == Control.for_bytes(NAME, DATA, 2).render()
    assert sorted(p.name for p in drop.iterdir()) == [NAME, f"{NAME}.ok"]


def test_a_different_control_file_already_there_is_a_conflict_and_nothing_changes(
    adapter: Adapter,
) -> None:
    adapter.remote.publish("drop", NAME, DATA, 2)

    with pytest.raises(PublishConflictError):
        adapter.remote.publish("drop", NAME, b"other content\r\n", 1)

    drop = adapter.root / "drop"
    assert (drop / NAME).read_bytes() == DATA
    assert Control.parse((drop / f"{NAME}.ok").read_bytes(), NAME).record_count == 2


def test_a_file_name_unfit_for_a_control_line_is_not_published(adapter: Adapter) -> None:
    for name in ("a/b.txt", "a|b.txt", "..", "", "名单.txt"):
        with pytest.raises(RemoteNameError):
            adapter.remote.publish("drop", name, DATA, 1)

    assert not (adapter.root / "drop").exists()


def test_remove_deletes_a_file_and_only_that_file(adapter: Adapter) -> None:
    adapter.remote.publish("drop", NAME, DATA, 2)

    adapter.remote.remove(f"drop/{NAME}")

    assert not adapter.remote.exists(f"drop/{NAME}")
    assert adapter.remote.exists(f"drop/{NAME}.ok")
    with pytest.raises(FileNotFoundError):
        adapter.remote.remove(f"drop/{NAME}")


# ------------------------------------------------------------------ paths

UNSAFE_PATHS = [
    "../x",
    "/etc/passwd",
    "pickup/../../x",
    "pickup/./x",
    "pickup/",
    "pickup//x",
    "",
    "pickup/a\x00b",
    "pickup/" + NOT_UTF8.decode("utf-8", "surrogateescape"),
]


@pytest.mark.parametrize("path", UNSAFE_PATHS)
def test_a_path_that_could_leave_the_base_directory_or_name_nothing_is_refused(
    path: str, adapter: Adapter, tmp_path: Path
) -> None:
    remote = adapter.remote
    adapter.plant(f"pickup/{NAME}", DATA)
    calls = [
        lambda: remote.read_bytes(path),
        lambda: remote.download(path, tmp_path / "out"),
        lambda: remote.checksum(path),
        lambda: remote.remove(path),
        lambda: remote.move(path, "pickup/archive"),
    ]
    if path:  # "" is the base directory, fine where a directory is meant
        calls += [
            lambda: remote.list_dir(path),
            lambda: remote.exists(path),
            lambda: remote.makedirs(path),
            lambda: remote.move(f"pickup/{NAME}", path),
            lambda: remote.publish(path, NAME, DATA, 2),
        ]
    for call in calls:
        with pytest.raises(RemoteNameError):
            call()

    assert not (tmp_path / "out").exists()
    assert _tree(adapter.root) == {os.fsencode(adapter.root / "pickup" / NAME): DATA}
