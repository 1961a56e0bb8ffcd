"""
### disbursement_intake — benefit payments from the bureaus (ICD §5.10)

**Moves:** `DISB_<bureau>_<hub>_…` from each bureau's `pickup` → every line checked in
the ICD's order (`209` a pay_no used before, `208` amount, E117 another benefit type,
then `103` no such account, `104`/`105` not the holder, `106` closed or blocked) → the
batch waits for its funding (`DISB/<batch_no>` in the payment system's statement). Batches
already funded are posted (Dr clearing / Cr each account, once per pay_no) and, once every
line has its outcome, answered in `DISBRSP_<hub>_<bureau>_…`.

**Runs** every 15 minutes.

**When it fails**
- A file rejected as a whole (F02 counts, F09 totals, F04 dates, F05 reused name or
  BATCH_NO) gets `NAME.rej` in the bureau's `drop`; its pay_nos are not consumed.
- Each file is one transaction: clear and re-run. A file already processed is only
  archived again; nothing is credited twice (each credit's idempotency key is the
  bureau and pay_no).
"""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.sdk import CronTriggerTimetable, dag, task

from sscard.alerts import on_failure
from sscard.schedules import cron


@dag(
    dag_id="disbursement_intake",
    schedule=CronTriggerTimetable(cron("disbursement_intake"), timezone="Asia/Shanghai"),
    start_date=pendulum.datetime(2026, 1, 1, tz="Asia/Shanghai"),
    catchup=False,
    max_active_runs=1,
    doc_md=__doc__,
    tags=["payments", "bureau"],
    default_args={
        "owner": "payments-operations",
        "retries": 3,
        "retry_delay": timedelta(minutes=2),
        "on_failure_callback": on_failure(),
    },
)
def disbursement_intake():
    @task
    def bureaus() -> list[str]:
        from sscard.jobs import bureau_codes

        return bureau_codes()

    @task(map_index_template="{{ task.op_kwargs['bureau'] }}")
    def disb(bureau: str, **context) -> dict:
        from airflow.sdk import Connection

        from sscard.airflow_tasks import task_errors
        from sscard.config import load_counterparties
        from sscard.payments_jobs import disbursement_intake as run

        conn_id = load_counterparties().bureau(bureau).conn_id
        with task_errors():
            return run(bureau, context["dag_run"].run_after, Connection.get(conn_id))

    disb.expand(bureau=bureaus())


disbursement_intake()
