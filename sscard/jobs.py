"""What a DAG task calls: build the settings and adapters for one counterparty from the
configuration and an Airflow connection, run one service, return a small summary for
XCom. Nothing here imports Airflow; the DAG passes the connection in.

Each job works in a working directory of its own, empty when it starts and removed when
it ends: whatever a later task needs is in the hub database or the object storage
(``SSCARD_STORAGE_URL``), so any task may run on any worker."""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import DateTime, bindparam, select, text

from banking.pan import PanRange
from exchange.answers import receive
from exchange.flows import Party, flow
from exchange.outbox import Drop, deliver
from exchange.pickup import PartyInbox, raise_if_failed
from exchange.storage import Storage
from issuance.accounts import (
    apply_account_answers,
    e140_cutoff,
    expire_account_requests,
    open_hub_accounts,
    send_account_requests,
)
from issuance.apply_rules import rules_for
from issuance.card_returns import write_card_returns
from issuance.intake import IntakeContext, run_intake
from issuance.personalisation import dispatch_perso
from issuance.production import apply_production_results
from persistence.db import engine_for
from persistence.models import ReceivedFile
from sscard import alerts
from sscard.config import (
    database_url,
    load_counterparties,
    storage_options,
    storage_url,
    work_root,
)
from transport.sftp import SftpRemote, SftpSettings

log = logging.getLogger("sscard.jobs")


def business_date_of(when: datetime, timezone: str = "Asia/Shanghai") -> str:
    """The business date of a moment: its date in Asia/Shanghai (ICD §3)."""
    return when.astimezone(ZoneInfo(timezone)).strftime("%Y%m%d")


def storage() -> Storage:
    """The hub's object storage (``SSCARD_STORAGE_URL``)."""
    return Storage(storage_url(), storage_options())


@contextmanager
def working_directory() -> Iterator[Path]:
    """A working directory of this task's own, empty, removed when the task ends."""
    root = work_root()
    if root is not None:
        root.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="sscard-", dir=root) as path:
        yield Path(path)


def bureau_codes() -> list[str]:
    return [b.code for b in load_counterparties().bureaus]


def intake_context(bureau_code: str, when: datetime, work_dir: Path) -> IntakeContext:
    parties = load_counterparties()
    bureau = parties.bureau(bureau_code)
    business_date = business_date_of(when, parties.timezone)
    return IntakeContext(
        conn_id=bureau.conn_id,
        hub=parties.hub,
        bureau=bureau.code,
        encoding=bureau.encoding,
        pickup=bureau.pickup,
        drop=bureau.drop,
        business_date=business_date,
        now=when,
        rules=rules_for(business_date, parties.bank_codes, bureau.code),
        max_forward_days=int(bureau.option("max_forward_days", 5)),
        zip_wait=timedelta(minutes=int(bureau.option("zip_wait_minutes", 120))),
        work_dir=work_dir,
        store=storage(),
    )


def apply_intake(bureau_code: str, when: datetime, connection: Any) -> dict[str, Any]:
    """Intake of every complete APPLY file of one bureau; a summary per file."""
    engine = engine_for(database_url())
    with (
        working_directory() as work_dir,
        SftpRemote(SftpSettings.from_airflow(connection)) as remote,
    ):
        ctx = intake_context(bureau_code, when, work_dir)
        outcomes = run_intake(remote, engine, ctx)
    _alert_zips_missing(engine, ctx, [o.name for o in outcomes if o.outcome == "waiting"])
    return {
        "bureau": bureau_code,
        "business_date": ctx.business_date,
        "files": [
            {
                "name": o.name,
                "outcome": o.outcome,
                "file_code": o.file_code,
                "counts": o.counts,
                "response": o.response,
            }
            for o in outcomes
        ],
    }


def _alert_zips_missing(engine: Any, ctx: IntakeContext, names: list[str]) -> None:
    """Alert on each APPLY file waiting for its photo zip past half its ``zip_wait``."""
    if not names:
        return
    with engine.connect() as conn:
        seen = conn.execute(
            select(ReceivedFile.name, ReceivedFile.first_seen_at).where(
                ReceivedFile.conn_id == ctx.conn_id,
                ReceivedFile.outcome == "waiting",
                ReceivedFile.name.in_(names),
            )
        ).all()
    for name, first_seen in seen:
        if first_seen.tzinfo is None:
            first_seen = first_seen.replace(tzinfo=UTC)
        if ctx.now - first_seen >= ctx.zip_wait / 2:
            alerts.zip_missing(ctx.bureau, name, first_seen, first_seen + ctx.zip_wait)


def deliver_outbox(bureau_code: str, when: datetime, connection: Any) -> int:
    """Publish the outbox of one bureau's connection (responses, ``.rej``)."""
    parties = load_counterparties()
    bureau = parties.bureau(bureau_code)
    return _publish(connection, engine_for(database_url()), bureau.conn_id, when)


# --------------------------------------------------------------------------- issuance after intake


def _party_inbox(code: str, when: datetime, work_dir: Path) -> PartyInbox:
    parties = load_counterparties()
    party = parties.party(code)
    return PartyInbox(
        conn_id=party.conn_id,
        party=party.code,
        hub=parties.hub,
        pickup=party.pickup,
        drop=party.drop,
        encoding=party.encoding,
        business_date=business_date_of(when, parties.timezone),
        now=when,
        work_dir=work_dir,
        store=storage(),
        max_back_days=int(party.option("max_back_days", 10)),
    )


def drop_of(party: Any, when: datetime) -> Drop:
    """Where the hub's files for ``party`` go: its connection's drop directory."""
    return Drop(party.conn_id, party.drop, when, storage())


def _remote(connection: Any) -> SftpRemote:
    return SftpRemote(SftpSettings.from_airflow(connection))


def _publish(connection: Any, engine: Any, conn_id: str, when: datetime) -> int:
    """Deliver the outbox of ``conn_id`` over ``connection``."""
    with _remote(connection) as remote:
        return deliver(remote, engine, storage(), conn_id, when)


def partner_codes() -> list[str]:
    return [p.code for p in load_counterparties().partner_banks]


def factory_codes() -> list[str]:
    return [f.code for f in load_counterparties().factories]


def open_hub_accounts_job(when: datetime) -> dict[str, int]:
    """Pre-open hub accounts with PANs for the hub's accepted applications."""
    parties = load_counterparties()
    result = open_hub_accounts(
        engine_for(database_url()),
        parties.hub,
        [PanRange(prefix, length) for prefix, length in parties.pan_ranges],
        business_date_of(when, parties.timezone),
    )
    return {"opened": result.new_accounts, "kept_number": result.kept_numbers}


def request_partner_accounts(bank_code: str, when: datetime, connection: Any) -> dict[str, Any]:
    """ACCTOPEN to one partner bank, then publish its outbox."""
    parties = load_counterparties()
    partner = parties.party(bank_code)
    engine = engine_for(database_url())
    with working_directory() as work_dir:
        name = send_account_requests(
            engine,
            hub=parties.hub,
            bank_code=partner.code,
            conn_id=partner.conn_id,
            drop=partner.drop,
            encoding=partner.encoding,
            business_date=business_date_of(when, parties.timezone),
            now=when,
            work_dir=work_dir,
            store=storage(),
        )
    delivered = _publish(connection, engine, partner.conn_id, when)
    return {"partner": bank_code, "request": name, "delivered": delivered}


def partner_account_returns(bank_code: str, when: datetime, connection: Any) -> dict[str, Any]:
    """ACCTOPENRSP from one partner bank; E140 for requests past partner_wait."""
    parties = load_counterparties()
    engine = engine_for(database_url())
    with working_directory() as work_dir, _remote(connection) as remote:
        inbox = _party_inbox(bank_code, when, work_dir)

        def handler(conn: Any, reader: Any, landed: Any, file_id: int) -> dict[str, int]:
            return apply_account_answers(conn, reader, landed, file_id, inbox.business_date)

        outcomes = receive(remote, engine, inbox, flow("ACCTOPENRSP", Party.PARTNER), handler)
        wait_days = int(parties.party(bank_code).option("partner_wait_days", 1))
        expired = expire_account_requests(
            engine, bank_code, inbox.business_date, wait_days, parties.holidays
        )
        if expired:
            alerts.e140_expired(bank_code, expired, wait_days)
        _alert_e140_due(engine, bank_code, when, wait_days, parties.holidays)
        delivered = deliver(remote, engine, inbox.store, inbox.conn_id, when)
    raise_if_failed(outcomes)  # after the deadlines and the deliveries that do not wait
    return {
        "partner": bank_code,
        "files": [_summary(o) for o in outcomes],
        "expired_e140": expired,
        "delivered": delivered,
    }


#: how long before partner requests fail E140 their partner is chased (an alert)
E140_WARNING = timedelta(hours=2)


def _alert_e140_due(
    engine: Any, bank_code: str, when: datetime, wait_days: int, holidays: tuple[str, ...] = ()
) -> None:
    """Alert when requests still unanswered fail E140 at the next midnight (Asia/Shanghai,
    as ``expire_account_requests`` counts) and that is less than ``E140_WARNING`` away."""
    local = when.astimezone(ZoneInfo("Asia/Shanghai"))
    midnight = datetime.combine(local.date() + timedelta(days=1), time(), local.tzinfo)
    if midnight - local > E140_WARNING:
        return
    cutoff = e140_cutoff(midnight.strftime("%Y%m%d"), wait_days, holidays)
    with engine.connect() as conn:
        count = conn.scalar(_DUE_FOR_E140, {"b": bank_code, "cutoff": cutoff.astimezone(UTC)})
    if count:
        alerts.e140_due(bank_code, int(count), midnight, wait_days)


_DUE_FOR_E140 = text(
    "SELECT COUNT(*) FROM partner_request p "
    "JOIN outbound_file o ON o.name = p.request_name AND o.type = 'ACCTOPEN' "
    "WHERE p.bank_code = :b AND p.answered_date IS NULL "
    "AND o.delivered_at IS NOT NULL AND o.delivered_at < :cutoff"
).bindparams(bindparam("cutoff", type_=DateTime(timezone=True)))


def served_bureaus(factory_code: str) -> tuple[str, ...]:
    """The bureaus whose cards a factory makes: those naming it (option ``factory``), and
    those naming none when it is the first configured factory."""
    parties = load_counterparties()
    first = parties.factories[0].code if parties.factories else None
    return tuple(
        b.code
        for b in parties.bureaus
        if b.option("factory", None) == factory_code
        or (b.option("factory", None) is None and factory_code == first)
    )


def dispatch_to_factory(factory_code: str, when: datetime, connection: Any) -> dict[str, Any]:
    """PERSO files and photo zips for every card ready for production, then publish."""
    parties = load_counterparties()
    factory = parties.party(factory_code)
    engine = engine_for(database_url())
    with working_directory() as work_dir:
        names = dispatch_perso(
            engine,
            hub=parties.hub,
            factory=factory.code,
            conn_id=factory.conn_id,
            drop=factory.drop,
            business_date=business_date_of(when, parties.timezone),
            now=when,
            bureaus=served_bureaus(factory_code),
            work_dir=work_dir,
            store=storage(),
            max_records=int(factory.option("max_records", 10_000)),
        )
    delivered = _publish(connection, engine, factory.conn_id, when)
    return {"factory": factory_code, "perso": names, "delivered": delivered}


def factory_returns(factory_code: str, when: datetime, connection: Any) -> dict[str, Any]:
    """PERSORSP from one factory."""
    engine = engine_for(database_url())
    with working_directory() as work_dir, _remote(connection) as remote:
        inbox = _party_inbox(factory_code, when, work_dir)

        def handler(conn: Any, reader: Any, landed: Any, file_id: int) -> dict[str, int]:
            return apply_production_results(conn, reader, landed, file_id, inbox.business_date)

        outcomes = receive(remote, engine, inbox, flow("PERSORSP", Party.FACTORY), handler)
        delivered = deliver(remote, engine, inbox.store, inbox.conn_id, when)
    raise_if_failed(outcomes)
    return {
        "factory": factory_code,
        "files": [_summary(o) for o in outcomes],
        "delivered": delivered,
    }


def bureau_card_returns(bureau_code: str, when: datetime, connection: Any) -> dict[str, Any]:
    """The day's CARDRSP for one bureau, then publish."""
    parties = load_counterparties()
    bureau = parties.bureau(bureau_code)
    engine = engine_for(database_url())
    with working_directory() as work_dir:
        name = write_card_returns(
            engine,
            hub=parties.hub,
            bureau=bureau.code,
            conn_id=bureau.conn_id,
            drop=bureau.drop,
            encoding=bureau.encoding,
            business_date=business_date_of(when, parties.timezone),
            now=when,
            work_dir=work_dir,
            store=storage(),
        )
    delivered = _publish(connection, engine, bureau.conn_id, when)
    return {"bureau": bureau_code, "cardrsp": name, "delivered": delivered}


def _summary(o: Any) -> dict[str, Any]:
    return {"name": o.name, "outcome": o.outcome, "file_code": o.file_code, "counts": o.counts}
