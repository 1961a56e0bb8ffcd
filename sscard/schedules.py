"""When each DAG runs, declared once (the DAG files and the README read it).

``SSCARD_SCHEDULES=sandbox`` runs every flow every minute, so the local sandbox
(``make airflow``) takes a batch through the whole issuance day in minutes while an
operator watches; production keeps the business schedule below (Asia/Shanghai).
"""

from __future__ import annotations

import os

#: DAG id → cron (Asia/Shanghai)
BUSINESS = {
    "apply_intake": "*/15 * * * *",
    "account_opening": "5 * * * *",
    "partner_account_returns": "*/15 * * * *",
    "factory_dispatch": "0 16 * * *",
    "factory_returns": "*/30 * * * *",
    "bureau_card_returns": "0 20 * * *",
    "status_sync": "*/15 * * * *",
    "channel_requests": "*/5 * * * *",
    "card_maintenance": "30 21 * * *",
    "disbursement_intake": "*/15 * * * *",
    "statement_intake": "*/15 * * * *",
    "partner_disbursements": "*/15 * * * *",
    "payments_end_of_day": "0 23 * * *",
    "break_review": "0 9 * * 1-5",
}
SANDBOX = "* * * * *"
#: in the sandbox the servicing DAGs run less often than the issuance chain: every task
#: start costs a worker seconds of CPU, and on two cores a dozen DAGs every minute would
#: starve the issuance day an operator is watching
SANDBOX_SLOWER = {
    "status_sync": "*/5 * * * *",
    "channel_requests": "*/5 * * * *",
    "card_maintenance": "*/30 * * * *",
    "disbursement_intake": "*/10 * * * *",
    "statement_intake": "*/10 * * * *",
    "partner_disbursements": "*/10 * * * *",
    "payments_end_of_day": "*/30 * * * *",
    "break_review": "0 9 * * 1-5",
}


def cron(dag_id: str) -> str:
    """The cron of ``dag_id``: its business schedule, or in the sandbox every minute (the
    servicing DAGs every few minutes)."""
    if os.environ.get("SSCARD_SCHEDULES") == "sandbox":
        return SANDBOX_SLOWER.get(dag_id, SANDBOX)
    return BUSINESS[dag_id]
