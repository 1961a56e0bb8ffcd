"""
### channel_requests — requests from bank channels (ICD §5.9)

**Moves:** `CHANNEL_<channel>_<hub>_…` from each channel system's `pickup` → E1 collect
and enable (with a PIN block it also activates), A1 financial activation, P1 PIN reset,
P2 PIN unlock, L1/L2/L3 loss and unblock, applied in SEQ order →
`CHANNELRSP_<hub>_<channel>_…` in its `drop`, one line per line. PIN blocks are opened in
memory only (AES-256-GCM under the channel's zone key by key id); only a keyed PIN
verification value is stored. Every event the bureau must learn goes into that day's
BANKEVT (written by `card_maintenance`).

**Runs** every 5 minutes (a PIN block is refused E130 when its op_time is more than
`pin_window_minutes` from when its file was complete).

**When it fails**
- A file rejected as a whole gets `NAME.rej` in the channel's `drop`.
- Each file is applied in one transaction; a req_no answered before is answered again
  unchanged, so clear and re-run freely.
- `KeyStoreError`: a zone key or the PIN verification key is missing or malformed
  (the message names the variable or file, never the key); fix the key store and re-run.
"""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.sdk import CronTriggerTimetable, dag, task

from sscard.alerts import on_failure
from sscard.schedules import cron


@dag(
    dag_id="channel_requests",
    schedule=CronTriggerTimetable(cron("channel_requests"), timezone="Asia/Shanghai"),
    start_date=pendulum.datetime(2026, 1, 1, tz="Asia/Shanghai"),
    catchup=False,
    max_active_runs=1,
    doc_md=__doc__,
    tags=["servicing", "channel"],
    default_args={
        "owner": "card-operations",
        "retries": 3,
        "retry_delay": timedelta(minutes=2),
        "on_failure_callback": on_failure(),
    },
)
def channel_requests():
    @task
    def channels() -> list[str]:
        from sscard.servicing_jobs import channel_codes

        return channel_codes()

    @task(map_index_template="{{ task.op_kwargs['channel'] }}")
    def requests(channel: str, **context) -> dict:
        from airflow.sdk import Connection

        from sscard.airflow_tasks import task_errors
        from sscard.config import load_counterparties
        from sscard.servicing_jobs import channel_requests as run

        conn_id = load_counterparties().party(channel).conn_id
        with task_errors():
            return run(channel, context["dag_run"].run_after, Connection.get(conn_id))

    requests.expand(channel=channels())


channel_requests()
