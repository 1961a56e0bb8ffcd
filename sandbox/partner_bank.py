"""The simulated partner bank: answers the hub's ACCTOPEN files (ICD §5.4).

The bank reads what the hub sends it from its ``drop`` directory and writes its answers
into its ``pickup`` directory by the ICD §2 write protocol. Per ACCTOPEN it takes:

- only complete files: ``NAME.ok`` present, size and SHA-256 matching, named
  ``ACCTOPEN_<hub>_<code>_<date>_<seq>.txt`` with a date not after the business date it
  runs for. A file it cannot read (framing error, F-code) gets no answer and stays in
  ``drop``; the bank logs the code.
- one ACCTOPENRSP per ACCTOPEN (ICD §3): ``ACCTOPENRSP_<code>_<hub>_<date>_<seq>.txt``
  with the request's date and SEQ, and in its header the request's BATCH_NO and
  BUSINESS_DATE. One line per request line, in the same order.

Per line:

- ``00`` with a new 19-digit PAN of the bank's BIN (``bin_prefix``, by default ``622``
  and the digits of the bank code) ending in a Luhn check digit, ``pan_seq`` ``01``. A
  line with ``keep_account`` ``1`` and an ``old_pan`` keeps that PAN: ``pan_seq`` is one
  more than the highest the bank has given that PAN (``02`` for a PAN it does not know).
- ``01`` for about ``refuse_share`` of the lines, drawn from the seed and the req_no:
  E132 identity check failed, E115 ID document invalid or expired, E101 id_no invalid,
  E114 mobile invalid (a plausible mix, see :data:`REFUSAL_WEIGHTS`).
- ``01`` with the layout's own code for a line that breaks the ACCTOPEN layout, and
  E107 for a req_no repeated within the file (every occurrence after the first).
- a req_no the bank answered before, in any earlier file, gets the very same answer
  (ICD §4.2). The memory lives in ``state_dir/partner_<code>.json`` when a ``state_dir``
  is given, in memory otherwise.

The answer is published before the request is removed from ``drop`` (its ``.ok``
first), so a bank stopped in between answers the same file again, identically.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import random
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path

from stdnum import luhn

from schemas.codec import DelimitedReader, Header, write_delimited
from schemas.codes import reason_text
from schemas.files import NAME_PATTERN, Control, FileLevelError, FileName
from schemas.layouts import ACCTOPEN, ACCTOPENRSP
from transport.remote import Remote, files, join

log = logging.getLogger(__name__)

PAN_LENGTH = 19
#: refusal reasons a bank gives after its own checks, and their weights
REFUSAL_WEIGHTS: dict[str, float] = {"E132": 0.4, "E115": 0.25, "E101": 0.2, "E114": 0.15}

#: ``(result, reason_code, reason_text, pan, pan_seq)``: the fields after req_no
Answer = tuple[str, str, str, str, str]


@dataclass(frozen=True)
class _Request:
    """A complete ACCTOPEN in ``drop``."""

    name: FileName
    data: bytes
    control: Control


class PartnerBankSimulator:
    """A partner bank answering ACCTOPEN files deterministically (see the module docs)."""

    def __init__(
        self,
        remote: Remote,
        code: str = "B002",
        hub: str = "B001",
        refuse_share: float = 0.05,
        seed: int | str = 0,
        encoding: str = "GB18030",
        bin_prefix: str | None = None,
        pickup: str = "pickup",
        drop: str = "drop",
        state_dir: Path | None = None,
    ) -> None:
        if not 0.0 <= refuse_share <= 1.0:
            raise ValueError("refuse_share is a share between 0 and 1")
        prefix = bin_prefix if bin_prefix is not None else "622" + code[1:]
        if not prefix.isdigit() or not 1 <= len(prefix) <= PAN_LENGTH - 4:
            raise ValueError("bin_prefix must be 1 to 15 digits")
        self.remote = remote
        self.code = code
        self.hub = hub
        self.refuse_share = refuse_share
        self.seed = seed
        self.encoding = encoding
        self.bin_prefix = prefix
        self.pickup = pickup
        self.drop = drop
        self.state_path = state_dir / f"partner_{code}.json" if state_dir is not None else None
        self._answers: dict[str, Answer] = {}
        self._pan_seqs: dict[str, int] = {}
        self._load()

    # ------------------------------------------------------------------ memory

    @property
    def answers(self) -> dict[str, Answer]:
        """Every answer given so far, by req_no (a copy)."""
        return dict(self._answers)

    def _remember(self, req_no: str, answer: Answer) -> None:
        self._answers[req_no] = answer
        result, _, _, pan, pan_seq = answer
        if result == "00":
            self._pan_seqs[pan] = max(self._pan_seqs.get(pan, 0), int(pan_seq))

    def _load(self) -> None:
        if self.state_path is None or not self.state_path.exists():
            return
        state = json.loads(self.state_path.read_text(encoding="utf-8"))
        for req_no, answer in state["answers"].items():
            self._remember(req_no, (answer[0], answer[1], answer[2], answer[3], answer[4]))

    def _save(self) -> None:
        if self.state_path is None:
            return
        self.state_path.parent.mkdir(parents=True, exist_ok=True)
        part = self.state_path.with_name(self.state_path.name + ".part")
        part.write_text(
            json.dumps({"answers": {k: list(v) for k, v in self._answers.items()}}),
            encoding="utf-8",
        )
        os.replace(part, self.state_path)

    # ------------------------------------------------------------------ answers

    def _rng(self, req_no: str) -> random.Random:
        return random.Random(f"ACCTOPEN|{self.code}|{self.seed}|{req_no}")

    def _new_pan(self, rng: random.Random) -> str:
        body_digits = PAN_LENGTH - 1 - len(self.bin_prefix)
        while True:
            body = self.bin_prefix + f"{rng.randrange(10**body_digits):0{body_digits}d}"
            pan = body + luhn.calc_check_digit(body)
            if pan not in self._pan_seqs:
                return pan

    def _answer(self, line: dict[str, str]) -> Answer:
        """The answer to a new, valid request line."""
        rng = self._rng(line["req_no"])
        if rng.random() < self.refuse_share:
            codes = list(REFUSAL_WEIGHTS)
            code = rng.choices(codes, weights=[REFUSAL_WEIGHTS[c] for c in codes])[0]
            return ("01", code, reason_text(code), "", "")
        old_pan = line["old_pan"]
        if line["keep_account"] == "1" and old_pan:
            pan_seq = max(self._pan_seqs.get(old_pan, 1), 1) + 1
            return ("00", "", "", old_pan, f"{pan_seq:02d}")
        return ("00", "", "", self._new_pan(rng), "01")

    # ------------------------------------------------------------------ files

    def _requests(self, business_date: str) -> list[_Request]:
        entries = {e.name: e for e in files(self.remote.list_dir(self.drop))}
        found: list[_Request] = []
        for name in sorted(entries):
            m = NAME_PATTERN.fullmatch(name)
            if (
                m is None
                or m["type"] != "ACCTOPEN"
                or m["sender"] != self.hub
                or m["receiver"] != self.code
                or m["ext"] != "txt"
                or m["date"] > business_date
                or name + ".ok" not in entries
            ):
                continue
            try:
                file_name = FileName.parse(name)
                control = Control.parse(self.remote.read_bytes(join(self.drop, name + ".ok")), name)
                data = self.remote.read_bytes(join(self.drop, name))
                control.verify(len(data), hashlib.sha256(data).hexdigest())
            except FileLevelError as exc:
                log.warning("%s not taken: %s", name, exc.code)
                continue
            found.append(_Request(file_name, data, control))
        return found

    def _respond(self, request: _Request) -> tuple[Header, list[list[str]]] | None:
        """The response header and rows, or None when the file cannot be read."""
        try:
            reader = DelimitedReader(
                request.data, ACCTOPEN, self.encoding, control_count=request.control.record_count
            )
            lines: list[tuple[dict[str, str], str | None]] = []
            for chunk in reader.chunks():
                codes = chunk.fail_code.tolist()
                for row, ok, code in zip(
                    chunk.table.to_pylist(), chunk.ok.tolist(), codes, strict=True
                ):
                    lines.append((row, None if ok else str(code)))
        except FileLevelError as exc:
            log.warning("%s not answered: %s", request.name, exc.code)
            return None
        header = reader.header
        if header.sender != self.hub or header.receiver != self.code:
            log.warning("%s not answered: F04 (header parties)", request.name)
            return None
        rows: list[list[str]] = []
        seen: set[str] = set()
        for line, failure in lines:
            req_no = line["req_no"]
            answer: Answer
            if req_no in seen:
                answer = ("01", "E107", reason_text("E107"), "", "")
            elif req_no in self._answers:
                answer = self._answers[req_no]
            elif failure is not None:
                answer = ("01", failure, reason_text(failure), "", "")
                self._remember(req_no, answer)
            else:
                answer = self._answer(line)
                self._remember(req_no, answer)
            seen.add(req_no)
            rows.append([req_no, *answer])
        response = Header(
            "ACCTOPENRSP", self.code, self.hub, header.batch_no, header.business_date, len(rows)
        )
        return response, rows

    def run(
        self, business_date: str, *, silent: bool = False, skip_files: Collection[str] = ()
    ) -> list[str]:
        """Answer every complete ACCTOPEN dated up to ``business_date``; the names written.

        ``silent`` answers nothing at all; ``skip_files`` names ACCTOPEN files left
        unanswered in ``drop`` (a bank that does not answer in time, ICD §2 deadlines).
        """
        if silent:
            return []
        written: list[str] = []
        for request in self._requests(business_date):
            name = str(request.name)
            if name in skip_files:
                continue
            response = self._respond(request)
            if response is None:
                continue
            header, rows = response
            self._save()
            out = io.BytesIO()
            write_delimited(out, ACCTOPENRSP, header, rows, self.encoding)
            response_name = str(request.name.response())
            self.remote.publish(self.pickup, response_name, out.getvalue(), len(rows))
            self.remote.remove(join(self.drop, name + ".ok"))
            self.remote.remove(join(self.drop, name))
            refused = sum(1 for row in rows if row[1] != "00")
            log.info(
                "%s answered in %s: %d lines, %d refused", name, response_name, len(rows), refused
            )
            written.append(response_name)
        return written
