"""
### factory_returns — production results from the card factory (ICD §5.6)

**Moves:** `PERSORSP_<factory>_<hub>_…` from the factory's `pickup` → a made card becomes
status 0 (sealed) with its card identification code, ATR, box number and made date; a
failed card ends at stage 2 with the factory's `M` reason → archives the file.

**Runs** every 30 minutes.

**When it fails**
- A file rejected as a whole gets `NAME.rej` in the factory's `drop` directory.
- Records for unknown cards (or cards sent to another factory), repeats and records
  whose PAN contradicts the PERSO are listed in table `return_problem` and the task log,
  and never applied: settle them with the factory.
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

OUTCOMES = Asset("sscard://cards/final-outcomes")


@dag(
    dag_id="factory_returns",
    schedule=CronTriggerTimetable(cron("factory_returns"), timezone="Asia/Shanghai"),
    start_date=pendulum.datetime(2026, 1, 1, tz="Asia/Shanghai"),
    catchup=False,
    max_active_runs=1,
    doc_md=__doc__,
    tags=["issuance", "factory"],
    default_args={
        "owner": "card-operations",
        "retries": 3,
        "retry_delay": timedelta(minutes=2),
        "on_failure_callback": on_failure(),
    },
)
def factory_returns():
    @task
    def factories() -> list[str]:
        from sscard.jobs import factory_codes

        return factory_codes()

    @task(outlets=[OUTCOMES], map_index_template="{{ task.op_kwargs['factory_code'] }}")
    def results(factory_code: str, **context) -> dict:
        from airflow.sdk import Connection

        from sscard.airflow_tasks import task_errors
        from sscard.config import load_counterparties
        from sscard.jobs import factory_returns as run

        conn_id = load_counterparties().party(factory_code).conn_id
        with task_errors():
            return run(factory_code, context["dag_run"].run_after, Connection.get(conn_id))

    results.expand(factory_code=factories())


factory_returns()
