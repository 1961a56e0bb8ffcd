"""The demo's embedded SFTP server works with the paramiko-based SftpRemote."""

from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import asyncssh
import pytest

from sandbox.sftp_server import EmbeddedSftpServer
from tests.support.sshd import generate_key
from transport.errors import AuthenticationError, HostKeyError, TransientTransportError
from transport.sftp import SftpRemote, SftpSettings

NAME = "PHOTO_H01_B01_20261122_001.zip"
DATA = b"PK\x05\x06" + b"\x00" * 18


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory):
    state = tmp_path_factory.mktemp("embedded")
    with EmbeddedSftpServer(state / "root", state_dir=state / "state") as srv:
        yield srv


def settings_for(conn: dict[str, Any]) -> SftpSettings:
    return SftpSettings.from_airflow(
        SimpleNamespace(
            host=conn["host"], port=conn["port"], login=conn["login"], extra_dejson=conn["extra"]
        )
    )


def test_sftp_remote_publishes_lists_reads_and_archives(server: EmbeddedSftpServer) -> None:
    with SftpRemote(settings_for(server.connection("bureau"))) as remote:
        assert remote.publish("pickup", NAME, DATA, 1) is True
        assert remote.publish("pickup", NAME, DATA, 1) is False

        assert [e.name for e in remote.list_dir("pickup")] == [NAME, f"{NAME}.ok"]
        assert remote.read_bytes(f"pickup/{NAME}") == DATA

        remote.move(f"pickup/{NAME}", "pickup/archive/20261122")
        remote.move(f"pickup/{NAME}.ok", "pickup/archive/20261122")
        remote.publish("pickup", NAME, DATA, 1)
        assert remote.move(f"pickup/{NAME}", "pickup/archive/20261122") == (
            f"pickup/archive/20261122/{NAME}.1"
        )

    archive = server.root / "bureau" / "pickup" / "archive" / "20261122"
    assert sorted(p.name for p in archive.iterdir()) == [NAME, f"{NAME}.1", f"{NAME}.ok"]


def test_each_login_sees_only_its_own_tree(server: EmbeddedSftpServer) -> None:
    with SftpRemote(settings_for(server.connection("bank7"))) as bank:
        bank.publish("drop", NAME, DATA, 1)
    with SftpRemote(settings_for(server.connection("insurer"))) as other:
        assert other.list_dir("drop") == []
        assert other.list_dir("") == []
    assert (server.root / "bank7" / "drop" / NAME).read_bytes() == DATA


def test_base_dir_is_relative_to_the_logins_tree(server: EmbeddedSftpServer) -> None:
    (server.root / "partner" / "inbox").mkdir(parents=True)
    with SftpRemote(settings_for(server.connection("partner", base_dir="inbox"))) as remote:
        remote.publish("drop", NAME, DATA, 1)
    assert (server.root / "partner" / "inbox" / "drop" / NAME).exists()


def test_a_client_with_a_different_key_is_refused(
    server: EmbeddedSftpServer, tmp_path: Path
) -> None:
    generate_key(tmp_path / "stranger")
    settings = dataclasses.replace(
        settings_for(server.connection("bureau")), key_file=tmp_path / "stranger"
    )
    remote = SftpRemote(settings)

    with pytest.raises(AuthenticationError):
        remote.connect()

    assert remote.attempts == 1


def test_a_login_name_that_would_leave_the_root_is_refused(server: EmbeddedSftpServer) -> None:
    with pytest.raises(AuthenticationError):
        SftpRemote(settings_for(server.connection(".."))).connect()


def test_a_client_pinning_another_host_key_refuses_the_server(
    server: EmbeddedSftpServer, tmp_path: Path
) -> None:
    settings = dataclasses.replace(
        settings_for(server.connection("bureau")), host_key=generate_key(tmp_path / "other")
    )

    with pytest.raises(HostKeyError):
        SftpRemote(settings).connect()


def test_the_host_key_survives_a_restart_so_the_connection_stays_valid(tmp_path: Path) -> None:
    with EmbeddedSftpServer(tmp_path / "root", state_dir=tmp_path / "state") as first:
        line = first.host_key_line
        client_key = first.client_key_path

    with EmbeddedSftpServer(tmp_path / "root", state_dir=tmp_path / "state") as second:
        assert second.host_key_line == line
        assert second.client_key_path == client_key
        with SftpRemote(settings_for(second.connection("bureau"))) as remote:
            assert remote.list_dir("") == []


class _StallingSftp(asyncssh.SFTPServer):
    async def read(self, file_obj: object, offset: int, size: int) -> bytes:
        await asyncio.sleep(3600)
        return b""


class _StallingServer(EmbeddedSftpServer):
    """Opens files, then never answers a read, keeping the connection up."""

    sftp_class = _StallingSftp


def test_a_download_apart_from_a_server_that_stops_answering_fails_as_transient(
    tmp_path: Path,
) -> None:
    with _StallingServer(tmp_path / "root", state_dir=tmp_path / "state") as stalling:
        (tmp_path / "root" / "bureau" / "pickup").mkdir(parents=True)
        (tmp_path / "root" / "bureau" / "pickup" / NAME).write_bytes(DATA)
        settings = dataclasses.replace(
            settings_for(stalling.connection("bureau")), timeout=0.5, connect_attempts=1
        )

        with pytest.raises(TransientTransportError):
            SftpRemote(settings).download_apart(f"pickup/{NAME}", tmp_path / NAME)

    assert not (tmp_path / NAME).exists()
