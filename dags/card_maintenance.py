"""
### card_maintenance — the end of the servicing day (DOMAIN §2, §5; ICD §5.8)

**Moves:**
1. Replacements whose new card was enabled and that are not finished yet are finished
   (old card cancelled, balance moved once or number kept).
2. Temporary losses past `temp_loss_days` (taken by the bureau) or `bank_temp_loss_days`
   (taken at a bank channel), calendar days from the op's date, lapse back to normal:
   BANKEVT `03`, channel `AUTO`.
3. Credit-blocked accounts of cancelled cards whose balance is now zero close.
4. Cards entering the renewal window (60 days before expiry) are counted per bureau in
   the log.
5. `BANKEVT_<hub>_<bureau>_…` for the business day to each bureau, with every event not
   reported yet (bank channels' ops, the hub's own, partner banks' relayed), also when
   there is none.

**Runs** every day at 21:30 Asia/Shanghai, after the day's channel and status work.

**When it fails**
- Every step is one transaction and finds only what is still due: clear and re-run.
- A day's BANKEVT is written once; a re-run delivers it if it is still in the outbox.
"""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.sdk import CronTriggerTimetable, dag, task

from sscard.alerts import on_failure
from sscard.schedules import cron


@dag(
    dag_id="card_maintenance",
    schedule=CronTriggerTimetable(cron("card_maintenance"), timezone="Asia/Shanghai"),
    start_date=pendulum.datetime(2026, 1, 1, tz="Asia/Shanghai"),
    catchup=False,
    max_active_runs=1,
    doc_md=__doc__,
    tags=["servicing", "end-of-day", "bureau"],
    default_args={
        "owner": "card-operations",
        "retries": 3,
        "retry_delay": timedelta(minutes=2),
        "on_failure_callback": on_failure(),
    },
)
def card_maintenance():
    @task
    def maintain(**context) -> dict:
        from sscard.airflow_tasks import task_errors
        from sscard.servicing_jobs import card_maintenance as run

        with task_errors():
            return run(context["dag_run"].run_after)

    @task
    def bureaus() -> list[str]:
        from sscard.jobs import bureau_codes

        return bureau_codes()

    @task(map_index_template="{{ task.op_kwargs['bureau'] }}")
    def bankevt(bureau: str, **context) -> dict:
        from airflow.sdk import Connection

        from sscard.airflow_tasks import task_errors
        from sscard.config import load_counterparties
        from sscard.servicing_jobs import bank_events

        conn_id = load_counterparties().bureau(bureau).conn_id
        with task_errors():
            return bank_events(bureau, context["dag_run"].run_after, Connection.get(conn_id))

    maintain() >> bankevt.expand(bureau=bureaus())


card_maintenance()
