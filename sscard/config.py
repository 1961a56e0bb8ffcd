"""Counterparty configuration (ICD §1: every code, directory, encoding and deadline is
configuration, never code) and the process settings read from the environment."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

if TYPE_CHECKING:
    from issuance.precheck import PrecheckSettings

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_COUNTERPARTIES = ROOT / "config" / "counterparties.yaml"
DEFAULT_VAR = ROOT / "var"

#: environment variables (documented in the README)
ENV_DATABASE_URL = "SSCARD_DATABASE_URL"
ENV_COUNTERPARTIES = "SSCARD_COUNTERPARTIES"
ENV_VAR_DIR = "SSCARD_VAR_DIR"
ENV_STORAGE_URL = "SSCARD_STORAGE_URL"
ENV_STORAGE_OPTIONS = "SSCARD_STORAGE_OPTIONS"
ENV_WORK_DIR = "SSCARD_WORK_DIR"


class ConfigError(ValueError):
    """The counterparty configuration is malformed."""


@dataclass(frozen=True)
class Counterparty:
    code: str
    conn_id: str
    kind: str
    encoding: str = "GB18030"
    pickup: str = "pickup"
    drop: str = "drop"
    name: str = ""
    options: dict[str, Any] = field(default_factory=dict)

    def option(self, key: str, default: Any) -> Any:
        return self.options.get(key, default)


@dataclass(frozen=True)
class Counterparties:
    hub: str
    timezone: str
    bureaus: tuple[Counterparty, ...]
    partner_banks: tuple[Counterparty, ...]
    factories: tuple[Counterparty, ...]
    channels: tuple[Counterparty, ...]
    payment_systems: tuple[Counterparty, ...]
    pan_ranges: tuple[tuple[str, int], ...] = (("6217881", 19),)

    @property
    def bank_codes(self) -> frozenset[str]:
        """Service banks an application may name: the hub and every partner (E111)."""
        return frozenset({self.hub, *(p.code for p in self.partner_banks)})

    def bureau(self, code: str) -> Counterparty:
        for b in self.bureaus:
            if b.code == code:
                return b
        raise ConfigError(f"bureau {code} is not configured")

    def party(self, code: str) -> Counterparty:
        for p in self.all():
            if p.code == code:
                return p
        raise ConfigError(f"party {code} is not configured")

    def all(self) -> tuple[Counterparty, ...]:
        return (
            self.bureaus
            + self.partner_banks
            + self.factories
            + self.channels
            + self.payment_systems
        )


_PATTERNS = {
    "bureaus": r"R[0-9]{6}",
    "partner_banks": r"B[0-9]{3}",
    "factories": r"F[0-9]{2}",
    "channels": r"C[0-9]{2}",
    "payment_systems": r"P[0-9]{2}",
}
_KNOWN = {"code", "conn_id", "encoding", "pickup", "drop", "name"}


def _party(kind: str, raw: dict[str, Any]) -> Counterparty:
    code = str(raw.get("code", ""))
    if not re.fullmatch(_PATTERNS[kind], code):
        raise ConfigError(f"{kind}: code {code!r} does not match {_PATTERNS[kind]}")
    if not raw.get("conn_id"):
        raise ConfigError(f"{kind} {code}: conn_id missing")
    encoding = str(raw.get("encoding", "GB18030")).upper()
    if encoding not in ("GB18030", "UTF-8"):
        raise ConfigError(f"{kind} {code}: encoding must be GB18030 or UTF-8")
    if kind == "channels" and raw.get("medium") not in ("counter", "phone"):
        raise ConfigError(f"channel {code}: medium must be counter or phone")
    return Counterparty(
        code=code,
        conn_id=str(raw["conn_id"]),
        kind=kind,
        encoding=encoding,
        pickup=str(raw.get("pickup", "pickup")),
        drop=str(raw.get("drop", "drop")),
        name=str(raw.get("name", "")),
        options={k: v for k, v in raw.items() if k not in _KNOWN},
    )


def load_counterparties(path: Path | str | None = None) -> Counterparties:
    """Load the counterparty file (``SSCARD_COUNTERPARTIES`` or the shipped default)."""
    path = Path(path or os.environ.get(ENV_COUNTERPARTIES) or DEFAULT_COUNTERPARTIES)
    raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    hub = str(raw.get("hub", ""))
    if not re.fullmatch(r"B[0-9]{3}", hub):
        raise ConfigError("hub must be B + 3 digits")
    parties = {kind: tuple(_party(kind, r) for r in raw.get(kind) or ()) for kind in _PATTERNS}
    codes = [p.code for group in parties.values() for p in group]
    if len(codes) != len(set(codes)) or hub in codes:
        raise ConfigError("party codes must be unique")
    ranges = tuple(
        (str(r["prefix"]), int(r.get("length", 19))) for r in raw.get("hub_pan_ranges") or ()
    )
    if not ranges or not all(p.isdigit() for p, _ in ranges):
        raise ConfigError("hub_pan_ranges: at least one digit prefix is needed")
    return Counterparties(
        hub=hub,
        timezone=str(raw.get("timezone", "Asia/Shanghai")),
        pan_ranges=ranges,
        **parties,
    )


def database_url() -> str:
    """``SSCARD_DATABASE_URL``; the embedded default is SQLite under ``var/``."""
    url = os.environ.get(ENV_DATABASE_URL)
    if url:
        return url
    var_dir().mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{var_dir() / 'sscard.db'}"


def var_dir() -> Path:
    """The embedded default's home: its SQLite database and its storage
    (``SSCARD_VAR_DIR``)."""
    return Path(os.environ.get(ENV_VAR_DIR) or DEFAULT_VAR)


def storage_url() -> str:
    """Where one task leaves files for another (``SSCARD_STORAGE_URL``): an fsspec URL
    (``s3://bucket/prefix``, ``file:///srv/sscard``); the embedded default is
    ``<var>/storage``. Every worker must reach the same storage."""
    return os.environ.get(ENV_STORAGE_URL) or str(var_dir() / "storage")


def storage_options() -> dict[str, Any]:
    """fsspec options for the storage (``SSCARD_STORAGE_OPTIONS``, a JSON object)."""
    import json

    raw = os.environ.get(ENV_STORAGE_OPTIONS)
    options = json.loads(raw) if raw else {}
    if not isinstance(options, dict):
        raise ConfigError(f"{ENV_STORAGE_OPTIONS} must be a JSON object")
    return options


def work_root() -> Path | None:
    """Where a task makes its own empty working directory, removed when it ends
    (``SSCARD_WORK_DIR``; default: the system's temporary directory)."""
    raw = os.environ.get(ENV_WORK_DIR)
    return Path(raw) if raw else None


def precheck_settings(parties: Counterparties) -> PrecheckSettings:
    """What ``sscard validate`` needs of the configuration."""
    from issuance.precheck import PrecheckSettings

    return PrecheckSettings(
        hub=parties.hub,
        bank_codes=parties.bank_codes,
        bureaus={
            b.code: (b.encoding, int(b.option("max_forward_days", 5))) for b in parties.bureaus
        },
    )
