"""Statuses and their transitions, declared once (DOMAIN §2, §3, §5; ICD §5.7–§5.9).

Every status the hub stores is a ``StrEnum`` whose values are what the database holds
(the models' CHECK constraints are built from them). The transitions are tables, one row
per op as in DOMAIN §2, and :func:`card_transition` / :func:`account_transition` read
them to answer an op: done with the new status, ``02`` already in that state, or refused
with its reason code (:class:`schemas.codes.LineCode`). Services and their SQL take
every status from here and spell none themselves.

A card_no or pan the hub does not know is E119 before anything else (ICD §5.7): with no
status to look up, it is the caller's first check, before the field rules (E132, E130,
E131); the tables answer the state rules that come after them (E120, E121, ``02``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from types import MappingProxyType
from typing import Generic, TypeVar

from schemas.codes import LineCode


class CardStatus(StrEnum):
    """A card's status, AAZ502, per card_no (DOMAIN §2)."""

    #: 封存: made, not yet collected and enabled
    SEALED = "0"
    #: 正常
    NORMAL = "1"
    #: 正式挂失: does not lapse
    FORMAL_LOSS = "2"
    #: 应用锁定: set and cleared inside the bureau's systems; no file carries it (ICD 1.0)
    LOCKED = "3"
    #: 临时挂失: lapses back to normal (DOMAIN §2)
    TEMPORARY_LOSS = "4"
    #: 注销, final
    CANCELLED = "9"


class CardOp(StrEnum):
    """An op on a card's status: the bureau's STATUS ``op`` (ICD §5.7), also the BANKEVT
    ``op`` reporting it (ICD §5.8)."""

    TEMPORARY_LOSS = "01"
    FORMAL_LOSS = "02"
    UNBLOCK = "03"
    CANCEL = "04"
    ENABLE = "11"


class ChannelOp(StrEnum):
    """A bank channel's request, CHANNEL ``op`` (ICD §5.9)."""

    #: collect and enable at the bank; with a PIN block it also activates the account
    E1 = "E1"
    #: financial activation (sets the PIN)
    A1 = "A1"
    #: PIN reset
    P1 = "P1"
    #: PIN unlock (a flag, ``pin_locked``: no status changes)
    P2 = "P2"
    #: temporary loss at the bank
    L1 = "L1"
    #: formal loss
    L2 = "L2"
    #: unblock
    L3 = "L3"


#: the card op a channel op is (DOMAIN §2 "op" column); BANKEVT reports it under that code
#: (ICD §5.8). A1, P1 and P2 do not touch the card's status.
CARD_OP_OF_CHANNEL: Mapping[ChannelOp, CardOp] = MappingProxyType(
    {
        ChannelOp.E1: CardOp.ENABLE,
        ChannelOp.L1: CardOp.TEMPORARY_LOSS,
        ChannelOp.L2: CardOp.FORMAL_LOSS,
        ChannelOp.L3: CardOp.UNBLOCK,
    }
)


class Result(StrEnum):
    """The answer to an op, STATUSRSP and CHANNELRSP ``result`` (ICD §5.7)."""

    DONE = "00"
    REFUSED = "01"
    #: the card or account was already in the requested state; nothing is done
    ALREADY = "02"


StatusT = TypeVar("StatusT", bound=StrEnum)


@dataclass(frozen=True)
class Outcome(Generic[StatusT]):
    """What an op does: its result, the status after it (the current one unless done) and,
    when refused, the reason code."""

    result: Result
    status: StatusT
    reason: LineCode | None = None


@dataclass(frozen=True)
class CardRule:
    """One row of DOMAIN §2's transition table: ``op`` moves a card from any of
    ``sources`` to ``target``; ``refused_when_replacing`` is the code it is refused with
    once a replacement of the card has been applied for."""

    sources: frozenset[CardStatus]
    target: CardStatus
    refused_when_replacing: LineCode | None = None


#: DOMAIN §2, one row per op. An op finding the card in the row's target status is ``02``
#: (already); any other status not among the row's sources is E120.
CARD_RULES: Mapping[CardOp, CardRule] = MappingProxyType(
    {
        # 0 → 1, 11 / E1 (bureau, bank counter)
        CardOp.ENABLE: CardRule(frozenset({CardStatus.SEALED}), CardStatus.NORMAL),
        # 1 → 4, 01 / L1 (bureau, bank channel); lapses back to 1 (temp_loss_days)
        CardOp.TEMPORARY_LOSS: CardRule(frozenset({CardStatus.NORMAL}), CardStatus.TEMPORARY_LOSS),
        # 1, 4 → 2, 02 / L2 (in person at bureau or bank)
        CardOp.FORMAL_LOSS: CardRule(
            frozenset({CardStatus.NORMAL, CardStatus.TEMPORARY_LOSS}), CardStatus.FORMAL_LOSS
        ),
        # 4, 2 → 1, 03 / L3 (bureau or bank): E121 once a replacement has been applied for
        CardOp.UNBLOCK: CardRule(
            frozenset({CardStatus.TEMPORARY_LOSS, CardStatus.FORMAL_LOSS}),
            CardStatus.NORMAL,
            refused_when_replacing=LineCode.E121,
        ),
        # 0, 1, 2, 4 → 9, 04 (bureau; the hub for a replaced card, DOMAIN §5)
        CardOp.CANCEL: CardRule(
            frozenset(
                {
                    CardStatus.SEALED,
                    CardStatus.NORMAL,
                    CardStatus.FORMAL_LOSS,
                    CardStatus.TEMPORARY_LOSS,
                }
            ),
            CardStatus.CANCELLED,
        ),
    }
)


def card_transition(
    current: CardStatus, op: CardOp, *, replacement_applied: bool = False
) -> Outcome[CardStatus]:
    """The outcome of ``op`` on a card in status ``current`` (DOMAIN §2; the state rules
    of ICD §5.7, after E119 and the field rules).

    - ``current`` among the op's sources: done, the card goes to the op's target status;
      but an unblock (03 / L3) is refused E121 when ``replacement_applied`` (an
      application replacing this card is under way).
    - ``current`` already the op's target status: ``02``, nothing is done (an unblock of
      a normal card too, whether or not a replacement is under way).
    - anything else: refused E120.

    The lapse of a temporary loss (4 → 1, DOMAIN §2) is the hub's own 03: it is not the
    holder's unblock and E121 does not stop it (``replacement_applied`` False)."""
    rule = CARD_RULES[op]
    if current in rule.sources:
        if replacement_applied and rule.refused_when_replacing is not None:
            return Outcome(Result.REFUSED, current, rule.refused_when_replacing)
        return Outcome(Result.DONE, rule.target)
    if current == rule.target:
        return Outcome(Result.ALREADY, current)
    return Outcome(Result.REFUSED, current, LineCode.E120)


class AccountStatus(StrEnum):
    """A hub account's status, per PAN (DOMAIN §3)."""

    #: opened at application, no PIN
    PREOPENED = "preopened"
    #: financially activated (A1, or E1 with a PIN block)
    ACTIVE = "active"
    CLOSED = "closed"


#: an account that is not closed (E110: a replacement keeping its number needs one)
OPEN_ACCOUNT: frozenset[AccountStatus] = frozenset({AccountStatus.PREOPENED, AccountStatus.ACTIVE})


class Loss(StrEnum):
    """An account's ``loss`` flag (DOMAIN §3): it follows its current card's status."""

    NONE = "none"
    TEMPORARY = "temporary"
    FORMAL = "formal"


#: the account's loss flag for its current card's status (DOMAIN §3): a loss blocks
#: debits, never credits. A cancelled card is no account's current card for long
#: (DOMAIN §5 says what becomes of the account) and a locked one is the bureau's own.
LOSS_OF_CARD: Mapping[CardStatus, Loss] = MappingProxyType(
    {
        CardStatus.SEALED: Loss.NONE,
        CardStatus.NORMAL: Loss.NONE,
        CardStatus.TEMPORARY_LOSS: Loss.TEMPORARY,
        CardStatus.FORMAL_LOSS: Loss.FORMAL,
    }
)


class AccountOp(StrEnum):
    """An op on an account's status (DOMAIN §3, §5)."""

    #: A1, or E1 with a PIN block
    ACTIVATE = "activate"
    #: P1: needs an active account, which it leaves active
    RESET_PIN = "reset_pin"
    #: the hub's own: the balance moved to the replacing card's account, or zero after
    #: the card was cancelled (DOMAIN §5)
    CLOSE = "close"


#: the account op a channel op is; E1 is ACTIVATE only when it carries a PIN block and
#: enabled the card (ICD §5.9), which its caller decides
ACCOUNT_OP_OF_CHANNEL: Mapping[ChannelOp, AccountOp] = MappingProxyType(
    {ChannelOp.A1: AccountOp.ACTIVATE, ChannelOp.P1: AccountOp.RESET_PIN}
)


@dataclass(frozen=True)
class AccountRule:
    """One account op: from any of ``sources`` to ``target``; ``card_status`` is the
    status the account's card must be in after the op (else E120)."""

    sources: frozenset[AccountStatus]
    target: AccountStatus
    card_status: CardStatus | None = None


#: DOMAIN §3 and ICD §5.9. An op finding the account in the target status but not among
#: the sources is ``02`` (already; A1 on an active account); anything else is E120 (P1 on
#: an account never activated).
ACCOUNT_RULES: Mapping[AccountOp, AccountRule] = MappingProxyType(
    {
        # preopened → active; the card must be normal after the op
        AccountOp.ACTIVATE: AccountRule(
            frozenset({AccountStatus.PREOPENED}), AccountStatus.ACTIVE, CardStatus.NORMAL
        ),
        # active → active
        AccountOp.RESET_PIN: AccountRule(frozenset({AccountStatus.ACTIVE}), AccountStatus.ACTIVE),
        # preopened, active → closed
        AccountOp.CLOSE: AccountRule(OPEN_ACCOUNT, AccountStatus.CLOSED),
    }
)


def account_transition(
    current: AccountStatus, op: AccountOp, *, card_status: CardStatus | None = None
) -> Outcome[AccountStatus]:
    """The outcome of ``op`` on an account in status ``current`` (DOMAIN §3; ICD §5.9),
    ``card_status`` being its card's status after the op (for E1: after enabling).

    - ``current`` among the op's sources: done, unless the op needs the card in a status
      it is not in (activation needs a normal card): refused E120.
    - ``current`` the op's target status: ``02``, nothing is done.
    - anything else: refused E120."""
    rule = ACCOUNT_RULES[op]
    if current in rule.sources:
        if rule.card_status is not None and card_status != rule.card_status:
            return Outcome(Result.REFUSED, current, LineCode.E120)
        return Outcome(Result.DONE, rule.target)
    if current == rule.target:
        return Outcome(Result.ALREADY, current)
    return Outcome(Result.REFUSED, current, LineCode.E120)


#: the old card's statuses an application replacing it needs (DOMAIN §5; else E109):
#: ``05`` lost-card reissue, ``06`` renewal, ``07`` other replacement, by app_type
REPLACEABLE: Mapping[str, frozenset[CardStatus]] = MappingProxyType(
    {
        "05": frozenset({CardStatus.FORMAL_LOSS}),
        "06": frozenset(
            {
                CardStatus.SEALED,
                CardStatus.NORMAL,
                CardStatus.FORMAL_LOSS,
                CardStatus.TEMPORARY_LOSS,
            }
        ),
        "07": frozenset(
            {
                CardStatus.SEALED,
                CardStatus.NORMAL,
                CardStatus.FORMAL_LOSS,
                CardStatus.TEMPORARY_LOSS,
            }
        ),
    }
)


class ApplicationStatus(StrEnum):
    """Where a card application stands (``application_state.status``, decision 29), in
    the order it goes."""

    #: at intake (ICD §5.1)
    ACCEPTED = "accepted"
    #: its ACCTOPEN queued for the partner bank (ICD §5.4)
    PARTNER_SENT = "partner_sent"
    #: PAN known: pre-opened at the hub, or the partner answered 00
    ACCOUNT_OPEN = "account_open"
    #: in a PERSO to the factory (ICD §5.5)
    PERSO_SENT = "perso_sent"
    #: made: its card is sealed (ICD §5.6)
    MADE = "made"
    #: failed at the bank (stage 1) or at the factory (stage 2)
    FAILED = "failed"


class FailStage(StrEnum):
    """Where an application ended, ``application_state.fail_stage`` (None while it goes
    on) and CARDRSP ``fail_stage`` (ICD §5.3)."""

    #: made (CARDRSP only: a made card has no failure)
    MADE = "0"
    #: at the bank: the account was not opened
    BANK = "1"
    #: at the factory
    FACTORY = "2"


#: the steps of an application (ICD §5.3–§5.6): status → the statuses it may go to next.
#: Each step's service takes the applications in the step's source status.
APPLICATION_STEPS: Mapping[ApplicationStatus, frozenset[ApplicationStatus]] = MappingProxyType(
    {
        ApplicationStatus.ACCEPTED: frozenset(
            {ApplicationStatus.ACCOUNT_OPEN, ApplicationStatus.PARTNER_SENT}
        ),
        ApplicationStatus.PARTNER_SENT: frozenset(
            {ApplicationStatus.ACCOUNT_OPEN, ApplicationStatus.FAILED}
        ),
        ApplicationStatus.ACCOUNT_OPEN: frozenset({ApplicationStatus.PERSO_SENT}),
        ApplicationStatus.PERSO_SENT: frozenset({ApplicationStatus.MADE, ApplicationStatus.FAILED}),
        ApplicationStatus.MADE: frozenset(),
        ApplicationStatus.FAILED: frozenset(),
    }
)
