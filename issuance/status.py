"""Where the work stands: the report for operations and monitoring (``sscard status``) and
the list of returned records the hub refused (``sscard refused-returns``).

An application goes through six stages (:class:`schemas.states.ApplicationStatus`, in
order); :data:`STAGES` names each for an operator with its next step, who takes it and
the DAG whose run moves it on (its schedule, Asia/Shanghai, says when that is due).
Beside them: the account requests partner banks have not answered and their E140 day
(ICD §2 ``partner_wait``, counted from the day the ACCTOPEN reached the partner, as
:func:`issuance.accounts.expire_account_requests` counts it), the cards at the factory,
the day's files per counterparty, the files waiting in the outbox and the returned
records refused on the day (table ``return_problem``, ICD §5.6).

The report's level is the highest level of its findings (:data:`THRESHOLDS`, figures in
:data:`LIMITS`): 0 ok, 1 needs attention, 2 critical; ``sscard status`` exits with it.
Ages and deadlines are measured at the report's ``as_of``: now, or the end of the
business date when that date is past.

No ID number, name or PAN is read: counts, dates, file names, and the keys of refused
records (a card_no or the hub's req_no, cut to 30 characters when stored; one that looks
like an ID number or a PAN is masked here).

The stages, thresholds and texts need only the standard library; SQLAlchemy (core only)
is imported by the functions that read, so the command line starts fast. A read never
writes: SQLite is opened read-only (and a missing file is never created), PostgreSQL in
read-only transactions.
"""

from __future__ import annotations

import re
import sqlite3
from collections import defaultdict
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, timedelta
from enum import IntEnum
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from exchange.logsafe import shown
from schemas.states import ApplicationStatus

if TYPE_CHECKING:
    from sqlalchemy import Connection, Engine


class Level(IntEnum):
    """How a finding, and the report, stands; ``sscard status`` exits with it."""

    OK = 0
    ATTENTION = 1
    CRITICAL = 2

    @property
    def label(self) -> str:
        return _LABELS[self]


_LABELS = {Level.OK: "ok", Level.ATTENTION: "needs attention", Level.CRITICAL: "critical"}


# --------------------------------------------------------------------------- schedules


def _cron_field(spec: str, top: int) -> tuple[int, ...]:
    if spec == "*":
        return tuple(range(top))
    if spec.startswith("*/"):
        return tuple(range(0, top, int(spec[2:])))
    return tuple(sorted(int(value) for value in spec.split(",")))


@dataclass(frozen=True)
class Schedule:
    """When a DAG runs by the clock: its cron (minute and hour fields ``*``, ``*/N``, ``N``
    or ``N,M``; the DAGs run every day), in the hub's time zone."""

    dag_id: str
    cron: str

    def _fields(self) -> tuple[tuple[int, ...], tuple[int, ...]]:
        minute, hour = self.cron.split()[:2]
        return _cron_field(minute, 60), _cron_field(hour, 24)

    def next_run(self, after: datetime) -> datetime:
        """The first run strictly after ``after`` (an aware time in the hub's zone)."""
        minutes, hours = self._fields()
        for offset in range(2):
            day = after.date() + timedelta(days=offset)
            for h in hours:
                for m in minutes:
                    at = datetime(day.year, day.month, day.day, h, m, tzinfo=after.tzinfo)
                    if at > after:
                        return at
        raise ValueError(f"{self.dag_id}: cron {self.cron!r} has no run")  # pragma: no cover

    def describe(self) -> str:
        minute, hour = self.cron.split()[:2]
        if hour == "*":
            if minute == "*":
                return "every minute"
            if minute.startswith("*/"):
                return f"every {minute[2:]} minutes"
            return "hourly at " + ", ".join(f":{m:02d}" for m in _cron_field(minute, 60))
        minutes, hours = self._fields()
        return "daily at " + ", ".join(f"{h:02d}:{m:02d}" for h in hours for m in minutes)


# --------------------------------------------------------------------------- stages


@dataclass(frozen=True)
class Stage:
    """An application status as an operator reads it: what it is waiting for (``name``),
    what happens next, who does it, and the DAG whose run takes that step (``also``: what
    else starts that DAG beside its clock)."""

    status: ApplicationStatus
    name: str
    next_step: str
    by: str
    dag_id: str
    also: str = ""


#: the stages in the order an application goes through them (ICD §5.3–§5.6)
STAGES: tuple[Stage, ...] = (
    Stage(
        ApplicationStatus.ACCEPTED,
        "waiting for an account",
        "the hub opens the account of its own customers; a partner bank's customers are "
        "asked for in an ACCTOPEN file to that bank",
        "the hub",
        "account_opening",
        "and as soon as intake has accepted applications",
    ),
    Stage(
        ApplicationStatus.PARTNER_SENT,
        "at the partner bank",
        "the partner bank answers in ACCTOPENRSP; a request it has not answered by its E140 "
        "day fails E140",
        "the partner bank; the hub takes its answers",
        "partner_account_returns",
    ),
    Stage(
        ApplicationStatus.ACCOUNT_OPEN,
        "waiting to go to the card factory",
        "the card is sent to the factory in a PERSO file with its photo",
        "the hub",
        "factory_dispatch",
        "and as soon as accounts are ready",
    ),
    Stage(
        ApplicationStatus.PERSO_SENT,
        "at the card factory",
        "the factory makes the card and returns its result in PERSORSP (the ICD sets no deadline)",
        "the card factory; the hub takes its results",
        "factory_returns",
    ),
    Stage(
        ApplicationStatus.MADE,
        "made, to be reported to the bureau",
        "reported to the bureau in the day's CARDRSP",
        "the hub",
        "bureau_card_returns",
    ),
    Stage(
        ApplicationStatus.FAILED,
        "failed, to be reported to the bureau",
        "reported to the bureau in the day's CARDRSP with its reason code",
        "the hub",
        "bureau_card_returns",
    ),
)


# --------------------------------------------------------------------------- thresholds


@dataclass(frozen=True)
class Limits:
    """The figures of :data:`THRESHOLDS`."""

    #: a request still unanswered this long into its E140 day was not failed E140 by
    #: partner_account_returns (every 15 minutes)
    e140_grace: timedelta = timedelta(minutes=30)
    #: a request whose E140 comes this soon: time to chase the partner. With the default
    #: partner_wait of one day, "within a day" would hold for every open request all day.
    e140_warning: timedelta = timedelta(hours=6)
    #: every connection's outbox is delivered at least every 30 minutes
    outbox_late: timedelta = timedelta(minutes=45)
    outbox_stuck: timedelta = timedelta(hours=2)
    #: past zip_wait_minutes, intake (every 15 minutes) should have answered F10
    zip_grace: timedelta = timedelta(minutes=30)
    #: past the CARDRSP run due to carry a final outcome
    cardrsp_grace: timedelta = timedelta(hours=1)
    archive_late: timedelta = timedelta(minutes=45)
    factory_days: int = 7


LIMITS = Limits()


def _minutes(span: timedelta) -> str:
    minutes = int(span.total_seconds() // 60)
    if minutes % 60:
        return f"{minutes} minutes"
    return f"{minutes // 60} hour" + ("" if minutes == 60 else "s")


@dataclass(frozen=True)
class Threshold:
    """A condition the report looks for: its ``level``, the ``rule`` in words (with its
    figure) and what an operator does about it."""

    code: str
    level: Level
    rule: str
    action: str


#: every condition the report raises, critical first (figures from :data:`LIMITS`)
THRESHOLDS: tuple[Threshold, ...] = (
    Threshold(
        "e140_overdue",
        Level.CRITICAL,
        f"partner requests still unanswered {_minutes(LIMITS.e140_grace)} into their E140 day",
        "check partner_account_returns for that bank: it fails them E140 and the bureau "
        "is owed that answer",
    ),
    Threshold(
        "outbox_stuck",
        Level.CRITICAL,
        f"a file queued for delivery more than {_minutes(LIMITS.outbox_stuck)} ago and "
        "not delivered",
        "check the counterparty's server and the log of the DAG delivering to it "
        "(a HostKeyError needs the new key confirmed with the counterparty)",
    ),
    Threshold(
        "zip_overdue",
        Level.CRITICAL,
        f"a file waiting for its photo zip (or a zip for its data file) "
        f"{_minutes(LIMITS.zip_grace)} past the bureau's zip_wait_minutes",
        "check apply_intake for that bureau: it answers F10 (F04 for a lone zip)",
    ),
    Threshold(
        "cardrsp_overdue",
        Level.CRITICAL,
        f"final outcomes not reported to the bureau {_minutes(LIMITS.cardrsp_grace)} after "
        "the CARDRSP run due to carry them",
        "check bureau_card_returns for that bureau",
    ),
    Threshold(
        "refused_returns",
        Level.CRITICAL,
        "returned records the hub refused on the business date (table return_problem)",
        "list them with `sscard refused-returns` and settle them with the factory or the "
        "partner bank",
    ),
    Threshold(
        "e140_soon",
        Level.ATTENTION,
        f"partner requests whose E140 comes within {_minutes(LIMITS.e140_warning)}",
        "ask the partner bank for its ACCTOPENRSP",
    ),
    Threshold(
        "outbox_late",
        Level.ATTENTION,
        f"a file queued for delivery more than {_minutes(LIMITS.outbox_late)} ago",
        "check the last run of the DAG delivering to that counterparty",
    ),
    Threshold(
        "waiting_for_zip",
        Level.ATTENTION,
        "a file waiting for its photo zip, or a zip for its data file",
        "ask the bureau for the missing part before zip_wait_minutes end (then F10)",
    ),
    Threshold(
        "rejected_files",
        Level.ATTENTION,
        "files rejected as a whole on the business date (their NAME.rej says why)",
        "make sure the sender sends a corrected file",
    ),
    Threshold(
        "archive_unfinished",
        Level.ATTENTION,
        f"files answered more than {_minutes(LIMITS.archive_late)} ago, not yet moved to "
        "archive/ or rejected/ in the pickup",
        "the flow's next run finishes the move; if it stays, check the server's permissions",
    ),
    Threshold(
        "factory_slow",
        Level.ATTENTION,
        f"cards at the factory for more than {LIMITS.factory_days} days",
        "ask the factory for their PERSORSP",
    ),
)


def thresholds_help() -> str:
    """The exit statuses and :data:`THRESHOLDS` for ``sscard status --help``."""
    lines = [
        "exit status: 0 ok, 1 needs attention, 2 critical (the highest finding);",
        "2 also when the database cannot be read (missing, unreachable, not migrated).",
        "",
    ]
    for t in THRESHOLDS:
        lines.append(f"{t.level.label:<15} {t.code}: {t.rule}")
        lines.append(f"{'':<15}   what to do: {t.action}")
    return "\n".join(lines)


# --------------------------------------------------------------------------- the report


@dataclass(frozen=True)
class PartnerWait:
    bank_code: str
    unanswered: int
    #: of them, requests whose ACCTOPEN has not reached the partner yet (no E140 clock)
    not_delivered: int
    #: the day (hub's zone) the oldest delivered one reached the partner ("" if none)
    oldest_sent: str
    age_days: int
    #: days from the business date to the oldest delivered request's E140 day (0: that
    #: day or past it; None: none has been delivered)
    days_to_e140: int | None
    #: the E140 day of the oldest delivered request ("" if none)
    e140_day: str = ""
    #: delivered requests per E140 day
    by_e140_day: tuple[tuple[str, int], ...] = ()


@dataclass(frozen=True)
class QueuedFile:
    """A file in the outbox, not delivered yet."""

    party: str
    conn_id: str
    name: str
    type: str
    queued_at: datetime


@dataclass(frozen=True)
class WaitingFile:
    """A complete file waiting for its photo zip, or a photo zip for its data file."""

    party: str
    conn_id: str
    name: str
    what: str
    since: datetime
    zip_wait_minutes: int


@dataclass(frozen=True)
class UnarchivedFile:
    """A file answered whose move to ``archive/`` or ``rejected/`` is not finished."""

    party: str
    conn_id: str
    name: str
    answered_at: datetime


@dataclass(frozen=True)
class PartyFiles:
    """One connection's files on the business date: received by outcome (settled that
    day; ``waiting`` first seen that day), answers and ``.rej`` queued, files the hub
    originated (ACCTOPEN, PERSO, CARDRSP), delivered that day, and undelivered now."""

    party: str
    conn_id: str
    accepted: int = 0
    rejected: int = 0
    waiting: int = 0
    answered: int = 0
    rej: int = 0
    sent: int = 0
    delivered: int = 0
    undelivered: int = 0


@dataclass(frozen=True)
class Finding:
    threshold: Threshold
    count: int
    #: which banks, bureaus or files, for the operator
    detail: str

    def as_json(self) -> dict[str, Any]:
        t = self.threshold
        return {
            "code": t.code,
            "level": int(t.level),
            "count": self.count,
            "detail": self.detail,
            "rule": t.rule,
            "action": t.action,
        }


@dataclass(frozen=True)
class StatusSettings:
    """What the report needs of the configuration: each partner bank's
    ``partner_wait_days``, each connection's party code and ``zip_wait_minutes``, the
    DAGs' crons, the hub's time zone and its holidays (``partner_wait`` counts business
    days)."""

    partner_wait_days: Mapping[str, int] = field(default_factory=dict)
    zip_wait_minutes: Mapping[str, int] = field(default_factory=dict)
    party_of: Mapping[str, str] = field(default_factory=dict)
    crons: Mapping[str, str] = field(default_factory=dict)
    timezone: str = "Asia/Shanghai"
    holidays: tuple[str, ...] = ()


@dataclass(frozen=True)
class WorkStatus:
    business_date: str
    as_of: datetime
    #: (bureau, status) → applications not yet reported in CARDRSP
    applications: dict[tuple[str, str], int]
    partners: list[PartnerWait]
    at_factory: int
    oldest_perso: str | None
    undelivered: list[QueuedFile]
    refused_today: int
    #: cards at the factory per PERSO day
    perso_days: tuple[tuple[str, int], ...] = ()
    #: final outcomes not yet in a CARDRSP: (bureau, final_date, count)
    unreported: tuple[tuple[str, str, int], ...] = ()
    files: list[PartyFiles] = field(default_factory=list)
    waiting: list[WaitingFile] = field(default_factory=list)
    unarchived: list[UnarchivedFile] = field(default_factory=list)
    schedules: Mapping[str, Schedule] = field(default_factory=dict)

    @property
    def findings(self) -> list[Finding]:
        """The conditions of :data:`THRESHOLDS` that hold, critical first."""
        out = []
        for t in THRESHOLDS:
            count, detail = _CHECKS[t.code](self, LIMITS)
            if count:
                out.append(Finding(t, count, detail))
        return out

    @property
    def level(self) -> Level:
        return max((f.threshold.level for f in self.findings), default=Level.OK)

    def next_run(self, dag_id: str) -> datetime | None:
        schedule = self.schedules.get(dag_id)
        return schedule.next_run(self.as_of) if schedule else None

    def stage_due(self, stage: Stage) -> str:
        """When the stage's next step is due, in words."""
        schedule = self.schedules.get(stage.dag_id)
        when = (
            f"{stage.dag_id}, {schedule.describe()}"
            + (f" {stage.also}" if stage.also else "")
            + f"; next run {_clock(schedule.next_run(self.as_of), self.as_of)}"
            if schedule
            else f"{stage.dag_id} (schedule not configured)"
        )
        if stage.status is ApplicationStatus.PARTNER_SENT:
            days = sorted(d for p in self.partners for d, _ in p.by_e140_day)
            if days:
                when += f"; E140 of the oldest on {days[0]}"
        if stage.status is ApplicationStatus.PERSO_SENT and self.oldest_perso:
            when += f"; oldest sent {self.oldest_perso}"
        return when

    def as_json(self) -> dict[str, Any]:
        findings = self.findings
        level = max((f.threshold.level for f in findings), default=Level.OK)
        zone = self.as_of.tzinfo
        by_stage: dict[str, dict[str, int]] = defaultdict(dict)
        for (bureau, state), n in sorted(self.applications.items()):
            by_stage[state][bureau] = n
        stages = []
        for s in STAGES:
            run = self.next_run(s.dag_id)
            stages.append(
                {
                    "status": s.status.value,
                    "stage": s.name,
                    "count": sum(by_stage[s.status.value].values()),
                    "bureaus": by_stage[s.status.value],
                    "next_step": s.next_step,
                    "by": s.by,
                    "dag_id": s.dag_id,
                    "due": self.stage_due(s),
                    "next_run": run.isoformat() if run else None,
                }
            )
        return {
            "business_date": self.business_date,
            "as_of": self.as_of.isoformat(),
            "level": int(level),
            "status": level.label,
            "findings": [f.as_json() for f in findings],
            "stages": stages,
            "partners": [
                {
                    "bank_code": p.bank_code,
                    "unanswered": p.unanswered,
                    "not_delivered": p.not_delivered,
                    "oldest_sent": p.oldest_sent,
                    "age_days": p.age_days,
                    "e140_day": p.e140_day,
                    "days_to_e140": p.days_to_e140,
                    "by_e140_day": dict(p.by_e140_day),
                }
                for p in self.partners
            ],
            "factory": {"at_factory": self.at_factory, "oldest_perso": self.oldest_perso},
            "files": [asdict(f) for f in self.files],
            "undelivered": [
                {
                    "party": q.party,
                    "conn_id": q.conn_id,
                    "name": q.name,
                    "type": q.type,
                    "queued_at": q.queued_at.astimezone(zone).isoformat(),
                }
                for q in self.undelivered
            ],
            "waiting": [
                {
                    "party": w.party,
                    "conn_id": w.conn_id,
                    "name": w.name,
                    "what": w.what,
                    "since": w.since.astimezone(zone).isoformat(),
                }
                for w in self.waiting
            ],
            "refused_returns": self.refused_today,
        }


def _clock(at: datetime, ref: datetime) -> str:
    """``at`` in the zone of ``ref``: its time, with its date unless the same day."""
    at = at.astimezone(ref.tzinfo)
    return at.strftime("%H:%M") if at.date() == ref.date() else at.strftime("%Y-%m-%d %H:%M")


def _day(text: str) -> date:
    return date(int(text[:4]), int(text[4:6]), int(text[6:]))


def _midnight(day: date, zone: Any) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=zone)


def _names(items: Mapping[str, int], limit: int = 5) -> str:
    shown_items = [f"{k} {v:,}" for k, v in sorted(items.items())[:limit]]
    more = f", … {len(items) - limit} more" if len(items) > limit else ""
    return ", ".join(shown_items) + more


def _files(names: list[str], limit: int = 3) -> str:
    more = f", … {len(names) - limit} more" if len(names) > limit else ""
    return ", ".join(shown(n) for n in names[:limit]) + more


# ------------------------------------------------------------------ threshold checks


def _e140(status: WorkStatus, limits: Limits, overdue: bool) -> tuple[int, str]:
    counts: dict[str, int] = defaultdict(int)
    for p in status.partners:
        for day, n in p.by_e140_day:
            at = _midnight(_day(day), status.as_of.tzinfo)
            late = status.as_of > at + limits.e140_grace
            soon = not late and status.as_of >= at - limits.e140_warning
            if (overdue and late) or (not overdue and soon):
                counts[f"{p.bank_code} (E140 {day})"] += n
    return sum(counts.values()), _names(counts)


def _outbox(status: WorkStatus, limits: Limits, stuck: bool) -> tuple[int, str]:
    names = []
    for q in status.undelivered:
        age = status.as_of - q.queued_at
        if (stuck and age > limits.outbox_stuck) or (
            not stuck and limits.outbox_late < age <= limits.outbox_stuck
        ):
            names.append(f"{q.party}: {q.name}")
    return len(names), _files(names)


def _zip(status: WorkStatus, limits: Limits, overdue: bool) -> tuple[int, str]:
    names = []
    for w in status.waiting:
        late = status.as_of > w.since + timedelta(minutes=w.zip_wait_minutes) + limits.zip_grace
        if late == overdue:
            names.append(f"{w.party}: {w.name}")
    return len(names), _files(names)


def _cardrsp(status: WorkStatus, limits: Limits) -> tuple[int, str]:
    schedule = status.schedules.get("bureau_card_returns")
    if schedule is None:
        return 0, ""
    counts: dict[str, int] = defaultdict(int)
    for bureau, final_date, n in status.unreported:
        after = _midnight(_day(final_date) + timedelta(days=1), status.as_of.tzinfo)
        if status.as_of > schedule.next_run(after - timedelta(microseconds=1)) + (
            limits.cardrsp_grace
        ):
            counts[bureau] += n
    return sum(counts.values()), _names(counts)


def _refused(status: WorkStatus, limits: Limits) -> tuple[int, str]:
    n = status.refused_today
    return n, f"see `sscard refused-returns --business-date {status.business_date}`" if n else ""


def _rejected(status: WorkStatus, limits: Limits) -> tuple[int, str]:
    counts = {f.party: f.rejected for f in status.files if f.rejected}
    return sum(counts.values()), _names(counts)


def _unarchived(status: WorkStatus, limits: Limits) -> tuple[int, str]:
    names = [
        f"{u.party}: {u.name}"
        for u in status.unarchived
        if status.as_of - u.answered_at > limits.archive_late
    ]
    return len(names), _files(names)


def _factory(status: WorkStatus, limits: Limits) -> tuple[int, str]:
    today = status.as_of.date()
    counts = {
        day: n for day, n in status.perso_days if (today - _day(day)).days > limits.factory_days
    }
    return sum(counts.values()), ("PERSO of " + _names(counts)) if counts else ""


_CHECKS: Mapping[str, Callable[[WorkStatus, Limits], tuple[int, str]]] = MappingProxyType(
    {
        "e140_overdue": lambda s, lim: _e140(s, lim, overdue=True),
        "outbox_stuck": lambda s, lim: _outbox(s, lim, stuck=True),
        "zip_overdue": lambda s, lim: _zip(s, lim, overdue=True),
        "cardrsp_overdue": _cardrsp,
        "refused_returns": _refused,
        "e140_soon": lambda s, lim: _e140(s, lim, overdue=False),
        "outbox_late": lambda s, lim: _outbox(s, lim, stuck=False),
        "waiting_for_zip": lambda s, lim: _zip(s, lim, overdue=False),
        "rejected_files": _rejected,
        "archive_unfinished": _unarchived,
        "factory_slow": _factory,
    }
)


# --------------------------------------------------------------------------- rendering


def render(status: WorkStatus) -> str:
    """The report as text for a terminal or a task log."""
    level = status.level
    lines = [
        f"work status on {status.business_date}, as of "
        f"{status.as_of.strftime('%Y-%m-%d %H:%M %Z')}: {level.label.upper()} "
        f"(exit {int(level)})"
    ]
    for f in status.findings:
        lines.append(f"  {f.threshold.level.label:<15} {f.count:>7,}  {f.threshold.rule}")
        if f.detail:
            lines.append(f"  {'':<15} {'':>7}  {f.detail}")
        lines.append(f"  {'':<15} {'':>7}  what to do: {f.threshold.action}")

    lines.append("")
    lines.append("applications in progress, by stage (not yet reported to the bureau in CARDRSP):")
    by_stage: dict[str, dict[str, int]] = defaultdict(dict)
    for (bureau, state), n in sorted(status.applications.items()):
        by_stage[state][bureau] = n
    for s in STAGES:
        bureaus = by_stage[s.status.value]
        total = sum(bureaus.values())
        per = f"   ({_names(bureaus, 10)})" if bureaus else ""
        lines.append(f"  {s.name:<38} {total:>9,}{per}")
        if total:
            lines.append(f"      next: {s.next_step}")
            lines.append(f"      by {s.by}: {status.stage_due(s)}")

    lines.append("")
    lines.append("account requests partner banks have not answered:")
    if not status.partners:
        lines.append("  none")
    for p in status.partners:
        waiting = f"  {p.bank_code}  {p.unanswered:>9,} unanswered"
        if p.not_delivered:
            waiting += f" ({p.not_delivered:,} not delivered yet: no E140 clock)"
        if p.days_to_e140 is not None:
            waiting += (
                f", oldest delivered {p.oldest_sent} ({p.age_days} day(s) ago), "
                f"E140 on {p.e140_day}"
            )
        lines.append(waiting)
    oldest = f", oldest PERSO {status.oldest_perso}" if status.oldest_perso else ""
    lines.append(f"cards at the factory, not yet returned: {status.at_factory:,}{oldest}")

    lines.append("")
    lines.append(f"files on {status.business_date}, by counterparty:")
    if not status.files:
        lines.append("  none")
    else:
        head = ("accepted", "rejected", "waiting", "answered", ".rej", "sent", "delivered")
        lines.append(
            f"  {'party':<10}" + "".join(f"{h:>11}" for h in head) + f"{'undelivered':>13}"
        )
        for c in status.files:
            values = (c.accepted, c.rejected, c.waiting, c.answered, c.rej, c.sent, c.delivered)
            lines.append(
                f"  {c.party:<10}" + "".join(f"{v:>11,}" for v in values) + f"{c.undelivered:>13,}"
            )
    lines.append(f"files queued, not yet delivered: {len(status.undelivered)}")
    for q in status.undelivered[:20]:
        lines.append(
            f"  {q.party:<8} {shown(q.name)}  (queued {_clock(q.queued_at, status.as_of)})"
        )
    if len(status.undelivered) > 20:
        lines.append(f"  … and {len(status.undelivered) - 20} more")
    if status.waiting:
        lines.append(f"files waiting for a companion: {len(status.waiting)}")
    for w in status.waiting[:20]:
        lines.append(
            f"  {w.party:<8} {shown(w.name)}: {w.what} since {_clock(w.since, status.as_of)}"
        )
    lines.append(
        f"returned records refused on {status.business_date}: {status.refused_today:,}"
        + (
            f" (list them: sscard refused-returns --business-date {status.business_date})"
            if status.refused_today
            else ""
        )
    )
    return "\n".join(lines)


# --------------------------------------------------------------------------- reading


#: what is said of a URL that cannot be parsed; never the URL, which may hold a password
NOT_A_URL = (
    "SSCARD_DATABASE_URL is not a database URL (dialect+driver://user:password@host:port/"
    "database, or sqlite:///path)"
)


class DatabaseUnusable(Exception):
    """The hub's database cannot be read: missing, unreachable, not migrated, or at a
    revision this code does not know. The message is one line saying what to do."""


def _where(url: Any) -> str:
    if url.get_backend_name() == "sqlite":
        return str(url.database or ":memory:")
    port = f":{url.port}" if url.port else ""
    return f"{url.host or 'localhost'}{port}/{url.database or ''}"


def open_for_reading(url: str) -> Engine:
    """An engine that only reads the database at ``url``. SQLite: the file opened
    read-only (``mode=ro``), never created when missing. PostgreSQL: read-only
    transactions, a 5 s connect timeout."""
    from sqlalchemy import create_engine
    from sqlalchemy import exc as sa_exc
    from sqlalchemy.engine import make_url
    from sqlalchemy.pool import NullPool

    try:
        parsed = make_url(url)
    except (sa_exc.ArgumentError, ValueError) as exc:  # ValueError: a port that is no number
        raise DatabaseUnusable(NOT_A_URL) from exc
    if parsed.get_backend_name() == "sqlite":
        path = parsed.database or ""
        if path in ("", ":memory:") or not Path(path).is_file():
            raise DatabaseUnusable(
                f"no database at {path or '(in memory)'}: create it with `sscard db upgrade` "
                "or point SSCARD_DATABASE_URL at the hub's database"
            )
        uri = Path(path).resolve().as_uri() + "?mode=ro"

        def connect() -> sqlite3.Connection:
            return sqlite3.connect(uri, uri=True, timeout=10, check_same_thread=False)

        return create_engine(parsed, creator=connect, poolclass=NullPool, hide_parameters=True)
    args: dict[str, Any] = {}
    if parsed.get_backend_name() == "postgresql":
        args = {"connect_timeout": 5, "options": "-c default_transaction_read_only=on"}
    try:
        return create_engine(parsed, poolclass=NullPool, hide_parameters=True, connect_args=args)
    except (sa_exc.ArgumentError, ImportError) as exc:
        raise DatabaseUnusable(f"SSCARD_DATABASE_URL is not usable: {exc}") from exc


_REVISION = re.compile(r"^revision\b[^=]*=\s*['\"]([^'\"]+)['\"]", re.M)
_DOWN = re.compile(r"^down_revision\b[^=]*=(.*)$", re.M)


def _migrations() -> tuple[frozenset[str], frozenset[str]]:
    """The revisions of ``persistence/migrations`` and their heads, read from the
    migration files' ``revision`` and ``down_revision`` lines (Alembic's own loader takes
    longer than the whole report)."""
    import persistence

    folder = Path(persistence.__file__).parent / "migrations" / "versions"
    known: set[str] = set()
    parents: set[str] = set()
    for path in folder.glob("*.py"):
        source = path.read_text(encoding="utf-8")
        revision = _REVISION.search(source)
        if revision:
            known.add(revision.group(1))
            down = _DOWN.search(source)
            if down:
                parents.update(re.findall(r"['\"]([^'\"]+)['\"]", down.group(1)))
    return frozenset(known), frozenset(known - parents)


def _first_line(exc: BaseException) -> str:
    inner = getattr(exc, "orig", None) or exc
    text = str(inner).strip().splitlines()
    return shown(text[0]) if text else type(inner).__name__


@contextmanager
def reading(engine: Engine) -> Iterator[Connection]:
    """A connection to read from, after checking the database is at the migrations' head;
    every database error becomes :class:`DatabaseUnusable`."""
    from sqlalchemy import exc as sa_exc
    from sqlalchemy import text

    where = _where(engine.url)
    try:
        conn = engine.connect()
    except sa_exc.DBAPIError as exc:
        raise DatabaseUnusable(
            f"cannot reach the database at {where} ({_first_line(exc)}): check "
            "SSCARD_DATABASE_URL and that the database server is up"
        ) from exc
    with conn:
        try:
            found = set(conn.execute(text("SELECT version_num FROM alembic_version")).scalars())
        except sa_exc.DBAPIError as exc:
            raise DatabaseUnusable(
                f"the database at {where} is not migrated ({_first_line(exc)}): "
                "run `sscard db upgrade`"
            ) from exc
        known, heads = _migrations()
        if not found:
            raise DatabaseUnusable(
                f"the database at {where} is not migrated: run `sscard db upgrade`"
            )
        if not found <= known:
            raise DatabaseUnusable(
                f"the database at {where} is at revision {', '.join(sorted(found))}, which "
                f"this hub does not know (its newest is {', '.join(sorted(heads))}): install "
                "the hub's version that migrated it"
            )
        if found != heads:
            raise DatabaseUnusable(
                f"the database at {where} is at revision {', '.join(sorted(found))}, the hub "
                f"needs {', '.join(sorted(heads))}: run `sscard db upgrade`"
            )
        try:
            yield conn
        except sa_exc.DBAPIError as exc:
            raise DatabaseUnusable(
                f"reading the database at {where} failed ({_first_line(exc)})"
            ) from exc


def _utc(value: datetime | str) -> datetime:
    """SQLite keeps no zone: the hub writes UTC everywhere."""
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value if value.tzinfo else value.replace(tzinfo=UTC)


#: ``detail`` of a photo zip waiting for its data file (``persistence.registry.ZIP_ALONE``)
_ZIP_ALONE = "photo zip waiting for its data file"


def _rows(conn: Connection, sql: str, *stamps: str, **params: Any) -> list[Any]:
    """The rows of ``sql``; the parameters named in ``stamps`` are times (given in UTC)."""
    from sqlalchemy import DateTime, bindparam, text

    stamp = DateTime(timezone=True)
    stmt = text(sql).bindparams(*(bindparam(name, type_=stamp) for name in stamps))
    return list(conn.execute(stmt, params).all())


def work_status(
    engine: Engine,
    business_date: str,
    settings: StatusSettings,
    now: datetime | None = None,
) -> WorkStatus:
    """The report for ``business_date`` (YYYYMMDD, in the hub's zone), measured at
    ``now`` or, when ``now`` is None or later, at the end of the business date."""
    zone = ZoneInfo(settings.timezone)
    start = _midnight(_day(business_date), zone)
    end = _midnight(_day(business_date) + timedelta(days=1), zone)
    close = end - timedelta(seconds=1)
    as_of = close if now is None else min(now.astimezone(zone), close)
    party = settings.party_of
    window = {"start": start.astimezone(UTC), "end": end.astimezone(UTC)}
    with reading(engine) as conn:
        apps: dict[tuple[str, str], int] = {}
        unreported: list[tuple[str, str, int]] = []
        for r in _rows(
            conn,
            "SELECT bureau, status, final_date, COUNT(*) AS n FROM application_state "
            "WHERE cardrsp_name IS NULL GROUP BY bureau, status, final_date",
        ):
            apps[(r.bureau, r.status)] = apps.get((r.bureau, r.status), 0) + int(r.n)
            if r.final_date:
                unreported.append((r.bureau, r.final_date, int(r.n)))

        waits: dict[str, list[tuple[datetime | None, int]]] = defaultdict(list)
        for r in _rows(
            conn,
            "SELECT p.bank_code, p.request_name, COUNT(*) AS n, MIN(o.delivered_at) AS sent "
            "FROM partner_request p LEFT JOIN outbound_file o "
            "ON o.name = p.request_name AND o.type = 'ACCTOPEN' "
            "WHERE p.answered_date IS NULL GROUP BY p.bank_code, p.request_name",
        ):
            waits[r.bank_code].append((_utc(r.sent) if r.sent else None, int(r.n)))
        partners = [
            _partner(
                bank,
                waits[bank],
                business_date,
                settings.partner_wait_days.get(bank, 1),
                zone,
                settings.holidays,
            )
            for bank in sorted(waits)
        ]

        perso = sorted(
            (r.issue_date, int(r.n))
            for r in _rows(
                conn,
                "SELECT p.issue_date, COUNT(*) AS n FROM perso_record p "
                "JOIN application_state s ON s.application_id = p.application_id "
                "WHERE s.status = :s GROUP BY p.issue_date",
                s=ApplicationStatus.PERSO_SENT.value,
            )
        )

        undelivered = [
            QueuedFile(
                party.get(r.conn_id, r.conn_id), r.conn_id, r.name, r.type, _utc(r.created_at)
            )
            for r in _rows(
                conn,
                "SELECT conn_id, name, type, created_at FROM outbound_file "
                "WHERE delivered_at IS NULL ORDER BY created_at, id",
            )
        ]
        counts: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
        for r in _rows(
            conn,
            "SELECT conn_id, outcome, COUNT(*) AS n FROM received_file "
            "WHERE COALESCE(processed_at, first_seen_at) >= :start "
            "AND COALESCE(processed_at, first_seen_at) < :end GROUP BY conn_id, outcome",
            "start",
            "end",
            **window,
        ):
            counts[r.conn_id][r.outcome] += int(r.n)
        in_day = "created_at >= :start AND created_at < :end"
        for r in _rows(
            conn,
            f"SELECT conn_id, "
            f"SUM(CASE WHEN {in_day} AND type = 'REJ' THEN 1 ELSE 0 END) AS rej, "
            f"SUM(CASE WHEN {in_day} AND type <> 'REJ' AND source_file_id IS NOT NULL "
            f"THEN 1 ELSE 0 END) AS answered, "
            f"SUM(CASE WHEN {in_day} AND source_file_id IS NULL THEN 1 ELSE 0 END) AS sent, "
            "SUM(CASE WHEN delivered_at >= :start AND delivered_at < :end THEN 1 ELSE 0 END) "
            "AS delivered FROM outbound_file "
            f"WHERE ({in_day}) OR (delivered_at >= :start AND delivered_at < :end) "
            "GROUP BY conn_id",
            "start",
            "end",
            **window,
        ):
            for key in ("rej", "answered", "sent", "delivered"):
                counts[r.conn_id][key] += int(getattr(r, key) or 0)
        for item in undelivered:
            counts[item.conn_id]["undelivered"] += 1

        waiting = [
            WaitingFile(
                party.get(r.conn_id, r.conn_id),
                r.conn_id,
                r.name,
                r.detail if r.detail == _ZIP_ALONE else "waiting for its photo zip",
                _utc(r.first_seen_at),
                settings.zip_wait_minutes.get(r.conn_id, 120),
            )
            for r in _rows(
                conn,
                "SELECT conn_id, name, detail, first_seen_at FROM received_file "
                "WHERE outcome = 'waiting' ORDER BY first_seen_at, id",
            )
        ]
        unarchived = [
            UnarchivedFile(party.get(r.conn_id, r.conn_id), r.conn_id, r.name, _utc(r.at))
            for r in _rows(
                conn,
                "SELECT conn_id, name, COALESCE(processed_at, first_seen_at) AS at "
                "FROM received_file WHERE outcome IN ('accepted', 'rejected') "
                "AND archived_at IS NULL ORDER BY id",
            )
        ]
        refused = _rows(
            conn,
            "SELECT COUNT(*) AS n FROM return_problem WHERE business_date = :d",
            d=business_date,
        )[0]

    files = [
        PartyFiles(
            party=party.get(conn_id, conn_id),
            conn_id=conn_id,
            accepted=c["accepted"],
            rejected=c["rejected"],
            waiting=c["waiting"],
            answered=c["answered"],
            rej=c["rej"],
            sent=c["sent"],
            delivered=c["delivered"],
            undelivered=c["undelivered"],
        )
        for conn_id, c in sorted(counts.items(), key=lambda kv: (party.get(kv[0], kv[0]), kv[0]))
    ]
    return WorkStatus(
        business_date=business_date,
        as_of=as_of,
        applications=apps,
        partners=partners,
        at_factory=sum(n for _, n in perso),
        oldest_perso=perso[0][0] if perso else None,
        undelivered=undelivered,
        refused_today=int(refused.n),
        perso_days=tuple(perso),
        unreported=tuple(sorted(unreported)),
        files=files,
        waiting=waiting,
        unarchived=unarchived,
        schedules={dag: Schedule(dag, cron) for dag, cron in settings.crons.items()},
    )


def _partner(
    bank: str,
    files: list[tuple[datetime | None, int]],
    business_date: str,
    wait_days: int,
    zone: ZoneInfo,
    holidays: tuple[str, ...] = (),
) -> PartnerWait:
    """A partner's open requests: a request delivered on day S waits to the end of
    S + ``wait_days`` business days and fails E140 the day after
    (:func:`issuance.accounts.expire_account_requests`)."""
    from reconciliation.daily import add_business_days

    def e140_of(sent: date) -> date:
        last = add_business_days(sent.strftime("%Y%m%d"), wait_days, holidays)
        return _day(last) + timedelta(days=1)

    waiting = sum(n for _, n in files)
    by_day: dict[str, int] = defaultdict(int)
    for sent, n in files:
        if sent is not None:
            day = e140_of(sent.astimezone(zone).date())
            by_day[day.strftime("%Y%m%d")] += n
    delivered = sum(by_day.values())
    if not by_day:
        return PartnerWait(bank, waiting, waiting, "", 0, None)
    sent_days = [s.astimezone(zone).date() for s, _ in files if s is not None]
    oldest = min(sent_days)
    e140 = e140_of(oldest)
    today = _day(business_date)
    return PartnerWait(
        bank_code=bank,
        unanswered=waiting,
        not_delivered=waiting - delivered,
        oldest_sent=oldest.strftime("%Y%m%d"),
        age_days=(today - oldest).days,
        days_to_e140=max((e140 - today).days, 0),
        e140_day=e140.strftime("%Y%m%d"),
        by_e140_day=tuple(sorted(by_day.items())),
    )


# ------------------------------------------------------------------ refused returns


@dataclass(frozen=True)
class RefusedReturn:
    """A returned record the hub refused to apply (ICD §5.6): its file, line, key (a
    card_no or the hub's req_no) and problem."""

    file_name: str
    line_no: int
    key: str
    problem: str
    business_date: str

    def as_json(self) -> dict[str, Any]:
        return {
            "file": self.file_name,
            "line": self.line_no,
            "key": self.key,
            "problem": self.problem,
            "business_date": self.business_date,
        }


#: a run of digits as long as a PAN or an ID number (18 characters, the last may be X)
_PERSONAL = re.compile(r"[0-9]{14,}[0-9Xx]")


def masked_key(key: str) -> str:
    """A refused record's key as stored, unless it looks like an ID number or a PAN (a
    counterparty put one in the key's field): then its first 4 characters only."""
    return key[:4] + "…" if _PERSONAL.search(key) else shown(key)


def refused_returns(engine: Engine, business_date: str) -> list[RefusedReturn]:
    """The returned records refused on ``business_date``, by file and line."""
    from sqlalchemy import text

    with reading(engine) as conn:
        found = conn.execute(
            text(
                "SELECT file_name, line_no, key, problem, business_date FROM return_problem "
                "WHERE business_date = :d ORDER BY file_name, line_no, id"
            ),
            {"d": business_date},
        ).all()
    return [
        RefusedReturn(
            shown(r.file_name), int(r.line_no), masked_key(r.key), r.problem, r.business_date
        )
        for r in found
    ]


def render_refused(business_date: str, records: list[RefusedReturn]) -> str:
    lines = [
        f"returned records refused on {business_date} (table return_problem): {len(records):,}"
    ]
    if records:
        width = max(len(r.file_name) for r in records)
        lines.append(f"  {'file':<{width}}  {'line':>7}  {'key':<16} problem")
        for r in records:
            lines.append(f"  {r.file_name:<{width}}  {r.line_no:>7}  {r.key:<16} {r.problem}")
    return "\n".join(lines)
