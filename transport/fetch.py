"""Download one file over SFTP in a process of its own.

    python -m transport.fetch < REQUEST

Intake downloads an APPLY batch's photo zip while it reads and checks the batch's lines.
In the same process that cannot be done safely with paramiko: its pipelined reads
(``SFTPFile.prefetch``) queue the read requests from a thread of their own, and when that
thread falls behind the responses, as it does while another thread keeps the interpreter
busy, the file is taken for fully requested and every later block is read with one round
trip of 32 KiB (paramiko issues #2418 and #2519; seen here: 98 s instead of 4 s for a
440 MB zip on loopback, with the unread responses piling up in memory). A process of its
own has nothing else to run.

The request (standard input, one JSON object, so no key material is ever on a command
line): ``settings`` (:class:`transport.sftp.SftpSettings` fields, paths as strings),
``path`` (relative to ``base_dir``) and ``local_path``. The answer (standard output, one
JSON object): ``{"size": N, "sha256": HEX}``, or ``{"error": TYPE, "message": TEXT}`` with
exit status 1. :func:`download_apart` runs this and raises what the child raised.
"""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from transport import errors
from transport.sftp import SftpRemote, SftpSettings

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


def _request(settings: SftpSettings, path: str, local_path: Path) -> str:
    values = {
        k: str(v) if isinstance(v, Path) else v for k, v in dataclasses.asdict(settings).items()
    }
    return json.dumps({"settings": values, "path": path, "local_path": str(local_path)})


def download_apart(settings: SftpSettings, path: str, local_path: Path) -> tuple[int, str]:
    """``SftpRemote(settings).download(path, local_path)`` in a child process: size and
    SHA-256 of what was copied. A failure is raised as the child's exception type
    (``FileNotFoundError``, a :mod:`transport.errors` type), else as ``TransportError``."""
    child = subprocess.run(
        [sys.executable, "-m", "transport.fetch"],
        input=_request(settings, path, local_path),
        capture_output=True,
        text=True,
        check=False,
    )
    try:
        answer: dict[str, Any] = json.loads(child.stdout.strip().splitlines()[-1])
    except (IndexError, ValueError):
        tail = " | ".join(child.stderr.strip().splitlines()[-3:])
        raise errors.TransportError(
            f"downloading {path} in a separate process failed (exit {child.returncode}): {tail}"
        ) from None
    if "error" in answer:
        raise _ERRORS.get(answer["error"], errors.TransportError)(answer["message"])
    return int(answer["size"]), str(answer["sha256"])


def main() -> int:
    request = json.loads(sys.stdin.read())
    values = dict(request["settings"])
    for name in ("key_file", "known_hosts"):
        if values.get(name) is not None:
            values[name] = Path(values[name])
    try:
        with SftpRemote(SftpSettings(**values)) as remote:
            size, sha = remote.download(request["path"], Path(request["local_path"]))
    except Exception as exc:  # reported to the caller, raised again there
        name = type(exc).__name__ if type(exc).__name__ in _ERRORS else "TransportError"
        print(json.dumps({"error": name, "message": str(exc)}), flush=True)
        return 1
    print(json.dumps({"size": size, "sha256": sha}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
