"""What a DAG task calls: build the settings and adapters for one counterparty from the
configuration and an Airflow connection, run one service, return a small summary for
XCom. Nothing here imports Airflow; the DAG passes the connection in."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from issuance.apply_rules import rules_for
from issuance.intake import IntakeContext, deliver, run_intake
from persistence.db import engine_for
from sscard.config import database_url, load_counterparties, var_dir
from transport.sftp import SftpRemote, SftpSettings

log = logging.getLogger("sscard.jobs")


def business_date_of(when: datetime, timezone: str = "Asia/Shanghai") -> str:
    """The business date of a moment: its date in Asia/Shanghai (ICD §3)."""
    return when.astimezone(ZoneInfo(timezone)).strftime("%Y%m%d")


def bureau_codes() -> list[str]:
    return [b.code for b in load_counterparties().bureaus]


def intake_context(bureau_code: str, when: datetime) -> IntakeContext:
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
        var_dir=var_dir(),
    )


def apply_intake(bureau_code: str, when: datetime, connection: Any) -> dict[str, Any]:
    """Intake of every complete APPLY file of one bureau; a summary per file."""
    ctx = intake_context(bureau_code, when)
    engine = engine_for(database_url())
    with SftpRemote(SftpSettings.from_airflow(connection)) as remote:
        outcomes = run_intake(remote, engine, ctx)
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


def deliver_outbox(bureau_code: str, when: datetime, connection: Any) -> int:
    """Publish the outbox of one bureau's connection (responses, ``.rej``)."""
    parties = load_counterparties()
    bureau = parties.bureau(bureau_code)
    engine = engine_for(database_url())
    with SftpRemote(SftpSettings.from_airflow(connection)) as remote:
        return deliver(remote, engine, bureau.conn_id, when)
