"""
### partner_account_returns — partner banks' answers to ACCTOPEN (ICD §5.4)

**Moves:** `ACCTOPENRSP_<bank>_<hub>_…` from each partner bank's `pickup` → sets PAN and
`pan_seq` of each answered application, or fails it at stage 1 with the partner's own
reason code (reported to the bureau in CARDRSP) → archives the file. Requests still
unanswered `partner_wait_days` after their ACCTOPEN reached the partner fail with E140.
The task log shows how many requests are still open and since when.

**Runs** every 15 minutes.

**When it fails**
- A file rejected as a whole gets `NAME.rej` in the partner's `drop` directory.
- Lines the hub cannot apply (unknown `req_no`, a second different answer) are listed
  in table `return_problem` and the task log; they never change an application.
- `IntakeIncomplete`: a file failed for a reason no reason code covers (its error is
  in the log, without field values). Nothing of it was stored; it stays in `pickup`
  and the next scheduled run tries it again (the task is not retried); the other files
  were taken and the rest of the run was done. Report it with the file's name.
- A file of a TYPE this counterparty does not send is rejected F04 with its `.rej`.
- Safe to clear and re-run: a file already processed is only archived again.
"""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.sdk import Asset, CronTriggerTimetable, dag, task

from sscard.alerts import on_failure
from sscard.schedules import cron

CARDS_READY = Asset("sscard://cards/ready-for-perso")
OUTCOMES = Asset("sscard://cards/final-outcomes")


@dag(
    dag_id="partner_account_returns",
    schedule=CronTriggerTimetable(cron("partner_account_returns"), timezone="Asia/Shanghai"),
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
def partner_account_returns():
    @task
    def partners() -> list[str]:
        from sscard.jobs import partner_codes

        return partner_codes()

    @task(outlets=[CARDS_READY, OUTCOMES], map_index_template="{{ task.op_kwargs['bank_code'] }}")
    def answers(bank_code: str, **context) -> dict:
        from airflow.sdk import Connection

        from sscard.airflow_tasks import task_errors
        from sscard.config import load_counterparties
        from sscard.jobs import partner_account_returns as run

        conn_id = load_counterparties().party(bank_code).conn_id
        with task_errors():
            return run(bank_code, context["dag_run"].run_after, Connection.get(conn_id))

    answers.expand(bank_code=partners())


partner_account_returns()
