"""Names and batch numbers of the files the hub originates (ICD §3, §4.1)."""

from __future__ import annotations

import itertools
import re

from schemas.files import hub_batch_no


def test_the_hubs_batch_numbers_are_unique_per_sender_across_types_receivers_and_days() -> None:
    types = ("ACCTOPEN", "BANKEVT", "CARDRSP", "DISB", "PERSO", "RECON", "STATUS")
    receivers = ("R440100", "R4401", "B002", "B003", "F01", "P01")
    numbers = [
        hub_batch_no(*key)
        for key in itertools.product(types, receivers, ("20261122", "20261123"), (1, "002", 999))
    ]

    assert len(set(numbers)) == len(numbers)
    assert all(re.fullmatch(r"[0-9A-Za-z]{1,20}", n) for n in numbers)
    assert hub_batch_no("CARDRSP", "R440100", "20261122", 1) == "CR44010020261122001"
