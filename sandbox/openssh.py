"""A private OpenSSH sshd on 127.0.0.1, standing in for a counterparty's SFTP server in
the integration tests and in ``bench.intake --transport sftp``.

It has its own host key, accepts one generated client key for the current user, and
serves ``served_root`` (an absolute directory the tests use as ``base_dir``); any other
absolute directory can be a connection's ``base_dir`` too.
"""

from __future__ import annotations

import getpass
import shutil
import socket
import subprocess
import time
from pathlib import Path
from types import TracebackType
from typing import Any, Self

SSHD = Path("/usr/sbin/sshd")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def generate_key(path: Path) -> str:
    """An ed25519 key pair at ``path`` and ``path.pub`` (kept if present); returns the
    public key as ``ssh-ed25519 AAAA…``."""
    if not path.exists():
        subprocess.run(
            ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", path.name, "-f", str(path)],
            check=True,
        )
    return " ".join(path.with_name(path.name + ".pub").read_text().split()[:2])


class OpenSshServer:
    def __init__(self, workdir: Path) -> None:
        self.workdir = Path(workdir)
        self.username = getpass.getuser()
        self.served_root = self.workdir / "served"
        self.host_key_path = self.workdir / "ssh_host_ed25519_key"
        self.client_key_path = self.workdir / "client_ed25519"
        self.config_path = self.workdir / "sshd_config"
        self.log_path = self.workdir / "sshd.log"
        self.port = 0
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def host_key_line(self) -> str:
        pub = self.host_key_path.with_name(self.host_key_path.name + ".pub")
        return " ".join(pub.read_text().split()[:2])

    def connection(self, base_dir: Path | str) -> dict[str, Any]:
        """The Airflow connection (JSON form) for the current user; ``base_dir`` absolute."""
        return {
            "conn_type": "sftp",
            "host": "127.0.0.1",
            "port": self.port,
            "login": self.username,
            "extra": {
                "key_file": str(self.client_key_path),
                "host_key": self.host_key_line,
                "base_dir": str(Path(base_dir).resolve()),
            },
        }

    def _write_config(self) -> None:
        authorized = self.workdir / "authorized_keys"
        shutil.copyfile(
            self.client_key_path.with_name(self.client_key_path.name + ".pub"), authorized
        )
        self.config_path.write_text(
            "\n".join(
                [
                    "ListenAddress 127.0.0.1",
                    f"Port {self.port}",
                    f"HostKey {self.host_key_path}",
                    f"AuthorizedKeysFile {authorized}",
                    f"PidFile {self.workdir / 'sshd.pid'}",
                    "PubkeyAuthentication yes",
                    "PasswordAuthentication no",
                    "KbdInteractiveAuthentication no",
                    "UsePAM no",
                    "StrictModes no",
                    "UseDNS no",
                    "PermitRootLogin prohibit-password",
                    f"AllowUsers {self.username}",
                    "Subsystem sftp internal-sftp",
                    "LogLevel VERBOSE",
                    "",
                ]
            )
        )

    def start(self) -> Self:
        if not SSHD.exists():
            raise RuntimeError(
                f"{SSHD} is missing: the SFTP server on loopback needs OpenSSH; "
                "run `apt-get install -y openssh-server`"
            )
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.served_root.mkdir(exist_ok=True)
        generate_key(self.host_key_path)
        generate_key(self.client_key_path)
        Path("/run/sshd").mkdir(parents=True, exist_ok=True)
        for _ in range(3):
            self.port = free_port()
            self._write_config()
            log = self.log_path.open("ab")
            self._process = subprocess.Popen(
                [str(SSHD), "-D", "-e", "-f", str(self.config_path)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
            )
            log.close()
            if self._wait_for_banner():
                return self
            self.stop()
        raise RuntimeError(f"sshd did not start; see {self.log_path}:\n{self.log_path.read_text()}")

    def _wait_for_banner(self, timeout: float = 10.0) -> bool:
        assert self._process is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                return False
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1) as s:
                    if s.recv(64).startswith(b"SSH-2.0-"):
                        return True
            except OSError:
                time.sleep(0.05)
        return False

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        process.terminate()
        try:
            process.wait(5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
