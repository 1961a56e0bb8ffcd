"""The simulated bank channel system (柜面/电话银行): CHANNEL files to the hub (ICD §5.9).

A file holds realistic requests on cards the hub made, plus planted faults, each line
with the answer the ICD requires (``ChannelRequest.expect``), so a test can compare the
hub's CHANNELRSP line by line. The channel simulates each card through the file in SEQ
order (ICD §5.7: each line sees the effect of the lines before it), starting from what
the caller says the card is (:class:`ChannelCard`).

Kinds of line (:data:`KINDS`; ``mix`` gives each a share of the lines):

================  ======  ===================================================================
kind              expect  the line
================  ======  ===================================================================
E1                00      collect and enable a sealed card with a PIN block (also activates)
E1_nopin          00      collect and enable a sealed card without a PIN block
E1_again          02      E1 (no PIN block) on a card already normal
A1                00      financial activation of a normal card whose account is preopened
A1_again          02      A1 on an account already active
P1                00      PIN reset on an active account (clears pin_locked)
P2                00/02   PIN unlock: ``00`` when the card's PIN is locked, ``02`` otherwise
L1                00/02   temporary loss of a normal card
L2                00/02   formal loss of a normal card or one in temporary loss
L3                00/02   unblock of a card in temporary or formal loss
weak_equal        E131    E1 with a PIN of six equal digits (``111111``)
weak_ascending    E131    an ascending run (``123456``)
weak_descending   E131    a descending run (``654321``)
weak_id_no        E131    the last six characters of the holder's id_no
weak_card_no      E131    the last six characters of the card_no
weak_birth_yymmdd E131    the birth date as ``YYMMDD``
weak_birth_mmddyy E131    the birth date as ``MMDDYY``
wrong_name        E132    E1 with another holder's name
wrong_id_no       E132    E1 with another holder's id_no
a1_sealed         E120    A1 on a card still sealed (strong PIN, identity right)
replay            E130    E1 whose block reuses the nonce of an earlier line answered ``00``
                          (sealed for this line, so only the nonce registry can refuse it)
unknown_key       E130    a block under a zone key id the hub does not know
stale             E130    op_time 30 minutes before ``now`` (``pin_window`` is 10 minutes)
tampered          E130    one byte of the ciphertext flipped
================  ======  ===================================================================

Each weak PIN is weak by the rule its kind names and by no rule before it in DOMAIN §4's
order (all equal, ascending, descending, id_no, card_no, birth date, previous PIN); a
strong PIN breaks none of them, the PINs set earlier in the file included. A kind with no
card in a suitable state waits for a later line; what still has none at the end becomes
a plain line on some card (the kinds actually written are in each request's ``kind``).

The channel seals its blocks itself from the ICD (AES-256-GCM, associated data
``req_no|op|pan|card_no|op_time|SENDER``), so the hub's opening code is checked against
an independent implementation; each good block has a fresh random nonce.
"""

from __future__ import annotations

import io
import math
import os
import random
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from sandbox.servicing import publish_file
from schemas.codec import DelimitedReader, Header, write_delimited
from schemas.files import Control, FileName
from schemas.layouts import CHANNEL, CHANNELRSP

TZ = ZoneInfo("Asia/Shanghai")
NONCE_BYTES = 12
PIN_WINDOW = timedelta(minutes=10)
#: how far before ``now`` a ``stale`` line's op_time lies: well outside ``pin_window``
STALE_BY = timedelta(minutes=30)
BRANCH = "440101001"
TELLER = "T0001"

WEAK_KINDS = (
    "weak_equal",
    "weak_ascending",
    "weak_descending",
    "weak_id_no",
    "weak_card_no",
    "weak_birth_yymmdd",
    "weak_birth_mmddyy",
)
BLOCK_FAULTS = ("replay", "unknown_key", "stale", "tampered")
FAULT_KINDS = (*WEAK_KINDS, "wrong_name", "wrong_id_no", "a1_sealed", *BLOCK_FAULTS)
PLAIN_KINDS = ("E1", "E1_nopin", "E1_again", "A1", "A1_again", "P1", "P2", "L1", "L2", "L3")
KINDS = (*PLAIN_KINDS, *FAULT_KINDS)

#: the default mix: mostly E1, then servicing, and 1-2 % of each planted fault
DEFAULT_MIX: dict[str, float] = {
    "E1": 0.40,
    "E1_nopin": 0.05,
    "E1_again": 0.02,
    "A1": 0.08,
    "A1_again": 0.03,
    "P1": 0.06,
    "P2": 0.03,
    "L1": 0.05,
    "L2": 0.03,
    "L3": 0.04,
    **dict.fromkeys(WEAK_KINDS, 0.01),
    "wrong_name": 0.02,
    "wrong_id_no": 0.02,
    "a1_sealed": 0.02,
    **dict.fromkeys(BLOCK_FAULTS, 0.02),
}

#: the kinds whose line is an E1 with a PIN block on a sealed card
_SEALED_E1 = frozenset({"E1", *WEAK_KINDS, "wrong_name", "wrong_id_no", *BLOCK_FAULTS})
_IDENTITY_OPS = frozenset({"E1", "A1", "P1", "P2", "L2"})
_DIGITS = "0123456789"
#: what a line becomes when no card suits any kind still to be written
_FALLBACK = ("E1", "L1", "L3", "L2", "E1_again")


@dataclass
class ChannelCard:
    """A card as the channel believes it is: DOMAIN §2 ``status`` (``0`` sealed, ``1``
    normal, ``2`` formal loss, ``4`` temporary loss, ``9`` cancelled), whether its
    account is ``activated`` (DOMAIN §3) and its PIN locked."""

    card_no: str
    pan: str
    id_no: str
    name: str
    birth_date: str
    pan_seq: str = "01"
    status: str = "0"
    activated: bool = False
    pin_locked: bool = False


@dataclass
class ChannelRequest:
    """One CHANNEL line: ``pin`` the digits sealed in its block (None without one),
    ``expect`` the answer the ICD requires (``00``, ``02`` or ``01/<code>``), ``row`` the
    fields as written (a wrong identity included)."""

    req_no: str
    op: str
    card: ChannelCard
    pin: str | None
    expect: str
    kind: str = ""
    pin_block: str = ""
    op_time: str = ""
    key_id: int | None = None
    row: list[str] = field(default_factory=list)

    @property
    def result(self) -> str:
        return self.expect.split("/")[0]

    @property
    def reason_code(self) -> str:
        return self.expect.split("/")[1] if "/" in self.expect else ""

    @property
    def nonce(self) -> bytes | None:
        """The block's nonce (bytes 1-12), None without a block."""
        return bytes.fromhex(self.pin_block)[1 : 1 + NONCE_BYTES] if self.pin_block else None


@dataclass
class ChannelFile:
    """A CHANNEL file, its control file (ICD §2) and its requests in SEQ order."""

    name: str
    data: bytes
    control: bytes
    requests: list[ChannelRequest]
    header: Header

    def expected(self) -> list[tuple[str, str, str]]:
        """``(req_no, result, reason_code)`` per line: what CHANNELRSP must say."""
        return [(r.req_no, r.result, r.reason_code) for r in self.requests]


# --------------------------------------------------------------------------- PINs


def seal(
    pin: str,
    *,
    req_no: str,
    op: str,
    pan: str,
    card_no: str,
    op_time: str,
    sender: str,
    key_id: int,
    key: bytes,
    nonce: bytes | None = None,
) -> str:
    """A ``pin_block`` as ICD §5.9 defines it: lower-case hex of ``key_id (1) ‖ nonce
    (12) ‖ ciphertext ‖ tag (16)``, AES-256-GCM, associated data
    ``req_no|op|pan|card_no|op_time|SENDER``."""
    nonce = os.urandom(NONCE_BYTES) if nonce is None else nonce
    associated = "|".join((req_no, op, pan, card_no, op_time, sender)).encode("ascii")
    sealed = AESGCM(key).encrypt(nonce, pin.encode("ascii"), associated)
    return (bytes([key_id]) + nonce + sealed).hex()


def weak_rules(pin: str, card: ChannelCard, previous: Sequence[str] = ()) -> list[str]:
    """The weak kinds (:data:`WEAK_KINDS`, plus ``previous``) ``pin`` breaks, in DOMAIN
    §4's order."""
    found: list[str] = []
    if pin == pin[0] * 6:
        found.append("weak_equal")
    if pin in _DIGITS:
        found.append("weak_ascending")
    if pin in _DIGITS[::-1]:
        found.append("weak_descending")
    if pin == card.id_no[-6:]:
        found.append("weak_id_no")
    if pin == card.card_no[-6:]:
        found.append("weak_card_no")
    if pin == card.birth_date[2:]:
        found.append("weak_birth_yymmdd")
    if pin == card.birth_date[4:] + card.birth_date[2:4]:
        found.append("weak_birth_mmddyy")
    if pin in previous:
        found.append("previous")
    return found


def strong_pin(rng: random.Random, card: ChannelCard, previous: Sequence[str] = ()) -> str:
    """Six random digits that break no rule of DOMAIN §4 for ``card``."""
    while True:
        pin = f"{rng.randrange(10**6):06d}"
        if not weak_rules(pin, card, previous):
            return pin


def weak_pin(rng: random.Random, kind: str, card: ChannelCard) -> str | None:
    """A PIN weak by ``kind`` and by no rule before it, or None when ``card`` cannot
    carry one (an id_no ending in ``X``, a birth date that is also a run, …)."""
    if kind == "weak_equal":
        return rng.choice(_DIGITS) * 6
    if kind == "weak_ascending":
        start = rng.randrange(5)
        return _DIGITS[start : start + 6]
    if kind == "weak_descending":
        start = rng.randrange(5)
        return _DIGITS[::-1][start : start + 6]
    birth = card.birth_date
    pin = {
        "weak_id_no": card.id_no[-6:],
        "weak_card_no": card.card_no[-6:],
        "weak_birth_yymmdd": birth[2:],
        "weak_birth_mmddyy": birth[4:] + birth[2:4],
    }[kind]
    if len(pin) == 6 and pin.isdigit() and weak_rules(pin, card)[0] == kind:
        return pin
    return None


# --------------------------------------------------------------------------- the file


@dataclass
class _State:
    card: ChannelCard
    status: str
    active: bool
    locked: bool
    pins: list[str] = field(default_factory=list)


def _suits(kind: str, s: _State) -> bool:
    if kind in _SEALED_E1 or kind in ("E1_nopin", "a1_sealed"):
        return s.status == "0"
    if kind == "E1_again":
        return s.status == "1"
    if kind == "A1":
        return s.status == "1" and not s.active
    if kind in ("A1_again", "P1", "P2"):
        return s.status == "1" and s.active
    if kind == "L1":
        return s.status == "1"
    if kind == "L2":
        return s.status in ("1", "4")
    if kind == "L3":
        return s.status in ("2", "4")
    raise ValueError(f"no channel line kind {kind}")


def _op_of(kind: str) -> str:
    if kind in ("A1", "A1_again", "a1_sealed"):
        return "A1"
    if kind in ("P1", "P2", "L1", "L2", "L3"):
        return kind
    return "E1"


def _state_outcome(op: str, s: _State, with_block: bool) -> str:
    """The answer by the state rules (ICD §5.7, §5.9; DOMAIN §2, §3), applying it to ``s``."""
    if op == "E1":
        if s.status == "1":
            return "02"
        if s.status != "0":
            return "01/E120"
        s.status = "1"
        s.active = s.active or with_block
        return "00"
    if op == "A1":
        if s.status != "1":
            return "01/E120"
        if s.active:
            return "02"
        s.active = True
        return "00"
    if op == "P1":
        if not s.active:
            return "01/E120"
        s.locked = False
        return "00"
    if op == "P2":
        if not s.locked:
            return "02"
        s.locked = False
        return "00"
    target, sources = {"L1": ("4", ("1",)), "L2": ("2", ("1", "4")), "L3": ("1", ("2", "4"))}[op]
    if s.status == target:
        return "02"
    if s.status not in sources:
        return "01/E120"
    s.status = target
    return "00"


def _plan(rng: random.Random, size: int, mix: dict[str, float]) -> list[str]:
    counts: dict[str, int] = {}
    for kind, share in mix.items():
        if kind not in KINDS:
            raise ValueError(f"no channel line kind {kind}; kinds: {', '.join(KINDS)}")
        if not 0 <= share <= 1:
            raise ValueError(f"share of {kind} must lie between 0 and 1")
        counts[kind] = math.floor(share * size + 0.5)
    while sum(counts.values()) > size:
        biggest = max(counts, key=lambda k: counts[k])
        counts[biggest] -= 1
    plan = [kind for kind, n in counts.items() for _ in range(n)]
    plan += ["E1"] * (size - len(plan))
    rng.shuffle(plan)
    return plan


def _other(rng: random.Random, cards: Sequence[ChannelCard], card: ChannelCard, attr: str) -> str:
    mine = str(getattr(card, attr))
    others = [str(getattr(c, attr)) for c in cards if getattr(c, attr) != mine]
    if others:
        return rng.choice(others)
    if attr == "name":
        return mine[:-1] + ("李" if mine[-1] != "李" else "王")
    return mine[:-1] + ("1" if mine[-1] != "1" else "2")


def make_channel_file(
    cards: Sequence[ChannelCard],
    *,
    channel: str = "C01",
    hub: str = "B001",
    business_date: str,
    seq: int = 1,
    now: datetime,
    key_id: int,
    key: bytes,
    mix: dict[str, float] | None = None,
    size: int | None = None,
    seed: int | str = 0,
    encoding: str = "GB18030",
) -> ChannelFile:
    """A CHANNEL file of ``size`` lines (default one per card) from ``channel`` to ``hub``
    on ``cards``, its blocks sealed under zone key ``key_id`` (module docs for the kinds).

    ``now`` (timezone-aware) is the op_time of every line but ``stale`` ones, written in
    Asia/Shanghai; the hub must find the file's ``.ok`` within ``pin_window`` of it.
    The cards given are not changed.
    """
    if not cards:
        raise ValueError("a CHANNEL file needs cards")
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    if not 1 <= seq <= 999:
        raise ValueError("SEQ runs from 001 to 999")
    if not 0 <= key_id <= 255:
        raise ValueError("a zone key id is one byte")
    size = len(cards) if size is None else size
    batch_no = f"{channel}{business_date}{seq:03d}"
    rng = random.Random(f"CHANNEL|{channel}|{hub}|{batch_no}|{seed}")
    queue = _plan(rng, size, DEFAULT_MIX if mix is None else mix)
    states = [_State(c, c.status, c.activated, c.pin_locked) for c in cards]
    op_time = now.astimezone(TZ).strftime("%Y%m%d%H%M%S")
    stale_time = (now - STALE_BY).astimezone(TZ).strftime("%Y%m%d%H%M%S")
    unknown_key_id = (key_id + 128) % 256
    good_nonces: list[bytes] = []

    def candidates(kind: str) -> list[_State]:
        found = [s for s in states if _suits(kind, s)]
        if kind in WEAK_KINDS:
            found = [s for s in found if weak_pin(random.Random(0), kind, s.card) is not None]
        if kind == "replay" and not good_nonces:
            return []
        return found

    requests: list[ChannelRequest] = []
    for position in range(size):
        kind = next((k for k in queue if candidates(k)), None)
        if kind is not None:
            queue.remove(kind)
            s = rng.choice(candidates(kind))
        else:
            queue.pop(0)
            kind = next((k for k in _FALLBACK if candidates(k)), "L1")
            s = rng.choice(candidates(kind) or states)
        card = s.card
        req_no = f"{batch_no}{position + 1:06d}"
        op = _op_of(kind)
        line_time = stale_time if kind == "stale" else op_time
        id_no = _other(rng, cards, card, "id_no") if kind == "wrong_id_no" else card.id_no
        name = _other(rng, cards, card, "name") if kind == "wrong_name" else card.name
        pin: str | None = None
        block = ""
        block_key_id: int | None = None
        if kind in WEAK_KINDS:
            pin = weak_pin(rng, kind, card)
        elif kind in _SEALED_E1 or op in ("A1", "P1"):
            pin = strong_pin(rng, card, s.pins)
        if pin is not None:
            nonce = rng.choice(good_nonces) if kind == "replay" else None
            block_key_id = unknown_key_id if kind == "unknown_key" else key_id
            block = seal(
                pin,
                req_no=req_no,
                op=op,
                pan=card.pan,
                card_no=card.card_no,
                op_time=line_time,
                sender=channel,
                key_id=block_key_id,
                key=os.urandom(32) if kind == "unknown_key" else key,
                nonce=nonce,
            )
            if kind == "tampered":
                raw = bytearray(bytes.fromhex(block))
                raw[1 + NONCE_BYTES] ^= 0x01
                block = raw.hex()
        if kind in ("wrong_name", "wrong_id_no"):
            expect = "01/E132"
        elif kind in BLOCK_FAULTS:
            expect = "01/E130"
        elif kind in WEAK_KINDS:
            expect = "01/E131"
        else:
            expect = _state_outcome(op, s, bool(block))
            if expect == "00" and pin is not None:
                s.pins.append(pin)
                good_nonces.append(bytes.fromhex(block)[1 : 1 + NONCE_BYTES])
        with_identity = op in _IDENTITY_OPS
        row = [
            req_no,
            op,
            card.pan,
            card.card_no,
            id_no if with_identity else "",
            name if with_identity else "",
            block,
            line_time,
            BRANCH,
            TELLER,
        ]
        requests.append(
            ChannelRequest(
                req_no,
                op,
                replace(card),
                pin,
                expect,
                kind=kind,
                pin_block=block,
                op_time=line_time,
                key_id=block_key_id,
                row=row,
            )
        )
    header = Header("CHANNEL", channel, hub, batch_no, business_date, len(requests))
    out = io.BytesIO()
    write_delimited(out, CHANNEL, header, [r.row for r in requests], encoding)
    data = out.getvalue()
    name = str(FileName("CHANNEL", channel, hub, business_date, f"{seq:03d}"))
    control = Control.for_bytes(name, data, len(requests)).render()
    return ChannelFile(name, data, control, requests, header)


def write_channel_file(file: ChannelFile, directory: Path) -> list[Path]:
    """Publish ``file`` into a local pickup folder by ICD §2: ``NAME.part`` → ``NAME``,
    then ``NAME.ok.part`` → ``NAME.ok``."""
    return publish_file(directory, file.name, file.data, file.control)


class ChannelRspError(ValueError):
    """The hub's CHANNELRSP breaks its layout (ICD §5.9); the message names lines and fields."""


def read_channelrsp(data: bytes, encoding: str = "GB18030") -> list[tuple[str, str, str]]:
    """``(req_no, result, reason_code)`` per CHANNELRSP line, in file order, read as a
    parser written from the ICD alone would: framing errors raise
    :class:`schemas.files.FileLevelError`, a line breaking the layout
    :class:`ChannelRspError`."""
    reader = DelimitedReader(data, CHANNELRSP, encoding)
    answers: list[tuple[str, str, str]] = []
    for chunk in reader.chunks():
        broken = [f"line {r.line} {r.field} {r.code}" for r in chunk.rejections()]
        if broken:
            raise ChannelRspError("CHANNELRSP lines break the layout: " + ", ".join(broken[:10]))
        columns = (chunk.strings(name) for name in ("req_no", "result", "reason_code"))
        answers.extend((str(a), str(r), str(c)) for a, r, c in zip(*columns, strict=True))
    return answers
