"""Every status op, allowed and refused, against tables written out here by hand from
DOMAIN §2, §3, §5 and ICD §5.7–§5.9 (never from the code's own tables)."""

from __future__ import annotations

import pytest

from schemas.states import (
    ACCOUNT_OP_OF_CHANNEL,
    APPLICATION_STEPS,
    CARD_OP_OF_CHANNEL,
    LOSS_OF_CARD,
    REPLACEABLE,
    AccountOp,
    AccountStatus,
    ApplicationStatus,
    CardOp,
    CardStatus,
    ChannelOp,
    FailStage,
    Loss,
    Outcome,
    Result,
    account_transition,
    card_transition,
)

STATUSES = ("0", "1", "2", "3", "4", "9")
OPS = ("01", "02", "03", "04", "11")

#: DOMAIN §2: card status (row) × op (column) → the new status, "02" (already in the
#: op's target status) or the refusal code. No replacement applied for.
CARD = {
    #     01      02      03      04      11
    "0": ("E120", "E120", "E120", "9", "1"),
    "1": ("4", "2", "02", "9", "02"),
    "2": ("E120", "02", "1", "9", "E120"),
    "3": ("E120", "E120", "E120", "E120", "E120"),
    "4": ("02", "2", "1", "9", "E120"),
    "9": ("E120", "E120", "E120", "02", "E120"),
}

#: the same once a replacement of the card has been applied for: only an unblock that
#: would move the card changes, to E121
CARD_WHILE_REPLACED = {
    #     01      02      03      04      11
    "0": ("E120", "E120", "E120", "9", "1"),
    "1": ("4", "2", "02", "9", "02"),
    "2": ("E120", "02", "E121", "9", "E120"),
    "3": ("E120", "E120", "E120", "E120", "E120"),
    "4": ("02", "2", "E121", "9", "E120"),
    "9": ("E120", "E120", "E120", "02", "E120"),
}


def _token(outcome: Outcome[CardStatus] | Outcome[AccountStatus], current: str) -> str:
    """The outcome as the tables above write it, after checking it is consistent."""
    if outcome.result is Result.DONE:
        assert outcome.reason is None
        return str(outcome.status)
    assert outcome.status == current, "an op not done leaves the status as it was"
    if outcome.result is Result.ALREADY:
        assert outcome.reason is None
        return "02"
    assert outcome.result is Result.REFUSED
    assert outcome.reason is not None
    return str(outcome.reason)


def test_the_card_statuses_and_ops_are_those_of_domain_2_and_icd_5_7() -> None:
    assert [s.value for s in CardStatus] == list(STATUSES)
    assert [o.value for o in CardOp] == list(OPS)
    assert [r.value for r in Result] == ["00", "01", "02"]


@pytest.mark.parametrize("replacing", [False, True], ids=["no replacement", "replacement applied"])
@pytest.mark.parametrize("op", OPS)
@pytest.mark.parametrize("status", STATUSES)
def test_every_card_op_in_every_status_answers_as_domain_2_says(
    status: str, op: str, replacing: bool
) -> None:
    table = CARD_WHILE_REPLACED if replacing else CARD
    expected = table[status][OPS.index(op)]
    outcome = card_transition(CardStatus(status), CardOp(op), replacement_applied=replacing)
    assert _token(outcome, status) == expected


def test_channel_ops_are_the_card_ops_they_report_in_bankevt() -> None:
    assert {c.value: o.value for c, o in CARD_OP_OF_CHANNEL.items()} == {
        "E1": "11",
        "L1": "01",
        "L2": "02",
        "L3": "03",
    }
    assert {c.value: o.value for c, o in ACCOUNT_OP_OF_CHANNEL.items()} == {
        "A1": "activate",
        "P1": "reset_pin",
    }
    assert [c.value for c in ChannelOp] == ["E1", "A1", "P1", "P2", "L1", "L2", "L3"]


ACCOUNT_STATUSES = ("preopened", "active", "closed")
ACCOUNT_OPS = ("activate", "reset_pin", "close")

#: DOMAIN §3, ICD §5.9: account status (row) × op (column), the card normal after the op
ACCOUNT = {
    #             activate  reset_pin  close
    "preopened": ("active", "E120", "closed"),
    "active": ("02", "active", "closed"),
    "closed": ("E120", "E120", "02"),
}

#: activation needs the card normal after the op (DOMAIN §3); the other ops ignore the card
ACCOUNT_CARD_NOT_NORMAL = {
    #             activate  reset_pin  close
    "preopened": ("E120", "E120", "closed"),
    "active": ("02", "active", "closed"),
    "closed": ("E120", "E120", "02"),
}


def test_the_account_statuses_and_loss_flags_are_those_of_domain_3() -> None:
    assert [s.value for s in AccountStatus] == list(ACCOUNT_STATUSES)
    assert [o.value for o in AccountOp] == list(ACCOUNT_OPS)
    assert [loss.value for loss in Loss] == ["none", "temporary", "formal"]


@pytest.mark.parametrize("card", ["0", "1", "2", "3", "4", "9"])
@pytest.mark.parametrize("op", ACCOUNT_OPS)
@pytest.mark.parametrize("status", ACCOUNT_STATUSES)
def test_every_account_op_in_every_status_answers_as_domain_3_says(
    status: str, op: str, card: str
) -> None:
    table = ACCOUNT if card == "1" else ACCOUNT_CARD_NOT_NORMAL
    expected = table[status][ACCOUNT_OPS.index(op)]
    outcome = account_transition(AccountStatus(status), AccountOp(op), card_status=CardStatus(card))
    assert _token(outcome, status) == expected


def test_an_activation_not_told_the_card_status_is_refused() -> None:
    outcome = account_transition(AccountStatus.PREOPENED, AccountOp.ACTIVATE)
    assert (outcome.result, outcome.reason) == (Result.REFUSED, "E120")


def test_the_account_loss_flag_follows_its_current_card() -> None:
    assert {c.value: loss.value for c, loss in LOSS_OF_CARD.items()} == {
        "0": "none",
        "1": "none",
        "2": "formal",
        "4": "temporary",
    }


def test_a_replacement_needs_the_old_card_in_the_statuses_of_domain_5() -> None:
    assert {t: sorted(s.value for s in statuses) for t, statuses in REPLACEABLE.items()} == {
        "05": ["2"],
        "06": ["0", "1", "2", "4"],
        "07": ["0", "1", "2", "4"],
    }


def test_an_application_goes_through_its_steps_once_and_ends_made_or_failed() -> None:
    assert {s.value: sorted(n.value for n in after) for s, after in APPLICATION_STEPS.items()} == {
        "accepted": ["account_open", "partner_sent"],
        "partner_sent": ["account_open", "failed"],
        "account_open": ["perso_sent"],
        "perso_sent": ["failed", "made"],
        "made": [],
        "failed": [],
    }
    assert set(APPLICATION_STEPS) == set(ApplicationStatus)
    assert [f.value for f in FailStage] == ["0", "1", "2"]
