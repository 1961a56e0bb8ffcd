"""The name rules of the ``Remote`` port, decided without any server (ICD §2: remote names
are untrusted). What every adapter, ``LocalRemote`` included, does with a remote tree is
in tests/contract."""

from __future__ import annotations

from pathlib import Path

import pytest

from transport.errors import RemoteNameError
from transport.remote import RemoteEntry, addressable, decode_name, files, safe_join

NAME = "APPLY_H01_B01_20261122_001.txt"


@pytest.mark.parametrize(
    "name", ["../x", "a/b", "", ".", "..", "x" * 101, "名单.txt", "a b.txt", "a\x00b"]
)
def test_safe_join_refuses_names_that_could_escape_or_surprise(name: str, tmp_path: Path) -> None:
    with pytest.raises(RemoteNameError):
        safe_join(tmp_path, name)


def test_safe_join_accepts_icd_names(tmp_path: Path) -> None:
    assert safe_join(tmp_path, NAME) == tmp_path / NAME
    assert safe_join(tmp_path, f"{NAME}.ok") == tmp_path / f"{NAME}.ok"


@pytest.mark.parametrize(
    ("raw", "fit"),
    [
        (NAME.encode(), True),
        ("名单.txt".encode(), True),  # not ICD §3, yet a path can name it: the reader says F07
        (b"a b.txt", True),
        (b"x" * 300, True),
        (b"bad\xff\xfe.txt", False),  # not UTF-8
        (b"\xe5\x90", False),  # a cut multi-byte character
        (b"a/b.txt", False),
        (b"../x", False),
        (b"a\x00b", False),
        (b".", False),
        (b"..", False),
        (b"", False),
    ],
)
def test_a_listed_name_is_addressable_only_when_it_can_be_one_path_component(
    raw: bytes, fit: bool
) -> None:
    name = decode_name(raw)

    assert name.encode("utf-8", "surrogateescape") == raw  # nothing is lost
    assert addressable(name) is fit
    assert RemoteEntry(name, 0, "file").addressable is fit


def test_files_keeps_the_addressable_regular_files_in_their_order() -> None:
    entries = [
        RemoteEntry(NAME, 3, "file"),
        RemoteEntry(f"{NAME}.ok", 99, "file"),
        RemoteEntry("archive", 0, "dir"),
        RemoteEntry("link", 0, "other"),
        RemoteEntry(decode_name(b"bad\xff.txt"), 4, "file"),
        RemoteEntry("a b.txt", 1, "file"),
    ]

    assert files(entries) == [entries[0], entries[1], entries[5]]
    assert [e.is_file for e in entries] == [True, True, False, False, True, True]
