"""
### statement_intake — the clearing account's statement (ICD §5.11)

**Moves:** `STMT_<system>_<hub>_…` from the payment system's `pickup` → each line posted
once whatever file brings it: `DISB/<batch_no>` funding (Dr settlement / Cr the bureau's
clearing), `RET/<batch_no>` returns (Dr returns / Cr settlement), `PTN/<bank>/<batch_no>`
partner settlements (Dr due to partner / Cr settlement); anything else is an unidentified
item for finance (R09). Batches whose funding is now complete are posted and, when every
line has its outcome, answered to their bureau in DISBRSP.

**Runs** every 15 minutes.

**When it fails**
- A file rejected as a whole gets `NAME.rej` in the payment system's `drop`.
- A statement line seen before (same txn_ref) is not posted again: clear and re-run.
"""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.sdk import CronTriggerTimetable, dag, task

from sscard.alerts import on_failure
from sscard.schedules import cron


@dag(
    dag_id="statement_intake",
    schedule=CronTriggerTimetable(cron("statement_intake"), timezone="Asia/Shanghai"),
    start_date=pendulum.datetime(2026, 1, 1, tz="Asia/Shanghai"),
    catchup=False,
    max_active_runs=1,
    doc_md=__doc__,
    tags=["payments", "payment-system", "finance"],
    default_args={
        "owner": "payments-operations",
        "retries": 3,
        "retry_delay": timedelta(minutes=2),
        "on_failure_callback": on_failure(),
    },
)
def statement_intake():
    @task
    def systems() -> list[str]:
        from sscard.payments_jobs import payment_system_codes

        return payment_system_codes()

    @task
    def bureaus() -> list[str]:
        from sscard.jobs import bureau_codes

        return bureau_codes()

    @task(map_index_template="{{ task.op_kwargs['system'] }}")
    def stmt(system: str, **context) -> dict:
        from airflow.sdk import Connection

        from sscard.airflow_tasks import task_errors
        from sscard.config import load_counterparties
        from sscard.payments_jobs import statement_intake as run

        conn_id = load_counterparties().party(system).conn_id
        with task_errors():
            return run(system, context["dag_run"].run_after, Connection.get(conn_id))

    @task(map_index_template="{{ task.op_kwargs['bureau'] }}")
    def disbrsp(bureau: str, **context) -> dict:
        from airflow.sdk import Connection

        from sscard.airflow_tasks import task_errors
        from sscard.config import load_counterparties
        from sscard.payments_jobs import answer_bureau

        conn_id = load_counterparties().bureau(bureau).conn_id
        with task_errors():
            return answer_bureau(bureau, context["dag_run"].run_after, Connection.get(conn_id))

    stmt.expand(system=systems()) >> disbrsp.expand(bureau=bureaus())


statement_intake()
