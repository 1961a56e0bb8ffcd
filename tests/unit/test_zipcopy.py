"""Photos copied into a PERSO zip stay byte for byte what the bureau sent."""

from __future__ import annotations

import hashlib
import zipfile
from pathlib import Path

import pytest

from issuance.photos import PHOTO_MAX_BYTES
from issuance.zipcopy import copy_photos
from sandbox.people import photo_cache
from tests.unit.test_photos import BOMB, BOUND, peak_memory, with_lying_size


def test_photos_are_copied_byte_for_byte_under_new_names_from_stored_and_deflated_zips(
    tmp_path: Path,
) -> None:
    photos = photo_cache(4, 0, fast=True)
    stored, deflated = tmp_path / "a.zip", tmp_path / "b.zip"
    with zipfile.ZipFile(stored, "w", zipfile.ZIP_STORED) as zf:
        zf.writestr("p0.jpg", photos[0])
        zf.writestr("p1.jpg", photos[1])
    with zipfile.ZipFile(deflated, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("x.jpg", photos[2])

    count, sha = copy_photos(
        {
            str(stored): [("p1.jpg", "C00000001.jpg"), ("p0.jpg", "C00000002.jpg")],
            str(deflated): [("x.jpg", "C00000003.jpg")],
        },
        tmp_path / "out.zip",
        "20261122",
    )

    assert count == 3
    assert sha == hashlib.sha256((tmp_path / "out.zip").read_bytes()).hexdigest()
    with zipfile.ZipFile(tmp_path / "out.zip") as zf:
        assert zf.testzip() is None
        assert zf.namelist() == ["C00000001.jpg", "C00000002.jpg", "C00000003.jpg"]
        assert [zf.read(n) for n in zf.namelist()] == [photos[1], photos[0], photos[2]]
        assert zf.getinfo("C00000001.jpg").date_time[:3] == (2026, 11, 22)


def test_an_entry_that_inflates_beyond_its_declared_size_is_refused_without_inflating_it_all(
    tmp_path: Path,
) -> None:
    source = with_lying_size(tmp_path / "a.zip", 10_240, BOMB)

    refused, peak = peak_memory(
        lambda: copy_photos({str(source): [("A1.jpg", "C1.jpg")]}, tmp_path / "out.zip", "20261122")
    )

    assert isinstance(refused, zipfile.BadZipFile)
    assert str(refused) == "photo entry damaged in a.zip"
    assert peak < BOUND


@pytest.mark.parametrize(
    ("method", "actual"),
    [(zipfile.ZIP_STORED, 100), (zipfile.ZIP_DEFLATED, BOMB)],
    ids=["stored", "deflated"],
)
def test_an_entry_declared_larger_than_a_photo_may_be_is_refused_without_reading_it(
    tmp_path: Path, method: int, actual: int
) -> None:
    source = with_lying_size(tmp_path / "a.zip", BOMB, actual, method=method)
    assert BOMB > PHOTO_MAX_BYTES

    refused, peak = peak_memory(
        lambda: copy_photos({str(source): [("A1.jpg", "C1.jpg")]}, tmp_path / "out.zip", "20261122")
    )

    assert peak < BOUND
    assert isinstance(refused, zipfile.BadZipFile)
    assert str(refused) == "photo entry larger than a photo in a.zip"
