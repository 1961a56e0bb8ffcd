"""The simulated HR bureau: APPLY batches with their photo zips, good and bad (ICD §5.1).

A batch holds valid ``01`` applications spread over the service banks, plus a chosen
share of lines that are each wrong in exactly one field, so that the answer a correct
hub gives is known in advance. ICD §4.2: a line gets one rejection, the first failing
field in layout order, and a wrong number of fields precedes every field.

Bad lines generated (``bad_share`` keys, the code the hub must answer):

=====  ====================  =======================================================
code   field (#)             how the line is wrong
=====  ====================  =======================================================
E107   app_no (1)            app_no of an earlier accepted line in the same file
E117   app_type (2)          app_type ``09``
E101   id_no (4)             wrong check character (birth date and gender still match)
E108   id_no (4)             a second ``01`` for the person of an earlier accepted
                             line (same person, new app_no, card_no and photo)
E115   id_valid_to (5) or    ID validity ended the day before the business date, or
       ethnicity (8)         ethnicity ``77`` (alternating)
E104   name (6)              a digit in the name, or a name over 30 bytes (alternating)
E103   gender (7)            the other gender than ID digit 17 says
E102   birth_date (9)        one day off the date in the ID number
E114   mobile (12)           10 digits
E112   region_code (13)      a real county code of another province
E111   bank_code (14)        ``B999``, not a configured bank
E105   card_no (15)          lower-case letters
E106   card_no (15)          card_no of an earlier accepted line in the same file
E109   old_card_no (16)      app_type ``05`` with old_card_no empty (keep_account ``0``)
E113   photo (19)            named but absent from the zip, 100 × 100, a PNG, or over
                             40,960 bytes (in turn)
E116   whole line            the photo field dropped (19 fields); the zip holds no
                             photo for it
=====  ====================  =======================================================

E110 and E118 are not generated: every field before them would need a real old card
at the hub, which a single file cannot provide. The sources of duplicates (E106, E107,
E108) are always accepted lines. Valid lines are valid under every rule: app_no,
card_no and id_no unique, ID validity not before the business date, nationality
``CHN``, a known bank, a region of the bureau's province, a valid photo in the zip.

File-level variants (:func:`make_bad_file`) produce one file per F-code of ICD §6.
"""

from __future__ import annotations

import io
import math
import os
import random
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import timedelta
from pathlib import Path
from typing import Any

from sandbox.people import (
    Person,
    long_name,
    make_card_no,
    make_mobile,
    make_person,
    other_province_codes,
    oversized_photo,
    parse_date,
    photo_cache,
    png_photo,
    small_photo,
)
from schemas.codec import ENCODINGS, DelimitedReader, Header, fen_to_amount
from schemas.files import Control, FileName
from schemas.layouts import APPLY, APPLYRSP

UNKNOWN_BANK = "B999"
#: the bad-line kinds :func:`make_apply_batch` generates, keyed by the expected reason code
LINE_KINDS = tuple(
    "E101 E102 E103 E104 E105 E106 E107 E108 E109 E111 E112 E113 E114 E115 E116 E117".split()
)
_DUPLICATES = frozenset({"E106", "E107", "E108"})
#: the file-level variants :func:`make_bad_file` produces
FILE_KINDS = (
    *"F01 F02 F03 F04 F04_receiver F05 F06 F07 F08 F09 F10".split(),
    "F10_zip_control_missing",
    "F10_zip_missing",
)
#: about 8 % bad lines, one of each kind per 200 lines
DEMO_SHARE = {code: 0.005 for code in LINE_KINDS}

_APP_NO, _APP_TYPE, _ID_NO, _ID_VALID_TO, _NAME, _GENDER, _ETHNICITY, _BIRTH_DATE = (
    APPLY.index(name)
    for name in "app_no app_type id_no id_valid_to name gender ethnicity birth_date".split()
)
_MOBILE, _REGION, _BANK, _CARD_NO, _KEEP_ACCOUNT, _PHOTO = (
    APPLY.index(name) for name in "mobile region_code bank_code card_no keep_account photo".split()
)


@dataclass
class ApplyBatch:
    """An APPLY file, its control file, its photo zip and what the hub must answer.

    ``expected`` holds, per detail line in order, the reason code of APPLYRSP (``None``
    for an accepted line); it describes the lines as they would be answered if the file
    were accepted as a whole, which it is when ``expected_file_code`` is ``None``.
    """

    name: str
    data: bytes
    control: bytes
    zip_name: str
    zip_data: bytes | None
    zip_control: bytes | None
    expected: list[str | None]
    rows: list[list[str]]
    header: Header
    expected_file_code: str | None = None
    encoding: str = "GB18030"

    @property
    def batch_no(self) -> str:
        return self.header.batch_no

    @property
    def business_date(self) -> str:
        return self.header.business_date


# --------------------------------------------------------------------------- rendering


def _header_line(header: Header) -> str:
    return (
        f"H|{header.type}|{header.sender}|{header.receiver}|{header.batch_no}|{header.business_date}"
        f"|{header.record_count}|{fen_to_amount(header.total_fen)}|{header.version}"
    )


def render(
    header: Header,
    rows: Sequence[Sequence[str]],
    encoding: str = "GB18030",
    *,
    seqs: Sequence[int] | None = None,
    trailer: tuple[int, int] | None = None,
    with_trailer: bool = True,
) -> bytes:
    """The file's bytes as ICD §4.1 frames them, bad lines included.

    :func:`schemas.codec.write_delimited` refuses what a bad file needs (a dropped field,
    a name over 30 bytes), so the simulator frames its files itself; for a file it
    would accept the bytes are the same. ``seqs`` and ``trailer`` (count, fen) override
    what the rows imply.
    """
    numbers = seqs if seqs is not None else range(1, len(rows) + 1)
    lines = [_header_line(header)]
    lines.extend(f"D|{seq}|" + "|".join(row) for seq, row in zip(numbers, rows, strict=True))
    if with_trailer:
        count, fen = trailer if trailer is not None else (len(rows), 0)
        lines.append(f"T|{count}|{fen_to_amount(fen)}")
    return ("\r\n".join(lines) + "\r\n").encode(ENCODINGS[encoding])


def _zip(entries: Sequence[tuple[str, bytes]], business_date: str, deflate: bool) -> bytes:
    """A zip of plain entry names with a fixed timestamp, so the same batch gives the same bytes."""
    stamp = (int(business_date[:4]), int(business_date[4:6]), int(business_date[6:]), 0, 0, 0)
    method = zipfile.ZIP_DEFLATED if deflate else zipfile.ZIP_STORED
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", method) as archive:
        for entry, content in entries:
            info = zipfile.ZipInfo(entry, stamp)
            info.compress_type = method
            archive.writestr(info, content)
    return buffer.getvalue()


def _control(name: str, data: bytes, count: int) -> bytes:
    return Control.for_bytes(name, data, count).render()


# --------------------------------------------------------------------------- lines


def _row(app_no: str, person: Person, bank_code: str, card_no: str, photo: str) -> list[str]:
    return [
        app_no,
        "01",
        "01",
        person.id_no,
        person.id_valid_to,
        person.name,
        person.gender,
        person.ethnicity,
        person.birth_date,
        "CHN",
        person.occupation,
        person.mobile,
        person.region_code,
        bank_code,
        card_no,
        "",
        "",
        "",
        photo,
        person.address,
    ]


def _plan(rng: random.Random, size: int, bad_share: dict[str, float] | None) -> list[str | None]:
    counts: dict[str, int] = {}
    for code, share in (bad_share or {}).items():
        if code not in LINE_KINDS:
            raise ValueError(f"no bad-line kind {code}; generated kinds: {', '.join(LINE_KINDS)}")
        if not 0 <= share <= 1:
            raise ValueError(f"share of {code} must lie between 0 and 1")
        counts[code] = math.floor(share * size + 0.5)
    bad = sum(counts.values())
    needs_source = any(counts.get(code) for code in _DUPLICATES)
    if bad > size - (1 if needs_source else 0):
        raise ValueError("bad lines leave no accepted line (duplicates need one to repeat)")
    plan: list[str | None] = [code for code, n in counts.items() for _ in range(n)]
    plan += [None] * (size - bad)
    rng.shuffle(plan)
    if needs_source and plan[0] is not None:
        first_valid = plan.index(None)
        plan[0], plan[first_valid] = plan[first_valid], plan[0]
    return plan


def _other_date(text: str, days: int) -> str:
    return f"{parse_date(text) + timedelta(days=days):%Y%m%d}"


def make_apply_batch(
    *,
    bureau: str = "R440100",
    hub: str = "B001",
    business_date: str = "20261122",
    seq: int = 1,
    batch_no: str | None = None,
    size: int = 1000,
    seed: int | str = 0,
    bank_codes: Sequence[str] = ("B001", "B002", "B003"),
    bad_share: dict[str, float] | None = None,
    encoding: str = "GB18030",
    fast: bool = False,
    deflate: bool = False,
) -> ApplyBatch:
    """An APPLY file of ``size`` lines from ``bureau`` to ``hub`` with its photo zip.

    ``bad_share`` maps a reason code of :data:`LINE_KINDS` to the share of lines of that
    kind (rounded to whole lines). The same arguments give the same bytes; the batch's
    identity (bureau, batch_no, business date) is part of the seed, so the batches of one
    bureau do not share applicants, app_no or card_no. ``fast`` draws photos from a pool
    of four small ones (for benchmarks), otherwise from one pool of 64 shared by every
    batch; ``deflate`` compresses the zip entries.
    """
    if UNKNOWN_BANK in bank_codes:
        raise ValueError(f"{UNKNOWN_BANK} is the unknown bank of E111 lines")
    if not 1 <= seq <= 999:
        raise ValueError("SEQ runs from 001 to 999")
    province = bureau[1:3]
    batch_no = batch_no or f"{business_date}{seq:03d}"
    name = str(FileName("APPLY", bureau, hub, business_date, f"{seq:03d}"))
    zip_name = name[:-4] + ".zip"
    rng = random.Random(f"APPLY|{bureau}|{batch_no}|{business_date}|{seed}")
    pool = photo_cache(4, fast=True) if fast else photo_cache(64)
    plan = _plan(rng, size, bad_share)

    seen_ids: set[str] = set()
    seen_cards: set[str] = set()

    def person() -> Person:
        while True:
            candidate = make_person(rng, province=province, business_date=business_date)
            if candidate.id_no not in seen_ids:
                seen_ids.add(candidate.id_no)
                return candidate

    def card_no() -> str:
        while True:
            candidate = make_card_no(rng)
            if candidate not in seen_cards:
                seen_cards.add(candidate)
                return candidate

    rows: list[list[str]] = []
    people: list[Person] = []
    expected: list[str | None] = []
    entries: list[tuple[str, bytes]] = []
    accepted: list[int] = []
    turns: dict[str, int] = {}
    for position, kind in enumerate(plan):
        app_no = f"{batch_no}{position + 1:07d}"
        photo = f"{app_no}.jpg"
        applicant = person()
        row = _row(app_no, applicant, bank_codes[position % len(bank_codes)], card_no(), photo)
        content: bytes | None = rng.choice(pool)
        turn = turns.get(kind or "", 0)
        turns[kind or ""] = turn + 1
        if kind in _DUPLICATES:
            source = rng.choice(accepted)
            if kind == "E107":
                row[_APP_NO] = rows[source][_APP_NO]
            elif kind == "E106":
                row[_CARD_NO] = rows[source][_CARD_NO]
            else:
                seen_ids.discard(applicant.id_no)
                applicant = people[source]
                row = _row(app_no, applicant, row[_BANK], row[_CARD_NO], photo)
        elif kind == "E101":
            right = row[_ID_NO][-1]
            row[_ID_NO] = row[_ID_NO][:-1] + rng.choice([c for c in "0123456789X" if c != right])
        elif kind == "E102":
            row[_BIRTH_DATE] = _other_date(row[_BIRTH_DATE], rng.choice((-1, 1)))
        elif kind == "E103":
            row[_GENDER] = "2" if row[_GENDER] == "1" else "1"
        elif kind == "E104":
            row[_NAME] = row[_NAME][:1] + "3" + row[_NAME][2:] if turn % 2 == 0 else long_name(rng)
        elif kind == "E105":
            card = row[_CARD_NO]
            row[_CARD_NO] = (card if not card.isdigit() else "A" + card[1:]).lower()
        elif kind == "E109":
            row[_APP_TYPE], row[_KEEP_ACCOUNT] = "05", "0"
        elif kind == "E111":
            row[_BANK] = UNKNOWN_BANK
        elif kind == "E112":
            year = int(business_date[:4])
            row[_REGION] = rng.choice(other_province_codes(province, year))
        elif kind == "E113":
            content = (None, small_photo(), png_photo(), oversized_photo())[turn % 4]
        elif kind == "E114":
            row[_MOBILE] = make_mobile(rng)[:10]
        elif kind == "E115":
            if turn % 2 == 0:
                row[_ETHNICITY] = "77"
            else:
                row[_ID_VALID_TO] = _other_date(business_date, -1)
        elif kind == "E116":
            del row[_PHOTO]
            content = None
        elif kind == "E117":
            row[_APP_TYPE] = "09"
        if kind is None:
            accepted.append(position)
        if content is not None:
            entries.append((photo, content))
        rows.append(row)
        people.append(applicant)
        expected.append(kind)

    header = Header("APPLY", bureau, hub, batch_no, business_date, size)
    data = render(header, rows, encoding)
    zip_data = _zip(entries, business_date, deflate)
    return ApplyBatch(
        name=name,
        data=data,
        control=_control(name, data, size),
        zip_name=zip_name,
        zip_data=zip_data,
        zip_control=_control(zip_name, zip_data, len(entries)),
        expected=expected,
        rows=rows,
        header=header,
        encoding=encoding,
    )


def make_replacement_batch(
    replaced: Sequence[tuple[Sequence[str], str, str, str]],
    *,
    bureau: str = "R440100",
    hub: str = "B001",
    business_date: str,
    seq: int,
) -> ApplyBatch:
    """An APPLY of replacements (ICD §5.1, DOMAIN §5): each ``(old_row, new_card_no,
    app_type, keep_account)`` applies for a new card for the holder of the card an
    earlier APPLY row asked for, at the same bank, reusing the photo on file (no zip).
    ``06`` renewals give replace_reason ``2`` (damage), which has no date rule."""
    batch_no = f"{business_date}{seq:03d}"
    name = str(FileName("APPLY", bureau, hub, business_date, f"{seq:03d}"))
    rows: list[list[str]] = []
    for position, (old, card_no, app_type, keep) in enumerate(replaced):
        row = list(old)
        row[0] = f"{batch_no}{position + 1:07d}"
        row[1] = app_type
        row[APPLY.index("old_card_no")] = old[_CARD_NO]
        row[_CARD_NO] = card_no
        row[_KEEP_ACCOUNT] = keep
        row[APPLY.index("replace_reason")] = "2" if app_type == "06" else ""
        row[_PHOTO] = ""
        rows.append(row)
    header = Header("APPLY", bureau, hub, batch_no, business_date, len(rows))
    data = render(header, rows)
    return ApplyBatch(
        name=name,
        data=data,
        control=_control(name, data, len(rows)),
        zip_name=name[:-4] + ".zip",
        zip_data=None,
        zip_control=None,
        expected=[None] * len(rows),
        rows=rows,
        header=header,
    )


def demo_batch(
    business_date: str, size: int = 200, seed: int | str = 0, **options: Any
) -> ApplyBatch:
    """A batch with about 8 % bad lines, one of each kind of :data:`LINE_KINDS` per 200 lines."""
    return make_apply_batch(
        business_date=business_date, size=size, seed=seed, bad_share=DEMO_SHARE, **options
    )


# --------------------------------------------------------------------------- bad files


def _reframed(
    batch: ApplyBatch, data: bytes, code: str, control: bytes | None = None
) -> ApplyBatch:
    return replace(
        batch,
        data=data,
        control=control if control is not None else _control(batch.name, data, len(batch.rows)),
        expected_file_code=code,
    )


def make_changed_redelivery(batch: ApplyBatch) -> ApplyBatch:
    """The same NAME and BATCH_NO with one line changed (a new mobile): F05 once the
    original was processed (ICD §2, re-delivery). The zip is unchanged."""
    rows = [list(row) for row in batch.rows]
    index = next(i for i, row in enumerate(rows) if len(row) == len(APPLY.fields))
    old = rows[index][_MOBILE]
    rng = random.Random(f"redelivery|{batch.name}|{batch.batch_no}")
    mobile = old
    while mobile == old:
        mobile = make_mobile(rng)
    rows[index][_MOBILE] = mobile if len(old) == 11 else mobile[:10]
    data = render(batch.header, rows, batch.encoding)
    return replace(
        batch,
        data=data,
        rows=rows,
        control=_control(batch.name, data, len(rows)),
        expected_file_code="F05",
    )


def _renamed(batch: ApplyBatch, name: str, zip_name: str) -> ApplyBatch:
    assert batch.zip_data is not None and batch.zip_control is not None
    count = Control.parse(batch.zip_control, batch.zip_name).record_count
    return replace(
        batch,
        name=name,
        control=_control(name, batch.data, len(batch.rows)),
        zip_name=zip_name,
        zip_control=_control(zip_name, batch.zip_data, count),
    )


def make_bad_file(
    kind: str, *, size: int = 20, business_date: str = "20261122", **options: Any
) -> ApplyBatch:
    """An APPLY rejected as a whole with the F-code ``kind`` starts with (ICD §6).

    ``options`` go to :func:`make_apply_batch`; the lines themselves are all valid.

    - ``F01`` the control file's SHA-256 is not the file's;
    - ``F02`` the header counts one line more than the file and trailer hold;
    - ``F03`` ``\\xff\\xff`` inside the first line's name;
    - ``F04`` dated the day before ``business_date`` (the day the hub reads it);
      ``F04_receiver`` addressed to ``B999`` instead of the hub (name and header);
    - ``F05`` :func:`make_changed_redelivery` of the batch the same arguments give;
    - ``F06`` detail SEQ 1, 2, 4, 5, …;
    - ``F07`` named ``apply_r440100.txt`` (lower case, no receiver, date or SEQ);
    - ``F08`` the trailer removed;
    - ``F09`` header and trailer TOTAL_AMOUNT ``1.00`` where APPLY's total is ``0.00``;
    - ``F10`` an extra zip entry ``../evil.jpg``; ``F10_zip_control_missing`` the zip
      without its ``.ok``; ``F10_zip_missing`` no zip at all.
    """
    if kind not in FILE_KINDS:
        raise ValueError(f"no bad-file kind {kind}; kinds: {', '.join(FILE_KINDS)}")
    if kind in ("F06", "F08") and size < 3:
        raise ValueError(f"{kind} needs at least 3 lines")
    code = kind[:3]
    if kind == "F04":
        past = _other_date(business_date, -1)
        return replace(
            make_apply_batch(size=size, business_date=past, **options), expected_file_code=code
        )
    if kind == "F04_receiver":
        options["hub"] = UNKNOWN_BANK
    batch = make_apply_batch(size=size, business_date=business_date, **options)
    header, rows, encoding = batch.header, batch.rows, batch.encoding
    if kind == "F01":
        parsed = Control.parse(batch.control, batch.name)
        wrong = ("0" if parsed.sha256[0] != "0" else "1") + parsed.sha256[1:]
        return _reframed(batch, batch.data, code, replace(parsed, sha256=wrong).render())
    if kind == "F02":
        data = render(replace(header, record_count=len(rows) + 1), rows, encoding)
        return _reframed(batch, data, code)
    if kind == "F03":
        line = f"D|1|{'|'.join(rows[0])}\r\n".encode(ENCODINGS[encoding])
        name = rows[0][_NAME].encode(ENCODINGS[encoding])
        spoiled = line.replace(
            b"|" + name + b"|", b"|" + name[:2] + b"\xff\xff" + name[2:] + b"|", 1
        )
        assert spoiled != line
        return _reframed(batch, batch.data.replace(line, spoiled, 1), code)
    if kind == "F04_receiver":
        return replace(batch, expected_file_code=code)
    if kind == "F05":
        return make_changed_redelivery(batch)
    if kind == "F06":
        seqs = [1, 2, *range(4, len(rows) + 2)]
        return _reframed(batch, render(header, rows, encoding, seqs=seqs), code)
    if kind == "F07":
        stem = f"apply_{header.sender.lower()}"
        return replace(_renamed(batch, f"{stem}.txt", f"{stem}.zip"), expected_file_code=code)
    if kind == "F08":
        return _reframed(batch, render(header, rows, encoding, with_trailer=False), code)
    if kind == "F09":
        data = render(replace(header, total_fen=100), rows, encoding, trailer=(len(rows), 100))
        return _reframed(batch, data, code)
    assert batch.zip_data is not None
    if kind == "F10":
        with zipfile.ZipFile(io.BytesIO(batch.zip_data)) as archive:
            entries = [(info.filename, archive.read(info)) for info in archive.infolist()]
        entries.append(("../evil.jpg", entries[0][1]))
        zip_data = _zip(entries, business_date, deflate=False)
        return replace(
            batch,
            zip_data=zip_data,
            zip_control=_control(batch.zip_name, zip_data, len(entries)),
            expected_file_code=code,
        )
    if kind == "F10_zip_control_missing":
        return replace(batch, zip_control=None, expected_file_code=code)
    return replace(batch, zip_data=None, zip_control=None, expected_file_code=code)


# --------------------------------------------------------------------------- delivery


class ApplyRspError(ValueError):
    """The hub's APPLYRSP breaks its layout (ICD §5.2); the message names lines and fields."""


def read_applyrsp(data: bytes, encoding: str = "GB18030") -> list[tuple[str, str, str]]:
    """``(app_no, result, reason_code)`` per APPLYRSP line, in file order (ICD §5.2).

    The bureau reads the answer as a parser written from the ICD alone would: framing
    errors raise :class:`schemas.files.FileLevelError`, a line that breaks the layout
    raises :class:`ApplyRspError`.
    """
    reader = DelimitedReader(data, APPLYRSP, encoding)
    answers: list[tuple[str, str, str]] = []
    for chunk in reader.chunks():
        broken = [f"line {r.line} {r.field} {r.code}" for r in chunk.rejections()]
        if broken:
            raise ApplyRspError("APPLYRSP lines break the layout: " + ", ".join(broken[:10]))
        columns = (chunk.strings(name) for name in ("app_no", "result", "reason_code"))
        answers.extend((str(a), str(r), str(c)) for a, r, c in zip(*columns, strict=True))
    return answers


def _publish(directory: Path, name: str, data: bytes) -> Path:
    """``NAME.part`` written and synced, then renamed to ``NAME`` (ICD §2, writing)."""
    target = directory / name
    part = directory / f"{name}.part"
    with open(part, "wb") as out:
        out.write(data)
        out.flush()
        os.fsync(out.fileno())
    os.replace(part, target)
    return target


def write_batch(batch: ApplyBatch, directory: Path) -> list[Path]:
    """Deliver ``batch`` into a local pickup folder: each file before its ``.ok`` (ICD §2).

    The zip and its ``.ok`` go first, so the application is complete the moment the
    data file's ``.ok`` appears and intake never has to wait for photos.
    """
    directory.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    if batch.zip_data is not None:
        written.append(_publish(directory, batch.zip_name, batch.zip_data))
        if batch.zip_control is not None:
            written.append(_publish(directory, batch.zip_name + ".ok", batch.zip_control))
    written.append(_publish(directory, batch.name, batch.data))
    written.append(_publish(directory, batch.name + ".ok", batch.control))
    return written


@dataclass
class BureauSimulator:
    """One bureau sending APPLY batches to one hub, numbering SEQ per business date (ICD §3)."""

    bureau: str = "R440100"
    hub: str = "B001"
    bank_codes: tuple[str, ...] = ("B001", "B002", "B003")
    seed: int | str = 0
    encoding: str = "GB18030"
    _seqs: dict[str, int] = field(default_factory=dict, repr=False)

    def next_batch(
        self,
        business_date: str,
        size: int = 200,
        bad_share: dict[str, float] | None = None,
        **options: Any,
    ) -> ApplyBatch:
        """The bureau's next APPLY of ``business_date`` (SEQ 001, 002, … that day)."""
        seq = self._seqs.get(business_date, 0) + 1
        self._seqs[business_date] = seq
        return make_apply_batch(
            bureau=self.bureau,
            hub=self.hub,
            business_date=business_date,
            seq=seq,
            size=size,
            seed=self.seed,
            bank_codes=self.bank_codes,
            bad_share=bad_share,
            encoding=self.encoding,
            **options,
        )

    def deliver(self, batch: ApplyBatch, pickup: Path) -> list[Path]:
        return write_batch(batch, pickup)


def photo_entries(batch: ApplyBatch) -> dict[str, bytes]:
    """The zip's entries by name (for checks; the hub reads the zip itself)."""
    if batch.zip_data is None:
        return {}
    with zipfile.ZipFile(io.BytesIO(batch.zip_data)) as archive:
        return {info.filename: archive.read(info) for info in archive.infolist()}
