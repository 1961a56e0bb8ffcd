"""Download one file over SFTP in a process of its own.

    python -m transport.fetch < REQUEST

Intake downloads an APPLY batch's photo zip while it reads, checks and stores the batch's
lines. paramiko cannot do that download reliably: its pipelined reads
(``SFTPFile.prefetch``) queue the read requests from a thread of their own, and when that
thread falls behind the responses, as it does beside a busy interpreter or on a machine
whose cores are busy, the file is taken for fully requested and every later block costs
a round trip of 32 KiB (paramiko issues #2418, #2519; measured here: 98 s instead of 4 s
for a 440 MB zip, 8 minutes for a 2.4 GB one, the unread responses piling up in memory).
So the zip, and any other file of ``SftpRemote.apart_from`` bytes or more
(``SftpRemote.download``), is downloaded by asyncssh, whose parallel reads are issued and
collected by one event loop, in a child process whose interpreter has nothing else to do. The server's key
is checked against the keys :class:`transport.sftp.SftpRemote` would accept (the
known_hosts entries for the host when there are any, else the pinned key), and nothing
else: no certificate authority, no agent, no ``~/.ssh`` file. A server that stops
answering is dropped (keepalives, and a limit on each read), so intake never waits for
ever on a stalled download.

The same child computes a large file's size and SHA-256 without copying it
(``SftpRemote.checksum``: a file rejected F07 is recorded by its digest, never landed).

The request (standard input, one JSON object, so no key material is ever on a command
line): ``settings`` (:class:`transport.settings.SftpSettings` fields, paths as strings),
``remote`` (the path on the server), ``local_path`` (``null``: read and hash only) and
``limit`` (``null``: the whole file; else no more than ``limit + 1`` bytes are read). The
answer (standard output, one JSON object): ``{"size": N, "sha256": HEX}``, or
``{"error": TYPE, "message": TEXT}`` with exit status 1. :func:`download_apart` and
:func:`checksum_apart` run this and raise what the child raised.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import json
import subprocess
import sys
from pathlib import Path
from typing import IO, Any, cast

import asyncssh
import paramiko

from transport import errors
from transport.remote import next_read
from transport.settings import SftpSettings, parse_host_key

#: bytes asked of the server per read; asyncssh splits them into parallel requests
_READ = 8 << 20

#: what a failed child may report, raised again as the same type in the caller
_ERRORS: dict[str, type[Exception]] = {
    "FileNotFoundError": FileNotFoundError,
    "PermissionError": PermissionError,
    **{
        cls.__name__: cls
        for cls in (
            errors.TransportError,
            errors.HostKeyError,
            errors.AuthenticationError,
            errors.TransientTransportError,
            errors.RemoteNameError,
        )
    },
}


def _request(
    settings: SftpSettings, remote: str, local_path: Path | None, limit: int | None
) -> str:
    values = {
        k: str(v) if isinstance(v, Path) else v for k, v in dataclasses.asdict(settings).items()
    }
    return json.dumps(
        {
            "settings": values,
            "remote": remote,
            "local_path": None if local_path is None else str(local_path),
            "limit": limit,
        }
    )


def download_apart(
    settings: SftpSettings, remote: str, local_path: Path, limit: int | None = None
) -> tuple[int, str]:
    """Download the server's file ``remote`` (a path on the server, ``base_dir`` already
    applied) to ``local_path`` in a child process, no more than ``limit + 1`` bytes with a
    ``limit`` (``Remote.download``): size and SHA-256 of what was copied. A failure is
    raised as the child's exception type (``FileNotFoundError``, a
    :mod:`transport.errors` type), else as ``TransportError``; nothing is left at
    ``local_path``."""
    return _run_child(settings, remote, local_path, limit)


def checksum_apart(settings: SftpSettings, remote: str) -> tuple[int, str]:
    """Size and SHA-256 of the server's file ``remote`` (``base_dir`` already applied),
    read in a child process and written nowhere; failures as :func:`download_apart`."""
    return _run_child(settings, remote, None)


def _run_child(
    settings: SftpSettings, remote: str, local_path: Path | None, limit: int | None = None
) -> tuple[int, str]:
    child = subprocess.run(
        [sys.executable, "-m", "transport.fetch"],
        input=_request(settings, remote, local_path, limit),
        capture_output=True,
        text=True,
        check=False,
    )
    try:
        answer: dict[str, Any] = json.loads(child.stdout.strip().splitlines()[-1])
    except (IndexError, ValueError):
        if local_path is not None:
            local_path.unlink(missing_ok=True)
        tail = " | ".join(child.stderr.strip().splitlines()[-3:])
        raise errors.TransportError(
            f"reading {remote} in a separate process failed (exit {child.returncode}): {tail}"
        ) from None
    if "error" in answer:
        raise _ERRORS.get(answer["error"], errors.TransportError)(answer["message"])
    return int(answer["size"]), str(answer["sha256"])


def _trusted_keys(s: SftpSettings) -> list[asyncssh.SSHKey]:
    """The server keys to accept, chosen as ``SftpRemote`` (paramiko) chooses them: the
    known_hosts entries for ``host_key_name`` (``[host]:port`` off port 22; hashed
    entries too) when there are any, else the pinned ``host_key``; nothing else (no
    certificate authority, no other file)."""
    found: dict[str, paramiko.PKey] | None = None
    if s.known_hosts:
        try:
            entry = paramiko.HostKeys(str(s.known_hosts)).lookup(s.host_key_name)
        except OSError as exc:
            raise errors.HostKeyError(f"known_hosts {s.known_hosts} cannot be read") from exc
        found = dict(entry) if entry else None
    if found is None and s.host_key:
        key = parse_host_key(s.host_key)
        found = {key.get_name(): key}
    if not found:
        raise errors.HostKeyError(
            f"host key for {s.host_key_name} is not known; refusing to connect"
        )
    return [asyncssh.import_public_key(f"{k.get_name()} {k.get_base64()}") for k in found.values()]


def _client_key(s: SftpSettings) -> asyncssh.SSHKey:
    try:
        if s.key_file:
            return asyncssh.read_private_key(str(s.key_file), s.passphrase)
        assert s.private_key is not None
        return asyncssh.import_private_key(s.private_key, s.passphrase)
    except (OSError, ValueError, asyncssh.KeyImportError) as exc:
        raise errors.AuthenticationError(f"the private key for {s.host} cannot be read") from exc


async def _connect(s: SftpSettings) -> asyncssh.SSHClientConnection:
    """Connect, retrying only what may pass (as ``SftpRemote.connect`` does): a refused,
    reset or timed-out connection. A server silent for ``3 × timeout`` is dropped."""
    trusted, client_key = _trusted_keys(s), _client_key(s)
    for attempt in range(1, s.connect_attempts + 1):
        try:
            return await asyncssh.connect(
                s.host,
                port=s.port,
                username=s.username,
                known_hosts=(trusted, [], []),
                x509_trusted_certs=None,
                x509_trusted_cert_paths=None,
                client_keys=[client_key],
                agent_path=None,
                config=[],
                preferred_auth="publickey",
                connect_timeout=s.timeout,
                keepalive_interval=s.timeout,
                keepalive_count_max=3,
            )
        except asyncssh.HostKeyNotVerifiable as exc:
            raise errors.HostKeyError(
                f"host key for {s.host_key_name} is not the one configured; refusing to connect"
            ) from exc
        except asyncssh.PermissionDenied as exc:
            raise errors.AuthenticationError(
                f"{s.username}@{s.host_key_name} refused our public key"
            ) from exc
        except (OSError, asyncssh.ConnectionLost) as exc:
            if attempt == s.connect_attempts:
                raise errors.TransientTransportError(
                    f"cannot connect to {s.username}@{s.host_key_name}: {exc}"
                ) from exc
            await asyncio.sleep(s.retry_wait * 2 ** (attempt - 1))
        except asyncssh.Error as exc:
            raise errors.TransportError(f"cannot connect to {s.host_key_name}: {exc}") from exc
    raise AssertionError("unreachable")


class _Discard:
    """Where the blocks go when only the digest is wanted."""

    def write(self, block: bytes) -> int:
        return len(block)

    def __enter__(self) -> _Discard:
        return self

    def __exit__(self, *exc: object) -> None:
        pass


async def _download(
    s: SftpSettings, remote: str, local_path: Path | None, limit: int | None = None
) -> tuple[int, str]:
    """Copy ``remote`` to ``local_path`` (None: nowhere), no more than ``limit + 1`` bytes
    with a ``limit``, and return the size and digest of what was read."""
    digest = hashlib.sha256()
    size = 0
    # A step that brings nothing for this long means the server has stalled (a minute with
    # the default timeout of 10 s); the connection is then aborted, never waited on.
    stalled = s.timeout * 6
    out: IO[bytes] | _Discard
    if local_path is None:
        out = _Discard()
    else:
        try:
            out = open(local_path, "wb")
        except OSError as exc:
            raise errors.TransportError(f"cannot write {local_path.name}: {exc}") from exc
    with out:
        conn = await _connect(s)
        try:
            sftp = await asyncio.wait_for(conn.start_sftp_client(), stalled)
            try:
                source = await asyncio.wait_for(sftp.open(remote, "rb"), stalled)
            except asyncssh.SFTPNoSuchFile as exc:
                raise FileNotFoundError(f"{remote} is missing") from exc
            except asyncssh.SFTPPermissionDenied as exc:
                raise PermissionError(f"{remote} may not be read") from exc
            while (want := next_read(size, limit, _READ)) and (
                block := cast(bytes, await asyncio.wait_for(source.read(want), stalled))
            ):
                digest.update(block)
                try:
                    out.write(block)
                except OSError as exc:
                    written = local_path.name if local_path is not None else remote
                    raise errors.TransportError(f"cannot write {written}: {exc}") from exc
                size += len(block)
            try:  # every byte is here: a goodbye the server does not answer changes nothing
                await asyncio.wait_for(source.close(), s.timeout)
                conn.close()
                await asyncio.wait_for(conn.wait_closed(), s.timeout)
            except (TimeoutError, asyncssh.Error):
                pass
        finally:
            conn.abort()
    return size, digest.hexdigest()


def _error_name(exc: Exception) -> str:
    """The type the caller raises for what stopped the child."""
    if type(exc).__name__ in _ERRORS and not isinstance(exc, asyncssh.Error):
        return type(exc).__name__
    if isinstance(exc, ConnectionError | TimeoutError | asyncssh.ConnectionLost):
        return "TransientTransportError"
    return "TransportError"


def main() -> int:
    request = json.loads(sys.stdin.read())
    values = dict(request["settings"])
    for name in ("key_file", "known_hosts"):
        if values.get(name) is not None:
            values[name] = Path(values[name])
    local_path = Path(request["local_path"]) if request["local_path"] is not None else None
    try:
        size, sha = asyncio.run(
            _download(SftpSettings(**values), request["remote"], local_path, request["limit"])
        )
    except Exception as exc:  # reported to the caller, raised again there
        if local_path is not None:
            local_path.unlink(missing_ok=True)
        print(json.dumps({"error": _error_name(exc), "message": str(exc)}), flush=True)
        return 1
    print(json.dumps({"size": size, "sha256": sha}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
