"""The sandbox's payments counterparties: the bureau's DISB and its reading of DISBRSP and
RECON (ICD §5.10, §5.12), the payment system's STMT (§5.11), the partner bank's DISBRSP."""

from __future__ import annotations

import hashlib
import io
import random
import re
from collections import Counter
from pathlib import Path

import pytest
from stdnum import luhn

from sandbox.payments import (
    DEFAULT_MIX,
    FAULTS,
    NOT_CREDITABLE,
    PARTNER,
    Funding,
    PartnerPayments,
    PayeeAccount,
    PaymentsFileError,
    PaymentSystem,
    StmtItem,
    funding,
    make_disb_file,
    make_stmt_file,
    ptn,
    read_disbrsp,
    read_recon,
    ret,
    unidentified,
)
from sandbox.people import make_card_no, make_people
from schemas.codec import DelimitedReader, Header, amount_to_fen, write_delimited
from schemas.files import Control, FileLevelError
from schemas.layouts import DISB, DISBRSP, RECON, STMT, Layout

DATE = "20261122"
NEXT = "20261123"
RARE = "𪚥"  # four bytes in GB18030
MEMO_FORMS = re.compile(
    r"DISB/[0-9A-Za-z]{1,20}|RET/[0-9A-Za-z]{1,20}|PTN/B[0-9]{3}/[0-9A-Za-z]{1,20}"
)


def _pan(rng: random.Random, prefix: str) -> str:
    digits = 18 - len(prefix)
    body = prefix + f"{rng.randrange(10**digits):0{digits}d}"
    return body + luhn.calc_check_digit(body)


def make_accounts(n: int, *, seed: int = 0, partner_every: int = 5, blocked_every: int = 17):
    """Hub accounts of BIN 622700 and every ``partner_every``-th at B002; every
    ``blocked_every``-th closed or credit-blocked, a few preopened, one with a rare name."""
    rng = random.Random(seed)
    accounts = []
    for i, person in enumerate(make_people(n, seed=seed)):
        partner = i % partner_every == partner_every - 1
        status = (
            ("closed", "credit_blocked")[i % 2]
            if i % blocked_every == blocked_every - 1
            else "preopened"
            if i % 7 == 3
            else "active"
        )
        accounts.append(
            PayeeAccount(
                _pan(rng, "622002" if partner else "6227000"),
                make_card_no(rng),
                person.id_no,
                person.name[0] + RARE if i == 0 else person.name,
                "B002" if partner else "B001",
                status,
            )
        )
    return accounts


def read_lines(data: bytes, layout: Layout, count: int | None = None):
    """Every line (accepted or not) by field name, and the layout's rejections."""
    reader = DelimitedReader(data, layout, "GB18030", control_count=count)
    lines: list[dict[str, str]] = []
    rejections = []
    for chunk in reader.chunks():
        lines.extend(chunk.table.select([f.name for f in layout.fields]).to_pylist())
        rejections.extend(chunk.rejections())
    return reader, lines, rejections


def assert_framed(data: bytes, control: bytes, name: str, lines: int) -> None:
    """CRLF on every line, none bare, and a control file matching the bytes."""
    assert data.endswith(b"\r\n")
    assert data.count(b"\n") == data.count(b"\r\n") == lines + 2
    parsed = Control.parse(control, name)
    parsed.verify(len(data), hashlib.sha256(data).hexdigest())
    assert parsed.record_count == lines


def oracle(accounts, rows, benefit_type: str, earlier=(), hub: str = "B001") -> list[str]:
    """The ICD §5.10 answer of each line, computed from the rule's text alone."""
    by_pan = {a.pan: a for a in accounts}
    seen: set[str] = set()
    answers = []
    for pay_no, id_no, name, _card, pan, amount, line_type, _period, _memo in rows:
        account = by_pan.get(pan)
        if pay_no in seen or pay_no in earlier:
            answer = "209"
        elif amount_to_fen(amount) == 0:
            answer = "208"
        elif line_type != benefit_type:
            answer = "E117"
        elif account is None:
            answer = "103"
        elif account.id_no != id_no:
            answer = "104"
        elif account.name != name:
            answer = "105"
        elif account.status in NOT_CREDITABLE:
            answer = "106"
        else:
            answer = "0000" if account.bank_code == hub else PARTNER
        seen.add(pay_no)
        answers.append(answer)
    return answers


# --------------------------------------------------------------------------- DISB


@pytest.fixture(scope="module")
def accounts():
    return make_accounts(200)


@pytest.fixture(scope="module")
def big(accounts):
    earlier = ["R44010020261121001000007", "R44010020261121001000008"]
    return make_disb_file(
        accounts, business_date=DATE, size=1000, seed=3, repeats_from=earlier
    ), earlier


def test_a_disb_file_reads_back_with_the_projects_reader_clean(big):
    disb, _ = big
    reader, lines, rejections = read_lines(disb.data, DISB, len(disb.rows))
    assert disb.name == "DISB_R440100_B001_20261122_001.txt"
    assert reader.header == disb.header
    assert (reader.header.sender, reader.header.receiver) == ("R440100", "B001")
    assert reader.header.batch_no == "D20261122001"
    assert reader.header.record_count == len(lines) == 1002
    assert reader.header.total_fen == sum(amount_to_fen(line["amount"]) for line in lines)
    assert [list(r) for r in disb.rows] == [list(line.values()) for line in lines]
    assert_framed(disb.data, disb.control, disb.name, 1002)
    # only the zero amounts break the layout itself (208); the rest is the hub's to find
    assert Counter(r.code for r in rejections) == Counter({"208": disb.kinds.count("zero_amount")})


def test_a_rare_four_byte_name_survives_in_gb18030(accounts):
    disb = make_disb_file(accounts, business_date=DATE, mix={})
    _, lines, _ = read_lines(disb.data, DISB)
    assert accounts[0].name.endswith(RARE)
    assert accounts[0].name in {line["name"] for line in lines}
    assert RARE.encode("gb18030") in disb.data


def test_every_planted_fault_gets_the_answer_the_icd_requires(big, accounts):
    disb, earlier = big
    planted = Counter(k for k in disb.kinds if k is not None)
    assert set(planted) == {*DEFAULT_MIX, "earlier"}
    assert planted["earlier"] == 2
    for kind, code in FAULTS.items():
        assert {e for e, k in zip(disb.expected, disb.kinds, strict=True) if k == kind} == {code}
    assert list(disb.expected) == oracle(accounts, disb.rows, "110", earlier)
    assert disb.kinds[0] is None and disb.expected[0] in ("0000", PARTNER)
    good = Counter(e for e, k in zip(disb.expected, disb.kinds, strict=True) if k is None)
    assert good["0000"] > 500 and good[PARTNER] > 100


def test_planted_pans_are_luhn_valid_and_unknown(big, accounts):
    disb, _ = big
    known = {a.pan for a in accounts}
    unknown = [row[4] for row, k in zip(disb.rows, disb.kinds, strict=True) if k == "unknown_pan"]
    assert unknown and all(luhn.is_valid(p) and p not in known for p in unknown)
    assert all(len(p) == 19 and p.startswith("622700") for p in unknown)


def test_lines_are_pensions_of_the_period_with_keys_of_the_icd(big):
    disb, earlier = big
    fen = [amount_to_fen(r[5]) for r, k in zip(disb.rows, disb.kinds, strict=True) if k is None]
    assert all(150_000 <= f <= 600_000 for f in fen)
    assert all(row[7] == "202611" for row in disb.rows)
    assert all(re.fullmatch(r"[0-9A-Za-z]{1,30}", row[0]) for row in disb.rows)
    own = [
        row[0]
        for row, k in zip(disb.rows, disb.kinds, strict=True)
        if k not in ("repeat", "earlier")
    ]
    assert len(own) == len(set(own))
    assert not set(own) & set(earlier)


def test_pay_nos_never_repeat_across_dates_and_seqs(accounts):
    files = [
        make_disb_file(accounts, business_date=d, seq=s, mix={})
        for d in (DATE, NEXT)
        for s in (1, 2)
    ]
    pay_nos = [p for f in files for p in f.pay_nos]
    assert len(pay_nos) == len(set(pay_nos))


def test_the_same_arguments_give_the_same_bytes(accounts):
    one = make_disb_file(accounts, business_date=DATE, size=300, seed=9)
    two = make_disb_file(accounts, business_date=DATE, size=300, seed=9)
    other = make_disb_file(accounts, business_date=DATE, size=300, seed=10)
    assert one.data == two.data and one.expected == two.expected
    assert one.data != other.data


def test_an_explicit_mix_the_accounts_cannot_provide_is_refused():
    only_partner = [a for a in make_accounts(30) if a.bank_code == "B002"]
    with pytest.raises(ValueError, match="blocked"):
        make_disb_file(only_partner, business_date=DATE, mix={"blocked": 0.1})
    disb = make_disb_file(only_partner, business_date=DATE, size=400)
    assert "blocked" not in disb.kinds and "name" not in disb.kinds
    assert set(disb.expected) <= {PARTNER, "209", "208", "E117", "103"}


def test_another_benefit_type_writes_its_own_amounts_and_memo(accounts):
    disb = make_disb_file(accounts, business_date=DATE, benefit_type="210", period="202610", mix={})
    assert {row[6] for row in disb.rows} == {"210"}
    assert {row[8] for row in disb.rows} == {"2026年10月失业保险金"}
    assert all(150_000 <= amount_to_fen(row[5]) <= 250_000 for row in disb.rows)


# --------------------------------------------------------------------------- STMT


def test_a_statement_reads_back_with_gross_total_and_the_icd_memos():
    items = [
        funding("D20261122001", 1_116_898_65, "P0120261122000001", DATE),
        ret("D20261122001", 12_345_67, "P0120261122000002", DATE),
        ptn("B002", "D20261122001", 200_000_00, "P0120261122000003", DATE),
        unidentified(5_000_00, "P0120261122000004", DATE),
        unidentified(1_00, "P0120261122000005", DATE, memo="REFUND 123", dc="D"),
    ]
    name, data, control = make_stmt_file(items, business_date=DATE, seq=2)
    assert name == "STMT_P01_B001_20261122_002.txt"
    reader, lines, rejections = read_lines(data, STMT, 5)
    assert rejections == []
    assert_framed(data, control, name, 5)
    assert reader.header.total_fen == sum(i.amount_fen for i in items) == 1_334_245_32
    assert [line["memo"] for line in lines] == [
        "DISB/D20261122001",
        "RET/D20261122001",
        "PTN/B002/D20261122001",
        "工资",
        "REFUND 123",
    ]
    assert [line["dc"] for line in lines] == ["C", "D", "D", "C", "D"]
    assert [bool(MEMO_FORMS.fullmatch(line["memo"])) for line in lines] == [True] * 3 + [False] * 2


def _statement(pickup: Path, name: str) -> list[dict[str, str]]:
    data = (pickup / name).read_bytes()
    control = Control.parse((pickup / (name + ".ok")).read_bytes(), name)
    control.verify(len(data), hashlib.sha256(data).hexdigest())
    reader, lines, rejections = read_lines(data, STMT, control.record_count)
    assert rejections == []
    assert reader.header.business_date == name.split("_")[3]
    return lines


def test_the_payment_system_funds_short_twice_and_late_as_told(tmp_path):
    system = PaymentSystem(pickup=tmp_path / "pickup", state_dir=tmp_path / "state")
    first = system.statement(
        DATE,
        fund=[
            Funding("D1", 100_00),
            Funding("D2", 200_00, short_fen=1),
            Funding("D3", 300_00, twice=True),
            Funding("D4", 400_00, late=True),
        ],
        returns=[("D0", 50_00)],
        settle=[("B002", "D0", 70_00)],
        unidentified_items=[(9_99, "工资")],
    )
    lines = _statement(tmp_path / "pickup", first)
    assert first == "STMT_P01_B001_20261122_001.txt"
    assert [(x["dc"], x["memo"], amount_to_fen(x["amount"])) for x in lines] == [
        ("C", "DISB/D1", 100_00),
        ("C", "DISB/D2", 199_99),
        ("C", "DISB/D3", 300_00),
        ("C", "DISB/D3", 300_00),
        ("D", "RET/D0", 50_00),
        ("D", "PTN/B002/D0", 70_00),
        ("C", "工资", 9_99),
    ]
    assert len({x["txn_ref"] for x in lines}) == 7
    assert {x["value_date"] for x in lines} == {DATE}
    assert system.late == [("D4", 400_00)]

    later = PaymentSystem(pickup=tmp_path / "pickup", state_dir=tmp_path / "state")
    second = later.statement(NEXT)
    lines2 = _statement(tmp_path / "pickup", second)
    assert [(x["memo"], x["value_date"], amount_to_fen(x["amount"])) for x in lines2] == [
        ("DISB/D4", NEXT, 400_00)
    ]
    assert not {x["txn_ref"] for x in lines2} & {x["txn_ref"] for x in lines}
    assert later.late == []
    assert not list((tmp_path / "pickup").glob("*.part"))


def test_the_payment_system_funds_a_batch_in_parts_that_add_up_to_its_total(tmp_path):
    system = PaymentSystem(pickup=tmp_path)
    name = system.statement(
        DATE, fund=[Funding("D1", 100_01, parts=3), Funding("D2", 50_00, parts=2)]
    )
    lines = _statement(tmp_path, name)
    assert [(x["memo"], amount_to_fen(x["amount"])) for x in lines] == [
        ("DISB/D1", 33_33),
        ("DISB/D1", 33_33),
        ("DISB/D1", 33_35),
        ("DISB/D2", 25_00),
        ("DISB/D2", 25_00),
    ]
    assert len({x["txn_ref"] for x in lines}) == 5
    with pytest.raises(ValueError, match="parts"):
        system.statement(DATE, fund=[Funding("D3", 2, parts=3)])


def test_a_resent_statement_repeats_its_txn_refs_in_a_new_file(tmp_path):
    system = PaymentSystem(pickup=tmp_path / "pickup", state_dir=tmp_path / "state")
    first = system.statement(DATE, fund=[Funding("D1", 100_00)], returns=[("D0", 1_00)])
    again = PaymentSystem(pickup=tmp_path / "pickup", state_dir=tmp_path / "state").resend(first)
    assert again == "STMT_P01_B001_20261122_002.txt"
    one, two = _statement(tmp_path / "pickup", first), _statement(tmp_path / "pickup", again)
    assert one == two
    assert (tmp_path / "pickup" / first).read_bytes() != (tmp_path / "pickup" / again).read_bytes()
    with pytest.raises(KeyError):
        system.resend("STMT_P01_B001_20261122_009.txt")


def test_a_day_without_movement_is_a_statement_without_lines(tmp_path):
    name = PaymentSystem(pickup=tmp_path).statement(DATE)
    assert _statement(tmp_path, name) == []
    assert isinstance(StmtItem("X1", DATE, "C", 1, "DISB/D1").row(), list)


# --------------------------------------------------------------------------- partner bank


def forwarded(accounts, seq: int = 1, date: str = DATE, size: int = 200):
    """A DISB the hub forwards to B002: the hub's keys, only B002's good accounts."""
    mine = [a for a in accounts if a.bank_code == "B002" and a.status not in NOT_CREDITABLE]
    return make_disb_file(
        mine, bureau="B001", hub="B002", business_date=date, seq=seq, size=size, mix={}
    )


def test_the_partner_answers_in_order_with_the_requests_seq_and_sums(tmp_path, accounts):
    disb = forwarded(accounts, seq=7)
    disb.publish(tmp_path / "drop")
    bank = PartnerPayments(drop=tmp_path / "drop", pickup=tmp_path / "pickup", fail_share=0.2)
    assert bank.run(DATE) == ["DISBRSP_B002_B001_20261122_007.txt"]
    name = "DISBRSP_B002_B001_20261122_007.txt"
    data = (tmp_path / "pickup" / name).read_bytes()
    reader, lines, rejections = read_lines(data, DISBRSP, len(disb.rows))
    assert rejections == []
    assert_framed(data, (tmp_path / "pickup" / (name + ".ok")).read_bytes(), name, len(disb.rows))
    assert (reader.header.batch_no, reader.header.business_date) == (disb.batch_no, DATE)
    assert [x["pay_no"] for x in lines] == list(disb.pay_nos)
    assert reader.header.total_fen == sum(amount_to_fen(x["credited_amount"]) for x in lines)
    by_result = Counter(x["result"] for x in lines)
    assert 10 < sum(n for r, n in by_result.items() if r != "0000") < 70
    assert set(by_result) <= {"0000", "103", "104", "105", "106"}
    for x, row in zip(lines, disb.rows, strict=True):
        if x["result"] == "0000":
            assert x["credited_amount"] == row[5] and x["posted_time"].startswith(DATE)
            assert re.fullmatch(r"[0-9A-Za-z]{1,30}", x["bank_ref"]) and x["reason_code"] == ""
        else:
            assert x["credited_amount"] == "0.00" and x["reason_code"] == x["result"]
            assert x["reason_text"] and x["bank_ref"] == ""
    assert not (tmp_path / "drop" / disb.name).exists()
    assert read_disbrsp(data, batch_no=disb.batch_no, sender="B002", receiver="B001") == lines


def test_the_partner_repeats_its_answers_and_leaves_silent_files(tmp_path, accounts):
    drop, pickup, state = tmp_path / "drop", tmp_path / "pickup", tmp_path / "state"
    first, silent = forwarded(accounts, seq=1), forwarded(accounts, seq=2, size=5)
    first.publish(drop)
    silent.publish(drop)
    bank = PartnerPayments(
        drop=drop, pickup=pickup, state_dir=state, fail_share=0.3, silent_files=[silent.name]
    )
    assert bank.run(DATE) == ["DISBRSP_B002_B001_20261122_001.txt"]
    assert (drop / silent.name).exists() and (drop / (silent.name + ".ok")).exists()
    answers = bank.answers
    assert set(answers) == set(first.pay_nos)

    # the same keys in a later file, the bank restarted: the very same answers
    again = forwarded(accounts, seq=1, date=NEXT)
    rows = [(first.rows[i][0], *row[1:]) for i, row in enumerate(again.rows)]
    header = Header("DISB", "B001", "B002", "D20261123001", NEXT, len(rows), again.total_fen)
    out = io.BytesIO()
    write_delimited(out, DISB, header, rows)
    publish_name = again.name
    data = out.getvalue()
    (drop / publish_name).write_bytes(data)
    (drop / (publish_name + ".ok")).write_bytes(
        Control.for_bytes(publish_name, data, len(rows)).render()
    )
    restarted = PartnerPayments(
        drop=drop, pickup=pickup, state_dir=state, fail_share=0.3, silent_files=[silent.name]
    )
    assert restarted.run(NEXT) == ["DISBRSP_B002_B001_20261123_001.txt"]
    lines = read_disbrsp((pickup / "DISBRSP_B002_B001_20261123_001.txt").read_bytes())
    assert [tuple(x.values())[1:] for x in lines] == [answers[p] for p in first.pay_nos]


def test_the_partner_checks_its_own_accounts_and_repeated_keys(tmp_path, accounts):
    mine = [a for a in accounts if a.bank_code == "B002"]
    assert any(a.status in NOT_CREDITABLE for a in mine)
    disb = make_disb_file(
        mine,
        bureau="B001",
        hub="B002",
        business_date=DATE,
        size=400,
        mix={"repeat": 0.02, "name": 0.02, "unknown_pan": 0.02, "blocked": 0.02},
    )
    disb.publish(tmp_path / "drop")
    bank = PartnerPayments(
        drop=tmp_path / "drop", pickup=tmp_path / "pickup", fail_share=0.0, accounts=mine
    )
    (name,) = bank.run(DATE)
    lines = read_disbrsp((tmp_path / "pickup" / name).read_bytes())
    want = oracle(mine, disb.rows, "110", hub="B002")
    assert [x["result"] for x in lines] == [w if w != PARTNER else "0000" for w in want]
    assert {"209", "105", "103", "106"} <= {x["result"] for x in lines}


def test_the_partner_credits_less_on_the_lines_it_is_told_and_sums_what_it_credited(
    tmp_path, accounts
):
    disb = forwarded(accounts, size=6)
    disb.publish(tmp_path / "drop")
    less = {disb.pay_nos[1]: 1_00, disb.pay_nos[4]: 5}
    bank = PartnerPayments(
        drop=tmp_path / "drop", pickup=tmp_path / "pickup", fail_share=1.0, credit_less=less
    )
    (name,) = bank.run(DATE)
    lines = read_disbrsp((tmp_path / "pickup" / name).read_bytes())
    for x, row in zip(lines, disb.rows, strict=True):
        if x["pay_no"] in less:
            assert x["result"] == "0000"
            assert amount_to_fen(x["credited_amount"]) == amount_to_fen(row[5]) - less[row[0]]
        else:
            assert x["result"] != "0000"
    with pytest.raises(ValueError, match="credit_less"):
        PartnerPayments(drop=tmp_path, pickup=tmp_path, credit_less={"X": 0})


def test_the_partner_publishes_its_answer_before_removing_the_request(
    tmp_path, accounts, monkeypatch
):
    disb = forwarded(accounts, size=3)
    disb.publish(tmp_path / "drop")
    response = tmp_path / "pickup" / "DISBRSP_B002_B001_20261122_001.txt.ok"
    seen: list[bool] = []
    real_unlink = Path.unlink

    def unlink(self: Path, missing_ok: bool = False) -> None:
        seen.append(response.exists())
        real_unlink(self, missing_ok)

    monkeypatch.setattr(Path, "unlink", unlink)
    PartnerPayments(drop=tmp_path / "drop", pickup=tmp_path / "pickup").run(DATE)
    assert seen == [True, True]


def test_the_partner_takes_no_incomplete_or_future_file(tmp_path, accounts):
    disb = forwarded(accounts, size=3, date=NEXT)
    disb.publish(tmp_path / "drop")
    bank = PartnerPayments(drop=tmp_path / "drop", pickup=tmp_path / "pickup")
    assert bank.run(DATE) == []
    (tmp_path / "drop" / (disb.name + ".ok")).write_bytes(
        Control.for_bytes(disb.name, b"x", 3).render()
    )
    assert bank.run(NEXT) == []
    assert (tmp_path / "drop" / disb.name).exists()


# --------------------------------------------------------------------------- the bureau reads


def test_read_disbrsp_refuses_a_wrong_total_and_a_wrong_header():
    rows = [
        ["P1", "0000", "10.00", "20261122101010", "B1", "", ""],
        ["P2", "105", "0.00", "", "", "105", "姓名不符"],
    ]
    out = io.BytesIO()
    write_delimited(
        out, DISBRSP, Header("DISBRSP", "B001", "R440100", "D20261122001", DATE, 2, 1000), rows
    )
    data = out.getvalue()
    assert [x["result"] for x in read_disbrsp(data, batch_no="D20261122001")] == ["0000", "105"]
    with pytest.raises(PaymentsFileError, match="BATCH_NO"):
        read_disbrsp(data, batch_no="D20261122002")
    with pytest.raises(FileLevelError) as caught:
        read_disbrsp(data.replace(b"|2|10.00|1.0", b"|2|11.00|1.0"))
    assert caught.value.code == "F09"


def _recon(lines: list[list[str]]) -> bytes:
    out = io.BytesIO()
    write_delimited(
        out,
        RECON,
        Header("RECON", "B001", "R440100", "RR44010020261122001", DATE, len(lines)),
        lines,
    )
    return out.getvalue()


RECON_LINE = [
    "D20261122001",
    "110",
    "3",
    "30.00",
    "2",
    "20.00",
    "1",
    "10.00",
    "30.00",
    "10.00",
    "0.00",
    "0.00",
    "0.00",
    "BALANCED",
    "",
]


def test_read_recon_checks_header_counts_and_repeated_batches():
    assert read_recon(_recon([]), business_date=DATE) == []
    (line,) = read_recon(
        _recon([RECON_LINE]), business_date=DATE, sender="B001", receiver="R440100"
    )
    assert line["status"] == "BALANCED" and line["difference"] == "0.00"
    with pytest.raises(PaymentsFileError, match="BUSINESS_DATE"):
        read_recon(_recon([RECON_LINE]), business_date=NEXT)
    with pytest.raises(PaymentsFileError, match="repeated"):
        read_recon(_recon([RECON_LINE, RECON_LINE]))
    with pytest.raises(PaymentsFileError, match="exceed"):
        read_recon(_recon([[*RECON_LINE[:2], "1", *RECON_LINE[3:]]]))
    with pytest.raises(FileLevelError) as caught:
        read_recon(_recon([RECON_LINE]).replace(b"T|1|", b"T|2|"))
    assert caught.value.code == "F02"
