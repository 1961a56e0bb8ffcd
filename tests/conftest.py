"""Shared fixtures: the hub's database (SQLite by default, PostgreSQL when
``SSCARD_DATABASE_URL`` names one), a real OpenSSH sshd on loopback, and an Airflow
home for ``dag.test()``. Environment is set before Airflow is imported."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
TEST_VAR = ROOT / "var" / "test"
TEST_VAR.mkdir(parents=True, exist_ok=True)

os.environ["AIRFLOW_HOME"] = str(ROOT)
os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
os.environ["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] = f"sqlite:///{TEST_VAR / 'airflow.db'}"
os.environ["AIRFLOW__LOGGING__BASE_LOG_FOLDER"] = str(TEST_VAR / "logs")
os.environ.setdefault("SSCARD_VAR_DIR", str(TEST_VAR / "hub"))

from sqlalchemy import Engine, text  # noqa: E402

from persistence.db import make_engine, upgrade  # noqa: E402
from persistence.models import Base  # noqa: E402
from tests.support.sshd import OpenSshServer  # noqa: E402

PG_URL = os.environ.get("SSCARD_DATABASE_URL", "")


def _reset_postgres(url: str) -> None:
    engine = make_engine(url)
    with engine.begin() as conn:
        conn.execute(text("DROP SCHEMA IF EXISTS public CASCADE"))
        conn.execute(text("CREATE SCHEMA public"))
    engine.dispose()


#: references kept without a foreign key (docs/decisions.md), checked after every test
_ORPHANS = {
    "application without its file": """SELECT COUNT(*) FROM application a
        WHERE NOT EXISTS (SELECT 1 FROM received_file f WHERE f.id = a.file_id)""",
    "application without its state": """SELECT COUNT(*) FROM application a
        WHERE NOT EXISTS (SELECT 1 FROM application_state s WHERE s.application_id = a.id)""",
    "state without its application": """SELECT COUNT(*) FROM application_state s
        WHERE NOT EXISTS (SELECT 1 FROM application a WHERE a.id = s.application_id)""",
    "perso record without its application": """SELECT COUNT(*) FROM perso_record p
        WHERE NOT EXISTS (SELECT 1 FROM application a WHERE a.id = p.application_id)""",
}


@pytest.fixture(scope="session")
def db_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A migrated database for the session: PostgreSQL when configured, else SQLite."""
    if PG_URL.startswith("postgresql"):
        _reset_postgres(PG_URL)
        url = PG_URL
    else:
        url = f"sqlite:///{tmp_path_factory.mktemp('db') / 'hub.db'}"
        os.environ["SSCARD_DATABASE_URL"] = url
    upgrade(url)
    yield url


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    """The session's database, emptied after each test."""
    from persistence.db import engine_for

    eng = engine_for(db_url)
    yield eng
    with eng.connect() as conn:
        orphans = {name: conn.scalar(text(sql)) for name, sql in _ORPHANS.items()}
    assert not any(orphans.values()), f"rows without what they refer to: {orphans}"
    with eng.begin() as conn:
        if eng.dialect.name == "postgresql":
            # ids start again as on a new database (SQLite reuses them after DELETE), so a
            # file naming an id (a req_no) is the same on both
            names = ", ".join(t.name for t in Base.metadata.sorted_tables)
            conn.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
        else:
            for table in reversed(Base.metadata.sorted_tables):
                conn.execute(table.delete())


@pytest.fixture(scope="session")
def sshd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OpenSshServer]:
    with OpenSshServer(tmp_path_factory.mktemp("sshd")) as server:
        yield server


@pytest.fixture(scope="session")
def airflow_db() -> None:
    """Airflow's metadata database for ``dag.test()`` (migrated once)."""
    subprocess.run(
        [sys.executable, "-m", "airflow", "db", "migrate"],
        check=True,
        capture_output=True,
        env=os.environ.copy(),
    )
