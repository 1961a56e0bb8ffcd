"""The hub's tables (SQLAlchemy 2 typed models). Alembic migrations in
``persistence/migrations`` create them; ``tests/integration/test_migrations.py`` keeps the
two in step."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    text,
    true,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from schemas.states import AccountStatus, ApplicationStatus, CardStatus, Loss

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


def in_list(values: Iterable[str]) -> str:
    """``('a', 'b')``: the values of a status enum (:mod:`schemas.states`, whose values
    hold no quote) as an SQL list, for CHECK constraints and statements' text."""
    return "(" + ", ".join(f"'{value}'" for value in values) + ")"


def one_of(column: str, values: Iterable[str]) -> CheckConstraint:
    """The CHECK constraint ``ck_<table>_<column>``: ``column`` holds one of ``values``."""
    return CheckConstraint(f"{column} IN {in_list(values)}", name=column)


class ReceivedFile(Base):
    """Every file the hub has seen (ICD §2): name, SHA-256 and outcome.

    ``outcome`` is ``accepted`` (processed; lines answered), ``rejected`` (file-level
    code in ``file_code``), ``waiting`` (complete, waiting for its photo zip) or ``seen``
    (a request or answer found complete, not taken yet: ``first_seen_at`` dates it). A NAME
    or BATCH_NO is consumed only by an accepted file (partial unique indexes).
    """

    __tablename__ = "received_file"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    conn_id: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(100))
    type: Mapped[str | None] = mapped_column(String(12))
    sender: Mapped[str | None] = mapped_column(String(8))
    receiver: Mapped[str | None] = mapped_column(String(8))
    batch_no: Mapped[str | None] = mapped_column(String(20))
    business_date: Mapped[str | None] = mapped_column(String(8))
    sha256: Mapped[str] = mapped_column(String(64))
    size: Mapped[int] = mapped_column(BigInteger)
    record_count: Mapped[int | None] = mapped_column(Integer)
    outcome: Mapped[str] = mapped_column(String(16))
    file_code: Mapped[str | None] = mapped_column(String(3))
    detail: Mapped[str | None] = mapped_column(String(200))
    accepted_count: Mapped[int] = mapped_column(Integer, default=0)
    rejected_count: Mapped[int] = mapped_column(Integer, default=0)
    local_path: Mapped[str | None] = mapped_column(String(500))
    first_seen_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    processed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    #: of a file rejected F01 or F10: the digest of its companions then (its control file,
    #: its photo zip's control file), so the same file sent again with them unchanged is
    #: only archived again, and with them corrected is taken afresh
    companions_sha256: Mapped[str | None] = mapped_column(String(64))
    #: when the file and its companions were all moved to ``archive/`` or ``rejected/``;
    #: NULL while a move is due or was cut short (a later run finishes it)
    archived_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    __table_args__ = (
        Index("ix_received_file_lookup", "conn_id", "name", "sha256"),
        Index(
            "uq_received_file_accepted_name",
            "sender",
            "name",
            unique=True,
            sqlite_where=text("outcome = 'accepted'"),
            postgresql_where=text("outcome = 'accepted'"),
        ),
        Index(
            "uq_received_file_accepted_batch",
            "sender",
            "type",
            "batch_no",
            unique=True,
            sqlite_where=text("outcome = 'accepted'"),
            postgresql_where=text("outcome = 'accepted'"),
        ),
    )


class RunLock(Base):
    """A lease held by the run taking a connection's files, where the database has no
    advisory locks (SQLite; see :mod:`exchange.locks`)."""

    __tablename__ = "run_lock"

    name: Mapped[str] = mapped_column(String(120), primary_key=True)
    holder: Mapped[str] = mapped_column(String(80))
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class OutboundFile(Base):
    """A file the hub writes (responses, ``.rej``), queued in the same transaction as the
    outcome it reports, then published by the delivery step (outbox). Its bytes are in
    ``data``, or, for a large file, in object storage under the key ``path``."""

    __tablename__ = "outbound_file"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    conn_id: Mapped[str] = mapped_column(String(64))
    directory: Mapped[str] = mapped_column(String(200))
    name: Mapped[str] = mapped_column(String(120))
    type: Mapped[str] = mapped_column(String(12))
    data: Mapped[bytes | None] = mapped_column(LargeBinary)
    path: Mapped[str | None] = mapped_column(String(500))
    sha256: Mapped[str] = mapped_column(String(64))
    record_count: Mapped[int] = mapped_column(Integer)
    with_control: Mapped[bool] = mapped_column(default=True)
    source_file_id: Mapped[int | None] = mapped_column(ForeignKey("received_file.id"))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    delivered_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    #: while it is being delivered: when its publishing reached the last rename (the file
    #: in place, its control file under ``.part``); nothing of it left in the drop since
    #: then means the counterparty took it (:func:`exchange.outbox.deliver`)
    staged_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    __table_args__ = (
        Index("uq_outbound_file_conn_dir_name", "conn_id", "directory", "name", unique=True),
        Index("ix_outbound_file_pending", "delivered_at"),
    )


class ApplyLine(Base):
    """The answer given to a rejected APPLY line (ICD §5.2), kept so a key already
    answered is answered again unchanged (ICD §4.2) and a reused key with other content is
    E107. Accepted lines are answered by their :class:`Application` row (``content_sha``)."""

    __tablename__ = "apply_line"

    file_id: Mapped[int] = mapped_column(ForeignKey("received_file.id"), primary_key=True)
    seq: Mapped[int] = mapped_column(Integer, primary_key=True)
    line_no: Mapped[int] = mapped_column(Integer)
    sender: Mapped[str] = mapped_column(String(8))
    #: as the line had it; of a longer one (no key: the line is E116) the first 64 characters
    app_no: Mapped[str] = mapped_column(String(64))
    content_sha: Mapped[str] = mapped_column(String(40))
    result: Mapped[str] = mapped_column(String(2))
    reason_code: Mapped[str] = mapped_column(String(4), default="")
    reason_field: Mapped[str] = mapped_column(String(20), default="")

    __table_args__ = (Index("ix_apply_line_sender_app_no", "sender", "app_no"),)


class Application(Base):
    """An accepted card application (ICD §5.1) as the bureau sent it: written once at
    intake and never changed. Where it stands lives in :class:`ApplicationState`.

    ``content_sha`` is the digest of the line after its key, so the same key sent again
    with the same content is answered again unchanged, and with other content is E107
    (ICD §4.2).
    """

    __tablename__ = "application"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    bureau: Mapped[str] = mapped_column(String(8))
    app_no: Mapped[str] = mapped_column(String(30))
    #: the APPLY file of the line; no foreign key (docs/decisions.md): written only by
    #: intake, in the transaction that records the file
    file_id: Mapped[int] = mapped_column(Integer)
    seq: Mapped[int] = mapped_column(Integer)
    app_type: Mapped[str] = mapped_column(String(2))
    id_type: Mapped[str] = mapped_column(String(2))
    id_no: Mapped[str] = mapped_column(String(18))
    id_valid_to: Mapped[str] = mapped_column(String(8))
    name: Mapped[str] = mapped_column(String(30))
    gender: Mapped[str] = mapped_column(String(1))
    ethnicity: Mapped[str] = mapped_column(String(2))
    birth_date: Mapped[str] = mapped_column(String(8))
    nationality: Mapped[str] = mapped_column(String(3))
    occupation: Mapped[str] = mapped_column(String(1), default="")
    mobile: Mapped[str] = mapped_column(String(11))
    region_code: Mapped[str] = mapped_column(String(6))
    bank_code: Mapped[str] = mapped_column(String(4))
    card_no: Mapped[str] = mapped_column(String(9))
    old_card_no: Mapped[str] = mapped_column(String(9), default="")
    keep_account: Mapped[str] = mapped_column(String(1), default="")
    replace_reason: Mapped[str] = mapped_column(String(1), default="")
    photo: Mapped[str] = mapped_column(String(40), default="")
    address: Mapped[str] = mapped_column(String(100), default="")
    business_date: Mapped[str] = mapped_column(String(8))
    content_sha: Mapped[str] = mapped_column(String(40), default="")

    __table_args__ = (
        Index("uq_application_bureau_app_no", "bureau", "app_no", unique=True),
        Index("uq_application_card_no", "card_no", unique=True),
        Index("ix_application_id_no", "id_no", postgresql_using="hash"),
        # E109: is this old card already being replaced? Replacements are few.
        Index(
            "ix_application_old_card_no",
            "old_card_no",
            sqlite_where=text("old_card_no <> ''"),
            postgresql_where=text("old_card_no <> ''"),
        ),
    )


class ApplicationState(Base):
    """Where an application stands: one narrow row per application, the only part the
    issuance steps update, so moving 200,000 applications on touches small rows and two
    small indexes rather than the application itself.

    ``status``: a :class:`schemas.states.ApplicationStatus`, ``accepted`` at intake and
    moved on by the steps of ``APPLICATION_STEPS``. ``final_date`` is set with a final
    outcome (made, or failed at ``fail_stage`` 1 bank / 2 factory with ``reason_code``);
    ``cardrsp_name`` names the CARDRSP that reported it.
    """

    __tablename__ = "application_state"

    #: no foreign key (docs/decisions.md): written right after the application, with the
    #: id taken for it, and applications are never deleted
    application_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    bureau: Mapped[str] = mapped_column(String(8))
    status: Mapped[str] = mapped_column(String(16))
    fail_stage: Mapped[str | None] = mapped_column(String(1))
    reason_code: Mapped[str | None] = mapped_column(String(4))
    pan: Mapped[str | None] = mapped_column(String(19))
    pan_seq: Mapped[str | None] = mapped_column(String(2))
    final_date: Mapped[str | None] = mapped_column(String(8))
    cardrsp_name: Mapped[str | None] = mapped_column(String(100))

    __table_args__ = (
        Index("ix_application_state_status", "status"),
        one_of("status", ApplicationStatus),
        Index(
            "ix_application_state_unreported",
            "bureau",
            "final_date",
            sqlite_where=text("final_date IS NOT NULL AND cardrsp_name IS NULL"),
            postgresql_where=text("final_date IS NOT NULL AND cardrsp_name IS NULL"),
        ),
    )


class Card(Base):
    """A made card and its status (DOMAIN §2, AAZ502: :class:`schemas.states.CardStatus`,
    moved by ``CARD_RULES``)."""

    __tablename__ = "card"

    card_no: Mapped[str] = mapped_column(String(9), primary_key=True)
    application_id: Mapped[int | None] = mapped_column(ForeignKey("application.id"))
    bureau: Mapped[str] = mapped_column(String(8))
    id_type: Mapped[str] = mapped_column(String(2))
    id_no: Mapped[str] = mapped_column(String(18))
    name: Mapped[str] = mapped_column(String(30))
    bank_code: Mapped[str] = mapped_column(String(4))
    pan: Mapped[str | None] = mapped_column(String(19))
    pan_seq: Mapped[str | None] = mapped_column(String(2))
    status: Mapped[str] = mapped_column(String(1))
    issue_date: Mapped[str | None] = mapped_column(String(8))
    expiry_date: Mapped[str | None] = mapped_column(String(8))
    card_id_code: Mapped[str | None] = mapped_column(String(32))
    atr: Mapped[str | None] = mapped_column(String(40))
    box_no: Mapped[str | None] = mapped_column(String(20))
    made_date: Mapped[str | None] = mapped_column(String(8))
    #: the business date of the op that set ``status`` (a temporary loss lapses counted
    #: from it, DOMAIN §2), and who took it: a bureau code, a channel code or ``AUTO``
    status_date: Mapped[str | None] = mapped_column(String(8))
    status_by: Mapped[str | None] = mapped_column(String(8))

    __table_args__ = (
        Index("ix_card_id_no", "id_no"),
        Index("ix_card_pan", "pan"),
        # per chip, so new on every card (DOMAIN §1)
        Index(
            "uq_card_card_id_code",
            "card_id_code",
            unique=True,
            sqlite_where=text("card_id_code IS NOT NULL"),
            postgresql_where=text("card_id_code IS NOT NULL"),
        ),
        one_of("status", CardStatus),
    )


class Account(Base):
    """A customer account, one per PAN (DOMAIN §3): ``status`` an
    :class:`schemas.states.AccountStatus` (preopened → active → closed, moved by
    ``ACCOUNT_RULES``), ``loss`` a :class:`schemas.states.Loss`."""

    __tablename__ = "account"

    pan: Mapped[str] = mapped_column(String(19), primary_key=True)
    bank_code: Mapped[str] = mapped_column(String(4))
    id_no: Mapped[str] = mapped_column(String(18))
    status: Mapped[str] = mapped_column(String(10))
    loss: Mapped[str] = mapped_column(String(10), default=Loss.NONE.value)
    pin_locked: Mapped[bool] = mapped_column(default=False)
    debit_blocked: Mapped[bool] = mapped_column(default=False)
    credit_blocked: Mapped[bool] = mapped_column(default=False)
    # its balance is the sum of its ledger entries (:func:`banking.ledger.balance`), kept
    # nowhere else, never below zero (DOMAIN §6)

    __table_args__ = (
        one_of("status", AccountStatus),
        one_of("loss", Loss),
    )


class PanCounter(Base):
    """The next account serial of each configured PAN prefix (DOMAIN §1): a PAN is never
    reused, and a block of serials is taken in one UPDATE, safe under concurrent runs."""

    __tablename__ = "pan_counter"

    prefix: Mapped[str] = mapped_column(String(18), primary_key=True)
    next_serial: Mapped[int] = mapped_column(BigInteger)


class PartnerRequest(Base):
    """An ACCTOPEN line sent to a partner bank under the hub's own key (ICD §4.2, §5.4)."""

    __tablename__ = "partner_request"

    req_no: Mapped[str] = mapped_column(String(30), primary_key=True)
    application_id: Mapped[int] = mapped_column(ForeignKey("application.id"))
    bank_code: Mapped[str] = mapped_column(String(4))
    request_name: Mapped[str] = mapped_column(String(100))
    sent_date: Mapped[str] = mapped_column(String(8))
    answered_date: Mapped[str | None] = mapped_column(String(8))
    result: Mapped[str | None] = mapped_column(String(2))
    reason_code: Mapped[str | None] = mapped_column(String(4))

    __table_args__ = (
        Index("uq_partner_request_application", "application_id", unique=True),
        Index("ix_partner_request_open", "bank_code", "answered_date"),
    )


class PersoRecord(Base):
    """A card sent to a factory in a PERSO file (ICD §5.5); never sent twice.

    ``application_id`` names the application the card was made for. It is written only
    from applications read in the same transaction and applications are never deleted,
    so it carries no foreign key: checking one per row cost more than writing the row
    (docs/decisions.md)."""

    __tablename__ = "perso_record"

    application_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    card_no: Mapped[str] = mapped_column(String(9))
    pan: Mapped[str] = mapped_column(String(19))
    factory: Mapped[str] = mapped_column(String(3))
    perso_name: Mapped[str] = mapped_column(String(100))
    seq: Mapped[int] = mapped_column(Integer)
    issue_date: Mapped[str] = mapped_column(String(8))
    expiry_date: Mapped[str] = mapped_column(String(8))
    result: Mapped[str | None] = mapped_column(String(2))
    result_name: Mapped[str | None] = mapped_column(String(100))

    __table_args__ = (Index("uq_perso_record_card_no", "card_no", unique=True),)


class ReturnProblem(Base):
    """A returned record the hub refused to apply (unknown card, repeat, other PAN):
    reported to operations, never applied (ICD §5.6)."""

    __tablename__ = "return_problem"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    file_name: Mapped[str] = mapped_column(String(100))
    line_no: Mapped[int] = mapped_column(Integer)
    key: Mapped[str] = mapped_column(String(30))
    problem: Mapped[str] = mapped_column(String(40))
    business_date: Mapped[str] = mapped_column(String(8))


class ServiceLine(Base):
    """A STATUS or CHANNEL line (ICD §5.7, §5.9) and its answer. ``result`` is NULL while
    the line waits for a partner bank (``partner_req_no``); the response file is written
    once every line of the file has one. ``content_sha`` answers a key sent again: the
    same content repeats the first answer, other content is E107 (ICD §4.2)."""

    __tablename__ = "service_line"

    file_id: Mapped[int] = mapped_column(ForeignKey("received_file.id"), primary_key=True)
    seq: Mapped[int] = mapped_column(Integer, primary_key=True)
    type: Mapped[str] = mapped_column(String(12))
    sender: Mapped[str] = mapped_column(String(8))
    #: as the line had it; of a longer one the first 64 characters
    req_no: Mapped[str] = mapped_column(String(64))
    content_sha: Mapped[str] = mapped_column(String(40))
    op: Mapped[str] = mapped_column(String(2))
    card_no: Mapped[str] = mapped_column(String(9))
    result: Mapped[str | None] = mapped_column(String(2))
    reason_code: Mapped[str] = mapped_column(String(4), default="")
    reason_field: Mapped[str] = mapped_column(String(20), default="")
    #: the hub's own req_no of the op forwarded to a partner bank
    partner_req_no: Mapped[str | None] = mapped_column(String(30))

    __table_args__ = (
        Index("ix_service_line_sender_req_no", "sender", "type", "req_no"),
        Index(
            "ix_service_line_waiting",
            "file_id",
            sqlite_where=text("result IS NULL"),
            postgresql_where=text("result IS NULL"),
        ),
    )


class PartnerStatus(Base):
    """A card op forwarded to a partner bank in a STATUS file under the hub's own req_no
    (ICD §5.7; DOMAIN §5 for a replaced card's cancellation)."""

    __tablename__ = "partner_status"

    req_no: Mapped[str] = mapped_column(String(30), primary_key=True)
    bank_code: Mapped[str] = mapped_column(String(4))
    op: Mapped[str] = mapped_column(String(2))
    card_no: Mapped[str] = mapped_column(String(9))
    op_time: Mapped[str] = mapped_column(String(14))
    channel: Mapped[str] = mapped_column(String(10))
    #: the status the card goes to when the partner agrees
    target: Mapped[str] = mapped_column(String(1))
    created_date: Mapped[str] = mapped_column(String(8))
    request_name: Mapped[str | None] = mapped_column(String(100))
    sent_date: Mapped[str | None] = mapped_column(String(8))
    answered_date: Mapped[str | None] = mapped_column(String(8))
    result: Mapped[str | None] = mapped_column(String(2))
    reason_code: Mapped[str | None] = mapped_column(String(4))

    __table_args__ = (Index("ix_partner_status_open", "bank_code", "answered_date"),)


class BankEvent(Base):
    """An event the bureau must learn (ICD §5.8), reported in the BANKEVT of its business
    day (``bankevt_name`` once written). ``evt_no`` is the hub's own key; ``source`` is
    ``hub`` or the partner bank whose BANKEVT it relays."""

    __tablename__ = "bank_event"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    evt_no: Mapped[str] = mapped_column(String(30))
    bureau: Mapped[str] = mapped_column(String(8))
    business_date: Mapped[str] = mapped_column(String(8))
    op: Mapped[str] = mapped_column(String(2))
    card_no: Mapped[str] = mapped_column(String(9))
    op_time: Mapped[str] = mapped_column(String(14))
    channel: Mapped[str] = mapped_column(String(10))
    source: Mapped[str] = mapped_column(String(8))
    #: the key it was known by where it came from (a request's or a partner's evt_no), so
    #: the same event is never recorded twice
    origin_key: Mapped[str] = mapped_column(String(80))
    bankevt_name: Mapped[str | None] = mapped_column(String(100))

    __table_args__ = (
        Index("uq_bank_event_evt_no", "evt_no", unique=True),
        Index("uq_bank_event_origin", "source", "origin_key", unique=True),
        Index("ix_bank_event_day", "bureau", "business_date"),
    )


class BankEventDay(Base):
    """The BANKEVT written for a bureau's business day (ICD §5.8: every business day,
    with no detail lines when nothing happened)."""

    __tablename__ = "bank_event_day"

    bureau: Mapped[str] = mapped_column(String(8), primary_key=True)
    business_date: Mapped[str] = mapped_column(String(8), primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    record_count: Mapped[int] = mapped_column(Integer)


class PinVerification(Base):
    """An account's PIN verification value (DOMAIN §4): a keyed HMAC of PAN and PIN under
    the verification key ``key_id``; the PIN itself is never stored."""

    __tablename__ = "pin_verification"

    pan: Mapped[str] = mapped_column(String(19), primary_key=True)
    key_id: Mapped[str] = mapped_column(String(20))
    value: Mapped[str] = mapped_column(String(64))
    set_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class PinNonce(Base):
    """A nonce seen in a PIN block that decrypted (ICD §5.9: a replay is E130)."""

    __tablename__ = "pin_nonce"

    channel: Mapped[str] = mapped_column(String(8), primary_key=True)
    key_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    nonce: Mapped[str] = mapped_column(String(24), primary_key=True)


class Replacement(Base):
    """A replacement finished once its new card was enabled (DOMAIN §5): the old card
    cancelled and, for a new account, the balance moved; written in the same transaction,
    so the step is done exactly once."""

    __tablename__ = "replacement"

    application_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    old_card_no: Mapped[str] = mapped_column(String(9))
    new_card_no: Mapped[str] = mapped_column(String(9))
    #: ``kept`` (same PAN), ``moved`` (balance moved to the new hub account),
    #: ``elsewhere`` (new account at another bank), ``partner`` (old account at a partner)
    kind: Mapped[str] = mapped_column(String(10))
    moved_fen: Mapped[int] = mapped_column(BigInteger, default=0)
    business_date: Mapped[str] = mapped_column(String(8))
    done_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class LedgerAccount(Base):
    """An account of the hub's own books (DOMAIN §6): ``settlement``, and per bureau
    ``clearing`` and ``returns``, per partner bank ``due_to_partner``. Customer accounts
    are :class:`Account` rows (code = the PAN). ``balance_fen`` is a cache, credit
    positive; the entries are the truth."""

    __tablename__ = "ledger_account"

    code: Mapped[str] = mapped_column(String(40), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    owner: Mapped[str] = mapped_column(String(8), default="")
    balance_fen: Mapped[int] = mapped_column(BigInteger, default=0)


class LedgerTxn(Base):
    """A posting: entries summing to zero under one idempotency key (DOMAIN §6)."""

    __tablename__ = "ledger_txn"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    idem_key: Mapped[str] = mapped_column(String(80))
    kind: Mapped[str] = mapped_column(String(20))
    business_date: Mapped[str] = mapped_column(String(8))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))

    __table_args__ = (Index("uq_ledger_txn_idem_key", "idem_key", unique=True),)


class LedgerEntry(Base):
    """One leg of a posting: ``amount_fen`` credits ``account`` when positive, debits it
    when negative; a posting's legs sum to zero (DOMAIN §6)."""

    __tablename__ = "ledger_entry"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    #: its :class:`LedgerTxn` (checked by :func:`banking.ledger.check`, not by a foreign
    #: key: a per-row trigger would cost a day's benefit posting a third of its insert)
    txn_id: Mapped[int] = mapped_column(BigInteger)
    #: a customer account's PAN, or a :class:`LedgerAccount` code
    account: Mapped[str] = mapped_column(String(40))
    amount_fen: Mapped[int] = mapped_column(BigInteger)
    #: the transfer's own idempotency key, on the credit entry of a set posting
    idem_key: Mapped[str | None] = mapped_column(String(80))

    __table_args__ = (
        Index("ix_ledger_entry_account", "account", "txn_id"),
        Index(
            "uq_ledger_entry_idem_key",
            "idem_key",
            unique=True,
            sqlite_where=text("idem_key IS NOT NULL"),
            postgresql_where=text("idem_key IS NOT NULL"),
        ),
        CheckConstraint("amount_fen <> 0", name="amount_fen"),
    )


class AuditRecord(Base):
    """An append-only, hash-chained audit record (who, which channel, when, before,
    after, and why where a person says) of every status change, activation, PIN operation,
    balance move and break resolution (DOMAIN §3, §7).
    ``hash`` covers the record and ``prev_hash``; ``sscard audit verify`` recomputes it."""

    __tablename__ = "audit_record"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    business_date: Mapped[str] = mapped_column(String(8))
    card_no: Mapped[str] = mapped_column(String(9), default="")
    pan: Mapped[str] = mapped_column(String(19), default="")
    op: Mapped[str] = mapped_column(String(20))
    channel: Mapped[str] = mapped_column(String(10))
    actor: Mapped[str] = mapped_column(String(40))
    ref: Mapped[str] = mapped_column(String(64), default="")
    before: Mapped[str] = mapped_column(String(60), default="")
    after: Mapped[str] = mapped_column(String(60), default="")
    #: free text the record needs beside its statuses (a break's resolution: why)
    detail: Mapped[str] = mapped_column(String(200), default="", server_default="")
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))

    __table_args__ = (
        Index("ix_audit_record_card_no", "card_no"),
        Index("ix_audit_record_pan", "pan"),
    )


class DisbBatch(Base):
    """A bureau's DISB file (ICD §5.10): one batch of one benefit type, paid on its business
    date once funded (STMT ``DISB/<batch_no>``, DOMAIN §6). ``status``: ``awaiting_funds``,
    ``funded`` (hub lines posted, partner lines forwarded), ``unfunded`` (``301`` on every
    line at the funding cut-off) or ``answered`` (DISBRSP written)."""

    __tablename__ = "disb_batch"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    bureau: Mapped[str] = mapped_column(String(8))
    batch_no: Mapped[str] = mapped_column(String(20))
    file_id: Mapped[int] = mapped_column(ForeignKey("received_file.id"))
    business_date: Mapped[str] = mapped_column(String(8))
    benefit_type: Mapped[str] = mapped_column(String(3))
    line_count: Mapped[int] = mapped_column(Integer)
    total_fen: Mapped[int] = mapped_column(BigInteger)
    funded_fen: Mapped[int] = mapped_column(BigInteger, default=0)
    status: Mapped[str] = mapped_column(String(16))
    funded_date: Mapped[str | None] = mapped_column(String(8))
    answered_date: Mapped[str | None] = mapped_column(String(8))

    __table_args__ = (
        Index("uq_disb_batch_bureau_batch_no", "bureau", "batch_no", unique=True),
        Index("ix_disb_batch_batch_no", "batch_no"),
        one_of("status", ("awaiting_funds", "funded", "unfunded", "answered")),
    )


class DisbLine(Base):
    """A DISB line and its outcome: ``result`` ``0000`` credited, a §6 code, or NULL while
    it waits for funding or a partner bank's answer (``partner``, ``partner_key``)."""

    __tablename__ = "disb_line"

    batch_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    seq: Mapped[int] = mapped_column(Integer, primary_key=True)
    bureau: Mapped[str] = mapped_column(String(8))
    #: as the line had it; of a longer one the first 64 characters
    pay_no: Mapped[str] = mapped_column(String(64))
    #: its pay_no counts as used (a ``209`` for a later line); false for a line with the
    #: wrong number of fields, which has no key (decision 117)
    keyed: Mapped[bool] = mapped_column(default=True, server_default=true())
    pan: Mapped[str] = mapped_column(String(19))
    amount_fen: Mapped[int] = mapped_column(BigInteger)
    result: Mapped[str | None] = mapped_column(String(4))
    credited_fen: Mapped[int] = mapped_column(BigInteger, default=0)
    posted_time: Mapped[str | None] = mapped_column(String(14))
    bank_ref: Mapped[str | None] = mapped_column(String(30))
    partner: Mapped[str | None] = mapped_column(String(4))
    partner_key: Mapped[str | None] = mapped_column(String(30))
    partner_request: Mapped[str | None] = mapped_column(String(100))
    partner_sent_date: Mapped[str | None] = mapped_column(String(8))
    answered_date: Mapped[str | None] = mapped_column(String(8))

    __table_args__ = (
        Index("ix_disb_line_bureau_pay_no", "bureau", "pay_no"),
        Index(
            "ix_disb_line_partner_key",
            "partner_key",
            unique=True,
            sqlite_where=text("partner_key IS NOT NULL"),
            postgresql_where=text("partner_key IS NOT NULL"),
        ),
    )


class StatementLine(Base):
    """A line of the payment system's STMT (ICD §5.11), posted once whatever file brings
    it: ``kind`` ``DISB`` (funding), ``RET`` (return), ``PTN`` (partner settlement) or
    ``UNIDENTIFIED`` (R09 until resolved by hand)."""

    __tablename__ = "statement_line"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    sender: Mapped[str] = mapped_column(String(8))
    txn_ref: Mapped[str] = mapped_column(String(30))
    file_id: Mapped[int] = mapped_column(ForeignKey("received_file.id"))
    business_date: Mapped[str] = mapped_column(String(8))
    value_date: Mapped[str] = mapped_column(String(8))
    dc: Mapped[str] = mapped_column(String(1))
    amount_fen: Mapped[int] = mapped_column(BigInteger)
    memo: Mapped[str] = mapped_column(String(100), default="")
    kind: Mapped[str] = mapped_column(String(12))
    bureau: Mapped[str | None] = mapped_column(String(8))
    batch_no: Mapped[str | None] = mapped_column(String(20))
    bank_code: Mapped[str | None] = mapped_column(String(4))
    posted: Mapped[bool] = mapped_column(default=False)

    __table_args__ = (
        Index("uq_statement_line_sender_txn_ref", "sender", "txn_ref", unique=True),
        Index("ix_statement_line_batch", "batch_no"),
    )


class ReconBatch(Base):
    """A batch's reconciliation as of the end of a business date (ICD §5.12, DOMAIN §7):
    the figures RECON reports, kept so a past date gives the same file byte for byte."""

    __tablename__ = "recon_batch"

    bureau: Mapped[str] = mapped_column(String(8), primary_key=True)
    business_date: Mapped[str] = mapped_column(String(8), primary_key=True)
    batch_no: Mapped[str] = mapped_column(String(20), primary_key=True)
    benefit_type: Mapped[str] = mapped_column(String(3))
    instructed_count: Mapped[int] = mapped_column(Integer)
    instructed_fen: Mapped[int] = mapped_column(BigInteger)
    credited_count: Mapped[int] = mapped_column(Integer)
    credited_fen: Mapped[int] = mapped_column(BigInteger)
    failed_count: Mapped[int] = mapped_column(Integer)
    failed_fen: Mapped[int] = mapped_column(BigInteger)
    funded_fen: Mapped[int] = mapped_column(BigInteger)
    returned_fen: Mapped[int] = mapped_column(BigInteger)
    partner_fen: Mapped[int] = mapped_column(BigInteger)
    partner_settled_fen: Mapped[int] = mapped_column(BigInteger)
    difference_fen: Mapped[int] = mapped_column(BigInteger)
    status: Mapped[str] = mapped_column(String(8))
    break_reason: Mapped[str] = mapped_column(String(3), default="")


class ReconBreak(Base):
    """An unmatched item (DOMAIN §7): found on ``first_date``, carried forward every
    business day until it matches (``matched_date``) or a person resolves it (who, when,
    why)."""

    __tablename__ = "recon_break"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    bureau: Mapped[str] = mapped_column(String(8), default="")
    batch_no: Mapped[str] = mapped_column(String(20), default="")
    #: a batch's R-code, or R09 with the statement line's id in ``ref``
    reason: Mapped[str] = mapped_column(String(3))
    ref: Mapped[str] = mapped_column(String(40), default="")
    amount_fen: Mapped[int] = mapped_column(BigInteger, default=0)
    first_date: Mapped[str] = mapped_column(String(8))
    last_date: Mapped[str] = mapped_column(String(8))
    matched_date: Mapped[str | None] = mapped_column(String(8))
    resolved_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    resolved_by: Mapped[str | None] = mapped_column(String(40))
    resolution: Mapped[str | None] = mapped_column(String(200))

    __table_args__ = (
        Index("uq_recon_break_item", "bureau", "batch_no", "reason", "ref", unique=True),
    )


class ReconBreakDay(Base):
    """A batch's item as one business date's reconciliation found it: its amount that
    day, so the reports of a past date show what was known then (ICD §5.12)."""

    __tablename__ = "recon_break_day"

    break_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    business_date: Mapped[str] = mapped_column(String(8), primary_key=True)
    amount_fen: Mapped[int] = mapped_column(BigInteger)


class DisbForward(Base):
    """A DISB line for an account at a partner bank, forwarded to that bank under the hub's
    own pay_no (``partner_key``) in a DISB file of the hub's (ICD §5.10): what the bank
    needs of the line, kept only for these lines."""

    __tablename__ = "disb_forward"

    partner_key: Mapped[str] = mapped_column(String(30), primary_key=True)
    batch_id: Mapped[int] = mapped_column(Integer)
    seq: Mapped[int] = mapped_column(Integer)
    bank_code: Mapped[str] = mapped_column(String(4))
    id_no: Mapped[str] = mapped_column(String(18))
    name: Mapped[str] = mapped_column(String(30))
    card_no: Mapped[str] = mapped_column(String(9))
    pan: Mapped[str] = mapped_column(String(19))
    amount_fen: Mapped[int] = mapped_column(BigInteger)
    benefit_type: Mapped[str] = mapped_column(String(3))
    period: Mapped[str] = mapped_column(String(6))
    memo: Mapped[str] = mapped_column(String(100), default="")

    __table_args__ = (Index("ix_disb_forward_bank", "bank_code"),)
