"""The bureau staff's pre-check of an APPLY file (``sscard validate``): every intake check
that needs no database, on a local file, with the same code intake runs.

Not checked here, because only the hub's database knows: keys and card numbers used in
earlier files (E106, E107), cards the applicant already holds through a bureau of the same
province (E108), the old card of a replacement (E109, E110, E118).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from issuance.apply_rules import rules_for
from issuance.intake import check_header, check_name, names_photos, validated_chunks
from issuance.photos import check_photo_zip
from schemas.codec import Chunk, DelimitedReader, Rejection
from schemas.codes import FileCode
from schemas.files import Control, FileLevelError, sha256_of
from schemas.layouts import APPLY


@dataclass(frozen=True)
class PrecheckSettings:
    """What the pre-check needs of the counterparty configuration."""

    hub: str
    bank_codes: frozenset[str]
    #: per bureau code: its encoding and ``max_forward_days``
    bureaus: Mapping[str, tuple[str, int]]


@dataclass
class PrecheckResult:
    file: str
    file_code: str | None = None
    file_detail: str = ""
    accepted: int = 0
    rejected: list[Rejection] = field(default_factory=list)

    def as_json(self) -> dict[str, object]:
        return {
            "file": self.file,
            "file_code": self.file_code,
            "accepted": self.accepted if self.file_code is None else 0,
            "rejected": [
                {"line": r.line, "seq": r.seq, "field": r.field, "code": r.code}
                for r in self.rejected
            ]
            if self.file_code is None
            else [],
        }


class _InFileRepeats:
    """Repeats inside one file (ICD §4.2): every occurrence after the first of a key."""

    def __init__(self) -> None:
        self.app_no: set[str] = set()
        self.person: set[str] = set()
        self.card_no: set[str] = set()
        self.old_card_no: set[str] = set()

    def apply(self, chunk: Chunk) -> None:
        app_no, app_type = chunk.strings("app_no"), chunk.strings("app_type")
        id_no, card_no, old = (
            chunk.strings("id_no"),
            chunk.strings("card_no"),
            chunk.strings("old_card_no"),
        )
        whole = chunk.fail_index >= 0
        marks: dict[str, np.ndarray] = {
            k: np.zeros(len(chunk), dtype=bool) for k in ("a", "p", "c", "o")
        }
        for i in np.flatnonzero(whole).tolist():
            if app_no[i] in self.app_no:
                marks["a"][i] = True
            self.app_no.add(app_no[i])
            if app_type[i] == "01":
                if id_no[i] in self.person:
                    marks["p"][i] = True
                self.person.add(id_no[i])
            if card_no[i] in self.card_no:
                marks["c"][i] = True
            self.card_no.add(card_no[i])
            if old[i]:
                replacement = f"{old[i]}|{id_no[i]}"
                if replacement in self.old_card_no:
                    marks["o"][i] = True
                self.old_card_no.add(replacement)
        chunk.reject(marks["a"], "app_no", "E107")
        chunk.reject(marks["p"], "id_no", "E108")
        chunk.reject(marks["c"], "card_no", "E106")
        chunk.reject(marks["o"], "old_card_no", "E109")


def precheck(path: Path, parties: PrecheckSettings, business_date: str) -> PrecheckResult:
    """Check ``path`` (and ``path.ok``, ``path.zip``, ``path.zip.ok`` beside it)."""
    result = PrecheckResult(path.name)
    try:
        _run(path, parties, business_date, result)
    except FileLevelError as exc:
        result.file_code = str(exc.code)
        result.file_detail = exc.detail
        result.accepted = 0
        result.rejected = []
    return result


def _run(path: Path, parties: PrecheckSettings, business_date: str, result: PrecheckResult) -> None:
    fname = check_name(path.name, parties.hub, None)
    encoding, forward = parties.bureaus.get(fname.sender, ("GB18030", 5))
    control_path = path.with_name(path.name + ".ok")
    count = None
    if control_path.exists():
        control = Control.parse(control_path.read_bytes(), path.name)
        with path.open("rb") as fh:
            control.verify(*sha256_of(fh))
        count = control.record_count
    zip_path = path.with_name(path.name[:-4] + ".zip")
    zip_ok = zip_path.with_name(zip_path.name + ".ok")
    photos = None
    with path.open("rb") as fh:
        reader = DelimitedReader(fh, APPLY, encoding, control_count=count)
        check_header(reader.header, fname, business_date, forward)
        rules = rules_for(reader.header.business_date, parties.bank_codes, fname.sender)
        if zip_path.exists():
            photos = check_photo_zip(
                zip_path, zip_ok.read_bytes() if zip_ok.exists() else None, zip_path.name
            )
        repeats = _InFileRepeats()
        for chunk in validated_chunks(reader, rules, photos):
            if photos is None and names_photos(chunk):
                raise FileLevelError(FileCode.F10, "the file names photos but its zip is missing")
            repeats.apply(chunk)
            result.accepted += int(chunk.ok.sum())
            result.rejected.extend(chunk.rejections())
