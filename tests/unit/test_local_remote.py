"""LocalRemote keeps the ICD §2 write, read and archive rules on a local directory."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from schemas.files import Control
from transport.errors import PublishConflictError, RemoteNameError
from transport.local import LocalRemote
from transport.remote import RemoteEntry

NAME = "APPLY_H01_B01_20261122_001.txt"
DATA = b"1|A|B\r\n2|C|D\r\n"


@pytest.fixture
def remote(tmp_path: Path) -> LocalRemote:
    return LocalRemote(tmp_path)


def test_publish_writes_the_data_then_its_control_file_and_leaves_no_part_file(
    remote: LocalRemote, tmp_path: Path
) -> None:
    assert remote.publish("drop", NAME, DATA, 2) is True

    assert (tmp_path / "drop" / NAME).read_bytes() == DATA
    assert (tmp_path / "drop" / f"{NAME}.ok").read_bytes() == (
        f"{NAME}|{len(DATA)}|{Control.for_bytes(NAME, DATA, 2).sha256}|2\r\n".encode()
    )
    assert remote.list_dir("drop") == [
        RemoteEntry(NAME, len(DATA)),
        RemoteEntry(f"{NAME}.ok", len(Control.for_bytes(NAME, DATA, 2).render())),
    ]


def test_publishing_the_same_file_again_changes_nothing(
    remote: LocalRemote, tmp_path: Path
) -> None:
    remote.publish("drop", NAME, DATA, 2)
    before = (tmp_path / "drop" / NAME).stat().st_ino

    assert remote.publish("drop", NAME, DATA, 2) is False
    assert (tmp_path / "drop" / NAME).stat().st_ino == before


def test_a_data_file_without_its_control_file_is_uploaded_again_and_completed(
    remote: LocalRemote, tmp_path: Path
) -> None:
    (tmp_path / "drop").mkdir()
    (tmp_path / "drop" / NAME).write_bytes(b"trunc")

    assert remote.publish("drop", NAME, DATA, 2) is True

    assert remote.read_bytes(f"drop/{NAME}") == DATA
    assert remote.exists(f"drop/{NAME}.ok")


def test_a_different_control_file_already_there_is_a_conflict_and_nothing_changes(
    remote: LocalRemote, tmp_path: Path
) -> None:
    remote.publish("drop", NAME, DATA, 2)

    with pytest.raises(PublishConflictError):
        remote.publish("drop", NAME, DATA, 3)

    assert Control.parse((tmp_path / "drop" / f"{NAME}.ok").read_bytes(), NAME).record_count == 2


def test_a_file_name_unfit_for_a_control_line_is_not_published(remote: LocalRemote) -> None:
    for name in ("a/b.txt", "a|b.txt", "..", ""):
        with pytest.raises(RemoteNameError):
            remote.publish("drop", name, DATA, 1)


def test_list_dir_lists_regular_files_by_name_and_skips_directories(
    remote: LocalRemote, tmp_path: Path
) -> None:
    (tmp_path / "pickup" / "archive").mkdir(parents=True)
    (tmp_path / "pickup" / "z.txt").write_bytes(b"zz")
    (tmp_path / "pickup" / "a.txt.part").write_bytes(b"a")

    assert remote.list_dir("pickup") == [RemoteEntry("a.txt.part", 1), RemoteEntry("z.txt", 2)]
    assert remote.list_dir("missing") == []


def test_moving_a_file_twice_into_the_same_archive_keeps_both(
    remote: LocalRemote, tmp_path: Path
) -> None:
    pickup = tmp_path / "pickup"
    pickup.mkdir()
    for content in (b"one", b"two", b"three"):
        (pickup / NAME).write_bytes(content)
        remote.move(f"pickup/{NAME}", "pickup/archive/20261122")

    archive = pickup / "archive" / "20261122"
    assert [(p.name, p.read_bytes()) for p in sorted(archive.iterdir())] == [
        (NAME, b"one"),
        (f"{NAME}.1", b"two"),
        (f"{NAME}.2", b"three"),
    ]
    assert not (pickup / NAME).exists()


def test_moving_a_missing_file_raises_file_not_found(remote: LocalRemote) -> None:
    with pytest.raises(FileNotFoundError):
        remote.move(f"pickup/{NAME}", "pickup/archive/20261122")


def test_reading_a_missing_file_raises_file_not_found(remote: LocalRemote) -> None:
    with pytest.raises(FileNotFoundError):
        remote.read_bytes(f"pickup/{NAME}")


def test_download_copies_the_file_and_returns_its_size_and_sha256(
    remote: LocalRemote, tmp_path: Path
) -> None:
    data = bytes(range(256)) * 9000 + b"tail"
    (tmp_path / "pickup").mkdir()
    (tmp_path / "pickup" / NAME).write_bytes(data)
    local = tmp_path / "local" / NAME
    local.parent.mkdir()

    assert remote.download(f"pickup/{NAME}", local) == (
        len(data),
        hashlib.sha256(data).hexdigest(),
    )
    assert local.read_bytes() == data


def test_downloading_a_missing_file_raises_file_not_found_and_writes_nothing(
    remote: LocalRemote, tmp_path: Path
) -> None:
    with pytest.raises(FileNotFoundError):
        remote.download(f"pickup/{NAME}", tmp_path / NAME)

    assert not (tmp_path / NAME).exists()


def test_paths_outside_the_root_are_refused(remote: LocalRemote) -> None:
    for path in ("../secret", "/etc/passwd", "pickup/../../x", "pickup/./x", "pickup/"):
        with pytest.raises(RemoteNameError):
            remote.read_bytes(path)
    with pytest.raises(RemoteNameError):
        remote.move(f"pickup/{NAME}", "../elsewhere")


def test_remove_deletes_a_file(remote: LocalRemote, tmp_path: Path) -> None:
    remote.publish("drop", NAME, DATA, 2)

    remote.remove(f"drop/{NAME}")

    assert not remote.exists(f"drop/{NAME}")
    assert remote.exists(f"drop/{NAME}.ok")
