"""
### status_sync — card status from the bureaus, and partner banks' side of it (ICD §5.7, §5.8)

**Moves:**
- `STATUS_<bureau>_<hub>_…` from each bureau's `pickup`: ops 01 temporary loss, 02 formal
  loss, 03 unblock, 04 cancel, 11 collect and enable, applied in SEQ order by DOMAIN §2's
  table (E119 unknown card, E132 identity, E120 not allowed, E121 unblock while a
  replacement is under way, `02` already). Enabling a replacing card finishes the
  replacement in the same transaction: the old card cancelled (BANKEVT `04` `AUTO`) and
  its balance moved to the new account, or the number kept.
- Cards whose account is at a partner bank: the hub checks the op, forwards it in
  `STATUS_<hub>_<bank>_…` under its own req_no, and answers the bureau when the partner's
  `STATUSRSP` comes back, or E140 after `partner_wait_days`.
- Partner banks' own `BANKEVT` are taken and relayed to the bureaus in the hub's BANKEVT.
- `STATUSRSP_<hub>_<bureau>_…`: one per STATUS file, one line per line, in order,
  written once every line has its outcome.

**Runs** every 15 minutes.

**When it fails**
- A file rejected as a whole gets `NAME.rej` in the sender's `drop`.
- Each file is applied in one transaction: a run cut short leaves nothing half done;
  clear and re-run. A file already processed is only archived again, and a req_no
  answered before is answered again unchanged.
- `IntakeIncomplete`: a file failed for a reason no code covers (its error is in the log,
  without field values); it stays in `pickup` for the next run, the other files go on.
- Partner answers the hub cannot apply are listed in table `return_problem`.
"""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.sdk import CronTriggerTimetable, dag, task

from sscard.alerts import on_failure
from sscard.schedules import cron


@dag(
    dag_id="status_sync",
    schedule=CronTriggerTimetable(cron("status_sync"), timezone="Asia/Shanghai"),
    start_date=pendulum.datetime(2026, 1, 1, tz="Asia/Shanghai"),
    catchup=False,
    max_active_runs=1,
    doc_md=__doc__,
    tags=["servicing", "bureau", "partner-bank"],
    default_args={
        "owner": "card-operations",
        "retries": 3,
        "retry_delay": timedelta(minutes=2),
        "on_failure_callback": on_failure(),
    },
)
def status_sync():
    @task
    def bureaus() -> list[str]:
        from sscard.jobs import bureau_codes

        return bureau_codes()

    @task
    def partners() -> list[str]:
        from sscard.jobs import partner_codes

        return partner_codes()

    @task(map_index_template="{{ task.op_kwargs['bureau'] }}")
    def bureau_status(bureau: str, **context) -> dict:
        from airflow.sdk import Connection

        from sscard.airflow_tasks import task_errors
        from sscard.config import load_counterparties
        from sscard.servicing_jobs import status_intake

        conn_id = load_counterparties().bureau(bureau).conn_id
        with task_errors():
            return status_intake(bureau, context["dag_run"].run_after, Connection.get(conn_id))

    @task(map_index_template="{{ task.op_kwargs['bank_code'] }}")
    def partner_status(bank_code: str, **context) -> dict:
        from airflow.sdk import Connection

        from sscard.airflow_tasks import task_errors
        from sscard.config import load_counterparties
        from sscard.servicing_jobs import partner_status as run

        conn_id = load_counterparties().party(bank_code).conn_id
        with task_errors():
            return run(bank_code, context["dag_run"].run_after, Connection.get(conn_id))

    @task(map_index_template="{{ task.op_kwargs['bureau'] }}")
    def answer_bureau(bureau: str, **context) -> dict:
        """STATUSRSP for files whose partner lines were answered in this run."""
        from airflow.sdk import Connection

        from sscard.airflow_tasks import task_errors
        from sscard.config import load_counterparties
        from sscard.servicing_jobs import status_answers

        conn_id = load_counterparties().bureau(bureau).conn_id
        with task_errors():
            return status_answers(bureau, context["dag_run"].run_after, Connection.get(conn_id))

    taken = bureau_status.expand(bureau=bureaus())
    forwarded = partner_status.expand(bank_code=partners())
    taken >> forwarded
    forwarded >> answer_bureau.expand(bureau=bureaus())


status_sync()
