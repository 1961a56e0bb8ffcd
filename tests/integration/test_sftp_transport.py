"""SftpRemote against a real OpenSSH sshd on loopback (ICD §2): what only this adapter
has (host keys, connecting and reconnecting, the child process for large files). What
every ``Remote`` does is in tests/contract."""

from __future__ import annotations

import dataclasses
import hashlib
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import paramiko
import pytest

from sandbox import openssh as sshd_support
from tests.support.sshd import OpenSshServer, free_port, generate_key
from transport import fetch
from transport.errors import (
    AuthenticationError,
    HostKeyError,
    RemoteNameError,
    TransientTransportError,
)
from transport.sftp import SftpRemote, SftpSettings

pytestmark = pytest.mark.sftp

NAME = "DISB_B01_H01_20261122_001.txt"
DATA = "1|张三|100.00\r\n2|李四|200.00\r\n".encode("gb18030")


def airflow_connection(conn: dict[str, Any]) -> SimpleNamespace:
    """What Airflow's ``Connection`` offers ``from_airflow``, from the JSON form."""
    return SimpleNamespace(
        host=conn["host"], port=conn["port"], login=conn["login"], extra_dejson=conn["extra"]
    )


@pytest.fixture
def base(sshd: OpenSshServer) -> Path:
    path = sshd.served_root / uuid.uuid4().hex
    path.mkdir()
    return path


@pytest.fixture
def settings(sshd: OpenSshServer, base: Path) -> SftpSettings:
    return SftpSettings.from_airflow(airflow_connection(sshd.connection(base)))


@pytest.fixture
def remote(settings: SftpSettings):
    with SftpRemote(settings) as r:
        yield r


def test_a_download_apart_copies_the_file_from_a_process_of_its_own_while_this_one_is_busy(
    remote: SftpRemote, base: Path, tmp_path: Path
) -> None:
    data = DATA * 400_000
    (base / "pickup").mkdir()
    (base / "pickup" / NAME).write_bytes(data)
    with ThreadPoolExecutor(1) as apart:
        got = apart.submit(remote.download_apart, f"pickup/{NAME}", tmp_path / NAME)
        while not got.done():  # keep this process's interpreter busy meanwhile
            sum(range(10_000))

    assert got.result() == (len(data), hashlib.sha256(data).hexdigest())
    assert (tmp_path / NAME).read_bytes() == data


@pytest.mark.parametrize("over", [-1, 0, 1])
def test_a_download_of_a_large_file_is_copied_whole_by_a_process_of_its_own(
    over: int, remote: SftpRemote, base: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = DATA * 400_000
    (base / "pickup").mkdir()
    (base / "pickup" / NAME).write_bytes(data)
    remote.apart_from = len(data) - over  # at, below and above the limit
    children: list[str] = []
    real = fetch.download_apart

    def counted(*args: Any) -> tuple[int, str]:
        children.append(args[1])
        return real(*args)

    monkeypatch.setattr(fetch, "download_apart", counted)

    with ThreadPoolExecutor(1) as other:
        got = other.submit(remote.download, f"pickup/{NAME}", tmp_path / NAME)
        while not got.done():  # keep this process's interpreter busy meanwhile
            sum(range(10_000))

    assert got.result() == (len(data), hashlib.sha256(data).hexdigest())
    assert (tmp_path / NAME).read_bytes() == data
    assert len(children) == (1 if over >= 0 else 0)  # by the child from the limit on
    with pytest.raises(FileNotFoundError):
        remote.download("pickup/nothing.txt", tmp_path / "nothing.txt")
    assert not (tmp_path / "nothing.txt").exists()


@pytest.mark.parametrize("over", [-1, 0, 1])
def test_a_checksum_of_a_large_file_is_read_by_a_process_of_its_own_and_written_nowhere(
    over: int, remote: SftpRemote, base: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = DATA * 400_000
    (base / "pickup").mkdir()
    (base / "pickup" / NAME).write_bytes(data)
    remote.apart_from = len(data) - over  # at, below and above the limit
    children: list[str] = []
    real = fetch.checksum_apart

    def counted(*args: Any) -> tuple[int, str]:
        children.append(args[1])
        return real(*args)

    monkeypatch.setattr(fetch, "checksum_apart", counted)

    assert remote.checksum(f"pickup/{NAME}") == (len(data), hashlib.sha256(data).hexdigest())
    assert len(children) == (1 if over >= 0 else 0)  # by the child from the limit on
    assert sorted(base.rglob("*")) == [base / "pickup", base / "pickup" / NAME]
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(FileNotFoundError):
        real(remote.settings, f"{remote.settings.base_dir}/pickup/nothing.txt")


def test_a_download_apart_raises_what_the_download_raised(
    sshd: OpenSshServer, settings: SftpSettings, tmp_path: Path
) -> None:
    with pytest.raises(FileNotFoundError):
        SftpRemote(settings).download_apart("pickup/nothing.txt", tmp_path / "nothing.txt")
    assert not (tmp_path / "nothing.txt").exists()

    wrong = dataclasses.replace(settings, host_key=generate_key(tmp_path / "other"))
    with pytest.raises(HostKeyError):
        SftpRemote(wrong).download_apart(f"pickup/{NAME}", tmp_path / NAME)

    with pytest.raises(RemoteNameError):
        SftpRemote(settings).download_apart("../pickup/x.txt", tmp_path / "x.txt")

    conn = sshd.connection(settings.base_dir)
    conn["extra"]["private_key"] = Path(conn["extra"].pop("key_file")).read_text()
    inline = SftpSettings.from_airflow(airflow_connection(conn))
    (Path(settings.base_dir) / "pickup").mkdir()
    (Path(settings.base_dir) / "pickup" / NAME).write_bytes(DATA)
    assert SftpRemote(inline).download_apart(f"pickup/{NAME}", tmp_path / NAME) == (
        len(DATA),
        hashlib.sha256(DATA).hexdigest(),
    )


@pytest.mark.parametrize(
    ("known", "pinned", "accepted"),
    [
        (None, "server", True),
        (None, "other", False),
        ("server at host:port", None, True),
        ("server at bare host", None, False),  # off port 22 only [host]:port counts
        ("other at host:port", "server", False),  # known_hosts wins over the pinned key
        ("server at another port", "server", True),
    ],
)
def test_a_download_apart_accepts_exactly_the_host_keys_the_connection_accepts(
    known: str | None,
    pinned: str | None,
    accepted: bool,
    settings: SftpSettings,
    sshd: OpenSshServer,
    base: Path,
    tmp_path: Path,
) -> None:
    (base / "pickup").mkdir()
    (base / "pickup" / NAME).write_bytes(DATA)
    keys = {"server": sshd.host_key_line, "other": generate_key(tmp_path / "other")}
    known_hosts = None
    if known is not None:
        which, _, where = known.split(" ", 2)
        host = {
            "host:port": f"[127.0.0.1]:{sshd.port}",
            "bare host": "127.0.0.1",
            "another port": f"[127.0.0.1]:{sshd.port + 1}",
        }[where]
        known_hosts = tmp_path / "known_hosts"
        known_hosts.write_text(f"{host} {keys[which]}\n")
    chosen = dataclasses.replace(
        settings,
        host_key=keys[pinned] if pinned else None,
        known_hosts=known_hosts,
        connect_attempts=1,
    )

    def outcome(call: Callable[[], object]) -> str:
        try:
            call()
        except HostKeyError:
            return "refused"
        return "accepted"

    expected = "accepted" if accepted else "refused"
    assert outcome(SftpRemote(chosen).connect) == expected
    assert (
        outcome(lambda: SftpRemote(chosen).download_apart(f"pickup/{NAME}", tmp_path / NAME))
        == expected
    )
    assert (tmp_path / NAME).exists() == accepted


def test_a_lost_connection_makes_a_download_transient_and_the_next_one_reconnects(
    remote: SftpRemote, base: Path, tmp_path: Path
) -> None:
    (base / "pickup").mkdir()
    (base / "pickup" / NAME).write_bytes(DATA * 100_000)
    transport = remote._client.get_transport()  # type: ignore[union-attr]
    transport.close()  # type: ignore[union-attr]

    with pytest.raises(TransientTransportError):
        remote.download(f"pickup/{NAME}", tmp_path / NAME)

    assert not (tmp_path / NAME).exists()
    assert remote.download(f"pickup/{NAME}", tmp_path / NAME)[0] == len(DATA) * 100_000


def test_a_wrong_pinned_host_key_fails_at_once_and_is_not_retried(
    settings: SftpSettings, tmp_path: Path
) -> None:
    wrong = dataclasses.replace(settings, host_key=generate_key(tmp_path / "other"))
    remote = SftpRemote(wrong)

    with pytest.raises(HostKeyError) as raised:
        remote.connect()

    assert remote.attempts == 1
    assert isinstance(raised.value.__cause__, paramiko.BadHostKeyException)


def test_a_host_missing_from_known_hosts_fails_at_once_and_is_not_retried(
    settings: SftpSettings, sshd: OpenSshServer, tmp_path: Path
) -> None:
    known_hosts = tmp_path / "known_hosts"
    known_hosts.write_text(f"[127.0.0.1]:{sshd.port + 1} {sshd.host_key_line}\n")
    remote = SftpRemote(dataclasses.replace(settings, host_key=None, known_hosts=known_hosts))

    with pytest.raises(HostKeyError):
        remote.connect()

    assert remote.attempts == 1


def test_a_known_hosts_file_with_the_servers_key_is_accepted(
    settings: SftpSettings, sshd: OpenSshServer, tmp_path: Path
) -> None:
    known_hosts = tmp_path / "known_hosts"
    known_hosts.write_text(f"[127.0.0.1]:{sshd.port} {sshd.host_key_line}\n")

    with SftpRemote(dataclasses.replace(settings, host_key=None, known_hosts=known_hosts)) as r:
        assert r.list_dir("") == []


def test_a_connection_without_host_key_or_known_hosts_is_refused_before_connecting(
    sshd: OpenSshServer, base: Path
) -> None:
    conn = sshd.connection(base)
    del conn["extra"]["host_key"]

    with pytest.raises(HostKeyError):
        SftpSettings.from_airflow(airflow_connection(conn))


def test_an_unreachable_server_is_retried_then_raises_a_transient_error(
    settings: SftpSettings,
) -> None:
    remote = SftpRemote(dataclasses.replace(settings, port=free_port(), retry_wait=0.01))

    with pytest.raises(TransientTransportError):
        remote.connect()

    assert remote.attempts == 3


def test_a_key_the_server_does_not_know_is_refused_and_not_retried(
    settings: SftpSettings, tmp_path: Path
) -> None:
    generate_key(tmp_path / "stranger")
    remote = SftpRemote(dataclasses.replace(settings, key_file=tmp_path / "stranger"))

    with pytest.raises(AuthenticationError):
        remote.connect()

    assert remote.attempts == 1


def test_the_private_key_may_be_given_as_text_instead_of_a_file(
    sshd: OpenSshServer, base: Path
) -> None:
    conn = sshd.connection(base)
    conn["extra"]["private_key"] = Path(conn["extra"].pop("key_file")).read_text()

    with SftpRemote(SftpSettings.from_airflow(airflow_connection(conn))) as r:
        assert r.publish("drop", NAME, DATA, 2) is True
    assert "PRIVATE KEY" not in repr(SftpSettings.from_airflow(airflow_connection(conn)))


def test_a_dropped_connection_is_a_transient_error_and_the_next_call_reconnects(
    remote: SftpRemote,
) -> None:
    remote.list_dir("")
    transport = remote._client.get_transport()  # type: ignore[union-attr]
    transport.close()  # type: ignore[union-attr]

    with pytest.raises(TransientTransportError):
        remote.list_dir("")

    assert remote.list_dir("") == []
    assert remote.attempts == 2


def test_the_test_server_says_how_to_install_openssh_when_it_is_missing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sshd_support, "SSHD", tmp_path / "no-sshd")

    with pytest.raises(RuntimeError, match="apt-get install -y openssh-server"):
        OpenSshServer(tmp_path / "work").start()
