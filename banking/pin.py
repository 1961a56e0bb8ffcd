"""The financial PIN (DOMAIN §4, ICD §5.9): opening a channel's ``pin_block``, the time
window, weak PINs, and the verification value the hub keeps instead of the PIN.

A ``pin_block`` is lower-case hex of ``key_id (1) ‖ nonce (12) ‖ ciphertext (6) ‖ tag (16)``:
AES-256-GCM under the channel's zone key ``key_id``, plaintext the six ASCII digits,
associated data ``req_no|op|pan|card_no|op_time|SENDER`` (:meth:`PinContext.associated_data`),
so a block moved to another request, card, time or channel does not decrypt. Upper-case
hex is refused as malformed: the ICD says lower-case, and one spelling per block keeps
the replay check (on key id and nonce) exact.

The PIN lives only in a :class:`Pin`, in memory, for as long as the caller holds it: it is
never cached here, never logged, never pickled, and prints as ``Pin(******)``. Refusals
(:class:`PinRefused`) carry a code and a fixed phrase (:class:`Why`), never a value.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import NoReturn
from zoneinfo import ZoneInfo

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from banking.keystore import KeyStore
from schemas.codes import LineCode

PIN_LENGTH = 6
NONCE_BYTES = 12
TAG_BYTES = 16
BLOCK_BYTES = 1 + NONCE_BYTES + PIN_LENGTH + TAG_BYTES
PIN_WINDOW = timedelta(minutes=10)

_BLOCK_HEX = re.compile(rf"[0-9a-f]{{{2 * BLOCK_BYTES}}}")
_MASK = "Pin(******)"


class Why(StrEnum):
    """Why a PIN block (E130) or a PIN (E131) was refused: fixed phrases, safe to log and
    to write as ``reason_text``."""

    MALFORMED = "malformed"
    UNKNOWN_KEY = "unknown key"
    DOES_NOT_DECRYPT = "does not decrypt"
    OUTSIDE_WINDOW = "outside pin_window"
    REPLAYED = "replayed"
    ALL_EQUAL = "weak: all digits equal"
    ASCENDING = "weak: ascending run"
    DESCENDING = "weak: descending run"
    ID_NO = "weak: last six of id_no"
    CARD_NO = "weak: last six of card_no"
    BIRTH_DATE = "weak: birth date"
    PREVIOUS = "weak: previous PIN"


class PinRefused(Exception):
    """A line's ``pin_block`` refused: ``code`` is E130 (the block) or E131 (a weak PIN),
    ``why`` one of :class:`Why`. Nothing else is carried, so nothing secret can leak."""

    def __init__(self, code: str, why: str) -> None:
        self.code = LineCode(code)
        if self.code not in (LineCode.E130, LineCode.E131):
            raise ValueError("a PIN is refused with E130 or E131")
        self.why = Why(why)
        super().__init__(f"{self.code}: {self.why}")

    def __reduce__(self) -> tuple[type[PinRefused], tuple[str, str]]:
        return (type(self), (str(self.code), str(self.why)))


class Pin:
    """Six PIN digits that do not print: ``str``, ``repr`` and any format give
    ``Pin(******)``; equality is constant-time; pickling and copying are refused. Only
    :meth:`digits` gives them out, for derivation and the weak-PIN rules."""

    __slots__ = ("__digits",)
    __hash__ = None  # type: ignore[assignment]

    def __init__(self, digits: str) -> None:
        if len(digits) != PIN_LENGTH or not digits.isascii() or not digits.isdigit():
            raise ValueError("a PIN is six ASCII digits")
        self.__digits = digits

    def digits(self) -> str:
        return self.__digits

    def __repr__(self) -> str:
        return _MASK

    def __str__(self) -> str:
        return _MASK

    def __format__(self, format_spec: str) -> str:
        return _MASK

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Pin):
            return NotImplemented
        return hmac.compare_digest(self.__digits.encode(), other.__digits.encode())

    def __reduce__(self) -> NoReturn:
        raise TypeError("a PIN is never pickled or copied")

    def __reduce_ex__(self, protocol: object) -> NoReturn:
        raise TypeError("a PIN is never pickled or copied")


@dataclass(frozen=True)
class PinContext:
    """The CHANNEL line and file a block belongs to (ICD §5.9); ``sender`` is the file's
    SENDER party code, e.g. ``C01``."""

    req_no: str
    op: str
    pan: str
    card_no: str
    op_time: str
    sender: str

    def associated_data(self) -> bytes:
        """The block's associated data, ASCII ``req_no|op|pan|card_no|op_time|SENDER``
        (UnicodeEncodeError for a non-ASCII field)."""
        fields = (self.req_no, self.op, self.pan, self.card_no, self.op_time, self.sender)
        return "|".join(fields).encode("ascii")


@dataclass(frozen=True)
class OpenedBlock:
    """A block that decrypted: its zone ``key_id`` and ``nonce`` (for the replay check)
    and the PIN."""

    key_id: int
    nonce: bytes
    pin: Pin


def open_pin_block(block_hex: str, ctx: PinContext, keys: KeyStore) -> OpenedBlock:
    """Decrypt ``block_hex`` under ``ctx.sender``'s zone key, or raise :class:`PinRefused`
    E130: ``malformed`` (not lower-case hex of 35 bytes, a non-ASCII field, or a plaintext
    other than six ASCII digits), ``unknown key`` (no zone key of that id for the sender),
    ``does not decrypt`` (wrong key, tampered block, or another line's associated data).
    The window and the replay check are the caller's (:func:`within_window`, the nonce
    registry). A misconfigured key store raises its own ``KeyStoreError``."""
    if not _BLOCK_HEX.fullmatch(block_hex):
        raise PinRefused(LineCode.E130, Why.MALFORMED)
    try:
        associated = ctx.associated_data()
    except UnicodeEncodeError:
        raise PinRefused(LineCode.E130, Why.MALFORMED) from None
    raw = bytes.fromhex(block_hex)
    key_id, nonce, sealed = raw[0], raw[1 : 1 + NONCE_BYTES], raw[1 + NONCE_BYTES :]
    key = keys.zone_key(ctx.sender, key_id)
    if key is None:
        raise PinRefused(LineCode.E130, Why.UNKNOWN_KEY)
    try:
        plain = AESGCM(key).decrypt(nonce, sealed, associated)
    except InvalidTag:
        raise PinRefused(LineCode.E130, Why.DOES_NOT_DECRYPT) from None
    if not (plain.isascii() and plain.isdigit()):
        raise PinRefused(LineCode.E130, Why.MALFORMED)
    return OpenedBlock(key_id, nonce, Pin(plain.decode("ascii")))


def seal_pin_block(
    pin_digits: str, ctx: PinContext, key_id: int, key: bytes, nonce: bytes | None = None
) -> str:
    """What a channel does (for the sandbox and tests): seal ``pin_digits`` for ``ctx``
    under zone key ``key_id``, with a fresh random nonce unless one is given. The digits
    are not checked, so a test can seal a malformed plaintext."""
    if not 0 <= key_id <= 255:
        raise ValueError("a zone key id is one byte (0-255)")
    nonce = os.urandom(NONCE_BYTES) if nonce is None else nonce
    if len(nonce) != NONCE_BYTES:
        raise ValueError("a PIN block's nonce is 12 bytes")
    sealed = AESGCM(key).encrypt(nonce, pin_digits.encode("ascii"), ctx.associated_data())
    return (bytes([key_id]) + nonce + sealed).hex()


def within_window(
    op_time: str,
    found_at: datetime,
    window: timedelta = PIN_WINDOW,
    tz: str = "Asia/Shanghai",
) -> bool:
    """Whether ``op_time`` (``YYYYMMDDHHMMSS`` in ``tz``) is at most ``window`` before or
    after ``found_at`` (when the hub found the file's ``.ok``; timezone-aware), edges
    included (ICD §5.9 ``pin_window``). An op_time that is not such a time is outside."""
    if found_at.tzinfo is None:
        raise ValueError("found_at must be timezone-aware")
    if len(op_time) != 14 or not op_time.isascii() or not op_time.isdigit():
        return False
    try:
        at = datetime.strptime(op_time, "%Y%m%d%H%M%S").replace(tzinfo=ZoneInfo(tz))
    except ValueError:
        return False
    return abs(found_at - at) <= window


_DIGITS = "0123456789"


def weak_reason(
    pin: Pin,
    *,
    id_no: str,
    card_no: str,
    birth_date: str,
    previous: Callable[[Pin], bool] | None = None,
) -> Why | None:
    """Why ``pin`` is weak (DOMAIN §4, refused E131), or None. Rules in order: all digits
    equal; an ascending or descending run of six within ``0123456789`` (``123456``,
    ``543210``; runs do not wrap, so ``890123`` is not one); the last six characters of
    ``id_no`` or of ``card_no``; ``birth_date`` (``YYYYMMDD``) as ``YYMMDD`` or ``MMDDYY``;
    the previous PIN, asked of ``previous`` (which checks the stored verification value)
    last, as it is the only rule that may need the database."""
    digits = pin.digits()

    def same(text: str) -> bool:
        return len(text) == PIN_LENGTH and hmac.compare_digest(digits.encode(), text.encode())

    if digits == digits[0] * PIN_LENGTH:
        return Why.ALL_EQUAL
    if digits in _DIGITS:
        return Why.ASCENDING
    if digits in _DIGITS[::-1]:
        return Why.DESCENDING
    if same(id_no[-PIN_LENGTH:]):
        return Why.ID_NO
    if same(card_no[-PIN_LENGTH:]):
        return Why.CARD_NO
    if len(birth_date) == 8 and (same(birth_date[2:]) or same(birth_date[4:] + birth_date[2:4])):
        return Why.BIRTH_DATE
    if previous is not None and previous(pin):
        return Why.PREVIOUS
    return None


def verification_value(pan: str, pin: Pin, key: bytes) -> str:
    """The PIN verification value the hub keeps (DOMAIN §4): HMAC-SHA-256 of
    ``pan|digits`` under the PVK, lower-case hex (64 characters)."""
    message = f"{pan}|{pin.digits()}".encode("ascii")
    return hmac.new(key, message, hashlib.sha256).hexdigest()


def matches(pan: str, pin: Pin, stored_value: str, key: bytes) -> bool:
    """Whether ``pin`` is the PIN whose value under ``key`` was stored (constant-time)."""
    return hmac.compare_digest(
        verification_value(pan, pin, key).encode("ascii"), stored_value.encode("utf-8")
    )
