"""``Remote`` over SSH-2 SFTP with paramiko (ICD §2).

Public-key authentication only; the server's host key is pinned (an explicit key or a
known_hosts file) and an unknown or changed key is a ``HostKeyError``: never
auto-accepted, never retried. Connecting is retried only on ``TransientTransportError``.
"""

from __future__ import annotations

import io
import logging
import posixpath
import stat
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import ClassVar, NoReturn, Self

import paramiko
from paramiko.message import Message
from paramiko.sftp import CMD_CLOSE, CMD_HANDLE, CMD_NAME, CMD_OPENDIR, CMD_READDIR
from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception_type,
    stop_after_attempt,
    wait_exponential,
)

from transport.errors import (
    AuthenticationError,
    HostKeyError,
    TransientTransportError,
    TransportError,
)
from transport.remote import (
    BaseRemote,
    EntryKind,
    RemoteEntry,
    copy_to_file,
    decode_name,
    digest_of,
    sorted_entries,
    split_path,
)
from transport.settings import AirflowConnection, SftpSettings, parse_host_key

__all__ = [
    "AirflowConnection",
    "SftpRemote",
    "SftpSettings",
    "load_private_key",
    "parse_host_key",
]

log = logging.getLogger(__name__)


def entry_kind(mode: int | None) -> EntryKind:
    """The kind of a listed entry from its ``st_mode`` (None: the server gave none)."""
    if mode is None:
        return "other"
    if stat.S_ISREG(mode):
        return "file"
    if stat.S_ISDIR(mode):
        return "dir"
    return "other"


def read_dir(sftp: paramiko.SFTPClient, remote: str) -> list[RemoteEntry]:
    """Every entry of the directory ``remote`` with its name as the server sent it.

    paramiko's ``listdir_attr`` decodes each name as strict UTF-8, so one name that is not
    UTF-8 makes the whole listing raise and hides the files beside it. This reads the
    SFTP NAME responses itself (SSH_FXP_OPENDIR, READDIR until EOF, CLOSE; SFTP v3
    §6.7), through paramiko's request machinery, and decodes each name with
    :func:`~transport.remote.decode_name`. ``.`` and ``..`` listed as directories (the
    directory and its parent, as every server lists them) are left out; a ``.`` or
    ``..`` listed as anything else is a hostile server's and is kept, not addressable.
    """
    # paramiko's own request machinery (status codes become FileNotFoundError, EOFError…)
    request: Callable[..., tuple[int, Message]] = sftp._request  # type: ignore[attr-defined]
    attributes: Callable[[Message], paramiko.SFTPAttributes] = paramiko.SFTPAttributes._from_msg  # type: ignore[attr-defined]
    kind, msg = request(CMD_OPENDIR, remote)
    if kind != CMD_HANDLE:
        raise paramiko.SFTPError("Expected handle")
    handle = msg.get_binary()
    found: list[RemoteEntry] = []
    try:
        while True:
            try:
                kind, msg = request(CMD_READDIR, handle)
            except EOFError:  # SSH_FX_EOF: the listing is complete
                break
            if kind != CMD_NAME:
                raise paramiko.SFTPError("Expected name response")
            for _ in range(msg.get_int()):
                name = decode_name(msg.get_string())
                msg.get_string()  # longname: display text, may hold the raw name too
                attrs = attributes(msg)
                entry_type = entry_kind(attrs.st_mode)
                if name in (".", "..") and entry_type == "dir":
                    continue
                size = (attrs.st_size or 0) if entry_type == "file" else 0
                found.append(RemoteEntry(name, size, entry_type))
    finally:
        request(CMD_CLOSE, handle)
    return sorted_entries(found)


def load_private_key(settings: SftpSettings) -> paramiko.PKey:
    """The client key, from ``key_file`` or from the PEM/OpenSSH text in ``private_key``."""
    try:
        if settings.key_file:
            return paramiko.PKey.from_path(settings.key_file, password=settings.passphrase)
        assert settings.private_key is not None
        for key_class in (paramiko.Ed25519Key, paramiko.ECDSAKey, paramiko.RSAKey):
            try:
                return key_class.from_private_key(
                    io.StringIO(settings.private_key), password=settings.passphrase
                )
            except paramiko.SSHException:
                continue
    except (OSError, ValueError, paramiko.SSHException) as exc:
        raise AuthenticationError(f"the private key for {settings.host} cannot be read") from exc
    raise AuthenticationError(f"the private_key for {settings.host} is of no supported type")


class _RejectUnknownHost(paramiko.RejectPolicy):
    """paramiko's RejectPolicy, raising our typed error for a host with no known key."""

    def missing_host_key(
        self, client: paramiko.SSHClient, hostname: str, key: paramiko.PKey
    ) -> NoReturn:
        raise HostKeyError(
            f"host key for {hostname} is not known ({key.get_name()} "
            f"{key.fingerprint}); refusing to connect"
        )


class SftpRemote(BaseRemote):
    """A counterparty's SFTP tree. Connects on first use (or on ``with``); after a
    connection failure during an operation the next call connects again.

    ``attempts`` counts connection attempts, so a caller can see what was retried.
    """

    _log: ClassVar[logging.Logger] = log
    #: files of this size or more are downloaded by a process of their own (``download``)
    apart_from: int = 8 << 20

    def __init__(self, settings: SftpSettings) -> None:
        self.settings = settings
        self.attempts = 0
        self._pkey: paramiko.PKey | None = None
        self._client: paramiko.SSHClient | None = None
        self._sftp: paramiko.SFTPClient | None = None

    def __enter__(self) -> Self:
        self.connect()
        return self

    def connect(self) -> None:
        """Open the SFTP session, retrying only transient failures."""
        if self._sftp is not None:
            return
        s = self.settings
        retrying = Retrying(
            retry=retry_if_exception_type(TransientTransportError),
            stop=stop_after_attempt(s.connect_attempts),
            wait=wait_exponential(multiplier=s.retry_wait, min=s.retry_wait, max=s.retry_wait * 4),
            before_sleep=self._before_retry,
            reraise=True,
        )
        retrying(self._connect_once)

    def _before_retry(self, state: RetryCallState) -> None:
        s = self.settings
        exc = state.outcome.exception() if state.outcome else None
        wait = state.next_action.sleep if state.next_action else 0.0
        log.warning(
            "connecting to %s@%s:%d failed (attempt %d: %s); retrying in %.2f s",
            s.username,
            s.host,
            s.port,
            state.attempt_number,
            exc.__cause__ if exc and exc.__cause__ else exc,
            wait,
        )

    def _connect_once(self) -> None:
        s = self.settings
        self.attempts += 1
        if self._pkey is None:
            self._pkey = load_private_key(s)
        client = paramiko.SSHClient()
        client.set_missing_host_key_policy(_RejectUnknownHost())
        try:
            if s.known_hosts:
                try:
                    client.load_system_host_keys(str(s.known_hosts))
                except OSError as exc:
                    raise HostKeyError(f"known_hosts {s.known_hosts} cannot be read") from exc
            if s.host_key:
                key = parse_host_key(s.host_key)
                client.get_host_keys().add(s.host_key_name, key.get_name(), key)
            client.connect(
                s.host,
                port=s.port,
                username=s.username,
                pkey=self._pkey,
                timeout=s.timeout,
                banner_timeout=s.timeout,
                auth_timeout=s.timeout,
                channel_timeout=s.timeout,
                look_for_keys=False,
                allow_agent=False,
            )
            sftp = client.open_sftp()
            sftp.get_channel().settimeout(s.timeout)  # type: ignore[union-attr]
        except TransportError:
            client.close()
            raise
        except paramiko.BadHostKeyException as exc:
            client.close()
            raise HostKeyError(
                f"host key for {s.host_key_name} has changed: got {exc.key.get_name()} "
                f"{exc.key.fingerprint}; refusing to connect"
            ) from exc
        except paramiko.AuthenticationException as exc:
            client.close()
            raise AuthenticationError(
                f"{s.username}@{s.host_key_name} refused our public key"
            ) from exc
        except paramiko.ssh_exception.IncompatiblePeer as exc:
            client.close()
            raise TransportError(f"no common SSH algorithms with {s.host_key_name}") from exc
        except (paramiko.SSHException, OSError, EOFError) as exc:
            client.close()
            raise TransientTransportError(
                f"cannot connect to {s.username}@{s.host_key_name}: {exc}"
            ) from exc
        self._client, self._sftp = client, sftp
        log.info("connected to %s@%s (base_dir %r)", s.username, s.host_key_name, s.base_dir)

    def close(self) -> None:
        sftp, client = self._sftp, self._client
        self._sftp = self._client = None
        if sftp is not None:
            sftp.close()
        if client is not None:
            client.close()

    @contextmanager
    def _session(self) -> Iterator[paramiko.SFTPClient]:
        """The open SFTP session; a connection lost mid-operation becomes a
        ``TransientTransportError`` and the next call reconnects."""
        self.connect()
        assert self._sftp is not None
        try:
            yield self._sftp
        except (EOFError, paramiko.SSHException) as exc:
            self._lost(exc)
        except OSError as exc:
            if isinstance(exc, TimeoutError | ConnectionError) or not self._alive():
                self._lost(exc)
            raise

    def _alive(self) -> bool:
        transport = self._client.get_transport() if self._client else None
        return transport is not None and transport.is_active()

    def _lost(self, exc: BaseException) -> NoReturn:
        self.close()
        s = self.settings
        raise TransientTransportError(f"SFTP session to {s.host_key_name} failed: {exc}") from exc

    def _remote(self, path: str, *, allow_base: bool = False) -> str:
        parts = split_path(path, allow_base=allow_base)
        base = self.settings.base_dir
        if base:
            return posixpath.join(base, *parts)
        return posixpath.join(*parts) if parts else "."

    def list_dir(self, path: str) -> list[RemoteEntry]:
        remote = self._remote(path, allow_base=True)
        with self._session() as sftp:
            try:
                return read_dir(sftp, remote)
            except FileNotFoundError:
                return []

    def read_bytes(self, path: str, limit: int | None = None) -> bytes:
        remote = self._remote(path)
        if limit is not None:
            with self._session() as sftp, sftp.open(remote, "rb") as fh:
                return bytes(fh.read(limit + 1))
        buf = io.BytesIO()
        with self._session() as sftp:
            sftp.getfo(remote, buf)
        return buf.getvalue()

    def download(self, path: str, local_path: Path, limit: int | None = None) -> tuple[int, str]:
        """A file of at least :attr:`apart_from` bytes to read is downloaded apart
        (:meth:`download_apart`): paramiko's pipelined reads lose their pipeline when the
        machine is busy (:mod:`transport.fetch`), and a batch of a few hundred thousand
        lines would then take minutes. A smaller one is read here with paramiko's
        pipelined reads, written to ``local_path`` as they arrive. (Capping paramiko's
        requests in flight makes it poll: 5 MiB/s instead of 118 MiB/s on loopback.) With
        a ``limit``, no more than ``limit + 1`` bytes are asked for, whatever size the
        server states."""
        remote = self._remote(path)
        with self._session() as sftp:
            size = sftp.stat(remote).st_size or 0
        wanted = size if limit is None else min(size, limit + 1)
        if wanted >= self.apart_from:
            return self.download_apart(path, local_path, limit)
        with self._session() as sftp, sftp.open(remote, "rb") as src:
            src.prefetch(wanted)
            return copy_to_file(src, local_path, limit)

    def download_apart(
        self, path: str, local_path: Path, limit: int | None = None
    ) -> tuple[int, str]:
        """``download`` in a process of its own, over a connection of its own, by asyncssh
        (:mod:`transport.fetch`: paramiko's pipelined reads stall when the machine is busy).
        Path checks, host key checks, ``limit`` and error types are those of ``download``."""
        from transport.fetch import download_apart

        return download_apart(self.settings, self._remote(path), local_path, limit)

    def checksum(self, path: str) -> tuple[int, str]:
        """As ``download``: a file of :attr:`apart_from` bytes or more is read by a
        process of its own (:func:`transport.fetch.checksum_apart`), a smaller one here
        with paramiko's pipelined reads; the blocks are hashed as they arrive and dropped."""
        remote = self._remote(path)
        with self._session() as sftp:
            size = sftp.stat(remote).st_size or 0
        if size >= self.apart_from:
            from transport.fetch import checksum_apart

            return checksum_apart(self.settings, remote)
        with self._session() as sftp, sftp.open(remote, "rb") as src:
            src.prefetch(size)
            return digest_of(src)

    def exists(self, path: str) -> bool:
        remote = self._remote(path, allow_base=True)
        with self._session() as sftp:
            try:
                sftp.stat(remote)
            except FileNotFoundError:
                return False
        return True

    def makedirs(self, path: str) -> None:
        parts = split_path(path, allow_base=True)
        for depth in range(1, len(parts) + 1):
            prefix = "/".join(parts[:depth])
            if self.exists(prefix):
                continue
            remote = self._remote(prefix)
            with self._session() as sftp:
                try:
                    sftp.mkdir(remote)
                except OSError:
                    if not self.exists(prefix):
                        raise

    def remove(self, path: str) -> None:
        remote = self._remote(path)
        with self._session() as sftp:
            sftp.remove(remote)

    def _upload(
        self, path: str, data: bytes, before_rename: Callable[[], None] | None = None
    ) -> None:
        remote = self._remote(path)
        with self._session() as sftp:
            sftp.putfo(io.BytesIO(data), remote + ".part", file_size=len(data), confirm=True)
        if before_rename is not None:
            before_rename()
        with self._session() as sftp:
            sftp.posix_rename(remote + ".part", remote)

    def _rename_no_replace(self, src: str, dst: str) -> bool:
        """SFTP's plain rename never replaces an existing entry (OpenSSH: link + unlink for
        a file, a rename only when nothing has the name for a directory)."""
        remote_src, remote_dst = self._remote(src), self._remote(dst)
        with self._session() as sftp:
            try:
                sftp.rename(remote_src, remote_dst)
            except FileNotFoundError:
                raise
            except OSError:
                if self.exists(dst):
                    return False
                raise
        return True
