"""The settings of one SFTP counterparty connection, shared by :mod:`transport.sftp`
(paramiko) and :mod:`transport.fetch` (asyncssh, in a process of its own), so neither
adapter imports the other for them (ICD §2: host keys are always pinned)."""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import paramiko

from transport.errors import AuthenticationError, HostKeyError, TransportError


class AirflowConnection(Protocol):
    """The attributes of ``airflow.models.Connection`` that ``from_airflow`` reads."""

    host: str | None
    port: int | None
    login: str | None

    @property
    def extra_dejson(self) -> dict[str, Any]: ...


def parse_host_key(line: str) -> paramiko.PKey:
    """A pinned host key written ``TYPE BASE64 [comment]`` (``ssh-ed25519 AAAA…``)."""
    fields = line.split()
    if len(fields) < 2:
        raise HostKeyError("host_key must be written 'TYPE BASE64', e.g. 'ssh-ed25519 AAAA…'")
    try:
        return paramiko.PKey.from_type_string(fields[0], base64.b64decode(fields[1]))
    except (binascii.Error, ValueError, paramiko.SSHException) as exc:
        raise HostKeyError(f"host_key of type {fields[0]!r} cannot be read") from exc


@dataclass(frozen=True)
class SftpSettings:
    """One counterparty connection. ``base_dir`` is the remote directory every path is
    relative to (``""``: the login directory). Waits between connection attempts grow
    ``retry_wait``, ×2, ×4 (0.5 s, 1 s, 2 s by default)."""

    host: str
    username: str
    port: int = 22
    key_file: Path | None = None
    private_key: str | None = field(default=None, repr=False)
    passphrase: str | None = field(default=None, repr=False)
    host_key: str | None = None
    known_hosts: Path | None = None
    base_dir: str = ""
    timeout: float = 10.0
    connect_attempts: int = 3
    retry_wait: float = 0.5

    def __post_init__(self) -> None:
        if not self.host_key and not self.known_hosts:
            raise HostKeyError(
                f"no host_key or known_hosts configured for {self.host}:{self.port}; "
                "host keys are always verified"
            )
        if self.host_key:
            parse_host_key(self.host_key)
        if not self.key_file and not self.private_key:
            raise AuthenticationError(
                f"no key_file or private_key configured for {self.username}@{self.host}"
            )
        if self.connect_attempts < 1:
            raise ValueError("connect_attempts must be at least 1")

    @classmethod
    def from_airflow(cls, conn: AirflowConnection) -> SftpSettings:
        """Settings from an Airflow SFTP connection: extras ``key_file`` or ``private_key``
        (with ``private_key_passphrase``), ``host_key`` and/or ``known_hosts``,
        ``base_dir``, ``conn_timeout``. ``no_host_key_check`` is never honoured."""
        extra = dict(conn.extra_dejson or {})
        if not conn.host:
            raise TransportError("the SFTP connection has no host")
        if not conn.login:
            raise AuthenticationError(f"the SFTP connection to {conn.host} has no login")
        key_file = extra.get("key_file")
        known_hosts = extra.get("known_hosts")
        timeout = extra.get("conn_timeout", extra.get("timeout"))
        return cls(
            host=conn.host,
            port=int(conn.port or 22),
            username=conn.login,
            key_file=Path(key_file) if key_file else None,
            private_key=extra.get("private_key") or None,
            passphrase=extra.get("private_key_passphrase") or None,
            host_key=extra.get("host_key") or None,
            known_hosts=Path(known_hosts) if known_hosts else None,
            base_dir=extra.get("base_dir") or "",
            timeout=float(timeout) if timeout is not None else 10.0,
        )

    @property
    def host_key_name(self) -> str:
        """The host's name in known_hosts: ``host``, or ``[host]:port`` off port 22."""
        return self.host if self.port == 22 else f"[{self.host}]:{self.port}"
