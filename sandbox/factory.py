"""The simulated card factory: personalises the cards of the hub's PERSO files (ICD §5.5,
§5.6) and returns PERSORSP files.

The factory reads what the hub sends it from its ``drop`` directory and writes its
results into its ``pickup`` directory by the ICD §2 write protocol. It takes a PERSO
only when it is complete: ``PERSO_<hub>_<code>_<date>_<seq>.txt`` dated up to the
business date it runs for, with a matching ``.ok``, and its photo zip ``….zip`` with a
matching ``.zip.ok``. A PERSO whose zip has not arrived waits for a later run; a file it
cannot read (a framing F-code, or a corrupt zip) gets no answer and stays in ``drop``.

Per card, in PERSO order:

- ``00`` made: ``card_id_code`` = the record's region_code + ``D156000005`` + 16
  upper-case hex digits, an ``atr`` (``3B`` ``6K`` ``00`` ``00`` and K historical bytes,
  24 to 38 hex digits), ``box_no`` ``BX<date><box>`` (200 cards to a box, boxes numbered
  from 0001 each day), ``made_date`` the business date;
- ``01`` failed for about ``fail_share`` of the cards (drawn from the seed, card_no and
  PAN): ``M001`` chip defect, ``M002`` print defect, ``M003`` photo unusable, ``M004``
  data rejected or ``M099`` other, with card_id_code, atr and box_no blank and
  ``made_date`` the business date (the day it failed);
- ``01`` ``M003`` always when the photo the record names is not in the zip or is not a
  JPEG; a blank photo field (allowed by the layout) is printed from the photo on file;
- ``01`` ``M004`` always for a record that breaks the PERSO layout.

PERSORSP files are numbered by the factory itself (ICD §3): SEQ per (PERSORSP, factory,
hub, business date) from ``001``, skipping SEQs already present in ``pickup`` or its
``archive``/``rejected`` folders of that date; BATCH_NO is ``<code><date><seq>``. With
``split`` > 1 one PERSO's cards come back in that many files (ICD §5.6). Once answered,
a PERSO and its zip are removed from ``drop`` (``.ok`` files first) and the name is
never answered again.

Anomalies for the hub's checks (``run(..., anomalies={kind: count})``), appended to the
run's first PERSORSP, or to a PERSORSP of their own when the run answers no PERSO:

- ``unknown_card``: a made card whose card_no and PAN were in no PERSO;
- ``duplicate``: a card answered before (earliest first) returned again, unchanged;
- ``wrong_pan``: a card answered before (earliest first) returned made, with a PAN that
  is not its own.

What was sent this way is kept in :attr:`CardFactorySimulator.anomalies_sent`.
"""

from __future__ import annotations

import hashlib
import io
import logging
import random
import string
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal, get_args

from stdnum import luhn

from schemas.codec import FixedReader, Header, write_fixed
from schemas.files import NAME_PATTERN, Control, FileLevelError, FileName
from schemas.layouts import PERSO, PERSORSP
from transport.remote import Remote, files, join

log = logging.getLogger(__name__)

#: factory reasons of ICD §5.6 drawn for a random failure, and their weights
FAILURE_WEIGHTS: dict[str, float] = {
    "M001": 0.35,
    "M002": 0.3,
    "M003": 0.1,
    "M004": 0.1,
    "M099": 0.15,
}
CARDS_PER_BOX = 200
CARD_ID_MIDDLE = "D156000005"
AnomalyKind = Literal["unknown_card", "duplicate", "wrong_pan"]
ANOMALY_KINDS: tuple[str, ...] = get_args(AnomalyKind)
_JPEG_SOI = b"\xff\xd8\xff"

#: ``(result, reason_code, card_id_code, atr, box_no)`` of one card
Result = tuple[str, str, str, str, str]


@dataclass(frozen=True)
class _Perso:
    """A complete PERSO in ``drop`` with its photo zip."""

    name: FileName
    data: bytes
    control: Control
    zip_data: bytes


class CardFactorySimulator:
    """A card factory answering PERSO files deterministically (see the module docs)."""

    def __init__(
        self,
        remote: Remote,
        code: str = "F01",
        hub: str = "B001",
        fail_share: float = 0.03,
        seed: int | str = 0,
        pickup: str = "pickup",
        drop: str = "drop",
        split: int = 1,
    ) -> None:
        if not 0.0 <= fail_share <= 1.0:
            raise ValueError("fail_share is a share between 0 and 1")
        if split < 1:
            raise ValueError("split is at least 1")
        self.remote = remote
        self.code = code
        self.hub = hub
        self.fail_share = fail_share
        self.seed = seed
        self.pickup = pickup
        self.drop = drop
        self.split = split
        #: outcome per card_no, the latest answer given
        self.results: dict[str, Result] = {}
        #: PAN per card_no as the PERSO gave it
        self.pans: dict[str, str] = {}
        #: PERSORSP names written per PERSO name
        self.answered: dict[str, list[str]] = {}
        #: ``(kind, PERSORSP row)`` of every anomaly sent
        self.anomalies_sent: list[tuple[str, tuple[str, ...]]] = []
        self._seqs: dict[str, int] = {}
        self._made: dict[str, int] = {}
        self._card_ids: set[str] = set()
        self._made_dates: dict[str, str] = {}

    # ------------------------------------------------------------------ cards

    def _rng(self, *parts: str) -> random.Random:
        return random.Random("|".join(("PERSO", self.code, str(self.seed), *parts)))

    def _box_no(self, business_date: str) -> str:
        made = self._made.get(business_date, 0)
        self._made[business_date] = made + 1
        return f"BX{business_date}{made // CARDS_PER_BOX + 1:04d}"

    def _made_card(self, rng: random.Random, region_code: str, business_date: str) -> Result:
        while True:
            card_id = f"{region_code}{CARD_ID_MIDDLE}{rng.getrandbits(64):016X}"
            if card_id not in self._card_ids:
                self._card_ids.add(card_id)
                break
        history = rng.randrange(8, 16)
        atr = f"3B6{history:X}0000" + "".join(f"{rng.randrange(256):02X}" for _ in range(history))
        return ("00", "", card_id, atr, self._box_no(business_date))

    def _card(
        self, row: dict[str, str], ok: bool, photos: set[str], business_date: str
    ) -> list[str]:
        """One PERSORSP row for one PERSO record; records the outcome."""
        card_no, pan = row["card_no"], row["pan"]
        rng = self._rng(card_no, pan)
        result: Result
        if not ok:
            result = ("01", "M004", "", "", "")
        elif row["photo"] and row["photo"] not in photos:
            result = ("01", "M003", "", "", "")
        elif rng.random() < self.fail_share:
            reasons = list(FAILURE_WEIGHTS)
            reason = rng.choices(reasons, weights=[FAILURE_WEIGHTS[r] for r in reasons])[0]
            result = ("01", reason, "", "", "")
        else:
            result = self._made_card(rng, row["region_code"], business_date)
        self.results[card_no] = result
        self.pans[card_no] = pan
        self._made_dates[card_no] = business_date
        return _row(card_no, pan, result, business_date)

    # ------------------------------------------------------------------ anomalies

    def _fresh_pan(self, rng: random.Random, avoid: set[str]) -> str:
        while True:
            body = "6" + f"{rng.randrange(10**17):017d}"
            pan = body + luhn.calc_check_digit(body)
            if pan not in avoid:
                return pan

    def _anomalies(self, anomalies: Mapping[str, int], business_date: str) -> list[list[str]]:
        unknown = set(anomalies) - set(ANOMALY_KINDS)
        if unknown:
            raise ValueError(f"no anomaly kind {sorted(unknown)}; kinds: {ANOMALY_KINDS}")
        earliest = list(self.results)
        pans = set(self.pans.values())
        rows: list[list[str]] = []
        for kind in ANOMALY_KINDS:
            count = anomalies.get(kind, 0)
            if kind != "unknown_card" and count > len(earliest):
                raise ValueError(f"{kind}: only {len(earliest)} cards answered so far")
            for n in range(count):
                rng = self._rng("anomaly", kind, business_date, str(len(self.anomalies_sent)))
                if kind == "unknown_card":
                    card_no = _card_no(rng, set(self.results))
                    pan = self._fresh_pan(rng, pans)
                    row = _row(
                        card_no, pan, self._made_card(rng, "440100", business_date), business_date
                    )
                elif kind == "duplicate":
                    card_no = earliest[n]
                    made = self._made_dates[card_no]
                    row = _row(card_no, self.pans[card_no], self.results[card_no], made)
                else:
                    card_no = earliest[n]
                    pan = self._fresh_pan(rng, pans)
                    region = self.results[card_no][2][:6] or "440100"
                    row = _row(
                        card_no, pan, self._made_card(rng, region, business_date), business_date
                    )
                pans.add(row[1])
                self.anomalies_sent.append((kind, tuple(row)))
                rows.append(row)
        return rows

    # ------------------------------------------------------------------ files

    def _complete(self, name: str, names: set[str]) -> tuple[bytes, Control] | None:
        """The file and its control when ``name.ok`` is there and matches."""
        if name not in names or name + ".ok" not in names:
            return None
        control = Control.parse(self.remote.read_bytes(join(self.drop, name + ".ok")), name)
        data = self.remote.read_bytes(join(self.drop, name))
        control.verify(len(data), hashlib.sha256(data).hexdigest())
        return data, control

    def _persos(self, business_date: str) -> list[_Perso]:
        names = {e.name for e in files(self.remote.list_dir(self.drop))}
        found: list[_Perso] = []
        for name in sorted(names):
            m = NAME_PATTERN.fullmatch(name)
            if (
                m is None
                or m["type"] != "PERSO"
                or m["sender"] != self.hub
                or m["receiver"] != self.code
                or m["ext"] != "txt"
                or m["date"] > business_date
            ):
                continue
            file_name = FileName.parse(name)
            zip_name = str(file_name.companion("zip"))
            try:
                data_file = self._complete(name, names)
                if data_file is None:
                    continue
                zip_file = self._complete(zip_name, names)
            except FileLevelError as exc:
                log.warning("%s not taken: %s", name, exc.code)
                continue
            if zip_file is None:
                log.info("%s waits for its photo zip", name)
                continue
            found.append(_Perso(file_name, data_file[0], data_file[1], zip_file[0]))
        return found

    def _read(self, perso: _Perso) -> tuple[list[tuple[dict[str, str], bool]], set[str]] | None:
        """The PERSO's records (with their layout verdict) and the JPEG entries of its zip."""
        try:
            reader = FixedReader(perso.data, PERSO, control_count=perso.control.record_count)
            records: list[tuple[dict[str, str], bool]] = []
            for chunk in reader.chunks():
                records.extend(zip(chunk.table.to_pylist(), chunk.ok.tolist(), strict=True))
        except FileLevelError as exc:
            log.warning("%s not answered: %s", perso.name, exc.code)
            return None
        if reader.header.sender != self.hub or reader.header.receiver != self.code:
            log.warning("%s not answered: F04 (header parties)", perso.name)
            return None
        try:
            with zipfile.ZipFile(io.BytesIO(perso.zip_data)) as archive:
                photos = set()
                for info in archive.infolist():
                    with archive.open(info) as entry:
                        if entry.read(len(_JPEG_SOI)) == _JPEG_SOI:
                            photos.add(info.filename)
        except (zipfile.BadZipFile, OSError, EOFError) as exc:
            log.warning("%s not answered: F10 (%s)", perso.name, type(exc).__name__)
            return None
        return records, photos

    def _next_name(self, business_date: str) -> FileName:
        taken = 0
        for folder in (
            self.pickup,
            join(self.pickup, f"archive/{business_date}"),
            join(self.pickup, f"rejected/{business_date}"),
        ):
            for entry in files(self.remote.list_dir(folder)):
                m = NAME_PATTERN.match(entry.name)
                if (
                    m is not None
                    and m["type"] == "PERSORSP"
                    and m["sender"] == self.code
                    and m["receiver"] == self.hub
                    and m["date"] == business_date
                ):
                    taken = max(taken, int(m["seq"]))
        seq = max(taken, self._seqs.get(business_date, 0)) + 1
        if seq > 999:
            raise RuntimeError(f"no PERSORSP SEQ left for {business_date}")
        self._seqs[business_date] = seq
        return FileName("PERSORSP", self.code, self.hub, business_date, f"{seq:03d}")

    def _publish(self, business_date: str, rows: list[list[str]]) -> str:
        name = self._next_name(business_date)
        batch_no = f"{self.code}{business_date}{name.seq}"
        out = io.BytesIO()
        header = Header("PERSORSP", self.code, self.hub, batch_no, business_date, len(rows))
        write_fixed(out, PERSORSP, header, rows)
        self.remote.publish(self.pickup, str(name), out.getvalue(), len(rows))
        failed = sum(1 for row in rows if row[2] != "00")
        log.info("%s written: %d cards, %d failed", name, len(rows), failed)
        return str(name)

    def _take(self, perso: _Perso) -> None:
        """Remove the PERSO and its zip from ``drop``, each ``.ok`` before its file."""
        for name in (perso.name, perso.name.companion("zip")):
            self.remote.remove(join(self.drop, f"{name}.ok"))
            self.remote.remove(join(self.drop, str(name)))

    def run(self, business_date: str, *, anomalies: Mapping[str, int] | None = None) -> list[str]:
        """Answer every complete PERSO dated up to ``business_date``; the names written.

        ``anomalies`` maps a kind of :data:`ANOMALY_KINDS` to a number of records (see
        the module docs).
        """
        written: list[str] = []
        pending = dict(anomalies or {})
        for perso in self._persos(business_date):
            name = str(perso.name)
            if name in self.answered:
                log.warning("%s answered before: removed, not answered again", name)
                self._take(perso)
                continue
            read = self._read(perso)
            if read is None:
                continue
            records, photos = read
            rows = [self._card(row, ok, photos, business_date) for row, ok in records]
            parts = _split(rows, self.split)
            if pending:
                parts[0] = parts[0] + self._anomalies(pending, business_date)
                pending = {}
            names = [self._publish(business_date, part) for part in parts if part]
            self.answered[name] = names
            self._take(perso)
            log.info("%s answered in %d files", name, len(names))
            written.extend(names)
        if pending:
            written.append(self._publish(business_date, self._anomalies(pending, business_date)))
        return written


def _row(card_no: str, pan: str, result: Result, made_date: str) -> list[str]:
    outcome, reason, card_id_code, atr, box_no = result
    return [card_no, pan, outcome, reason, card_id_code, atr, box_no, made_date]


def _split(rows: list[list[str]], parts: int) -> list[list[list[str]]]:
    """``rows`` in ``parts`` contiguous runs of nearly equal length (at least one run)."""
    size, extra = divmod(len(rows), parts)
    runs: list[list[list[str]]] = []
    start = 0
    for i in range(parts):
        end = start + size + (1 if i < extra else 0)
        runs.append(rows[start:end])
        start = end
    return runs


def _card_no(rng: random.Random, avoid: set[str]) -> str:
    while True:
        card_no = rng.choice(string.ascii_uppercase) + f"{rng.randrange(10**8):08d}"
        if card_no not in avoid:
            return card_no
