"""Counterparty configuration (ICD §1: every code, directory, encoding and deadline is
configuration, never code) and the process settings read from the environment.

``config/counterparties.yaml`` is parsed once into frozen dataclasses, one per kind of
party (:class:`Bureau`, :class:`PartnerBank`, :class:`Factory`, :class:`Channel`,
:class:`PaymentSystem`) and the hub's own settings (:class:`HubSettings`). Reading it
collects every problem before refusing it (:class:`ConfigError` lists them all): a key no
kind has, a value of the wrong type or out of range, an encoding the ICD does not allow, a
code that does not match ICD §1 or is used twice, a key given twice, a bureau naming a
factory that is not configured. Each problem names the file, the party and the key.

Whether Airflow can resolve each ``conn_id`` is checked only on demand
(:func:`check_counterparties`, ``sscard config check``), never while loading: see
:func:`resolve_connections` for what a missing connection is."""

from __future__ import annotations

import difflib
import importlib.util
import os
import re
import threading
from collections.abc import Iterable, Iterator
from dataclasses import MISSING, asdict, dataclass, field, fields
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, NamedTuple, TypeVar, get_args, get_type_hints
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

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

#: the encodings of delimited files (ICD §4.1); fixed-width files are GB18030 only (§4.3)
ENCODINGS = ("GB18030", "UTF-8")
#: what Airflow accepts as a connection id
_CONN_ID = r"[\w#!()\-.:/\\]{1,250}"
#: Airflow's own environment variable for a connection: AIRFLOW_CONN_<CONN_ID upper-cased>
AIRFLOW_CONN_PREFIX = "AIRFLOW_CONN_"
#: how long ``config check`` waits for Airflow's secrets backends and metadata database
AIRFLOW_TIMEOUT_SECONDS = 20.0


# --------------------------------------------------------------------------- problems


@dataclass(frozen=True)
class ConfigProblem:
    """One thing wrong with the configuration: where (file, party, key) and what.
    ``party`` is empty for the file as a whole or one of its top-level keys."""

    file: str
    party: str
    key: str
    problem: str

    def __str__(self) -> str:
        return ": ".join(part for part in (self.file, self.party, self.key, self.problem) if part)

    def as_json(self) -> dict[str, str]:
        return asdict(self)


class ConfigError(ValueError):
    """The counterparty configuration is malformed; ``problems`` lists every problem found
    (empty for a lookup of a party that is not configured)."""

    def __init__(self, message: str, problems: Iterable[ConfigProblem] = ()) -> None:
        super().__init__(message)
        self.problems = tuple(problems)

    @classmethod
    def listing(cls, problems: Iterable[ConfigProblem]) -> ConfigError:
        found = tuple(problems)
        return cls("; ".join(str(p) for p in found), found)


# --------------------------------------------------------------------------- settings

#: constraints of a setting, kept in its dataclass field's metadata
_DAYS = {"minimum": 0}
_AT_LEAST_ONE = {"minimum": 1}


@dataclass(frozen=True, kw_only=True)
class Counterparty:
    """What every counterparty has (ICD §2): its code, the Airflow connection (type
    ``sftp``) of its server, the encoding of its files, the directory it sends from
    (``pickup``) and the one the hub sends to (``drop``), and how far back a date in
    what it sends may be (``max_back_days``, ICD §3). The YAML keys are the field names."""

    section: ClassVar[str] = ""
    role: ClassVar[str] = "party"
    code_pattern: ClassVar[str] = ""
    encodings: ClassVar[tuple[str, ...]] = ENCODINGS

    code: str
    conn_id: str
    name: str = ""
    encoding: str = "GB18030"
    pickup: str = "pickup"
    drop: str = "drop"
    max_back_days: int = field(default=10, metadata=_DAYS)

    @property
    def kind(self) -> str:
        """The configuration section the party comes from (``bureaus``, …)."""
        return self.section

    @classmethod
    def settings(cls) -> tuple[str, ...]:
        """The keys a party of this kind may have."""
        return tuple(f.name for f in fields(cls))

    def option(self, key: str, default: Any = None) -> Any:
        """A setting by its key: the configured value or this kind's default; ``default``
        only for a setting left unset (a bureau's ``factory``). A key this kind does not
        have is a ``KeyError``, not a silent default."""
        if key not in self.settings():
            raise KeyError(f"a {self.role} has no setting {key!r}")
        value = getattr(self, key)
        return default if value is None else value


@dataclass(frozen=True, kw_only=True)
class Bureau(Counterparty):
    """An HR bureau (ICD §1): its requests may be dated up to ``max_forward_days`` ahead
    (§3); an APPLY's photo zip is awaited ``zip_wait_minutes`` (§2, F10); its cards are
    made by ``factory`` (default: the first configured factory)."""

    section: ClassVar[str] = "bureaus"
    role: ClassVar[str] = "bureau"
    code_pattern: ClassVar[str] = r"R[0-9]{6}"

    max_forward_days: int = field(default=5, metadata=_DAYS)
    zip_wait_minutes: int = field(default=120, metadata=_AT_LEAST_ONE)
    factory: str | None = None
    #: a temporary loss of this bureau's cards lapses after these calendar days when the
    #: bureau took it, ``bank_temp_loss_days`` when a bank channel did (DOMAIN §2)
    temp_loss_days: int = field(default=15, metadata=_AT_LEAST_ONE)
    bank_temp_loss_days: int = field(default=5, metadata=_AT_LEAST_ONE)
    #: post a DISB batch's credits before its funding arrives (DOMAIN §6; default no)
    pay_before_funding: bool = False
    #: credits to a pre-opened account are accepted (DOMAIN §3), or refused 106
    credit_preopened: bool = True


@dataclass(frozen=True, kw_only=True)
class PartnerBank(Counterparty):
    """A partner bank (ICD §1): a line forwarded to it and unanswered after
    ``partner_wait_days`` business days is answered E140 (§2)."""

    section: ClassVar[str] = "partner_banks"
    role: ClassVar[str] = "partner bank"
    code_pattern: ClassVar[str] = r"B[0-9]{3}"

    partner_wait_days: int = field(default=1, metadata=_AT_LEAST_ONE)


@dataclass(frozen=True, kw_only=True)
class Factory(Counterparty):
    """A card factory (ICD §1): fixed-width GB18030 files only (§4.3), PERSO files of at
    most ``max_records`` records (the trailer's RECORD_COUNT has 8 digits)."""

    section: ClassVar[str] = "factories"
    role: ClassVar[str] = "factory"
    code_pattern: ClassVar[str] = r"F[0-9]{2}"
    encodings: ClassVar[tuple[str, ...]] = ("GB18030",)

    max_records: int = field(default=10_000, metadata={"minimum": 1, "maximum": 99_999_999})


@dataclass(frozen=True, kw_only=True)
class Channel(Counterparty):
    """A bank channel system (ICD §1), configured with its ``medium``; its requests may be
    dated up to ``max_forward_days`` ahead (§3)."""

    section: ClassVar[str] = "channels"
    role: ClassVar[str] = "channel"
    code_pattern: ClassVar[str] = r"C[0-9]{2}"

    medium: str = field(metadata={"choices": ("counter", "phone")})
    max_forward_days: int = field(default=5, metadata=_DAYS)
    #: a PIN block's op_time may be this far from when the file was complete (ICD §5.9)
    pin_window_minutes: int = field(default=10, metadata=_AT_LEAST_ONE)


@dataclass(frozen=True, kw_only=True)
class PaymentSystem(Counterparty):
    """The bank payment system sending the clearing account's statement (ICD §1)."""

    section: ClassVar[str] = "payment_systems"
    role: ClassVar[str] = "payment system"
    code_pattern: ClassVar[str] = r"P[0-9]{2}"


KINDS: tuple[type[Counterparty], ...] = (Bureau, PartnerBank, Factory, Channel, PaymentSystem)
_P = TypeVar("_P", bound=Counterparty)


class HubPanRange(NamedTuple):
    """Where the hub's PANs come from (DOMAIN §1): ``prefix`` (BIN and branch digits),
    then the account serial and the Luhn check digit, ``length`` digits in all."""

    prefix: str
    length: int = 19


@dataclass(frozen=True)
class HubSettings:
    """The hub's own settings: its code (ICD §1), the time zone of its business dates
    (ICD §3), its PAN ranges, used in order, and the public holidays (``YYYYMMDD``) that
    are not business days though on Monday to Friday (ICD §5.12)."""

    code: str
    timezone: str = "Asia/Shanghai"
    pan_ranges: tuple[HubPanRange, ...] = ()
    holidays: tuple[str, ...] = ()


@dataclass(frozen=True)
class Counterparties:
    own: HubSettings
    bureaus: tuple[Bureau, ...] = ()
    partner_banks: tuple[PartnerBank, ...] = ()
    factories: tuple[Factory, ...] = ()
    channels: tuple[Channel, ...] = ()
    payment_systems: tuple[PaymentSystem, ...] = ()
    source: str = ""

    @property
    def hub(self) -> str:
        return self.own.code

    @property
    def timezone(self) -> str:
        return self.own.timezone

    @property
    def pan_ranges(self) -> tuple[HubPanRange, ...]:
        return self.own.pan_ranges

    @property
    def holidays(self) -> tuple[str, ...]:
        return self.own.holidays

    @property
    def bank_codes(self) -> frozenset[str]:
        """Service banks an application may name: the hub and every partner (E111)."""
        return frozenset({self.hub, *(p.code for p in self.partner_banks)})

    def bureau(self, code: str) -> Bureau:
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


# --------------------------------------------------------------------------- reading

_HUB_KEYS = ("hub", "timezone", "hub_pan_ranges", "holidays")
_TOP_KEYS = (*_HUB_KEYS, *(k.section for k in KINDS))
_PAN_RANGE_KEYS = ("prefix", "length")


def config_path(path: Path | str | None = None) -> Path:
    """The counterparty file: ``path``, else ``SSCARD_COUNTERPARTIES``, else the shipped one."""
    return Path(path or os.environ.get(ENV_COUNTERPARTIES) or DEFAULT_COUNTERPARTIES)


def load_counterparties(path: Path | str | None = None) -> Counterparties:
    """Load the counterparty file (``SSCARD_COUNTERPARTIES`` or the shipped default).
    Raises :class:`ConfigError` listing every problem, or ``OSError`` when the file
    cannot be read. Connections are not looked up here (see :func:`check_counterparties`)."""
    parties, problems, _ = _read(config_path(path))
    if parties is None:
        raise ConfigError.listing(problems)
    return parties


class _Reader:
    """Collects the problems of one file while building its settings."""

    def __init__(self, file: str) -> None:
        self.file = file
        self.problems: list[ConfigProblem] = []
        #: (party, conn_id) of every entry whose conn_id could be read
        self.connections: list[tuple[str, str]] = []
        #: codes used by more than one party: their labels say which entry
        self.repeated: set[str] = set()

    def problem(self, party: str, key: str, text: str) -> None:
        self.problems.append(ConfigProblem(self.file, party, key, text))

    def unknown(self, party: str, key: object, known: Iterable[str]) -> None:
        close = difflib.get_close_matches(str(key), list(known), n=1)
        hint = f" (did you mean {close[0]}?)" if close else ""
        self.problem(party, str(key), f"unknown key{hint}")


def _read(path: Path) -> tuple[Counterparties | None, list[ConfigProblem], list[tuple[str, str]]]:
    reader = _Reader(str(path))
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        reader.problem("", "", "not UTF-8 text")
        return None, reader.problems, []
    try:
        node, data = _yaml(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        reason = getattr(exc, "problem", None) or type(exc).__name__
        reader.problem("", "", f"not valid YAML{where}: {reason}")
        return None, reader.problems, []
    if data is None:
        data = {}
    if not isinstance(data, dict):
        reader.problem("", "", "must be a mapping of hub settings and party lists")
        return None, reader.problems, []

    reader.repeated = _repeated_codes(data)
    for path_to, key, line in _duplicate_keys(node):
        where, key_name = _locate(data, path_to, key, reader.repeated)
        reader.problem(where, key_name, f"given twice (again on line {line}); one value only")
    for key in data:
        if key not in _TOP_KEYS:
            reader.unknown("", key, _TOP_KEYS)

    own = _hub_settings(reader, data)
    groups: dict[str, tuple[Counterparty, ...]] = {}
    order = ["", "hub"]  # the parties in file order, to list each one's problems together
    coded: list[tuple[str, str, str]] = []  # (place, label, code) of every entry with a code
    for kind in KINDS:
        parsed: list[Counterparty] = []
        for index, label, entry in _entries(reader, data, kind):
            order.append(label)
            if isinstance(entry, dict) and isinstance(entry.get("code"), str):
                coded.append((f"{kind.section}[{index}]", label, entry["code"]))
            party = _party(reader, kind, label, entry)
            if party is not None:
                parsed.append(party)
        groups[kind.section] = tuple(parsed)

    _unique_codes(reader, data.get("hub"), coded)
    _factory_references(reader, data)
    if reader.problems or own is None:
        rank = {label: i for i, label in reversed(list(enumerate(order)))}
        reader.problems.sort(key=lambda p: rank.get(p.party, 0))
        return None, reader.problems, reader.connections
    parties = Counterparties(
        own=own,
        bureaus=_only(Bureau, groups),
        partner_banks=_only(PartnerBank, groups),
        factories=_only(Factory, groups),
        channels=_only(Channel, groups),
        payment_systems=_only(PaymentSystem, groups),
        source=reader.file,
    )
    return parties, [], reader.connections


def _only(kind: type[_P], groups: dict[str, tuple[Counterparty, ...]]) -> tuple[_P, ...]:
    return tuple(p for p in groups[kind.section] if isinstance(p, kind))


def _yaml(text: str) -> tuple[yaml.Node | None, Any]:
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        return node, (loader.construct_document(node) if node is not None else None)
    finally:
        loader.dispose()


def _duplicate_keys(
    node: yaml.Node | None, path: tuple[str | int, ...] = ()
) -> Iterator[tuple[tuple[str | int, ...], str, int]]:
    """Keys given twice in one mapping (YAML would silently keep the last value)."""
    if isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode):
                continue
            key = str(key_node.value)
            if key in seen:
                yield path, key, key_node.start_mark.line + 1
            seen.add(key)
            yield from _duplicate_keys(value_node, (*path, key))
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            yield from _duplicate_keys(item, (*path, i))


def _locate(
    data: dict[Any, Any], path: tuple[str | int, ...], key: str, repeated: set[str]
) -> tuple[str, str]:
    """The party and key a place in the file belongs to."""
    if not path:
        return ("hub" if key in _HUB_KEYS else ""), key
    kinds = {k.section: k for k in KINDS}
    if len(path) == 2 and isinstance(path[1], int):
        section, index = str(path[0]), path[1]
        entries = data.get(section)
        if section in kinds and isinstance(entries, list) and index < len(entries):
            return _label(kinds[section], index, entries[index], repeated), key
        if section == "hub_pan_ranges":
            return "hub", f"hub_pan_ranges[{index}].{key}"
    return "", ".".join(str(p) for p in (*path, key))


def _label(kind: type[Counterparty], index: int, entry: object, repeated: set[str]) -> str:
    """A party as the file names it: ``bureau R440100``; ``bureaus[2]`` without a code;
    ``bureau R440100 (bureaus[2])`` when the code is used more than once."""
    code = entry.get("code") if isinstance(entry, dict) else None
    place = f"{kind.section}[{index}]"
    if not isinstance(code, str) or not code:
        return place
    return f"{kind.role} {code}" + (f" ({place})" if code in repeated else "")


def _repeated_codes(data: dict[Any, Any]) -> set[str]:
    codes = [data.get("hub")]
    for kind in KINDS:
        entries = data.get(kind.section)
        if isinstance(entries, list):
            codes += [e.get("code") for e in entries if isinstance(e, dict)]
    return {c for c in codes if isinstance(c, str) and codes.count(c) > 1}


def _entries(
    reader: _Reader, data: dict[Any, Any], kind: type[Counterparty]
) -> Iterator[tuple[int, str, object]]:
    entries = data.get(kind.section)
    if entries is None:
        return
    if not isinstance(entries, list):
        reader.problem("", kind.section, f"must be a list of {kind.role} settings")
        return
    for index, entry in enumerate(entries):
        yield index, _label(kind, index, entry, reader.repeated), entry


def _party(
    reader: _Reader, kind: type[Counterparty], label: str, entry: object
) -> Counterparty | None:
    if not isinstance(entry, dict):
        reader.problem(label, "", f"must be a mapping of {kind.role} settings")
        return None
    before = len(reader.problems)
    hints = get_type_hints(kind)
    declared = {f.name: f for f in fields(kind)}
    values: dict[str, Any] = {}
    for key, value in entry.items():
        spec = declared.get(key) if isinstance(key, str) else None
        if spec is None:
            reader.unknown(label, key, declared)
            continue
        checked = _value(reader, kind, label, key, value, hints[key], spec.metadata)
        if checked is not None:
            values[key] = checked
    for name, spec in declared.items():
        if spec.default is MISSING and spec.default_factory is MISSING and name not in entry:
            reader.problem(label, name, "missing")
    if isinstance(values.get("conn_id"), str):
        reader.connections.append((label, values["conn_id"]))
    if "pickup" in values or "drop" in values:
        if values.get("pickup", "pickup") == values.get("drop", "drop"):
            reader.problem(label, "drop", "the same directory as pickup")
    if len(reader.problems) > before:
        return None
    return kind(**values)


def _value(
    reader: _Reader,
    kind: type[Counterparty],
    label: str,
    key: str,
    value: object,
    hint: Any,
    rules: Any,
) -> object | None:
    """``value`` checked against its setting's type and rules; ``None`` after a problem
    (or for an optional setting given empty)."""
    args = get_args(hint)
    if value is None and type(None) in args:
        return None
    base = next((a for a in args if a is not type(None)), hint)
    if base is bool:
        if not isinstance(value, bool):
            reader.problem(label, key, "must be true or false")
            return None
        return value
    if base is int:
        if not isinstance(value, int) or isinstance(value, bool):
            reader.problem(label, key, "must be a whole number")
            return None
        if "minimum" in rules and value < rules["minimum"]:
            reader.problem(label, key, f"must be at least {rules['minimum']}")
            return None
        if "maximum" in rules and value > rules["maximum"]:
            reader.problem(label, key, f"must be at most {rules['maximum']}")
            return None
        return value
    if not isinstance(value, str) or not value.strip():
        reader.problem(label, key, "must be a non-empty text")
        return None
    if key == "code" and not re.fullmatch(kind.code_pattern, value):
        reader.problem(label, key, f"does not match {kind.code_pattern} (ICD §1)")
        return None
    if key == "encoding":
        if value.upper() not in kind.encodings:
            allowed = " or ".join(kind.encodings)
            reader.problem(label, key, f"{value!r} is not an allowed encoding ({allowed})")
            return None
        return value.upper()
    if key == "conn_id" and not re.fullmatch(_CONN_ID, value):
        reader.problem(label, key, "is not an Airflow connection id")
        return None
    choices = rules.get("choices", ())
    if choices and value not in choices:
        reader.problem(label, key, f"{value!r} is not one of {', '.join(choices)}")
        return None
    return value


def _hub_settings(reader: _Reader, data: dict[Any, Any]) -> HubSettings | None:
    before = len(reader.problems)
    code = data.get("hub")
    if code is None:
        reader.problem("hub", "hub", "missing")
    elif not isinstance(code, str) or not re.fullmatch(r"B[0-9]{3}", code):
        reader.problem("hub", "hub", r"does not match B[0-9]{3} (ICD §1)")
    timezone = data.get("timezone", "Asia/Shanghai")
    if not isinstance(timezone, str) or not _is_time_zone(timezone):
        reader.problem("hub", "timezone", f"{timezone!r} is not a known time zone")
    ranges = _pan_ranges(reader, data.get("hub_pan_ranges"))
    holidays = _holidays(reader, data.get("holidays"))
    if len(reader.problems) > before:
        return None
    return HubSettings(code=str(code), timezone=str(timezone), pan_ranges=ranges, holidays=holidays)


def _holidays(reader: _Reader, raw: object) -> tuple[str, ...]:
    """Public holidays: a list of dates ``YYYYMMDD`` (quoted or not)."""
    if raw is None:
        return ()
    if not isinstance(raw, list):
        reader.problem("hub", "holidays", "must be a list of dates YYYYMMDD")
        return ()
    found: list[str] = []
    for i, value in enumerate(raw):
        day = str(value) if isinstance(value, (str, int)) and not isinstance(value, bool) else ""
        try:
            datetime.strptime(day, "%Y%m%d")
            ok = len(day) == 8
        except ValueError:
            ok = False
        if not ok:
            reader.problem("hub", f"holidays[{i}]", f"{value!r} is not a date YYYYMMDD")
        else:
            found.append(day)
    return tuple(sorted(set(found)))


def _is_time_zone(name: str) -> bool:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return False
    return True


def _pan_ranges(reader: _Reader, raw: object) -> tuple[HubPanRange, ...]:
    """The hub's PAN ranges: digit prefixes, 16–19 digits in all, room for a serial; no
    range's PANs may also be another's (a PAN is never issued twice, DOMAIN §1)."""
    if raw is None or raw == []:
        reader.problem("hub", "hub_pan_ranges", "missing: at least one range is needed")
        return ()
    if not isinstance(raw, list):
        reader.problem("hub", "hub_pan_ranges", "must be a list of ranges")
        return ()
    ranges: list[HubPanRange] = []
    for i, entry in enumerate(raw):
        where = f"hub_pan_ranges[{i}]"
        if not isinstance(entry, dict):
            reader.problem("hub", where, "must be a mapping with prefix and length")
            continue
        for key in entry:
            if key not in _PAN_RANGE_KEYS:
                reader.unknown("hub", f"{where}.{key}", [f"{where}.{k}" for k in _PAN_RANGE_KEYS])
        prefix, length = entry.get("prefix"), entry.get("length", 19)
        ok = True
        if prefix is None:
            reader.problem("hub", f"{where}.prefix", "missing")
            ok = False
        elif not isinstance(prefix, str) or not prefix.isdigit():
            reader.problem("hub", f"{where}.prefix", "must be digits in quotes")
            ok = False
        if not isinstance(length, int) or isinstance(length, bool) or not 16 <= length <= 19:
            reader.problem("hub", f"{where}.length", "must be a whole number from 16 to 19")
            ok = False
        if ok and len(str(prefix)) >= int(length) - 1:
            reader.problem("hub", f"{where}.prefix", "leaves no digit for the account serial")
            ok = False
        if ok:
            ranges.append(HubPanRange(str(prefix), int(length)))
    for i, a in enumerate(ranges):
        for b in ranges[i + 1 :]:
            if a.length == b.length and (
                a.prefix.startswith(b.prefix) or b.prefix.startswith(a.prefix)
            ):
                reader.problem(
                    "hub",
                    "hub_pan_ranges",
                    f"ranges {a.prefix} and {b.prefix} overlap: one PAN could be issued twice",
                )
    return tuple(ranges)


def _unique_codes(reader: _Reader, hub: object, coded: list[tuple[str, str, str]]) -> None:
    """Every party code once, and none equal to the hub's (ICD §1)."""
    seen: dict[str, str] = {}
    if isinstance(hub, str):
        seen[hub] = "the hub's own code"
    for place, label, code in coded:
        if code in seen:
            reader.problem(label, "code", f"{code} is also {seen[code]}")
        else:
            seen[code] = f"the code of {place}"


def _factory_references(reader: _Reader, data: dict[Any, Any]) -> None:
    """A bureau's cards go to the factory it names, or to the first factory: that factory
    must be configured, or its cards would never be sent."""
    entries = data.get("factories")
    factories = [
        e.get("code") for e in (entries if isinstance(entries, list) else []) if isinstance(e, dict)
    ]
    configured = ", ".join(str(c) for c in factories) or "none"
    bureaus = data.get("bureaus")
    for index, entry in enumerate(bureaus if isinstance(bureaus, list) else []):
        if not isinstance(entry, dict):
            continue
        label, named = _label(Bureau, index, entry, reader.repeated), entry.get("factory")
        if named is None and not factories:
            reader.problem(label, "factory", "no factory is configured to make its cards")
        elif isinstance(named, str) and named not in factories:
            reader.problem(
                label, "factory", f"{named} is not a configured factory (configured: {configured})"
            )


# --------------------------------------------------------------------------- connections


@dataclass(frozen=True)
class Resolution:
    """Where each conn_id was found (``environment`` or ``Airflow``) and, when Airflow was
    not asked or did not answer, why."""

    found: dict[str, str]
    airflow_note: str = ""


def resolve_connections(conn_ids: Iterable[str]) -> Resolution:
    """Which of ``conn_ids`` Airflow can resolve. A connection is *missing* when there is
    no non-empty ``AIRFLOW_CONN_<CONN_ID>`` environment variable for it and Airflow does not
    return it either. Airflow is asked only when it is installed and ``AIRFLOW_HOME`` is
    set (``Connection.get_connection_from_secrets``: its secrets backends, then its
    metadata database), only for the ids the environment lacks, and for at most
    ``AIRFLOW_TIMEOUT_SECONDS``; otherwise the environment alone decides. Neither the
    connection's type nor its server is checked."""
    ids = list(dict.fromkeys(conn_ids))
    found = {c: "environment" for c in ids if os.environ.get(AIRFLOW_CONN_PREFIX + c.upper())}
    rest = [c for c in ids if c not in found]
    if not rest:
        return Resolution(found)
    if importlib.util.find_spec("airflow") is None:
        return Resolution(found, "Airflow is not installed")
    if not os.environ.get("AIRFLOW_HOME"):
        return Resolution(found, "Airflow was not asked (AIRFLOW_HOME is not set)")
    answer: dict[str, Any] = {}

    def ask() -> None:
        try:
            answer["found"] = _airflow_lookup(rest)
        except Exception as exc:  # any failure of Airflow's own machinery is reported
            answer["error"] = type(exc).__name__

    worker = threading.Thread(target=ask, name="config-check-airflow", daemon=True)
    worker.start()
    worker.join(AIRFLOW_TIMEOUT_SECONDS)
    if "found" in answer:
        found.update({c: "Airflow" for c in answer["found"]})
        return Resolution(found)
    if "error" in answer:
        return Resolution(found, f"Airflow could not be asked ({answer['error']})")
    return Resolution(found, f"Airflow did not answer within {AIRFLOW_TIMEOUT_SECONDS:g} s")


def _airflow_lookup(conn_ids: list[str]) -> set[str]:
    """The ids Airflow's secrets backends and metadata database know."""
    from airflow.models.connection import Connection
    from airflow.sdk.exceptions import AirflowNotFoundException

    known: set[str] = set()
    for conn_id in conn_ids:
        try:
            Connection.get_connection_from_secrets(conn_id)
        except AirflowNotFoundException:
            continue
        known.add(conn_id)
    return known


# --------------------------------------------------------------------------- config check


@dataclass(frozen=True)
class ConfigCheck:
    """What ``sscard config check`` reports: every problem of the file and, when asked,
    of its connections; the settings when the file itself is sound."""

    file: str
    problems: tuple[ConfigProblem, ...]
    parties: Counterparties | None
    connections: dict[str, str] = field(default_factory=dict)
    connections_checked: bool = True

    def as_json(self) -> dict[str, Any]:
        p = self.parties
        return {
            "file": self.file,
            "problems": [x.as_json() for x in self.problems],
            "hub": None
            if p is None
            else {
                "code": p.hub,
                "timezone": p.timezone,
                "pan_ranges": [r._asdict() for r in p.pan_ranges],
            },
            "parties": []
            if p is None
            else [
                {"kind": x.kind, **asdict(x), "connection": self.connections.get(x.conn_id)}
                for x in p.all()
            ],
        }

    def render(self) -> str:
        if self.problems:
            lines = [str(x) for x in self.problems]
            n = len(self.problems)
            lines.append(f"{n} problem{'s' if n > 1 else ''} in {self.file}")
            return "\n".join(lines)
        assert self.parties is not None
        p = self.parties
        ranges = ", ".join(f"{r.prefix} ({r.length} digits)" for r in p.pan_ranges)
        lines = [
            f"{self.file}: no problems",
            f"hub {p.hub}, time zone {p.timezone}, PAN ranges {ranges}",
        ]
        common = set(Counterparty.settings())
        for x in p.all():
            extra = ", ".join(
                f"{k} {getattr(x, k)}"
                for k in x.settings()
                if k not in common and getattr(x, k) is not None
            )
            how = self.connections.get(x.conn_id, "not checked")
            lines.append(
                f"  {x.role:<15}{x.code:<9}{x.conn_id} ({how}), {x.encoding}, "
                f"{x.pickup}/{x.drop}" + (f", {extra}" if extra else "")
            )
        checked = "" if self.connections_checked else "; connections not checked"
        lines.append(f"{len(p.all())} parties configured{checked}")
        return "\n".join(lines)


def check_counterparties(
    path: Path | str | None = None, *, connections: bool = True
) -> ConfigCheck:
    """Every problem of the counterparty file and, with ``connections``, every conn_id
    Airflow cannot resolve (:func:`resolve_connections`). ``OSError`` when the file
    cannot be read."""
    file = config_path(path)
    parties, problems, conns = _read(file)
    if not connections:
        return ConfigCheck(str(file), tuple(problems), parties, {}, False)
    resolution = resolve_connections(c for _, c in conns)
    for party, conn_id in conns:
        if conn_id not in resolution.found:
            why = resolution.airflow_note or "Airflow does not know it"
            problems.append(
                ConfigProblem(
                    str(file),
                    party,
                    "conn_id",
                    f"connection {conn_id} is missing: no {AIRFLOW_CONN_PREFIX}"
                    f"{conn_id.upper()} environment variable, and {why}",
                )
            )
    return ConfigCheck(str(file), tuple(problems), parties, resolution.found)


# --------------------------------------------------------------------------- environment


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
        bureaus={b.code: (b.encoding, b.max_forward_days) for b in parties.bureaus},
    )
