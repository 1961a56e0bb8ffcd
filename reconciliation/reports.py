"""Finance's daily reconciliation reports (ICD §5.12, DOMAIN §7): for a business date D,
read from the hub's tables, written where finance already looks.

- ``parquet/``: a Hive-partitioned dataset (``business_date=D/bureau=…``), one row per
  item of the day: each batch's reconciliation as of D (``item_type`` ``batch``: its
  RECON figures in integer fen, ``status``, ``break_reason``) and each break open at the
  end of D or closed that day (``item_type`` ``break``: ``reason``, ``amount_fen``,
  ``first_date``, ``age_days``, ``state``, and who resolved it and why). Writing D again
  replaces D's partition, so a re-run gives the same data. An R09 item names no bureau:
  its rows are in the Hive default partition (``bureau`` null).
- ``recon_D.xlsx``: sheets ``Summary`` (per bureau and benefit type, in yuan), ``Breaks``
  (every break open at the end of D, with its reason in Chinese and English) and
  ``Unidentified`` (R09 statement items still open). Text is written as text: a memo
  reading like a formula is never one (decision 107).
- ``recon_D.html``: one self-contained page (inline CSS and SVG, no script, no network):
  the day's totals, instructed / credited / returned per benefit type, open breaks by
  age, the batches and the open breaks. Every figure is on the page as text.

**As of D.** ``recon_batch`` rows of date D are each batch's figures and status at the end
of D. A break counts as open at the end of D when it was first seen on or before D and
neither matched (``matched_date``) nor resolved (``resolved_at``, its date in
Asia/Shanghai) on or before D; for today's run that is ``matched_date IS NULL AND
resolved_at IS NULL``, and a past date re-run later gives the same report (DOMAIN §7).

**Age** is counted in business days (ICD §5.12: Monday to Friday, less the configured
holidays): the business days after ``first_date`` up to and including D, so an item first
seen on D is 0 days old and one seen the Friday before a Monday D is 1 day old.

Amounts are int64 fen throughout; yuan are derived from fen by integer division only
where people read them. The same database state gives byte-identical HTML and Parquet
files (rows sorted, no timestamp but D).
"""

from __future__ import annotations

import html
import io
import re
import shutil
import zipfile
from collections import Counter
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pyarrow as pa
import pyarrow.dataset as ds
from sqlalchemy import Connection, Engine, text

from reconciliation.statements import stmt_key
from schemas.codes import MESSAGES, message

SHANGHAI = ZoneInfo("Asia/Shanghai")

#: ICD §5.10 benefit types: code -> (Chinese, English)
BENEFIT_TYPES: dict[str, tuple[str, str]] = {
    "110": ("基本养老金", "basic pension"),
    "210": ("失业保险金", "unemployment benefit"),
    "310": ("医疗报销", "medical reimbursement"),
    "410": ("工伤待遇", "work-injury benefit"),
    "510": ("生育津贴", "maternity allowance"),
    "900": ("补贴", "subsidy"),
}
#: a batch none of whose lines had a valid benefit type (every line failed, most E117):
#: stored without one, and reported to its bureau in RECON as ``900``
NO_BENEFIT_TYPE = ("无有效待遇类别", "no valid benefit type (RECON: 900)")

STATUSES = ("BALANCED", "PENDING", "BREAK")

#: open breaks by age in business days: (label, lowest age, highest age or None)
AGE_BUCKETS: tuple[tuple[str, int, int | None], ...] = (
    ("0-1", 0, 1),
    ("2-5", 2, 5),
    ("6-10", 6, 10),
    (">10", 11, None),
)

#: the dataset's partition columns, for readers: ``ds.dataset(path, partitioning=PARTITIONING)``
PARTITIONING = ds.partitioning(
    pa.schema([("business_date", pa.string()), ("bureau", pa.string())]), flavor="hive"
)

#: one row per item of the day; the figures of the other item type are null
ITEM_SCHEMA = pa.schema(
    [
        ("business_date", pa.string()),
        ("bureau", pa.string()),
        ("item_type", pa.string()),
        ("batch_no", pa.string()),
        ("benefit_type", pa.string()),
        ("instructed_count", pa.int64()),
        ("instructed_fen", pa.int64()),
        ("credited_count", pa.int64()),
        ("credited_fen", pa.int64()),
        ("failed_count", pa.int64()),
        ("failed_fen", pa.int64()),
        ("funded_fen", pa.int64()),
        ("returned_fen", pa.int64()),
        ("partner_fen", pa.int64()),
        ("partner_settled_fen", pa.int64()),
        ("difference_fen", pa.int64()),
        ("status", pa.string()),
        ("break_reason", pa.string()),
        ("reason", pa.string()),
        ("ref", pa.string()),
        ("amount_fen", pa.int64()),
        ("first_date", pa.string()),
        ("last_date", pa.string()),
        ("age_days", pa.int64()),
        ("state", pa.string()),
        ("closed_date", pa.string()),
        ("resolved_by", pa.string()),
        ("resolution", pa.string()),
    ]
)

#: the RECON figures of a batch (ICD §5.12), in the order of the file's fields
FIGURES = (
    "instructed_fen",
    "credited_fen",
    "failed_fen",
    "funded_fen",
    "returned_fen",
    "partner_fen",
    "partner_settled_fen",
    "difference_fen",
)
FIGURE_TITLES = {
    "instructed_fen": "Instructed 指令",
    "credited_fen": "Credited 入账",
    "failed_fen": "Failed 失败",
    "funded_fen": "Funded 到账",
    "returned_fen": "Returned 退回",
    "partner_fen": "Partner 合作行",
    "partner_settled_fen": "Partner settled 合作行结算",
    "difference_fen": "Difference 差额",
}


@dataclass(frozen=True)
class ReportPaths:
    parquet_dir: Path
    workbook: Path
    html: Path


@dataclass(frozen=True)
class BatchItem:
    """A batch's reconciliation as of D: a ``recon_batch`` row."""

    bureau: str
    batch_no: str
    benefit_type: str
    instructed_count: int
    instructed_fen: int
    credited_count: int
    credited_fen: int
    failed_count: int
    failed_fen: int
    funded_fen: int
    returned_fen: int
    partner_fen: int
    partner_settled_fen: int
    difference_fen: int
    status: str
    break_reason: str

    def fen(self, figure: str) -> int:
        value: int = getattr(self, figure)
        return value


@dataclass(frozen=True)
class BreakItem:
    """A ``recon_break`` row as of D: ``state`` ``open``, ``matched`` or ``resolved`` (on D)."""

    bureau: str
    batch_no: str
    benefit_type: str
    reason: str
    ref: str
    amount_fen: int
    first_date: str
    last_date: str
    age_days: int
    state: str
    closed_date: str | None
    resolved_by: str | None
    resolution: str | None


@dataclass(frozen=True)
class UnidentifiedItem:
    """An ``UNIDENTIFIED`` statement line (R09) not matched or resolved by the end of D."""

    sender: str
    txn_ref: str
    business_date: str
    value_date: str
    dc: str
    amount_fen: int
    memo: str


@dataclass(frozen=True)
class Day:
    business_date: str
    batches: tuple[BatchItem, ...]
    breaks: tuple[BreakItem, ...]
    unidentified: tuple[UnidentifiedItem, ...]
    open_breaks: tuple[BreakItem, ...] = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "open_breaks", tuple(b for b in self.breaks if b.state == "open"))


def write_reports(
    engine: Engine,
    business_date: str,
    out_dir: Path,
    *,
    holidays: Collection[str] = (),
) -> ReportPaths:
    """Write D's Parquet dataset, workbook and HTML page under ``out_dir`` (see the
    module's docstring); ``holidays`` (``YYYYMMDD``) are not business days for the age of
    a break."""
    _parse_date(business_date)
    with engine.connect() as conn:
        day = load_day(conn, business_date, holidays=holidays)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = ReportPaths(
        parquet_dir=out_dir / "parquet",
        workbook=out_dir / f"recon_{business_date}.xlsx",
        html=out_dir / f"recon_{business_date}.html",
    )
    write_parquet(day, paths.parquet_dir)
    write_workbook(day, paths.workbook)
    paths.html.write_bytes(render_html(day).encode("utf-8"))
    return paths


# --------------------------------------------------------------------------- reading


def load_day(conn: Connection, business_date: str, *, holidays: Collection[str] = ()) -> Day:
    """The items of D from the hub's tables, each list sorted."""
    d = business_date
    batches = tuple(
        BatchItem(
            bureau=row.bureau,
            batch_no=row.batch_no,
            benefit_type=row.benefit_type,
            instructed_count=int(row.instructed_count),
            instructed_fen=int(row.instructed_fen),
            credited_count=int(row.credited_count),
            credited_fen=int(row.credited_fen),
            failed_count=int(row.failed_count),
            failed_fen=int(row.failed_fen),
            funded_fen=int(row.funded_fen),
            returned_fen=int(row.returned_fen),
            partner_fen=int(row.partner_fen),
            partner_settled_fen=int(row.partner_settled_fen),
            difference_fen=int(row.difference_fen),
            status=row.status,
            break_reason=row.break_reason or "",
        )
        for row in conn.execute(
            text(
                "SELECT bureau, batch_no, benefit_type, instructed_count, instructed_fen, "
                "credited_count, credited_fen, failed_count, failed_fen, funded_fen, "
                "returned_fen, partner_fen, partner_settled_fen, difference_fen, status, "
                "break_reason FROM recon_batch WHERE business_date = :d "
                "ORDER BY bureau, batch_no"
            ),
            {"d": d},
        )
    )
    breaks: list[BreakItem] = []
    for row in conn.execute(
        text(
            "SELECT b.bureau, b.batch_no, b.reason, b.ref, b.amount_fen, b.first_date, "
            "b.last_date, b.matched_date, b.resolved_at, b.resolved_by, b.resolution, "
            # a batch's item as known at the end of D (an R09 item's amount never changes)
            "(SELECT h.amount_fen FROM recon_break_day h WHERE h.break_id = b.id "
            "AND h.business_date <= :d ORDER BY h.business_date DESC LIMIT 1) AS amount_then, "
            "(SELECT MAX(h.business_date) FROM recon_break_day h WHERE h.break_id = b.id "
            "AND h.business_date <= :d) AS last_then, "
            "db.benefit_type FROM recon_break b LEFT JOIN disb_batch db "
            "ON db.bureau = b.bureau AND db.batch_no = b.batch_no "
            "WHERE b.first_date <= :d AND (b.matched_date IS NULL OR b.matched_date >= :d) "
            "ORDER BY b.bureau, b.batch_no, b.reason, b.ref, b.id"
        ),
        {"d": d},
    ):
        resolved_date = _local_date(row.resolved_at)
        if resolved_date is not None and resolved_date < d:
            continue
        if row.matched_date == d:
            state, closed = "matched", row.matched_date
        elif resolved_date == d:
            state, closed = "resolved", resolved_date
        else:
            state, closed = "open", None
        breaks.append(
            BreakItem(
                bureau=row.bureau or "",
                batch_no=row.batch_no or "",
                benefit_type=row.benefit_type or "",
                reason=row.reason,
                ref=row.ref or "",
                amount_fen=int(row.amount_then if row.amount_then is not None else row.amount_fen),
                first_date=row.first_date,
                last_date=row.last_then or min(row.last_date, d),
                age_days=business_days_between(row.first_date, d, holidays),
                state=state,
                closed_date=closed,
                resolved_by=row.resolved_by if state == "resolved" else None,
                resolution=row.resolution if state == "resolved" else None,
            )
        )
    closed_refs = _closed_r09(conn, d)
    unidentified = tuple(
        UnidentifiedItem(
            sender=row.sender,
            txn_ref=row.txn_ref,
            business_date=row.business_date,
            value_date=row.value_date,
            dc=row.dc,
            amount_fen=int(row.amount_fen),
            memo=row.memo or "",
        )
        for row in conn.execute(
            text(
                "SELECT id, sender, txn_ref, business_date, value_date, dc, amount_fen, memo "
                "FROM statement_line WHERE kind = 'UNIDENTIFIED' AND business_date <= :d "
                "ORDER BY business_date, sender, txn_ref"
            ),
            {"d": d},
        )
        if stmt_key(row.sender, row.txn_ref) not in closed_refs
    )
    return Day(d, batches, tuple(breaks), unidentified)


def _closed_r09(conn: Connection, d: str) -> set[str]:
    """The ``ref`` (:func:`~reconciliation.statements.stmt_key`) of each R09 item matched
    or resolved on or before D."""
    closed: set[str] = set()
    for row in conn.execute(
        text(
            "SELECT ref, matched_date, resolved_at FROM recon_break "
            "WHERE reason = 'R09' AND (matched_date IS NOT NULL OR resolved_at IS NOT NULL)"
        )
    ):
        resolved = _local_date(row.resolved_at)
        if (row.matched_date is not None and row.matched_date <= d) or (
            resolved is not None and resolved <= d
        ):
            closed.add(row.ref)
    return closed


def _local_date(value: datetime | str | None) -> str | None:
    """``YYYYMMDD`` in Asia/Shanghai of a stored timestamp (naive ones are UTC)."""
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(SHANGHAI).strftime("%Y%m%d")


def _parse_date(yyyymmdd: str) -> date:
    if len(yyyymmdd) != 8 or not yyyymmdd.isdigit():
        raise ValueError(f"business date {yyyymmdd!r} is not YYYYMMDD")
    return datetime.strptime(yyyymmdd, "%Y%m%d").date()


def business_days_between(first: str, last: str, holidays: Collection[str] = ()) -> int:
    """Business days (Monday to Friday, not in ``holidays``) after ``first`` up to and
    including ``last``; 0 when ``last`` is not after ``first``."""
    start, end = _parse_date(first), _parse_date(last)
    count = 0
    day = start + timedelta(days=1)
    while day <= end:
        if day.weekday() < 5 and day.strftime("%Y%m%d") not in holidays:
            count += 1
        day += timedelta(days=1)
    return count


def age_bucket(age_days: int) -> str:
    for label, low, high in AGE_BUCKETS:
        if age_days >= low and (high is None or age_days <= high):
            return label
    raise ValueError(f"age {age_days} is negative")


# --------------------------------------------------------------------------- money


def yuan_text(fen: int) -> str:
    """``-1,234.05`` from fen, by integer division (no float)."""
    whole, cents = divmod(abs(fen), 100)
    sign = "-" if fen < 0 else ""
    return f"{sign}{whole:,}.{cents:02d}"


def yuan_number(fen: int) -> Decimal:
    """Yuan as an exact decimal for a spreadsheet cell."""
    whole, cents = divmod(abs(fen), 100)
    return (Decimal(whole) + Decimal(cents) / 100) * (-1 if fen < 0 else 1)


def reason_meaning(code: str, lang: str) -> str:
    return message(code, lang) if code in MESSAGES else ""


def benefit_name(code: str) -> str:
    zh, en = BENEFIT_TYPES.get(code, ("", "")) if code else NO_BENEFIT_TYPE
    return f"{zh} {en}".strip()


def _benefit_label(code: str) -> str:
    """A benefit type as the page shows it: its code and Chinese name, or what a batch
    without one is."""
    if not code:
        return benefit_name(code)
    return f"{code} {BENEFIT_TYPES.get(code, ('', ''))[0]}".strip()


@dataclass(frozen=True)
class Summary:
    """Totals of a group of batches."""

    batches: int
    fen: dict[str, int]
    statuses: dict[str, int]


def summarise(batches: Iterable[BatchItem]) -> Summary:
    items = list(batches)
    return Summary(
        batches=len(items),
        fen={figure: sum(b.fen(figure) for b in items) for figure in FIGURES},
        statuses={s: sum(1 for b in items if b.status == s) for s in STATUSES},
    )


def _groups(batches: Sequence[BatchItem]) -> list[tuple[tuple[str, str], Summary]]:
    keys = sorted({(b.bureau, b.benefit_type) for b in batches})
    return [
        (key, summarise(b for b in batches if (b.bureau, b.benefit_type) == key)) for key in keys
    ]


def _by_benefit_type(batches: Sequence[BatchItem]) -> list[tuple[str, Summary]]:
    types = sorted({b.benefit_type for b in batches})
    return [(t, summarise(b for b in batches if b.benefit_type == t)) for t in types]


# --------------------------------------------------------------------------- Parquet


def item_table(day: Day) -> pa.Table:
    """D's items as one Arrow table in ``ITEM_SCHEMA``, sorted by bureau, item type,
    batch, reason and ref."""
    rows: list[dict[str, Any]] = []
    for b in day.batches:
        rows.append(
            {
                "business_date": day.business_date,
                "bureau": b.bureau or None,
                "item_type": "batch",
                "batch_no": b.batch_no,
                "benefit_type": b.benefit_type or None,
                "instructed_count": b.instructed_count,
                "credited_count": b.credited_count,
                "failed_count": b.failed_count,
                **{figure: b.fen(figure) for figure in FIGURES},
                "status": b.status,
                "break_reason": b.break_reason,
            }
        )
    for k in day.breaks:
        rows.append(
            {
                "business_date": day.business_date,
                "bureau": k.bureau or None,
                "item_type": "break",
                "batch_no": k.batch_no,
                "benefit_type": k.benefit_type or None,
                "reason": k.reason,
                "ref": k.ref,
                "amount_fen": k.amount_fen,
                "first_date": k.first_date,
                "last_date": k.last_date,
                "age_days": k.age_days,
                "state": k.state,
                "closed_date": k.closed_date,
                "resolved_by": k.resolved_by,
                "resolution": k.resolution,
            }
        )
    rows.sort(
        key=lambda r: (
            r["bureau"] or "",
            r["item_type"],
            r["batch_no"],
            r.get("reason") or "",
            r.get("ref") or "",
        )
    )
    return pa.Table.from_pylist(rows, schema=ITEM_SCHEMA)


def write_parquet(day: Day, parquet_dir: Path) -> None:
    """D's partition of the dataset, replacing what an earlier run wrote for D (also a
    bureau that has no item any more)."""
    parquet_dir.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(parquet_dir / f"business_date={day.business_date}", ignore_errors=True)
    table = item_table(day)
    if table.num_rows == 0:
        return
    ds.write_dataset(
        table,
        parquet_dir,
        format="parquet",
        partitioning=PARTITIONING,
        existing_data_behavior="delete_matching",
        basename_template="part-{i}.parquet",
        use_threads=False,
    )


# --------------------------------------------------------------------------- Excel

YUAN_FORMAT = "#,##0.00"
DATE_FORMAT = "yyyy-mm-dd"
#: what a spreadsheet reads as the start of a formula when a cell is typed in
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
#: characters no worksheet can hold (XML 1.0 forbids them); a STMT memo may carry them
_ILLEGAL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f]")


def _append(sheet: Any, values: Sequence[object]) -> None:
    """A row of cells in which text stays text: a counterparty's memo such as
    ``=cmd|' /C calc'!A0`` or ``#N/A`` is neither a formula nor an error value (and keeps
    its quote prefix, so editing the cell does not make it one), and a control character
    no worksheet can hold is shown as U+FFFD instead of failing the whole workbook."""
    sheet.append([_ILLEGAL.sub("\ufffd", v) if isinstance(v, str) else v for v in values])
    for cell in sheet[sheet.max_row]:
        if isinstance(cell.value, str):
            cell.data_type = "s"
            if cell.value.startswith(FORMULA_STARTS):
                cell.quotePrefix = True


def write_workbook(day: Day, path: Path) -> None:
    """``Summary``, ``Breaks`` and ``Unidentified`` sheets (openpyxl: no macros; opens in
    Excel and LibreOffice)."""
    from openpyxl import Workbook
    from openpyxl.styles import Font

    wb = Workbook()
    stamp = datetime.combine(_parse_date(day.business_date), datetime.min.time())
    wb.properties.creator = "sscard"
    wb.properties.title = f"Reconciliation {day.business_date}"
    wb.properties.created = stamp
    wb.properties.modified = stamp
    bold = Font(bold=True)

    summary = wb.active
    summary.title = "Summary"
    _append(summary, [f"Reconciliation 对账 — business date {_dashed(day.business_date)}"])
    summary["A1"].font = bold
    header = [
        "Bureau",
        "Benefit type",
        "Benefit",
        "Batches",
        *(FIGURE_TITLES[f] for f in FIGURES),
        *STATUSES,
    ]
    _append(summary, header)
    rows = [(bureau, btype, benefit_name(btype), s) for (bureau, btype), s in _groups(day.batches)]
    rows.append(("Total", "", "", summarise(day.batches)))
    for bureau, btype, name, s in rows:
        _append(
            summary,
            [
                bureau,
                btype,
                name,
                s.batches,
                *(yuan_number(s.fen[f]) for f in FIGURES),
                *(s.statuses[st] for st in STATUSES),
            ],
        )
        for col in range(5, 5 + len(FIGURES)):
            summary.cell(row=summary.max_row, column=col).number_format = YUAN_FORMAT
    for cell in summary[2]:
        cell.font = bold
    for cell in summary[summary.max_row]:
        cell.font = bold
    summary.freeze_panes = "A3"
    _widths(summary, [10, 12, 28, 8, *([18] * len(FIGURES)), 10, 10, 8])

    breaks = wb.create_sheet("Breaks")
    _append(
        breaks,
        [
            "Bureau",
            "Batch no",
            "Reason",
            "原因",
            "Reason (English)",
            "Ref",
            "Amount (yuan)",
            "First seen",
            "Last seen",
            "Age (business days)",
        ],
    )
    for k in day.open_breaks:
        _append(
            breaks,
            [
                k.bureau,
                k.batch_no,
                k.reason,
                reason_meaning(k.reason, "zh"),
                reason_meaning(k.reason, "en"),
                k.ref,
                yuan_number(k.amount_fen),
                _parse_date(k.first_date),
                _parse_date(k.last_date),
                k.age_days,
            ],
        )
        breaks.cell(row=breaks.max_row, column=7).number_format = YUAN_FORMAT
        breaks.cell(row=breaks.max_row, column=8).number_format = DATE_FORMAT
        breaks.cell(row=breaks.max_row, column=9).number_format = DATE_FORMAT
    for cell in breaks[1]:
        cell.font = bold
    breaks.freeze_panes = "A2"
    _widths(breaks, [10, 22, 8, 28, 44, 12, 16, 12, 12, 10])

    unidentified = wb.create_sheet("Unidentified")
    _append(
        unidentified,
        ["Sender", "Txn ref", "Statement date", "Value date", "D/C", "Amount (yuan)", "Memo"],
    )
    for u in day.unidentified:
        _append(
            unidentified,
            [
                u.sender,
                u.txn_ref,
                _parse_date(u.business_date),
                _parse_date(u.value_date),
                u.dc,
                yuan_number(u.amount_fen),
                u.memo,
            ],
        )
        row = unidentified.max_row
        unidentified.cell(row=row, column=3).number_format = DATE_FORMAT
        unidentified.cell(row=row, column=4).number_format = DATE_FORMAT
        unidentified.cell(row=row, column=6).number_format = YUAN_FORMAT
    for cell in unidentified[1]:
        cell.font = bold
    unidentified.freeze_panes = "A2"
    _widths(unidentified, [10, 32, 14, 12, 6, 16, 40])
    _save_stamped(wb, path, stamp)


def _save_stamped(wb: Any, path: Path, stamp: datetime) -> None:
    """The workbook saved with every time in it the business date's: its properties and
    each zip entry's time, which openpyxl sets to the moment of saving, so the same day
    gives the same bytes whenever it is written (decision 67)."""
    from openpyxl.writer.excel import ExcelWriter

    raw = io.BytesIO()
    # openpyxl's own save stamps ``modified`` with the clock; its writer keeps ours
    with zipfile.ZipFile(raw, "w", zipfile.ZIP_DEFLATED) as archive:
        ExcelWriter(wb, archive).write_data()
    when = (stamp.year, stamp.month, stamp.day, 0, 0, 0)
    with (
        zipfile.ZipFile(io.BytesIO(raw.getvalue())) as written,
        zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as out,
    ):
        for info in written.infolist():
            entry = zipfile.ZipInfo(info.filename, date_time=when)
            entry.compress_type = zipfile.ZIP_DEFLATED
            entry.external_attr = info.external_attr
            out.writestr(entry, written.read(info.filename))


def _widths(sheet: Any, widths: Sequence[int]) -> None:
    from openpyxl.utils import get_column_letter

    for index, width in enumerate(widths, start=1):
        sheet.column_dimensions[get_column_letter(index)].width = width


def _dashed(yyyymmdd: str) -> str:
    return f"{yyyymmdd[:4]}-{yyyymmdd[4:6]}-{yyyymmdd[6:]}"


# --------------------------------------------------------------------------- HTML

_CSS = """
body{font-family:"Noto Sans CJK SC","Microsoft YaHei","PingFang SC",sans-serif;margin:24px;color:#1f2933}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 8px}
table{border-collapse:collapse;font-size:13px}
th,td{border:1px solid #cbd2d9;padding:4px 8px}th{background:#f0f4f8;text-align:left}
td.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
.status{font-weight:bold;padding:1px 6px;border-radius:3px;color:#fff}
.status-BALANCED{background:#2f855a}.status-PENDING{background:#b7791f}.status-BREAK{background:#c53030}
.charts{display:flex;flex-wrap:wrap;gap:32px}
.legend span{display:inline-block;width:10px;height:10px;margin:0 4px 0 12px}
.none{color:#616e7c;font-style:italic}
"""

SERIES = (
    ("instructed_fen", "Instructed 指令", "#3182ce"),
    ("credited_fen", "Credited 入账", "#2f855a"),
    ("returned_fen", "Returned 退回", "#c05621"),
)


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def render_html(day: Day) -> str:
    """The page as text: same ``Day`` → same characters."""
    total = summarise(day.batches)
    open_fen = sum(k.amount_fen for k in day.open_breaks)
    unidentified_fen = sum(u.amount_fen for u in day.unidentified)
    d = _dashed(day.business_date)
    parts: list[str] = [
        "<!DOCTYPE html>",
        '<html lang="zh-CN"><head><meta charset="utf-8">',
        f"<title>对账日报 Reconciliation {_e(d)}</title>",
        f"<style>{_CSS}</style></head><body>",
        "<h1>对账日报 Reconciliation report</h1>",
        f'<p>Business date 业务日期: <strong id="business-date">{_e(d)}</strong></p>',
        "<h2>Totals 当日合计</h2>",
        '<table id="totals"><tbody>',
        _total_row("batches", "Batches 批次", str(total.batches)),
        *(
            _total_row(f.removesuffix("_fen"), FIGURE_TITLES[f], yuan_text(total.fen[f]))
            for f in FIGURES
        ),
        *(_total_row(f"status-{s}", f"{s} batches", str(total.statuses[s])) for s in STATUSES),
        _total_row("open-breaks", "Open breaks 未平项目", str(len(day.open_breaks))),
        _total_row("open-breaks-amount", "Open breaks amount 未平金额", yuan_text(open_fen)),
        _total_row("unidentified", "Unidentified items 无法识别", str(len(day.unidentified))),
        _total_row(
            "unidentified-amount", "Unidentified amount 无法识别金额", yuan_text(unidentified_fen)
        ),
        "</tbody></table>",
        '<p class="note">Amounts in yuan 金额单位：元.</p>',
        '<div class="charts">',
        "<div><h2>By benefit type 按待遇类别 (yuan)</h2>",
        _benefit_chart(_by_benefit_type(day.batches)),
        "</div>",
        "<div><h2>Open breaks by age 未平项目账龄 (business days)</h2>",
        _ageing_chart(day.open_breaks),
        "</div></div>",
        "<h2>Batches 批次</h2>",
        _batch_table(day.batches),
        "<h2>Open breaks 未平项目</h2>",
        _break_table(day.open_breaks),
        "<h2>Unidentified statement items 无法识别的对账单项目 (R09)</h2>",
        _unidentified_table(day.unidentified),
        "</body></html>",
        "",
    ]
    return "\n".join(parts)


def _total_row(key: str, title: str, value: str) -> str:
    return f'<tr><th>{_e(title)}</th><td class="num" data-figure="{_e(key)}">{_e(value)}</td></tr>'


def _benefit_chart(groups: Sequence[tuple[str, Summary]]) -> str:
    if not groups:
        return '<p class="none">No batches 无批次</p>'
    bar, gap, group_gap, height, top, bottom = 34, 4, 36, 220, 24, 44
    group_width = len(SERIES) * (bar + gap) + group_gap
    width = 60 + len(groups) * group_width
    peak = max(max(s.fen[f] for f, _, _ in SERIES) for _, s in groups) or 1
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" id="benefit-chart" width="{width}" '
        f'height="{top + height + bottom}" role="img" aria-label="instructed, credited and '
        f'returned per benefit type">'
    ]
    base = top + height
    out.append(f'<line x1="50" y1="{base}" x2="{width}" y2="{base}" stroke="#52606d"/>')
    for index, (btype, s) in enumerate(groups):
        x0 = 60 + index * group_width
        for n, (figure, title, colour) in enumerate(SERIES):
            fen = s.fen[figure]
            h = max(fen, 0) * height // peak
            x = x0 + n * (bar + gap)
            series = figure.removesuffix("_fen")
            out.append(
                f'<rect x="{x}" y="{base - h}" width="{bar}" height="{h}" fill="{colour}">'
                f"<title>{_e(btype)} {_e(title)} {_e(yuan_text(fen))}</title></rect>"
            )
            out.append(
                f'<text x="{x + bar // 2}" y="{base - h - 4}" font-size="9" '
                f'text-anchor="middle" data-benefit-type="{_e(btype)}" '
                f'data-series="{_e(series)}">{_e(yuan_text(fen))}</text>'
            )
        label_x = x0 + (len(SERIES) * (bar + gap)) // 2
        out.append(
            f'<text x="{label_x}" y="{base + 16}" font-size="12" text-anchor="middle">'
            f"{_e(btype)}</text>"
        )
        out.append(
            f'<text x="{label_x}" y="{base + 32}" font-size="11" text-anchor="middle">'
            f"{_e(BENEFIT_TYPES.get(btype, NO_BENEFIT_TYPE)[0])}</text>"
        )
    out.append("</svg>")
    legend = "".join(
        f'<span style="background:{colour}"></span>{_e(title)}' for _, title, colour in SERIES
    )
    return "".join(out) + f'<div class="legend">{legend}</div>'


def _ageing_chart(open_breaks: Sequence[BreakItem]) -> str:
    counts = Counter(age_bucket(k.age_days) for k in open_breaks)
    amounts: Counter[str] = Counter()
    for k in open_breaks:
        amounts[age_bucket(k.age_days)] += k.amount_fen
    bar, gap, height, top, bottom = 60, 16, 180, 24, 52
    width = 40 + len(AGE_BUCKETS) * (bar + gap)
    peak = max(counts.values(), default=0) or 1
    base = top + height
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" id="ageing-chart" width="{width}" '
        f'height="{base + bottom}" role="img" aria-label="open breaks by age">',
        f'<line x1="30" y1="{base}" x2="{width}" y2="{base}" stroke="#52606d"/>',
    ]
    for index, (label, _, _) in enumerate(AGE_BUCKETS):
        count = counts.get(label, 0)
        h = count * height // peak
        x = 40 + index * (bar + gap)
        out.append(
            f'<rect x="{x}" y="{base - h}" width="{bar}" height="{h}" fill="#c53030">'
            f"<title>{_e(label)} days: {count}</title></rect>"
        )
        out.append(
            f'<text x="{x + bar // 2}" y="{base - h - 4}" font-size="12" text-anchor="middle" '
            f'data-age-bucket="{_e(label)}" data-figure="count">{count}</text>'
        )
        out.append(
            f'<text x="{x + bar // 2}" y="{base + 16}" font-size="12" '
            f'text-anchor="middle">{_e(label)} d</text>'
        )
        out.append(
            f'<text x="{x + bar // 2}" y="{base + 32}" font-size="10" text-anchor="middle" '
            f'data-age-bucket="{_e(label)}" data-figure="amount">'
            f"{_e(yuan_text(amounts.get(label, 0)))}</text>"
        )
    out.append("</svg>")
    return "".join(out)


def _table(table_id: str, headers: Sequence[str], rows: Sequence[str], empty: str) -> str:
    if not rows:
        return f'<p class="none" id="{_e(table_id)}-none">{_e(empty)}</p>'
    head = "".join(f"<th>{_e(h)}</th>" for h in headers)
    return (
        f'<table id="{_e(table_id)}"><thead><tr>{head}</tr></thead><tbody>\n'
        + "\n".join(rows)
        + "\n</tbody></table>"
    )


def _num(value: str, figure: str = "") -> str:
    attr = f' data-figure="{_e(figure)}"' if figure else ""
    return f'<td class="num"{attr}>{_e(value)}</td>'


def _reason_cell(code: str) -> str:
    if not code:
        return "<td></td>"
    zh, en = reason_meaning(code, "zh"), reason_meaning(code, "en")
    return f'<td data-figure="reason"><strong>{_e(code)}</strong> {_e(zh)} / {_e(en)}</td>'


def _batch_table(batches: Sequence[BatchItem]) -> str:
    headers = [
        "Bureau 经办机构",
        "Batch no 批次号",
        "Benefit type 待遇类别",
        "Lines 笔数",
        *(FIGURE_TITLES[f] for f in FIGURES),
        "Status 状态",
        "Break reason 差异原因",
    ]
    rows = [
        f'<tr data-bureau="{_e(b.bureau)}" data-batch-no="{_e(b.batch_no)}">'
        f"<td>{_e(b.bureau)}</td><td>{_e(b.batch_no)}</td>"
        f"<td>{_e(_benefit_label(b.benefit_type))}</td>"
        + _num(str(b.instructed_count), "instructed_count")
        + "".join(_num(yuan_text(b.fen(f)), f.removesuffix("_fen")) for f in FIGURES)
        + f'<td><span class="status status-{_e(b.status)}" data-figure="status">'
        f"{_e(b.status)}</span></td>" + _reason_cell(b.break_reason) + "</tr>"
        for b in batches
    ]
    return _table("batches", headers, rows, "No batches 无批次")


def _break_table(open_breaks: Sequence[BreakItem]) -> str:
    headers = [
        "Bureau 经办机构",
        "Batch no 批次号",
        "Reason 原因",
        "Ref",
        "Amount 金额",
        "First seen 首次发现",
        "Age 账龄 (business days)",
    ]
    rows = [
        f'<tr data-reason="{_e(k.reason)}"><td>{_e(k.bureau)}</td><td>{_e(k.batch_no)}</td>'
        + _reason_cell(k.reason)
        + f"<td>{_e(k.ref)}</td>"
        + _num(yuan_text(k.amount_fen), "amount")
        + f"<td>{_e(_dashed(k.first_date))}</td>"
        + _num(str(k.age_days), "age_days")
        + "</tr>"
        for k in open_breaks
    ]
    return _table("open-breaks", headers, rows, "No open breaks 无未平项目")


def _unidentified_table(items: Sequence[UnidentifiedItem]) -> str:
    headers = [
        "Sender",
        "Txn ref 交易流水号",
        "Value date 起息日",
        "D/C",
        "Amount 金额",
        "Memo 摘要",
    ]
    rows = [
        f"<tr><td>{_e(u.sender)}</td><td>{_e(u.txn_ref)}</td>"
        f"<td>{_e(_dashed(u.value_date))}</td><td>{_e(u.dc)}</td>"
        + _num(yuan_text(u.amount_fen), "amount")
        + f"<td>{_e(u.memo)}</td></tr>"
        for u in items
    ]
    return _table("unidentified", headers, rows, "No unidentified items 无")
