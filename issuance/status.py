"""Where the work stands: a report for operations (``sscard status``).

Counts of applications per bureau and status, account requests partner banks have not
answered (how many, the oldest, how many days before E140), cards at the factory not yet
returned, files queued but not yet delivered, and production records refused today. No
ID number, name or PAN appears: counts, dates and file names only.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import date
from typing import Any

from sqlalchemy import Engine

from issuance.accounts import PERSO_SENT
from persistence.issuance_store import rows


@dataclass(frozen=True)
class PartnerWait:
    bank_code: str
    unanswered: int
    oldest_sent: str
    age_days: int
    #: days left before the oldest request fails E140 (0: it fails at the next run)
    days_to_e140: int


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
        for r in rows(
            conn,
            "SELECT bank_code, COUNT(*) AS n, MIN(sent_date) AS oldest FROM partner_request "
            "WHERE answered_date IS NULL GROUP BY bank_code ORDER BY bank_code",
        ):
            age = _days(r.oldest, business_date)
            wait = partner_wait_days.get(r.bank_code, 1)
            partners.append(PartnerWait(r.bank_code, int(r.n), r.oldest, age, max(wait - age, 0)))
        factory = rows(
            conn,
            "SELECT COUNT(*) AS n, MIN(p.issue_date) AS oldest FROM perso_record p "
            "JOIN application_state st ON st.application_id = p.application_id "
            "WHERE st.status = :s",
            s=PERSO_SENT,
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
        lines.append(
            f"  {p.bank_code}  {p.unanswered:>9,} unanswered, oldest sent {p.oldest_sent} "
            f"({p.age_days} day(s) ago; E140 in {p.days_to_e140} day(s))"
        )
    oldest = f", oldest PERSO {status.oldest_perso}" if status.oldest_perso else ""
    lines.append(f"cards at the factory, not yet returned: {status.at_factory:,}{oldest}")
    lines.append(f"files queued, not yet delivered: {len(status.undelivered)}")
    for conn_id, name, queued in status.undelivered[:20]:
        lines.append(f"  {conn_id}  {name}  (queued {queued})")
    if len(status.undelivered) > 20:
        lines.append(f"  … and {len(status.undelivered) - 20} more")
    lines.append(f"production records refused today (table return_problem): {status.refused_today}")
    return "\n".join(lines)
