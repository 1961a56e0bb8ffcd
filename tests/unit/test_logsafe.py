"""Text the hub did not write reaches a log line with its PANs and ID numbers masked."""

from __future__ import annotations

import traceback

import pytest

from exchange.logsafe import MaskedError, masked_error, masked_numbers


@pytest.mark.parametrize(
    ("text", "logged"),
    [
        ("KeyError: '6217881000000000018'", "KeyError: '621788****0018'"),
        ("pan 6217 8810 0000 0000 018 refused", "pan 621788****0018 refused"),
        ("id 44010319900101123X, 440103199001011234", "id 440103**********3X, 440103**********34"),
        ("at 20261206100000", "at 202****000"),
    ],
)
def test_pans_and_id_numbers_are_masked_whole_or_in_groups(text: str, logged: str) -> None:
    assert masked_numbers(text) == logged


def test_shorter_numbers_and_dates_are_left_as_they_are() -> None:
    text = "card C00000001 line 12345678901 on 2026-12-06 10:00:00"
    assert masked_numbers(text) == text


PAN, ID_NO = "6217881000000000018", "44010319900101123X"


def _raised(exc: BaseException) -> BaseException:
    try:
        raise exc
    except BaseException as caught:
        return caught


def test_an_error_quoting_a_pan_in_its_chain_is_raised_again_with_every_link_masked() -> None:
    try:
        try:
            raise LookupError(f"no card for id {ID_NO}")
        except LookupError as inner:
            raise ValueError(f"Key (pan)=({PAN}) already exists") from inner
    except ValueError as caught:
        outer = caught

    masked = masked_error(outer)

    assert isinstance(masked, MaskedError)
    shown = "".join(traceback.format_exception(masked))
    assert PAN not in shown and ID_NO not in shown
    assert str(masked) == (
        "ValueError: Key (pan)=(621788****0018) already exists\n"
        "  raised from LookupError: no card for id 440103**********3X"
    )
    assert 'raise ValueError(f"Key (pan)' in shown  # the original's frames are kept


def test_an_error_quoting_neither_is_left_as_it_was() -> None:
    inner = _raised(LookupError("no card C00000001"))
    outer = _raised(ValueError("batch 20261122001 refused"))
    outer.__context__ = inner

    assert masked_error(outer) is None
