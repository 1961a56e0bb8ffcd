"""STATUS from the bureaus (ICD §5.7) and CHANNEL from bank channels (ICD §5.9): each
file's lines applied in SEQ order in the file's transaction, each line answered once.

The order of checks on a line (ICD §5.7; decision 53): the key rules of §4.2 (a repeated
or reused req_no), then a card_no or pan the hub does not know (E119), then the field
rules in layout order (the codec's codes, identity E132, ``pin_block`` E130 then E131),
then the state rules (E119 for a pan that is not the card's, E120, E121, ``02``).
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import BinaryIO

from sqlalchemy import Connection, text

from banking.keystore import KeyStore
from banking.pin import (
    Pin,
    PinContext,
    PinRefused,
    matches,
    open_pin_block,
    verification_value,
    weak_reason,
    within_window,
)
from exchange.outbox import Drop, compose, response_name
from persistence.db import insert_many, keyed
from schemas.codec import DelimitedReader, Header, write_delimited
from schemas.files import FileName
from schemas.layouts import CHANNEL, CHANNELRSP, STATUS, STATUSRSP, Layout
from schemas.states import (
    CARD_OP_OF_CHANNEL,
    AccountOp,
    AccountStatus,
    CardOp,
    ChannelOp,
    Result,
    account_transition,
    card_transition,
)
from servicing.book import Book, CardState
from servicing.lines import Line, decided, read_lines, settle_keys, store_lines

log = logging.getLogger("sscard.servicing")

#: the BANKEVT op of a financial activation, a PIN locked and unlocked (ICD §5.8)
ACTIVATED, PIN_LOCKED, PIN_UNLOCKED = "21", "22", "23"
#: channel ops that check the holder's identity (ICD §5.9: id_no and name C)
_IDENTITY_OPS = frozenset(CHANNEL.field("id_no").cond.values)  # type: ignore[union-attr]
#: channel ops whose pin_block may be given (ICD §5.9)
_PIN_OPS = frozenset({ChannelOp.A1, ChannelOp.P1, ChannelOp.E1})
#: positions in CHANNEL of the op and the PIN block
_OP_AT, _PIN_AT = CHANNEL.index("op"), CHANNEL.index("pin_block")


def partner_req_no(file_id: int, seq: int) -> str:
    """The hub's own req_no of a bureau's line forwarded to a partner bank (ICD §4.2)."""
    return f"S{file_id:09d}{seq:08d}"


@dataclass(frozen=True)
class Ctx:
    hub: str
    sender: str
    business_date: str
    now: datetime
    file_id: int


# --------------------------------------------------------------------------- STATUS


def apply_status(conn: Connection, reader: DelimitedReader, ctx: Ctx) -> dict[str, int]:
    """A bureau's STATUS file: every line applied in SEQ order; lines of partner-bank
    cards forwarded (answered when the partner answers, or E140 at ``partner_wait``)."""
    lines = read_lines(reader)
    settle_keys(conn, lines, "STATUS", ctx.sender)
    book = Book(ctx.hub, ctx.business_date, ctx.now, actor=ctx.sender)
    book.load(conn, card_nos=[ln.get("card_no") for ln in lines if not decided(ln)])
    for line in lines:
        if decided(line):
            continue
        _status_line(book, line, ctx)
    book.flush(conn)
    store_lines(conn, lines, ctx.file_id, "STATUS", ctx.sender)
    return _counts(lines)


def _status_line(book: Book, line: Line, ctx: Ctx) -> None:
    card = book.card(line.get("card_no"))
    if card is None and not line.whole_line:
        line.refuse("E119")
        return
    if card is not None and not line.whole_line and card.bureau != ctx.sender:
        # another bureau's card is not this bureau's to change, whatever else the line
        # holds (and its holder's identity is not checked for it)
        line.refuse("E119")
        return
    if card is not None and (line.get("id_no"), line.get("name")) != (card.id_no, card.name):
        if line.get("id_no") != card.id_no:
            line.fail(STATUS, "id_no", "E132")
        else:
            line.fail(STATUS, "name", "E132")
    if line.failed:
        line.refuse(line.code)
        return
    assert card is not None
    op = CardOp(line.get("op"))
    if book.is_hub(card):
        outcome = book.card_op(card, op, by=ctx.sender, op_time=line.get("op_time"), ref=line.key)
        if outcome.result is Result.REFUSED:
            assert outcome.reason is not None
            line.refuse(outcome.reason.value)
        else:
            line.answer(outcome.result)
        return
    # a partner bank's card: the hub checks the transition itself, then forwards it
    outcome = card_transition(card.status, op, replacement_applied=card.being_replaced)
    if outcome.result is Result.REFUSED:
        assert outcome.reason is not None
        line.refuse(outcome.reason.value)
    elif outcome.result is Result.ALREADY:
        line.answer(Result.ALREADY)
    else:
        fwd = book.forward(
            card,
            op,
            line.get("op_time"),
            line.get("channel"),
            outcome.status,
            partner_req_no(ctx.file_id, line.seq),
        )
        line.partner_req_no = fwd.req_no
        # later lines of the file see the op as done (the partner applies them in order)
        card.status = outcome.status


# --------------------------------------------------------------------------- CHANNEL


@dataclass
class Pins:
    """What the PIN checks need: the key store, the window and the nonces seen."""

    keys: KeyStore
    found_at: datetime
    window: timedelta = timedelta(minutes=10)
    seen: set[tuple[int, str]] = field(default_factory=set)
    stored: dict[str, tuple[str, str]] = field(default_factory=dict)
    decrypted: list[tuple[int, str]] = field(default_factory=list)


def apply_channel(
    conn: Connection,
    reader: DelimitedReader,
    ctx: Ctx,
    keys: KeyStore,
    found_at: datetime,
    window: timedelta,
) -> dict[str, int]:
    """A bank channel's CHANNEL file: every line applied in SEQ order, answered at once."""
    lines = read_lines(reader)
    settle_keys(conn, lines, "CHANNEL", ctx.sender)
    todo = [ln for ln in lines if not decided(ln)]
    book = Book(ctx.hub, ctx.business_date, ctx.now, actor=ctx.sender)
    book.load(
        conn, card_nos=[ln.get("card_no") for ln in todo], pans=[ln.get("pan") for ln in todo]
    )
    pins = Pins(keys, found_at, window)
    pins.stored = _stored_pins(conn, list(book.accounts))
    pins.seen = _seen_nonces(conn, ctx.sender, lines)
    for line in todo:
        _channel_line(book, pins, line, ctx)
    book.flush(conn)
    _remember_nonces(conn, ctx.sender, pins.decrypted)
    store_lines(conn, lines, ctx.file_id, "CHANNEL", ctx.sender)
    return _counts(lines)


def _channel_line(book: Book, pins: Pins, line: Line, ctx: Ctx) -> None:
    card = book.card(line.get("card_no"))
    account = book.account(line.get("pan"))
    if not line.whole_line and (
        card is None or account is None or account.bank_code != ctx.hub or card.bureau == ""
    ):
        line.refuse("E119")  # unknown, or an account held at a partner bank (ICD §5.9)
        return
    op_text = line.get("op")
    if card is not None and line.fail_at > _OP_AT:
        # the holder's identity and the PIN block are checked whatever fails after them:
        # the first failing field in layout order answers (ICD §4.2)
        op = ChannelOp(op_text)
        if op_text in _IDENTITY_OPS:
            if line.get("id_no") != card.id_no:
                line.fail(CHANNEL, "id_no", "E132")
            elif line.get("name") != card.name:
                line.fail(CHANNEL, "name", "E132")
        block = line.get("pin_block")
        if block and op not in _PIN_OPS:
            line.fail(CHANNEL, "pin_block", "E130")
        elif block and line.failed and line.fail_at > _PIN_AT:
            # a later field fails: whether the block opens still decides the answer (its
            # nonce is not taken, the line being refused)
            try:
                open_pin_block(block, _pin_context(line, ctx), pins.keys)
            except PinRefused as refused:
                line.fail(CHANNEL, "pin_block", refused.code)
    if line.failed:
        line.refuse(line.code)
        return
    assert card is not None and account is not None
    op = ChannelOp(op_text)
    pin = _open_pin(line, card, pins, ctx) if line.get("pin_block") else None
    if line.failed:
        line.refuse(line.code)
        return
    # state rules
    if card.pan != line.get("pan"):
        line.refuse("E119")
        return
    op_time = line.get("op_time")
    ref = line.key
    if op in CARD_OP_OF_CHANNEL:
        card_op = CARD_OP_OF_CHANNEL[op]
        outcome = book.card_op(
            card,
            card_op,
            by=ctx.sender,
            op_time=op_time,
            ref=ref,
            event_channel=ctx.sender,
            event_key=f"{ctx.sender}:{ref}",
        )
        if outcome.result is Result.REFUSED:
            assert outcome.reason is not None
            line.refuse(outcome.reason.value)
            return
        line.answer(outcome.result)
        if op is ChannelOp.E1 and outcome.result is Result.DONE and pin is not None:
            activated = account_transition(
                account.status, AccountOp.ACTIVATE, card_status=card.status
            )
            if activated.result is Result.DONE:
                _set_pin(book, pins, account.pan, pin, ctx.sender, ref)
                book.set_account(account, by=ctx.sender, ref=ref, status=AccountStatus.ACTIVE)
                book.event(card, ACTIVATED, op_time, ctx.sender, f"{ctx.sender}:{ref}:21")
        return
    if op is ChannelOp.P2:
        if not account.pin_locked:
            line.answer(Result.ALREADY)
            return
        book.set_account(account, by=ctx.sender, ref=ref, pin_locked=False)
        book.event(card, PIN_UNLOCKED, op_time, ctx.sender, f"{ctx.sender}:{ref}")
        line.answer(Result.DONE)
        return
    account_op = AccountOp.ACTIVATE if op is ChannelOp.A1 else AccountOp.RESET_PIN
    outcome_a = account_transition(account.status, account_op, card_status=card.status)
    if outcome_a.result is Result.REFUSED:
        assert outcome_a.reason is not None
        line.refuse(outcome_a.reason.value)
        return
    if outcome_a.result is Result.ALREADY:
        line.answer(Result.ALREADY)
        return
    assert pin is not None
    _set_pin(book, pins, account.pan, pin, ctx.sender, ref)
    if op is ChannelOp.A1:
        book.set_account(account, by=ctx.sender, ref=ref, status=AccountStatus.ACTIVE)
        book.event(card, ACTIVATED, op_time, ctx.sender, f"{ctx.sender}:{ref}")
    else:  # P1 also clears pin_locked (DOMAIN §4); it has no event (ICD §5.8)
        book.set_account(account, by=ctx.sender, ref=ref, pin_locked=False)
    line.answer(Result.DONE)


def _pin_context(line: Line, ctx: Ctx) -> PinContext:
    return PinContext(
        req_no=line.get("req_no"),
        op=line.get("op"),
        pan=line.get("pan"),
        card_no=line.get("card_no"),
        op_time=line.get("op_time"),
        sender=ctx.sender,
    )


def _open_pin(line: Line, card: CardState, pins: Pins, ctx: Ctx) -> Pin | None:
    """The PIN of the line's block, or the line failed at pin_block (E130, E131)."""
    try:
        opened = open_pin_block(line.get("pin_block"), _pin_context(line, ctx), pins.keys)
    except PinRefused as refused:
        line.fail(CHANNEL, "pin_block", refused.code)
        return None
    nonce = (opened.key_id, opened.nonce.hex())
    replayed = nonce in pins.seen
    pins.seen.add(nonce)
    pins.decrypted.append(nonce)
    if replayed or not within_window(line.get("op_time"), pins.found_at, pins.window):
        line.fail(CHANNEL, "pin_block", "E130")
        return None
    stored = pins.stored.get(line.get("pan"))

    def previous(pin: Pin) -> bool:
        if stored is None:
            return False
        key = pins.keys.verification_key_by_id(stored[0])
        return key is not None and matches(line.get("pan"), pin, stored[1], key)

    if weak_reason(
        opened.pin,
        id_no=card.id_no,
        card_no=card.card_no,
        birth_date=card.birth_date,
        previous=previous,
    ):
        line.fail(CHANNEL, "pin_block", "E131")
        return None
    return opened.pin


def _set_pin(book: Book, pins: Pins, pan: str, pin: Pin, channel: str, ref: str) -> None:
    key_id, key = pins.keys.verification_key()
    value = verification_value(pan, pin, key)
    book.pins[pan] = (key_id, value)
    pins.stored[pan] = (key_id, value)
    book.audit("", pan, "pin:set", channel, ref, "", f"key {key_id}")


def _stored_pins(conn: Connection, pans: Sequence[str]) -> dict[str, tuple[str, str]]:
    out: dict[str, tuple[str, str]] = {}
    for i in range(0, len(pans), 5000):
        stmt = keyed(
            conn, "SELECT pan, key_id, value FROM pin_verification WHERE pan IN :keys", "keys"
        )
        for r in conn.execute(stmt, {"keys": list(pans[i : i + 5000])}):
            out[r.pan] = (r.key_id, r.value)
    return out


def _seen_nonces(conn: Connection, channel: str, lines: Sequence[Line]) -> set[tuple[int, str]]:
    """The nonces of this file's blocks already seen in earlier files (ICD §5.9)."""
    wanted = sorted({ln.get("pin_block")[2:26] for ln in lines if len(ln.get("pin_block")) >= 26})
    out: set[tuple[int, str]] = set()
    for i in range(0, len(wanted), 5000):
        stmt = keyed(
            conn,
            "SELECT key_id, nonce FROM pin_nonce WHERE channel = :channel AND nonce IN :keys",
            "keys",
        )
        for r in conn.execute(stmt, {"channel": channel, "keys": wanted[i : i + 5000]}):
            out.add((int(r.key_id), r.nonce))
    return out


def _remember_nonces(conn: Connection, channel: str, nonces: list[tuple[int, str]]) -> None:
    rows = [{"channel": channel, "key_id": k, "nonce": n} for k, n in sorted(set(nonces))]
    insert_many(conn, "pin_nonce", rows, ignore_conflicts=True)


# --------------------------------------------------------------------------- answers


def _counts(lines: Sequence[Line]) -> dict[str, int]:
    tally = Counter(
        "waiting" if ln.result is None else ln.result if ln.result != "01" else ln.code
        for ln in lines
    )
    counts = {str(k): v for k, v in tally.items()}
    counts["lines"] = len(lines)
    counts["applied"] = sum(1 for ln in lines if ln.result in (Result.DONE, Result.ALREADY))
    return counts


RESPONSE_LAYOUT: dict[str, Layout] = {"STATUS": STATUSRSP, "CHANNEL": CHANNELRSP}


def answer_ready(
    conn: Connection, type_: str, sender: str, dest: Drop, encoding: str, work_dir: Path
) -> list[str]:
    """Queue the response of every ``type_`` file from ``sender`` whose lines all have
    their outcome and which has none yet (ICD §5.7: one response file per request file,
    written when every line has its outcome). Returns the names queued."""
    layout = RESPONSE_LAYOUT[type_]
    ready = conn.execute(
        text(
            "SELECT f.id, f.name, f.batch_no, f.business_date FROM received_file f "
            "WHERE f.sender = :sender AND f.type = :type AND f.outcome = 'accepted' "
            "AND NOT EXISTS (SELECT 1 FROM service_line l WHERE l.file_id = f.id AND l.result IS NULL) "
            "AND NOT EXISTS (SELECT 1 FROM outbound_file o WHERE o.source_file_id = f.id "
            "AND o.type = :rsp) ORDER BY f.id"
        ),
        {"sender": sender, "type": type_, "rsp": layout.type},
    ).all()
    names = []
    for f in ready:
        rows = conn.execute(
            text(
                "SELECT req_no, result, reason_code FROM service_line WHERE file_id = :f ORDER BY seq"
            ),
            {"f": f.id},
        ).all()
        lines: list[tuple[str, ...]] = []
        from schemas.codes import reason_text
        from schemas.layouts import answered_key

        for r in rows:
            code = r.reason_code if r.result == Result.REFUSED else ""
            lines.append(
                (answered_key(r.req_no), r.result, code, reason_text(code) if code else "")
            )
        request = FileName.parse(f.name)
        name = response_name(request)
        header = Header(
            layout.type, request.receiver, request.sender, f.batch_no, f.business_date, len(lines)
        )

        def write(out: BinaryIO, h: Header = header, ls: list[tuple[str, ...]] = lines) -> None:
            write_delimited(out, layout, h, ls, encoding)

        compose(
            conn,
            dest,
            work_dir,
            name=name,
            type_=layout.type,
            record_count=len(lines),
            write=write,
            source_file_id=f.id,
        )
        names.append(name)
        log.info("%s: %d line(s) answered", name, len(lines))
    return names


def resolve_lines(conn: Connection, answers: Sequence[tuple[str, str, str]]) -> int:
    """Give the bureau's lines waiting on partner requests their outcome: ``(hub req_no,
    result, reason_code)``. Returns the lines resolved."""
    if not answers:
        return 0
    result = conn.execute(
        text(
            "UPDATE service_line SET result = :result, reason_code = :reason "
            "WHERE partner_req_no = :req_no AND result IS NULL"
        ),
        [{"req_no": r, "result": res, "reason": code} for r, res, code in answers],
    )
    return int(result.rowcount or 0)
