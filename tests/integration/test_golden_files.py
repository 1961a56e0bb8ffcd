"""Golden files for every file the hub writes (moov-io/ach): APPLYRSP, ACCTOPEN, PERSO,
CARDRSP and ``NAME.rej``, each with its ``NAME.ok`` control line, as the real services
deliver them into a counterparty's ``drop`` directory, must equal ``tests/golden/NAME``
byte for byte.

The inputs are fixed: seeded sandbox batches, NOW 2026-11-22 02:00 UTC (10:00 in
Shanghai), business date 20261122, the partner bank's answers written here by position
and a seeded card factory, so the same code writes the same bytes on SQLite and on
PostgreSQL (ACCTOPEN's req_no is ``AO`` + the application's id: the test database hands
ids out from 1 after every test on both, ``tests/conftest.py``).

A golden file changes only on purpose: with ``SSCARD_REGENERATE_GOLDEN=1`` each test
writes the files it would compare instead, and fails saying so, so a regeneration never
passes silently. Regenerate on SQLite, and read the files against ICD §4–§6 (GB18030 for
the data files, UTF-8 for ``.rej`` and ``.ok``) before committing them.
"""

from __future__ import annotations

import hashlib
import io
import os
import zipfile
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import Engine

from banking.pan import PanRange, make_pans
from exchange.answers import receive
from exchange.flows import Party, flow
from exchange.outbox import deliver
from exchange.pickup import PartyInbox
from exchange.storage import Storage
from issuance.accounts import apply_account_answers, open_hub_accounts, send_account_requests
from issuance.apply_rules import rules_for
from issuance.card_returns import write_card_returns
from issuance.intake import IntakeContext, run_intake
from issuance.personalisation import dispatch_perso
from issuance.production import apply_production_results
from sandbox.bureau import ApplyBatch, make_apply_batch, make_bad_file, write_batch
from sandbox.factory import CardFactorySimulator
from schemas import codes
from schemas.codec import DelimitedReader, FixedReader, Header, read_all, write_delimited
from schemas.codes import reason_text
from schemas.files import Control
from schemas.layouts import ACCTOPEN, ACCTOPENRSP
from schemas.layouts import CARDRSP as CARDRSP_LAYOUT
from schemas.layouts import PERSO as PERSO_LAYOUT
from transport.local import LocalRemote

GOLDEN = Path(__file__).resolve().parents[1] / "golden"
REGENERATE = "SSCARD_REGENERATE_GOLDEN"
NOW = datetime(2026, 11, 22, 2, 0, tzinfo=UTC)
DAY = "20261122"
HUB_PANS = PanRange("6217881")
PARTNER_PANS = PanRange("6229990")

APPLYRSP = "APPLYRSP_B001_R440100_20261122_001.txt"
ACCTOPEN_B002 = "ACCTOPEN_B001_B002_20261122_001.txt"
PERSO = "PERSO_B001_F01_20261122_001.txt"
CARDRSP = "CARDRSP_B001_R440100_20261122_001.txt"

#: one line of each of these kinds in the 30-line APPLY, the rest accepted
BAD_LINES = ("E101", "E104", "E107", "E108", "E111", "E113", "E116", "E117")
#: the partner's answers, by position in its ACCTOPEN: refusals with a code of ICD §6 and
#: with one of its own (passed to the bureau unchanged, ICD §5.4); every other line opened
PARTNER_REFUSALS = {0: "E132", 3: "E199"}
#: a seed under which the factory fails some of the cards, not all
FACTORY_SEED = 5
FACTORY_FAIL_SHARE = 0.15

_ACCTOPENRSP_FLOW = flow("ACCTOPENRSP", Party.PARTNER)
_PERSORSP_FLOW = flow("PERSORSP", Party.FACTORY)


# --------------------------------------------------------------------------- the comparison


def _text(data: bytes, name: str) -> str:
    encoding = "utf-8" if name.endswith((".rej", ".ok")) else "gb18030"
    return data.decode(encoding, errors="backslashreplace")


def _line_at(data: bytes, at: int) -> bytes:
    start = data.rfind(b"\n", 0, at) + 1
    end = data.find(b"\n", at)
    return data[start : end + 1 if end >= 0 else len(data)]


def _difference(path: Path, data: bytes) -> str | None:
    if not path.exists():
        return f"{path.name}: no golden file; create it on purpose with {REGENERATE}=1"
    expected = path.read_bytes()
    if expected == data:
        return None
    at = next(
        (i for i, (a, b) in enumerate(zip(expected, data, strict=False)) if a != b),
        min(len(expected), len(data)),
    )
    line = expected.count(b"\n", 0, at) + 1
    return (
        f"{path.name}: differs from byte {at} (line {line}); "
        f"{len(expected)} bytes in the golden file, {len(data)} written\n"
        f"  golden:  {_text(_line_at(expected, at), path.name)!r}\n"
        f"  written: {_text(_line_at(data, at), path.name)!r}"
    )


def match_golden(delivered: dict[str, bytes], golden: Path = GOLDEN) -> None:
    """Every delivered file equals ``golden/NAME`` byte for byte. With
    ``SSCARD_REGENERATE_GOLDEN=1`` the files are written there instead and the test
    fails all the same, saying which files it regenerated."""
    if os.environ.get(REGENERATE) == "1":
        golden.mkdir(parents=True, exist_ok=True)
        for name, data in delivered.items():
            (golden / name).write_bytes(data)
        pytest.fail(
            f"{REGENERATE}=1: regenerated {', '.join(sorted(delivered))} in {golden}; "
            "read them against the ICD, then run the tests without it",
            pytrace=False,
        )
    problems = [
        problem
        for name, data in sorted(delivered.items())
        if (problem := _difference(golden / name, data)) is not None
    ]
    if problems:
        pytest.fail("\n".join(problems), pytrace=False)


def delivered(drop: Path, *names: str) -> dict[str, bytes]:
    """``NAME`` and ``NAME.ok`` of each of ``names`` as published in ``drop``."""
    return {file: (drop / file).read_bytes() for name in names for file in (name, f"{name}.ok")}


def drop_names(tree: Path) -> set[str]:
    return {p.name for p in (tree / "drop").iterdir() if p.is_file()}


# --------------------------------------------------------------------------- the hub's steps


@pytest.fixture
def trees(tmp_path: Path) -> dict[str, Path]:
    """Each counterparty's SFTP tree: the bureau, partner bank B002, factory F01."""
    out = {}
    for code in ("R440100", "B002", "F01"):
        for sub in ("pickup", "drop"):
            (tmp_path / "sftp" / code / sub).mkdir(parents=True)
        out[code] = tmp_path / "sftp" / code
    return out


@pytest.fixture
def store(tmp_path: Path) -> Storage:
    return Storage(str(tmp_path / "storage"))


def applications() -> ApplyBatch:
    """30 lines to the hub and partner B002, eight of them wrong in one field each."""
    return make_apply_batch(
        size=30,
        seed=7,
        bank_codes=("B001", "B002"),
        bad_share={code: 1 / 30 for code in BAD_LINES},
    )


def take_applications(
    batch: ApplyBatch,
    trees: dict[str, Path],
    engine: Engine,
    store: Storage,
    work: Path,
) -> None:
    """The bureau's APPLY intake, its answers delivered into the bureau's drop."""
    write_batch(batch, trees["R440100"] / "pickup")
    remote = LocalRemote(trees["R440100"])
    ctx = IntakeContext(
        conn_id="sftp_r440100",
        hub="B001",
        bureau="R440100",
        encoding="GB18030",
        pickup="pickup",
        drop="drop",
        business_date=DAY,
        now=NOW,
        rules=rules_for(DAY, frozenset({"B001", "B002", "B003"}), "R440100"),
        work_dir=work,
        store=store,
    )
    run_intake(remote, engine, ctx)
    deliver(remote, engine, store, ctx.conn_id, NOW)


def request_accounts(
    trees: dict[str, Path], engine: Engine, store: Storage, work: Path
) -> str | None:
    """The day's ACCTOPEN to partner B002, delivered."""
    name = send_account_requests(
        engine,
        hub="B001",
        bank_code="B002",
        conn_id="sftp_b002",
        drop="drop",
        encoding="GB18030",
        business_date=DAY,
        now=NOW,
        work_dir=work,
        store=store,
    )
    deliver(LocalRemote(trees["B002"]), engine, store, "sftp_b002", NOW)
    return name


def inbox(code: str, store: Storage, work: Path) -> PartyInbox:
    return PartyInbox(
        conn_id=f"sftp_{code.lower()}",
        party=code,
        hub="B001",
        pickup="pickup",
        drop="drop",
        encoding="GB18030",
        business_date=DAY,
        now=NOW,
        work_dir=work,
        store=store,
    )


def answer_accounts(
    trees: dict[str, Path], engine: Engine, store: Storage, work: Path, request: str
) -> None:
    """Partner B002 answers its ACCTOPEN by position (:data:`PARTNER_REFUSALS`, new PANs
    of its own range otherwise) and the hub applies the answer. Written here rather than
    by the sandbox bank, whose answers are drawn from the req_no (see
    :func:`test_an_acctopen_does_not_depend_on_the_ids_the_database_handed_out_before`)."""
    reader = DelimitedReader((trees["B002"] / "drop" / request).read_bytes(), ACCTOPEN)
    table, rejected = read_all(reader)
    assert rejected == []
    req_nos = table.column("req_no").to_pylist()
    pans = iter(make_pans(PARTNER_PANS, 1, len(req_nos)))
    rows = [
        [req_no, "01", code, reason_text(code), "", ""]
        if (code := PARTNER_REFUSALS.get(i))
        else [req_no, "00", "", "", next(pans), "01"]
        for i, req_no in enumerate(req_nos)
    ]
    out = io.BytesIO()
    header = Header("ACCTOPENRSP", "B002", "B001", reader.header.batch_no, DAY, len(rows))
    write_delimited(out, ACCTOPENRSP, header, rows)
    remote = LocalRemote(trees["B002"])
    remote.publish(
        "pickup",
        request.replace("ACCTOPEN_", "ACCTOPENRSP_").replace("B001_B002", "B002_B001"),
        out.getvalue(),
        len(rows),
    )
    outcomes = receive(
        remote,
        engine,
        inbox("B002", store, work),
        _ACCTOPENRSP_FLOW,
        lambda conn, reader, landed, file_id: apply_account_answers(
            conn, reader, landed, file_id, DAY
        ),
    )
    assert [(o.outcome, o.counts["problems"]) for o in outcomes] == [("accepted", 0)]


def produce_cards(
    trees: dict[str, Path], engine: Engine, store: Storage, work: Path
) -> dict[str, bytes]:
    """Hub accounts, the PERSO to factory F01 and the factory's returns applied; what the
    hub published for the factory, read before the factory took it."""
    open_hub_accounts(engine, "B001", HUB_PANS, DAY)
    dispatch_perso(
        engine,
        hub="B001",
        factory="F01",
        conn_id="sftp_f01",
        drop="drop",
        business_date=DAY,
        now=NOW,
        bureaus=("R440100",),
        work_dir=work / "perso",
        store=store,
    )
    remote = LocalRemote(trees["F01"])
    deliver(remote, engine, store, "sftp_f01", NOW)
    published = {p.name: p.read_bytes() for p in (trees["F01"] / "drop").iterdir()}
    CardFactorySimulator(remote, fail_share=FACTORY_FAIL_SHARE, seed=FACTORY_SEED).run(DAY)
    outcomes = receive(
        remote,
        engine,
        inbox("F01", store, work / "persorsp"),
        _PERSORSP_FLOW,
        lambda conn, reader, landed, file_id: apply_production_results(
            conn, reader, landed, file_id, DAY
        ),
    )
    assert [o.outcome for o in outcomes] == ["accepted"]
    return published


def return_cards(trees: dict[str, Path], engine: Engine, store: Storage, work: Path) -> str | None:
    """The day's CARDRSP to the bureau, delivered."""
    name = write_card_returns(
        engine,
        hub="B001",
        bureau="R440100",
        conn_id="sftp_r440100",
        drop="drop",
        encoding="GB18030",
        business_date=DAY,
        now=NOW,
        work_dir=work,
        store=store,
    )
    deliver(LocalRemote(trees["R440100"]), engine, store, "sftp_r440100", NOW)
    return name


@pytest.fixture
def issuance_day(
    trees: dict[str, Path], engine: Engine, store: Storage, tmp_path: Path
) -> dict[str, bytes]:
    """The applications taken, accounts opened at the hub and at B002 (two refused), the
    cards made or failed at the factory, the day's CARDRSP delivered; returns what the hub
    published for the factory."""
    take_applications(applications(), trees, engine, store, tmp_path / "intake")
    request = request_accounts(trees, engine, store, tmp_path / "acctopen")
    assert request == ACCTOPEN_B002
    answer_accounts(trees, engine, store, tmp_path / "acctopenrsp", request)
    published = produce_cards(trees, engine, store, tmp_path / "factory")
    assert return_cards(trees, engine, store, tmp_path / "cardrsp") == CARDRSP
    return published


# --------------------------------------------------------------------------- the golden files


def test_applyrsp_answers_every_line_of_an_apply_as_its_golden_file(
    trees: dict[str, Path], engine: Engine, store: Storage, tmp_path: Path
) -> None:
    batch = applications()
    assert sorted(code for code in batch.expected if code) == sorted(BAD_LINES)

    take_applications(batch, trees, engine, store, tmp_path / "intake")

    drop = trees["R440100"] / "drop"
    assert drop_names(trees["R440100"]) == {APPLYRSP, f"{APPLYRSP}.ok"}
    match_golden(delivered(drop, APPLYRSP))


def test_acctopen_asks_the_partner_for_the_accounts_of_its_applications_as_its_golden_file(
    trees: dict[str, Path], engine: Engine, store: Storage, tmp_path: Path
) -> None:
    take_applications(applications(), trees, engine, store, tmp_path / "intake")

    assert request_accounts(trees, engine, store, tmp_path / "acctopen") == ACCTOPEN_B002

    assert drop_names(trees["B002"]) == {ACCTOPEN_B002, f"{ACCTOPEN_B002}.ok"}
    match_golden(delivered(trees["B002"] / "drop", ACCTOPEN_B002))


def test_perso_sends_the_cards_of_the_hub_and_of_the_partner_as_its_golden_file(
    issuance_day: dict[str, bytes],
) -> None:
    zip_name = PERSO.removesuffix(".txt") + ".zip"
    assert set(issuance_day) == {PERSO, f"{PERSO}.ok", zip_name, f"{zip_name}.ok"}
    # the zip holds the sandbox bureau's photos, drawn with unseeded noise: checked, not golden
    photos = issuance_day[zip_name]
    Control.parse(issuance_day[f"{zip_name}.ok"], zip_name).verify(
        len(photos), hashlib.sha256(photos).hexdigest()
    )
    table, rejected = read_all(FixedReader(issuance_day[PERSO], PERSO_LAYOUT))
    assert rejected == []
    with zipfile.ZipFile(io.BytesIO(photos)) as archive:
        assert archive.namelist() == table.column("photo").to_pylist()
    match_golden({name: issuance_day[name] for name in (PERSO, f"{PERSO}.ok")})


def test_cardrsp_returns_made_cards_and_failures_at_the_bank_and_factory_as_its_golden_file(
    issuance_day: dict[str, bytes], trees: dict[str, Path]
) -> None:
    drop = trees["R440100"] / "drop"
    assert drop_names(trees["R440100"]) == {
        APPLYRSP,
        f"{APPLYRSP}.ok",
        CARDRSP,
        f"{CARDRSP}.ok",
    }
    table, rejected = read_all(DelimitedReader((drop / CARDRSP).read_bytes(), CARDRSP_LAYOUT))
    assert rejected == []
    outcomes = set(
        zip(
            table.column("fail_stage").to_pylist(),
            table.column("reason_code").to_pylist(),
            strict=True,
        )
    )
    assert {("0", ""), ("1", "E132"), ("1", "E199")} <= outcomes
    assert any(stage == "2" for stage, _ in outcomes)
    match_golden(delivered(drop, CARDRSP))


def test_files_rejected_as_a_whole_are_answered_with_their_golden_rej(
    trees: dict[str, Path], engine: Engine, store: Storage, tmp_path: Path
) -> None:
    truncated = make_bad_file("F08", size=5, seed=11)
    misnamed = make_bad_file("F07", size=3, seed=12, seq=2)
    write_batch(misnamed, trees["R440100"] / "pickup")

    take_applications(truncated, trees, engine, store, tmp_path / "intake")

    rejs = [f"{truncated.name}.rej", f"{misnamed.name}.rej"]
    assert drop_names(trees["R440100"]) == {*rejs, *(f"{rej}.ok" for rej in rejs)}
    match_golden(delivered(trees["R440100"] / "drop", *rejs))


# --------------------------------------------------------------------------- what the goldens guard


def test_a_golden_file_with_one_byte_flipped_fails_the_comparison(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(REGENERATE, raising=False)
    data = (GOLDEN / APPLYRSP).read_bytes()
    at = data.index("无效".encode("gb18030"))
    flipped = bytearray(data)
    flipped[at] ^= 0x01
    (tmp_path / APPLYRSP).write_bytes(bytes(flipped))
    line = data.count(b"\n", 0, at) + 1

    with pytest.raises(
        pytest.fail.Exception, match=rf"{APPLYRSP}: differs from byte {at} \(line {line}\)"
    ):
        match_golden({APPLYRSP: data}, tmp_path)

    (tmp_path / APPLYRSP).write_bytes(data)
    match_golden({APPLYRSP: data}, tmp_path)


def test_a_changed_reason_text_fails_the_applyrsp_golden_file(
    trees: dict[str, Path],
    engine: Engine,
    store: Storage,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv(REGENERATE, raising=False)
    monkeypatch.setitem(codes.MESSAGES, "E104", ("姓名不合规", "name invalid"))

    golden = (GOLDEN / APPLYRSP).read_bytes()
    line = golden.count(b"\n", 0, golden.index(b"|E104|")) + 1

    take_applications(applications(), trees, engine, store, tmp_path / "intake")

    with pytest.raises(pytest.fail.Exception, match=rf"differs from byte \d+ \(line {line}\)"):
        match_golden(delivered(trees["R440100"] / "drop", APPLYRSP))


def test_regenerating_writes_the_golden_files_and_still_fails(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(REGENERATE, "1")

    with pytest.raises(pytest.fail.Exception, match=f"{REGENERATE}=1: regenerated X.txt, X.txt.ok"):
        match_golden({"X.txt": b"H|X\r\n", "X.txt.ok": b"X.txt|5\r\n"}, tmp_path)

    assert (tmp_path / "X.txt").read_bytes() == b"H|X\r\n"
    assert (tmp_path / "X.txt.ok").read_bytes() == b"X.txt|5\r\n"
