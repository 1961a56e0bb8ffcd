"""Benefit payments in the sandbox: the counterparties of ICD §5.10–§5.12, answering exactly
as the ICD says, its failures included.

**The bureau** (:func:`make_disb_file`) writes a day's DISB for accounts the caller takes
from the hub (:class:`PayeeAccount`). Most lines are good (amounts in integer fen, written
as yuan with two decimals; a pension between 1,500.00 and 6,000.00 yuan); a share of lines
is each wrong in exactly one way, and :attr:`DisbFile.expected` holds the answer a correct
hub gives each line (ICD §5.10 order of checks: the field rules in layout order, then
``103``, ``104``, ``105``, ``106``):

================  ======  ============================================================
kind              answer  how the line is wrong
================  ======  ============================================================
``repeat``        209     the pay_no of an earlier line of the same file
``earlier``       209     a pay_no of an earlier file (``repeats_from``), any content
``zero_amount``   208     amount ``0.00``
``benefit_type``  E117    another benefit_type than the file's (line 1 carries it)
``unknown_pan``   103     a Luhn-valid PAN of the hub's BIN with a serial at the top of
                          its range, which the hub never issued
``id_no``         104     a valid resident ID of somebody else
``name``          105     another name
``blocked``       106     a hub account ``closed`` or ``credit_blocked``
================  ======  ============================================================

A good line pays a ``preopened`` or ``active`` account (DOMAIN §3: credits are accepted
while preopened, the default): ``0000`` at the hub, ``partner`` for a partner bank's account
(the hub forwards it, the partner's answer decides). Account faults (104–106) use hub
accounts only. :func:`read_disbrsp` and :func:`read_recon` read the hub's answers as a
bureau's parser written from the ICD alone would.

**The payment system** (:class:`PaymentSystem`, :func:`make_stmt_file`) writes the hub's
clearing-account statement (ICD §5.11): ``DISB/<batch_no>`` credits funding a batch,
``RET/<batch_no>`` and ``PTN/<bank>/<batch_no>`` debits, and items with any other memo
(unidentified). A resent statement (:meth:`PaymentSystem.resend`) carries the same lines,
the same txn_refs, in a new file.

**The partner bank** (:class:`PartnerPayments`) answers the DISB files the hub forwards to
it with DISBRSP, like :class:`sandbox.servicing.PartnerServicing` answers STATUS.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import math
import os
import random
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from stdnum import luhn

from sandbox.people import make_name, make_person, parse_date
from sandbox.servicing import publish_file
from schemas.codec import DelimitedReader, Header, amount_to_fen, fen_to_amount, write_delimited
from schemas.codes import reason_text
from schemas.files import NAME_PATTERN, Control, FileLevelError, FileName
from schemas.layouts import DISB, DISBRSP, RECON, STMT, Layout, answered_key

log = logging.getLogger(__name__)

TZ = ZoneInfo("Asia/Shanghai")
HUB = "B001"
BENEFIT_TYPES = ("110", "210", "310", "410", "510", "900")
#: what each benefit type is called in a line's memo, and a realistic amount range in fen
BENEFITS: dict[str, tuple[str, int, int]] = {
    "110": ("基本养老金", 150_000, 600_000),
    "210": ("失业保险金", 150_000, 250_000),
    "310": ("医疗报销", 5_000, 2_000_000),
    "410": ("工伤待遇", 200_000, 800_000),
    "510": ("生育津贴", 300_000, 3_000_000),
    "900": ("补贴", 5_000, 100_000),
}
CREDITABLE = frozenset({"preopened", "active"})
NOT_CREDITABLE = frozenset({"closed", "credit_blocked"})
ACCOUNT_STATUSES = CREDITABLE | NOT_CREDITABLE
#: the faults :func:`make_disb_file` plants, and the answer each one gets (ICD §5.10, §6)
FAULTS: dict[str, str] = {
    "repeat": "209",
    "earlier": "209",
    "zero_amount": "208",
    "benefit_type": "E117",
    "unknown_pan": "103",
    "id_no": "104",
    "name": "105",
    "blocked": "106",
}
#: the share of lines of each planted kind when no ``mix`` is given
DEFAULT_MIX: dict[str, float] = {
    "blocked": 0.01,
    "name": 0.01,
    "id_no": 0.01,
    "unknown_pan": 0.01,
    "zero_amount": 0.005,
    "benefit_type": 0.005,
    "repeat": 0.005,
}
#: the expected answer of a good line for a partner bank's account
PARTNER = "partner"
#: refusals a partner bank gives after its own checks, and their weights
PARTNER_FAILURES: dict[str, float] = {"103": 0.2, "104": 0.2, "105": 0.3, "106": 0.3}


class PaymentsFileError(ValueError):
    """A file the hub wrote breaks its layout or header (ICD §5.10, §5.12); the message
    names lines and fields, never values."""


# --------------------------------------------------------------------------- the bureau


@dataclass(frozen=True)
class PayeeAccount:
    """An account a DISB line may pay, as the hub holds it: ``status`` one of
    ``preopened``, ``active``, ``closed``, ``credit_blocked`` (DOMAIN §3); ``bank_code``
    the hub's or a partner bank's."""

    pan: str
    card_no: str
    id_no: str
    name: str
    bank_code: str
    status: str


@dataclass(frozen=True)
class DisbFile:
    """A bureau's DISB file and the answer a correct hub gives each line.

    ``rows`` are the fields after ``D|SEQ|``; ``expected[i]`` is ``0000``, ``partner`` or a
    §6 code for ``rows[i]``; ``kinds[i]`` the planted fault (a key of :data:`FAULTS`) or
    None for a good line."""

    name: str
    data: bytes
    control: bytes
    header: Header
    rows: tuple[tuple[str, ...], ...]
    expected: tuple[str, ...]
    kinds: tuple[str | None, ...]

    @property
    def batch_no(self) -> str:
        return self.header.batch_no

    @property
    def pay_nos(self) -> tuple[str, ...]:
        return tuple(row[0] for row in self.rows)

    @property
    def total_fen(self) -> int:
        return self.header.total_fen

    def publish(self, directory: Path) -> list[Path]:
        """Deliver into a local pickup folder by ICD §2 (data, then its ``.ok``)."""
        return publish_file(directory, self.name, self.data, self.control)


def pay_no_for(bureau: str, business_date: str, seq: int, position: int) -> str:
    """The bureau's pay_no of line ``position`` (from 1) of its DISB ``seq`` of a date:
    unique per bureau for ever as long as (date, SEQ) is (ICD §4.2), at most 24
    characters, e.g. ``R44010020261122001000017``."""
    return f"{bureau}{business_date}{seq:03d}{position:06d}"


def _plan(
    rng: random.Random, size: int, mix: Mapping[str, float], possible: Collection[str]
) -> list[str | None]:
    counts: dict[str, int] = {}
    for kind, share in mix.items():
        if kind not in FAULTS or kind == "earlier":
            raise ValueError(f"no fault kind {kind}; kinds: {', '.join(DEFAULT_MIX)}")
        if not 0 <= share <= 1:
            raise ValueError(f"share of {kind} must lie between 0 and 1")
        counts[kind] = math.floor(share * size + 0.5) if kind in possible else 0
    bad = sum(counts.values())
    if bad > size - 1:
        raise ValueError("planted faults leave no good line 1 (it carries the benefit_type)")
    rest: list[str | None] = [kind for kind, n in counts.items() for _ in range(n)]
    rest += [None] * (size - 1 - bad)
    rng.shuffle(rest)
    return [None, *rest]


def _unknown_pan(rng: random.Random, like: str, known: Collection[str]) -> str:
    """A Luhn-valid PAN of ``like``'s length and BIN (its first 6 digits) whose serial
    starts with ``99``: the hub numbers its accounts upwards and never got there."""
    middle = len(like) - 6 - 1 - 2
    while True:
        body = like[:6] + "99" + f"{rng.randrange(10**middle):0{middle}d}"
        pan = body + luhn.calc_check_digit(body)
        if pan not in known:
            return pan


def make_disb_file(
    accounts: Sequence[PayeeAccount],
    *,
    bureau: str = "R440100",
    hub: str = HUB,
    business_date: str,
    seq: int = 1,
    benefit_type: str = "110",
    period: str | None = None,
    size: int | None = None,
    seed: int | str = 0,
    mix: Mapping[str, float] | None = None,
    repeats_from: Iterable[str] = (),
    encoding: str = "GB18030",
) -> DisbFile:
    """A bureau's DISB of ``business_date`` (ICD §5.10) paying ``accounts``; see the module
    docs for the faults planted and the answers expected.

    ``size`` lines (default: one per account) plus one line per pay_no of ``repeats_from``
    (pay_nos of earlier files, each answered ``209``), at random places after line 1.
    ``mix`` gives the share of lines of each fault kind (default :data:`DEFAULT_MIX`,
    rounded, so a small file may have none); a kind the accounts cannot provide (no
    blocked hub account, no hub account at all) is left out of the default mix and refused
    in an explicit one. ``period`` defaults to the business date's ``YYYYMM``. BATCH_NO is
    ``D<date><seq>``. The same arguments give the same bytes."""
    if benefit_type not in BENEFITS:
        raise ValueError(f"benefit_type is one of {', '.join(BENEFIT_TYPES)}")
    for account in accounts:
        if account.status not in ACCOUNT_STATUSES:
            raise ValueError(f"account status is one of {', '.join(sorted(ACCOUNT_STATUSES))}")
    creditable = [a for a in accounts if a.status in CREDITABLE]
    if not creditable:
        raise ValueError("a DISB needs at least one preopened or active account")
    hub_good = [a for a in creditable if a.bank_code == hub]
    hub_blocked = [a for a in accounts if a.bank_code == hub and a.status in NOT_CREDITABLE]
    possible = {"repeat", "zero_amount", "benefit_type", "unknown_pan"}
    if hub_good:
        possible |= {"id_no", "name"}
    if hub_blocked:
        possible.add("blocked")
    if mix is not None:
        impossible = [
            k for k, share in mix.items() if share > 0 and k in FAULTS and k not in possible
        ]
        if impossible:
            raise ValueError(f"the accounts given cannot provide {', '.join(impossible)}")
    size = len(accounts) if size is None else size
    if size < 1:
        raise ValueError("a DISB made here has at least one line")
    period = period or business_date[:6]
    rng = random.Random(f"DISB|{bureau}|{business_date}|{seq}|{seed}")
    plan = _plan(rng, size, DEFAULT_MIX if mix is None else mix, possible)
    earlier = list(dict.fromkeys(repeats_from))
    for _ in earlier:
        plan.insert(rng.randrange(1, len(plan) + 1), "earlier")
    own = {pay_no_for(bureau, business_date, seq, i) for i in range(1, len(plan) + 1)}
    if own & set(earlier):
        raise ValueError("repeats_from holds a pay_no of this very file")
    label, low, high = BENEFITS[benefit_type]
    memo = f"{period[:4]}年{period[4:]}月{label}"
    order = list(creditable)
    rng.shuffle(order)
    known = {a.pan for a in accounts}
    hub_like = (hub_good or hub_blocked or creditable)[0].pan
    queue = iter(earlier)

    rows: list[tuple[str, ...]] = []
    expected: list[str] = []
    own_pay_nos: list[str] = []
    total = 0
    for position, kind in enumerate(plan, 1):
        account = order[(position - 1) % len(order)]
        pay_no = pay_no_for(bureau, business_date, seq, position)
        amount_fen = rng.randrange(low, high + 1)
        id_no, name, pan, line_type = account.id_no, account.name, account.pan, benefit_type
        if kind == "repeat":
            pay_no = rng.choice(own_pay_nos)
        elif kind == "earlier":
            pay_no = next(queue)
        elif kind == "zero_amount":
            amount_fen = 0
        elif kind == "benefit_type":
            line_type = rng.choice([t for t in BENEFIT_TYPES if t != benefit_type])
        elif kind == "unknown_pan":
            pan = _unknown_pan(rng, hub_like, known)
        elif kind in ("id_no", "name", "blocked"):
            account = rng.choice(hub_blocked if kind == "blocked" else hub_good)
            id_no, name, pan = account.id_no, account.name, account.pan
            if kind == "id_no":
                while id_no == account.id_no:
                    id_no = make_person(rng, business_date=business_date).id_no
            elif kind == "name":
                while name == account.name:
                    name = make_name(rng, rng.choice("12"))[0]
        if kind not in ("repeat", "earlier"):
            own_pay_nos.append(pay_no)
        total += amount_fen
        rows.append(
            (
                pay_no,
                id_no,
                name,
                account.card_no,
                pan,
                fen_to_amount(amount_fen),
                line_type,
                period,
                memo,
            )
        )
        if kind is not None:
            expected.append(FAULTS[kind])
        else:
            expected.append("0000" if account.bank_code == hub else PARTNER)

    header = Header(
        "DISB", bureau, hub, f"D{business_date}{seq:03d}", business_date, len(rows), total
    )
    out = io.BytesIO()
    write_delimited(out, DISB, header, rows, encoding)
    data = out.getvalue()
    name = str(FileName("DISB", bureau, hub, business_date, f"{seq:03d}"))
    return DisbFile(
        name,
        data,
        Control.for_bytes(name, data, len(rows)).render(),
        header,
        tuple(rows),
        tuple(expected),
        tuple(plan),
    )


def _read_lines(data: bytes, layout: Layout, encoding: str) -> tuple[Header, list[dict[str, str]]]:
    reader = DelimitedReader(data, layout, encoding)
    lines: list[dict[str, str]] = []
    for chunk in reader.chunks():
        broken = [f"line {r.line} {r.field} {r.code}" for r in chunk.rejections()]
        if broken:
            raise PaymentsFileError(
                f"{layout.type} lines break the layout: " + ", ".join(broken[:10])
            )
        for row in chunk.table.select([f.name for f in layout.fields]).to_pylist():
            lines.append({k: str(v) for k, v in row.items()})
    if reader.header.record_count != len(lines):
        raise PaymentsFileError(f"{layout.type} header RECORD_COUNT differs from its lines")
    return reader.header, lines


def _check_header(header: Header, **want: str | None) -> None:
    for what, value in want.items():
        if value is not None and getattr(header, what) != value:
            raise PaymentsFileError(f"{header.type} header {what.upper()} is not the expected one")


def read_disbrsp(
    data: bytes,
    encoding: str = "GB18030",
    *,
    batch_no: str | None = None,
    business_date: str | None = None,
    sender: str | None = None,
    receiver: str | None = None,
) -> list[dict[str, str]]:
    """The lines of a DISBRSP (ICD §5.10), one dict per line by field name, in file order.
    Framing errors raise :class:`FileLevelError` (F09 when TOTAL_AMOUNT is not the sum of
    credited_amount); a line breaking the layout, or a header BATCH_NO, BUSINESS_DATE,
    SENDER or RECEIVER other than the one given, :class:`PaymentsFileError`."""
    header, lines = _read_lines(data, DISBRSP, encoding)
    _check_header(
        header, batch_no=batch_no, business_date=business_date, sender=sender, receiver=receiver
    )
    return lines


def read_recon(
    data: bytes,
    encoding: str = "GB18030",
    *,
    business_date: str | None = None,
    sender: str | None = None,
    receiver: str | None = None,
) -> list[dict[str, str]]:
    """The lines of a RECON (ICD §5.12), one dict per batch by field name. Header and
    trailer counts must agree with the lines (F02), TOTAL_AMOUNT be ``0.00`` (F09), and the
    header's BUSINESS_DATE, SENDER and RECEIVER the ones given; each line's counts must add
    up (credited + failed ≤ instructed) and no batch appear twice
    (:class:`PaymentsFileError`)."""
    header, lines = _read_lines(data, RECON, encoding)
    _check_header(header, business_date=business_date, sender=sender, receiver=receiver)
    seen: set[str] = set()
    for i, line in enumerate(lines, 1):
        if line["batch_no"] in seen:
            raise PaymentsFileError(f"RECON line {i}: batch_no repeated")
        seen.add(line["batch_no"])
        if int(line["credited_count"]) + int(line["failed_count"]) > int(line["instructed_count"]):
            raise PaymentsFileError(f"RECON line {i}: credited and failed exceed instructed")
    return lines


# --------------------------------------------------------------------------- the payment system


@dataclass(frozen=True)
class StmtItem:
    """One STMT line (ICD §5.11); ``dc`` ``C`` or ``D``, ``amount_fen`` at least 1."""

    txn_ref: str
    value_date: str
    dc: str
    amount_fen: int
    memo: str
    counterparty_account: str = ""
    counterparty_name: str = ""

    def row(self) -> list[str]:
        return [
            self.txn_ref,
            self.value_date,
            self.dc,
            fen_to_amount(self.amount_fen),
            self.counterparty_account,
            self.counterparty_name,
            self.memo,
        ]


#: the bureau's fund account (社保基金专户) the payment system names on DISB and RET items
FUND_ACCOUNT = ("440100000100012345", "社会保险基金专户")


def partner_account(bank: str) -> tuple[str, str]:
    """The partner bank's clearing account as the payment system names it on PTN items."""
    return (f"{bank}-9000000001", f"合作银行{bank}清算户")


def funding(
    batch_no: str,
    amount_fen: int,
    txn_ref: str,
    value_date: str,
    *,
    counterparty: tuple[str, str] = FUND_ACCOUNT,
) -> StmtItem:
    """The bureau's fund account paying a DISB batch in: credit ``DISB/<batch_no>``."""
    return StmtItem(txn_ref, value_date, "C", amount_fen, f"DISB/{batch_no}", *counterparty)


def ret(
    batch_no: str,
    amount_fen: int,
    txn_ref: str,
    value_date: str,
    *,
    counterparty: tuple[str, str] = FUND_ACCOUNT,
) -> StmtItem:
    """A batch's failed amounts returned to the bureau: debit ``RET/<batch_no>``."""
    return StmtItem(txn_ref, value_date, "D", amount_fen, f"RET/{batch_no}", *counterparty)


def ptn(
    bank: str,
    batch_no: str,
    amount_fen: int,
    txn_ref: str,
    value_date: str,
    *,
    counterparty: tuple[str, str] | None = None,
) -> StmtItem:
    """The part of a batch credited at a partner bank, paid to it: debit
    ``PTN/<bank>/<batch_no>``."""
    account = counterparty if counterparty is not None else partner_account(bank)
    return StmtItem(txn_ref, value_date, "D", amount_fen, f"PTN/{bank}/{batch_no}", *account)


def unidentified(
    amount_fen: int,
    txn_ref: str,
    value_date: str,
    *,
    memo: str = "工资",
    dc: str = "C",
    counterparty: tuple[str, str] = ("440300000200067890", "某某科技有限公司"),
) -> StmtItem:
    """An item whose memo is none of the three forms (a salary, ``REFUND 123``…): the
    hub must leave it out of every batch and show it to finance (R09)."""
    return StmtItem(txn_ref, value_date, dc, amount_fen, memo, *counterparty)


def make_stmt_file(
    items: Sequence[StmtItem],
    *,
    sender: str = "P01",
    hub: str = HUB,
    business_date: str,
    seq: int = 1,
    encoding: str = "GB18030",
) -> tuple[str, bytes, bytes]:
    """The payment system's STMT (ICD §5.11): one line per item, TOTAL_AMOUNT the gross sum
    (credits and debits added), BATCH_NO ``M<date><seq>``. ``(name, data, control)``."""
    rows = [item.row() for item in items]
    total = sum(item.amount_fen for item in items)
    header = Header(
        "STMT", sender, hub, f"M{business_date}{seq:03d}", business_date, len(rows), total
    )
    out = io.BytesIO()
    write_delimited(out, STMT, header, rows, encoding)
    data = out.getvalue()
    name = str(FileName("STMT", sender, hub, business_date, f"{seq:03d}"))
    return name, data, Control.for_bytes(name, data, len(rows)).render()


@dataclass(frozen=True)
class Funding:
    """How the bureau funds a batch: in full, ``short_fen`` short, ``twice`` (the same
    amount under two txn_refs: R04/R06), in ``parts`` credits (all but the last of one
    amount, each under its own txn_ref: two equal credits of a batch that add up to its
    total look like a double posting, R06), or ``late`` (in the next statement, dated
    then)."""

    batch_no: str
    amount_fen: int
    short_fen: int = 0
    twice: bool = False
    late: bool = False
    parts: int = 1

    def amounts(self) -> list[int]:
        """The credits of this funding in one statement, in order."""
        amount = self.amount_fen - self.short_fen
        if amount < 1 or self.short_fen < 0:
            raise ValueError("a funding pays at least 0.01 and is short by 0 or more")
        if not 1 <= self.parts <= amount:
            raise ValueError("a funding comes in 1 to amount_fen parts")
        part = amount // self.parts
        split = [part] * (self.parts - 1) + [amount - part * (self.parts - 1)]
        return split * (2 if self.twice else 1)


def _item_json(item: StmtItem) -> list[Any]:
    return [
        item.txn_ref,
        item.value_date,
        item.dc,
        item.amount_fen,
        item.memo,
        item.counterparty_account,
        item.counterparty_name,
    ]


class PaymentSystem:
    """The bank's payment system writing the hub's clearing-account statement (ICD §5.11)
    into ``pickup`` by ICD §2. It remembers (in ``state_dir/payment_<code>.json`` when given)
    the SEQs and txn_refs it used, the fundings it holds back for the next statement, and
    every file it wrote, so that :meth:`resend` can repeat one."""

    def __init__(
        self,
        code: str = "P01",
        hub: str = HUB,
        *,
        pickup: Path,
        state_dir: Path | None = None,
        encoding: str = "GB18030",
    ) -> None:
        self.code = code
        self.hub = hub
        self.pickup = Path(pickup)
        self.encoding = encoding
        self.state_path = (
            Path(state_dir) / f"payment_{code}.json" if state_dir is not None else None
        )
        self._seqs: dict[str, int] = {}
        self._refs: dict[str, int] = {}
        self._late: list[tuple[str, int]] = []
        self._files: dict[str, tuple[str, list[StmtItem]]] = {}
        self._load()

    @property
    def files(self) -> dict[str, list[StmtItem]]:
        """Every statement written, by name: its items (a copy)."""
        return {name: list(items) for name, (_, items) in self._files.items()}

    @property
    def late(self) -> list[tuple[str, int]]:
        """Fundings ``(batch_no, amount_fen)`` held back for the next statement."""
        return list(self._late)

    def _load(self) -> None:
        if self.state_path is None or not self.state_path.exists():
            return
        state = json.loads(self.state_path.read_text(encoding="utf-8"))
        self._seqs = {k: int(v) for k, v in state["seqs"].items()}
        self._refs = {k: int(v) for k, v in state["refs"].items()}
        self._late = [(b, int(a)) for b, a in state["late"]]
        self._files = {
            name: (d, [StmtItem(*item) for item in items])
            for name, (d, items) in state["files"].items()
        }

    def _save(self) -> None:
        if self.state_path is None:
            return
        self.state_path.parent.mkdir(parents=True, exist_ok=True)
        part = self.state_path.with_name(self.state_path.name + ".part")
        state = {
            "seqs": self._seqs,
            "refs": self._refs,
            "late": [list(x) for x in self._late],
            "files": {
                name: [d, [_item_json(i) for i in items]]
                for name, (d, items) in self._files.items()
            },
        }
        part.write_text(json.dumps(state, ensure_ascii=False), encoding="utf-8")
        os.replace(part, self.state_path)

    def txn_ref(self, business_date: str) -> str:
        """A new txn_ref, unique for ever: ``<code><date><n>``, e.g. ``P0120261122000001``."""
        n = self._refs.get(business_date, 0) + 1
        self._refs[business_date] = n
        return f"{self.code}{business_date}{n:06d}"

    def _publish(self, business_date: str, items: list[StmtItem]) -> str:
        seq = self._seqs.get(business_date, 0) + 1
        if seq > 999:
            raise ValueError("SEQ runs from 001 to 999 per date (ICD §3)")
        name, data, control = make_stmt_file(
            items,
            sender=self.code,
            hub=self.hub,
            business_date=business_date,
            seq=seq,
            encoding=self.encoding,
        )
        self._seqs[business_date] = seq
        self._files[name] = (business_date, items)
        self._save()
        publish_file(self.pickup, name, data, control)
        log.info("%s written: %d items", name, len(items))
        return name

    def statement(
        self,
        business_date: str,
        *,
        fund: Sequence[Funding] = (),
        returns: Sequence[tuple[str, int]] = (),
        settle: Sequence[tuple[str, str, int]] = (),
        unidentified_items: Sequence[tuple[int, str]] = (),
        extra: Sequence[StmtItem] = (),
    ) -> str:
        """The statement of ``business_date``; its name. In order: fundings held back from
        an earlier day, ``fund`` (:class:`Funding`), ``returns`` ``(batch_no, amount_fen)``
        as ``RET``, ``settle`` ``(bank, batch_no, amount_fen)`` as ``PTN``,
        ``unidentified_items`` ``(amount_fen, memo)`` credits, then ``extra`` as given.
        Every item is valued ``business_date`` (``extra`` keeps its own)."""
        items: list[StmtItem] = [
            funding(b, a, self.txn_ref(business_date), business_date) for b, a in self._late
        ]
        self._late = []
        for f in fund:
            amounts = f.amounts()
            if f.late:
                self._late.append((f.batch_no, f.amount_fen - f.short_fen))
                continue
            for amount in amounts:
                items.append(
                    funding(f.batch_no, amount, self.txn_ref(business_date), business_date)
                )
        for batch_no, amount in returns:
            items.append(ret(batch_no, amount, self.txn_ref(business_date), business_date))
        for bank, batch_no, amount in settle:
            items.append(ptn(bank, batch_no, amount, self.txn_ref(business_date), business_date))
        for amount, memo in unidentified_items:
            items.append(
                unidentified(amount, self.txn_ref(business_date), business_date, memo=memo)
            )
        items.extend(extra)
        return self._publish(business_date, items)

    def resend(self, name: str, business_date: str | None = None) -> str:
        """Publish the lines of statement ``name`` again, the same txn_refs, in a new file
        (the next SEQ of ``business_date``, by default the original's date): a line seen
        twice, which the hub posts once."""
        if name not in self._files:
            raise KeyError(f"no statement {name} was written")
        original_date, items = self._files[name]
        return self._publish(business_date or original_date, list(items))


# --------------------------------------------------------------------------- the partner bank

#: ``(result, credited_amount, posted_time, bank_ref, reason_code, reason_text)``
Answer = tuple[str, str, str, str, str, str]


def _failed(code: str) -> Answer:
    return (code, "0.00", "", "", code, reason_text(code))


class PartnerPayments:
    """A partner bank answering the DISB files the hub forwards to it (ICD §5.10).

    It takes only complete ``DISB_<hub>_<code>_<date>_<seq>.txt`` files (``NAME.ok``
    present, size and SHA-256 matching) dated not after the business date it runs for;
    a file it cannot read gets no answer and stays in ``drop`` (the code is logged), and a
    file named in ``silent_files`` is never answered (the hub answers its lines ``140`` at
    ``partner_wait``). Each DISB gets ``DISBRSP_<code>_<hub>_<date>_<seq>.txt`` (ICD §3):
    the request's date and SEQ, its BATCH_NO and BUSINESS_DATE in the header, TOTAL_AMOUNT
    the sum of credited_amount, one line per request line in the same order:

    - ``0000``, credited_amount the line's amount, posted_time on the business date,
      bank_ref ``<code>`` and 20 hex digits of the pay_no's hash;
    - the layout's own code for a line breaking the DISB layout, ``209`` for a pay_no
      repeated within the file;
    - with ``accounts`` (the bank's own, by PAN) ``103``/``104``/``105``/``106`` as the
      account says; then, for about ``fail_share`` of the lines (drawn from the seed and the
      pay_no), ``103``–``106`` (weights :data:`PARTNER_FAILURES`);
    - a pay_no of ``credit_less`` (the request's, i.e. the hub's key) ``0000`` with a
      credited_amount that many fen below the line's amount (a fee the bank kept back: the
      hub's R02), whatever ``fail_share`` draws;
    - a pay_no answered before, in any earlier file, the very same answer (ICD §4.2),
      remembered in ``state_dir/partner_<code>_disb.json``.

    The answer is published (its ``.ok`` last) before the request leaves ``drop``."""

    def __init__(
        self,
        code: str = "B002",
        hub: str = HUB,
        *,
        drop: Path,
        pickup: Path,
        state_dir: Path | None = None,
        seed: int | str = 0,
        fail_share: float = 0.05,
        silent_files: Collection[str] = (),
        accounts: Iterable[PayeeAccount] | None = None,
        credit_less: Mapping[str, int] | None = None,
        encoding: str = "GB18030",
    ) -> None:
        if not 0.0 <= fail_share <= 1.0:
            raise ValueError("fail_share is a share between 0 and 1")
        if any(fen < 1 for fen in (credit_less or {}).values()):
            raise ValueError("credit_less keeps back at least 0.01 of a line")
        self.code = code
        self.hub = hub
        self.drop = Path(drop)
        self.pickup = Path(pickup)
        self.seed = seed
        self.fail_share = fail_share
        self.silent_files = frozenset(silent_files)
        self.accounts = {a.pan: a for a in accounts} if accounts is not None else None
        self.credit_less = dict(credit_less or {})
        self.encoding = encoding
        self.state_path = (
            Path(state_dir) / f"partner_{code}_disb.json" if state_dir is not None else None
        )
        self._answers: dict[str, Answer] = {}
        self._load()

    @property
    def answers(self) -> dict[str, Answer]:
        """Every answer given so far, by pay_no (a copy)."""
        return dict(self._answers)

    def _load(self) -> None:
        if self.state_path is None or not self.state_path.exists():
            return
        state = json.loads(self.state_path.read_text(encoding="utf-8"))
        self._answers = {
            k: (v[0], v[1], v[2], v[3], v[4], v[5]) for k, v in state["answers"].items()
        }

    def _save(self) -> None:
        if self.state_path is None:
            return
        self.state_path.parent.mkdir(parents=True, exist_ok=True)
        part = self.state_path.with_name(self.state_path.name + ".part")
        part.write_text(
            json.dumps(
                {"answers": {k: list(v) for k, v in self._answers.items()}}, ensure_ascii=False
            ),
            encoding="utf-8",
        )
        os.replace(part, self.state_path)

    def _requests(self, business_date: str) -> list[tuple[str, bytes, Control]]:
        if not self.drop.is_dir():
            return []
        present = {p.name for p in self.drop.iterdir() if p.is_file()}
        found: list[tuple[str, bytes, Control]] = []
        for name in sorted(present):
            m = NAME_PATTERN.fullmatch(name)
            if (
                m is None
                or m["type"] != "DISB"
                or m["sender"] != self.hub
                or m["receiver"] != self.code
                or m["ext"] != "txt"
                or m["date"] > business_date
                or name + ".ok" not in present
                or name in self.silent_files
            ):
                continue
            try:
                control = Control.parse((self.drop / (name + ".ok")).read_bytes(), name)
                data = (self.drop / name).read_bytes()
                control.verify(len(data), hashlib.sha256(data).hexdigest())
            except FileLevelError as exc:
                log.warning("%s not taken: %s", name, exc.code)
                continue
            found.append((name, data, control))
        return found

    def _answer(self, line: dict[str, str], business_date: str) -> Answer:
        """The answer to a new line that keeps the layout."""
        pay_no = line["pay_no"]
        if self.accounts is not None:
            account = self.accounts.get(line["pan"])
            if account is None:
                return _failed("103")
            if account.id_no != line["id_no"]:
                return _failed("104")
            if account.name != line["name"]:
                return _failed("105")
            if account.status in NOT_CREDITABLE:
                return _failed("106")
        rng = random.Random(f"DISB|{self.code}|{self.seed}|{pay_no}")
        if rng.random() < self.fail_share and pay_no not in self.credit_less:
            codes = list(PARTNER_FAILURES)
            return _failed(rng.choices(codes, weights=[PARTNER_FAILURES[c] for c in codes])[0])
        credited = amount_to_fen(line["amount"]) - self.credit_less.get(pay_no, 0)
        if credited < 1:
            raise ValueError("credit_less keeps back a line's whole amount")
        moment = datetime.combine(parse_date(business_date), datetime.min.time(), TZ)
        posted = moment + timedelta(seconds=rng.randrange(9 * 3600, 18 * 3600))
        bank_ref = self.code + hashlib.sha256(f"{self.code}|{pay_no}".encode()).hexdigest()[:20]
        return (
            "0000",
            fen_to_amount(credited),
            posted.strftime("%Y%m%d%H%M%S"),
            bank_ref.upper(),
            "",
            "",
        )

    def _respond(
        self, name: str, data: bytes, control: Control, business_date: str
    ) -> tuple[Header, list[list[str]]] | None:
        try:
            reader = DelimitedReader(data, DISB, self.encoding, control_count=control.record_count)
            lines: list[tuple[dict[str, str], str | None]] = []
            for chunk in reader.chunks():
                for row, ok, code in zip(
                    chunk.table.select([f.name for f in DISB.fields]).to_pylist(),
                    chunk.ok.tolist(),
                    chunk.fail_code.tolist(),
                    strict=True,
                ):
                    lines.append(({k: str(v) for k, v in row.items()}, None if ok else str(code)))
        except FileLevelError as exc:
            log.warning("%s not answered: %s", name, exc.code)
            return None
        header = reader.header
        if header.sender != self.hub or header.receiver != self.code:
            log.warning("%s not answered: F04 (header parties)", name)
            return None
        rows: list[list[str]] = []
        seen: set[str] = set()
        total = 0
        for line, failure in lines:
            pay_no = answered_key(line["pay_no"])
            answer: Answer
            if pay_no in seen and pay_no == line["pay_no"]:
                answer = _failed("209")
            elif pay_no in self._answers:
                answer = self._answers[pay_no]
            elif failure is not None:
                answer = _failed(failure)
                if pay_no == line["pay_no"]:
                    self._answers[pay_no] = answer
            else:
                answer = self._answer(line, business_date)
                self._answers[pay_no] = answer
            seen.add(pay_no)
            total += amount_to_fen(answer[1])
            rows.append([pay_no, *answer])
        response = Header(
            "DISBRSP", self.code, self.hub, header.batch_no, header.business_date, len(rows), total
        )
        return response, rows

    def run(self, business_date: str) -> list[str]:
        """Answer every complete DISB dated up to ``business_date`` but the silent ones;
        the names of the DISBRSP written."""
        written: list[str] = []
        for name, data, control in self._requests(business_date):
            response = self._respond(name, data, control, business_date)
            if response is None:
                continue
            header, rows = response
            self._save()
            out = io.BytesIO()
            write_delimited(out, DISBRSP, header, rows, self.encoding)
            answer = out.getvalue()
            response_name = str(FileName.parse(name).response())
            publish_file(
                self.pickup,
                response_name,
                answer,
                Control.for_bytes(response_name, answer, len(rows)).render(),
            )
            (self.drop / (name + ".ok")).unlink()
            (self.drop / name).unlink()
            failed = sum(1 for row in rows if row[1] != "0000")
            log.info(
                "%s answered in %s: %d lines, %d failed", name, response_name, len(rows), failed
            )
            written.append(response_name)
        return written
