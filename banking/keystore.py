"""Where the hub's PIN keys live (DOMAIN §4, ICD §5.9): outside the database, behind one
interface, rotated by id.

- A **zone key** is the AES-256 key a bank channel (party code, e.g. ``C01``) seals its
  ``pin_block`` under; the block names it by ``key_id`` (0–255). Rotation: the channel's
  new key appears beside the old under a new id; blocks under either id open until the old
  one is removed.
- A **PIN verification key** (PVK) derives the verification value the hub keeps instead of
  a PIN. Values are stored with the PVK's id. Rotation: a new id becomes *current* (new
  values are made under it) while values under older ids still verify.

The embedded default reads keys from files (``SSCARD_KEY_DIR``) and the environment::

    $SSCARD_KEY_DIR/zone/<CHANNEL>/<key_id>.key   64 hex characters (32 bytes)
    $SSCARD_KEY_DIR/pvk/<PVK_ID>.key              64 hex characters
    $SSCARD_KEY_DIR/pvk/current                   the current PVK id

    SSCARD_ZONE_KEY_<CHANNEL>_<KEYID>=<64 hex>    e.g. SSCARD_ZONE_KEY_C01_1
    SSCARD_PVK_<PVK_ID>=<64 hex>                  e.g. SSCARD_PVK_PVK1
    SSCARD_PVK_CURRENT=<PVK_ID>

When both are configured the environment wins, key by key and for the current PVK id: an
operator can override or add one key (a secret injected by the container platform)
without touching the directory. Channels are party codes (``[A-Z][0-9]{2,6}``, ICD §3),
zone key ids decimal without leading zeros, PVK ids ``[A-Za-z0-9]{1,20}``.

Production plugs a hardware security module or a cloud KMS behind the same
:class:`KeyStore` protocol (the hub then asks the HSM to open a block instead of holding
the key; the protocol's callers do not change).

Keys are read when first asked for and kept while their file or variable is unchanged;
every lookup checks it again, so a key added by rotation is used, and a key removed (say,
compromised) or replaced is refused or replaced from the next lookup on, without a
restart. Key material never appears
in a repr, a log line or an exception: a malformed key names its file or variable only.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Protocol

KEY_BYTES = 32
SANDBOX_ZONE_KEY_ID = 1
SANDBOX_PVK_ID = "PVK1"

_CHANNEL = re.compile(r"[A-Z][0-9]{2,6}")
_PVK_ID = re.compile(r"[A-Za-z0-9]{1,20}")
_HEX_KEY = re.compile(r"[0-9a-fA-F]{64}")


class KeyStoreError(Exception):
    """A key or the current PVK id is configured but unusable (malformed, unreadable, or
    no current PVK). The message names the file or variable, never its content."""


class KeyStore(Protocol):
    """The hub's keys (module docstring): files and environment here, an HSM or KMS in
    production."""

    def zone_key(self, channel: str, key_id: int) -> bytes | None:
        """The 32-byte AES-256 zone key ``key_id`` (0–255) of ``channel``; None if unknown."""
        ...

    def verification_key(self) -> tuple[str, bytes]:
        """The current PVK's id and key, for new verification values."""
        ...

    def verification_key_by_id(self, key_id: str) -> bytes | None:
        """The PVK ``key_id`` (current or older), to check a stored value; None if unknown."""
        ...


def _valid_zone_ref(channel: str, key_id: int) -> bool:
    return bool(_CHANNEL.fullmatch(channel)) and 0 <= key_id <= 255


def _parse_key(text: str, where: str) -> bytes:
    value = text.strip()
    if not _HEX_KEY.fullmatch(value):
        raise KeyStoreError(f"{where}: not a 256-bit key (64 hex characters)")
    return bytes.fromhex(value)


def _parse_pvk_id(text: str, where: str) -> str:
    value = text.strip()
    if not _PVK_ID.fullmatch(value):
        raise KeyStoreError(f"{where}: not a PVK id ([A-Za-z0-9]{{1,20}})")
    return value


class _Layer(KeyStore, Protocol):
    def current_pvk_id(self) -> str | None:
        """The current PVK id this store names, or None when it names none."""
        ...


def _current(store: _Layer, source: str) -> tuple[str, bytes]:
    pvk_id = store.current_pvk_id()
    if pvk_id is None:
        raise KeyStoreError(f"no current PIN verification key ({source})")
    key = store.verification_key_by_id(pvk_id)
    if key is None:
        raise KeyStoreError(f"the current PIN verification key {pvk_id} is missing ({source})")
    return pvk_id, key


class FileKeyStore:
    """Keys in a directory (layout in the module docstring). Key files should be mode 0600
    and owned by the hub's user."""

    def __init__(self, directory: Path | str) -> None:
        self.directory = Path(directory)
        self._keys: dict[Path, tuple[tuple[int, int, int, int], bytes]] = {}

    def __repr__(self) -> str:
        return f"FileKeyStore({str(self.directory)!r})"

    def _read(self, path: Path) -> str | None:
        try:
            return path.read_text(encoding="ascii")
        except FileNotFoundError:
            return None
        except (OSError, UnicodeDecodeError) as exc:
            raise KeyStoreError(f"{path}: unreadable ({type(exc).__name__})") from None

    def _key(self, path: Path) -> bytes | None:
        """The key in ``path``, read again when the file is another (inode, size, times)
        and forgotten when it is gone, so a key removed or replaced is refused or used
        from the next lookup on; an unchanged file costs a ``stat``."""
        try:
            st = path.stat()
        except FileNotFoundError:
            self._keys.pop(path, None)
            return None
        except OSError as exc:
            raise KeyStoreError(f"{path}: unreadable ({type(exc).__name__})") from None
        stamp = (st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
        cached = self._keys.get(path)
        if cached is not None and cached[0] == stamp:
            return cached[1]
        text = self._read(path)
        if text is None:
            self._keys.pop(path, None)
            return None
        key = _parse_key(text, str(path))
        self._keys[path] = (stamp, key)
        return key

    def zone_key(self, channel: str, key_id: int) -> bytes | None:
        if not _valid_zone_ref(channel, key_id):
            return None
        return self._key(self.directory / "zone" / channel / f"{key_id}.key")

    def verification_key_by_id(self, key_id: str) -> bytes | None:
        if not _PVK_ID.fullmatch(key_id):
            return None
        return self._key(self.directory / "pvk" / f"{key_id}.key")

    def current_pvk_id(self) -> str | None:
        path = self.directory / "pvk" / "current"
        text = self._read(path)
        return None if text is None else _parse_pvk_id(text, str(path))

    def verification_key(self) -> tuple[str, bytes]:
        return _current(self, str(self.directory / "pvk" / "current"))


class EnvKeyStore:
    """Keys in environment variables (names in the module docstring). ``environ``
    defaults to the process environment, read at each lookup."""

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        self._environ = os.environ if environ is None else environ
        self._keys: dict[str, tuple[str, bytes]] = {}

    def __repr__(self) -> str:
        return "EnvKeyStore()"

    def _key(self, name: str) -> bytes | None:
        """The key in variable ``name`` as it is now: parsed again when its value changed,
        forgotten when it is unset."""
        text = self._environ.get(name)
        if text is None:
            self._keys.pop(name, None)
            return None
        cached = self._keys.get(name)
        if cached is not None and cached[0] == text:
            return cached[1]
        key = _parse_key(text, name)
        self._keys[name] = (text, key)
        return key

    def zone_key(self, channel: str, key_id: int) -> bytes | None:
        if not _valid_zone_ref(channel, key_id):
            return None
        return self._key(f"SSCARD_ZONE_KEY_{channel}_{key_id}")

    def verification_key_by_id(self, key_id: str) -> bytes | None:
        if not _PVK_ID.fullmatch(key_id) or key_id == "CURRENT":
            return None
        return self._key(f"SSCARD_PVK_{key_id}")

    def current_pvk_id(self) -> str | None:
        text = self._environ.get("SSCARD_PVK_CURRENT")
        return None if text is None else _parse_pvk_id(text, "SSCARD_PVK_CURRENT")

    def verification_key(self) -> tuple[str, bytes]:
        return _current(self, "SSCARD_PVK_CURRENT")


class MemoryKeyStore:
    """Keys given as dicts, for tests and the sandbox: ``zone_keys[(channel, key_id)]``,
    ``pvks[pvk_id]`` and the ``current`` PVK id."""

    def __init__(
        self,
        zone_keys: Mapping[tuple[str, int], bytes],
        pvks: Mapping[str, bytes],
        current: str | None = None,
    ) -> None:
        for (channel, key_id), key in zone_keys.items():
            if len(key) != KEY_BYTES:
                raise KeyStoreError(f"zone key {channel}/{key_id}: not 32 bytes")
        for pvk_id, key in pvks.items():
            if len(key) != KEY_BYTES:
                raise KeyStoreError(f"PVK {pvk_id}: not 32 bytes")
        self._zone = dict(zone_keys)
        self._pvk = dict(pvks)
        self._current = current

    def __repr__(self) -> str:
        zones = sorted(f"{c}/{k}" for c, k in self._zone)
        return f"MemoryKeyStore(zone_keys={zones}, pvks={sorted(self._pvk)}, current={self._current!r})"

    def zone_key(self, channel: str, key_id: int) -> bytes | None:
        return self._zone.get((channel, key_id))

    def verification_key_by_id(self, key_id: str) -> bytes | None:
        return self._pvk.get(key_id)

    def current_pvk_id(self) -> str | None:
        return self._current

    def verification_key(self) -> tuple[str, bytes]:
        return _current(self, "MemoryKeyStore")


class LayeredKeyStore:
    """Several stores asked in order: the first that knows a key (or names a current PVK)
    answers. :func:`key_store` puts the environment over the key directory."""

    def __init__(self, *layers: _Layer) -> None:
        self.layers = layers

    def __repr__(self) -> str:
        return f"LayeredKeyStore({', '.join(map(repr, self.layers))})"

    def zone_key(self, channel: str, key_id: int) -> bytes | None:
        for layer in self.layers:
            key = layer.zone_key(channel, key_id)
            if key is not None:
                return key
        return None

    def verification_key_by_id(self, key_id: str) -> bytes | None:
        for layer in self.layers:
            key = layer.verification_key_by_id(key_id)
            if key is not None:
                return key
        return None

    def current_pvk_id(self) -> str | None:
        for layer in self.layers:
            pvk_id = layer.current_pvk_id()
            if pvk_id is not None:
                return pvk_id
        return None

    def verification_key(self) -> tuple[str, bytes]:
        return _current(self, " over ".join(map(repr, self.layers)))


def key_store(environ: Mapping[str, str] | None = None) -> KeyStore:
    """The configured key store: the environment over ``$SSCARD_KEY_DIR`` when that is
    set, else the environment alone."""
    env = os.environ if environ is None else environ
    directory = env.get("SSCARD_KEY_DIR")
    if directory:
        return LayeredKeyStore(EnvKeyStore(env), FileKeyStore(directory))
    return EnvKeyStore(env)


def _create_secret(path: Path, text: str) -> None:
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, text.encode("ascii"))
    finally:
        os.close(fd)


def write_sandbox_keys(directory: Path, channels: Iterable[str]) -> None:
    """Random keys for the sandbox in :class:`FileKeyStore` layout: zone key id 1 of each
    channel and PVK ``PVK1`` as current. Files (mode 0600) and directories (0700) that
    already exist are left alone, so a second run changes nothing."""
    directory = Path(directory)
    pvk_dir = directory / "pvk"
    pvk_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    _create_secret(pvk_dir / f"{SANDBOX_PVK_ID}.key", os.urandom(KEY_BYTES).hex() + "\n")
    _create_secret(pvk_dir / "current", SANDBOX_PVK_ID + "\n")
    for channel in channels:
        if not _CHANNEL.fullmatch(channel):
            raise ValueError(f"not a channel party code: {channel!r}")
        zone_dir = directory / "zone" / channel
        zone_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        _create_secret(zone_dir / f"{SANDBOX_ZONE_KEY_ID}.key", os.urandom(KEY_BYTES).hex() + "\n")
