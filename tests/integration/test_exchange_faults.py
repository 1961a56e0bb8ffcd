"""What a hostile counterparty or a faulty connection does to a bureau's pickup, answered
file by file (ICD §2, §6): the other files always go on, nothing is answered twice."""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import threading
import uuid
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from sqlalchemy import Engine, select

from exchange.locks import exclusive
from exchange.pickup import MAX_CONTROL_BYTES, MAX_UNCONTROLLED_BYTES
from persistence.models import OutboundFile, ReceivedFile
from sandbox.bureau import make_apply_batch, make_bad_file, write_batch
from schemas.files import Control
from schemas.layouts import APPLY
from tests.integration.test_intake import context, count, rebuilt, response_codes, run
from transport.errors import TransientTransportError
from transport.local import LocalRemote
from transport.remote import BaseRemote, RemoteEntry
from transport.sftp import SftpRemote, SftpSettings

DAY = "20261122"


@pytest.fixture
def server(tmp_path: Path) -> Path:
    (tmp_path / "sftp" / "pickup").mkdir(parents=True)
    (tmp_path / "sftp" / "drop").mkdir()
    return tmp_path / "sftp"


def names_in(directory: Path) -> set[str]:
    return {p.name for p in directory.iterdir()} if directory.exists() else set()


def test_the_same_bytes_under_another_name_with_the_same_batch_no_are_f05_and_intake_goes_on(
    server: Path, engine: Engine, tmp_path: Path
) -> None:
    first = make_apply_batch(size=5, seed=41)
    write_batch(first, server / "pickup")
    assert [o.outcome for o in run(server, engine, tmp_path)] == ["accepted"]
    copy = first.name.replace("_001.txt", "_002.txt")
    (server / "pickup" / copy).write_bytes(first.data)
    (server / "pickup" / f"{copy}.ok").write_bytes(Control.for_bytes(copy, first.data, 5).render())

    again = run(server, engine, tmp_path)
    later = run(server, engine, tmp_path)

    assert [(o.name, o.outcome, o.file_code) for o in again] == [(copy, "rejected", "F05")]
    assert later == []
    assert (server / "drop" / f"{copy}.rej").read_bytes().startswith(f"{copy}|F05|".encode())
    assert copy in names_in(server / "pickup" / "rejected" / DAY)


def test_a_directory_where_a_data_file_or_its_zip_should_be_is_that_files_code_and_the_others_go_on(
    server: Path, engine: Engine, tmp_path: Path
) -> None:
    pickup = server / "pickup"
    good = make_apply_batch(size=3, seed=42)
    write_batch(good, pickup)
    as_dir = good.name.replace("_001.txt", "_002.txt")
    (pickup / as_dir).mkdir()
    (pickup / f"{as_dir}.ok").write_bytes(b"%s|0|%s|0\r\n" % (as_dir.encode(), b"0" * 64))
    zipped = make_apply_batch(size=3, seed=43, seq=3)
    write_batch(zipped, pickup)
    (pickup / zipped.zip_name).unlink()
    (pickup / zipped.zip_name).mkdir()

    outcomes = {o.name: (o.outcome, o.file_code) for o in run(server, engine, tmp_path)}

    assert outcomes == {
        good.name: ("accepted", None),
        as_dir: ("rejected", "F01"),
        zipped.name: ("rejected", "F10"),
    }
    assert {as_dir, f"{as_dir}.ok"} <= names_in(pickup / "rejected" / DAY)
    assert (server / "drop" / f"{as_dir}.rej").exists()


class HostileListing(LocalRemote):
    """A server listing names no file system holds: ``/`` inside, ``..``, not UTF-8."""

    def list_dir(self, path: str) -> list[RemoteEntry]:
        hostile = [
            RemoteEntry("APPLY_R440100_B001_20261122_009.txt/..", 10, "file"),
            RemoteEntry("..", 10, "file"),
            RemoteEntry("APPLY_\udcff_B001.txt", 10, "file"),
            RemoteEntry("APPLY_\udcff_B001.txt.ok", 10, "file"),
        ]
        return sorted([*super().list_dir(path), *hostile], key=lambda e: e.name)


def test_names_that_cannot_be_addressed_are_skipped_with_an_escaped_log_line_and_the_others_go_on(
    server: Path, engine: Engine, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from exchange.outbox import deliver
    from issuance.intake import run_intake

    good = make_apply_batch(size=3, seed=44)
    write_batch(good, server / "pickup")
    ctx = context(tmp_path)
    remote = HostileListing(server)

    with caplog.at_level(logging.WARNING, logger="sscard.exchange"):
        outcomes = run_intake(remote, engine, ctx)
    deliver(remote, engine, ctx.store, ctx.conn_id, ctx.now)

    assert [(o.name, o.outcome) for o in outcomes] == [(good.name, "accepted")]
    skipped = [r.getMessage() for r in caplog.records if "cannot be addressed" in r.getMessage()]
    assert len(skipped) == 4
    assert not any("\udcff" in m or "\n" in m for m in skipped)
    assert any("APPLY_\\udcff_B001.txt" in m for m in skipped)


def test_a_name_with_a_newline_is_f07_its_log_lines_escaped_and_it_is_never_read_whole(
    server: Path, engine: Engine, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from issuance.intake import run_intake

    pickup = server / "pickup"
    forged = "APPLY_R440100_B001_20261122_001.txt\n2026-12-06 INFO all files accepted"
    (pickup / forged).write_bytes(b"x" * 100_000)
    (pickup / f"{forged}.ok").write_bytes(b"whatever")
    read: list[str] = []

    class Watched(LocalRemote):
        def read_bytes(self, path: str, limit: int | None = None) -> bytes:
            read.append(path)
            return super().read_bytes(path, limit)

        def download(
            self, path: str, local_path: Path, limit: int | None = None
        ) -> tuple[int, str]:
            read.append(path)
            return super().download(path, local_path, limit)

    with caplog.at_level(logging.INFO):
        outcomes = run_intake(Watched(server), engine, context(tmp_path))

    assert [(o.outcome, o.file_code) for o in outcomes] == [("rejected", "F07")]
    assert read == []
    assert all("\n" not in r.getMessage().split("could not")[0] for r in caplog.records)
    assert "\\n2026-12-06 INFO all files accepted" in caplog.text
    assert forged in names_in(pickup / "rejected" / DAY)
    assert not [n for n in names_in(server / "drop") if n.endswith(".rej")]


class DropsWhileArchiving(LocalRemote):
    """A connection that drops after ``moves`` moves."""

    def __init__(self, root: Path, moves: int) -> None:
        super().__init__(root)
        self.moves = moves

    def move(self, path: str, dest_dir: str) -> str:
        if self.moves == 0:
            raise TransientTransportError("connection reset by peer")
        self.moves -= 1
        return super().move(path, dest_dir)


def test_archiving_cut_short_by_a_dropped_connection_is_finished_by_the_next_run_answering_nothing_twice(
    server: Path, engine: Engine, tmp_path: Path
) -> None:
    from exchange.outbox import deliver
    from issuance.intake import run_intake

    batch = make_apply_batch(size=4, seed=45)
    write_batch(batch, server / "pickup")
    ctx = context(tmp_path)

    with pytest.raises(TransientTransportError):
        run_intake(DropsWhileArchiving(server, moves=1), engine, ctx)
    assert names_in(server / "pickup") >= {f"{batch.name}.ok", batch.zip_name}

    later = context(tmp_path)
    outcomes = run_intake(LocalRemote(server), engine, later)
    deliver(LocalRemote(server), engine, later.store, later.conn_id, later.now)

    assert outcomes == []
    assert names_in(server / "pickup") == {"archive"}
    assert names_in(server / "pickup" / "archive" / DAY) == {
        batch.name,
        f"{batch.name}.ok",
        batch.zip_name,
        f"{batch.zip_name}.ok",
    }
    assert [n for n in names_in(server / "drop") if not n.endswith(".ok")] == [
        batch.name.replace("APPLY_R440100_B001", "APPLYRSP_B001_R440100")
    ]
    with engine.connect() as conn:
        rows = conn.execute(select(ReceivedFile.outcome, ReceivedFile.archived_at)).all()
    assert [(outcome, at is not None) for outcome, at in rows] == [("accepted", True)]


def test_a_second_run_of_the_same_bureau_meanwhile_leaves_the_files_to_the_first(
    server: Path, engine: Engine, tmp_path: Path
) -> None:
    batch = make_apply_batch(size=3, seed=46)
    write_batch(batch, server / "pickup")

    with exclusive(engine, "pickup:sftp_r440100") as first:
        assert first
        meanwhile = run(server, engine, tmp_path)
    afterwards = run(server, engine, tmp_path)

    assert meanwhile == []
    assert [o.outcome for o in afterwards] == ["accepted"]
    assert count(engine, OutboundFile) == 1


def test_two_runs_of_one_bureau_at_once_answer_each_file_once(
    server: Path, engine: Engine, tmp_path: Path
) -> None:
    for seq in (1, 2, 3):
        write_batch(make_apply_batch(size=20, seed=47 + seq, seq=seq), server / "pickup")
    results: list[object] = []

    def one_run(n: int) -> None:
        try:
            results.append(run(server, engine, tmp_path / f"run{n}"))
        except Exception as exc:  # pragma: no cover - shown in the assertion below
            results.append(exc)

    threads = [threading.Thread(target=one_run, args=(n,)) for n in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    run(server, engine, tmp_path / "after")

    assert not [r for r in results if isinstance(r, Exception)]
    drop = names_in(server / "drop")
    assert sorted(n for n in drop if n.startswith("APPLYRSP") and n.endswith(".txt")) == [
        f"APPLYRSP_B001_R440100_20261122_00{seq}.txt" for seq in (1, 2, 3)
    ]
    with engine.connect() as conn:
        rows = conn.execute(select(OutboundFile.name, OutboundFile.delivered_at)).all()
    assert len(rows) == 3 and all(r.delivered_at is not None for r in rows)


@pytest.mark.parametrize("fill", ["A" * 3000, "张" * 1500], ids=["3000-ascii", "1500-cjk"])
@pytest.mark.parametrize("field", APPLY.names)
def test_a_field_of_thousands_of_characters_is_that_lines_code_never_an_outage(
    server: Path, engine: Engine, tmp_path: Path, field: str, fill: str
) -> None:
    batch = make_apply_batch(size=3, seed=48)
    rows = [list(r) for r in batch.rows]
    rows[1][APPLY.index(field)] = fill
    write_batch(rebuilt(batch, rows), server / "pickup")

    outcomes = run(server, engine, tmp_path)

    assert [(o.outcome, o.accepted, o.rejected) for o in outcomes] == [("accepted", 2, 1)]
    codes = response_codes(
        server, batch.name.replace("APPLY_R440100_B001", "APPLYRSP_B001_R440100")
    )
    assert codes[0] == codes[2] == "" and codes[1].startswith("E")


def test_archiving_cut_short_and_finished_by_another_flow_moves_the_apply_zip_too(
    server: Path, engine: Engine, tmp_path: Path
) -> None:
    """The bureau's STATUS flow runs next on the connection and finishes the APPLY's
    archiving: the zip goes with it (the APPLY flow's companions), so it is never taken
    later for a lone zip and answered F04."""
    from exchange.answers import check_request_header, receive
    from exchange.flows import Party, flow
    from exchange.pickup import PartyInbox
    from exchange.storage import Storage
    from issuance.intake import run_intake
    from tests.integration.test_intake import NOW

    batch = make_apply_batch(size=4, seed=45)
    write_batch(batch, server / "pickup")
    with pytest.raises(TransientTransportError):
        run_intake(DropsWhileArchiving(server, moves=1), engine, context(tmp_path))
    inbox = PartyInbox(
        "sftp_r440100",
        "R440100",
        "B001",
        "pickup",
        "drop",
        "GB18030",
        DAY,
        NOW,
        tmp_path / "work2",
        Storage(str(tmp_path / "storage")),
    )
    receive(
        LocalRemote(server),
        engine,
        inbox,
        flow("STATUS", Party.BUREAU),
        lambda *a: {},
        check_header=check_request_header,
    )
    assert names_in(server / "pickup") == {"archive"}
    assert batch.zip_name in names_in(server / "pickup" / "archive" / DAY)


def test_a_plain_file_where_the_hub_keeps_its_archive_is_moved_aside_and_intake_goes_on(
    server: Path, engine: Engine, tmp_path: Path
) -> None:
    from issuance.intake import run_intake

    pickup = server / "pickup"
    (pickup / "archive").write_bytes(b"not a directory")
    batch = make_apply_batch(size=3, seed=42)
    write_batch(batch, pickup)
    outcomes = run_intake(LocalRemote(server), engine, context(tmp_path))
    assert [o.outcome for o in outcomes] == ["accepted"]
    assert batch.name in names_in(pickup / "archive" / DAY)
    assert names_in(pickup / "rejected" / DAY) == {"archive"}  # kept, never deleted


def test_an_unsafe_name_on_a_directory_or_a_link_is_f07_and_never_read(
    server: Path, engine: Engine, tmp_path: Path
) -> None:
    from issuance.intake import run_intake

    pickup = server / "pickup"
    (pickup / "bad name.txt").mkdir()
    (pickup / "bad name.txt.ok").write_bytes(b"x")
    (pickup / "evil name.txt").symlink_to("/dev/zero")
    (pickup / "evil name.txt.ok").write_bytes(b"x")
    outcomes = run_intake(LocalRemote(server), engine, context(tmp_path))
    assert sorted((o.name, o.outcome, o.file_code) for o in outcomes) == [
        ("bad name.txt", "rejected", "F07"),
        ("evil name.txt", "rejected", "F07"),
    ]
    assert {"bad name.txt", "evil name.txt"} <= names_in(pickup / "rejected" / DAY)


def test_a_name_is_checked_before_its_control_file(
    server: Path, engine: Engine, tmp_path: Path
) -> None:
    """Decision 1: a name not of ICD §3 is F07 and another receiver F04, though its control
    file is broken too (F01 only for a good name)."""
    from issuance.intake import run_intake

    pickup = server / "pickup"
    for name in ("foo.txt", "APPLY_R440100_B009_20261122_001.txt"):
        (pickup / name).write_bytes(b"x")
        (pickup / f"{name}.ok").write_bytes(b"y" * 5000)  # longer than any control line
    outcomes = run_intake(LocalRemote(server), engine, context(tmp_path))
    assert sorted((o.name, o.file_code) for o in outcomes) == [
        ("APPLY_R440100_B009_20261122_001.txt", "F04"),
        ("foo.txt", "F07"),
    ]


def served_tree(
    kind: str, request: pytest.FixtureRequest, tmp_path: Path
) -> tuple[Path, BaseRemote]:
    """A counterparty's tree with ``pickup`` and ``drop``, and the ``Remote`` on it: a local
    directory, or the same tree served by the real sshd."""
    if kind == "local":
        root = tmp_path / "sftp"
        remote: BaseRemote = LocalRemote(root)
    else:
        sshd = request.getfixturevalue("sshd")
        root = sshd.served_root / uuid.uuid4().hex
        conn = sshd.connection(root)
        remote = SftpRemote(
            SftpSettings.from_airflow(
                SimpleNamespace(
                    host=conn["host"],
                    port=conn["port"],
                    login=conn["login"],
                    extra_dejson=conn["extra"],
                )
            )
        )
    (root / "pickup").mkdir(parents=True)
    (root / "drop").mkdir()
    return root, remote


def disk_use(*roots: Path) -> int:
    return sum(p.stat().st_size for root in roots for p in root.rglob("*") if p.is_file())


def delivered_again(
    remote: BaseRemote, engine: Engine, tmp_path: Path, pickup: Path, batch: Any
) -> list[tuple[str, str]]:
    """The batch's file and photo zip, rejected today, delivered again and taken: each
    outcome."""
    from issuance.intake import run_intake

    for name in (batch.name, batch.zip_name):
        for each in (name, f"{name}.ok"):
            (pickup / "rejected" / DAY / each).rename(pickup / each)
    with remote:
        return [(o.name, o.outcome) for o in run_intake(remote, engine, context(tmp_path))]


@pytest.mark.parametrize("kind", ["local", pytest.param("openssh", marks=pytest.mark.sftp)])
def test_files_far_larger_than_their_control_files_declare_are_answered_without_filling_the_disk(
    kind: str, request: pytest.FixtureRequest, engine: Engine, tmp_path: Path
) -> None:
    """A server streaming more than a control file declares (here a 256 MiB file, mostly
    a hole, behind a control file of a few kB) is F01 for a data file and F10 for a photo
    zip; the hub reads one byte past the declared size and the other files go on."""
    from exchange.outbox import deliver
    from issuance.intake import run_intake

    root, remote = served_tree(kind, request, tmp_path)
    pickup = root / "pickup"
    good, long_data, long_zip = (make_apply_batch(size=3, seed=60 + n, seq=n) for n in (1, 2, 3))
    for batch in (good, long_data, long_zip):
        write_batch(batch, pickup)
    for path in (pickup / long_data.name, pickup / long_zip.zip_name):
        with open(path, "r+b") as f:
            f.truncate(256 << 20)
    ctx = context(tmp_path)

    with remote:
        outcomes = run_intake(remote, engine, ctx)
        deliver(remote, engine, ctx.store, ctx.conn_id, ctx.now)

    assert sorted((o.name, o.outcome, o.file_code) for o in outcomes) == [
        (good.name, "accepted", None),
        (long_data.name, "rejected", "F01"),
        (long_zip.name, "rejected", "F10"),
    ]
    assert (
        (root / "drop" / f"{long_data.name}.rej")
        .read_bytes()
        .startswith(f"{long_data.name}|F01|".encode())
    )
    assert {long_data.name, long_zip.zip_name} <= names_in(pickup / "rejected" / DAY)
    assert disk_use(tmp_path / "work", tmp_path / "storage") < 2 << 20
    kept = list((tmp_path / "storage").rglob(long_data.name))
    assert [p.stat().st_size for p in kept] == [len(long_data.data) + 1]
    with engine.connect() as conn:
        recorded = conn.execute(
            select(ReceivedFile.size, ReceivedFile.sha256).where(
                ReceivedFile.name == long_data.name
            )
        ).one()
    assert tuple(recorded) == (
        len(long_data.data) + 1,
        hashlib.sha256(kept[0].read_bytes()).hexdigest(),
    )

    assert delivered_again(remote, engine, tmp_path, pickup, long_data) == [
        (long_data.name, "redelivered")
    ]


@pytest.mark.parametrize("kind", ["local", pytest.param("openssh", marks=pytest.mark.sftp)])
def test_control_files_listed_small_but_endless_are_read_no_further_than_a_control_file_can_be(
    kind: str, request: pytest.FixtureRequest, engine: Engine, tmp_path: Path
) -> None:
    """A server listing a control file as a few bytes and then streaming 64 MiB from it:
    the hub reads one byte past the most a control file can hold, answers the data file
    F01 and the photo zip F10, and the other files go on."""
    from issuance.intake import run_intake

    root, remote = served_tree(kind, request, tmp_path)
    pickup = root / "pickup"
    good, endless_ok, endless_zip_ok = (
        make_apply_batch(size=3, seed=70 + n, seq=n) for n in (1, 2, 3)
    )
    for batch in (good, endless_ok, endless_zip_ok):
        write_batch(batch, pickup)
    lying = {f"{endless_ok.name}.ok", f"{endless_zip_ok.zip_name}.ok"}
    for name in lying:
        with open(pickup / name, "r+b") as f:
            f.truncate(64 << 20)
    listed, read = remote.list_dir, remote.read_bytes
    sizes: list[int] = []

    def list_dir(path: str) -> list[RemoteEntry]:
        return [dataclasses.replace(e, size=50) if e.name in lying else e for e in listed(path)]

    def read_bytes(path: str, limit: int | None = None) -> bytes:
        data = read(path, limit)
        sizes.append(len(data))
        return data

    remote.list_dir = list_dir  # type: ignore[method-assign]
    remote.read_bytes = read_bytes  # type: ignore[method-assign]
    with remote:
        outcomes = run_intake(remote, engine, context(tmp_path))

    assert sorted((o.name, o.outcome, o.file_code) for o in outcomes) == [
        (good.name, "accepted", None),
        (endless_ok.name, "rejected", "F01"),
        (endless_zip_ok.name, "rejected", "F10"),
    ]
    assert max(sizes) == MAX_CONTROL_BYTES + 1


@pytest.mark.parametrize("kind", ["local", pytest.param("openssh", marks=pytest.mark.sftp)])
def test_a_file_whose_control_file_is_unusable_is_f01_and_read_no_further_than_a_bound(
    kind: str, request: pytest.FixtureRequest, engine: Engine, tmp_path: Path
) -> None:
    """A 256 MiB file (mostly a hole) behind a control file that is no control file is F01
    whatever it holds: the hub keeps a bounded copy, knows it again when it comes again,
    and the other files go on."""
    from issuance.intake import run_intake

    root, remote = served_tree(kind, request, tmp_path)
    pickup = root / "pickup"
    good, endless = (make_apply_batch(size=3, seed=80 + n, seq=n) for n in (1, 2))
    for batch in (good, endless):
        write_batch(batch, pickup)
    (pickup / f"{endless.name}.ok").write_bytes(b"not a control file\r\n")
    with open(pickup / endless.name, "r+b") as f:
        f.truncate(256 << 20)

    with remote:
        outcomes = run_intake(remote, engine, context(tmp_path))

    assert sorted((o.name, o.outcome, o.file_code) for o in outcomes) == [
        (good.name, "accepted", None),
        (endless.name, "rejected", "F01"),
    ]
    assert disk_use(tmp_path / "work", tmp_path / "storage") < MAX_UNCONTROLLED_BYTES + (2 << 20)
    assert delivered_again(remote, engine, tmp_path, pickup, endless) == [
        (endless.name, "redelivered")
    ]


class CutShortWhilePublishing(LocalRemote):
    """A delivery run cut short (a crash, a dropped connection) at one step of the ICD §2
    write protocol."""

    def __init__(self, root: Path, step: str) -> None:
        super().__init__(root)
        self.step = step

    def _upload(
        self, path: str, data: bytes, before_rename: Callable[[], None] | None = None
    ) -> None:
        control = path.endswith(".ok")
        if self.step == "while writing the file" and not control:
            self._path(path + ".part").write_bytes(data[: len(data) // 2])
            raise TransientTransportError("connection reset by peer")
        if self.step == "just before the control file's rename" and control:
            if before_rename is not None:
                before_rename()
            raise TransientTransportError("connection reset by peer")
        super()._upload(path, data, before_rename)
        if self.step == "just after the control file's rename" and control:
            raise TransientTransportError("connection reset by peer")


def bureau_takes(drop: Path) -> list[tuple[str, bytes]]:
    """What the bureau takes from its drop (ICD §2): every file whose ``.ok`` is there,
    removed with it."""
    taken = []
    for ok in sorted(drop.glob("*.ok")):
        data = ok.with_suffix("")
        taken.append((data.name, data.read_bytes()))
        data.unlink()
        ok.unlink()
    return taken


STEPS = [
    "while writing the file",
    "just before the control file's rename",
    "just after the control file's rename",
]


@pytest.mark.parametrize("step", STEPS)
def test_a_delivery_cut_short_at_any_step_loses_no_file_and_the_bureau_receives_it_once(
    step: str, server: Path, engine: Engine, tmp_path: Path
) -> None:
    from exchange.outbox import deliver
    from issuance.intake import run_intake

    write_batch(make_apply_batch(size=3, seed=70), server / "pickup")
    ctx = context(tmp_path)
    run_intake(LocalRemote(server), engine, ctx)
    with engine.connect() as conn:
        (queued,) = conn.execute(select(OutboundFile.name, OutboundFile.data)).all()

    with pytest.raises(TransientTransportError):
        deliver(CutShortWhilePublishing(server, step), engine, ctx.store, ctx.conn_id, ctx.now)
    received = bureau_takes(server / "drop")
    for _ in range(2):  # the next run, and one after it
        deliver(LocalRemote(server), engine, ctx.store, ctx.conn_id, ctx.now)
        received += bureau_takes(server / "drop")

    assert received == [(queued.name, queued.data)]
    assert names_in(server / "drop") == set()
    with engine.connect() as conn:
        assert conn.scalar(select(OutboundFile.delivered_at)) is not None


def test_a_name_rejected_again_after_its_rej_was_taken_from_a_cut_short_delivery_gets_its_second_rej(
    server: Path, engine: Engine, tmp_path: Path
) -> None:
    from exchange.outbox import deliver
    from issuance.intake import run_intake

    first, second = make_bad_file("F08", size=4), make_bad_file("F02", size=4)
    ctx = context(tmp_path)
    write_batch(first, server / "pickup")
    run_intake(LocalRemote(server), engine, ctx)
    with pytest.raises(TransientTransportError):
        deliver(CutShortWhilePublishing(server, STEPS[-1]), engine, ctx.store, ctx.conn_id, ctx.now)
    received = bureau_takes(server / "drop")
    write_batch(second, server / "pickup")  # corrected, still wrong
    run_intake(LocalRemote(server), engine, ctx)

    deliver(LocalRemote(server), engine, ctx.store, ctx.conn_id, ctx.now)
    received += bureau_takes(server / "drop")

    assert [(name, data.split(b"|")[1]) for name, data in received] == [
        (f"{first.name}.rej", b"F08"),
        (f"{first.name}.rej", b"F02"),
    ]
