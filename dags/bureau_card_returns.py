"""
### bureau_card_returns — CARDRSP to each bureau (ICD §5.3)

**Moves:** every card that reached a final outcome since the previous CARDRSP (made,
failed at the bank, failed at the factory), each exactly once → `CARDRSP_<hub>_<bureau>_…`
in the bureau's `drop` directory. Written every business day, with no lines when
nothing happened.

**Runs** every day at 20:00 Asia/Shanghai. When alerting is configured, a run not
finished by 20:30 raises a deadline alert (the bureaus' CARDRSP is late).

**When it fails**
- Before the commit nothing is marked as reported: clear and re-run.
- A re-run the same day writes a further CARDRSP only for outcomes reached since.
- An undelivered CARDRSP stays in the outbox and is sent by the next run.
"""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.sdk import CronTriggerTimetable, dag, task

from sscard.alerts import deadlines, on_failure
from sscard.schedules import cron


@dag(
    dag_id="bureau_card_returns",
    schedule=CronTriggerTimetable(cron("bureau_card_returns"), timezone="Asia/Shanghai"),
    start_date=pendulum.datetime(2026, 1, 1, tz="Asia/Shanghai"),
    catchup=False,
    max_active_runs=1,
    doc_md=__doc__,
    deadline=deadlines(),
    tags=["issuance", "bureau"],
    default_args={
        "owner": "card-operations",
        "retries": 3,
        "retry_delay": timedelta(minutes=2),
        "on_failure_callback": on_failure(),
    },
)
def bureau_card_returns():
    @task
    def bureaus() -> list[str]:
        from sscard.jobs import bureau_codes

        return bureau_codes()

    @task(map_index_template="{{ task.op_kwargs['bureau'] }}")
    def cardrsp(bureau: str, **context) -> dict:
        from airflow.sdk import Connection

        from sscard.airflow_tasks import task_errors
        from sscard.config import load_counterparties
        from sscard.jobs import bureau_card_returns as run

        conn_id = load_counterparties().bureau(bureau).conn_id
        with task_errors():
            return run(bureau, context["dag_run"].run_after, Connection.get(conn_id))

    cardrsp.expand(bureau=bureaus())


bureau_card_returns()
