"""Card servicing in the sandbox: the bureau's STATUS files and BANKEVT reading (ICD §5.7,
§5.8), and the partner bank's servicing side (STATUS forwarded to it, its own BANKEVT).

:class:`PartnerServicing` follows :mod:`sandbox.partner_bank` (which answers ACCTOPEN). Per
STATUS file from the hub it takes:

- only complete files: ``STATUS_<hub>_<code>_<date>_<seq>.txt`` with its ``NAME.ok``, size
  and SHA-256 matching, dated not after the business date it runs for. A file it cannot
  read (framing error, F-code) gets no answer and stays in ``drop``; the bank logs the code.
  A file named in ``silent_files`` is never answered either (the hub must answer its lines
  E140 at ``partner_wait``, ICD §2 deadlines).
- one STATUSRSP per STATUS (ICD §3): ``STATUSRSP_<code>_<hub>_<date>_<seq>.txt``, the
  request's date and SEQ, its BATCH_NO and BUSINESS_DATE in the header, one line per
  request line in the same order.

Per line: ``00``; ``01`` E120 for about ``refuse_share`` of the lines (drawn from the seed
and the req_no); ``01`` with the layout's own code for a line breaking the STATUS layout;
E107 for a req_no repeated within the file; and for a req_no answered before, in any
earlier file, the very same answer (ICD §4.2), remembered in
``state_dir/partner_<code>_status.json``. The answer is published (its ``.ok`` last)
before the request is removed from ``drop``, so a bank stopped in between answers the same
file again, identically.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import random
import re
from collections.abc import Collection, Sequence
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from schemas.codec import DelimitedReader, Header, write_delimited
from schemas.codes import reason_text
from schemas.files import NAME_PATTERN, Control, FileLevelError, FileName
from schemas.layouts import BANKEVT, STATUS, STATUSRSP

log = logging.getLogger(__name__)

TZ = ZoneInfo("Asia/Shanghai")
#: ops a partner bank reports in its own BANKEVT (ICD §5.8)
PARTNER_EVENT_OPS = frozenset({"01", "02", "03", "11", "21", "22", "23"})

#: ``(result, reason_code, reason_text)``: the fields of a STATUSRSP line after req_no
Answer = tuple[str, str, str]


class ServicingFileError(ValueError):
    """A file the hub wrote breaks its layout or header (ICD §5.7, §5.8); the message
    names lines and fields, never values."""


def publish_file(directory: Path, name: str, data: bytes, control: bytes) -> list[Path]:
    """Write ``NAME`` and ``NAME.ok`` into ``directory`` by ICD §2: ``NAME.part`` synced
    and renamed to ``NAME``, then ``NAME.ok.part`` renamed to ``NAME.ok``."""
    directory.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    for target, content in ((name, data), (name + ".ok", control)):
        part = directory / f"{target}.part"
        with open(part, "wb") as out:
            out.write(content)
            out.flush()
            os.fsync(out.fileno())
        os.replace(part, directory / target)
        written.append(directory / target)
    return written


def _render(
    layout_type: str,
    sender: str,
    receiver: str,
    batch_no: str,
    business_date: str,
    seq: int,
    rows: Sequence[Sequence[str]],
    encoding: str,
) -> tuple[str, bytes, bytes]:
    layout = {"STATUS": STATUS, "BANKEVT": BANKEVT, "STATUSRSP": STATUSRSP}[layout_type]
    header = Header(layout_type, sender, receiver, batch_no, business_date, len(rows))
    out = io.BytesIO()
    write_delimited(out, layout, header, rows, encoding)
    data = out.getvalue()
    name = str(FileName(layout_type, sender, receiver, business_date, f"{seq:03d}"))
    return name, data, Control.for_bytes(name, data, len(rows)).render()


def _time(now: datetime) -> str:
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    return now.astimezone(TZ).strftime("%Y%m%d%H%M%S")


# --------------------------------------------------------------------------- the bureau


def make_status_file(
    ops: Sequence[tuple[str, str, str, str, str]],
    *,
    bureau: str = "R440100",
    hub: str = "B001",
    business_date: str,
    seq: int = 1,
    now: datetime,
    channel: str = "GT01",
    encoding: str = "GB18030",
) -> tuple[str, bytes, bytes]:
    """The bureau's STATUS file (ICD §5.7): one line per ``(req_no, op, card_no, id_no,
    name)``, op_time ``now`` in Asia/Shanghai, ``channel`` the bureau's own (a service
    hall), reason empty. Returns ``(name, data, control)``; BATCH_NO ``S<date><seq>``."""
    op_time = _time(now)
    rows = [
        [req_no, op, card_no, id_no, name, op_time, channel, ""]
        for req_no, op, card_no, id_no, name in ops
    ]
    return _render(
        "STATUS", bureau, hub, f"S{business_date}{seq:03d}", business_date, seq, rows, encoding
    )


def _read_lines(
    data: bytes, layout_type: str, encoding: str
) -> tuple[Header, list[dict[str, str]]]:
    layout = {"STATUSRSP": STATUSRSP, "BANKEVT": BANKEVT}[layout_type]
    reader = DelimitedReader(data, layout, encoding)
    lines: list[dict[str, str]] = []
    for chunk in reader.chunks():
        broken = [f"line {r.line} {r.field} {r.code}" for r in chunk.rejections()]
        if broken:
            raise ServicingFileError(
                f"{layout_type} lines break the layout: " + ", ".join(broken[:10])
            )
        for row in chunk.table.select([f.name for f in layout.fields]).to_pylist():
            lines.append({k: str(v) for k, v in row.items()})
    return reader.header, lines


def read_statusrsp(data: bytes, encoding: str = "GB18030") -> list[tuple[str, str, str]]:
    """``(req_no, result, reason_code)`` per STATUSRSP line, in file order (ICD §5.7):
    framing errors raise :class:`FileLevelError`, a line breaking the layout
    :class:`ServicingFileError`."""
    _, lines = _read_lines(data, "STATUSRSP", encoding)
    return [(line["req_no"], line["result"], line["reason_code"]) for line in lines]


def read_bankevt(
    data: bytes,
    encoding: str = "GB18030",
    *,
    business_date: str | None = None,
    sender: str | None = None,
    receiver: str | None = None,
) -> list[dict[str, str]]:
    """The events of a BANKEVT (ICD §5.8), one dict per line by field name, as the bureau
    reads them: header and trailer counts must agree with the lines (F02), and the header's
    BUSINESS_DATE, SENDER and RECEIVER must be the ones given (:class:`ServicingFileError`)."""
    header, lines = _read_lines(data, "BANKEVT", encoding)
    for what, want, got in (
        ("BUSINESS_DATE", business_date, header.business_date),
        ("SENDER", sender, header.sender),
        ("RECEIVER", receiver, header.receiver),
    ):
        if want is not None and got != want:
            raise ServicingFileError(f"BANKEVT header {what} is not the expected one")
    if header.record_count != len(lines):
        raise ServicingFileError("BANKEVT header RECORD_COUNT differs from its lines")
    return lines


# --------------------------------------------------------------------------- the partner bank


class PartnerServicing:
    """A partner bank answering the hub's STATUS files and sending its own BANKEVT (see
    the module docs)."""

    def __init__(
        self,
        code: str = "B002",
        hub: str = "B001",
        *,
        drop: Path,
        pickup: Path,
        state_dir: Path | None = None,
        seed: int | str = 0,
        refuse_share: float = 0.0,
        silent_files: Collection[str] = (),
        encoding: str = "GB18030",
    ) -> None:
        if not 0.0 <= refuse_share <= 1.0:
            raise ValueError("refuse_share is a share between 0 and 1")
        self.code = code
        self.hub = hub
        self.drop = Path(drop)
        self.pickup = Path(pickup)
        self.seed = seed
        self.refuse_share = refuse_share
        self.silent_files = frozenset(silent_files)
        self.encoding = encoding
        self.state_path = (
            Path(state_dir) / f"partner_{code}_status.json" if state_dir is not None else None
        )
        self._answers: dict[str, Answer] = {}
        self._load()

    @property
    def answers(self) -> dict[str, Answer]:
        """Every answer given so far, by req_no (a copy)."""
        return dict(self._answers)

    def _load(self) -> None:
        if self.state_path is None or not self.state_path.exists():
            return
        state = json.loads(self.state_path.read_text(encoding="utf-8"))
        self._answers = {k: (v[0], v[1], v[2]) for k, v in state["answers"].items()}

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

    def _remove(self, path: Path) -> None:
        path.unlink()

    def _requests(self, business_date: str) -> list[tuple[str, bytes, Control]]:
        if not self.drop.is_dir():
            return []
        present = {p.name for p in self.drop.iterdir() if p.is_file()}
        found: list[tuple[str, bytes, Control]] = []
        for name in sorted(present):
            m = NAME_PATTERN.fullmatch(name)
            if (
                m is None
                or m["type"] != "STATUS"
                or m["sender"] != self.hub
                or m["receiver"] != self.code
                or m["ext"] != "txt"
                or m["date"] > business_date
                or name + ".ok" not in present
                or name in self.silent_files
            ):
                continue
            try:
                control = Control.parse((self.drop / (name + ".ok")).read_bytes(), name)
                data = (self.drop / name).read_bytes()
                control.verify(len(data), hashlib.sha256(data).hexdigest())
            except FileLevelError as exc:
                log.warning("%s not taken: %s", name, exc.code)
                continue
            found.append((name, data, control))
        return found

    def _answer(self, req_no: str) -> Answer:
        rng = random.Random(f"STATUS|{self.code}|{self.seed}|{req_no}")
        if rng.random() < self.refuse_share:
            return ("01", "E120", reason_text("E120"))
        return ("00", "", "")

    def _respond(
        self, name: str, data: bytes, control: Control
    ) -> tuple[Header, list[list[str]]] | None:
        try:
            reader = DelimitedReader(
                data, STATUS, self.encoding, control_count=control.record_count
            )
            lines: list[tuple[str, str | None]] = []
            for chunk in reader.chunks():
                for req_no, ok, code in zip(
                    chunk.strings("req_no"),
                    chunk.ok.tolist(),
                    chunk.fail_code.tolist(),
                    strict=True,
                ):
                    lines.append((str(req_no), None if ok else str(code)))
        except FileLevelError as exc:
            log.warning("%s not answered: %s", name, exc.code)
            return None
        header = reader.header
        if header.sender != self.hub or header.receiver != self.code:
            log.warning("%s not answered: F04 (header parties)", name)
            return None
        rows: list[list[str]] = []
        seen: set[str] = set()
        for req_no, failure in lines:
            answer: Answer
            if req_no in seen:
                answer = ("01", "E107", reason_text("E107"))
            elif req_no in self._answers:
                answer = self._answers[req_no]
            else:
                answer = ("01", failure, reason_text(failure)) if failure else self._answer(req_no)
                self._answers[req_no] = answer
            seen.add(req_no)
            rows.append([req_no, *answer])
        response = Header(
            "STATUSRSP", self.code, self.hub, header.batch_no, header.business_date, len(rows)
        )
        return response, rows

    def run(self, business_date: str) -> list[str]:
        """Answer every complete STATUS dated up to ``business_date`` but the silent ones;
        the names of the STATUSRSP written."""
        written: list[str] = []
        for name, data, control in self._requests(business_date):
            response = self._respond(name, data, control)
            if response is None:
                continue
            header, rows = response
            self._save()
            out = io.BytesIO()
            write_delimited(out, STATUSRSP, header, rows, self.encoding)
            answer = out.getvalue()
            response_name = str(FileName.parse(name).response())
            publish_file(
                self.pickup,
                response_name,
                answer,
                Control.for_bytes(response_name, answer, len(rows)).render(),
            )
            self._remove(self.drop / (name + ".ok"))
            self._remove(self.drop / name)
            refused = sum(1 for row in rows if row[1] != "00")
            log.info(
                "%s answered in %s: %d lines, %d refused", name, response_name, len(rows), refused
            )
            written.append(response_name)
        return written

    def make_partner_bankevt(
        self,
        events: Sequence[tuple[str, str, str, str, str, str]],
        business_date: str,
        seq: int = 1,
    ) -> tuple[str, bytes, bytes]:
        """The bank's own BANKEVT to the hub (ICD §5.8): one line per ``(evt_no, op,
        card_no, id_no, op_time, channel)`` (ops of :data:`PARTNER_EVENT_OPS`, channel the
        bank's own, e.g. ``C21``). BATCH_NO ``E<date><seq>``; no lines is a valid file."""
        for _, op, *_rest in events:
            if op not in PARTNER_EVENT_OPS:
                raise ValueError(f"a partner bank does not report op {op} in BANKEVT")
        for event in events:
            if not re.fullmatch(r"[0-9]{14}", event[4]):
                raise ValueError("op_time is YYYYMMDDHHMMSS")
        rows = [list(event) for event in events]
        return _render(
            "BANKEVT",
            self.code,
            self.hub,
            f"E{business_date}{seq:03d}",
            business_date,
            seq,
            rows,
            self.encoding,
        )

    def publish_partner_bankevt(
        self,
        events: Sequence[tuple[str, str, str, str, str, str]],
        business_date: str,
        seq: int = 1,
    ) -> str:
        """:meth:`make_partner_bankevt` written into the bank's ``pickup`` (ICD §2); its name."""
        name, data, control = self.make_partner_bankevt(events, business_date, seq)
        publish_file(self.pickup, name, data, control)
        return name
