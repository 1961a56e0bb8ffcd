"""The cards and accounts one servicing run touches, held in memory while its lines are
applied in SEQ order (ICD §5.7: each line sees the effect of the lines before it), then
written back set-wise in the run's transaction (:meth:`Book.flush`).

Every change goes through here, so the rules hold for every flow (STATUS, CHANNEL,
partner answers, the end-of-day step):

- card status moves by :func:`schemas.states.card_transition` (DOMAIN §2), and the
  account's loss flag follows its *current* card only (DOMAIN §3);
- enabling a replacing card finishes the replacement (DOMAIN §5) in the same transaction:
  the old card cancelled (BANKEVT ``04``, channel ``AUTO``), the balance moved or the
  old account blocked, exactly once (the ``replacement`` row is written with it);
- a cancelled card whose PAN continues on no other card credit-blocks its account, which
  closes at zero balance;
- every change is an audit record, and every event the bureau must learn is a
  ``bank_event`` row for that business day's BANKEVT (ICD §5.8);
- the cards and accounts a run loads are locked until its transaction ends (PostgreSQL),
  so runs of different counterparties touching the same card take turns.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import Enum

import pyarrow as pa
from sqlalchemy import Connection, text

from banking import audit, ledger
from persistence.db import insert_many, keyed, sqlite_write_lock
from persistence.issuance_store import bulk_update
from schemas.states import (
    LOSS_OF_CARD,
    AccountStatus,
    CardOp,
    CardStatus,
    Loss,
    Outcome,
    Result,
    card_transition,
)

log = logging.getLogger("sscard.servicing")

#: the channel of what the hub does itself (ICD §5.8)
AUTO = "AUTO"
#: application states after which an application no longer replaces its old card
_ENDED = ("failed",)


@dataclass
class Replacing:
    """The application a card was made for, when it replaces an older card."""

    application_id: int
    app_no: str
    bureau: str
    old_card_no: str
    keep_account: str
    done: bool


@dataclass
class CardState:
    card_no: str
    bureau: str
    id_no: str
    name: str
    birth_date: str
    bank_code: str
    pan: str
    pan_seq: str
    status: CardStatus
    status_date: str | None
    status_by: str | None
    expiry_date: str
    #: an application replacing this card is under way (E121 for an unblock)
    being_replaced: bool = False
    #: the PAN continues on a newer card (made or in production)
    pan_continues: bool = False
    replaces: Replacing | None = None
    dirty: bool = False


@dataclass
class AccountState:
    pan: str
    bank_code: str
    status: AccountStatus
    loss: Loss
    pin_locked: bool
    credit_blocked: bool
    #: close once the balance is zero (its card was cancelled and the PAN goes on nowhere)
    close_at_zero: bool = False
    dirty: bool = False


@dataclass
class Event:
    """A BANKEVT line to be (ICD §5.8)."""

    bureau: str
    op: str
    card_no: str
    op_time: str
    channel: str
    source: str
    origin_key: str


@dataclass
class Forward:
    """A card op for a partner bank, in the next STATUS file to it (ICD §5.7, DOMAIN §5)."""

    req_no: str
    bank_code: str
    op: str
    card_no: str
    op_time: str
    channel: str
    target: str


def _shown(value: object) -> str:
    """A status or flag as the audit records it."""
    return str(value.value) if isinstance(value, Enum) else str(value).lower()


def evt_no_for(source: str, origin_key: str) -> str:
    """The hub's own evt_no of an event (ICD §4.2): stable for the same origin, so a
    re-run records nothing twice."""
    return "E" + hashlib.sha256(f"{source}|{origin_key}".encode()).hexdigest()[:24].upper()


def _for_update(conn: Connection, table: str) -> str:
    """The row lock a run takes on each card and account it reads (PostgreSQL): a run
    reading them meanwhile waits, then reads them as changed, so no run writes back what
    another changed (a PIN lock undone, a cancelled card lost again). SQLite has no row
    locks: :meth:`Book.load` takes the database's write lock before it reads."""
    if conn.dialect.name != "postgresql":
        return ""
    return f" FOR UPDATE OF {table}" if table else " FOR UPDATE"


def _chunks(values: Sequence[str], size: int = 5000) -> Iterable[Sequence[str]]:
    for i in range(0, len(values), size):
        yield values[i : i + size]


@dataclass
class Book:
    """The cards and accounts of one run, and what the run changes."""

    hub: str
    business_date: str
    now: datetime
    actor: str
    cards: dict[str, CardState] = field(default_factory=dict)
    accounts: dict[str, AccountState] = field(default_factory=dict)
    events: list[Event] = field(default_factory=list)
    audits: list[audit.AuditEntry] = field(default_factory=list)
    forwards: list[Forward] = field(default_factory=list)
    moves: list[tuple[str, str, str, int]] = field(default_factory=list)
    replacements: list[dict[str, object]] = field(default_factory=list)
    pins: dict[str, tuple[str, str]] = field(default_factory=dict)
    #: the loaded cards of each PAN
    by_pan: dict[str, list[CardState]] = field(default_factory=dict)

    # ------------------------------------------------------------------ loading
    def load(
        self, conn: Connection, card_nos: Iterable[str] = (), pans: Iterable[str] = ()
    ) -> None:
        """Load the named cards, every card of their PANs, the cards their replacements
        name, and those PANs' accounts. Already loaded ones are kept as they are."""
        sqlite_write_lock(conn)
        want_cards = sorted({c for c in card_nos if c and c not in self.cards})
        want_pans = set(p for p in pans if p)
        for part in _chunks(want_cards):
            for c in self._card_rows(conn, "c.card_no IN :keys", part):
                want_pans.add(c.pan)
        for part in _chunks(sorted(p for p in want_pans if p)):
            self._card_rows(conn, "c.pan IN :keys", part)
        # the old cards of replacements and the new cards of old ones
        olds = sorted(
            {c.replaces.old_card_no for c in self.cards.values() if c.replaces} - set(self.cards)
        )
        for part in _chunks(olds):
            self._card_rows(conn, "c.card_no IN :keys", part)
        for part in _chunks(
            sorted({c.pan for c in self.cards.values() if c.pan} - set(self.accounts))
        ):
            stmt = keyed(
                conn,
                "SELECT pan, bank_code, status, loss, pin_locked, credit_blocked "
                f"FROM account WHERE pan IN :keys ORDER BY pan{_for_update(conn, '')}",
                "keys",
            )
            for r in conn.execute(stmt, {"keys": list(part)}):
                self.accounts[r.pan] = AccountState(
                    r.pan,
                    r.bank_code,
                    AccountStatus(r.status),
                    Loss(r.loss),
                    bool(r.pin_locked),
                    bool(r.credit_blocked),
                )
        self._mark_replacing(conn)

    def _card_rows(self, conn: Connection, where: str, keys: Sequence[str]) -> list[CardState]:
        stmt = keyed(
            conn,
            "SELECT c.card_no, c.bureau, c.id_no, c.name, c.bank_code, c.pan, c.pan_seq, "
            "c.status, c.status_date, c.status_by, c.expiry_date, a.birth_date, "
            "a.id AS app_id, a.app_no, a.old_card_no, a.keep_account, "
            "r.application_id AS done "
            "FROM card c LEFT JOIN application a ON a.id = c.application_id "
            "LEFT JOIN replacement r ON r.application_id = a.id "
            f"WHERE {where} ORDER BY c.card_no{_for_update(conn, 'c')}",
            "keys",
        )
        out = []
        for r in conn.execute(stmt, {"keys": list(keys)}):
            if r.card_no in self.cards:
                out.append(self.cards[r.card_no])
                continue
            replaces = (
                Replacing(
                    r.app_id, r.app_no, r.bureau, r.old_card_no, r.keep_account, r.done is not None
                )
                if r.old_card_no
                else None
            )
            card = CardState(
                r.card_no,
                r.bureau,
                r.id_no,
                r.name,
                r.birth_date or "",
                r.bank_code,
                r.pan or "",
                r.pan_seq or "",
                CardStatus(r.status),
                r.status_date,
                r.status_by,
                r.expiry_date or "",
                replaces=replaces,
            )
            self.cards[r.card_no] = card
            if card.pan:
                self.by_pan.setdefault(card.pan, []).append(card)
            out.append(card)
        return out

    def _mark_replacing(self, conn: Connection) -> None:
        keys = sorted(self.cards)
        for part in _chunks(keys):
            stmt = keyed(
                conn,
                "SELECT a.old_card_no, a.keep_account FROM application a "
                "JOIN application_state s ON s.application_id = a.id "
                # the index's own predicate, so the planner takes it for a long list
                "WHERE a.old_card_no <> '' AND a.old_card_no IN :keys "
                "AND s.status NOT IN :ended "
                # a replacing card cancelled (while sealed) replaces nothing any more
                "AND NOT EXISTS (SELECT 1 FROM card n WHERE n.application_id = a.id "
                "AND n.status = '9')",
                "keys",
                "ended",
            )
            for r in conn.execute(stmt, {"keys": list(part), "ended": list(_ENDED)}):
                card = self.cards[r.old_card_no]
                card.being_replaced = True
                if r.keep_account == "1":
                    card.pan_continues = True

    # ------------------------------------------------------------------ reading
    def card(self, card_no: str) -> CardState | None:
        return self.cards.get(card_no)

    def account(self, pan: str) -> AccountState | None:
        return self.accounts.get(pan)

    def current_card(self, pan: str) -> CardState | None:
        """The card the account follows (DOMAIN §3): the highest enabled pan_seq; before
        the first enable, the only (highest) card."""
        mine = self.by_pan.get(pan, [])
        enabled = [c for c in mine if c.status != CardStatus.SEALED]
        pool = enabled or mine
        return max(pool, key=lambda c: c.pan_seq) if pool else None

    def is_hub(self, card: CardState) -> bool:
        return card.bank_code == self.hub

    # ------------------------------------------------------------------ changing
    def card_op(
        self,
        card: CardState,
        op: CardOp,
        *,
        by: str,
        op_time: str,
        ref: str,
        event_channel: str | None = None,
        event_key: str | None = None,
        unblock_as_holder: bool = True,
    ) -> Outcome[CardStatus]:
        """Apply ``op`` to ``card`` (DOMAIN §2). ``event_channel`` set: the bureau learns
        it in BANKEVT under that channel (a bank channel's op or the hub's own)."""
        outcome = card_transition(
            card.status, op, replacement_applied=card.being_replaced and unblock_as_holder
        )
        if outcome.result is Result.DONE:
            self.set_card_status(card, outcome.status, by=by, op=f"card:{op.value}", ref=ref)
            if event_channel is not None:
                self.event(card, op.value, op_time, event_channel, event_key or ref)
            if op is CardOp.ENABLE:
                self.finish_replacement(card, op_time)
            if op is CardOp.CANCEL:
                self.cancelled(card)
        return outcome

    def set_card_status(
        self, card: CardState, status: CardStatus, *, by: str, op: str, ref: str
    ) -> None:
        before = card.status
        card.status = status
        card.status_date = self.business_date
        card.status_by = by
        card.dirty = True
        self.audit(card.card_no, card.pan, op, by, ref, before.value, status.value)
        account = self.accounts.get(card.pan)
        if account is not None and self.current_card(card.pan) is card and status in LOSS_OF_CARD:
            loss = LOSS_OF_CARD[status]
            if account.loss != loss:
                self.audit("", card.pan, "acct:loss", by, ref, account.loss.value, loss.value)
                account.loss = loss
                account.dirty = True

    def event(
        self,
        card: CardState,
        op: str,
        op_time: str,
        channel: str,
        origin_key: str,
        source: str = "hub",
    ) -> None:
        self.events.append(
            Event(card.bureau, op, card.card_no, op_time, channel, source, origin_key)
        )

    def audit(
        self, card_no: str, pan: str, op: str, channel: str, ref: str, before: str, after: str
    ) -> None:
        self.audits.append(
            audit.AuditEntry(
                business_date=self.business_date,
                card_no=card_no,
                pan=pan,
                op=op,
                channel=channel,
                actor=self.actor,
                ref=ref,
                before=before,
                after=after,
            )
        )

    def set_account(self, account: AccountState, *, by: str, ref: str, **changes: object) -> None:
        for name, value in changes.items():
            before = getattr(account, name)
            if before == value:
                continue
            setattr(account, name, value)
            self.audit("", account.pan, f"acct:{name}", by, ref, _shown(before), _shown(value))
            account.dirty = True

    def cancelled(self, card: CardState) -> None:
        """DOMAIN §5: a cancelled card whose PAN continues on no other card credit-blocks
        its account, which closes once its balance is zero."""
        if not card.pan or card.pan_continues:
            return
        others = [c for c in self.by_pan.get(card.pan, []) if c is not card]
        if any(c.status != CardStatus.CANCELLED for c in others):
            return
        account = self.accounts.get(card.pan)
        if account is None or account.status is AccountStatus.CLOSED:
            return
        self.set_account(account, by=AUTO, ref=card.card_no, credit_blocked=True)
        account.close_at_zero = True
        account.dirty = True

    def finish_replacement(self, new: CardState, op_time: str) -> None:
        """DOMAIN §5, when a replacing card is enabled: in this same transaction the old
        card is cancelled (BANKEVT ``04`` ``AUTO``; forwarded to a partner bank holding its
        account) and its account follows the new card, moves its balance, or is blocked."""
        info = new.replaces
        if info is None or info.done:
            return
        info.done = True
        old = self.cards.get(info.old_card_no)
        if old is None:
            log.error("replacement %s: old card not found; nothing done", info.application_id)
            return
        kind = "partner"
        if old.status != CardStatus.CANCELLED:
            self.set_card_status(old, CardStatus.CANCELLED, by=AUTO, op="card:04", ref=info.app_no)
            self.event(old, CardOp.CANCEL.value, op_time, AUTO, f"replaced:{info.app_no}")
            if not self.is_hub(old):
                self.forward(
                    old,
                    CardOp.CANCEL,
                    op_time,
                    AUTO,
                    CardStatus.CANCELLED,
                    f"R{info.application_id}",
                )
        if info.keep_account == "1" and old.pan == new.pan:
            kind = "kept"
            account = self.accounts.get(new.pan)
            if account is not None and new.status in LOSS_OF_CARD:
                self.set_account(account, by=AUTO, ref=info.app_no, loss=LOSS_OF_CARD[new.status])
        elif self.is_hub(old):
            account = self.accounts.get(old.pan)
            if account is not None and account.status is not AccountStatus.CLOSED:
                self.set_account(account, by=AUTO, ref=info.app_no, credit_blocked=True)
                account.close_at_zero = True
                account.dirty = True
                target = self.accounts.get(new.pan) if self.is_hub(new) and new.pan else None
                if (
                    target is not None
                    and target.status is not AccountStatus.CLOSED
                    and not target.credit_blocked
                ):
                    kind = "moved"
                    self.moves.append(
                        (f"move:{info.bureau}:{info.app_no}", old.pan, new.pan, info.application_id)
                    )
                else:
                    kind = "elsewhere"
        self.replacements.append(
            {
                "application_id": info.application_id,
                "old_card_no": old.card_no,
                "new_card_no": new.card_no,
                "kind": kind,
                "moved_fen": 0,
                "business_date": self.business_date,
                "done_at": self.now,
            }
        )

    def forward(
        self,
        card: CardState,
        op: CardOp,
        op_time: str,
        channel: str,
        target: CardStatus,
        req_no: str,
    ) -> Forward:
        fwd = Forward(
            req_no, card.bank_code, op.value, card.card_no, op_time, channel, target.value
        )
        self.forwards.append(fwd)
        return fwd

    # ------------------------------------------------------------------ writing
    def flush(self, conn: Connection) -> None:
        """Write every change back, in the caller's transaction."""
        if any(a.close_at_zero for a in self.accounts.values()):
            # an account credit-blocked here (its balance moved, or closing at zero): the
            # credits being posted are waited for and read, later ones find it blocked
            ledger.hold_credit_lock(conn, exclusive=True)
        moved: dict[int, int] = {}
        for key, old_pan, new_pan, app_id in self.moves:
            amount = ledger.balance(conn, old_pan)
            if amount > 0:
                ledger.post(
                    conn,
                    key,
                    "balance_move",
                    self.business_date,
                    [ledger.Leg(old_pan, -amount), ledger.Leg(new_pan, amount)],
                    self.now,
                )
                self.audit("", old_pan, "acct:balance_move", AUTO, key, str(amount), "0")
            moved[app_id] = max(amount, 0)
        for r in self.replacements:
            r["moved_fen"] = moved.get(int(r["application_id"]), 0)  # type: ignore[call-overload]
        # accounts whose card was cancelled close once their balance is zero
        closing = [
            a
            for a in self.accounts.values()
            if a.close_at_zero and a.status is not AccountStatus.CLOSED
        ]
        if closing:
            balances = ledger.balances(conn, (a.pan for a in closing))
            for account in closing:
                if balances[account.pan] == 0:
                    self.set_account(account, by=AUTO, ref="", status=AccountStatus.CLOSED)
        # written set-wise: a file of 100,000 lines changes as many cards and accounts
        dirty_cards = [c for c in self.cards.values() if c.dirty]
        bulk_update(
            conn,
            "card",
            "card_no",
            pa.table(
                {
                    "card_no": [c.card_no for c in dirty_cards],
                    "status": [c.status.value for c in dirty_cards],
                    "status_date": pa.array([c.status_date for c in dirty_cards], pa.string()),
                    "status_by": pa.array([c.status_by for c in dirty_cards], pa.string()),
                }
            ),
        )
        dirty_accounts = [a for a in self.accounts.values() if a.dirty]
        bulk_update(
            conn,
            "account",
            "pan",
            pa.table(
                {
                    "pan": [a.pan for a in dirty_accounts],
                    "status": [a.status.value for a in dirty_accounts],
                    "loss": [a.loss.value for a in dirty_accounts],
                    "pin_locked": pa.array([a.pin_locked for a in dirty_accounts], pa.bool_()),
                    "credit_blocked": pa.array(
                        [a.credit_blocked for a in dirty_accounts], pa.bool_()
                    ),
                }
            ),
        )
        if self.pins:
            delete = keyed(conn, "DELETE FROM pin_verification WHERE pan IN :keys", "keys")
            for part in _chunks(sorted(self.pins)):
                conn.execute(delete, {"keys": list(part)})
            insert_many(
                conn,
                "pin_verification",
                [
                    {"pan": pan, "key_id": key_id, "value": value, "set_at": self.now}
                    for pan, (key_id, value) in self.pins.items()
                ],
            )
        if self.replacements:
            conn.execute(
                text(
                    "INSERT INTO replacement (application_id, old_card_no, new_card_no, kind, "
                    "moved_fen, business_date, done_at) VALUES (:application_id, :old_card_no, "
                    ":new_card_no, :kind, :moved_fen, :business_date, :done_at)"
                ),
                self.replacements,
            )
        if self.forwards:
            conn.execute(
                text(
                    "INSERT INTO partner_status (req_no, bank_code, op, card_no, op_time, channel, "
                    "target, created_date) VALUES (:req_no, :bank_code, :op, :card_no, :op_time, "
                    ":channel, :target, :created_date)"
                ),
                [{**f.__dict__, "created_date": self.business_date} for f in self.forwards],
            )
        self._write_events(conn)
        if self.audits:
            audit.append(conn, self.audits, self.now)
        log.info(
            "servicing: %d card(s) and %d account(s) changed, %d event(s) for BANKEVT, "
            "%d op(s) for partner banks, %d replacement(s) finished, %d balance move(s)",
            len(dirty_cards),
            len(dirty_accounts),
            len(self.events),
            len(self.forwards),
            len(self.replacements),
            sum(1 for v in moved.values() if v > 0),
        )

    def _write_events(self, conn: Connection) -> None:
        if not self.events:
            return
        rows = [
            {
                "evt_no": evt_no_for(e.source, e.origin_key),
                "bureau": e.bureau,
                "business_date": self.business_date,
                "op": e.op,
                "card_no": e.card_no,
                "op_time": e.op_time,
                "channel": e.channel,
                "source": e.source,
                "origin_key": e.origin_key,
            }
            for e in self.events
        ]
        insert_many(conn, "bank_event", rows, ignore_conflicts=True)
