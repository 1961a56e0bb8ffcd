"""
### factory_dispatch — personalisation data to the card factory (ICD §5.5)

**Moves:** every card whose PAN is known → fixed-width `PERSO_<hub>_<factory>_…` files
(GB18030, at most `max_records` records each) with a photo zip (the bureau's photos,
byte for byte) → the factory's `drop` directory. A card is sent once, ever.

**Runs** when accounts are ready (Asset `sscard://cards/ready-for-perso`) and every day
at 16:00 Asia/Shanghai in any case.

**When it fails**
- Before the commit nothing is marked as sent: clear and re-run.
- After the commit the files wait in the outbox; the next run publishes them. A PERSO
  already published is never published twice.
- A missing photo source (an archived APPLY zip removed by hand) fails the run with
  `FileNotFoundError`: restore the archive under `var/received/`.
"""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.sdk import Asset, AssetOrTimeSchedule, CronTriggerTimetable, dag, task

from sscard.alerts import on_failure
from sscard.schedules import cron

CARDS_READY = Asset("sscard://cards/ready-for-perso")
PERSO_SENT = Asset("sscard://perso/sent")


@dag(
    dag_id="factory_dispatch",
    schedule=AssetOrTimeSchedule(
        timetable=CronTriggerTimetable(cron("factory_dispatch"), timezone="Asia/Shanghai"),
        assets=(CARDS_READY,),
    ),
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
def factory_dispatch():
    @task
    def factories() -> list[str]:
        from sscard.jobs import factory_codes

        return factory_codes()

    @task(outlets=[PERSO_SENT], map_index_template="{{ task.op_kwargs['factory_code'] }}")
    def perso(factory_code: str, **context) -> dict:
        from airflow.sdk import Connection

        from sscard.airflow_tasks import task_errors
        from sscard.config import load_counterparties
        from sscard.jobs import dispatch_to_factory

        conn_id = load_counterparties().party(factory_code).conn_id
        with task_errors():
            return dispatch_to_factory(
                factory_code, context["dag_run"].run_after, Connection.get(conn_id)
            )

    perso.expand(factory_code=factories())


factory_dispatch()
