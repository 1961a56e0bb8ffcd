"""The sandbox's business day, end to end, on the embedded default (``make demo``).

An embedded SFTP server stands in for the bureau's server; the simulated bureau uploads
an APPLY batch with its photo zip (about 8 % bad lines of every kind); the real
``apply_intake`` DAG runs once with ``dag.test()``; the bureau collects its APPLYRSP and
the demo prints what happened and where to look.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from collections import Counter
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from sandbox.bureau import BureauSimulator, read_applyrsp
from sandbox.sftp_server import EmbeddedSftpServer
from schemas.codes import message
from sscard.config import ROOT, database_url, load_counterparties, var_dir
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

    sftp_root = var_dir() / "demo" / "sftp"
    home = sftp_root / bureau.code
    for sub in (bureau.pickup, bureau.drop):
        (home / sub).mkdir(parents=True, exist_ok=True)

    with EmbeddedSftpServer(sftp_root, state_dir=var_dir() / "demo" / "sshd") as server:
        conn = server.connection(bureau.code)
        os.environ[f"AIRFLOW_CONN_{bureau.conn_id.upper()}"] = json.dumps(conn)
        settings = SftpSettings.from_airflow(_Conn(conn))

        seq = _next_seq(business_date, bureau.code)
        sim = BureauSimulator(
            bureau=bureau.code, hub=parties.hub, seed=f"demo-{seq}", encoding=bureau.encoding
        )
        sim._seqs[business_date] = seq - 1
        batch = sim.next_batch(business_date, size=size, bad_share={k: 0.005 for k in _kinds()})
        print(
            f"bureau {bureau.code}: uploading {batch.name} ({len(batch.rows)} applications) and its photo zip"
        )
        with SftpRemote(settings) as bureau_side:
            assert batch.zip_data is not None
            bureau_side.publish(
                bureau.pickup, batch.zip_name, batch.zip_data, len(_zip_names(batch))
            )
            bureau_side.publish(bureau.pickup, batch.name, batch.data, len(batch.rows))

        print("hub: running the apply_intake DAG (Airflow dag.test) ...")
        _quiet_airflow()
        from airflow.models import DagBag
        from airflow.utils.state import DagRunState

        dag = DagBag(dag_folder=str(ROOT / "dags")).get_dag("apply_intake")
        run = dag.test(run_after=run_at, logical_date=run_at)
        if run.state != DagRunState.SUCCESS:
            print(f"the DAG run ended {run.state}; see the task logs above", file=sys.stderr)
            return 1

        response_name = f"APPLYRSP_{parties.hub}_{bureau.code}_{business_date}_{seq:03d}.txt"
        with SftpRemote(settings) as bureau_side:
            data = bureau_side.read_bytes(f"{bureau.drop}/{response_name}")
            collected = var_dir() / "demo" / "bureau-inbox"
            collected.mkdir(parents=True, exist_ok=True)
            (collected / response_name).write_bytes(data)
            for name in (response_name, f"{response_name}.ok"):
                bureau_side.remove(f"{bureau.drop}/{name}")
        answers = read_applyrsp(data, bureau.encoding)

    tally = Counter(code or "00" for _, _, code in answers)
    print()
    print(
        f"APPLYRSP {response_name}: {len(answers)} lines, {tally.pop('00', 0)} accepted, {sum(tally.values())} rejected"
    )
    for code, n in sorted(tally.items()):
        print(f"  {code} ×{n:<4} {message(code, 'zh')} / {message(code, 'en')}")
    expected = Counter(c for c in batch.expected if c)
    agree = all(
        (code or None) == exp for (_, _, code), exp in zip(answers, batch.expected, strict=True)
    )
    print(
        f"  the bureau's expectations {'match' if agree else 'DO NOT match'} every line ({sum(expected.values())} bad lines planted)"
    )
    print()
    print("Where to look:")
    print("  response, as the bureau took it from its drop directory")
    print(f"                             {var_dir() / 'demo' / 'bureau-inbox' / response_name}")
    print(f"  archived request           {home / bureau.pickup / 'archive' / business_date}/")
    print(
        f"  hub's copy of what arrived {var_dir() / 'received' / bureau.conn_id / business_date}/"
    )
    print(f"  hub database               {database_url()}")
    print(
        f"  pre-check a file yourself  uv run sscard validate {home / bureau.pickup / 'archive' / business_date / batch.name} --business-date {business_date}"
    )
    print(
        "  Airflow UI                 AIRFLOW_HOME=$PWD uv run airflow standalone  (then http://127.0.0.1:8080, DAG apply_intake)"
    )
    return 0 if agree else 1


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
