"""The servicing benchmark's STATUS file: every card used as planned, the plan consistent."""

from __future__ import annotations

import random
from collections import Counter

from bench.servicing import SEALED_EVERY, card_no_of, status_rows


def test_status_mix_plans_an_answer_for_every_line() -> None:
    n, m = 100, 1000
    rows, planned = status_rows(n, m, random.Random(1))
    assert len(rows) == m and sum(planned.values()) == m
    ops = Counter(r[1] for r in rows)
    assert {"01", "02", "03", "11"} <= set(ops)
    unknown = sum(1 for r in rows if r[2].startswith("X"))
    assert planned.get("01:E119", 0) == unknown > 0
    # a 03 only for a card given a 01 earlier; a 11 only for a sealed card; no card twice
    # otherwise
    lost: set[str] = set()
    used: set[str] = set()
    sealed = {card_no_of(i) for i in range(n + 1, n + m + 1) if (i - n) % SEALED_EVERY == 0}
    for _, op, card, *_ in rows:
        if card.startswith("X"):
            continue
        if op == "03":
            assert card in lost
            lost.remove(card)
            continue
        assert card not in used
        used.add(card)
        assert (op == "11") == (card in sealed)
        if op == "01":
            lost.add(card)
