"""Every interface file type of ICD §5, declared once as data.

A :class:`Layout` lists its fields in file order (after ``D|SEQ|`` in delimited files,
after the record type and the 8-byte seq in fixed-width files). The codec in
:mod:`schemas.codec` reads and writes every layout from these declarations alone;
services add only the rules that need more than one file line (cross-field checks
against configuration or the database).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Literal

from schemas.states import CardOp, ChannelOp, FailStage, Result

Presence = Literal["M", "O", "C"]
Kind = Literal["text", "date", "month", "time", "amount", "signed_amount", "count"]
Framing = Literal["delimited", "fixed"]

KEY = r"[0-9A-Za-z]{1,30}"
#: what a response says in place of a request's key that is no key (docs/decisions.md 36)
NOT_A_KEY = "INVALID"
_KEY_RE = re.compile(KEY)


def answered_key(value: str) -> str:
    """The request's key as its response line repeats it: the key itself, or
    :data:`NOT_A_KEY` when the request's value is not a key (ICD §4.2: empty, longer than
    30, or other than ``[0-9A-Za-z]``), which no response could carry; the line's SEQ says
    which request line it answers."""
    return value if _KEY_RE.fullmatch(value) else NOT_A_KEY


CARD_NO = r"[0-9A-Z]{9}"
PAN = r"[0-9]{16,19}"
ID_NO = r"[0-9A-Z]{1,18}"
BANK_CODE = r"B[0-9]{3}"
CARD_ID_CODE = r"[0-9]{6}D156000005[0-9A-F]{16}"
HEX = r"[0-9A-Fa-f]+"
#: free text a delimited file can carry: no `|`, CR, LF or other control character
WRITABLE = r"[^|\x00-\x1f\x7f]+"

LINE_CODES = (
    "E101 E102 E103 E104 E105 E106 E107 E108 E109 E110 E111 E112 E113 E114 E115 E116 "
    "E117 E118 E119 E120 E121 E130 E131 E132 E140"
).split()
MONEY_CODES = "103 104 105 106 140 208 209 301".split()
#: a response may answer a DISB line with any line or money code (ICD §5.10)
DISB_RESULT_CODES = (*MONEY_CODES, *LINE_CODES)
ETHNICITY_CODES = (*tuple(f"{n:02d}" for n in range(1, 57)), "97", "98")


@dataclass(frozen=True)
class Cond:
    """When a ``C`` field must be filled.

    The field is required when the value of ``field`` is in ``values`` (or not in it,
    with ``negate``); outside the condition it must be empty, unless ``otherwise`` is
    ``"optional"`` (as for the photo of an ``05``–``07`` application, ICD §5.1).
    """

    field: str
    values: tuple[str, ...]
    negate: bool = False
    otherwise: Literal["forbidden", "optional"] = "forbidden"


@dataclass(frozen=True)
class Field:
    """One field: presence, type, limits and the reason code a failure gets (ICD §4.2)."""

    name: str
    presence: Presence
    kind: Kind = "text"
    code: str = "E116"
    pattern: str | None = None
    values: tuple[str, ...] = ()
    max_bytes: int | None = None
    width: int | None = None
    numeric: bool = False
    cond: Cond | None = None
    min_fen: int = 0
    #: a value the hub may read while processing the file, never keep: its copy of the
    #: file holds ``*`` instead (a PIN block, decision 100)
    secret: bool = False

    @property
    def byte_limit(self) -> int | None:
        """The GB18030 byte limit: the fixed width, or ``max_bytes`` in delimited files."""
        return self.width if self.width is not None else self.max_bytes


@dataclass(frozen=True)
class Layout:
    """One file type: its fields and how they are framed (ICD §4)."""

    type: str
    framing: Framing
    fields: tuple[Field, ...]
    key: str | None = None
    amount_field: str | None = None
    record_length: int | None = None
    description: str = ""
    names: tuple[str, ...] = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "names", tuple(f.name for f in self.fields))
        if self.framing == "fixed":
            total = 1 + 8 + sum(f.width or 0 for f in self.fields)
            if total != self.record_length:
                raise ValueError(f"{self.type}: widths add up to {total}, not {self.record_length}")
            if self.secrets:
                raise ValueError(f"{self.type}: secret fields are masked in delimited files only")

    @property
    def secrets(self) -> tuple[int, ...]:
        """The positions of the fields the hub never keeps (:attr:`Field.secret`)."""
        return tuple(i for i, f in enumerate(self.fields) if f.secret)

    def index(self, name: str) -> int:
        return self.names.index(name)

    def field(self, name: str) -> Field:
        return self.fields[self.index(name)]


def _key(name: str, code: str = "E116") -> Field:
    return Field(name, "M", pattern=KEY, code=code)


def _result(values: tuple[str, ...]) -> Field:
    return Field("result", "M", values=values)


def _reason(
    on: tuple[str, ...], negate: bool = False, codes: tuple[str, ...] = ()
) -> tuple[Field, Field]:
    cond = Cond("result", on, negate=negate)
    return (
        Field("reason_code", "C", values=codes or tuple(LINE_CODES), cond=cond),
        Field("reason_text", "C", max_bytes=200, cond=cond),
    )


APPLY = Layout(
    "APPLY",
    "delimited",
    (
        _key("app_no"),
        Field("app_type", "M", values=("01", "05", "06", "07"), code="E117"),
        Field("id_type", "M", values=tuple(f"{n:02d}" for n in range(1, 9)), code="E115"),
        Field("id_no", "M", pattern=ID_NO, code="E101"),
        Field("id_valid_to", "M", kind="date", code="E115"),
        Field("name", "M", max_bytes=30, code="E104"),
        Field("gender", "M", values=("1", "2"), code="E103"),
        Field("ethnicity", "M", values=ETHNICITY_CODES, code="E115"),
        Field("birth_date", "M", kind="date", code="E102"),
        Field("nationality", "M", pattern=r"[A-Z]{3}", code="E115"),
        Field(
            "occupation",
            "O",
            values=("1", "2", "3", "4", "5", "6", "7", "8", "X", "Y"),
            code="E115",
        ),
        Field("mobile", "M", pattern=r"1[0-9]{10}", code="E114"),
        Field("region_code", "M", pattern=r"[0-9]{6}", code="E112"),
        Field("bank_code", "M", pattern=BANK_CODE, code="E111"),
        Field("card_no", "M", pattern=CARD_NO, code="E105"),
        Field(
            "old_card_no",
            "C",
            pattern=CARD_NO,
            code="E109",
            cond=Cond("app_type", ("05", "06", "07")),
        ),
        Field(
            "keep_account",
            "C",
            values=("0", "1"),
            code="E110",
            cond=Cond("app_type", ("05", "06", "07")),
        ),
        Field(
            "replace_reason",
            "C",
            values=("1", "2", "3"),
            code="E118",
            cond=Cond("app_type", ("06",)),
        ),
        Field(
            "photo",
            "C",
            pattern=r"[0-9A-Za-z_-]{1,36}\.jpg",
            code="E113",
            cond=Cond("app_type", ("01",), otherwise="optional"),
        ),
        Field("address", "O", max_bytes=100),
    ),
    key="app_no",
    description="card applications (bureau → hub), ICD §5.1",
)

APPLYRSP = Layout(
    "APPLYRSP",
    "delimited",
    (_key("app_no"), _result(("00", "01")), *_reason(("01",))),
    key="app_no",
    description="intake result (hub → bureau), ICD §5.2",
)

_MADE = Cond("fail_stage", (FailStage.MADE,))
_FAILED = Cond("fail_stage", (FailStage.BANK, FailStage.FACTORY))
_HAS_PAN = Cond("fail_stage", (FailStage.MADE, FailStage.FACTORY))

CARDRSP = Layout(
    "CARDRSP",
    "delimited",
    (
        _key("app_no"),
        Field("card_no", "M", pattern=CARD_NO, code="E105"),
        Field("id_no", "M", pattern=ID_NO, code="E101"),
        Field("name", "M", max_bytes=30, code="E104"),
        Field("issue_date", "C", kind="date", cond=_MADE),
        Field("expiry_date", "C", kind="date", cond=_MADE),
        Field("card_id_code", "C", pattern=CARD_ID_CODE, cond=_MADE),
        Field("atr", "C", pattern=HEX, max_bytes=40, cond=_MADE),
        Field("bank_code", "M", pattern=BANK_CODE, code="E111"),
        Field("pan", "C", pattern=PAN, cond=_HAS_PAN),
        Field("pan_seq", "C", pattern=r"[0-9]{2}", cond=_HAS_PAN),
        Field("box_no", "C", max_bytes=20, cond=_MADE),
        Field("fail_stage", "M", values=tuple(FailStage)),
        Field(
            "reason_code", "C", pattern=r"E[0-9]{3}|M[0-9]{3}|[0-9]{3}", max_bytes=4, cond=_FAILED
        ),
        Field("reason_text", "C", max_bytes=200, cond=_FAILED),
    ),
    key="app_no",
    description="production return (hub → bureau), ICD §5.3",
)

ACCTOPEN = Layout(
    "ACCTOPEN",
    "delimited",
    (
        _key("req_no"),
        _key("app_no"),
        Field("id_type", "M", values=tuple(f"{n:02d}" for n in range(1, 9)), code="E115"),
        Field("id_no", "M", pattern=ID_NO, code="E101"),
        Field("id_valid_to", "M", kind="date", code="E115"),
        Field("name", "M", max_bytes=30, code="E104"),
        Field("gender", "M", values=("1", "2"), code="E103"),
        Field("birth_date", "M", kind="date", code="E102"),
        Field("nationality", "M", pattern=r"[A-Z]{3}", code="E115"),
        Field(
            "occupation",
            "O",
            values=("1", "2", "3", "4", "5", "6", "7", "8", "X", "Y"),
            code="E115",
        ),
        Field("mobile", "M", pattern=r"1[0-9]{10}", code="E114"),
        Field("address", "O", max_bytes=100),
        Field("card_no", "M", pattern=CARD_NO, code="E105"),
        # C on "is a replacement", which the line itself does not carry: checked by the sender.
        Field("old_pan", "C", pattern=PAN, code="E119"),
        Field("keep_account", "C", values=("0", "1"), code="E110"),
    ),
    key="req_no",
    description="account opening at a partner bank (hub → partner), ICD §5.4",
)

ACCTOPENRSP = Layout(
    "ACCTOPENRSP",
    "delimited",
    (
        _key("req_no"),
        _result(("00", "01")),
        # a partner's own refusal code passes to the bureau unchanged (ICD §5.4; decision
        # 28): any E code, which CARDRSP can carry, not only those of ICD §6
        Field("reason_code", "C", pattern=r"E[0-9]{3}", cond=Cond("result", ("01",))),
        Field("reason_text", "C", max_bytes=200, cond=Cond("result", ("01",))),
        Field("pan", "C", pattern=PAN, code="E119", cond=Cond("result", ("00",))),
        Field("pan_seq", "C", pattern=r"[0-9]{2}", cond=Cond("result", ("00",))),
    ),
    key="req_no",
    description="partner's answer to ACCTOPEN (partner → hub), ICD §5.4",
)

PERSO = Layout(
    "PERSO",
    "fixed",
    (
        Field("card_no", "M", pattern=CARD_NO, width=9),
        Field("id_type", "M", pattern=r"[0-9]{2}", width=2),
        Field("id_no", "M", pattern=ID_NO, width=18),
        Field("name", "M", width=30),
        Field("gender", "M", values=("1", "2"), width=1),
        Field("ethnicity", "M", values=ETHNICITY_CODES, width=2),
        Field("birth_date", "M", kind="date", width=8, numeric=True),
        Field("region_code", "M", pattern=r"[0-9]{6}", width=6, numeric=True),
        Field("issue_date", "M", kind="date", width=8, numeric=True),
        Field("expiry_date", "M", kind="date", width=8, numeric=True),
        Field("bank_code", "M", pattern=BANK_CODE, width=4),
        Field("pan", "M", pattern=PAN, width=19),
        Field("pan_seq", "M", pattern=r"[0-9]{2}", width=2, numeric=True),
        Field("photo", "O", pattern=r"[0-9A-Za-z_-]{1,36}\.jpg", width=40),
    ),
    key="card_no",
    record_length=166,
    description="personalisation data (hub → factory), fixed width, ICD §5.5",
)

PERSORSP = Layout(
    "PERSORSP",
    "fixed",
    (
        Field("card_no", "M", pattern=CARD_NO, width=9),
        Field("pan", "M", pattern=PAN, width=19),
        Field("result", "M", values=("00", "01"), width=2),
        Field("reason_code", "C", pattern=r"M[0-9]{3}", width=4, cond=Cond("result", ("01",))),
        Field("card_id_code", "C", pattern=CARD_ID_CODE, width=32, cond=Cond("result", ("00",))),
        Field("atr", "C", pattern=HEX, width=40, cond=Cond("result", ("00",))),
        # free text, but CARDRSP repeats it: never `|` or a control character (ICD §4.1)
        Field("box_no", "C", pattern=WRITABLE, width=20, cond=Cond("result", ("00",))),
        Field("made_date", "M", kind="date", width=8, numeric=True),
    ),
    key="card_no",
    record_length=143,
    description="production result (factory → hub), fixed width, ICD §5.6",
)

STATUS = Layout(
    "STATUS",
    "delimited",
    (
        _key("req_no"),
        Field("op", "M", values=tuple(CardOp), code="E117"),
        Field("card_no", "M", pattern=CARD_NO, code="E105"),
        Field("id_no", "M", pattern=ID_NO, code="E101"),
        Field("name", "M", max_bytes=30, code="E104"),
        Field("op_time", "M", kind="time"),
        Field("channel", "M", pattern=r"[0-9A-Za-z]{1,10}"),
        Field("reason", "O", max_bytes=100),
    ),
    key="req_no",
    description="card status from the bureau (bureau → hub, hub → partner), ICD §5.7",
)

STATUSRSP = Layout(
    "STATUSRSP",
    "delimited",
    (_key("req_no"), _result(tuple(Result)), *_reason((Result.REFUSED,))),
    key="req_no",
    description="answer to STATUS, ICD §5.7",
)

BANKEVT = Layout(
    "BANKEVT",
    "delimited",
    (
        _key("evt_no"),
        Field("op", "M", values=(*CardOp, "21", "22", "23"), code="E117"),
        Field("card_no", "M", pattern=CARD_NO, code="E105"),
        Field("id_no", "M", pattern=ID_NO, code="E101"),
        Field("op_time", "M", kind="time"),
        Field("channel", "M", pattern=r"[0-9A-Za-z]{1,10}"),
    ),
    key="evt_no",
    description="events the bureau must learn (hub → bureau, partner → hub), ICD §5.8",
)

_IDENTITY = Cond("op", (ChannelOp.E1, ChannelOp.A1, ChannelOp.P1, ChannelOp.P2, ChannelOp.L2))

CHANNEL = Layout(
    "CHANNEL",
    "delimited",
    (
        _key("req_no"),
        Field("op", "M", values=tuple(ChannelOp), code="E117"),
        Field("pan", "M", pattern=PAN, code="E119"),
        Field("card_no", "M", pattern=CARD_NO, code="E105"),
        Field("id_no", "C", pattern=ID_NO, code="E132", cond=_IDENTITY),
        Field("name", "C", max_bytes=30, code="E132", cond=_IDENTITY),
        Field(
            "pin_block",
            "C",
            pattern=r"[0-9a-f]+",
            code="E130",
            # O for E1 (ICD §5.9); a block on another op is refused by the servicing step
            cond=Cond("op", (ChannelOp.A1, ChannelOp.P1), otherwise="optional"),
            secret=True,
        ),
        Field("op_time", "M", kind="time"),
        Field("branch", "M", pattern=r"[0-9A-Za-z]{1,20}"),
        Field("teller", "M", pattern=r"[0-9A-Za-z]{1,20}"),
    ),
    key="req_no",
    description="requests from bank channels (channel → hub), ICD §5.9",
)

CHANNELRSP = Layout(
    "CHANNELRSP",
    "delimited",
    (_key("req_no"), _result(tuple(Result)), *_reason((Result.REFUSED,))),
    key="req_no",
    description="answer to CHANNEL, ICD §5.9",
)

DISB = Layout(
    "DISB",
    "delimited",
    (
        _key("pay_no"),
        Field("id_no", "M", pattern=ID_NO, code="104"),
        Field("name", "M", max_bytes=30, code="105"),
        Field("card_no", "M", pattern=CARD_NO, code="E105"),
        Field("pan", "M", pattern=PAN, code="103"),
        Field("amount", "M", kind="amount", code="208", min_fen=1),
        Field("benefit_type", "M", values=("110", "210", "310", "410", "510", "900"), code="E117"),
        Field("period", "M", kind="month"),
        Field("memo", "O", max_bytes=100),
    ),
    key="pay_no",
    amount_field="amount",
    description="benefit payments (bureau → hub, hub → partner), ICD §5.10",
)

_CREDITED = Cond("result", ("0000",))
_NOT_CREDITED = Cond("result", ("0000",), negate=True)

DISBRSP = Layout(
    "DISBRSP",
    "delimited",
    (
        _key("pay_no"),
        Field("result", "M", values=("0000", *DISB_RESULT_CODES)),
        Field("credited_amount", "M", kind="amount"),
        Field("posted_time", "C", kind="time", cond=_CREDITED),
        Field("bank_ref", "C", pattern=KEY, cond=_CREDITED),
        Field("reason_code", "C", values=DISB_RESULT_CODES, cond=_NOT_CREDITED),
        Field("reason_text", "C", max_bytes=200, cond=_NOT_CREDITED),
    ),
    key="pay_no",
    amount_field="credited_amount",
    description="payment results (hub → bureau, partner → hub), ICD §5.10",
)

STMT = Layout(
    "STMT",
    "delimited",
    (
        _key("txn_ref"),
        Field("value_date", "M", kind="date"),
        Field("dc", "M", values=("C", "D")),
        Field("amount", "M", kind="amount", min_fen=1),
        Field("counterparty_account", "O", pattern=r"[0-9A-Za-z-]{1,34}"),
        Field("counterparty_name", "O", max_bytes=100),
        Field("memo", "O", max_bytes=100),
    ),
    key="txn_ref",
    amount_field="amount",
    description="clearing-account statement (payment system → hub), ICD §5.11",
)

_AMOUNTS = (
    "instructed_amount credited_amount failed_amount funded_amount returned_amount "
    "partner_amount partner_settled_amount"
).split()

RECON = Layout(
    "RECON",
    "delimited",
    (
        Field("batch_no", "M", pattern=r"[0-9A-Za-z]{1,20}"),
        Field("benefit_type", "M", values=("110", "210", "310", "410", "510", "900"), code="E117"),
        Field("instructed_count", "M", kind="count"),
        Field("instructed_amount", "M", kind="amount"),
        Field("credited_count", "M", kind="count"),
        Field("credited_amount", "M", kind="amount"),
        Field("failed_count", "M", kind="count"),
        Field("failed_amount", "M", kind="amount"),
        Field("funded_amount", "M", kind="amount"),
        Field("returned_amount", "M", kind="amount"),
        Field("partner_amount", "M", kind="amount"),
        Field("partner_settled_amount", "M", kind="amount"),
        Field("difference", "M", kind="signed_amount"),
        Field("status", "M", values=("BALANCED", "PENDING", "BREAK")),
        Field(
            "break_reason",
            "C",
            values=tuple(f"R0{n}" for n in range(1, 10)),
            cond=Cond("status", ("BREAK",)),
        ),
    ),
    key="batch_no",
    description="daily reconciliation (hub → bureau), ICD §5.12",
)

LAYOUTS: dict[str, Layout] = {
    layout.type: layout
    for layout in (
        APPLY,
        APPLYRSP,
        CARDRSP,
        ACCTOPEN,
        ACCTOPENRSP,
        PERSO,
        PERSORSP,
        STATUS,
        STATUSRSP,
        BANKEVT,
        CHANNEL,
        CHANNELRSP,
        DISB,
        DISBRSP,
        STMT,
        RECON,
    )
}

#: request types whose business date may not lie in the past (ICD §3)
REQUEST_TYPES = frozenset({"APPLY", "STATUS", "CHANNEL", "DISB"})
