"""Alerts to the operators: a task that failed, and a business promise about to be
broken (the bureau's daily CARDRSP late, partner requests about to fail E140, an APPLY
still missing its photo zip near ``zip_wait``; ICD §2 Deadlines).

Every alert names the counterparty, the file or the count, and what to do. It is
logged (WARNING, logger ``sscard.alerts``) and sent through Airflow's notifiers to
the channels configured in the environment; none configured → only the log line:

- ``SSCARD_ALERT_EMAIL_TO`` (comma-separated addresses) and ``SSCARD_ALERT_SMTP_CONN_ID``
  (an SMTP connection, default ``smtp_default``): mail through ``SmtpNotifier``;
- ``SSCARD_ALERT_WEBHOOK_CONN_ID`` (an HTTP connection) and
  ``SSCARD_ALERT_WEBHOOK_ENDPOINT`` (path on it, default empty): a JSON POST through
  ``HttpNotifier``.

A send that fails is logged and never fails a task. Airflow is imported inside the
functions only: the business jobs import this module too.
"""

from __future__ import annotations

import html
import logging
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from exchange.logsafe import MaskedError, masked_numbers

log = logging.getLogger("sscard.alerts")

#: The bureau's CARDRSP is due at 20:00 Asia/Shanghai (the run's logical date); the
#: deadline alert fires when the run has not finished this long after.
CARDRSP_GRACE = timedelta(minutes=30)


@dataclass(frozen=True)
class Alert:
    """One alert: what happened to whom, and what the operator does about it."""

    kind: str
    counterparty: str
    subject: str
    facts: str
    todo: tuple[str, ...]
    details: dict[str, Any] = field(default_factory=dict)

    def text(self) -> str:
        lines = [self.subject, "", self.facts]
        lines += [f"{k}: {v}" for k, v in self.details.items() if v not in (None, "")]
        lines += ["", "What to do:"] + [f"- {t}" for t in self.todo]
        return "\n".join(lines)

    def html(self) -> str:
        return f"<pre>{html.escape(self.text())}</pre>"

    def payload(self) -> dict[str, Any]:
        data = asdict(self)
        data["todo"] = list(self.todo)
        data["details"] = {
            k: v if v is None or isinstance(v, (str, int)) else str(v)
            for k, v in self.details.items()
        }
        data["text"] = self.text()
        return data


def shown(moment: datetime) -> str:
    """A moment as operators read it: in Asia/Shanghai, to the minute."""
    return moment.astimezone(ZoneInfo("Asia/Shanghai")).strftime("%Y-%m-%d %H:%M Asia/Shanghai")


# --------------------------------------------------------------------------- channels


def _email_to() -> list[str]:
    return [a.strip() for a in os.environ.get("SSCARD_ALERT_EMAIL_TO", "").split(",") if a.strip()]


def channels() -> list[str]:
    """The configured channels: ``smtp``, ``webhook``, both or none."""
    found = []
    if _email_to():
        found.append("smtp")
    if os.environ.get("SSCARD_ALERT_WEBHOOK_CONN_ID"):
        found.append("webhook")
    return found


def notifier(channel: str, alert: Alert) -> Any:
    """The Airflow notifier that sends ``alert`` on ``channel``, its text taken as is
    (not rendered as a template)."""
    n: Any
    if channel == "smtp":
        from airflow.providers.smtp.notifications.smtp import SmtpNotifier

        n = SmtpNotifier(
            to=_email_to(),
            smtp_conn_id=os.environ.get("SSCARD_ALERT_SMTP_CONN_ID", "smtp_default"),
            subject=alert.subject,
            html_content=alert.html(),
        )
    elif channel == "webhook":
        from airflow.providers.http.notifications.http import HttpNotifier

        n = HttpNotifier(
            http_conn_id=os.environ["SSCARD_ALERT_WEBHOOK_CONN_ID"],
            endpoint=os.environ.get("SSCARD_ALERT_WEBHOOK_ENDPOINT", ""),
            method="POST",
            json=alert.payload(),
        )
    else:
        raise ValueError(f"unknown alert channel {channel!r}")
    n.template_fields = ()
    return n


def send(alert: Alert, context: Mapping[str, Any] | None = None) -> None:
    """Log ``alert`` as a WARNING and send it on every configured channel; a channel
    that fails is logged, never raised."""
    log.warning("ALERT %s", alert.text().replace("\n", " | "))
    for channel in channels():
        try:
            notifier(channel, alert)(dict(context or {}))
        except Exception as exc:
            log.error("alert %s not sent by %s: %s", alert.kind, channel, masked_numbers(str(exc)))


# --------------------------------------------------------------------------- failed tasks


def runbook(doc_md: str | None, error: str = "") -> tuple[str, ...]:
    """The bullets of the DAG's "When it fails" section; those naming the error's type
    first (only those, when any does)."""
    if not doc_md or "**When it fails**" not in doc_md:
        return ()
    section = doc_md.split("**When it fails**", 1)[1]
    bullets: list[str] = []
    for line in section.splitlines():
        if line.startswith("- "):
            bullets.append(line[2:].strip())
        elif line.startswith("  ") and bullets:
            bullets[-1] += " " + line.strip()
        elif line.strip() and bullets:
            break
    named = [b for b in bullets if (m := re.match(r"`(\w+)`", b)) and m.group(1) in error]
    return tuple(named or bullets)


def failure_alert(context: Mapping[str, Any]) -> Alert:
    """The alert for a task that failed for good (no retry left), from its context: the
    counterparty is the mapped task's rendered map index (its counterparty code)."""
    ti = context["ti"]
    dag = context.get("dag")
    dag_id = ti.dag_id
    counterparty = getattr(ti, "rendered_map_index", None) or (
        f"map index {ti.map_index}" if getattr(ti, "map_index", -1) >= 0 else "all counterparties"
    )
    exc = context.get("exception")
    first = (masked_numbers(str(exc)).strip().splitlines() or [""])[0] if exc is not None else ""
    error = (
        "(no exception recorded)"
        if exc is None
        else first  # its text begins with the original error's type
        if isinstance(exc, MaskedError)
        else f"{type(exc).__name__}: {first}"
    )
    todo = runbook(getattr(dag, "doc_md", None), error) or (
        "Read the task's log, fix the cause, then clear the task to run it again.",
    )
    run_id = getattr(context.get("dag_run"), "run_id", None) or getattr(ti, "run_id", None)
    return Alert(
        kind="task_failed",
        counterparty=str(counterparty),
        subject=f"[sscard] {dag_id}.{ti.task_id} failed for {counterparty}",
        facts=f"Task {ti.task_id} of DAG {dag_id} failed for {counterparty}: {error}",
        todo=todo,
        details={
            "dag": dag_id,
            "task": ti.task_id,
            "run": run_id,
            "log": getattr(ti, "log_url", None),
        },
    )


@dataclass(frozen=True)
class FailureNotice:
    """``on_failure_callback`` for one channel: builds the alert from the context."""

    channel: str

    def __call__(self, context: Mapping[str, Any]) -> None:
        alert = failure_alert(context)
        log.warning("ALERT %s", alert.text().replace("\n", " | "))
        try:
            notifier(self.channel, alert)(context)
        except Exception as exc:
            log.error(
                "alert %s not sent by %s: %s", alert.kind, self.channel, masked_numbers(str(exc))
            )


def on_failure() -> list[Callable[[Mapping[str, Any]], None]]:
    """The ``on_failure_callback`` list of every DAG's ``default_args``: one notice
    per configured channel (read when the DAG file is parsed)."""
    return [FailureNotice(c) for c in channels()]


# --------------------------------------------------------------------------- deadlines


def _moment(value: Any) -> Any:
    """A moment from a deadline callback's context (a datetime or ISO text), shown."""
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return value
    return shown(value) if isinstance(value, datetime) else value


def cardrsp_late_alert(context: Mapping[str, Any]) -> Alert:
    """The alert for the day's CARDRSP run still unfinished at its deadline; ``context``
    is what Airflow passes a deadline callback (``dag_run``, ``deadline``)."""
    run = context.get("dag_run") or {}
    run_id = run.get("run_id") or run.get("dag_run_id")
    deadline = _moment((context.get("deadline") or {}).get("deadline_time"))
    return Alert(
        kind="cardrsp_late",
        counterparty="every bureau",
        subject=f"[sscard] CARDRSP not delivered to the bureaus by {deadline}",
        facts=(
            f"DAG bureau_card_returns, run {run_id} (due "
            f"{_moment(run.get('logical_date'))}), is {run.get('state')} at its deadline {deadline}: "
            "the bureaus' daily CARDRSP (ICD §5.3) has not been delivered."
        ),
        todo=(
            "Open the run in Airflow and read the log of each cardrsp task that is not "
            "success (its map index is the bureau).",
            "A task that failed: fix the cause, clear it and re-run; nothing was marked "
            "as reported before its commit.",
            "A CARDRSP written but not delivered stays in the outbox and is sent by the "
            "next run; tell the bureau it is late.",
        ),
        details={"dag": "bureau_card_returns", "run": run_id, "deadline": deadline},
    )


async def cardrsp_deadline_missed(context: Mapping[str, Any] | None = None, **_: Any) -> None:
    """Deadline callback of ``bureau_card_returns`` (runs in the triggerer)."""
    from asgiref.sync import sync_to_async

    await sync_to_async(send)(cardrsp_late_alert(context or {}))


def cardrsp_deadline() -> Any:
    """The DeadlineAlert of ``bureau_card_returns``: the run not finished
    ``CARDRSP_GRACE`` after its logical date (20:00 Asia/Shanghai)."""
    from airflow.sdk.definitions.callback import AsyncCallback
    from airflow.sdk.definitions.deadline import DeadlineAlert, DeadlineReference

    return DeadlineAlert(
        reference=DeadlineReference.DAGRUN_LOGICAL_DATE,
        interval=CARDRSP_GRACE,
        callback=AsyncCallback(f"{__name__}.cardrsp_deadline_missed"),
        name="CARDRSP to the bureaus by 20:30",
    )


def deadlines() -> list[Any]:
    """The ``deadline`` of ``bureau_card_returns``: its DeadlineAlert when a channel is
    configured, none otherwise (read when the DAG file is parsed).

    Without a channel the DAG declares none, as Airflow 3.3.2's ``dag.test()`` (the demo,
    the DAG tests) fails a successful run of a DAG declaring one: it looks the
    deadline's definition up by an id that only the DAG processor assigns."""
    return [cardrsp_deadline()] if channels() else []


def e140_due(partner: str, count: int, at: datetime, wait_days: int) -> None:
    """Requests to a partner bank that fail E140 at ``at`` unless it answers them."""
    when = shown(at)
    send(
        Alert(
            kind="e140_due",
            counterparty=partner,
            subject=f"[sscard] {count} request(s) to partner {partner} fail E140 at {when}",
            facts=(
                f"Partner bank {partner} has not answered {count} account request(s) "
                f"(ACCTOPEN); they reach partner_wait ({wait_days} business day(s)) at {when} and are "
                "then answered E140 to the bureaus."
            ),
            todo=(
                f"Ask partner {partner} to deliver its ACCTOPENRSP before {when}.",
                "If it cannot, nothing is needed: the requests fail E140 and the bureaus "
                "are told in their CARDRSP.",
            ),
            details={"partner": partner, "count": count, "e140_at": when},
        )
    )


def e140_expired(partner: str, count: int, wait_days: int) -> None:
    """Requests to a partner bank just failed E140 (past ``partner_wait``)."""
    send(
        Alert(
            kind="e140_expired",
            counterparty=partner,
            subject=f"[sscard] {count} request(s) to partner {partner} failed E140",
            facts=(
                f"Partner bank {partner} did not answer {count} account request(s) within "
                f"partner_wait ({wait_days} business day(s)): they were failed E140."
            ),
            todo=(
                f"Tell partner {partner} which requests expired (reason E140 in the "
                "partner_request table); an answer arriving now is refused.",
                "The bureaus learn it from their next CARDRSP; the applicants apply again.",
            ),
            details={"partner": partner, "count": count},
        )
    )


def zip_missing(bureau: str, name: str, first_seen: datetime, f10_at: datetime) -> None:
    """An APPLY file still waiting for its photo zip, rejected F10 at ``f10_at``."""
    seen, f10 = shown(first_seen), shown(f10_at)
    zip_name = name.rsplit(".", 1)[0] + ".zip"
    send(
        Alert(
            kind="zip_missing",
            counterparty=bureau,
            subject=f"[sscard] {name} from bureau {bureau} still lacks {zip_name}",
            facts=(
                f"Bureau {bureau} delivered {name} (first seen {seen}) without its "
                f"photo zip; it is rejected F10 at {f10} (zip_wait)."
            ),
            todo=(
                f"Ask bureau {bureau} to deliver {zip_name} and {zip_name}.ok to its pickup "
                f"before {f10}.",
                "If it cannot, nothing is needed: the file is answered F10 and the bureau "
                "sends it again with its zip.",
            ),
            details={"bureau": bureau, "file": name, "f10_at": f10},
        )
    )
