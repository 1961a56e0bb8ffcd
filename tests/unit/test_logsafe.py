"""Text the hub did not write reaches a log line with its PANs and ID numbers masked."""

from __future__ import annotations

import pytest

from exchange.logsafe import masked_numbers


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
