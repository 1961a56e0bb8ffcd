"""
### break_review — reconciliation breaks waiting for a person (DOMAIN §7)

One required action per open break (Airflow's human-in-the-loop: **Required actions** in
the UI): read the break (bureau, batch, R-code and what it means, amount, first seen),
then **Resolve** with a reason, or **Leave open**. A resolution records who, when and why,
and an audit record, exactly as `sscard breaks resolve ID --reason …` does; a break left
open is asked about again at the next review. An unanswered question times out after 3
days and the break simply stays open.

**Runs** every business day at 09:00 Asia/Shanghai, after the night's reconciliation, and
on demand (trigger the DAG; it asks about the breaks open at that moment).

**When it fails:** `apply` names each break it could not settle, e.g. *a resolution needs
a reason* (Resolve chosen with the reason left empty) or a break resolved or matched
meanwhile; the other answers are applied. Such a break stays open and is asked about
again at the next review (or resolve it with `sscard breaks resolve ID --reason …`).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import Any

import pendulum
from airflow.providers.standard.operators.hitl import HITLOperator
from airflow.sdk import CronTriggerTimetable, Param, dag, task

from sscard.alerts import on_failure
from sscard.schedules import cron

REASONS = {
    "R01": "response missing for an instructed line / 指令缺少应答",
    "R02": "amount differs between instruction, posting or response",
    "R03": "batch unfunded or under-funded",
    "R04": "batch over-funded",
    "R05": "posting without instruction",
    "R06": "duplicate posting",
    "R07": "return not received when due",
    "R08": "partner settlement missing or different",
    "R09": "unidentified statement item",
}


class BreakQuestion(HITLOperator):
    """The question about one break: the person's answer comes back with the break's id, so
    each answer settles the break it was given for, whichever other questions were
    answered, timed out or failed."""

    def __init__(self, *, break_id: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.break_id = break_id

    def execute_complete(self, context: Any, event: dict[str, Any]) -> Any:
        return {**super().execute_complete(context, event), "break_id": self.break_id}


@dag(
    dag_id="break_review",
    schedule=CronTriggerTimetable(cron("break_review"), timezone="Asia/Shanghai"),
    start_date=pendulum.datetime(2026, 1, 1, tz="Asia/Shanghai"),
    catchup=False,
    max_active_runs=1,
    doc_md=__doc__,
    tags=["payments", "finance", "human-in-the-loop"],
    default_args={
        "owner": "finance",
        "retries": 0,
        "on_failure_callback": on_failure(),
    },
)
def break_review() -> None:
    @task
    def questions(**context: Any) -> list[dict[str, Any]]:
        from sscard.airflow_tasks import task_errors
        from sscard.payments_jobs import business_date_for, open_breaks

        day = business_date_for(context["dag_run"].run_after)
        with task_errors():
            breaks = open_breaks(day)
        asked = []
        for b in breaks:
            yuan = f"{b['amount_fen'] // 100}.{b['amount_fen'] % 100:02d}"
            asked.append(
                {
                    "break_id": b["id"],
                    "subject": f"Break {b['id']}: "
                    + " ".join(x for x in (b["reason"], b["bureau"], b["batch_no"], yuan) if x)
                    + " yuan",
                    "body": (
                        f"**{b['reason']}** {REASONS.get(b['reason'], '')}\n\n"
                        f"- bureau: {b['bureau'] or '(none)'}\n- batch: {b['batch_no'] or '(none)'}\n"
                        f"- amount: {yuan} yuan\n- first seen: {b['first_date']}\n\n"
                        f"Details: `sscard breaks show {b['id']}`"
                    ),
                }
            )
        return asked

    ask = BreakQuestion.partial(
        task_id="decide",
        options=["Resolve", "Leave open"],
        defaults=["Leave open"],
        params={"reason": Param("", type="string", description="why (required to resolve)")},
        response_timeout=timedelta(days=3),
    ).expand_kwargs(questions())

    @task(trigger_rule="all_done")
    def apply(decisions: Sequence[dict[str, Any]], **context: Any) -> list[dict[str, Any]]:
        from sscard.airflow_tasks import task_errors
        from sscard.payments_jobs import settle_breaks

        with task_errors():
            return settle_breaks(list(decisions), context["dag_run"].run_after)

    apply(ask.output)  # type: ignore[arg-type]  # resolved to the answers at run time


break_review()
