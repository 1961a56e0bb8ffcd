"""The sandbox's servicing counterparties: the channel's CHANNEL files (ICD §5.9), the
bureau's STATUS files and BANKEVT reading (§5.7, §5.8), the partner bank's STATUSRSP and
BANKEVT."""

from __future__ import annotations

import hashlib
import io
import os
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from stdnum import luhn

from banking.keystore import MemoryKeyStore
from banking.pin import Pin, PinContext, PinRefused, Why, open_pin_block, weak_reason, within_window
from sandbox.channel import (
    BLOCK_FAULTS,
    FAULT_KINDS,
    WEAK_KINDS,
    ChannelCard,
    ChannelFile,
    ChannelRspError,
    make_channel_file,
    read_channelrsp,
    write_channel_file,
)
from sandbox.people import make_card_no, make_people
from sandbox.servicing import (
    PartnerServicing,
    ServicingFileError,
    make_status_file,
    publish_file,
    read_bankevt,
    read_statusrsp,
)
from schemas.codec import DelimitedReader, Header, read_all, write_delimited
from schemas.files import Control, FileLevelError, FileName
from schemas.layouts import CHANNEL, CHANNELRSP, STATUS, STATUSRSP

DATE = "20261122"
NOW = datetime(2026, 11, 22, 2, 30, tzinfo=UTC)  # 10:30 in Asia/Shanghai
KEY_ID = 1
KEY = bytes(range(32))
RARE = "𪚥"  # four bytes in GB18030

WEAK_WHY = {
    "weak_equal": Why.ALL_EQUAL,
    "weak_ascending": Why.ASCENDING,
    "weak_descending": Why.DESCENDING,
    "weak_id_no": Why.ID_NO,
    "weak_card_no": Why.CARD_NO,
    "weak_birth_yymmdd": Why.BIRTH_DATE,
    "weak_birth_mmddyy": Why.BIRTH_DATE,
}


def make_cards(n: int, seed: int = 0, **state: object) -> list[ChannelCard]:
    rng = random.Random(seed)
    cards = []
    for person in make_people(n, seed=seed):
        body = "6217" + f"{rng.randrange(10**14):014d}"
        cards.append(
            ChannelCard(
                card_no=make_card_no(rng),
                pan=body + luhn.calc_check_digit(body),
                id_no=person.id_no,
                name=person.name,
                birth_date=person.birth_date,
                **state,  # type: ignore[arg-type]
            )
        )
    cards[0].name = "王" + RARE
    return cards


def channel_file(cards: list[ChannelCard], **options: object) -> ChannelFile:
    return make_channel_file(
        cards,
        business_date=DATE,
        now=NOW,
        key_id=KEY_ID,
        key=KEY,
        **options,  # type: ignore[arg-type]
    )


@pytest.fixture(scope="module")
def big() -> ChannelFile:
    return channel_file(make_cards(400), size=400)


def keys() -> MemoryKeyStore:
    return MemoryKeyStore({("C01", KEY_ID): KEY}, {})


def context(request_row: list[str]) -> PinContext:
    req_no, op, pan, card_no, *_ = request_row
    return PinContext(req_no, op, pan, card_no, request_row[7], "C01")


# --------------------------------------------------------------------------- CHANNEL


def test_a_channel_file_reads_back_with_the_projects_reader(big: ChannelFile) -> None:
    control = Control.parse(big.control, big.name)
    control.verify(len(big.data), hashlib.sha256(big.data).hexdigest())
    reader = DelimitedReader(big.data, CHANNEL, "GB18030", control_count=control.record_count)
    table, rejections = read_all(reader)
    assert rejections == []
    assert reader.header == Header("CHANNEL", "C01", "B001", "C0120261122001", DATE, 400)
    assert table.column("_seq").to_pylist() == list(range(1, 401))
    assert table.column("req_no").to_pylist() == [r.req_no for r in big.requests]
    assert str(FileName.parse(big.name)) == "CHANNEL_C01_B001_20261122_001.txt"
    lines = big.data.split(b"\r\n")
    assert lines[-1] == b"" and all(b"\n" not in line for line in lines)
    assert len(lines) == 400 + 3
    assert ("王" + RARE).encode("gb18030") in big.data
    assert big.data.decode("gb18030").count("王" + RARE) >= 1


def test_every_line_carries_branch_teller_and_now_in_shanghai(big: ChannelFile) -> None:
    times = {r.row[7] for r in big.requests if r.kind != "stale"}
    assert times == {"20261122103000"}
    assert {r.row[7] for r in big.requests if r.kind == "stale"} == {"20261122100000"}
    assert {(r.row[8], r.row[9]) for r in big.requests} == {("440101001", "T0001")}


def test_the_default_mix_plants_every_fault_in_a_big_enough_file(big: ChannelFile) -> None:
    kinds = {r.kind for r in big.requests}
    assert set(FAULT_KINDS) <= kinds
    expects = {r.expect for r in big.requests}
    assert {"00", "02", "01/E120", "01/E130", "01/E131", "01/E132"} <= expects
    e1 = sum(1 for r in big.requests if r.op == "E1")
    assert e1 > len(big.requests) / 2
    assert {"A1", "P1", "P2", "L1", "L2", "L3"} <= {r.op for r in big.requests}


def test_every_fault_kind_is_answered_as_the_icd_says(big: ChannelFile) -> None:
    for r in big.requests:
        if r.kind in WEAK_KINDS:
            assert r.expect == "01/E131"
        elif r.kind in BLOCK_FAULTS:
            assert r.expect == "01/E130"
        elif r.kind in ("wrong_name", "wrong_id_no"):
            assert r.expect == "01/E132"
        elif r.kind == "a1_sealed":
            assert (r.op, r.expect) == ("A1", "01/E120")


def test_each_good_block_opens_with_the_hubs_code_to_the_pin_the_request_says(
    big: ChannelFile,
) -> None:
    sealed = [r for r in big.requests if r.pin_block and r.kind not in BLOCK_FAULTS]
    assert len(sealed) > 100
    for r in sealed:
        opened = open_pin_block(r.pin_block, context(r.row), keys())
        assert opened.pin.digits() == r.pin
        assert opened.key_id == KEY_ID
        assert within_window(r.row[7], NOW + timedelta(minutes=2))


@pytest.mark.parametrize("kind", ["unknown_key", "tampered"])
def test_a_broken_block_does_not_open(big: ChannelFile, kind: str) -> None:
    lines = [r for r in big.requests if r.kind == kind]
    assert lines
    for r in lines:
        with pytest.raises(PinRefused) as refused:
            open_pin_block(r.pin_block, context(r.row), keys())
        assert refused.value.code == "E130"


def test_a_stale_block_opens_but_lies_outside_the_pin_window(big: ChannelFile) -> None:
    for r in (r for r in big.requests if r.kind == "stale"):
        assert open_pin_block(r.pin_block, context(r.row), keys()).pin.digits() == r.pin
        assert not within_window(r.row[7], NOW + timedelta(minutes=2))


def test_a_replayed_block_repeats_the_nonce_of_an_earlier_accepted_line(big: ChannelFile) -> None:
    replays = [i for i, r in enumerate(big.requests) if r.kind == "replay"]
    assert replays
    for i in replays:
        r = big.requests[i]
        earlier = {e.nonce for e in big.requests[:i] if e.expect == "00" and e.pin_block}
        assert r.nonce in earlier
        assert open_pin_block(r.pin_block, context(r.row), keys()).pin.digits() == r.pin
    others = [r.nonce for r in big.requests if r.pin_block and r.kind != "replay"]
    assert len(others) == len(set(others))


def test_a_weak_pin_is_weak_by_the_rule_it_plants_and_a_strong_one_by_none(
    big: ChannelFile,
) -> None:
    previous: dict[str, list[str]] = {}
    for r in big.requests:
        if r.pin is None:
            continue
        earlier = previous.get(r.card.pan, [])

        def was_set(pin: Pin, earlier: list[str] = earlier) -> bool:
            return pin.digits() in earlier

        why = weak_reason(
            Pin(r.pin),
            id_no=r.card.id_no,
            card_no=r.card.card_no,
            birth_date=r.card.birth_date,
            previous=was_set,
        )
        if r.kind in WEAK_KINDS:
            assert why == WEAK_WHY[r.kind], r.kind
        else:
            assert why is None, r.kind
        if r.kind == "weak_birth_yymmdd":
            assert r.pin == r.card.birth_date[2:]
        if r.kind == "weak_birth_mmddyy":
            assert r.pin == r.card.birth_date[4:] + r.card.birth_date[2:4]
        if r.expect == "00":
            previous.setdefault(r.card.pan, []).append(r.pin)


def test_a_wrong_identity_names_another_holder(big: ChannelFile) -> None:
    for r in big.requests:
        if r.kind == "wrong_name":
            assert r.row[5] != r.card.name and r.row[4] == r.card.id_no
        elif r.kind == "wrong_id_no":
            assert r.row[4] != r.card.id_no and r.row[5] == r.card.name
        elif r.op in ("E1", "A1", "P1", "P2", "L2"):
            assert (r.row[4], r.row[5]) == (r.card.id_no, r.card.name)
        else:
            assert (r.row[4], r.row[5]) == ("", "")


def test_lines_apply_in_seq_order_each_seeing_the_ones_before() -> None:
    cards = make_cards(1, status="1", activated=True)
    lines = channel_file(cards, size=3, mix={"L1": 1.0}).requests
    assert [(r.op, r.expect) for r in lines] == [("L1", "00"), ("L3", "00"), ("L1", "00")]
    sealed = make_cards(1)
    lines = channel_file(
        sealed, size=3, mix={"a1_sealed": 0.34, "E1": 0.33, "A1_again": 0.33}
    ).requests
    assert [(r.kind, r.expect) for r in lines] == [
        ("a1_sealed", "01/E120"),
        ("E1", "00"),
        ("A1_again", "02"),
    ]


def test_p2_unlocks_a_locked_pin_and_is_already_done_otherwise() -> None:
    locked = make_cards(1, status="1", activated=True, pin_locked=True)
    assert [r.expect for r in channel_file(locked, size=2, mix={"P2": 1.0}).requests] == [
        "00",
        "02",
    ]


def test_the_same_arguments_give_the_same_lines() -> None:
    cards = make_cards(50)
    first, second = channel_file(cards), channel_file(cards)
    assert [(r.req_no, r.kind, r.card.card_no, r.pin, r.expect) for r in first.requests] == [
        (r.req_no, r.kind, r.card.card_no, r.pin, r.expect) for r in second.requests
    ]


def test_write_channel_file_publishes_the_data_before_its_control(tmp_path: Path) -> None:
    file = channel_file(make_cards(5))
    written = write_channel_file(file, tmp_path / "pickup")
    assert [p.name for p in written] == [file.name, file.name + ".ok"]
    assert sorted(p.name for p in (tmp_path / "pickup").iterdir()) == [file.name, file.name + ".ok"]
    assert written[0].read_bytes() == file.data
    assert written[1].stat().st_mtime_ns >= written[0].stat().st_mtime_ns


def test_read_channelrsp_reads_an_answer_and_refuses_a_broken_line() -> None:
    file = channel_file(make_cards(20))
    rows = [
        [r.req_no, r.result, r.reason_code, "x" if r.reason_code else ""] for r in file.requests
    ]
    header = Header("CHANNELRSP", "B001", "C01", file.header.batch_no, DATE, len(rows))
    out = io.BytesIO()
    write_delimited(out, CHANNELRSP, header, rows)
    assert read_channelrsp(out.getvalue()) == file.expected()
    broken = out.getvalue().replace(b"|00|", b"|07|", 1)
    with pytest.raises(ChannelRspError):
        read_channelrsp(broken)
    with pytest.raises(FileLevelError):
        read_channelrsp(out.getvalue().rsplit(b"T|", 1)[0])


# --------------------------------------------------------------------------- STATUS and BANKEVT


def test_a_status_file_reads_back_with_the_projects_reader() -> None:
    ops = [
        (f"S{i:05d}", "01" if i % 2 else "02", "A12345678", "11010519491231002X", "王" + RARE)
        for i in range(1, 6)
    ]
    name, data, control = make_status_file(ops, business_date=DATE, seq=3, now=NOW)
    assert name == "STATUS_R440100_B001_20261122_003.txt"
    assert Control.parse(control, name).record_count == 5
    reader = DelimitedReader(data, STATUS, "GB18030", control_count=5)
    table, rejections = read_all(reader)
    assert rejections == []
    assert reader.header.business_date == DATE and reader.header.record_count == 5
    assert table.column("_seq").to_pylist() == [1, 2, 3, 4, 5]
    assert table.column("op_time").to_pylist() == ["20261122103000"] * 5
    assert table.column("name").to_pylist()[0] == "王" + RARE
    assert data.endswith(b"T|5|0.00\r\n")


def test_read_bankevt_checks_the_business_date_and_counts(tmp_path: Path) -> None:
    bank = PartnerServicing(drop=tmp_path / "drop", pickup=tmp_path / "pickup")
    events = [
        ("EV1", "21", "A12345678", "11010519491231002X", "20261122093000", "C21"),
        ("EV2", "01", "A12345678", "11010519491231002X", "20261122094000", "C21"),
    ]
    name, data, _ = bank.make_partner_bankevt(events, DATE, 2)
    assert name == "BANKEVT_B002_B001_20261122_002.txt"
    lines = read_bankevt(data, business_date=DATE, sender="B002", receiver="B001")
    assert [(e["evt_no"], e["op"], e["channel"]) for e in lines] == [
        ("EV1", "21", "C21"),
        ("EV2", "01", "C21"),
    ]
    with pytest.raises(ServicingFileError):
        read_bankevt(data, business_date="20261123")
    with pytest.raises(FileLevelError):
        read_bankevt(data.replace(b"|2|0.00|1.0", b"|3|0.00|1.0", 1))
    _, empty, _ = bank.make_partner_bankevt([], DATE, 3)
    assert read_bankevt(empty, business_date=DATE) == []
    with pytest.raises(ValueError, match="04"):
        bank.make_partner_bankevt([("EV3", "04", "A12345678", "X", "20261122094000", "C21")], DATE)


def test_publish_partner_bankevt_writes_into_the_banks_pickup(tmp_path: Path) -> None:
    bank = PartnerServicing(drop=tmp_path / "drop", pickup=tmp_path / "pickup")
    name = bank.publish_partner_bankevt([], DATE, 1)
    assert sorted(p.name for p in (tmp_path / "pickup").iterdir()) == [name, name + ".ok"]


# --------------------------------------------------------------------------- the partner's STATUS


def hub_status(drop: Path, req_nos: list[str], seq: int = 1, date: str = DATE) -> str:
    rows = [
        [r, "01", "A12345678", "11010519491231002X", "张三", f"{date}093000", "AUTO", ""]
        for r in req_nos
    ]
    header = Header("STATUS", "B001", "B002", f"S{date}{seq:03d}", date, len(rows))
    out = io.BytesIO()
    write_delimited(out, STATUS, header, rows)
    name = f"STATUS_B001_B002_{date}_{seq:03d}.txt"
    publish_file(
        drop, name, out.getvalue(), Control.for_bytes(name, out.getvalue(), len(rows)).render()
    )
    return name


def answer(pickup: Path, name: str) -> tuple[Header, list[tuple[str, str, str]]]:
    data = (pickup / name).read_bytes()
    reader = DelimitedReader(data, STATUSRSP)
    read_all(reader)
    Control.parse((pickup / (name + ".ok")).read_bytes(), name).verify(
        len(data), hashlib.sha256(data).hexdigest()
    )
    return reader.header, read_statusrsp(data)


def test_the_partner_answers_each_line_in_order_with_the_requests_seq(tmp_path: Path) -> None:
    drop, pickup = tmp_path / "drop", tmp_path / "pickup"
    req_nos = [f"HS{i:04d}" for i in range(200)]
    name = hub_status(drop, req_nos, seq=7)
    bank = PartnerServicing(drop=drop, pickup=pickup, refuse_share=0.2, seed=3)
    assert bank.run(DATE) == ["STATUSRSP_B002_B001_20261122_007.txt"]
    header, lines = answer(pickup, "STATUSRSP_B002_B001_20261122_007.txt")
    assert (header.batch_no, header.business_date, header.record_count) == (
        "S20261122007",
        DATE,
        200,
    )
    assert [line[0] for line in lines] == req_nos
    refused = [line for line in lines if line[1] == "01"]
    assert {line[2] for line in refused} == {"E120"}
    assert 15 <= len(refused) <= 65
    assert {line[1:] for line in lines if line[1] == "00"} == {("00", "")}
    assert not (drop / name).exists() and not (drop / (name + ".ok")).exists()


def test_the_partner_repeats_its_first_answer_for_a_req_no_seen_before(tmp_path: Path) -> None:
    drop, pickup, state = tmp_path / "drop", tmp_path / "pickup", tmp_path / "state"
    req_nos = [f"HS{i:04d}" for i in range(60)]
    hub_status(drop, req_nos, seq=1)
    PartnerServicing(drop=drop, pickup=pickup, state_dir=state, refuse_share=0.5, seed=1).run(DATE)
    _, first = answer(pickup, "STATUSRSP_B002_B001_20261122_001.txt")
    assert (state / "partner_B002_status.json").exists()
    hub_status(drop, [*reversed(req_nos), "HSNEW"], seq=2)
    reborn = PartnerServicing(drop=drop, pickup=pickup, state_dir=state, refuse_share=0.5, seed=99)
    reborn.run(DATE)
    _, second = answer(pickup, "STATUSRSP_B002_B001_20261122_002.txt")
    assert second[:-1] == list(reversed(first))
    assert second[-1][0] == "HSNEW"


def test_a_req_no_repeated_in_one_file_is_e107_after_its_first(tmp_path: Path) -> None:
    drop, pickup = tmp_path / "drop", tmp_path / "pickup"
    hub_status(drop, ["HS1", "HS2", "HS1"])
    PartnerServicing(drop=drop, pickup=pickup).run(DATE)
    _, lines = answer(pickup, "STATUSRSP_B002_B001_20261122_001.txt")
    assert [line[1:] for line in lines] == [("00", ""), ("00", ""), ("01", "E107")]


def test_a_silent_file_stays_in_drop_unanswered(tmp_path: Path) -> None:
    drop, pickup = tmp_path / "drop", tmp_path / "pickup"
    silent = hub_status(drop, ["HS1"], seq=1)
    answered = hub_status(drop, ["HS2"], seq=2)
    bank = PartnerServicing(drop=drop, pickup=pickup, silent_files={silent})
    assert bank.run(DATE) == [str(FileName.parse(answered).response())]
    assert bank.run(DATE) == []
    assert (drop / silent).exists() and (drop / (silent + ".ok")).exists()
    assert not (pickup / str(FileName.parse(silent).response())).exists()


def test_an_incomplete_or_later_dated_file_waits(tmp_path: Path) -> None:
    drop, pickup = tmp_path / "drop", tmp_path / "pickup"
    name = hub_status(drop, ["HS1"], seq=1)
    (drop / (name + ".ok")).unlink()
    later = hub_status(drop, ["HS2"], seq=1, date="20261123")
    bank = PartnerServicing(drop=drop, pickup=pickup)
    assert bank.run(DATE) == []
    assert (drop / name).exists() and (drop / later).exists()
    assert bank.run("20261123") == ["STATUSRSP_B002_B001_20261123_001.txt"]


def test_the_answer_is_published_before_the_request_is_removed(tmp_path: Path) -> None:
    drop, pickup = tmp_path / "drop", tmp_path / "pickup"
    name = hub_status(drop, ["HS1", "HS2"])
    response = str(FileName.parse(name).response())
    seen: list[tuple[str, bool]] = []

    class Watched(PartnerServicing):
        def _remove(self, path: Path) -> None:
            seen.append((path.name, (pickup / (response + ".ok")).exists()))
            super()._remove(path)

    Watched(drop=drop, pickup=pickup).run(DATE)
    assert seen == [(name + ".ok", True), (name, True)]


def test_a_bank_stopped_before_removing_answers_the_same_file_again_identically(
    tmp_path: Path,
) -> None:
    drop, pickup, state = tmp_path / "drop", tmp_path / "pickup", tmp_path / "state"
    name = hub_status(drop, [f"HS{i}" for i in range(30)])
    response = str(FileName.parse(name).response())

    class Stopped(PartnerServicing):
        def _remove(self, path: Path) -> None:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        Stopped(drop=drop, pickup=pickup, state_dir=state, refuse_share=0.5).run(DATE)
    first = (pickup / response).read_bytes()
    os.remove(pickup / response)
    os.remove(pickup / (response + ".ok"))
    PartnerServicing(drop=drop, pickup=pickup, state_dir=state, refuse_share=0.5, seed=8).run(DATE)
    assert (pickup / response).read_bytes() == first
    assert not (drop / name).exists()
