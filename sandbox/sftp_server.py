"""An SFTP server inside the Python process, for the demo: no system services needed.

Each login is confined to ``root/<username>`` (created on login), so every counterparty
sees only its own ``pickup`` and ``drop`` tree (ICD §2). Public-key authentication only,
with one generated ed25519 client key; the ed25519 host key is generated once and kept
under ``state_dir/keys`` so the Airflow connection stays valid across restarts.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import asyncssh

from schemas.files import SAFE_NAME

log = logging.getLogger(__name__)

HOST_KEY_FILE = "ssh_host_ed25519_key"
CLIENT_KEY_FILE = "client_ed25519"


def _write_private(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)


def load_or_create_key(path: Path) -> asyncssh.SSHKey:
    """The ed25519 key at ``path`` (OpenSSH format), generated with its ``.pub`` if missing."""
    if path.exists():
        return asyncssh.read_private_key(path)
    key = asyncssh.generate_private_key("ssh-ed25519")
    path.parent.mkdir(parents=True, exist_ok=True)
    _write_private(path, key.export_private_key())
    path.with_name(path.name + ".pub").write_bytes(key.export_public_key())
    return key


def key_line(key: asyncssh.SSHKey) -> str:
    """``ssh-ed25519 AAAA…``: the public key without a comment."""
    return " ".join(key.export_public_key().decode().split()[:2])


def _safe_username(username: str) -> bool:
    return bool(SAFE_NAME.fullmatch(username)) and username not in (".", "..")


class _Server(asyncssh.SSHServer):
    def __init__(self, owner: EmbeddedSftpServer) -> None:
        self._owner = owner
        self._conn: asyncssh.SSHServerConnection | None = None

    def connection_made(self, conn: asyncssh.SSHServerConnection) -> None:
        self._conn = conn
        self._owner._connections.add(conn)

    def connection_lost(self, exc: Exception | None) -> None:
        if self._conn is not None:
            self._owner._connections.discard(self._conn)

    def begin_auth(self, username: str) -> bool:
        return True

    def password_auth_supported(self) -> bool:
        return False

    def kbdint_auth_supported(self) -> bool:
        return False

    def public_key_auth_supported(self) -> bool:
        return True

    def validate_public_key(self, username: str, key: asyncssh.SSHKey) -> bool:
        return _safe_username(username) and key.public_data == self._owner._client_public_data


class EmbeddedSftpServer:
    """An asyncssh SFTP server on ``host:port`` (0: any free port), its event loop in a
    daemon thread. ``start()`` returns once it listens; ``stop()`` closes it and every
    open connection.

    ``sftp_class`` serves each session; a test gives a subclass of its own to make the
    server misbehave (stall, list names no file system holds) as a counterparty might."""

    sftp_class: type[asyncssh.SFTPServer] = asyncssh.SFTPServer

    def __init__(
        self,
        root: Path,
        host: str = "127.0.0.1",
        port: int = 0,
        state_dir: Path | None = None,
    ) -> None:
        self.root = Path(root)
        self.host = host
        self._requested_port = port
        self.state_dir = (
            Path(state_dir) if state_dir else self.root.with_name(self.root.name + "-sshd")
        )
        keys = self.state_dir / "keys"
        self._host_key = load_or_create_key(keys / HOST_KEY_FILE)
        self._client_key_path = keys / CLIENT_KEY_FILE
        self._client_public_data = load_or_create_key(self._client_key_path).public_data
        self._connections: set[asyncssh.SSHServerConnection] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._acceptor: asyncssh.SSHAcceptor | None = None

    @property
    def port(self) -> int:
        if self._acceptor is None:
            raise RuntimeError("the SFTP server is not started")
        return self._acceptor.get_port()

    @property
    def host_key_line(self) -> str:
        return key_line(self._host_key)

    @property
    def client_key_path(self) -> Path:
        return self._client_key_path

    def connection(self, username: str, base_dir: str = "") -> dict[str, Any]:
        """The Airflow connection (JSON form) for one counterparty login."""
        return {
            "conn_type": "sftp",
            "host": self.host,
            "port": self.port,
            "login": username,
            "extra": {
                "key_file": str(self.client_key_path),
                "host_key": self.host_key_line,
                "base_dir": base_dir,
            },
        }

    def _sftp_factory(self, chan: asyncssh.SSHServerChannel[Any]) -> asyncssh.SFTPServer:
        username = chan.get_extra_info("username")
        home = self.root / username
        home.mkdir(parents=True, exist_ok=True)
        log.info("SFTP session for %s", username)
        return self.sftp_class(chan, chroot=os.fsencode(home))

    async def _listen(self) -> asyncssh.SSHAcceptor:
        return await asyncssh.listen(
            self.host,
            self._requested_port,
            server_factory=lambda: _Server(self),
            server_host_keys=[self._host_key],
            sftp_factory=self._sftp_factory,
            allow_scp=False,
            password_auth=False,
            kbdint_auth=False,
            gss_host=None,
        )

    async def _close(self) -> None:
        if self._acceptor is not None:
            self._acceptor.close()
            await self._acceptor.wait_closed()
        for conn in list(self._connections):
            conn.close()
            await conn.wait_closed()

    @staticmethod
    def _run(loop: asyncio.AbstractEventLoop) -> None:
        asyncio.set_event_loop(loop)
        try:
            loop.run_forever()
            pending = asyncio.all_tasks(loop)
            for task in pending:
                task.cancel()
            loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
            loop.run_until_complete(loop.shutdown_asyncgens())
        finally:
            loop.close()

    def start(self) -> Self:
        if self._thread is not None:
            return self
        self.root.mkdir(parents=True, exist_ok=True)
        loop = asyncio.new_event_loop()
        thread = threading.Thread(target=self._run, args=(loop,), name="embedded-sftp", daemon=True)
        thread.start()
        self._loop, self._thread = loop, thread
        try:
            self._acceptor = asyncio.run_coroutine_threadsafe(self._listen(), loop).result(10)
        except BaseException:
            self._shutdown_loop()
            raise
        log.info(
            "embedded SFTP server listening on %s:%d, serving %s", self.host, self.port, self.root
        )
        return self

    def stop(self) -> None:
        if self._loop is None:
            return
        try:
            asyncio.run_coroutine_threadsafe(self._close(), self._loop).result(10)
        finally:
            self._shutdown_loop()

    def _shutdown_loop(self) -> None:
        loop, thread = self._loop, self._thread
        self._loop = self._thread = None
        self._acceptor = None
        if loop is not None:
            loop.call_soon_threadsafe(loop.stop)
        if thread is not None:
            thread.join(10)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
