"""What the servicing DAGs' tasks call (card status sync, bank channel requests, the end
of the servicing day): settings and adapters from the configuration and an Airflow
connection, one service, a small summary for XCom. Nothing here imports Airflow."""

from __future__ import annotations

import logging
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

from banking.keystore import key_store
from exchange.answers import check_request_header, receive
from exchange.flows import Party, flow
from exchange.outbox import deliver
from exchange.pickup import raise_if_failed
from persistence import registry
from persistence.db import engine_for
from servicing import days, partner
from servicing.requests import Ctx, answer_ready, apply_channel, apply_status
from sscard.config import database_url, load_counterparties
from sscard.jobs import (
    _party_inbox,
    _publish,
    _remote,
    _summary,
    business_date_of,
    drop_of,
    working_directory,
)

log = logging.getLogger("sscard.jobs")


def channel_codes() -> list[str]:
    return [c.code for c in load_counterparties().channels]


def status_intake(bureau_code: str, when: datetime, connection: Any) -> dict[str, Any]:
    """A bureau's STATUS files applied; STATUSRSP for every file whose lines all have
    their outcome (partner cards' lines once the partner answered, or E140); publish."""
    parties = load_counterparties()
    bureau = parties.bureau(bureau_code)
    engine = engine_for(database_url())
    with working_directory() as work_dir, _remote(connection) as remote:
        inbox = replace(
            _party_inbox(bureau_code, when, work_dir), max_forward_days=bureau.max_forward_days
        )

        def handler(conn: Any, reader: Any, landed: Any, file_id: int) -> dict[str, int]:
            ctx = Ctx(parties.hub, bureau_code, inbox.business_date, when, file_id)
            return apply_status(conn, reader, ctx)

        outcomes = receive(
            remote,
            engine,
            inbox,
            flow("STATUS", Party.BUREAU),
            handler,
            check_header=check_request_header,
        )
        with engine.begin() as conn:
            answered = answer_ready(
                conn, "STATUS", bureau_code, drop_of(bureau, when), bureau.encoding, work_dir
            )
        delivered = deliver(remote, engine, inbox.store, inbox.conn_id, when)
    raise_if_failed(outcomes)
    return {
        "bureau": bureau_code,
        "files": [_summary(o) for o in outcomes],
        "answered": answered,
        "delivered": delivered,
    }


def channel_requests(channel_code: str, when: datetime, connection: Any) -> dict[str, Any]:
    """A bank channel's CHANNEL files applied and answered (CHANNELRSP); publish."""
    parties = load_counterparties()
    channel = parties.party(channel_code)
    engine = engine_for(database_url())
    keys = key_store()
    window = timedelta(minutes=int(channel.option("pin_window_minutes", 10)))
    with working_directory() as work_dir, _remote(connection) as remote:
        inbox = replace(
            _party_inbox(channel_code, when, work_dir),
            max_forward_days=int(channel.option("max_forward_days", 5)),
        )

        def handler(conn: Any, reader: Any, landed: Any, file_id: int) -> dict[str, int]:
            ctx = Ctx(parties.hub, channel_code, inbox.business_date, when, file_id)
            found_at = registry.first_seen(conn, file_id)
            return apply_channel(conn, reader, ctx, keys, found_at, window)

        outcomes = receive(
            remote,
            engine,
            inbox,
            flow("CHANNEL", Party.CHANNEL),
            handler,
            check_header=check_request_header,
        )
        with engine.begin() as conn:
            answered = answer_ready(
                conn, "CHANNEL", channel_code, drop_of(channel, when), channel.encoding, work_dir
            )
        delivered = deliver(remote, engine, inbox.store, inbox.conn_id, when)
    raise_if_failed(outcomes)
    return {
        "channel": channel_code,
        "files": [_summary(o) for o in outcomes],
        "answered": answered,
        "delivered": delivered,
    }


def partner_status(bank_code: str, when: datetime, connection: Any) -> dict[str, Any]:
    """One partner bank's side of card status: the ops waiting for it sent in a STATUS
    file, its STATUSRSP and BANKEVT taken, E140 for ops past partner_wait; publish."""
    parties = load_counterparties()
    bank = parties.party(bank_code)
    engine = engine_for(database_url())
    with working_directory() as work_dir, _remote(connection) as remote:
        inbox = _party_inbox(bank_code, when, work_dir)
        sent = partner.send_status_requests(
            engine,
            hub=parties.hub,
            bank_code=bank_code,
            dest=drop_of(bank, when),
            encoding=bank.encoding,
            business_date=inbox.business_date,
            work_dir=work_dir,
        )

        def answers(conn: Any, reader: Any, landed: Any, file_id: int) -> dict[str, int]:
            return partner.apply_status_answers(
                conn,
                reader,
                hub=parties.hub,
                bank_code=bank_code,
                business_date=inbox.business_date,
                now=when,
                file_name=landed.name,
            )

        def events(conn: Any, reader: Any, landed: Any, file_id: int) -> dict[str, int]:
            return partner.relay_partner_events(
                conn,
                reader,
                hub=parties.hub,
                bank_code=bank_code,
                business_date=inbox.business_date,
                now=when,
                file_name=landed.name,
            )

        outcomes = receive(remote, engine, inbox, flow("STATUSRSP", Party.PARTNER), answers)
        outcomes += receive(remote, engine, inbox, flow("BANKEVT", Party.PARTNER), events)
        wait_days = int(bank.option("partner_wait_days", 1))
        expired = partner.expire_status_requests(
            engine, bank_code, wait_days, inbox.business_date, parties.holidays
        )
        delivered = deliver(remote, engine, inbox.store, inbox.conn_id, when)
    raise_if_failed(outcomes)
    return {
        "partner": bank_code,
        "sent": sent,
        "files": [_summary(o) for o in outcomes],
        "expired_e140": expired,
        "delivered": delivered,
    }


def card_maintenance(when: datetime) -> dict[str, Any]:
    """The hub-wide end-of-day steps: finish replacements, lapse temporary losses, close
    emptied accounts, report the renewal window."""
    parties = load_counterparties()
    engine = engine_for(database_url())
    business_date = business_date_of(when, parties.timezone)
    finished = days.finish_replacements(engine, parties.hub, business_date, when)
    lapsed = sum(
        days.lapse_temporary_losses(
            engine,
            parties.hub,
            b.code,
            business_date,
            when,
            temp_loss_days=b.temp_loss_days,
            bank_temp_loss_days=b.bank_temp_loss_days,
        )
        for b in parties.bureaus
    )
    closed = days.close_emptied_accounts(engine, parties.hub, business_date, when)
    renewal = days.renewal_window(engine, business_date)
    return {
        "business_date": business_date,
        "replacements_finished": finished,
        "lapsed": lapsed,
        "accounts_closed": closed,
        "renewal_window": renewal,
    }


def bank_events(bureau_code: str, when: datetime, connection: Any) -> dict[str, Any]:
    """The bureau's BANKEVT of the business day (also with no events); publish."""
    parties = load_counterparties()
    bureau = parties.bureau(bureau_code)
    engine = engine_for(database_url())
    business_date = business_date_of(when, parties.timezone)
    with working_directory() as work_dir:
        name = days.write_bankevt(
            engine,
            hub=parties.hub,
            bureau=bureau_code,
            dest=drop_of(bureau, when),
            encoding=bureau.encoding,
            business_date=business_date,
            work_dir=work_dir,
        )
    delivered = _publish(connection, engine, bureau.conn_id, when)
    return {"bureau": bureau_code, "bankevt": name, "delivered": delivered}


def status_answers(bureau_code: str, when: datetime, connection: Any) -> dict[str, Any]:
    """STATUSRSP for the bureau's files whose last lines were answered by a partner bank
    (or E140) since its intake ran; publish."""
    parties = load_counterparties()
    bureau = parties.bureau(bureau_code)
    engine = engine_for(database_url())
    with working_directory() as work_dir:
        with engine.begin() as conn:
            answered = answer_ready(
                conn, "STATUS", bureau_code, drop_of(bureau, when), bureau.encoding, work_dir
            )
    delivered = _publish(connection, engine, bureau.conn_id, when)
    return {"bureau": bureau_code, "answered": answered, "delivered": delivered}
