"""
### account_opening — accounts for accepted applications (ICD §5.4, DOMAIN §3)

**Moves:** accepted applications → for the hub's own customers a pre-opened account and
a PAN from the configured range (`pan_seq` 01; a replacement keeping its number takes
the old PAN with `pan_seq` + 1) → for each partner bank one `ACCTOPEN_<hub>_<bank>_…`
file in that bank's `drop` directory.

**Runs** when `apply_intake` reports new applications (Asset
`sscard://applications/accepted`) and every hour in any case.

**When it fails**
- A database error rolls the whole step back: clear and re-run; nothing is opened twice
  (an application moves on only in the same transaction that opens its account).
- PANs come from the first range of `hub_pan_ranges` (`config/counterparties.yaml`) with
  serials left, then from the next. When every range is used up the hub step stops
  with `ValueError: every hub PAN range is exhausted`: add a range there.
- A partner's server unreachable: the ACCTOPEN stays in the outbox and is sent by the
  next run; a wrong host key (`HostKeyError`) is never retried.
"""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.sdk import Asset, AssetOrTimeSchedule, CronTriggerTimetable, dag, task

from sscard.alerts import on_failure
from sscard.schedules import cron

APPLICATIONS = Asset("sscard://applications/accepted")
CARDS_READY = Asset("sscard://cards/ready-for-perso")


@dag(
    dag_id="account_opening",
    schedule=AssetOrTimeSchedule(
        timetable=CronTriggerTimetable(cron("account_opening"), timezone="Asia/Shanghai"),
        assets=(APPLICATIONS,),
    ),
    start_date=pendulum.datetime(2026, 1, 1, tz="Asia/Shanghai"),
    catchup=False,
    max_active_runs=1,
    doc_md=__doc__,
    tags=["issuance", "accounts", "partner-bank"],
    default_args={
        "owner": "card-operations",
        "retries": 3,
        "retry_delay": timedelta(minutes=2),
        "on_failure_callback": on_failure(),
    },
)
def account_opening():
    @task(outlets=[CARDS_READY])
    def hub_accounts(**context) -> dict:
        from sscard.airflow_tasks import task_errors
        from sscard.jobs import open_hub_accounts_job

        with task_errors():
            return open_hub_accounts_job(context["dag_run"].run_after)

    @task
    def partners() -> list[str]:
        from sscard.jobs import partner_codes

        return partner_codes()

    @task(map_index_template="{{ task.op_kwargs['bank_code'] }}")
    def partner_requests(bank_code: str, **context) -> dict:
        from airflow.sdk import Connection

        from sscard.airflow_tasks import task_errors
        from sscard.config import load_counterparties
        from sscard.jobs import request_partner_accounts

        conn_id = load_counterparties().party(bank_code).conn_id
        with task_errors():
            return request_partner_accounts(
                bank_code, context["dag_run"].run_after, Connection.get(conn_id)
            )

    hub_accounts() >> partner_requests.expand(bank_code=partners())


account_opening()
