"""Imports run one way: the business packages never reach up into the application
(``sscard``), the simulated counterparties (``sandbox``), Airflow or paramiko; the CLI
loads the sandbox only when the demo is asked for."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOMAIN = ("issuance", "servicing", "payments", "banking", "reconciliation", "schemas")
FORBIDDEN = ("sscard", "sandbox", "airflow", "paramiko", "asyncssh", "dags")


def imported(path: Path, *, top_level_only: bool = False) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    nodes = tree.body if top_level_only else list(ast.walk(tree))
    found: set[str] = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return found


@pytest.mark.parametrize(
    "path",
    sorted(p for pkg in DOMAIN for p in (ROOT / pkg).rglob("*.py")),
    ids=lambda p: str(p.relative_to(ROOT)),
)
def test_a_business_module_imports_no_application_adapter_or_airflow(path: Path) -> None:
    bad = {m for m in imported(path) if m.split(".")[0] in FORBIDDEN}
    assert bad == set()


def test_the_exchange_imports_no_airflow_and_no_application() -> None:
    bad = {
        (str(p.relative_to(ROOT)), m)
        for p in (ROOT / "exchange").rglob("*.py")
        for m in imported(p)
        if m.split(".")[0] in FORBIDDEN
    }
    assert bad == set()


def test_the_cli_loads_the_sandbox_only_for_the_demo() -> None:
    top = imported(ROOT / "sscard" / "cli.py", top_level_only=True)
    assert not {m for m in top if m.split(".")[0] == "sandbox"}
