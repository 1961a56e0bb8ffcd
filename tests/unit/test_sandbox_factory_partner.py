"""The simulated card factory and partner bank answer the hub's files as the ICD says."""

from __future__ import annotations

import hashlib
import io
import re
import zipfile
from collections import Counter
from pathlib import Path

import pytest
from stdnum import luhn

from sandbox.factory import ANOMALY_KINDS, CardFactorySimulator
from sandbox.partner_bank import REFUSAL_WEIGHTS, PartnerBankSimulator
from sandbox.people import make_people, photo_cache
from schemas.codec import (
    DelimitedReader,
    FixedReader,
    Header,
    read_all,
    write_delimited,
    write_fixed,
)
from schemas.codes import reason_text
from schemas.files import Control, FileName
from schemas.layouts import ACCTOPEN, ACCTOPENRSP, PERSO, PERSORSP
from transport.local import LocalRemote

DATE = "20261122"
NEXT_DATE = "20261123"
CARD_ID_CODE = re.compile(r"[0-9]{6}D156000005[0-9A-F]{16}")
ATR = re.compile(r"3B[0-9A-F]{18,38}")
BOX_NO = re.compile(rf"BX{DATE}[0-9]{{4}}")
FACTORY_REASONS = {"M001", "M002", "M003", "M004", "M099"}


@pytest.fixture
def remote(tmp_path: Path) -> LocalRemote:
    return LocalRemote(tmp_path / "remote")


def hub_pan(n: int) -> str:
    body = f"621788{n:012d}"
    return body + luhn.calc_check_digit(body)


# --------------------------------------------------------------------------- factory


def perso_rows(size: int, seed: int = 0, date: str = DATE) -> list[list[str]]:
    rows = []
    for i, person in enumerate(make_people(size, seed=seed, business_date=date)):
        card_no = f"{chr(ord('A') + seed % 26)}{i + 1:08d}"
        rows.append(
            [
                card_no,
                "01",
                person.id_no,
                person.name,
                person.gender,
                person.ethnicity,
                person.birth_date,
                person.region_code,
                date,
                f"{int(date[:4]) + 10}{date[4:]}",
                "B001",
                hub_pan(seed * 100_000 + i),
                "01",
                f"{card_no}.jpg",
            ]
        )
    return rows


def publish_perso(
    remote: LocalRemote,
    rows: list[list[str]],
    seq: int = 1,
    date: str = DATE,
    *,
    missing_photos: frozenset[str] = frozenset(),
    with_zip: bool = True,
) -> str:
    name = FileName("PERSO", "B001", "F01", date, f"{seq:03d}")
    out = io.BytesIO()
    write_fixed(
        out, PERSO, Header("PERSO", "B001", "F01", f"P{date}{seq:03d}", date, len(rows)), rows
    )
    if with_zip:
        publish_zip(remote, name, rows, missing_photos)
    remote.publish("drop", str(name), out.getvalue(), len(rows))
    return str(name)


def publish_zip(
    remote: LocalRemote,
    name: FileName,
    rows: list[list[str]],
    missing_photos: frozenset[str] = frozenset(),
) -> None:
    pool = photo_cache(4, 0, fast=True)
    buffer = io.BytesIO()
    entries = 0
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:
        for i, row in enumerate(rows):
            photo = row[PERSO.index("photo")]
            if photo and photo not in missing_photos:
                archive.writestr(photo, pool[i % len(pool)])
                entries += 1
    remote.publish("drop", str(name.companion("zip")), buffer.getvalue(), entries)


def read_persorsp(remote: LocalRemote, name: str) -> tuple[Header, list[dict[str, str]]]:
    data = remote.read_bytes(f"pickup/{name}")
    control = Control.parse(remote.read_bytes(f"pickup/{name}.ok"), name)
    reader = FixedReader(data, PERSORSP, control_count=control.record_count)
    table, rejections = read_all(reader)
    assert rejections == []
    return reader.header, [
        {k: v for k, v in row.items() if not k.startswith("_")} for row in table.to_pylist()
    ]


def test_factory_answers_every_card_once_with_valid_records(remote: LocalRemote) -> None:
    rows = perso_rows(60)
    perso = publish_perso(remote, rows, seq=7)
    factory = CardFactorySimulator(remote, fail_share=0.1, seed=3)

    written = factory.run(DATE)

    assert written == [f"PERSORSP_F01_B001_{DATE}_001.txt"]
    header, records = read_persorsp(remote, written[0])
    assert (header.type, header.sender, header.receiver) == ("PERSORSP", "F01", "B001")
    assert header.business_date == DATE
    assert header.batch_no == f"F01{DATE}001"
    assert [(r["card_no"], r["pan"]) for r in records] == [(row[0], row[11]) for row in rows]
    regions = {row[0]: row[7] for row in rows}
    for r in records:
        assert r["made_date"] == DATE
        if r["result"] == "00":
            assert r["reason_code"] == ""
            assert CARD_ID_CODE.fullmatch(r["card_id_code"])
            assert r["card_id_code"][:6] == regions[r["card_no"]]
            assert ATR.fullmatch(r["atr"]) and 20 <= len(r["atr"]) <= 40
            assert BOX_NO.fullmatch(r["box_no"])
        else:
            assert r["result"] == "01"
            assert r["reason_code"] in FACTORY_REASONS
            assert (r["card_id_code"], r["atr"], r["box_no"]) == ("", "", "")
        assert factory.results[r["card_no"]] == (
            r["result"],
            r["reason_code"],
            r["card_id_code"],
            r["atr"],
            r["box_no"],
        )
    assert len({r["card_id_code"] for r in records if r["result"] == "00"}) == sum(
        r["result"] == "00" for r in records
    )
    assert factory.answered == {perso: written}
    assert remote.list_dir("drop") == []
    assert factory.run(DATE) == []


def test_factory_failure_share_is_roughly_honoured(remote: LocalRemote) -> None:
    rows = perso_rows(1000, seed=1)
    publish_perso(remote, rows)
    factory = CardFactorySimulator(remote, fail_share=0.03, seed=5)
    (name,) = factory.run(DATE)
    _, records = read_persorsp(remote, name)
    assert len(records) == 1000
    failed = [r for r in records if r["result"] == "01"]
    assert 12 <= len(failed) <= 55
    assert {r["reason_code"] for r in failed} <= FACTORY_REASONS
    assert len({r["reason_code"] for r in failed}) >= 3
    boxes = Counter(r["box_no"] for r in records if r["result"] == "00")
    assert max(boxes.values()) <= 200 and len(boxes) == 5


def test_factory_is_deterministic(tmp_path: Path) -> None:
    outcomes = []
    for run in ("a", "b"):
        remote = LocalRemote(tmp_path / run)
        publish_perso(remote, perso_rows(100, seed=2))
        factory = CardFactorySimulator(remote, fail_share=0.2, seed=9)
        (name,) = factory.run(DATE)
        outcomes.append(remote.read_bytes(f"pickup/{name}"))
    assert outcomes[0] == outcomes[1]


def test_missing_photo_fails_m003(remote: LocalRemote) -> None:
    rows = perso_rows(10)
    rows[4][PERSO.index("photo")] = ""
    missing = frozenset({rows[2][PERSO.index("photo")], rows[7][PERSO.index("photo")]})
    publish_perso(remote, rows, missing_photos=missing)
    factory = CardFactorySimulator(remote, fail_share=0.0)
    (name,) = factory.run(DATE)
    _, records = read_persorsp(remote, name)
    failed = {r["card_no"]: r["reason_code"] for r in records if r["result"] == "01"}
    assert failed == {rows[2][0]: "M003", rows[7][0]: "M003"}


def test_perso_waits_for_its_zip(remote: LocalRemote) -> None:
    rows = perso_rows(5)
    perso = publish_perso(remote, rows, with_zip=False)
    factory = CardFactorySimulator(remote)
    assert factory.run(DATE) == []
    assert remote.exists(f"drop/{perso}") and remote.exists(f"drop/{perso}.ok")
    publish_zip(remote, FileName.parse(perso), rows)
    assert len(factory.run(DATE)) == 1
    assert remote.list_dir("drop") == []


def test_unreadable_perso_stays_in_drop(remote: LocalRemote) -> None:
    name = FileName("PERSO", "B001", "F01", DATE, "001")
    rows = perso_rows(3)
    out = io.BytesIO()
    write_fixed(out, PERSO, Header("PERSO", "B001", "F01", "P1", DATE, 3), rows)
    truncated = out.getvalue()[: -(PERSO.record_length or 0) - 2]
    publish_zip(remote, name, rows)
    remote.publish("drop", str(name), truncated, 3)
    assert CardFactorySimulator(remote).run(DATE) == []
    assert remote.exists(f"drop/{name}")


def test_perso_dated_later_waits(remote: LocalRemote) -> None:
    publish_perso(remote, perso_rows(3, date=NEXT_DATE), date=NEXT_DATE)
    factory = CardFactorySimulator(remote)
    assert factory.run(DATE) == []
    assert factory.run(NEXT_DATE) == [f"PERSORSP_F01_B001_{NEXT_DATE}_001.txt"]


def test_split_and_own_seq_numbering(remote: LocalRemote) -> None:
    first, second = perso_rows(10, seed=3), perso_rows(7, seed=4)
    publish_perso(remote, first, seq=4)
    publish_perso(remote, second, seq=9)
    factory = CardFactorySimulator(remote, split=3, fail_share=0.0)

    written = factory.run(DATE)

    assert written == [f"PERSORSP_F01_B001_{DATE}_{seq:03d}.txt" for seq in range(1, 7)]
    seen: Counter[str] = Counter()
    batch_nos = set()
    for name in written:
        header, records = read_persorsp(remote, name)
        assert header.batch_no == f"F01{DATE}{name[-7:-4]}"
        batch_nos.add(header.batch_no)
        assert 2 <= len(records) <= 4
        seen.update(r["card_no"] for r in records)
    assert len(batch_nos) == 6
    assert seen == Counter(row[0] for row in first + second)

    # the hub took the files; the next SEQ of the day follows the archived ones
    for name in written:
        remote.move(f"pickup/{name}", f"pickup/archive/{DATE}")
        remote.move(f"pickup/{name}.ok", f"pickup/archive/{DATE}")
    publish_perso(remote, perso_rows(2, seed=5), seq=10)
    fresh = CardFactorySimulator(remote, split=1)
    assert fresh.run(DATE) == [f"PERSORSP_F01_B001_{DATE}_007.txt"]


def test_split_larger_than_the_file_writes_no_empty_files(remote: LocalRemote) -> None:
    publish_perso(remote, perso_rows(2))
    written = CardFactorySimulator(remote, split=5).run(DATE)
    assert len(written) == 2


def test_the_same_perso_name_is_never_answered_twice(remote: LocalRemote) -> None:
    rows = perso_rows(4)
    publish_perso(remote, rows)
    factory = CardFactorySimulator(remote)
    assert len(factory.run(DATE)) == 1
    publish_perso(remote, rows)
    assert factory.run(DATE) == []
    assert remote.list_dir("drop") == []


def test_anomalies(remote: LocalRemote) -> None:
    rows = perso_rows(20, seed=6)
    publish_perso(remote, rows)
    factory = CardFactorySimulator(remote, fail_share=0.0)
    (name,) = factory.run(DATE, anomalies={"unknown_card": 2, "wrong_pan": 1})
    _, records = read_persorsp(remote, name)
    assert len(records) == 23
    perso_cards = {row[0]: row[11] for row in rows}
    extra = records[20:]
    unknown = [r for r in extra if r["card_no"] not in perso_cards]
    assert len(unknown) == 2
    assert all(r["pan"] not in perso_cards.values() for r in unknown)
    assert all(luhn.is_valid(r["pan"]) for r in extra)
    (wrong,) = [r for r in extra if r["card_no"] in perso_cards]
    assert wrong["card_no"] == rows[0][0] and wrong["pan"] != rows[0][11]
    assert [kind for kind, _ in factory.anomalies_sent] == [
        "unknown_card",
        "unknown_card",
        "wrong_pan",
    ]

    # a card answered on an earlier day comes back again, in a file of its own
    (again,) = factory.run(NEXT_DATE, anomalies={"duplicate": 1})
    assert again == f"PERSORSP_F01_B001_{NEXT_DATE}_001.txt"
    _, (duplicate,) = read_persorsp(remote, again)
    assert duplicate == records[0]

    with pytest.raises(ValueError):
        factory.run(NEXT_DATE, anomalies={"bogus": 1})
    assert set(ANOMALY_KINDS) == {"unknown_card", "duplicate", "wrong_pan"}


# --------------------------------------------------------------------------- partner bank


def acctopen_rows(size: int, start: int = 1) -> list[list[str]]:
    rows = []
    for i, person in enumerate(make_people(size, seed=f"acct{start}"), start=start):
        rows.append(
            [
                f"Q{DATE}{i:06d}",
                f"A{DATE}{i:06d}",
                "01",
                person.id_no,
                person.id_valid_to,
                person.name,
                person.gender,
                person.birth_date,
                "CHN",
                person.occupation,
                person.mobile,
                person.address,
                f"C{i:08d}",
                "",
                "",
            ]
        )
    return rows


def publish_acctopen(
    remote: LocalRemote, rows: list[list[str]], seq: int = 1, date: str = DATE
) -> str:
    name = FileName("ACCTOPEN", "B001", "B002", date, f"{seq:03d}")
    out = io.BytesIO()
    header = Header("ACCTOPEN", "B001", "B002", f"H{date}{seq:03d}", date, len(rows))
    write_delimited(out, ACCTOPEN, header, rows)
    remote.publish("drop", str(name), out.getvalue(), len(rows))
    return str(name)


def read_acctopenrsp(remote: LocalRemote, name: str) -> tuple[Header, list[dict[str, str]]]:
    data = remote.read_bytes(f"pickup/{name}")
    control = Control.parse(remote.read_bytes(f"pickup/{name}.ok"), name)
    control.verify(len(data), hashlib.sha256(data).hexdigest())
    reader = DelimitedReader(data, ACCTOPENRSP, control_count=control.record_count)
    table, rejections = read_all(reader)
    assert rejections == []
    return reader.header, [
        {k: v for k, v in row.items() if not k.startswith("_")} for row in table.to_pylist()
    ]


def test_partner_answers_every_line_in_order(remote: LocalRemote) -> None:
    rows = acctopen_rows(300)
    request = publish_acctopen(remote, rows, seq=4)
    bank = PartnerBankSimulator(remote, refuse_share=0.05, seed=1)

    written = bank.run(DATE)

    assert written == [f"ACCTOPENRSP_B002_B001_{DATE}_004.txt"]
    assert written[0] == str(FileName.parse(request).response())
    header, answers = read_acctopenrsp(remote, written[0])
    assert (header.type, header.sender, header.receiver) == ("ACCTOPENRSP", "B002", "B001")
    assert (header.batch_no, header.business_date) == (f"H{DATE}004", DATE)
    assert [a["req_no"] for a in answers] == [row[0] for row in rows]
    made = [a for a in answers if a["result"] == "00"]
    refused = [a for a in answers if a["result"] == "01"]
    assert len(made) + len(refused) == 300
    assert 5 <= len(refused) <= 30
    for a in made:
        assert len(a["pan"]) == 19 and a["pan"].startswith("622002")
        assert luhn.is_valid(a["pan"])
        assert a["pan_seq"] == "01" and a["reason_code"] == ""
    assert len({a["pan"] for a in made}) == len(made)
    for a in refused:
        assert a["reason_code"] in REFUSAL_WEIGHTS
        assert a["reason_text"] == reason_text(a["reason_code"])
        assert (a["pan"], a["pan_seq"]) == ("", "")
    assert {a["req_no"]: tuple(list(a.values())[1:]) for a in answers} == bank.answers
    assert remote.list_dir("drop") == []
    assert bank.run(DATE) == []


def test_partner_repeats_its_first_answer(tmp_path: Path, remote: LocalRemote) -> None:
    first = acctopen_rows(40)
    publish_acctopen(remote, first, seq=1)
    bank = PartnerBankSimulator(remote, refuse_share=0.3, seed=2, state_dir=tmp_path / "state")
    (name,) = bank.run(DATE)
    _, answers = read_acctopenrsp(remote, name)
    by_req = {a["req_no"]: a for a in answers}
    assert {a["result"] for a in answers} == {"00", "01"}

    again = [first[5], first[0], *acctopen_rows(3, start=100), first[5]]
    again[1] = list(again[1])
    again[1][10] = "13900000000"  # a changed line under an answered req_no: same answer
    publish_acctopen(remote, again, seq=2)
    # a new bank process remembers through its state file
    reborn = PartnerBankSimulator(remote, refuse_share=0.3, seed=2, state_dir=tmp_path / "state")
    assert reborn.answers == bank.answers
    (name2,) = reborn.run(DATE)
    _, answers2 = read_acctopenrsp(remote, name2)
    assert answers2[0] == by_req[first[5][0]]
    assert answers2[1] == by_req[first[0][0]]
    assert answers2[5]["result"] == "01" and answers2[5]["reason_code"] == "E107"
    new_pans = {a["pan"] for a in answers2[2:5] if a["pan"]}
    assert not new_pans & {a["pan"] for a in answers}


def test_partner_keeps_the_account_on_replacement(remote: LocalRemote) -> None:
    rows = acctopen_rows(1)
    publish_acctopen(remote, rows, seq=1)
    bank = PartnerBankSimulator(remote, refuse_share=0.0)
    bank.run(DATE)
    (first,) = bank.answers.values()
    pan = first[3]

    replacement = acctopen_rows(2, start=50)
    replacement[0][13:15] = [pan, "1"]
    replacement[1][13:15] = [hub_pan(7), "0"]
    publish_acctopen(remote, replacement, seq=2)
    (name,) = bank.run(DATE)
    _, answers = read_acctopenrsp(remote, name)
    assert (answers[0]["pan"], answers[0]["pan_seq"]) == (pan, "02")
    assert answers[1]["pan"] not in (pan, hub_pan(7)) and answers[1]["pan_seq"] == "01"


def test_partner_answers_layout_failures_with_their_code(remote: LocalRemote) -> None:
    rows = acctopen_rows(3)
    rows[1][10] = "12345"
    publish_acctopen(remote, rows)
    bank = PartnerBankSimulator(remote, refuse_share=0.0)
    (name,) = bank.run(DATE)
    _, answers = read_acctopenrsp(remote, name)
    assert [a["result"] for a in answers] == ["00", "01", "00"]
    assert answers[1]["reason_code"] == "E114"


def test_partner_silent_and_skipped_files_stay_in_drop(remote: LocalRemote) -> None:
    one = publish_acctopen(remote, acctopen_rows(2), seq=1)
    two = publish_acctopen(remote, acctopen_rows(2, start=10), seq=2)
    bank = PartnerBankSimulator(remote)
    assert bank.run(DATE, silent=True) == []
    assert bank.run(DATE, skip_files={one}) == [str(FileName.parse(two).response())]
    assert remote.exists(f"drop/{one}") and not remote.exists(f"drop/{two}")
    assert bank.run(DATE) == [str(FileName.parse(one).response())]


def test_partner_leaves_unreadable_and_incomplete_files(remote: LocalRemote) -> None:
    name = FileName("ACCTOPEN", "B001", "B002", DATE, "001")
    out = io.BytesIO()
    rows = acctopen_rows(3)
    write_delimited(out, ACCTOPEN, Header("ACCTOPEN", "B001", "B002", "X1", DATE, 3), rows)
    without_trailer = out.getvalue().rsplit(b"T|", 1)[0]
    remote.publish("drop", str(name), without_trailer, 3)
    remote.makedirs("drop")
    (remote.root / "drop" / "ACCTOPEN_B001_B002_20261122_002.txt").write_bytes(out.getvalue())
    bank = PartnerBankSimulator(remote)
    assert bank.run(DATE) == []
    assert remote.exists(f"drop/{name}")
    assert remote.list_dir("pickup") == []


def test_partner_is_deterministic_per_seed(tmp_path: Path) -> None:
    answers = []
    for run in ("a", "b", "c"):
        remote = LocalRemote(tmp_path / run)
        publish_acctopen(remote, acctopen_rows(50))
        bank = PartnerBankSimulator(remote, refuse_share=0.2, seed=0 if run != "c" else 1)
        bank.run(DATE)
        answers.append(bank.answers)
    assert answers[0] == answers[1]
    assert answers[0] != answers[2]
