"""
### partner_disbursements — benefit payments to accounts at partner banks (ICD §5.10)

**Moves:** funded DISB lines of each partner bank's accounts → `DISB_<hub>_<bank>_…` (the
hub's own pay_nos, one file per benefit type) in the bank's `drop`; the bank's `DISBRSP_<bank>_<hub>_…` merged into
the bureaus' lines (credited: Dr clearing / Cr due to that partner; failed: to returns);
lines unanswered `partner_wait_days` after they reached the bank answer `140`. Then each
bureau's DISBRSP for batches whose lines all have their outcome.

**Runs** every 15 minutes.

**When it fails**
- A partner answer the hub cannot apply (unknown key, a second answer) is listed in
  table `return_problem`, never applied.
- Each file is one transaction; clear and re-run.
"""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.sdk import CronTriggerTimetable, dag, task

from sscard.alerts import on_failure
from sscard.schedules import cron


@dag(
    dag_id="partner_disbursements",
    schedule=CronTriggerTimetable(cron("partner_disbursements"), timezone="Asia/Shanghai"),
    start_date=pendulum.datetime(2026, 1, 1, tz="Asia/Shanghai"),
    catchup=False,
    max_active_runs=1,
    doc_md=__doc__,
    tags=["payments", "partner-bank"],
    default_args={
        "owner": "payments-operations",
        "retries": 3,
        "retry_delay": timedelta(minutes=2),
        "on_failure_callback": on_failure(),
    },
)
def partner_disbursements():
    @task
    def partners() -> list[str]:
        from sscard.jobs import partner_codes

        return partner_codes()

    @task
    def bureaus() -> list[str]:
        from sscard.jobs import bureau_codes

        return bureau_codes()

    @task(map_index_template="{{ task.op_kwargs['bank_code'] }}")
    def partner(bank_code: str, **context) -> dict:
        from airflow.sdk import Connection

        from sscard.airflow_tasks import task_errors
        from sscard.config import load_counterparties
        from sscard.payments_jobs import partner_disbursements as run

        conn_id = load_counterparties().party(bank_code).conn_id
        with task_errors():
            return run(bank_code, context["dag_run"].run_after, Connection.get(conn_id))

    @task(map_index_template="{{ task.op_kwargs['bureau'] }}")
    def disbrsp(bureau: str, **context) -> dict:
        from airflow.sdk import Connection

        from sscard.airflow_tasks import task_errors
        from sscard.config import load_counterparties
        from sscard.payments_jobs import answer_bureau

        conn_id = load_counterparties().bureau(bureau).conn_id
        with task_errors():
            return answer_bureau(bureau, context["dag_run"].run_after, Connection.get(conn_id))

    partner.expand(bank_code=partners()) >> disbrsp.expand(bureau=bureaus())


partner_disbursements()
