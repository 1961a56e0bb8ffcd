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
from exchange.outbox import deliver
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
    drop_of,
    storage,
    working_directory,
)

log = logging.getLogger("sscard.jobs")


def payment_system_codes() -> list[str]:
    return [p.code for p in load_counterparties().payment_systems]


def _post_and_answer(
    engine: Any, when: datetime, business_date: str, work_dir: Path
) -> dict[str, Any]:
    """Post every batch whose funding is complete, and queue the DISBRSP of every batch
    whose lines all have their outcome (for every bureau)."""
    parties = load_counterparties()
    posted = settle.post_funded(
        engine,
        hub=parties.hub,
        business_date=business_date,
        now=when,
        pay_before_funding=[b.code for b in parties.bureaus if b.pay_before_funding],
        refuse_preopened=[b.code for b in parties.bureaus if not b.credit_preopened],
    )
    answered: list[str] = []
    for bureau in parties.bureaus:
        with engine.begin() as conn:
            answered += settle.answer_batches(
                conn,
                bureau=bureau.code,
                dest=drop_of(bureau, when),
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
                parties.hub,
                bureau_code,
                inbox.business_date,
                file_id,
                reader.header.batch_no,
                credit_preopened=bureau.credit_preopened,
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
            dest=drop_of(bank, when),
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
            holidays=parties.holidays,
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
                dest=drop_of(bureau, when),
                encoding=bureau.encoding,
                business_date=business_date,
                work_dir=work_dir,
            )
    delivered = _publish(connection, engine, bureau.conn_id, when)
    return {"bureau": bureau_code, "answered": answered, "delivered": delivered}


def business_date_for(when: datetime) -> str:
    """The business date a run is for: its logical date (the data interval's start) in
    Asia/Shanghai, so an end of day re-run for a past date works on that date."""
    return business_date_of(when, load_counterparties().timezone)


def payments_end_of_day(business_date: str, when: datetime) -> dict[str, Any]:
    """The end of a payments day (ICD §5.12): the funding cut-off, batches posted and
    answered, each bureau's reconciliation of the date with its breaks carried forward,
    finance's return instructions and reports (in the hub's storage under
    ``reports/<date>/``). RECON is written by :func:`recon_to_bureau`."""
    from reconciliation.daily import reconcile
    from reconciliation.reports import write_reports
    from reconciliation.statements import return_instructions, write_instructions

    parties = load_counterparties()
    engine = engine_for(database_url())
    cut = settle.cut_off(engine, business_date=business_date, now=when)
    with working_directory() as work_dir:
        done = _post_and_answer(engine, when, business_date, work_dir)
        waits = {p.code: int(p.option("partner_wait_days", 1)) for p in parties.partner_banks}
        with engine.begin() as conn:
            rows = reconcile(
                conn,
                business_date,
                [b.code for b in parties.bureaus],
                partner_wait_days=waits,
                holidays=parties.holidays,
            )
            instructions = return_instructions(conn, business_date, parties.holidays)
        out = work_dir / "reports"
        out.mkdir()
        write_instructions(instructions, out / f"instructions_{business_date}.csv")
        paths = write_reports(engine, business_date, out, holidays=parties.holidays)
        store = storage()
        stored = []
        for path in sorted(p for p in out.rglob("*") if p.is_file()):
            key = f"reports/{business_date}/{path.relative_to(out).as_posix()}"
            store.put_file(path, key)
            stored.append(key)
        # what an earlier run of the date left that this one did not write (a Parquet
        # partition of a bureau no longer reported): the date's reports are this run's alone
        for key in store.keys(f"reports/{business_date}"):
            if key.startswith(f"reports/{business_date}/") and key not in stored:
                store.remove(key)
                log.info("reports of %s: %s removed (not written by this run)", business_date, key)
    statuses: dict[str, int] = {}
    for row in rows:
        statuses[row.status] = statuses.get(row.status, 0) + 1
    log.info(
        "payments day %s: %d batch(es) cut off unfunded; reconciliation %s; %d instruction(s) "
        "for finance; reports in the hub's storage under reports/%s/ (%s)",
        business_date,
        cut,
        statuses,
        len(instructions),
        business_date,
        paths.workbook.name,
    )
    return {
        "business_date": business_date,
        "cut_off": cut,
        **done,
        "reconciliation": statuses,
        "instructions": len(instructions),
        "reports": stored,
    }


def recon_to_bureau(
    bureau_code: str, business_date: str, when: datetime, connection: Any
) -> dict[str, Any]:
    """The bureau's RECON of the date (also with no lines), written once; publish."""
    from reconciliation.daily import write_recon

    parties = load_counterparties()
    bureau = parties.bureau(bureau_code)
    engine = engine_for(database_url())
    with working_directory() as work_dir:
        with engine.begin() as conn:
            name = write_recon(
                conn,
                hub=parties.hub,
                bureau=bureau_code,
                business_date=business_date,
                dest=drop_of(bureau, when),
                encoding=bureau.encoding,
                work_dir=work_dir,
            )
    delivered = _publish(connection, engine, bureau.conn_id, when)
    return {"bureau": bureau_code, "recon": name, "delivered": delivered}


def open_breaks(business_date: str) -> list[dict[str, Any]]:
    """The breaks waiting for a person as of the date: what the review asks about."""
    from sqlalchemy import text

    engine = engine_for(database_url())
    with engine.connect() as conn:
        found = conn.execute(
            text(
                "SELECT id, bureau, batch_no, reason, amount_fen, first_date FROM recon_break "
                "WHERE matched_date IS NULL AND resolved_at IS NULL AND first_date <= :d ORDER BY id"
            ),
            {"d": business_date},
        ).all()
    return [dict(r._mapping) for r in found]


def settle_break(break_id: int, decision: dict[str, Any], when: datetime) -> dict[str, Any]:
    """Apply a person's answer to a break's review: ``Resolve`` with a reason records the
    resolution (who, when, why, and the audit record) as of the moment they answered
    (``responded_at``; ``when`` for an answer without one); ``Leave open`` changes nothing.
    ValueError for a resolution without a reason or for a break no longer open."""
    from reconciliation.daily import resolve_break

    chosen = list(decision.get("chosen_options") or [])
    params = dict(decision.get("params_input") or {})
    who = _respondent(decision.get("responded_by_user"))
    if chosen != ["Resolve"]:
        log.info("break %d left open by %s", break_id, who)
        return {"break": break_id, "resolved": False, "by": who}
    reason = str(params.get("reason") or "").strip()
    if not reason:
        raise ValueError(f"break {break_id}: a resolution needs a reason; it stays open")
    answered = decision.get("responded_at") or when
    if isinstance(answered, str):
        answered = datetime.fromisoformat(answered)
    engine = engine_for(database_url())
    with engine.begin() as conn:
        resolve_break(conn, break_id, who=who, why=reason, now=answered, channel="airflow")
    log.info("break %d resolved by %s", break_id, who)
    return {"break": break_id, "resolved": True, "by": who}


def settle_breaks(decisions: list[dict[str, Any]], when: datetime) -> list[dict[str, Any]]:
    """Apply every answer of a review, each to the break it names (``break_id``); one that
    cannot be applied leaves its break open and does not stop the others. ValueError after
    the others are applied, naming each break left open that way."""
    done: list[dict[str, Any]] = []
    refused: list[str] = []
    for decision in decisions:
        try:
            done.append(settle_break(int(decision["break_id"]), dict(decision), when))
        except ValueError as exc:
            refused.append(str(exc))
    if refused:
        raise ValueError("; ".join(refused))
    return done


def _respondent(user: Any) -> str:
    """Who answered, as Airflow gives the user (``{"id": …, "name": …}``), at most 40
    characters; ``airflow`` when no one did (an answer by timeout)."""
    if isinstance(user, dict):
        user = user.get("name") or user.get("id")
    return str(user or "airflow").strip()[:40] or "airflow"
