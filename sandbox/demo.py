"""The sandbox's business day, end to end, on the embedded default (``make demo``).

An embedded SFTP server stands in for the servers of the bureau, the partner banks and
the card factory. The simulated bureau uploads an APPLY batch with its photo zip (about
8 % bad lines of every kind); the hub's DAGs run with ``dag.test()`` one after the
other — intake, account opening, partner answers, personalisation, production returns,
card returns — with the simulated partner banks and factory answering in between; the
bureau collects its APPLYRSP and CARDRSP, and the demo prints what happened and where
to look.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from sandbox.bureau import BureauSimulator, read_applyrsp
from sandbox.factory import CardFactorySimulator
from sandbox.partner_bank import PartnerBankSimulator
from sandbox.sftp_server import EmbeddedSftpServer
from schemas.codes import message
from sscard.config import ROOT, database_url, load_counterparties, storage_url, var_dir
from transport.remote import files
from transport.sftp import SftpRemote, SftpSettings


def _quiet_airflow() -> None:
    for name in ("airflow", "sqlalchemy", "alembic", "asyncssh", "paramiko", "httpx", "uvicorn"):
        logging.getLogger(name).setLevel(logging.WARNING)


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
    parties = load_counterparties()
    bureau = parties.bureaus[0]
    now = datetime.now(UTC)
    business_date = business_date or now.astimezone(ZoneInfo(parties.timezone)).strftime("%Y%m%d")
    run_at = datetime.strptime(business_date, "%Y%m%d").replace(
        hour=10, tzinfo=ZoneInfo(parties.timezone)
    )
    demo_dir = var_dir() / "demo"
    sftp_root = demo_dir / "sftp"
    counterparties = [bureau, *parties.partner_banks, *parties.factories]
    for party in counterparties:
        for sub in (party.pickup, party.drop):
            (sftp_root / party.code / sub).mkdir(parents=True, exist_ok=True)

    with EmbeddedSftpServer(sftp_root, state_dir=demo_dir / "sshd") as server:
        settings = {}
        for party in counterparties:
            conn = server.connection(party.code)
            os.environ[f"AIRFLOW_CONN_{party.conn_id.upper()}"] = json.dumps(conn)
            settings[party.code] = SftpSettings.from_airflow(_Conn(conn))

        seq = _next_seq(business_date, bureau.code)
        sim = BureauSimulator(
            bureau=bureau.code, hub=parties.hub, seed=f"demo-{seq}", encoding=bureau.encoding
        )
        sim._seqs[business_date] = seq - 1
        batch = sim.next_batch(business_date, size=size, bad_share={k: 0.005 for k in _kinds()})
        print(
            f"bureau {bureau.code}: uploading {batch.name} ({len(batch.rows)} applications) "
            "and its photo zip"
        )
        with SftpRemote(settings[bureau.code]) as bureau_side:
            assert batch.zip_data is not None
            bureau_side.publish(
                bureau.pickup, batch.zip_name, batch.zip_data, len(_zip_names(batch))
            )
            bureau_side.publish(bureau.pickup, batch.name, batch.data, len(batch.rows))

        _quiet_airflow()
        from airflow.models import DagBag
        from airflow.utils.state import DagRunState

        dags = DagBag(dag_folder=str(ROOT / "dags")).dags

        def run(dag_id: str) -> bool:
            print(f"hub: DAG {dag_id} (dag.test) ...")
            state = dags[dag_id].test(run_after=run_at, logical_date=run_at).state
            if state != DagRunState.SUCCESS:
                print(
                    f"the DAG run of {dag_id} ended {state}; see the task logs above",
                    file=sys.stderr,
                )
            return bool(state == DagRunState.SUCCESS)

        if not (run("apply_intake") and run("account_opening")):
            return 1
        remotes = {code: SftpRemote(settings[code]) for code in settings}
        try:
            for partner in parties.partner_banks:
                sent = PartnerBankSimulator(
                    remotes[partner.code],
                    code=partner.code,
                    hub=parties.hub,
                    seed=f"demo-{partner.code}",
                    state_dir=demo_dir / "partners",
                ).run(business_date)
                print(f"partner bank {partner.code}: answered {', '.join(sent) or 'nothing'}")
            if not (run("partner_account_returns") and run("factory_dispatch")):
                return 1
            for factory in parties.factories:
                sent = CardFactorySimulator(
                    remotes[factory.code], code=factory.code, hub=parties.hub, seed=f"demo-{seq}"
                ).run(business_date)
                print(f"card factory {factory.code}: returned {', '.join(sent) or 'nothing'}")
            if not (run("factory_returns") and run("bureau_card_returns")):
                return 1
            inbox = demo_dir / "bureau-inbox"
            inbox.mkdir(parents=True, exist_ok=True)
            taken = _collect(remotes[bureau.code], bureau.drop, inbox)
        finally:
            for remote in remotes.values():
                remote.close()

    response_name = f"APPLYRSP_{parties.hub}_{bureau.code}_{business_date}_{seq:03d}.txt"
    answers = read_applyrsp((inbox / response_name).read_bytes(), bureau.encoding)
    tally = Counter(code or "00" for _, _, code in answers)
    print()
    print(
        f"APPLYRSP {response_name}: {len(answers)} lines, {tally.pop('00', 0)} accepted, "
        f"{sum(tally.values())} rejected"
    )
    for code, n in sorted(tally.items()):
        print(f"  {code} ×{n:<4} {message(code, 'zh')} / {message(code, 'en')}")
    agree = all(
        (code or None) == exp for (_, _, code), exp in zip(answers, batch.expected, strict=True)
    )
    planted = sum(1 for c in batch.expected if c)
    print(
        f"  the bureau's expectations {'match' if agree else 'DO NOT match'} every line "
        f"({planted} bad lines planted)"
    )
    cardrsp = [n for n in taken if n.startswith("CARDRSP_")]
    _print_cardrsp(inbox, cardrsp, bureau.encoding)
    print()
    print("Where to look:")
    print(f"  what the bureau took from its drop directory   {inbox}/")
    print(
        f"  archived requests (bureau's server)            {sftp_root / bureau.code / bureau.pickup / 'archive' / business_date}/"
    )
    print(
        "  every file the hub sent                         table outbound_file of the hub database"
    )
    print(f"    large ones (APPLYRSP, PERSO and its zip)     {storage_url()}/outbox/")
    print(f"  hub's copies of what arrived                   {storage_url()}/received/")
    print(f"  hub database                                   {database_url()}")
    print(
        f"  where the work stands                          uv run sscard status --business-date {business_date}"
    )
    print(
        f"  pre-check a file yourself                      uv run sscard validate "
        f"{sftp_root / bureau.code / bureau.pickup / 'archive' / business_date / batch.name} "
        f"--business-date {business_date}"
    )
    print(
        "  Airflow UI                                     AIRFLOW_HOME=$PWD uv run airflow standalone"
        "  (http://127.0.0.1:8080)"
    )
    return 0 if agree else 1


def _collect(remote: SftpRemote, drop: str, inbox: Path) -> list[str]:
    """The bureau takes every complete file from its drop directory (and removes it)."""
    taken = []
    names = {e.name for e in files(remote.list_dir(drop))}
    for name in sorted(names):
        if name.endswith((".ok", ".part")) or f"{name}.ok" not in names:
            continue
        (inbox / name).write_bytes(remote.read_bytes(f"{drop}/{name}"))
        remote.remove(f"{drop}/{name}.ok")
        remote.remove(f"{drop}/{name}")
        taken.append(name)
    return taken


def _print_cardrsp(inbox: Path, names: list[str], encoding: str) -> None:
    from schemas.codec import DelimitedReader, read_all
    from schemas.layouts import CARDRSP

    for name in names:
        table, _ = read_all(DelimitedReader((inbox / name).read_bytes(), CARDRSP, encoding))
        lines = table.to_pylist()
        stages = Counter(line["fail_stage"] for line in lines)
        print()
        print(f"CARDRSP {name}: {len(lines)} card(s) reached a final outcome")
        print(f"  made (stage 0)               {stages.get('0', 0)}")
        for stage, label in (
            ("1", "failed at the bank (stage 1)"),
            ("2", "failed at the factory (stage 2)"),
        ):
            codes = Counter(line["reason_code"] for line in lines if line["fail_stage"] == stage)
            detail = ", ".join(
                f"{c} {message(c, 'en') if c in _known() else ''} ×{n}".replace("  ", " ")
                for c, n in sorted(codes.items())
            )
            print(f"  {label:<28} {stages.get(stage, 0)}{'  (' + detail + ')' if detail else ''}")
        banks = Counter(line["bank_code"] for line in lines if line["fail_stage"] == "0")
        print(f"  made cards by service bank   {dict(sorted(banks.items()))}")


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


class _Conn:
    """The attributes of an Airflow connection, from its JSON form."""

    def __init__(self, raw: dict[str, Any]) -> None:
        self.host: str | None = raw["host"]
        self.port: int | None = raw["port"]
        self.login: str | None = raw["login"]
        self.extra_dejson: dict[str, Any] = raw["extra"]


if __name__ == "__main__":
    sys.exit(main())
