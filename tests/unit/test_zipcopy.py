"""Photos copied into a PERSO zip stay byte for byte what the bureau sent."""

from __future__ import annotations

import hashlib
import zipfile
from pathlib import Path

from issuance.zipcopy import copy_photos
from sandbox.people import photo_cache


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
