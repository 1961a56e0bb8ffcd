"""Where the work stands: a report for operations (``sscard status``).

Counts of applications per bureau and status, account requests partner banks have not
answered (how many, how many not delivered yet, the oldest delivered, how many days
before E140), cards at the factory not yet
returned, files queued but not yet delivered, and production records refused today. No
ID number, name or PAN appears: counts, dates and file names only.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import UTC, date
from typing import Any

from sqlalchemy import Engine, and_, func, select

from issuance.accounts import SHANGHAI
from persistence.issuance_store import rows
from persistence.models import OutboundFile, PartnerRequest
from schemas.states import ApplicationStatus


@dataclass(frozen=True)
class PartnerWait:
    bank_code: str
    unanswered: int
    #: of them, requests whose ACCTOPEN has not reached the partner yet (no E140 clock)
    not_delivered: int
    #: the day (Asia/Shanghai) the oldest delivered one reached the partner ("" if none)
    oldest_sent: str
    age_days: int
    #: days left before the oldest delivered request fails E140 (0: at the next run;
    #: None: none has been delivered)
    days_to_e140: int | None


@dataclass(frozen=True)
class WorkStatus:
    business_date: str
    #: (bureau, status) → applications
    applications: dict[tuple[str, str], int]
    partners: list[PartnerWait]
    at_factory: int
    oldest_perso: str | None
    undelivered: list[tuple[str, str, str]]
    refused_today: int

    def as_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["applications"] = [
            {"bureau": b, "status": s, "count": n}
            for (b, s), n in sorted(self.applications.items())
        ]
        out["undelivered"] = [
            {"conn_id": c, "name": n, "queued_at": t} for c, n, t in self.undelivered
        ]
        return out


def _days(a: str, b: str) -> int:
    return (
        date(int(b[:4]), int(b[4:6]), int(b[6:])) - date(int(a[:4]), int(a[4:6]), int(a[6:]))
    ).days


def work_status(
    engine: Engine, business_date: str, partner_wait_days: dict[str, int]
) -> WorkStatus:
    """The report as of ``business_date`` (YYYYMMDD, Asia/Shanghai)."""
    with engine.connect() as conn:
        apps = {
            (r.bureau, r.status): int(r.n)
            for r in rows(
                conn,
                "SELECT bureau, status, COUNT(*) AS n FROM application_state "
                "WHERE cardrsp_name IS NULL GROUP BY bureau, status",
            )
        }
        partners = []
        request, sent = PartnerRequest.__table__.c, OutboundFile.__table__.c
        for r in conn.execute(
            select(
                request.bank_code,
                func.count().label("n"),
                func.count(sent.delivered_at).label("delivered"),
                func.min(sent.delivered_at).label("oldest"),
            )
            .select_from(
                PartnerRequest.__table__.outerjoin(
                    OutboundFile.__table__,
                    and_(sent.name == request.request_name, sent.type == "ACCTOPEN"),
                )
            )
            .where(request.answered_date.is_(None))
            .group_by(request.bank_code)
            .order_by(request.bank_code)
        ):
            waiting, delivered = int(r.n), int(r.delivered)
            if r.oldest is None:
                partners.append(PartnerWait(r.bank_code, waiting, waiting, "", 0, None))
                continue
            when = r.oldest if r.oldest.tzinfo else r.oldest.replace(tzinfo=UTC)
            oldest = when.astimezone(SHANGHAI).strftime("%Y%m%d")
            age = _days(oldest, business_date)
            wait = partner_wait_days.get(r.bank_code, 1)
            partners.append(
                PartnerWait(
                    r.bank_code, waiting, waiting - delivered, oldest, age, max(wait - age, 0)
                )
            )
        factory = rows(
            conn,
            "SELECT COUNT(*) AS n, MIN(p.issue_date) AS oldest FROM perso_record p "
            "JOIN application_state st ON st.application_id = p.application_id "
            "WHERE st.status = :s",
            s=ApplicationStatus.PERSO_SENT,
        )[0]
        undelivered = [
            (r.conn_id, r.name, str(r.created_at))
            for r in rows(
                conn,
                "SELECT conn_id, name, created_at FROM outbound_file WHERE delivered_at IS NULL "
                "ORDER BY id",
            )
        ]
        refused = rows(
            conn,
            "SELECT COUNT(*) AS n FROM return_problem WHERE business_date = :d",
            d=business_date,
        )[0]
    return WorkStatus(
        business_date=business_date,
        applications=apps,
        partners=partners,
        at_factory=int(factory.n),
        oldest_perso=factory.oldest,
        undelivered=undelivered,
        refused_today=int(refused.n),
    )


def render(status: WorkStatus) -> str:
    """The report as text for a terminal or a task log."""
    lines = [f"work status on {status.business_date} (applications not yet reported in CARDRSP)"]
    if not status.applications:
        lines.append("  no application in progress")
    for (bureau, state), n in sorted(status.applications.items()):
        lines.append(f"  {bureau}  {state:<13} {n:>9,}")
    lines.append("account requests unanswered by partner banks:")
    if not status.partners:
        lines.append("  none")
    for p in status.partners:
        waiting = f"  {p.bank_code}  {p.unanswered:>9,} unanswered"
        if p.not_delivered:
            waiting += f" ({p.not_delivered:,} not delivered yet: no E140 clock)"
        if p.days_to_e140 is not None:
            waiting += (
                f", oldest sent {p.oldest_sent} "
                f"({p.age_days} day(s) ago; E140 in {p.days_to_e140} day(s))"
            )
        lines.append(waiting)
    oldest = f", oldest PERSO {status.oldest_perso}" if status.oldest_perso else ""
    lines.append(f"cards at the factory, not yet returned: {status.at_factory:,}{oldest}")
    lines.append(f"files queued, not yet delivered: {len(status.undelivered)}")
    for conn_id, name, queued in status.undelivered[:20]:
        lines.append(f"  {conn_id}  {name}  (queued {queued})")
    if len(status.undelivered) > 20:
        lines.append(f"  … and {len(status.undelivered) - 20} more")
    lines.append(f"production records refused today (table return_problem): {status.refused_today}")
    return "\n".join(lines)
