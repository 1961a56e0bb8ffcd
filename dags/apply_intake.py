"""
### apply_intake — card applications from the bureaus (ICD §5.1, §5.2)

**Moves:** `APPLY_<bureau>_<hub>_<date>_<seq>.txt` (+ photo `.zip`) from each bureau's
`pickup` directory → checks every file and line → stores accepted applications →
writes `APPLYRSP_…` (one line per APPLY line) or `NAME.rej` (file rejected) to the
bureau's `drop` directory → moves the request to `pickup/archive/YYYYMMDD/` (or
`pickup/rejected/YYYYMMDD/`).

**Bureaus:** every bureau in `config/counterparties.yaml`; each names its SFTP
connection (`conn_id`).

**Task logs** show per file: lines received, accepted, rejected by reason code; never
an ID number or a name.

**When it fails**
- `HostKeyError`: the bureau's server presented a host key other than the pinned one.
  Never retried. Confirm the new key with the bureau out of band, then update the
  connection's `host_key` extra.
- `TransientTransportError`: the server was unreachable; the task retries. Safe to
  clear and re-run at any time: a file is one transaction and a file already processed
  is only archived again.
- A file stays in `pickup` with no response: it has no `.ok` yet (listed in the log), or
  it is waiting for its photo zip (F10 after `zip_wait_minutes`).
- `IntakeIncomplete`: a file failed for a reason no reason code covers (its error and
  traceback are in the log, without field values). Nothing of it was stored; it stays in
  `pickup` and is tried again by the next scheduled run (the task is not retried),
  while the bureau's other files are
  processed and their responses delivered (`deliver_responses` runs whatever intake's
  outcome). Report the error to the developers with the file's name.
- A response not delivered is kept in the outbox and sent by the next run of
  `deliver_responses`.
"""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.sdk import Asset, CronTriggerTimetable, dag, task

from sscard.alerts import on_failure
from sscard.schedules import cron

APPLICATIONS = Asset("sscard://applications/accepted")


def _when(context: dict) -> pendulum.DateTime:
    run = context["dag_run"]
    return run.run_after or context["logical_date"]


@dag(
    dag_id="apply_intake",
    schedule=CronTriggerTimetable(cron("apply_intake"), timezone="Asia/Shanghai"),
    start_date=pendulum.datetime(2026, 1, 1, tz="Asia/Shanghai"),
    catchup=False,
    max_active_runs=1,
    doc_md=__doc__,
    tags=["issuance", "bureau", "intake"],
    default_args={
        "owner": "card-operations",
        "retries": 3,
        "retry_delay": timedelta(minutes=2),
        "on_failure_callback": on_failure(),
    },
)
def apply_intake():
    @task
    def bureaus() -> list[str]:
        from sscard.jobs import bureau_codes

        return bureau_codes()

    @task(outlets=[APPLICATIONS], map_index_template="{{ task.op_kwargs['bureau'] }}")
    def intake(bureau: str, **context) -> dict:
        from airflow.sdk import Connection

        from sscard.airflow_tasks import task_errors
        from sscard.config import load_counterparties
        from sscard.jobs import apply_intake

        conn_id = load_counterparties().bureau(bureau).conn_id
        with task_errors():
            return apply_intake(bureau, _when(context), Connection.get(conn_id))

    # whatever intake's outcome: the outbox holds only what was committed
    @task(map_index_template="{{ task.op_kwargs['bureau'] }}", trigger_rule="all_done")
    def deliver_responses(bureau: str, **context) -> int:
        from airflow.sdk import Connection

        from sscard.airflow_tasks import task_errors
        from sscard.config import load_counterparties
        from sscard.jobs import deliver_outbox

        conn_id = load_counterparties().bureau(bureau).conn_id
        with task_errors():
            return deliver_outbox(bureau, _when(context), Connection.get(conn_id))

    @task(trigger_rule="one_failed", retries=0, on_failure_callback=[])
    def run_failed() -> None:
        """Marks the run failed when a task failed, though responses were delivered after
        it (a run's state follows its last tasks). Sends no alert: the failed task did."""
        from airflow.sdk.exceptions import AirflowFailException

        raise AirflowFailException("a task of this run failed: see that task's log")

    codes = bureaus()
    taken = intake.expand(bureau=codes)
    delivered = deliver_responses.expand(bureau=codes)
    taken >> delivered
    [taken, delivered] >> run_failed()


apply_intake()
