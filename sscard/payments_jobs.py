"""What the payments DAGs' tasks call (benefit payments, statements, partner banks' part,
the end of the payments day): settings and adapters from the configuration and an Airflow
connection, one service, a small summary for XCom. Nothing here imports Airflow."""

from __future__ import annotations

import logging
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import Any

from exchange.answers import check_answer_header, check_request_header, receive
from exchange.flows import Party, flow
from exchange.outbox import Drop, deliver
from exchange.pickup import raise_if_failed
from payments import settle
from payments.intake import DisbContext, apply_disb
from persistence.db import engine_for
from sscard.config import database_url, load_counterparties
from sscard.jobs import (
    _party_inbox,
    _publish,
    _remote,
    _summary,
    business_date_of,
    storage,
    working_directory,
)

log = logging.getLogger("sscard.jobs")


def payment_system_codes() -> list[str]:
    return [p.code for p in load_counterparties().payment_systems]


def _drop(party: Any, when: datetime) -> Drop:
    return Drop(party.conn_id, party.drop, when, storage())


def _post_and_answer(
    engine: Any, when: datetime, business_date: str, work_dir: Path
) -> dict[str, Any]:
    """Post every batch whose funding is complete, and queue the DISBRSP of every batch
    whose lines all have their outcome (for every bureau)."""
    parties = load_counterparties()
    posted = settle.post_funded(engine, hub=parties.hub, business_date=business_date, now=when)
    answered: list[str] = []
    for bureau in parties.bureaus:
        with engine.begin() as conn:
            answered += settle.answer_batches(
                conn,
                bureau=bureau.code,
                dest=_drop(bureau, when),
                encoding=bureau.encoding,
                business_date=business_date,
                work_dir=work_dir,
            )
    return {"posted_batches": posted.batches, "credited": posted.credited, "answered": answered}


def disbursement_intake(bureau_code: str, when: datetime, connection: Any) -> dict[str, Any]:
    """A bureau's DISB files checked and stored (each batch waits for its funding);
    batches already funded are posted and answered; publish."""
    parties = load_counterparties()
    bureau = parties.bureau(bureau_code)
    engine = engine_for(database_url())
    with working_directory() as work_dir, _remote(connection) as remote:
        inbox = replace(
            _party_inbox(bureau_code, when, work_dir), max_forward_days=bureau.max_forward_days
        )

        def handler(conn: Any, reader: Any, landed: Any, file_id: int) -> dict[str, int]:
            ctx = DisbContext(
                parties.hub, bureau_code, inbox.business_date, file_id, reader.header.batch_no
            )
            return apply_disb(conn, reader, ctx)

        outcomes = receive(
            remote,
            engine,
            inbox,
            flow("DISB", Party.BUREAU),
            handler,
            check_header=check_request_header,
        )
        done = _post_and_answer(engine, when, inbox.business_date, work_dir)
        delivered = deliver(remote, engine, inbox.store, inbox.conn_id, when)
    raise_if_failed(outcomes)
    return {
        "bureau": bureau_code,
        "files": [_summary(o) for o in outcomes],
        **done,
        "delivered": delivered,
    }


def statement_intake(system_code: str, when: datetime, connection: Any) -> dict[str, Any]:
    """The payment system's STMT files: funding, returns and partner settlements posted
    once each, anything else an unidentified item; funded batches posted and answered."""
    from reconciliation.statements import apply_statement

    engine = engine_for(database_url())
    with working_directory() as work_dir, _remote(connection) as remote:
        inbox = _party_inbox(system_code, when, work_dir)

        def handler(conn: Any, reader: Any, landed: Any, file_id: int) -> dict[str, int]:
            return apply_statement(
                conn,
                reader,
                sender=system_code,
                file_id=file_id,
                business_date=inbox.business_date,
                now=when,
            )

        outcomes = receive(
            remote,
            engine,
            inbox,
            flow("STMT", Party.PAYMENT),
            handler,
            check_header=check_answer_header,
        )
        done = _post_and_answer(engine, when, inbox.business_date, work_dir)
    raise_if_failed(outcomes)  # the DISBRSP queued are delivered by the DAG's next task
    return {"payment_system": system_code, "files": [_summary(o) for o in outcomes], **done}


def partner_disbursements(bank_code: str, when: datetime, connection: Any) -> dict[str, Any]:
    """One partner bank's part: funded lines of its accounts sent in a DISB of the hub's,
    its DISBRSP merged back, ``140`` past partner_wait; publish."""
    parties = load_counterparties()
    bank = parties.party(bank_code)
    engine = engine_for(database_url())
    with working_directory() as work_dir, _remote(connection) as remote:
        inbox = _party_inbox(bank_code, when, work_dir)
        sent = settle.send_partner_disb(
            engine,
            hub=parties.hub,
            bank_code=bank_code,
            dest=_drop(bank, when),
            encoding=bank.encoding,
            business_date=inbox.business_date,
            work_dir=work_dir,
        )

        def handler(conn: Any, reader: Any, landed: Any, file_id: int) -> dict[str, int]:
            return settle.apply_partner_disbrsp(
                conn,
                reader,
                bank_code=bank_code,
                business_date=inbox.business_date,
                now=when,
                file_name=landed.name,
            )

        outcomes = receive(remote, engine, inbox, flow("DISBRSP", Party.PARTNER), handler)
        expired = settle.expire_partner_lines(
            engine,
            bank_code=bank_code,
            wait_days=int(bank.option("partner_wait_days", 1)),
            business_date=inbox.business_date,
            now=when,
        )
        delivered = deliver(remote, engine, inbox.store, inbox.conn_id, when)
    raise_if_failed(outcomes)
    return {
        "partner": bank_code,
        "sent": sent,
        "files": [_summary(o) for o in outcomes],
        "expired_140": expired,
        "delivered": delivered,
    }


def answer_bureau(bureau_code: str, when: datetime, connection: Any) -> dict[str, Any]:
    """The bureau's DISBRSP of every batch whose lines all have their outcome; publish."""
    parties = load_counterparties()
    bureau = parties.bureau(bureau_code)
    engine = engine_for(database_url())
    business_date = business_date_of(when, parties.timezone)
    with working_directory() as work_dir:
        with engine.begin() as conn:
            answered = settle.answer_batches(
                conn,
                bureau=bureau_code,
                dest=_drop(bureau, when),
                encoding=bureau.encoding,
                business_date=business_date,
                work_dir=work_dir,
            )
    delivered = _publish(connection, engine, bureau.conn_id, when)
    return {"bureau": bureau_code, "answered": answered, "delivered": delivered}
