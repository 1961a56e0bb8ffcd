"""The lines of a STATUS or CHANNEL file, read whole (such files hold card ops, not
millions of payments) and answered one by one in SEQ order (ICD §5.7), with what every
request file shares: its keys (ICD §4.2) and the order of the checks on a line."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from sqlalchemy import Connection

from persistence.db import insert_many, keyed
from schemas.codec import DelimitedReader
from schemas.codes import reason_text
from schemas.layouts import NOT_A_KEY, Layout, answered_key
from schemas.states import Result

#: a line's field index when nothing failed, and when the whole line did
_NONE = 10_000


@dataclass
class Line:
    """One request line: its fields, the first failing field (layout order) and, once
    decided, its answer."""

    seq: int
    fields: dict[str, str]
    fail_at: int = _NONE
    code: str = ""
    whole_line: bool = False
    result: str | None = None
    partner_req_no: str | None = None
    content_sha: str = ""

    def get(self, name: str) -> str:
        return self.fields.get(name, "")

    @property
    def key(self) -> str:
        return self.fields.get("req_no", "")[:64]

    def fail(self, layout: Layout, field_name: str, code: str) -> None:
        """Reject at ``field_name`` unless an earlier field already failed (ICD §4.2: the
        first failing field in layout order)."""
        index = layout.index(field_name)
        if index < self.fail_at:
            self.fail_at, self.code = index, code

    @property
    def failed(self) -> bool:
        return self.fail_at != _NONE

    def refuse(self, code: str) -> None:
        self.result, self.code = Result.REFUSED.value, code

    def answer(self, result: Result) -> None:
        self.result, self.code = result.value, ""

    def row(self) -> tuple[str, str, str, str]:
        """The response line: req_no, result, reason_code, reason_text."""
        assert self.result is not None
        if self.result == Result.REFUSED:
            return (
                answered_key(self.get("req_no")),
                self.result,
                self.code,
                reason_text(self.code),
            )
        return (answered_key(self.get("req_no")), self.result, "", "")


def read_lines(reader: DelimitedReader) -> list[Line]:
    """Every detail line with the codec's first failure (ICD §4.2); a NUL in a field is
    read as U+FFFD. Its content digest (to tell a repeated request from another, ICD §4.2)
    covers every field after the key, a PIN block by its key id and nonce only."""
    layout = reader.layout
    secret = {layout.names[i] for i in layout.secrets}
    lines: list[Line] = []
    for chunk in reader.chunks():
        columns = {name: chunk.strings(name) for name in layout.names}
        seqs = chunk.seqs.tolist()
        fail_index = chunk.fail_index.tolist()
        fail_code = chunk.fail_code.tolist()
        for i, seq in enumerate(seqs):
            # a NUL, which PostgreSQL text cannot hold, is read as U+FFFD: the line then
            # fails its own checks (an unknown key, say) instead of failing the file
            fields = {
                name: str(columns[name][i] or "").replace("\x00", "\ufffd") for name in layout.names
            }
            line = Line(int(seq), fields)
            index = int(fail_index[i])
            if index < 0:  # the whole line (wrong number of fields)
                line.fail_at, line.code, line.whole_line = -1, str(fail_code[i]), True
            elif index < len(layout.names):
                line.fail_at, line.code = index, str(fail_code[i])
            line.content_sha = hashlib.sha256(
                "|".join(
                    _kept(fields[n]) if n in secret else fields[n] for n in layout.names[1:]
                ).encode()
            ).hexdigest()[:40]
            lines.append(line)
    return lines


#: the leading hex digits of a PIN block that are no secret: its key id (1 byte) and nonce
#: (12 bytes), ICD §5.9
_BLOCK_HEAD = 2 * (1 + 12)


def _kept(block: str) -> str:
    """What a line's content digest keeps of a PIN block: its key id and nonce, never its
    ciphertext, so the digest tells one block from another (a fresh block has a fresh
    nonce: other content, E107) and gives nothing to test PINs against. A value too short
    to be a block is kept whole: it decrypts nothing."""
    return block[:_BLOCK_HEAD] if len(block) > _BLOCK_HEAD else block


def settle_keys(conn: Connection, lines: Sequence[Line], type_: str, sender: str) -> None:
    """ICD §4.2 before anything else: a req_no answered in an earlier file repeats its first
    answer unchanged (still waiting for a partner bank: it waits with it) or, with other
    content, is E107; within the file, every occurrence after the first is E107."""
    keys = sorted({ln.key for ln in lines if ln.key and answered_key(ln.key) != NOT_A_KEY})
    earlier: dict[str, tuple[str, str | None, str, str | None]] = {}
    for i in range(0, len(keys), 5000):
        stmt = keyed(
            conn,
            "SELECT req_no, content_sha, result, reason_code, partner_req_no FROM service_line "
            "WHERE sender = :sender AND type = :type AND req_no IN :keys "
            "ORDER BY file_id DESC, seq DESC",
            "keys",
        )
        for r in conn.execute(stmt, {"sender": sender, "type": type_, "keys": keys[i : i + 5000]}):
            earlier[r.req_no] = (r.content_sha, r.result, r.reason_code, r.partner_req_no)
    seen: set[str] = set()
    for line in lines:
        key = line.key
        if not key or answered_key(key) == NOT_A_KEY or line.whole_line:
            continue
        if key in seen:
            line.refuse("E107")
            continue
        seen.add(key)
        first = earlier.get(key)
        if first is None:
            continue
        sha, result, reason, partner_req_no = first
        if sha != line.content_sha:
            line.refuse("E107")
        elif result is None:
            line.partner_req_no = partner_req_no
            line.result = None
            line.code = "wait"
        else:
            line.result, line.code = result, reason or ""


def decided(line: Line) -> bool:
    """Whether the key rules already decided the line (an answer, or a wait)."""
    return line.result is not None or line.code == "wait"


def store_lines(
    conn: Connection,
    lines: Iterable[Line],
    file_id: int,
    type_: str,
    sender: str,
    op_field: str = "op",
) -> None:
    rows = [
        {
            "file_id": file_id,
            "seq": ln.seq,
            "type": type_,
            "sender": sender,
            "req_no": ln.key,
            "content_sha": ln.content_sha,
            "op": ln.get(op_field)[:2],
            "card_no": ln.get("card_no")[:9],
            "result": ln.result,
            "reason_code": ln.code if ln.result == Result.REFUSED else "",
            "reason_field": "",
            "partner_req_no": ln.partner_req_no,
        }
        for ln in lines
    ]
    insert_many(conn, "service_line", rows)
