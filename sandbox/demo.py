"""The sandbox's business day, end to end, on the embedded default (``make demo``), and
the servicing day after it.

An embedded SFTP server stands in for the servers of the bureau, the partner banks, the
card factory and the bank channel. The simulated bureau uploads an APPLY batch with its
photo zip (about 8 % bad lines of every kind); the hub's DAGs run with ``dag.test()`` one
after the other — intake, account opening, partner answers, personalisation, production
returns, card returns — with the simulated partner banks and factory answering in
between; the bureau collects its APPLYRSP and CARDRSP.

The next business date is a servicing day (:class:`_ServicingDay`): at 10:00 the bank
channel sends CHANNEL requests on the day's hub cards (PIN blocks, weak PINs, wrong
identities, replays, stale and tampered blocks planted) and checks every CHANNELRSP line;
money arrives on a few activated accounts; the bureau reports two cards lost and enables
a partner bank's card, which the hub forwards and the partner bank answers, reporting a
loss of its own; at 21:30 the end of day writes the bureau's BANKEVT. The day after, the
bureau applies for the two lost cards' replacements, one keeping the card's account and
number, one moving the balance to a new account; the new cards are made, enabled at the
channel and by the bureau, and the old ones cancelled.

The terminal tells the story, one line per step as it happens (what each DAG run took in
and sent out, read from the hub's registry of received files and its outbox), then the
counterparties' answers as tables, the checks of the ledger and the audit chain, and where
to look. Every log record of the run — Airflow's, the hub's, paramiko's and asyncssh's,
the sandbox server's — and anything else written to standard output or error goes to
``var/demo/airflow-demo.log``. The exit code is 0 only when every answer is the one the
counterparties expected.
"""

from __future__ import annotations

import json
import os
import random
import sys
import unicodedata
from collections import Counter
from collections.abc import Callable, Collection, Iterator, Sequence
from contextlib import ExitStack, contextmanager, redirect_stderr, redirect_stdout
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from banking import audit, ledger
from banking.keystore import SANDBOX_ZONE_KEY_ID, key_store, write_sandbox_keys
from sandbox.bureau import ApplyBatch, BureauSimulator, make_replacement_batch, read_applyrsp
from sandbox.channel import (
    FAULT_KINDS,
    ChannelCard,
    ChannelFile,
    make_channel_file,
    read_channelrsp,
)
from sandbox.factory import CardFactorySimulator
from sandbox.partner_bank import PartnerBankSimulator
from sandbox.people import make_card_no
from sandbox.services import collect, settings_of
from sandbox.servicing import PartnerServicing, make_status_file, read_bankevt, read_statusrsp
from sandbox.sftp_server import EmbeddedSftpServer
from schemas.codec import amount_to_fen
from schemas.codes import message
from schemas.files import FileName
from schemas.layouts import APPLY
from sscard.config import ROOT, database_url, load_counterparties, storage_url, var_dir
from transport.sftp import SftpRemote

if TYPE_CHECKING:
    from sscard.config import Counterparties, Counterparty

#: the run's log, in the demo's directory under ``var/``
LOG_NAME = "airflow-demo.log"
#: the story's first column: who acted (the longest DAG id and two spaces)
_WHO = 25
#: rows of the hub database read for the story
_Rows = list[Any]
#: where an APPLY line holds its card_no
_CARD_COLUMN = APPLY.index("card_no")


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


def _next_seq(business_date: str, sender: str, type_: str = "APPLY") -> int:
    """The first SEQ of the day not yet used by a file ``sender`` sent, so a demo can be re-run."""
    from sqlalchemy import func, select

    from persistence.db import engine_for
    from persistence.models import ReceivedFile

    with engine_for(database_url()).connect() as conn:
        used = conn.scalar(
            select(func.count()).where(
                ReceivedFile.sender == sender,
                ReceivedFile.type == type_,
                ReceivedFile.business_date == business_date,
            )
        )
    return int(used or 0) + 1


def _day_after(day: str) -> str:
    return (datetime.strptime(day, "%Y%m%d") + timedelta(days=1)).strftime("%Y%m%d")


def _servicing_days(business_date: str, bureau: str) -> tuple[str, str]:
    """The servicing day and the day after it: the first two days after ``business_date``
    whose BANKEVT the hub has not written yet — on a fresh database the next two dates —
    so a demo run again on the same database tells its own days."""
    from sqlalchemy import select

    from persistence.db import engine_for
    from persistence.models import BankEventDay

    with engine_for(database_url()).connect() as conn:
        closed = set(
            conn.scalars(select(BankEventDay.business_date).where(BankEventDay.bureau == bureau))
        )
    day = _day_after(business_date)
    while day in closed or _day_after(day) in closed:
        day = _day_after(day)
    return day, _day_after(day)


def main(size: int = 200, business_date: str | None = None) -> int:
    os.environ.setdefault("AIRFLOW_HOME", str(ROOT))
    os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
    out, err = sys.stdout, sys.stderr
    parties = load_counterparties()
    bureau = parties.bureaus[0]
    now = datetime.now(UTC)
    business_date = business_date or now.astimezone(ZoneInfo(parties.timezone)).strftime("%Y%m%d")
    run_at = _at(business_date, 10, 0, parties.timezone)
    demo_dir = var_dir() / "demo"
    sftp_root = demo_dir / "sftp"
    log_path = demo_dir / LOG_NAME
    counterparties = [
        bureau,
        *parties.partner_banks,
        *parties.factories,
        *parties.channels,
        *parties.payment_systems,
    ]
    for party in counterparties:
        for sub in (party.pickup, party.drop):
            (sftp_root / party.code / sub).mkdir(parents=True, exist_ok=True)
    # the channels' zone keys and the PIN verification key, where the hub's key store reads them
    key_dir = demo_dir / "keys"
    write_sandbox_keys(key_dir, [c.code for c in parties.channels])
    os.environ["SSCARD_KEY_DIR"] = str(key_dir)
    serviced, replaced = _servicing_days(business_date, bureau.code)

    def say(text: str = "") -> None:
        print(text, file=out, flush=True)

    def step(who: str) -> None:
        """A line of the story begins with who acts; what happened ends it."""
        print(f"{who:<{_WHO}}", end="", file=out, flush=True)

    say(f"The sandbox's business day {business_date}, step by step (Airflow's log: {log_path})")
    say()
    with (
        _logs_to(log_path),
        EmbeddedSftpServer(sftp_root, state_dir=demo_dir / "sshd") as server,
        ExitStack() as connected,
    ):
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

        def run(dag_id: str, when: datetime = run_at) -> bool:
            step(dag_id)
            state = dags[dag_id].test(run_after=when, logical_date=when).state
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
        remotes = {code: connected.enter_context(SftpRemote(settings[code])) for code in settings}
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
        say(f"collected {', '.join(taken) or 'nothing'}")

        servicing = _ServicingDay(
            parties=parties,
            remotes=remotes,
            run=run,
            step=step,
            say=say,
            demo_dir=demo_dir,
            batch=batch,
        )
        if not (servicing.day(serviced) and servicing.replacements(replaced)):
            return 1
        payments = _PaymentsDay(
            parties=parties, remotes=remotes, run=run, step=step, say=say, demo_dir=demo_dir
        )
        pension, after = payments.days_after(replaced)
        if not (payments.pension_day(pension) and payments.day_after(after)):
            return 1

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
    for line in servicing.summary():
        say(line)
    for line in payments.summary():
        say(line)
    archive = sftp_root / bureau.code / bureau.pickup / "archive" / business_date
    say()
    say("Where to look:")
    for line in _table(
        [
            ("what the bureau took from its drop directory", f"{inbox}/"),
            ("what the channel took from its drop directory", f"{servicing.channel_inbox}/"),
            ("archived requests (bureau's server)", f"{archive}/"),
            ("every file the hub sent", "table outbound_file of the hub database"),
            ("  large ones (APPLYRSP, PERSO and its zip)", f"{storage_url()}/outbox/"),
            ("hub's copies of what arrived", f"{storage_url()}/received/"),
            ("hub database", database_url()),
            ("the sandbox's zone and PIN verification keys", f"{key_dir}/"),
            ("Airflow's, the hub's and the servers' logs", str(log_path)),
            ("where the work stands", f"uv run sscard status --business-date {business_date}"),
            (
                "pre-check a file yourself",
                f"uv run sscard validate {archive / batch.name} --business-date {business_date}",
            ),
            (
                "an account: status, balance, entries",
                "uv run sscard account show PAN  (the full PAN, from table card)",
            ),
            (
                "a card, the card it replaced, its audit",
                f"uv run sscard card show {servicing.shown_card}",
            ),
            ("the audit chain", "uv run sscard audit verify"),
            ("the ledger's invariants", "uv run sscard ledger check"),
            (
                "the hub in a real Airflow, with its UI",
                "make airflow, then make airflow-batch (http://127.0.0.1:8080)",
            ),
            *payments.where(),
        ]
    ):
        say(line)
    return 0 if agree and servicing.all_met() and payments.all_met() else 1


def _at(day: str, hour: int, minute: int, timezone: str) -> datetime:
    """``day`` (YYYYMMDD) at ``hour:minute`` in ``timezone``."""
    return datetime.strptime(day, "%Y%m%d").replace(
        hour=hour, minute=minute, tzinfo=ZoneInfo(timezone)
    )


#: what a BANKEVT op tells the bureau (ICD §5.8)
_EVENTS = {
    "01": "temporary loss",
    "02": "formal loss",
    "03": "unblocked",
    "04": "cancelled",
    "11": "enabled",
    "21": "account activated",
    "22": "PIN locked",
    "23": "PIN unlocked",
}
#: CHANNELRSP and STATUSRSP results that carry no reason code
_RESULTS = {"00": ("办理成功", "done"), "02": ("已是该状态", "already so, nothing done")}
#: the sandbox's credits in fen: the card kept, the card moved, two more activated accounts
_CREDITS = (30_000, 123_456, 88_800, 5_050)
#: a card number no bureau sends (make_card_no never gives it): STATUS answers E119
_UNKNOWN_CARD = "ZZZZZZZZZ"
#: the partner bank's own counter, where it takes a loss it reports in its BANKEVT
_PARTNER_CHANNEL = "C21"


@dataclass
class _Replaced:
    """A replacement of the story: the old and the new card, their accounts and the
    balances (fen) before the new card was enabled and after the end of day."""

    old_card: str
    new_card: str
    keep: bool
    old_pan: str
    fen: int
    new_pan: str = ""
    kind: str = ""
    new_fen: int = 0
    old_fen: int = 0
    old_account: str = ""
    old_status: str = ""


class _ServicingDay:
    """The servicing day after the issuance day, and the day after it (module docs).

    Each step is told as it happens; what the counterparties got back is checked against
    what they expected (:attr:`expectations`) and shown by :meth:`summary`."""

    def __init__(
        self,
        *,
        parties: Counterparties,
        remotes: dict[str, SftpRemote],
        run: Callable[[str, datetime], bool],
        step: Callable[[str], None],
        say: Callable[..., None],
        demo_dir: Path,
        batch: ApplyBatch,
    ) -> None:
        from persistence.db import engine_for

        self.parties = parties
        self.remotes = remotes
        self._run = run
        self.step = step
        self.say = say
        self.demo_dir = demo_dir
        self.batch = batch
        self.engine = engine_for(database_url())
        self.bureau = parties.bureaus[0]
        self.channel = parties.channels[0]
        self.partner = parties.partner_banks[0]
        self.bureau_inbox = demo_dir / "bureau-inbox"
        self.channel_inbox = demo_dir / "channel-inbox"
        for inbox in (self.bureau_inbox, self.channel_inbox):
            inbox.mkdir(parents=True, exist_ok=True)
        #: (what, met) for every check of the day
        self.expectations: list[tuple[str, bool]] = []
        #: (business date, CHANNEL file, its CHANNELRSP lines) per file the channel sent
        self.channel_files: list[tuple[str, ChannelFile, list[tuple[str, str, str]]]] = []
        #: (STATUSRSP name, its lines, the STATUS ops by req_no)
        self.statusrsp: list[tuple[str, list[tuple[str, str, str]], dict[str, tuple[str, str]]]]
        self.statusrsp = []
        #: (business date, BANKEVT name, its events) per BANKEVT the bureau collected
        self.bankevt: list[tuple[str, str, list[dict[str, str]]]] = []
        self.credited: list[tuple[str, int]] = []
        self.replaced: list[_Replaced] = []
        self.ledger_ok: bool | None = None
        self.audit: audit.Verified | None = None
        self.shown_card = "CARD_NO"
        #: the two cards to be lost and replaced: one keeps its account, one moves it
        self.keep_old = self.move_old = ""
        self.days: tuple[str, str] = ("", "")

    # ------------------------------------------------------------------ the story

    def day(self, day: str) -> bool:
        """The servicing day ``day``: channel requests, credits, status from the bureau and
        the partner bank, the end of day. False when a DAG run failed."""
        tz = self.parties.timezone
        at, end_of_day = _at(day, 10, 0, tz), _at(day, 21, 30, tz)
        self.days = (day, _day_after(day))
        self.say()
        self.say(f"The servicing day {day} (the day's work at 10:00, the end of day at 21:30 {tz})")
        self.say()
        accepted = [
            row[_CARD_COLUMN]
            for row, expected in zip(self.batch.rows, self.batch.expected, strict=True)
            if expected is None
        ]
        made = _cards(self.engine, accepted)
        hub_cards = sorted(c for c, r in made.items() if r.bank_code == self.parties.hub)
        partner_cards = sorted(c for c, r in made.items() if r.bank_code == self.partner.code)
        if len(hub_cards) < 3 or not partner_cards:
            self.step("servicing")
            self.say("too few cards were made for a servicing day (run with a larger --size)")
            self.expectations.append(("cards made for the servicing day", False))
            return True
        self.keep_old, self.move_old = hub_cards[:2]
        others = hub_cards[2:]
        partner_card = partner_cards[0]
        self.shown_card = self.move_old

        # (1) the bank channel's requests
        key = _zone_key(self.channel.code)
        seq = _next_seq(day, self.channel.code, "CHANNEL")
        mixed = make_channel_file(
            [_channel_card(made[c]) for c in others],
            channel=self.channel.code,
            hub=self.parties.hub,
            business_date=day,
            seq=seq,
            now=at,
            key_id=SANDBOX_ZONE_KEY_ID,
            key=key,
            size=len(others) * 3 // 2,
            seed=f"demo-{day}-{seq}",
        )
        enable = make_channel_file(
            [_channel_card(made[c]) for c in (self.keep_old, self.move_old)],
            channel=self.channel.code,
            hub=self.parties.hub,
            business_date=day,
            seq=seq + 1,
            now=at,
            key_id=SANDBOX_ZONE_KEY_ID,
            key=key,
            mix={"E1": 1.0},
            seed=f"demo-{day}-{seq + 1}",
        )
        planted = sum(1 for r in mixed.requests if r.kind in FAULT_KINDS)
        self.step(f"channel {self.channel.code}")
        for file in (mixed, enable):
            self._publish(self.channel, file.name, file.data, len(file.requests))
        self.say(
            f"uploaded {mixed.name} ({len(mixed.requests)} requests, {planted} of them faulty) "
            f"and {enable.name} (E1 with a PIN on the 2 cards to be lost)"
        )
        if not self.run("channel_requests", at):
            return False
        self._channel_collects(day, [mixed, enable])

        # (2) money arrives on a few activated accounts
        self._credit(day, at, [self.keep_old, self.move_old], others)

        # (3) the bureau's card status, a partner bank's side of it
        seq = _next_seq(day, self.bureau.code, "STATUS")
        batch_no = f"S{day}{seq:03d}"
        holder = made[partner_card]
        ops = [
            (f"{batch_no}01", "02", self.keep_old, made[self.keep_old]),
            (f"{batch_no}02", "02", self.move_old, made[self.move_old]),
            (f"{batch_no}03", "11", partner_card, holder),
            (f"{batch_no}04", "01", _UNKNOWN_CARD, holder),
        ]
        name, data, _ = make_status_file(
            [(req_no, op, card_no, c.id_no, c.name) for req_no, op, card_no, c in ops],
            bureau=self.bureau.code,
            hub=self.parties.hub,
            business_date=day,
            seq=seq,
            now=at,
            encoding=self.bureau.encoding,
        )
        status_expected = [
            (ops[0][0], "00", ""),
            (ops[1][0], "00", ""),
            (ops[2][0], "00", ""),
            (ops[3][0], "01", "E119"),
        ]
        self.step(f"bureau {self.bureau.code}")
        self._publish(self.bureau, name, data, len(ops))
        self.say(
            f"uploaded {name}: formal loss (02) of the 2 cards, enable (11) of card "
            f"{partner_card} of {self.partner.code}, a loss (01) of an unknown card"
        )
        if not self.run("status_sync", at):
            return False
        partner = PartnerServicing(
            self.partner.code,
            self.parties.hub,
            drop=self._local(self.partner, self.partner.drop),
            pickup=self._local(self.partner, self.partner.pickup),
            state_dir=self.demo_dir / "partners",
            seed=f"demo-{day}",
        )
        answered = partner.run(day)
        evt_seq = _next_seq(day, self.partner.code, "BANKEVT")
        evt_name = partner.publish_partner_bankevt(
            [
                (
                    f"PE{day}{evt_seq:03d}01",
                    "01",
                    partner_card,
                    holder.id_no,
                    at.strftime("%Y%m%d%H%M%S"),
                    _PARTNER_CHANNEL,
                )
            ],
            day,
            evt_seq,
        )
        self.step(f"partner bank {self.partner.code}")
        self.say(
            f"answered {', '.join(answered) or 'nothing'}; sent {evt_name} (a temporary loss "
            f"of card {partner_card} at its counter {_PARTNER_CHANNEL})"
        )
        if not self.run("status_sync", at):
            return False

        # (4) the end of the day
        if not self.run("card_maintenance", end_of_day):
            return False
        taken = self._bureau_collects(day)
        for name in (n for n in taken if n.startswith("STATUSRSP_")):
            answers = read_statusrsp((self.bureau_inbox / name).read_bytes(), self.bureau.encoding)
            self.statusrsp.append((name, answers, {r: (o, c) for r, o, c, _ in ops}))
            self.expect(f"{name} as the bureau expects", answers == status_expected)
        self.expect(
            f"a STATUSRSP for the bureau's STATUS of {day}",
            any(n.startswith("STATUSRSP_") for n in taken),
        )
        events = {
            (e["op"], e["card_no"], e["channel"]) for _, _, evs in self._events(day) for e in evs
        }
        self.expect(
            f"the BANKEVT of {day}: the 2 cards enabled and activated at {self.channel.code}",
            {
                (op, card, self.channel.code)
                for op in ("11", "21")
                for card in (self.keep_old, self.move_old)
            }
            <= events,
        )
        self.expect(
            f"the BANKEVT of {day}: {self.partner.code}'s loss relayed",
            ("01", partner_card, _PARTNER_CHANNEL) in events,
        )
        status = _cards(self.engine, [partner_card])[partner_card].status
        self.expect(f"card {partner_card} enabled, then lost at {self.partner.code}", status == "4")
        return True

    def replacements(self, day: str) -> bool:
        """The day after: the two lost cards replaced, one keeping its account and number,
        one moving the balance to a new account. False when a DAG run failed."""
        if not self.keep_old:
            return True
        tz = self.parties.timezone
        at, end_of_day = _at(day, 10, 0, tz), _at(day, 21, 30, tz)
        self.say()
        self.say(f"The day after, {day}: the 2 lost cards replaced")
        self.say()
        old = _cards(self.engine, [self.keep_old, self.move_old])
        with self.engine.connect() as conn:
            before = {pan: ledger.balance(conn, pan) for pan in (c.pan for c in old.values())}
        keep_new, move_new = _new_card_nos(self.engine, 2, f"demo-{day}")
        self.replaced = [
            _Replaced(
                self.keep_old,
                keep_new,
                True,
                old[self.keep_old].pan,
                before[old[self.keep_old].pan],
            ),
            _Replaced(
                self.move_old,
                move_new,
                False,
                old[self.move_old].pan,
                before[old[self.move_old].pan],
            ),
        ]
        self.shown_card = move_new
        rows = {
            row[_CARD_COLUMN]: row
            for row, expected in zip(self.batch.rows, self.batch.expected, strict=True)
            if expected is None
        }
        seq = _next_seq(day, self.bureau.code)
        repl = make_replacement_batch(
            [
                (rows[self.keep_old], keep_new, "05", "1"),
                (rows[self.move_old], move_new, "05", "0"),
            ],
            bureau=self.bureau.code,
            hub=self.parties.hub,
            business_date=day,
            seq=seq,
        )
        self.step(f"bureau {self.bureau.code}")
        self._publish(self.bureau, repl.name, repl.data, len(repl.rows))
        self.say(
            f"uploaded {repl.name}: replacements (05) of {self.keep_old} keeping its account, "
            f"of {self.move_old} with a new one"
        )
        if not (
            self.run("apply_intake", at)
            and self.run("account_opening", at)
            and self.run("factory_dispatch", at)
        ):
            return False
        for factory in self.parties.factories:
            self.step(f"card factory {factory.code}")
            sent = CardFactorySimulator(
                self.remotes[factory.code],
                code=factory.code,
                hub=self.parties.hub,
                fail_share=0.0,
                seed=f"demo-{day}",
            ).run(day)
            self.say(f"returned {', '.join(sent) or 'nothing'}")
        if not (self.run("factory_returns", at) and self.run("bureau_card_returns", at)):
            return False
        made = _cards(self.engine, [keep_new, move_new])
        if len(made) < 2:
            self.expect("both replacement cards made", False)
            return True
        key = _zone_key(self.channel.code)
        seq = _next_seq(day, self.channel.code, "CHANNEL")
        enable = make_channel_file(
            [_channel_card(made[move_new])],
            channel=self.channel.code,
            hub=self.parties.hub,
            business_date=day,
            seq=seq,
            now=at,
            key_id=SANDBOX_ZONE_KEY_ID,
            key=key,
            mix={"E1_nopin": 1.0},
            seed=f"demo-{day}-{seq}",
        )
        self.step(f"channel {self.channel.code}")
        self._publish(self.channel, enable.name, enable.data, len(enable.requests))
        self.say(f"uploaded {enable.name} (E1 without a PIN: card {move_new} collected)")
        if not self.run("channel_requests", at):
            return False
        seq = _next_seq(day, self.bureau.code, "STATUS")
        new = made[keep_new]
        name, data, _ = make_status_file(
            [(f"S{day}{seq:03d}01", "11", keep_new, new.id_no, new.name)],
            bureau=self.bureau.code,
            hub=self.parties.hub,
            business_date=day,
            seq=seq,
            now=at,
            encoding=self.bureau.encoding,
        )
        self.step(f"bureau {self.bureau.code}")
        self._publish(self.bureau, name, data, 1)
        self.say(f"uploaded {name} (enable (11) of card {keep_new}, collected at the bureau)")
        if not (self.run("status_sync", at) and self.run("card_maintenance", end_of_day)):
            return False
        self._channel_collects(day, [enable])
        taken = self._bureau_collects(day)
        for name in (n for n in taken if n.startswith("STATUSRSP_")):
            answers = read_statusrsp((self.bureau_inbox / name).read_bytes(), self.bureau.encoding)
            self.statusrsp.append((name, answers, {f"S{day}{seq:03d}01": ("11", keep_new)}))
            self.expect(
                f"{name} as the bureau expects", answers == [(f"S{day}{seq:03d}01", "00", "")]
            )
        auto = {
            (e["op"], e["card_no"])
            for _, _, evs in self._events(day)
            for e in evs
            if e["channel"] == "AUTO"
        }
        self.expect(
            f"the BANKEVT of {day}: the 2 old cards cancelled (04 AUTO)",
            auto == {("04", self.keep_old), ("04", self.move_old)},
        )
        self._check_replacements()
        with self.engine.connect() as conn:
            self.ledger_ok = ledger.check(conn).ok()
            self.audit = audit.verify(conn)
        self.expect("ledger check", bool(self.ledger_ok))
        self.expect("audit verify", self.audit.ok())
        return True

    def _check_replacements(self) -> None:
        from sqlalchemy import select

        from persistence.models import Account, Replacement

        cards = _cards(self.engine, [c for r in self.replaced for c in (r.old_card, r.new_card)])
        with self.engine.connect() as conn:
            kinds = dict(
                conn.execute(
                    select(Replacement.new_card_no, Replacement.kind).where(
                        Replacement.new_card_no.in_([r.new_card for r in self.replaced])
                    )
                ).all()
            )
            for r in self.replaced:
                r.new_pan = cards[r.new_card].pan or ""
                r.kind = kinds.get(r.new_card, "not finished")
                r.new_fen = ledger.balance(conn, r.new_pan)
                r.old_fen = ledger.balance(conn, r.old_pan)
                r.old_account = (
                    conn.scalar(select(Account.status).where(Account.pan == r.old_pan)) or ""
                )
                r.old_status = cards[r.old_card].status
        for r in self.replaced:
            if r.keep:
                ok = (
                    r.kind == "kept"
                    and r.new_pan == r.old_pan
                    and cards[r.new_card].pan_seq == "02"
                    and r.new_fen == r.fen
                    and r.old_account == "active"
                )
            else:
                ok = (
                    r.kind == "moved"
                    and r.new_pan != r.old_pan
                    and r.new_fen == r.fen
                    and r.old_fen == 0
                    and r.old_account == "closed"
                )
            self.expect(
                f"{r.old_card} → {r.new_card}: {'number kept' if r.keep else 'balance moved'}, "
                "old card cancelled",
                ok and r.old_status == "9",
            )

    # ------------------------------------------------------------------ helpers

    def run(self, dag_id: str, when: datetime) -> bool:
        return self._run(dag_id, when)

    def expect(self, what: str, met: bool) -> bool:
        self.expectations.append((what, met))
        return met

    def all_met(self) -> bool:
        return all(met for _, met in self.expectations)

    def _local(self, party: Counterparty, sub: str) -> Path:
        """A directory of ``party`` on the embedded SFTP server, as a local path."""
        return self.demo_dir / "sftp" / party.code / sub

    def _publish(self, party: Counterparty, name: str, data: bytes, count: int) -> None:
        self.remotes[party.code].publish(party.pickup, name, data, count)

    def _channel_collects(self, day: str, files: list[ChannelFile]) -> None:
        self.step(f"channel {self.channel.code}")
        taken = collect(self.remotes[self.channel.code], self.channel.drop, self.channel_inbox)
        self.say(f"collected {', '.join(taken) or 'nothing'}")
        for file in files:
            response = str(FileName.parse(file.name).response())
            path = self.channel_inbox / response
            answers = read_channelrsp(path.read_bytes()) if response in taken else []
            self.channel_files.append((day, file, answers))
            self.expect(f"{response} as the channel expects", answers == file.expected())

    def _bureau_collects(self, day: str) -> list[str]:
        self.step(f"bureau {self.bureau.code}")
        taken = collect(self.remotes[self.bureau.code], self.bureau.drop, self.bureau_inbox)
        self.say(f"collected {', '.join(taken) or 'nothing'}")
        for name in (n for n in taken if n.startswith("BANKEVT_")):
            events = read_bankevt(
                (self.bureau_inbox / name).read_bytes(),
                self.bureau.encoding,
                business_date=day,
                sender=self.parties.hub,
                receiver=self.bureau.code,
            )
            self.bankevt.append((day, name, events))
        self.expect(
            f"a BANKEVT for {day}",
            any(n.startswith("BANKEVT_") and f"_{day}_" in n for n in taken),
        )
        return taken

    def _events(self, day: str) -> list[tuple[str, str, list[dict[str, str]]]]:
        return [e for e in self.bankevt if e[0] == day]

    def _credit(self, day: str, at: datetime, replaced: list[str], others: list[str]) -> None:
        """Credits for the story: the 2 cards to be replaced and 2 more activated accounts."""
        from sqlalchemy import select

        from persistence.models import Account, Card

        with self.engine.begin() as conn:
            more = conn.execute(
                select(Card.card_no, Account.pan)
                .join(Card, Card.pan == Account.pan)
                .where(
                    Card.card_no.in_(others),
                    Account.status == "active",
                    Account.credit_blocked.is_(False),
                )
                .order_by(Card.card_no)
                .limit(len(_CREDITS) - 2)
            ).all()
            mine = conn.execute(
                select(Card.card_no, Card.pan)
                .where(Card.card_no.in_(replaced))
                .order_by(Card.card_no)
            ).all()
            for (card_no, pan), fen in zip([*mine, *more], _CREDITS, strict=False):
                assert pan is not None
                ledger.post(
                    conn,
                    f"credit:demo-{day}-{card_no}",
                    "credit",
                    day,
                    [ledger.Leg(ledger.settlement(), -fen), ledger.Leg(pan, fen)],
                    at,
                )
                self.credited.append((pan, fen))
        total = sum(fen for _, fen in self.credited)
        self.step("credits (sandbox)")
        self.say(
            f"{len(self.credited)} activated accounts credited, {ledger.yuan(total)} yuan in all "
            "(Dr SETTLEMENT, Cr the account)"
        )

    # ------------------------------------------------------------------ the summary

    def summary(self) -> list[str]:
        """What the channel, the bureau and the books show after the two days."""
        day, after = self.days
        lines: list[str] = []
        if not day:
            return lines
        for when in (day, after):
            files = [(f, a) for d, f, a in self.channel_files if d == when]
            if files:
                lines += ["", *_channelrsp_lines(when, files)]
        for name, answers, ops in self.statusrsp:
            lines += ["", *_statusrsp_lines(name, answers, ops)]
        for _, name, events in self.bankevt:
            lines += ["", *_bankevt_lines(name, events)]
        if self.replaced:
            lines += ["", f"Replacements of {after} (balances in yuan)"]
            lines += _table(
                [
                    (
                        r.old_card,
                        r.new_card,
                        "kept number"
                        if r.kind == "kept"
                        else "moved balance"
                        if r.kind == "moved"
                        else r.kind,
                        ledger.masked_pan(r.old_pan),
                        ledger.yuan(r.fen),
                        ledger.masked_pan(r.new_pan) if r.new_pan else "",
                        ledger.yuan(r.new_fen),
                        "the same"
                        if r.new_pan == r.old_pan
                        else f"{r.old_account}, {ledger.yuan(r.old_fen)}",
                    )
                    for r in self.replaced
                ],
                header=(
                    "old card",
                    "new card",
                    "kind",
                    "account before",
                    "before",
                    "account after",
                    "after",
                    "old account now",
                ),
                right={4, 6},
            )
        lines += ["", "Checks of the books"]
        checks = []
        if self.ledger_ok is not None:
            checks.append(("ledger check", "ok" if self.ledger_ok else "NOT ok"))
        if self.audit is not None:
            checks.append(
                (
                    "audit verify",
                    f"ok, {self.audit.records} records chained"
                    if self.audit.ok()
                    else f"broken at record {self.audit.first_bad}: {self.audit.why}",
                )
            )
        lines += _table(checks)
        unmet = [what for what, met in self.expectations if not met]
        lines += [
            "",
            f"Expectations of the servicing days: {len(self.expectations) - len(unmet)} of {len(self.expectations)} met",
        ]
        lines += [f"  NOT met: {what}" for what in unmet]
        return lines


def _channelrsp_lines(
    day: str, files: list[tuple[ChannelFile, list[tuple[str, str, str]]]]
) -> list[str]:
    """The day's CHANNELRSP by result and reason code, and whether the channel's
    expectations match every line."""
    answers = [a for _, found in files for a in found]
    tally = Counter((result, code) for _, result, code in answers)
    rows = [
        (result, code, n, *(_RESULTS.get(result) or (message(code, "zh"), message(code, "en"))))
        for (result, code), n in sorted(tally.items(), key=lambda item: _result_order(*item[0]))
    ]
    agree = all(found == file.expected() for file, found in files)
    planted = sum(1 for file, _ in files for r in file.requests if r.kind in FAULT_KINDS)
    names = ", ".join(str(FileName.parse(f.name).response()) for f, _ in files)
    return [
        f"CHANNELRSP of {day}: {len(answers)} lines in {names}",
        *_table(rows, header=("result", "code", "lines", "原因", "reason"), right={2}),
        f"  the channel's expectations {'match' if agree else 'DO NOT match'} every line "
        f"({planted} faulty requests planted)",
    ]


def _result_order(result: str, code: str) -> tuple[int, str]:
    """Done first, then already so, then the refusals by reason code."""
    return ({"00": 0, "02": 1}.get(result, 2), code)


def _statusrsp_lines(
    name: str, answers: list[tuple[str, str, str]], ops: dict[str, tuple[str, str]]
) -> list[str]:
    rows = [
        (
            req_no,
            *ops.get(req_no, ("", "")),
            result,
            code,
            message(code, "en") if code else _RESULTS.get(result, ("", ""))[1],
        )
        for req_no, result, code in answers
    ]
    return [
        f"{name}: {len(answers)} lines",
        *_table(rows, header=("req_no", "op", "card_no", "result", "code", "reason")),
    ]


def _bankevt_lines(name: str, events: list[dict[str, str]]) -> list[str]:
    """A BANKEVT's events by op and channel, with their cards (the first few of a group)."""
    groups: dict[tuple[str, str], list[str]] = {}
    for e in events:
        cards = groups.setdefault((e["op"], e["channel"]), [])
        if e["card_no"] not in cards:
            cards.append(e["card_no"])
    count = Counter((e["op"], e["channel"]) for e in events)
    rows = [
        (
            op,
            _EVENTS.get(op, ""),
            channel,
            count[op, channel],
            " ".join(cards[:3]) + (f" and {len(cards) - 3} more" if len(cards) > 3 else ""),
        )
        for (op, channel), cards in sorted(groups.items())
    ]
    return [
        f"{name}: {len(events)} events",
        *_table(rows, header=("op", "event", "channel", "events", "card_no"), right={3}),
    ]


def _cards(engine: Any, card_nos: Collection[str]) -> dict[str, Any]:
    """The made cards among ``card_nos`` with their holder's birth date, by card_no."""
    from sqlalchemy import select

    from persistence.models import Application, Card

    with engine.connect() as conn:
        rows = conn.execute(
            select(
                Card.card_no,
                Card.pan,
                Card.pan_seq,
                Card.id_no,
                Card.name,
                Card.status,
                Card.bank_code,
                Application.birth_date,
            )
            .join(Application, Application.id == Card.application_id)
            .where(Card.card_no.in_(list(card_nos)))
        )
        return {r.card_no: r for r in rows}


def _channel_card(card: Any) -> ChannelCard:
    return ChannelCard(card.card_no, card.pan, card.id_no, card.name, card.birth_date)


def _zone_key(channel: str) -> bytes:
    """The channel's zone key, as the hub's key store holds it (the sandbox's file, or the
    environment's when one is set there)."""
    key = key_store().zone_key(channel, SANDBOX_ZONE_KEY_ID)
    if key is None:
        raise RuntimeError(f"no zone key {SANDBOX_ZONE_KEY_ID} of channel {channel}")
    return key


def _new_card_nos(engine: Any, count: int, seed: str) -> list[str]:
    """``count`` card numbers no application of the hub has used."""
    from sqlalchemy import select

    from persistence.models import Application

    rng = random.Random(seed)
    found: list[str] = []
    with engine.connect() as conn:
        while len(found) < count:
            card_no = make_card_no(rng)
            used = conn.scalar(
                select(Application.id).where(Application.card_no == card_no).limit(1)
            )
            if used is None and card_no not in found:
                found.append(card_no)
    return found


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
            "channel_requests": self._service_files,
            "status_sync": self._service_files,
            "card_maintenance": self._card_returns,
            "disbursement_intake": self._payments,
            "statement_intake": self._payments,
            "partner_disbursements": self._payments,
            "payments_end_of_day": self._end_of_payments_day,
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
        # the banks' requests are written by mapped tasks in any order: told by bank code
        to = ", ".join(
            f"{self._party[f.conn_id]} ({f.record_count})"
            for f in sorted(sent, key=lambda f: self._party[f.conn_id])
        )
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

    def _service_files(self, took: _Rows, sent: _Rows) -> str:
        """CHANNEL and STATUS files by their lines' answers (forwarded: waiting for a
        partner bank), the partner banks' answers and events taken, what was sent."""
        from sqlalchemy import func, select

        from persistence.models import ServiceLine

        told = []
        with self._engine.connect() as conn:
            for f in took:
                if f.outcome != "accepted":
                    continue
                if f.type not in ("CHANNEL", "STATUS"):
                    told.append(f"took {f.name} ({f.record_count} lines)")
                    continue
                results = Counter(
                    {
                        result: int(n)
                        for result, n in conn.execute(
                            select(ServiceLine.result, func.count())
                            .where(ServiceLine.file_id == f.id)
                            .group_by(ServiceLine.result)
                        )
                    }
                )
                parts = [
                    f"{results[result]} {what}"
                    for result, what in (
                        ("00", "done"),
                        ("02", "already so"),
                        ("01", "refused"),
                        (None, "forwarded to a partner bank"),
                    )
                    if results[result]
                ]
                told.append(f"{f.name}: " + (", ".join(parts) or "no lines"))
        return " → ".join(part for part in ("; ".join(told), self._delivered(sent)) if part)

    def _payments(self, took: _Rows, sent: _Rows) -> str:
        """The DISB, STMT and partner DISBRSP files taken, what was sent."""
        told = [f"took {f.name} ({f.record_count} lines)" for f in took if f.outcome == "accepted"]
        return " → ".join(part for part in ("; ".join(told), self._delivered(sent)) if part)

    def _end_of_payments_day(self, took: _Rows, sent: _Rows) -> str:
        """The day's reconciliation by status, what was sent."""
        from sqlalchemy import func, select

        from persistence.models import ReconBatch

        with self._engine.connect() as conn:
            day = conn.scalar(select(func.max(ReconBatch.business_date)))
            statuses = Counter(
                dict(
                    conn.execute(
                        select(ReconBatch.status, func.count())
                        .where(ReconBatch.business_date == day)
                        .group_by(ReconBatch.status)
                    ).all()
                )
            )
        told = "reconciled: " + ", ".join(
            f"{statuses[s]} {s}" for s in ("BALANCED", "PENDING", "BREAK") if statuses[s]
        )
        return " → ".join(part for part in (told, self._delivered(sent)) if part)

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
                        Took.type,
                        Took.record_count,
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


#: the pension day's work and its end of day (payments_end_of_day runs at 23:00)
_PAYMENTS_AT, _PAYMENTS_EOD = (10, 0), (23, 0)
#: what the first batch of the pension day plants (shares of its lines)
_DISB_MIX = {"name": 0.05, "id_no": 0.05, "unknown_pan": 0.05, "repeat": 0.05, "blocked": 0.05}
#: the lines of the batch funded in full, at most
_FULL_SIZE = 60
#: the unidentified credit on the payment system's statement (fen, memo)
_UNIDENTIFIED = (88_800, "工资")
#: how much the second batch is funded short (fen)
_SHORT_FEN = 100
#: what a DISBRSP line credited tells
_CREDITED = ("入账成功", "credited")


def _weekday_after(day: str) -> str:
    """The next business date after ``day``, Monday to Friday."""
    day = _day_after(day)
    while datetime.strptime(day, "%Y%m%d").weekday() >= 5:
        day = _day_after(day)
    return day


class _PaymentsDay:
    """The pension day after the servicing days, and the business day after it.

    The bureau sends three DISB batches over the hub's and the partner bank's accounts
    (most lines good, some to closed accounts, with wrong names and ID numbers, unknown
    PANs, repeated pay_nos); the payment system funds one in full, one short and one
    twice, with an unidentified credit on its statement; the partner bank answers the
    lines the hub forwards; the end of day answers, reconciles and writes finance's
    reports. The next business day the payment system sends the returns and partner
    settlements finance's instructions ask for, and the end of day runs again."""

    def __init__(
        self,
        *,
        parties: Counterparties,
        remotes: dict[str, SftpRemote],
        run: Callable[[str, datetime], bool],
        step: Callable[[str], None],
        say: Callable[..., None],
        demo_dir: Path,
    ) -> None:
        from persistence.db import engine_for

        self.parties = parties
        self.remotes = remotes
        self._run = run
        self.step = step
        self.say = say
        self.demo_dir = demo_dir
        self.engine = engine_for(database_url())
        self.bureau = parties.bureaus[0]
        self.partner = parties.partner_banks[0]
        self.payment = parties.payment_systems[0]
        self.inbox = demo_dir / "bureau-inbox"
        self.inbox.mkdir(parents=True, exist_ok=True)
        self.expectations: list[tuple[str, bool]] = []
        self.days: tuple[str, str] = ("", "")
        #: (DISB file, how it was funded, its DISBRSP name, its lines, expectations met)
        self.batches: list[tuple[Any, str, str, list[dict[str, str]], bool]] = []
        #: (business date, RECON name, its lines)
        self.recon: list[tuple[str, str, list[dict[str, str]]]] = []
        self.breaks: list[Any] = []
        self.ledger_ok: bool | None = None

    def days_after(self, day: str) -> tuple[str, str]:
        """The pension day (the first business date after ``day``) and the business day
        after it, moved on past dates whose RECON the hub has already written, so a demo
        run again on the same database tells its own days."""
        from sqlalchemy import select

        from persistence.models import OutboundFile

        with self.engine.connect() as conn:
            written = set(
                conn.scalars(select(OutboundFile.name).where(OutboundFile.type == "RECON"))
            )
        days = {name.split("_")[3] for name in written if name.count("_") >= 4}
        first = _weekday_after(day)
        while first in days or _weekday_after(first) in days:
            first = _weekday_after(first)
        return first, _weekday_after(first)

    # ------------------------------------------------------------------ the story

    def pension_day(self, day: str) -> bool:
        """DISB, STMT, the partner's answers, the end of day. False when a DAG run failed."""
        from sandbox.payments import Funding, PartnerPayments, PaymentSystem, make_disb_file

        tz = self.parties.timezone
        at, end_of_day = _at(day, *_PAYMENTS_AT, tz), _at(day, *_PAYMENTS_EOD, tz)
        self.days = (day, _weekday_after(day))
        self.say()
        self.say(
            f"The pension day {day} (the day's work at 10:00, the payments end of day at "
            f"23:00 {tz})"
        )
        self.say()
        payees = self._payees()
        if len([p for p in payees if p.status in ("preopened", "active")]) < 20:
            self.step("payments")
            self.say("too few accounts for a pension day (run with a larger --size)")
            self.expect("accounts for the pension day", False)
            return True
        seq = _next_seq(day, self.bureau.code, "DISB")
        common: dict[str, Any] = {
            "bureau": self.bureau.code,
            "hub": self.parties.hub,
            "business_date": day,
            "encoding": self.bureau.encoding,
        }
        full = make_disb_file(
            payees,
            size=min(len(payees), _FULL_SIZE),
            seq=seq,
            seed=f"demo-{day}",
            mix=_DISB_MIX,
            **common,
        )
        short = make_disb_file(payees[:10], seq=seq + 1, seed=f"demo-{day}", mix={}, **common)
        twice = make_disb_file(payees[10:20], seq=seq + 2, seed=f"demo-{day}", mix={}, **common)
        files = [(full, "in full"), (short, "short"), (twice, "twice")]
        planted = sum(1 for k in full.kinds if k)
        self.step(f"bureau {self.bureau.code}")
        for f, _ in files:
            self.remotes[self.bureau.code].publish(self.bureau.pickup, f.name, f.data, len(f.rows))
        self.say(
            f"uploaded {full.name} ({len(full.rows)} pensions, {planted} of them wrong), "
            f"{short.name} ({len(short.rows)}) and {twice.name} ({len(twice.rows)})"
        )
        if not self.run("disbursement_intake", at):
            return False
        self.pay = PaymentSystem(
            self.payment.code,
            self.parties.hub,
            pickup=self._local(self.payment, self.payment.pickup),
            state_dir=self.demo_dir / "payments",
        )
        name = self.pay.statement(
            day,
            fund=[
                Funding(full.batch_no, full.total_fen),
                Funding(short.batch_no, short.total_fen, short_fen=_SHORT_FEN),
                Funding(twice.batch_no, twice.total_fen, twice=True),
            ],
            unidentified_items=[_UNIDENTIFIED],
        )
        self.step(f"payment system {self.payment.code}")
        self.say(
            f"sent {name}: {full.batch_no} funded in full, {short.batch_no} "
            f"{ledger.yuan(_SHORT_FEN)} yuan short, {twice.batch_no} twice, and a credit of "
            f"{ledger.yuan(_UNIDENTIFIED[0])} yuan ({_UNIDENTIFIED[1]}) for no batch"
        )
        if not (self.run("statement_intake", at) and self.run("partner_disbursements", at)):
            return False
        partner = PartnerPayments(
            self.partner.code,
            self.parties.hub,
            drop=self._local(self.partner, self.partner.drop),
            pickup=self._local(self.partner, self.partner.pickup),
            state_dir=self.demo_dir / "partners",
            seed=f"demo-{day}",
            fail_share=0.2,
            encoding=self.partner.encoding,
        )
        answered = partner.run(day)
        self.step(f"partner bank {self.partner.code}")
        self.say(f"answered {', '.join(answered) or 'nothing'}")
        if not (
            self.run("partner_disbursements", at) and self.run("payments_end_of_day", end_of_day)
        ):
            return False
        taken = self._collect()
        for f, how in files:
            response = str(FileName.parse(f.name).response())
            lines = self._read_disbrsp(response) if response in taken else []
            met = self._as_expected(f, how, lines, partner.answers)
            self.batches.append((f, how, response, lines, met))
            self.expect(f"{response} as the bureau expects", met)
        self._recon(day, taken)
        return True

    def day_after(self, day: str) -> bool:
        """The returns and settlements finance asks for, the end of day again."""
        from reconciliation.statements import return_instructions

        if not self.batches:
            return True
        first, tz = self.days[0], self.parties.timezone
        at, end_of_day = _at(day, *_PAYMENTS_AT, tz), _at(day, *_PAYMENTS_EOD, tz)
        self.say()
        self.say(f"The day after, {day}: the returns and partner settlements finance instructed")
        self.say()
        with self.engine.connect() as conn:
            owed = return_instructions(conn, first)
        returns = [(i.batch_no, i.amount_fen) for i in owed if i.kind == "RET"]
        settle = [(i.bank, i.batch_no, i.amount_fen) for i in owed if i.kind == "PTN"]
        name = self.pay.statement(day, returns=returns, settle=settle)
        self.step(f"payment system {self.payment.code}")
        self.say(
            f"sent {name}: {len(returns)} returns (RET) of "
            f"{ledger.yuan(sum(a for _, a in returns))} yuan, {len(settle)} partner settlements "
            f"(PTN) of {ledger.yuan(sum(a for *_, a in settle))} yuan"
        )
        if not (self.run("statement_intake", at) and self.run("payments_end_of_day", end_of_day)):
            return False
        self._recon(day, self._collect())
        self._check_recon()
        self._open_breaks()
        with self.engine.connect() as conn:
            self.ledger_ok = ledger.check(conn).ok()
        self.expect("ledger check after the payments days", bool(self.ledger_ok))
        return True

    # ------------------------------------------------------------------ helpers

    def run(self, dag_id: str, when: datetime) -> bool:
        return self._run(dag_id, when)

    def expect(self, what: str, met: bool) -> bool:
        self.expectations.append((what, met))
        return met

    def all_met(self) -> bool:
        return all(met for _, met in self.expectations)

    def _local(self, party: Counterparty, sub: str) -> Path:
        return self.demo_dir / "sftp" / party.code / sub

    def _payees(self) -> list[Any]:
        """The hub's and the partner bank's accounts, one per PAN (the card in use when a
        PAN has two), as the bureau's DISB may pay them; not the replacement cards'
        accounts, whose balances the replacements' table tells."""
        from sqlalchemy import text

        from sandbox.payments import PayeeAccount

        sql = (
            "SELECT c.pan, c.card_no, c.id_no, c.name, c.bank_code, c.status AS card_status, "
            "COALESCE(a.status, 'active') AS status, COALESCE(a.credit_blocked, false) AS blocked "
            "FROM card c LEFT JOIN account a ON a.pan = c.pan "
            "WHERE c.pan IS NOT NULL AND c.bank_code IN (:hub, :partner) "
            "AND c.pan NOT IN (SELECT n.pan FROM replacement r JOIN card n "
            "ON n.card_no = r.new_card_no WHERE n.pan IS NOT NULL) ORDER BY c.card_no"
        )
        by_pan: dict[str, Any] = {}
        with self.engine.connect() as conn:
            for r in conn.execute(
                text(sql), {"hub": self.parties.hub, "partner": self.partner.code}
            ):
                if r.pan not in by_pan or by_pan[r.pan].card_status == "9":
                    by_pan[r.pan] = r
        return [
            PayeeAccount(
                r.pan,
                r.card_no,
                r.id_no,
                r.name,
                r.bank_code,
                "credit_blocked" if r.blocked else r.status,
            )
            for r in sorted(by_pan.values(), key=lambda r: r.card_no)
        ]

    def _collect(self) -> list[str]:
        self.step(f"bureau {self.bureau.code}")
        taken = collect(self.remotes[self.bureau.code], self.bureau.drop, self.inbox)
        self.say(f"collected {', '.join(taken) or 'nothing'}")
        return taken

    def _read_disbrsp(self, name: str) -> list[dict[str, str]]:
        from sandbox.payments import read_disbrsp

        return read_disbrsp((self.inbox / name).read_bytes(), self.bureau.encoding)

    def _as_expected(
        self, f: Any, how: str, lines: list[dict[str, str]], answers: dict[str, Any]
    ) -> bool:
        """Every line answered, in order, as the bureau expects: the short batch ``301``
        throughout, a partner's line as the partner answered it."""
        from sqlalchemy import text

        if [ln["pay_no"] for ln in lines] != list(f.pay_nos):
            return False
        if how == "short":
            return all(ln["result"] == "301" for ln in lines)
        with self.engine.connect() as conn:
            keys: dict[str, str] = dict(
                conn.execute(
                    text(
                        "SELECT l.pay_no, l.partner_key FROM disb_line l JOIN disb_batch b "
                        "ON b.id = l.batch_id WHERE b.batch_no = :b AND l.partner IS NOT NULL"
                    ),
                    {"b": f.batch_no},
                ).all()
            )
        for line, expected in zip(lines, f.expected, strict=True):
            if expected == "partner":
                answer = answers.get(str(keys.get(line["pay_no"], "")))
                if answer is None or line["result"] != answer[0]:
                    return False
            elif line["result"] != expected:
                return False
        return True

    def _recon(self, day: str, taken: list[str]) -> None:
        from sandbox.payments import read_recon

        names = [n for n in taken if n.startswith("RECON_") and f"_{day}_" in n]
        self.expect(f"a RECON for {day}", bool(names))
        for name in names:
            lines = read_recon((self.inbox / name).read_bytes(), business_date=day)
            self.recon.append((day, name, lines))

    def _statuses(self, day: str) -> dict[str, tuple[str, str]]:
        return {
            ln["batch_no"]: (ln["status"], ln["break_reason"])
            for d, _, lines in self.recon
            if d == day
            for ln in lines
        }

    def _check_recon(self) -> None:
        """The statuses the day planted: the full batch PENDING on the pension day (its
        returns and settlements not due yet) and BALANCED the day after; the short batch
        R03 and the doubled one R04 both days."""
        full, short, twice = (b[0].batch_no for b in self.batches)
        for day, want_full in zip(self.days, ("PENDING", "BALANCED"), strict=True):
            got = self._statuses(day)
            self.expect(
                f"RECON of {day}: {full} {want_full}, {short} BREAK R03, {twice} BREAK R04",
                got.get(full, ("", ""))[0] == want_full
                and got.get(short) == ("BREAK", "R03")
                and got.get(twice) == ("BREAK", "R04"),
            )

    def _open_breaks(self) -> None:
        from sqlalchemy import select

        from persistence.models import ReconBreak

        with self.engine.connect() as conn:
            self.breaks = list(
                conn.execute(
                    select(
                        ReconBreak.id,
                        ReconBreak.batch_no,
                        ReconBreak.reason,
                        ReconBreak.amount_fen,
                        ReconBreak.first_date,
                    )
                    .where(ReconBreak.matched_date.is_(None), ReconBreak.resolved_at.is_(None))
                    .order_by(ReconBreak.first_date, ReconBreak.id)
                )
            )
        reasons = {b.reason for b in self.breaks if b.first_date == self.days[0]}
        self.expect(
            f"open breaks R03, R04, R06 and R09 of {self.days[0]}",
            {"R03", "R04", "R06", "R09"} <= reasons,
        )

    # ------------------------------------------------------------------ the summary

    def summary(self) -> list[str]:
        lines: list[str] = []
        for f, how, name, answers, met in self.batches:
            lines += ["", *_disbrsp_lines(f, how, name, answers, met)]
        for _, name, recon in self.recon:
            lines += ["", *_recon_lines(name, recon)]
        if self.days[0]:
            lines += ["", f"Open breaks after {self.days[1]} (uv run sscard breaks list)"]
            lines += _table(
                [
                    (
                        b.id,
                        b.batch_no or "-",
                        b.reason,
                        message(b.reason, "zh"),
                        message(b.reason, "en"),
                        ledger.yuan(int(b.amount_fen)),
                        b.first_date,
                    )
                    for b in self.breaks
                ],
                header=("id", "batch_no", "reason", "含义", "meaning", "amount", "first seen"),
                right={0, 5},
            ) or ["  none"]
            if self.ledger_ok is not None:
                lines += ["", "Checks of the books after the payments days"]
                lines += _table([("ledger check", "ok" if self.ledger_ok else "NOT ok")])
            unmet = [what for what, met in self.expectations if not met]
            lines += [
                "",
                f"Expectations of the payments days: {len(self.expectations) - len(unmet)} of "
                f"{len(self.expectations)} met",
            ]
            lines += [f"  NOT met: {what}" for what in unmet]
        return lines

    def where(self) -> list[tuple[str, str]]:
        """Finance's reports of the last payments day, and the commands about breaks."""
        day = self.days[1]
        if not day:
            return []
        base = f"{storage_url()}/reports/{day}"
        return [
            ("finance's report of the day (HTML, charts)", f"{base}/recon_{day}.html"),
            ("  the same as a workbook", f"{base}/recon_{day}.xlsx"),
            ("  every item of the day (Parquet)", f"{base}/parquet/"),
            ("  returns and settlements to send", f"{base}/instructions_{day}.csv"),
            ("the open breaks", "uv run sscard breaks list"),
            ("close a break by hand", 'uv run sscard breaks resolve ID --reason "…"'),
            ("breaks asked about in the Airflow UI", "the DAG break_review"),
        ]


def _disbrsp_lines(
    f: Any, how: str, name: str, answers: list[dict[str, str]], met: bool
) -> list[str]:
    """A DISBRSP by result code, with each code's message in Chinese and English, and
    whether the bureau's expectations match every line."""
    tally = Counter(line["result"] for line in answers)
    rows = [
        (code, n, *(_CREDITED if code == "0000" else (message(code, "zh"), message(code, "en"))))
        for code, n in sorted(tally.items())
    ]
    credited = sum(amount_to_fen(line["credited_amount"]) for line in answers)
    planted = sum(1 for k in f.kinds if k)
    partner = sum(1 for e in f.expected if e == "partner")
    return [
        f"DISBRSP {name} (batch {f.batch_no} funded {how}): {len(answers)} lines, "
        f"{tally.get('0000', 0)} credited ({ledger.yuan(credited)} yuan), "
        f"{len(answers) - tally.get('0000', 0)} failed",
        *_table(rows, header=("result", "lines", "原因", "reason"), right={1}),
        f"  the bureau's expectations {'match' if met else 'DO NOT match'} every line "
        + (
            "(every line 301 at the cut-off)"
            if how == "short"
            else f"({planted} bad lines planted, {partner} lines answered by the partner bank)"
        ),
    ]


def _recon_lines(name: str, lines: list[dict[str, str]]) -> list[str]:
    """A RECON, one row per batch, amounts in yuan."""
    rows = [
        (
            ln["batch_no"],
            ln["benefit_type"],
            ln["instructed_amount"],
            ln["credited_amount"],
            ln["failed_amount"],
            ln["funded_amount"],
            ln["returned_amount"],
            ln["partner_amount"],
            ln["partner_settled_amount"],
            ln["difference"],
            ln["status"],
            f"{ln['break_reason']} {message(ln['break_reason'], 'en')}"
            if ln["break_reason"]
            else "",
        )
        for ln in lines
    ]
    return [
        f"RECON {name}: {len(lines)} batches (amounts in yuan)",
        *_table(
            rows,
            header=(
                "batch",
                "type",
                "instructed",
                "credited",
                "failed",
                "funded",
                "returned",
                "partner",
                "settled",
                "difference",
                "status",
                "break reason",
            ),
            right=set(range(2, 10)),
        ),
    ]
