"""
### payments_end_of_day — cut-offs, reconciliation, RECON and finance's reports (ICD §5.12)

For the business date of the run (its logical date in Asia/Shanghai; trigger it with a
past logical date to redo a past day — the result is the same):
1. **Cut-off:** a DISB batch still short of its total at the end of its business date
   answers `301` on every line; what it received is to be returned.
2. Funded batches are posted and answered (DISBRSP).
3. **Reconciliation** of every bureau's batches as of the end of the date: BALANCED,
   PENDING or BREAK with its R-code; unmatched items carried forward until matched or
   resolved by hand.
4. **Finance's files** in the hub's storage under `reports/<date>/`: the return and
   partner-settlement instructions (CSV), a Parquet dataset of every item (partitioned by
   date and bureau), an Excel workbook (summary and breaks) and an HTML report with charts.
5. **RECON** to each bureau, also when empty, written once per date.

Breaks waiting for a person are asked about in the DAG `break_review`.

**Runs** every day at 23:00 Asia/Shanghai.

**When it fails:** every step finds only what is still due, and a day's RECON is written
once; clear and re-run.
"""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.sdk import CronTriggerTimetable, dag, task

from sscard.alerts import on_failure
from sscard.schedules import cron


@dag(
    dag_id="payments_end_of_day",
    schedule=CronTriggerTimetable(cron("payments_end_of_day"), timezone="Asia/Shanghai"),
    start_date=pendulum.datetime(2026, 1, 1, tz="Asia/Shanghai"),
    catchup=False,
    max_active_runs=1,
    doc_md=__doc__,
    tags=["payments", "finance", "end-of-day"],
    default_args={
        "owner": "payments-operations",
        "retries": 3,
        "retry_delay": timedelta(minutes=2),
        "on_failure_callback": on_failure(),
    },
)
def payments_end_of_day():
    @task
    def day(**context) -> str:
        from sscard.payments_jobs import business_date_for

        return business_date_for(context["logical_date"] or context["dag_run"].run_after)

    @task
    def reconcile(business_date: str, **context) -> dict:
        from sscard.airflow_tasks import task_errors
        from sscard.payments_jobs import payments_end_of_day as run

        with task_errors():
            return run(business_date, context["dag_run"].run_after)

    @task
    def bureaus() -> list[str]:
        from sscard.jobs import bureau_codes

        return bureau_codes()

    @task(map_index_template="{{ task.op_kwargs['bureau'] }}")
    def recon(bureau: str, business_date: str, **context) -> dict:
        from airflow.sdk import Connection

        from sscard.airflow_tasks import task_errors
        from sscard.config import load_counterparties
        from sscard.payments_jobs import recon_to_bureau

        conn_id = load_counterparties().bureau(bureau).conn_id
        with task_errors():
            return recon_to_bureau(
                bureau, business_date, context["dag_run"].run_after, Connection.get(conn_id)
            )

    date = day()
    done = reconcile(date)
    done >> recon.partial(business_date=date).expand(bureau=bureaus())


payments_end_of_day()
