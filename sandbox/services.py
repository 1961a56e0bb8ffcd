"""The sandbox counterparties as a long-running service, for the hub running in a real
Airflow (``make airflow``).

One embedded SFTP server on a fixed loopback port stands in for the servers of every
configured bureau, partner bank and card factory; their Airflow connections (the
server's host key pinned) are written to an environment file every Airflow process
reads. Every few seconds the simulated partner banks answer the ACCTOPEN files in their
drop directories, the card factory returns the PERSO files in its own, and the bureau
collects what the hub sent it into ``<dir>/bureau-inbox``. ``upload`` makes the bureau
send an APPLY batch with its photo zip.

    python -m sandbox.services serve --dir var/airflow --port 2222
    python -m sandbox.services upload --dir var/airflow --size 200
"""

from __future__ import annotations

import argparse
import io
import json
import logging
import shlex
import signal
import sys
import threading
import zipfile
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from sandbox.bureau import LINE_KINDS, BureauSimulator
from sandbox.factory import CardFactorySimulator
from sandbox.partner_bank import PartnerBankSimulator
from sandbox.servicing import PartnerServicing
from sandbox.sftp_server import EmbeddedSftpServer
from sscard.config import Counterparties, load_counterparties
from transport.remote import files
from transport.sftp import SftpRemote, SftpSettings

log = logging.getLogger("sandbox.services")

#: the port the sandbox SFTP server listens on (127.0.0.1)
DEFAULT_PORT = 2222


class _Conn:
    """An Airflow-connection-like view of a connection's JSON form."""

    def __init__(self, raw: Mapping[str, Any]) -> None:
        self.host = raw["host"]
        self.port = raw["port"]
        self.login = raw["login"]
        self.extra_dejson = raw["extra"]


def settings_of(raw: Mapping[str, Any]) -> SftpSettings:
    """The SFTP settings of a connection given in its JSON form (``AIRFLOW_CONN_…``)."""
    return SftpSettings.from_airflow(_Conn(raw))


def connections_file(directory: Path) -> Path:
    return directory / "connections.env"


def _business_date(parties: Counterparties) -> str:
    return datetime.now(UTC).astimezone(ZoneInfo(parties.timezone)).strftime("%Y%m%d")


def serve(directory: Path, port: int, every: float) -> int:
    """Run the counterparties until SIGINT or SIGTERM."""
    parties = load_counterparties()
    root = directory / "sftp"
    everyone = [
        *parties.bureaus,
        *parties.partner_banks,
        *parties.factories,
        *parties.channels,
        *parties.payment_systems,
    ]
    for party in everyone:
        for sub in (party.pickup, party.drop):
            (root / party.code / sub).mkdir(parents=True, exist_ok=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    with EmbeddedSftpServer(root, port=port, state_dir=directory / "sshd") as server:
        conns = {party.code: server.connection(party.code) for party in everyone}
        env = "".join(
            f"export AIRFLOW_CONN_{party.conn_id.upper()}={shlex.quote(json.dumps(conns[party.code]))}\n"
            for party in everyone
        )
        connections_file(directory).write_text(env)
        log.info("counterparties listening on 127.0.0.1:%d (%s)", server.port, ", ".join(conns))
        remotes = {code: SftpRemote(settings_of(c)) for code, c in conns.items()}
        partners = [
            PartnerBankSimulator(
                remotes[p.code],
                code=p.code,
                hub=parties.hub,
                seed=f"sandbox-{p.code}",
                state_dir=directory / "partners",
            )
            for p in parties.partner_banks
        ]
        servicing = [
            PartnerServicing(
                p.code,
                parties.hub,
                drop=root / p.code / p.drop,
                pickup=root / p.code / p.pickup,
                state_dir=directory / "partners",
                seed=f"sandbox-{p.code}",
            )
            for p in parties.partner_banks
        ]
        factories = [
            CardFactorySimulator(remotes[f.code], code=f.code, hub=parties.hub, seed="sandbox")
            for f in parties.factories
        ]
        inbox = directory / "bureau-inbox"
        inbox.mkdir(parents=True, exist_ok=True)
        try:
            while not stop.wait(every):
                day = _business_date(parties)
                try:
                    for partner in partners:
                        for name in partner.run(day):
                            log.info("partner bank %s answered %s", partner.code, name)
                    for side in servicing:
                        for name in side.run(day):
                            log.info("partner bank %s answered %s", side.code, name)
                    for factory in factories:
                        for name in factory.run(day):
                            log.info("card factory %s returned %s", factory.code, name)
                    for bureau in parties.bureaus:
                        for name in collect(remotes[bureau.code], bureau.drop, inbox):
                            log.info("bureau %s collected %s", bureau.code, name)
                except Exception:
                    log.exception("a counterparty failed this round; trying again")
        finally:
            for remote in remotes.values():
                remote.close()
    return 0


def collect(remote: SftpRemote, drop: str, inbox: Path) -> list[str]:
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


def upload(directory: Path, size: int) -> int:
    """The first configured bureau sends its next APPLY batch of the day."""
    parties = load_counterparties()
    bureau = parties.bureaus[0]
    env = connections_file(directory)
    if not env.exists():
        print(f"the sandbox counterparties are not running ({env} missing): make airflow")
        return 2
    raw = None
    for line in env.read_text().splitlines():
        key, _, value = line.removeprefix("export ").partition("=")
        if key == f"AIRFLOW_CONN_{bureau.conn_id.upper()}":
            raw = json.loads(shlex.split(value)[0])
    if raw is None:
        print(f"no connection for bureau {bureau.code} in {env}")
        return 2
    day = _business_date(parties)
    state = directory / "bureau-seq.json"
    seqs = json.loads(state.read_text()) if state.exists() else {}
    seq = int(seqs.get(day, 0)) + 1
    sim = BureauSimulator(
        bureau=bureau.code, hub=parties.hub, seed=f"sandbox-{day}-{seq}", encoding=bureau.encoding
    )
    sim._seqs[day] = seq - 1
    batch = sim.next_batch(day, size=size, bad_share={k: 0.005 for k in LINE_KINDS})
    with SftpRemote(settings_of(raw)) as remote:
        if batch.zip_data is not None:
            with zipfile.ZipFile(io.BytesIO(batch.zip_data)) as zf:
                entries = len(zf.namelist())
            remote.publish(bureau.pickup, batch.zip_name, batch.zip_data, entries)
        remote.publish(bureau.pickup, batch.name, batch.data, len(batch.rows))
    seqs[day] = seq
    state.write_text(json.dumps(seqs))
    print(
        f"bureau {bureau.code} uploaded {batch.name} ({len(batch.rows)} applications and "
        f"its photo zip); the scheduled DAGs take it from here"
    )
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sandbox.services", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    s = sub.add_parser("serve", help="run the counterparties until stopped")
    s.add_argument("--dir", type=Path, default=Path("var/airflow"))
    s.add_argument("--port", type=int, default=DEFAULT_PORT)
    s.add_argument("--every", type=float, default=10.0, help="seconds between rounds")
    u = sub.add_parser("upload", help="the bureau sends an APPLY batch")
    u.add_argument("--dir", type=Path, default=Path("var/airflow"))
    u.add_argument("--size", type=int, default=200)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    for noisy in ("asyncssh", "paramiko", "transport"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    if args.command == "serve":
        return serve(args.dir, args.port, args.every)
    return upload(args.dir, args.size)


if __name__ == "__main__":
    sys.exit(main())
