"""The sandbox's business day, end to end, on the embedded default (``make demo``).

An embedded SFTP server stands in for the servers of the bureau, the partner banks and
the card factory. The simulated bureau uploads an APPLY batch with its photo zip (about
8 % bad lines of every kind); the hub's DAGs run with ``dag.test()`` one after the
other — intake, account opening, partner answers, personalisation, production returns,
card returns — with the simulated partner banks and factory answering in between; the
bureau collects its APPLYRSP and CARDRSP.

The terminal tells the day's story, one line per step as it happens (what each DAG run
took in and sent out, read from the hub's registry of received files and its outbox),
then the bureau's answers as tables and where to look. Every log record of the run —
Airflow's, the hub's, paramiko's and asyncssh's, the sandbox server's — and anything
else written to standard output or error goes to ``var/demo/airflow-demo.log``.
"""

from __future__ import annotations

import json
import os
import sys
import unicodedata
from collections import Counter
from collections.abc import Collection, Iterator, Sequence
from contextlib import ExitStack, contextmanager, redirect_stderr, redirect_stdout
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from sandbox.bureau import BureauSimulator, read_applyrsp
from sandbox.factory import CardFactorySimulator
from sandbox.partner_bank import PartnerBankSimulator
from sandbox.services import collect, settings_of
from sandbox.sftp_server import EmbeddedSftpServer
from schemas.codes import message
from sscard.config import ROOT, database_url, load_counterparties, storage_url, var_dir
from transport.sftp import SftpRemote

if TYPE_CHECKING:
    from sscard.config import Counterparties

#: the run's log, in the demo's directory under ``var/``
LOG_NAME = "airflow-demo.log"
#: the story's first column: who acted (the longest DAG id and two spaces)
_WHO = 25
#: rows of the hub database read for the story
_Rows = list[Any]


@contextmanager
def _logs_to(path: Path) -> Iterator[None]:
    """Airflow's logging, and standard output and error, point at ``path`` while the
    block runs.

    Airflow 3 configures logging when it is first imported: structlog for its own
    loggers and one handler on the root logger for every stdlib logger (the hub's,
    paramiko's, asyncssh's, the sandbox's), both writing to ``sys.stdout`` as it is at
    that moment. Configured again while ``sys.stdout`` is the file, every record goes
    there; ``dag.test()`` runs its tasks in this process with the same configuration.
    Afterwards Airflow is configured again for the terminal.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as log, ExitStack() as redirected:
        redirected.enter_context(redirect_stdout(log))
        redirected.enter_context(redirect_stderr(log))
        from airflow.logging_config import configure_logging

        configure_logging()  # type: ignore[no-untyped-call]
        try:
            yield
        finally:
            redirected.close()
            configure_logging()  # type: ignore[no-untyped-call]


def _next_seq(business_date: str, bureau: str) -> int:
    """The first SEQ of the day not yet used by an accepted file, so a demo can be re-run."""
    from sqlalchemy import func, select

    from persistence.db import engine_for
    from persistence.models import ReceivedFile

    with engine_for(database_url()).connect() as conn:
        used = conn.scalar(
            select(func.count()).where(
                ReceivedFile.sender == bureau,
                ReceivedFile.type == "APPLY",
                ReceivedFile.business_date == business_date,
            )
        )
    return int(used or 0) + 1


def main(size: int = 200, business_date: str | None = None) -> int:
    os.environ.setdefault("AIRFLOW_HOME", str(ROOT))
    os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
    out, err = sys.stdout, sys.stderr
    parties = load_counterparties()
    bureau = parties.bureaus[0]
    now = datetime.now(UTC)
    business_date = business_date or now.astimezone(ZoneInfo(parties.timezone)).strftime("%Y%m%d")
    run_at = datetime.strptime(business_date, "%Y%m%d").replace(
        hour=10, tzinfo=ZoneInfo(parties.timezone)
    )
    demo_dir = var_dir() / "demo"
    sftp_root = demo_dir / "sftp"
    log_path = demo_dir / LOG_NAME
    counterparties = [bureau, *parties.partner_banks, *parties.factories]
    for party in counterparties:
        for sub in (party.pickup, party.drop):
            (sftp_root / party.code / sub).mkdir(parents=True, exist_ok=True)

    def say(text: str = "") -> None:
        print(text, file=out, flush=True)

    def step(who: str) -> None:
        """A line of the story begins with who acts; what happened ends it."""
        print(f"{who:<{_WHO}}", end="", file=out, flush=True)

    say(f"The sandbox's business day {business_date}, step by step (Airflow's log: {log_path})")
    say()
    with _logs_to(log_path), EmbeddedSftpServer(sftp_root, state_dir=demo_dir / "sshd") as server:
        settings = {}
        for party in counterparties:
            conn = server.connection(party.code)
            os.environ[f"AIRFLOW_CONN_{party.conn_id.upper()}"] = json.dumps(conn)
            settings[party.code] = settings_of(conn)

        seq = _next_seq(business_date, bureau.code)
        sim = BureauSimulator(
            bureau=bureau.code, hub=parties.hub, seed=f"demo-{seq}", encoding=bureau.encoding
        )
        sim._seqs[business_date] = seq - 1
        batch = sim.next_batch(business_date, size=size, bad_share={k: 0.005 for k in _kinds()})
        step(f"bureau {bureau.code}")
        with SftpRemote(settings[bureau.code]) as bureau_side:
            assert batch.zip_data is not None
            bureau_side.publish(
                bureau.pickup, batch.zip_name, batch.zip_data, len(_zip_names(batch))
            )
            bureau_side.publish(bureau.pickup, batch.name, batch.data, len(batch.rows))
        say(f"uploaded {batch.name} ({len(batch.rows)} applications) and its photo zip")

        from airflow.models import DagBag
        from airflow.utils.state import DagRunState

        dags = DagBag(dag_folder=str(ROOT / "dags")).dags
        hub = _HubRecords(database_url(), parties)

        def run(dag_id: str) -> bool:
            step(dag_id)
            state = dags[dag_id].test(run_after=run_at, logical_date=run_at).state
            if state != DagRunState.SUCCESS:
                say(f"the run ended {state}")
                print(
                    f"the DAG run of {dag_id} ended {state}; its tasks' logs are in {log_path}",
                    file=err,
                )
                return False
            say(hub.tell(dag_id))
            return True

        if not (run("apply_intake") and run("account_opening")):
            return 1
        remotes = {code: SftpRemote(settings[code]) for code in settings}
        try:
            for partner in parties.partner_banks:
                step(f"partner bank {partner.code}")
                sent = PartnerBankSimulator(
                    remotes[partner.code],
                    code=partner.code,
                    hub=parties.hub,
                    seed=f"demo-{partner.code}",
                    state_dir=demo_dir / "partners",
                ).run(business_date)
                say(f"answered {', '.join(sent) or 'nothing'}")
            if not (run("partner_account_returns") and run("factory_dispatch")):
                return 1
            for factory in parties.factories:
                step(f"card factory {factory.code}")
                sent = CardFactorySimulator(
                    remotes[factory.code], code=factory.code, hub=parties.hub, seed=f"demo-{seq}"
                ).run(business_date)
                say(f"returned {', '.join(sent) or 'nothing'}")
            if not (run("factory_returns") and run("bureau_card_returns")):
                return 1
            inbox = demo_dir / "bureau-inbox"
            inbox.mkdir(parents=True, exist_ok=True)
            step(f"bureau {bureau.code}")
            taken = collect(remotes[bureau.code], bureau.drop, inbox)
        finally:
            for remote in remotes.values():
                remote.close()
        say(f"collected {', '.join(taken) or 'nothing'}")

    response_name = f"APPLYRSP_{parties.hub}_{bureau.code}_{business_date}_{seq:03d}.txt"
    answers = read_applyrsp((inbox / response_name).read_bytes(), bureau.encoding)
    agree = all(
        (code or None) == exp for (_, _, code), exp in zip(answers, batch.expected, strict=True)
    )
    planted = sum(1 for c in batch.expected if c)
    say()
    for line in _applyrsp_lines(response_name, answers):
        say(line)
    say(
        f"  the bureau's expectations {'match' if agree else 'DO NOT match'} every line "
        f"({planted} bad lines planted)"
    )
    for name in (n for n in taken if n.startswith("CARDRSP_")):
        say()
        for line in _cardrsp_lines(inbox, name, bureau.encoding, parties.hub):
            say(line)
    archive = sftp_root / bureau.code / bureau.pickup / "archive" / business_date
    say()
    say("Where to look:")
    for line in _table(
        [
            ("what the bureau took from its drop directory", f"{inbox}/"),
            ("archived requests (bureau's server)", f"{archive}/"),
            ("every file the hub sent", "table outbound_file of the hub database"),
            ("  large ones (APPLYRSP, PERSO and its zip)", f"{storage_url()}/outbox/"),
            ("hub's copies of what arrived", f"{storage_url()}/received/"),
            ("hub database", database_url()),
            ("Airflow's, the hub's and the servers' logs", str(log_path)),
            ("where the work stands", f"uv run sscard status --business-date {business_date}"),
            (
                "pre-check a file yourself",
                f"uv run sscard validate {archive / batch.name} --business-date {business_date}",
            ),
            (
                "the hub in a real Airflow, with its UI",
                "make airflow, then make airflow-batch (http://127.0.0.1:8080)",
            ),
        ]
    ):
        say(line)
    return 0 if agree else 1


class _HubRecords:
    """What each DAG run took in and sent out, from the hub database: the registry of
    received files and the outbox, and what became of their records (hub accounts,
    partner answers, production results). Each :meth:`tell` covers the rows written
    since the one before."""

    def __init__(self, url: str, parties: Counterparties) -> None:
        from persistence.db import engine_for

        self._engine = engine_for(url)
        self._hub = parties.hub
        self._party = {p.conn_id: p.code for p in parties.all()}
        self._took, self._sent = self._last_ids()
        self._accounts = self._hub_accounts()
        self._requests: list[str] = []

    def tell(self, dag_id: str) -> str:
        """One line: what the run of ``dag_id`` just did."""
        took, sent = self._since()
        told = {
            "apply_intake": self._intake,
            "account_opening": self._account_opening,
            "partner_account_returns": self._partner_answers,
            "factory_dispatch": self._dispatch,
            "factory_returns": self._production,
            "bureau_card_returns": self._card_returns,
        }[dag_id](took, sent)
        refused = [f"{f.name} {f.outcome} ({f.file_code})" for f in took if f.outcome != "accepted"]
        return "; ".join(part for part in (*refused, told) if part) or "nothing to do"

    def _intake(self, took: _Rows, sent: _Rows) -> str:
        counts = [
            f"{f.accepted_count} accepted, {f.rejected_count} rejected"
            for f in took
            if f.outcome == "accepted"
        ]
        return " → ".join(part for part in ("; ".join(counts), self._delivered(sent)) if part)

    def _account_opening(self, took: _Rows, sent: _Rows) -> str:
        before, self._accounts = self._accounts, self._hub_accounts()
        self._requests = [f.name for f in sent if f.type == "ACCTOPEN"]
        to = ", ".join(f"{self._party[f.conn_id]} ({f.record_count})" for f in sent)
        return f"{self._accounts - before} hub accounts, ACCTOPEN to {to or 'no partner bank'}"

    def _partner_answers(self, took: _Rows, sent: _Rows) -> str:
        from sqlalchemy import func, select

        from persistence.models import PartnerRequest as Request

        with self._engine.connect() as conn:
            rows = conn.execute(
                select(Request.bank_code, Request.result, func.count())
                .where(Request.request_name.in_(self._requests))
                .group_by(Request.bank_code, Request.result)
            )
            answers = Counter({(bank, result): int(n) for bank, result, n in rows})
        return "; ".join(
            f"{bank}: {answers[bank, '00']} accounts opened, {answers[bank, '01']} refused"
            + (f", {answers[bank, None]} not answered" if answers[bank, None] else "")
            for bank in sorted({bank for bank, _ in answers})
        )

    def _dispatch(self, took: _Rows, sent: _Rows) -> str:
        return "; ".join(
            f"{f.name} ({f.record_count} cards) and its photo zip to {self._party[f.conn_id]}"
            for f in sent
            if f.type == "PERSO"
        )

    def _production(self, took: _Rows, sent: _Rows) -> str:
        from sqlalchemy import func, select

        from persistence.models import PersoRecord

        told = []
        with self._engine.connect() as conn:
            for f in took:
                if f.outcome != "accepted":
                    continue
                results = Counter(
                    {
                        result: int(n)
                        for result, n in conn.execute(
                            select(PersoRecord.result, func.count())
                            .where(PersoRecord.result_name == f.name)
                            .group_by(PersoRecord.result)
                        )
                    }
                )
                made = results.pop("00", 0)
                told.append(f"{f.name}: {made} made, {results.total()} failed")
        return "; ".join(told)

    def _card_returns(self, took: _Rows, sent: _Rows) -> str:
        return self._delivered(sent)

    def _delivered(self, sent: _Rows) -> str:
        return ", ".join(
            f"{f.name} ({f.record_count} lines) "
            f"{'delivered' if f.delivered_at else 'waiting in the outbox'}"
            for f in sent
        )

    def _last_ids(self) -> tuple[int, int]:
        from sqlalchemy import func, select

        from persistence.models import OutboundFile, ReceivedFile

        with self._engine.connect() as conn:
            return (
                int(conn.scalar(select(func.max(ReceivedFile.id))) or 0),
                int(conn.scalar(select(func.max(OutboundFile.id))) or 0),
            )

    def _hub_accounts(self) -> int:
        from sqlalchemy import func, select

        from persistence.models import Account

        with self._engine.connect() as conn:
            return int(conn.scalar(select(func.count()).where(Account.bank_code == self._hub)) or 0)

    def _since(self) -> tuple[_Rows, _Rows]:
        """The received files and the outbox entries written since the last look."""
        from sqlalchemy import select

        from persistence.models import OutboundFile as Sent
        from persistence.models import ReceivedFile as Took

        with self._engine.connect() as conn:
            took = list(
                conn.execute(
                    select(
                        Took.id,
                        Took.name,
                        Took.outcome,
                        Took.file_code,
                        Took.accepted_count,
                        Took.rejected_count,
                    )
                    .where(Took.id > self._took)
                    .order_by(Took.id)
                )
            )
            sent = list(
                conn.execute(
                    select(
                        Sent.id,
                        Sent.conn_id,
                        Sent.name,
                        Sent.type,
                        Sent.record_count,
                        Sent.delivered_at,
                    )
                    .where(Sent.id > self._sent)
                    .order_by(Sent.id)
                )
            )
        self._took = max([self._took, *(f.id for f in took)])
        self._sent = max([self._sent, *(f.id for f in sent)])
        return took, sent


def _applyrsp_lines(name: str, answers: list[tuple[str, str, str]]) -> list[str]:
    """The APPLYRSP by reason code, with each code's message in Chinese and English."""
    tally = Counter(code or "00" for _, _, code in answers)
    accepted = tally.pop("00", 0)
    rows = [
        (code, n, message(code, "zh"), message(code, "en")) for code, n in sorted(tally.items())
    ]
    return [
        f"APPLYRSP {name}: {len(answers)} lines, {accepted} accepted, {tally.total()} rejected",
        *_table(rows, header=("code", "lines", "原因", "reason"), right={1}),
    ]


def _cardrsp_lines(inbox: Path, name: str, encoding: str, hub: str) -> list[str]:
    """The CARDRSP by stage and reason code, and the made cards by service bank."""
    from schemas.codec import DelimitedReader, read_all
    from schemas.layouts import CARDRSP

    table, _ = read_all(DelimitedReader((inbox / name).read_bytes(), CARDRSP, encoding))
    lines = table.to_pylist()
    stages = Counter(line["fail_stage"] for line in lines)
    rows: list[tuple[object, ...]] = [("0 made", "", stages.get("0", 0), "")]
    for stage, label in (("1", "failed at the bank"), ("2", "failed at the factory")):
        rows.append((f"{stage} {label}", "", stages.get(stage, 0), ""))
        codes = Counter(line["reason_code"] for line in lines if line["fail_stage"] == stage)
        rows.extend(
            ("", code, n, message(code, "en") if code in _known() else "")
            for code, n in sorted(codes.items())
        )
    banks = Counter(line["bank_code"] for line in lines if line["fail_stage"] == "0")
    made = [(bank, "hub" if bank == hub else "partner", n) for bank, n in sorted(banks.items())]
    return [
        f"CARDRSP {name}: {len(lines)} card(s) reached a final outcome",
        *_table(rows, header=("stage", "code", "cards", "reason"), right={2}),
        "",
        "Made cards by service bank",
        *_table([*made, ("", "total", banks.total())], header=("bank", "", "cards"), right={2}),
    ]


def _table(
    rows: Sequence[Sequence[object]],
    header: Sequence[str] | None = None,
    right: Collection[int] = (),
) -> list[str]:
    """Rows as columns two spaces apart, indented, under a header and its rule when one
    is given (none when there are no rows); a Chinese character takes two columns, as on
    a terminal."""
    if not rows:
        return []
    cells = [[str(c) for c in row] for row in ([header] if header else []) + list(rows)]
    widths = [max(_width(row[i]) for row in cells) for i in range(len(cells[0]))]
    if header:
        cells.insert(1, ["-" * w if title else "" for w, title in zip(widths, header, strict=True)])

    def pad(i: int, text: str) -> str:
        gap = " " * (widths[i] - _width(text))
        return gap + text if i in right else text + gap

    return ["  " + "  ".join(pad(i, c) for i, c in enumerate(row)).rstrip() for row in cells]


def _width(text: str) -> int:
    return sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in text)


def _known() -> set[str]:
    from schemas.codes import MESSAGES

    return set(MESSAGES)


def _kinds() -> tuple[str, ...]:
    from sandbox.bureau import LINE_KINDS

    return LINE_KINDS


def _zip_names(batch: object) -> list[str]:
    import io
    import zipfile

    data = batch.zip_data  # type: ignore[attr-defined]
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        return zf.namelist()
