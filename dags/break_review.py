"""
### break_review — reconciliation breaks waiting for a person (DOMAIN §7)

One required action per open break (Airflow's human-in-the-loop: **Required actions** in
the UI): read the break (bureau, batch, R-code and what it means, amount, first seen),
then **Resolve** with a reason, or **Leave open**. A resolution records who, when and why,
and an audit record, exactly as `sscard breaks resolve ID --reason …` does; a break left
open is asked about again at the next review. An unanswered question times out after 3
days and the break simply stays open.

**Runs** every business day at 09:00 Asia/Shanghai, after the night's reconciliation, and
on demand.
"""

from __future__ import annotations

from datetime import timedelta

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
def break_review():
    @task
    def questions(**context) -> list[dict]:
        from sscard.payments_jobs import business_date_for, open_breaks

        day = business_date_for(context["dag_run"].run_after)
        asked = []
        for b in open_breaks(day):
            yuan = f"{b['amount_fen'] // 100}.{b['amount_fen'] % 100:02d}"
            asked.append(
                {
                    "subject": f"Break {b['id']}: {b['reason']} {b['bureau']} {b['batch_no']}",
                    "body": (
                        f"**{b['reason']}** {REASONS.get(b['reason'], '')}\n\n"
                        f"- bureau: {b['bureau'] or '(none)'}\n- batch: {b['batch_no'] or '(none)'}\n"
                        f"- amount: {yuan} yuan\n- first seen: {b['first_date']}\n\n"
                        f"Details: `sscard breaks show {b['id']}`"
                    ),
                }
            )
        return asked

    @task
    def ids(**context) -> list[int]:
        from sscard.payments_jobs import business_date_for, open_breaks

        return [b["id"] for b in open_breaks(business_date_for(context["dag_run"].run_after))]

    ask = HITLOperator.partial(
        task_id="decide",
        options=["Resolve", "Leave open"],
        defaults=["Leave open"],
        params={"reason": Param("", type="string", description="why (required to resolve)")},
        response_timeout=timedelta(days=3),
    ).expand_kwargs(questions())

    @task(trigger_rule="all_done")
    def apply(break_ids: list[int], decisions: list, **context) -> list[dict]:
        from sscard.payments_jobs import settle_break

        done = []
        for break_id, decision in zip(break_ids, decisions or [], strict=False):
            if decision:
                done.append(settle_break(break_id, dict(decision), context["dag_run"].run_after))
        return done

    apply(ids(), ask.output)


break_review()
