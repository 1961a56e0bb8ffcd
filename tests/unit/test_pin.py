"""The financial PIN (DOMAIN §4, ICD §5.9): PIN blocks, the window, weak PINs, and
verification values."""

from __future__ import annotations

import copy
import logging
import pickle
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import TypedDict
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from banking.keystore import MemoryKeyStore
from banking.pin import (
    OpenedBlock,
    Pin,
    PinContext,
    PinRefused,
    Why,
    matches,
    open_pin_block,
    seal_pin_block,
    verification_value,
    weak_reason,
    within_window,
)
from tests.unit.conftest import examples

ZONE_KEY = bytes(range(32))
OTHER_KEY = bytes(range(1, 33))
PVK1 = b"\x11" * 32
PVK2 = b"\x22" * 32
NONCE = bytes(range(12))
CTX = PinContext(
    req_no="R0001",
    op="A1",
    pan="6217000012345678903",
    card_no="A12345678",
    op_time="20261122093000",
    sender="C01",
)
KEYS = MemoryKeyStore({("C01", 1): ZONE_KEY, ("C01", 2): OTHER_KEY}, {"PVK1": PVK1}, "PVK1")
SHANGHAI = ZoneInfo("Asia/Shanghai")
FOUND = datetime(2026, 11, 22, 9, 30, tzinfo=SHANGHAI)
STRONG = "274951"


def refusal(block: str, ctx: PinContext = CTX) -> PinRefused:
    with pytest.raises(PinRefused) as caught:
        open_pin_block(block, ctx, KEYS)
    return caught.value


# --- PIN blocks -------------------------------------------------------------------------


def test_a_sealed_block_opens_to_its_pin_key_id_and_nonce() -> None:
    block = seal_pin_block(STRONG, CTX, 1, ZONE_KEY, NONCE)

    opened = open_pin_block(block, CTX, KEYS)

    assert opened == OpenedBlock(key_id=1, nonce=NONCE, pin=Pin(STRONG))
    assert opened.pin.digits() == STRONG


def test_a_block_is_lower_case_hex_of_35_bytes_starting_with_its_key_id() -> None:
    block = seal_pin_block(STRONG, CTX, 2, OTHER_KEY, NONCE)

    assert len(block) == 70
    assert block == block.lower()
    assert block[:2] == "02"
    assert block[2:26] == NONCE.hex()
    assert open_pin_block(block, CTX, KEYS).key_id == 2


def test_each_block_gets_a_fresh_nonce_unless_one_is_given() -> None:
    first = open_pin_block(seal_pin_block(STRONG, CTX, 1, ZONE_KEY), CTX, KEYS)
    second = open_pin_block(seal_pin_block(STRONG, CTX, 1, ZONE_KEY), CTX, KEYS)

    assert first.nonce != second.nonce
    assert len(first.nonce) == 12


@given(digits=st.text(alphabet="0123456789", min_size=6, max_size=6), key_id=st.integers(0, 255))
@settings(max_examples=examples(50))
def test_any_six_digits_under_any_key_id_round_trip(digits: str, key_id: int) -> None:
    keys = MemoryKeyStore({("C01", key_id): ZONE_KEY}, {})
    opened = open_pin_block(seal_pin_block(digits, CTX, key_id, ZONE_KEY), CTX, keys)

    assert (opened.key_id, opened.pin.digits()) == (key_id, digits)


@pytest.mark.parametrize(
    "mangle",
    [
        pytest.param(lambda b: "zz" + b[2:], id="not-hex"),
        pytest.param(lambda b: b[:-1] + "g", id="not-hex-at-the-end"),
        pytest.param(lambda b: b.upper(), id="upper-case-hex"),
        pytest.param(lambda b: b[:-2], id="short"),
        pytest.param(lambda b: b + "00", id="long"),
        pytest.param(lambda b: b[:-1], id="odd-length"),
        pytest.param(lambda b: "", id="empty"),
        pytest.param(lambda b: " " + b, id="leading-space"),
    ],
)
def test_a_block_that_is_not_35_bytes_of_lower_case_hex_is_malformed(
    mangle: Callable[[str], str],
) -> None:
    block = seal_pin_block(STRONG, CTX, 1, ZONE_KEY, NONCE)
    assert open_pin_block(block, CTX, KEYS).pin == Pin(STRONG)

    refused = refusal(mangle(block))

    assert (refused.code, refused.why) == ("E130", "malformed")


def test_upper_case_hex_is_malformed_even_when_it_would_decrypt() -> None:
    block = seal_pin_block(STRONG, CTX, 1, ZONE_KEY, bytes.fromhex("ab" * 12))
    assert any(c in "abcdef" for c in block)

    assert refusal(block.upper()).why == Why.MALFORMED


@pytest.mark.parametrize("plain", ["12345a", "abcdef", "12 456", "12345\n", "-12345"])
def test_a_plaintext_of_six_bytes_other_than_digits_decrypts_but_is_malformed(plain: str) -> None:
    refused = refusal(seal_pin_block(plain, CTX, 1, ZONE_KEY, NONCE))

    assert (refused.code, refused.why) == ("E130", "malformed")


@pytest.mark.parametrize("digits", ["12345", "1234567"])
def test_a_pin_of_five_or_seven_digits_is_malformed(digits: str) -> None:
    refused = refusal(seal_pin_block(digits, CTX, 1, ZONE_KEY, NONCE))

    assert (refused.code, refused.why) == ("E130", "malformed")


def test_a_block_under_a_key_id_the_channel_does_not_have_is_an_unknown_key() -> None:
    refused = refusal(seal_pin_block(STRONG, CTX, 7, ZONE_KEY, NONCE))

    assert (refused.code, refused.why) == ("E130", "unknown key")


def test_a_block_from_a_channel_without_keys_is_an_unknown_key() -> None:
    other = PinContext(**{**CTX.__dict__, "sender": "C02"})

    refused = refusal(seal_pin_block(STRONG, other, 1, ZONE_KEY, NONCE), other)

    assert (refused.code, refused.why) == ("E130", "unknown key")


def test_a_block_sealed_under_another_key_does_not_decrypt() -> None:
    refused = refusal(seal_pin_block(STRONG, CTX, 1, OTHER_KEY, NONCE))

    assert (refused.code, refused.why) == ("E130", "does not decrypt")


@pytest.mark.parametrize("offset", [2, 26, 30, 69], ids=["nonce", "ciphertext", "tag", "last"])
def test_a_tampered_block_does_not_decrypt(offset: int) -> None:
    block = seal_pin_block(STRONG, CTX, 1, ZONE_KEY, NONCE)
    flipped = "1" if block[offset] == "0" else "0"
    tampered = block[:offset] + flipped + block[offset + 1 :]

    refused = refusal(tampered)

    assert (refused.code, refused.why) == ("E130", "does not decrypt")


@pytest.mark.parametrize(
    "field, value",
    [
        ("req_no", "R0002"),
        ("op", "P1"),
        ("pan", "6217000012345678911"),
        ("card_no", "A12345679"),
        ("op_time", "20261122093001"),
        ("sender", "C02"),
    ],
)
def test_a_block_moved_to_another_line_does_not_decrypt(field: str, value: str) -> None:
    block = seal_pin_block(STRONG, CTX, 1, ZONE_KEY, NONCE)
    moved = PinContext(**{**CTX.__dict__, field: value})
    keys = MemoryKeyStore({("C01", 1): ZONE_KEY, ("C02", 1): ZONE_KEY}, {})

    with pytest.raises(PinRefused) as caught:
        open_pin_block(block, moved, keys)

    assert (caught.value.code, caught.value.why) == ("E130", "does not decrypt")


def test_the_associated_data_is_the_icd_string() -> None:
    assert CTX.associated_data() == b"R0001|A1|6217000012345678903|A12345678|20261122093000|C01"


def test_a_line_with_a_non_ascii_field_is_malformed() -> None:
    block = seal_pin_block(STRONG, CTX, 1, ZONE_KEY, NONCE)
    odd = PinContext(**{**CTX.__dict__, "req_no": "R０001"})

    assert refusal(block, odd).why == Why.MALFORMED


# --- the window -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "op_time, inside",
    [
        ("20261122093000", True),
        ("20261122092000", True),
        ("20261122091959", False),
        ("20261122094000", True),
        ("20261122094001", False),
        ("20261121093000", False),
    ],
    ids=["same", "10-min-before", "10-min-1-s-before", "10-min-after", "10-min-1-s-after", "day"],
)
def test_op_time_is_within_ten_minutes_of_finding_the_file_edges_included(
    op_time: str, inside: bool
) -> None:
    assert within_window(op_time, FOUND) is inside


def test_op_time_is_read_in_shanghai_whatever_the_zone_of_found_at() -> None:
    found_utc = datetime(2026, 11, 22, 1, 40, tzinfo=UTC)

    assert within_window("20261122093000", found_utc)
    assert not within_window("20261122013000", found_utc)


def test_the_window_is_configurable() -> None:
    assert not within_window("20261122092000", FOUND, window=timedelta(minutes=5))
    assert within_window("20261122091000", FOUND, window=timedelta(minutes=20))


@pytest.mark.parametrize(
    "op_time",
    [
        "",
        "garbage",
        "2026112209300",
        "202611220930000",
        "20261322093000",
        "20261122256000",
        "2026112209300a",
        "２０２６１１２２０９３０００",
    ],
)
def test_an_op_time_that_is_not_a_time_is_outside(op_time: str) -> None:
    assert within_window(op_time, FOUND) is False


def test_found_at_must_carry_its_time_zone() -> None:
    with pytest.raises(ValueError):
        within_window("20261122093000", datetime(2026, 11, 22, 9, 30))


# --- weak PINs --------------------------------------------------------------------------


class Holder(TypedDict):
    id_no: str
    card_no: str
    birth_date: str


HOLDER = Holder(id_no="44010619900307123X", card_no="A52816734", birth_date="19900307")


@pytest.mark.parametrize(
    "digits, why",
    [
        ("000000", "weak: all digits equal"),
        ("777777", "weak: all digits equal"),
        ("012345", "weak: ascending run"),
        ("123456", "weak: ascending run"),
        ("234567", "weak: ascending run"),
        ("456789", "weak: ascending run"),
        ("654321", "weak: descending run"),
        ("987654", "weak: descending run"),
        ("543210", "weak: descending run"),
        ("816734", "weak: last six of card_no"),
        ("900307", "weak: birth date"),
        ("030790", "weak: birth date"),
    ],
)
def test_a_weak_pin_is_refused_with_its_rule(digits: str, why: str) -> None:
    assert weak_reason(Pin(digits), **HOLDER) == why


def test_the_last_six_characters_of_the_id_number_are_weak() -> None:
    holder = Holder(**{**HOLDER, "id_no": "440106199003071234"})

    assert weak_reason(Pin("071234"), **holder) == Why.ID_NO
    assert weak_reason(Pin("071234"), **HOLDER) is None


def test_an_id_number_ending_in_x_forbids_no_pin_by_its_last_six() -> None:
    assert weak_reason(Pin("307123"), **HOLDER) is None


@pytest.mark.parametrize("digits", ["890123", "901234", "109876", "210987"])
def test_runs_do_not_wrap_around_from_nine_to_zero(digits: str) -> None:
    assert weak_reason(Pin(digits), **HOLDER) is None


@pytest.mark.parametrize("digits", [STRONG, "135790", "112233", "123455", "199003"])
def test_a_strong_pin_passes(digits: str) -> None:
    assert weak_reason(Pin(digits), **HOLDER) is None


def test_the_previous_pin_is_weak_when_the_stored_value_matches() -> None:
    pan = CTX.pan
    stored = verification_value(pan, Pin(STRONG), PVK1)

    def previous(pin: Pin) -> bool:
        return matches(pan, pin, stored, PVK1)

    assert weak_reason(Pin(STRONG), **HOLDER, previous=previous) == Why.PREVIOUS
    assert weak_reason(Pin("135790"), **HOLDER, previous=previous) is None


def test_the_previous_pin_is_asked_only_once_the_other_rules_pass() -> None:
    asked: list[Pin] = []

    def previous(pin: Pin) -> bool:
        asked.append(pin)
        return True

    assert weak_reason(Pin("111111"), **HOLDER, previous=previous) == Why.ALL_EQUAL
    assert asked == []


def test_a_missing_birth_date_forbids_nothing_by_it() -> None:
    assert weak_reason(Pin("900307"), **Holder(**{**HOLDER, "birth_date": ""})) is None


@given(digit=st.sampled_from("0123456789"))
def test_any_pin_of_six_equal_digits_is_weak(digit: str) -> None:
    assert weak_reason(Pin(digit * 6), id_no="", card_no="", birth_date="") == Why.ALL_EQUAL


@given(digits=st.text(alphabet="0123456789", min_size=6, max_size=6))
@settings(max_examples=examples(200))
def test_a_pin_with_two_different_digits_is_never_weak_for_being_all_equal(digits: str) -> None:
    reason = weak_reason(Pin(digits), id_no="", card_no="", birth_date="")

    assert (reason == Why.ALL_EQUAL) == (len(set(digits)) == 1)


# --- verification values ----------------------------------------------------------------


def test_a_verification_value_is_deterministic_hex_of_the_pan_and_the_pin() -> None:
    value = verification_value(CTX.pan, Pin(STRONG), PVK1)

    assert value == verification_value(CTX.pan, Pin(STRONG), PVK1)
    assert len(value) == 64
    assert int(value, 16) >= 0
    assert STRONG not in value


def test_a_verification_value_differs_per_pin_per_pan_and_per_key() -> None:
    value = verification_value(CTX.pan, Pin(STRONG), PVK1)

    assert value != verification_value(CTX.pan, Pin("135790"), PVK1)
    assert value != verification_value("6217000012345678911", Pin(STRONG), PVK1)
    assert value != verification_value(CTX.pan, Pin(STRONG), PVK2)


def test_matches_only_the_same_pin_pan_and_key() -> None:
    stored = verification_value(CTX.pan, Pin(STRONG), PVK1)

    assert matches(CTX.pan, Pin(STRONG), stored, PVK1)
    assert not matches(CTX.pan, Pin("135790"), stored, PVK1)
    assert not matches("6217000012345678911", Pin(STRONG), stored, PVK1)
    assert not matches(CTX.pan, Pin(STRONG), stored, PVK2)
    assert not matches(CTX.pan, Pin(STRONG), "", PVK1)


def test_a_value_made_under_an_older_pvk_still_verifies_after_rotation() -> None:
    before = MemoryKeyStore({}, {"PVK1": PVK1}, "PVK1")
    key_id, key = before.verification_key()
    stored = (key_id, verification_value(CTX.pan, Pin(STRONG), key))

    after = MemoryKeyStore({}, {"PVK1": PVK1, "PVK2": PVK2}, "PVK2")
    old_key = after.verification_key_by_id(stored[0])

    assert after.verification_key()[0] == "PVK2"
    assert old_key is not None
    assert matches(CTX.pan, Pin(STRONG), stored[1], old_key)
    assert not matches(CTX.pan, Pin(STRONG), stored[1], after.verification_key()[1])


# --- nothing reveals the PIN ------------------------------------------------------------

SECRET = "274958"  # none of the digits of E130 or E131


def test_a_pin_prints_masked_however_it_is_formatted() -> None:
    pin = Pin(SECRET)
    shown = [str(pin), repr(pin), f"{pin}", f"{pin!r}", f"{pin:>20}", format(pin, "^30")]
    shown += ["%s" % pin, "%r" % (pin,)]  # noqa: UP031 -- the formatting logging does

    for text in shown:
        assert text.strip() == "Pin(******)"
    assert SECRET not in repr(OpenedBlock(1, NONCE, pin))
    assert "Pin(******)" in repr(OpenedBlock(1, NONCE, pin))


def test_a_pin_in_a_log_record_is_masked(caplog: pytest.LogCaptureFixture) -> None:
    log = logging.getLogger("sscard.test.pin")
    with caplog.at_level(logging.INFO, logger="sscard.test.pin"):
        log.info("opened %s for %r", Pin(SECRET), Pin(SECRET))

    (record,) = caplog.records
    message = logging.Formatter("%(message)s").format(record)
    assert message == "opened Pin(******) for Pin(******)"


def test_a_pin_is_never_pickled_or_copied_and_has_no_dict() -> None:
    pin = Pin(SECRET)

    with pytest.raises(TypeError):
        pickle.dumps(pin)
    with pytest.raises(TypeError):
        copy.deepcopy(pin)
    with pytest.raises(TypeError):
        copy.copy(pin)
    assert not hasattr(pin, "__dict__")


def test_pins_compare_by_their_digits() -> None:
    assert Pin(SECRET) == Pin(SECRET)
    assert Pin(SECRET) != Pin("135790")
    assert Pin(SECRET) != SECRET


@pytest.mark.parametrize("digits", ["12345", "1234567", "12345a", "١٢٣٤٥٦", ""])
def test_a_pin_is_six_ascii_digits(digits: str) -> None:
    with pytest.raises(ValueError, match=r"^a PIN is six ASCII digits$"):
        Pin(digits)


def test_a_refusal_shows_its_code_and_phrase_and_no_digits() -> None:
    with pytest.raises(PinRefused) as caught:
        open_pin_block(seal_pin_block(SECRET, CTX, 1, OTHER_KEY, NONCE), CTX, KEYS)
    weak = PinRefused("E131", weak_reason(Pin("888888"), **HOLDER) or "")

    for exc, digits in ((caught.value, SECRET), (weak, "8")):
        for text in (str(exc), repr(exc), f"{exc}", repr(exc.args)):
            assert not any(d in text for d in digits), text
    assert str(caught.value) == "E130: does not decrypt"
    assert str(weak) == "E131: weak: all digits equal"


def test_a_refusal_takes_only_its_codes_and_fixed_phrases() -> None:
    with pytest.raises(ValueError):
        PinRefused("E132", "malformed")
    with pytest.raises(ValueError):
        PinRefused("E130", "PIN 274958 does not decrypt")


def test_a_refusal_survives_pickling_with_its_code_and_phrase() -> None:
    exc = pickle.loads(pickle.dumps(PinRefused("E130", "replayed")))

    assert (exc.code, exc.why) == ("E130", "replayed")
