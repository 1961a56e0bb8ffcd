"""The ledger on the hub's database (DOMAIN §6): idempotent postings, set-wise transfers,
refusals that keep nothing, a race on one key, and the check finding what is planted."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime

import pytest
from sqlalchemy import Connection, Engine, text
from sqlalchemy.exc import IntegrityError

from banking import ledger
from banking.ledger import LedgerError, Leg

NOW = datetime(2026, 11, 22, 2, 0, tzinfo=UTC)
DAY = "20261122"
PAN_A = "6222020000000000019"
PAN_B = "6222020000000000027"
BUREAU = ledger.clearing("R440100")


def open_account(conn: Connection, pan: str) -> None:
    conn.execute(
        text(
            "INSERT INTO account (pan, bank_code, id_no, status, loss, pin_locked, "
            "debit_blocked, credit_blocked) VALUES (:p, 'B001', "
            "'440101199001011234', 'active', 'none', false, false, false)"
        ),
        {"p": pan},
    )


@pytest.fixture
def accounts(engine: Engine) -> Engine:
    with engine.begin() as conn:
        open_account(conn, PAN_A)
        open_account(conn, PAN_B)
    return engine


def credit(conn: Connection, key: str, pan: str, fen: int) -> bool:
    return ledger.post(conn, key, "test", DAY, [Leg(BUREAU, -fen), Leg(pan, fen)], NOW)


def held(conn: Connection, pan: str) -> int:
    """The account's balance as servicing reads many at once (:func:`ledger.balances`)."""
    return ledger.balances(conn, [pan, PAN_A, PAN_B])[pan]


def test_posting_a_key_twice_posts_it_once(accounts: Engine) -> None:
    with accounts.begin() as conn:
        assert credit(conn, "k1", PAN_A, 12_345) is True
    with accounts.begin() as conn:
        assert credit(conn, "k1", PAN_A, 12_345) is False
        assert ledger.balance(conn, PAN_A) == 12_345
        assert held(conn, PAN_A) == 12_345
        assert ledger.balance(conn, BUREAU) == -12_345
        assert conn.scalar(text("SELECT COUNT(*) FROM ledger_txn")) == 1
        assert conn.scalar(text("SELECT COUNT(*) FROM ledger_entry")) == 2
        assert ledger.check(conn).ok()
        row = conn.execute(text("SELECT kind, owner, balance_fen FROM ledger_account")).one()
        assert tuple(row) == ("clearing", "R440100", -12_345)


def test_an_overdraw_is_refused_and_nothing_is_kept(accounts: Engine) -> None:
    with accounts.begin() as conn:
        credit(conn, "k1", PAN_A, 100)
    with pytest.raises(LedgerError, match="insufficient balance") as refused:
        with accounts.begin() as conn:
            ledger.post(conn, "move", "move", DAY, [Leg(PAN_A, -101), Leg(PAN_B, 101)], NOW)
    assert PAN_A not in str(refused.value)
    assert "622202****0019" in str(refused.value)
    with accounts.connect() as conn:
        assert conn.scalar(text("SELECT COUNT(*) FROM ledger_txn")) == 1
        assert (held(conn, PAN_A), held(conn, PAN_B)) == (100, 0)
        assert ledger.check(conn).ok()


@pytest.mark.parametrize(
    ("legs", "why"),
    [
        ([Leg(PAN_A, 5), Leg(BUREAU, -4)], "sum to zero"),
        ([Leg(PAN_A, 0), Leg(BUREAU, 0)], "non-zero int"),
        ([Leg(PAN_A, 1.5), Leg(BUREAU, -1.5)], "non-zero int"),  # type: ignore[arg-type]
        (
            [Leg("6222029999999999999", 5), Leg(BUREAU, -5)],
            "no such account: 622202\\*\\*\\*\\*9999",
        ),
        ([Leg("NOSUCH", 5), Leg(BUREAU, -5)], "not an account"),
        ([], "needs legs"),
    ],
)
def test_a_malformed_posting_is_refused(accounts: Engine, legs: list[Leg], why: str) -> None:
    with pytest.raises(LedgerError, match=why), accounts.begin() as conn:
        ledger.post(conn, "bad", "test", DAY, legs, NOW)
    with accounts.connect() as conn:
        assert conn.scalar(text("SELECT COUNT(*) FROM ledger_txn")) == 0


@pytest.mark.parametrize(
    "account",
    ["6222020000 000000019", "6222020000000000019 ", "PAN6222020000000000019", 6222020000000000019],
)
def test_a_malformed_account_is_refused_without_its_number_in_full(
    accounts: Engine, account: str
) -> None:
    with pytest.raises(LedgerError, match="not an account") as refused, accounts.begin() as conn:
        ledger.post(conn, "bad", "test", DAY, [Leg(account, 5), Leg(BUREAU, -5)], NOW)
    assert "622202****0019" in str(refused.value)
    assert PAN_A not in str(refused.value).replace(" ", "")


def test_transfers_are_posted_once_also_when_sent_again(accounts: Engine) -> None:
    rows = [
        ("d1", BUREAU, PAN_A, 1_000),
        ("d2", BUREAU, PAN_B, 2_000),
        ("d1", BUREAU, PAN_B, 9_999),  # a key repeated in the input: the first row wins
        ("d3", ledger.settlement(), BUREAU, 3_000),
    ]
    with accounts.begin() as conn:
        assert ledger.post_transfers(conn, "DISB", DAY, rows, NOW, chunk=2) == 3
    with accounts.begin() as conn:
        assert ledger.post_transfers(conn, "DISB", DAY, rows, NOW) == 0
    with accounts.connect() as conn:
        assert (ledger.balance(conn, PAN_A), ledger.balance(conn, PAN_B)) == (1_000, 2_000)
        assert (held(conn, PAN_A), held(conn, PAN_B)) == (1_000, 2_000)
        assert ledger.balance(conn, BUREAU) == 0
        assert ledger.balance(conn, "SETTLEMENT") == -3_000
        # one set posting: a keyed entry per transfer, the debits netted per account
        assert conn.scalar(text("SELECT COUNT(*) FROM ledger_txn")) == 1
        assert conn.scalar(text("SELECT COUNT(*) FROM ledger_entry")) == 5
        assert ledger.check(conn).ok()
        seen = ledger.entries(conn, PAN_A)
        assert [(e.idem_key, e.amount_fen, e.kind) for e in seen] == [("d1", 1_000, "DISB")]


def test_transfers_skip_keys_posted_one_at_a_time(accounts: Engine) -> None:
    with accounts.begin() as conn:
        credit(conn, "d1", PAN_A, 1_000)
        rows = [("d1", BUREAU, PAN_A, 1_000), ("d2", BUREAU, PAN_A, 500)]
        assert ledger.post_transfers(conn, "DISB", DAY, rows, NOW) == 1
        assert ledger.balance(conn, PAN_A) == held(conn, PAN_A) == 1_500


def test_fresh_transfers_post_their_rows_and_a_key_posted_before_fails_the_call(
    accounts: Engine,
) -> None:
    select = (
        "SELECT 1 AS seq, :k1 AS idem_key, :d AS debit, :a AS credit, 1000 AS amount_fen "
        "UNION ALL SELECT 2, :k2, :d, :b, 500"
    )
    params = {"k1": "f1", "k2": "f2", "d": BUREAU, "a": PAN_A, "b": PAN_B}
    with accounts.begin() as conn:
        assert ledger.post_transfers_from(conn, "DISB", DAY, select, params, NOW, fresh=True) == 2
    # a caller whose keys were not new after all: refused, nothing of the call kept
    with pytest.raises(IntegrityError):
        with accounts.begin() as conn:
            ledger.post_transfers_from(
                conn, "DISB", DAY, select, {**params, "k1": "f3", "k2": "f1"}, NOW, fresh=True
            )
    with accounts.connect() as conn:
        assert (held(conn, PAN_A), held(conn, PAN_B)) == (1_000, 500)
        assert conn.scalar(text("SELECT COUNT(*) FROM ledger_txn")) == 1
        assert ledger.check(conn).ok()


def test_transfers_overdrawing_a_customer_keep_nothing(accounts: Engine) -> None:
    with accounts.begin() as conn:
        credit(conn, "k1", PAN_A, 100)
    rows = [("t1", BUREAU, PAN_B, 50), ("t2", PAN_A, PAN_B, 101)]
    with pytest.raises(LedgerError, match=r"insufficient balance: 622202\*\*\*\*0019"):
        with accounts.begin() as conn:
            ledger.post_transfers(conn, "move", DAY, rows, NOW)
    with accounts.connect() as conn:
        assert conn.scalar(text("SELECT COUNT(*) FROM ledger_txn")) == 1
        assert (held(conn, PAN_A), held(conn, PAN_B)) == (100, 0)


def test_transfers_to_an_unknown_customer_keep_nothing(accounts: Engine) -> None:
    rows = [("t1", BUREAU, PAN_B, 50), ("t2", BUREAU, "6222029999999999999", 5)]
    with pytest.raises(LedgerError, match=r"no such account: 622202\*\*\*\*9999"):
        with accounts.begin() as conn:
            ledger.post_transfers(conn, "DISB", DAY, rows, NOW)
    with accounts.connect() as conn:
        assert conn.scalar(text("SELECT COUNT(*) FROM ledger_txn")) == 0


def test_check_finds_an_unbalanced_txn_and_a_cache_mismatch(accounts: Engine) -> None:
    with accounts.begin() as conn:
        credit(conn, "k1", PAN_A, 100)
        credit(conn, "k2", PAN_B, 100)
        assert ledger.check(conn) == ledger.LedgerCheck(0, 0, 0)
        txn = conn.scalar(text("SELECT id FROM ledger_txn WHERE idem_key = 'k1'"))
        conn.execute(
            text("UPDATE ledger_entry SET amount_fen = 70 WHERE txn_id = :t AND amount_fen > 0"),
            {"t": txn},
        )
        found = ledger.check(conn)
        # the changed entry unbalances k1; PAN_A's balance is its entries (70), no copy
        assert (found.unbalanced, found.cache_mismatches, found.ok()) == (1, 0, False)
        assert held(conn, PAN_A) == 70
        conn.execute(
            text("UPDATE ledger_account SET balance_fen = balance_fen + 1 WHERE code = :c"),
            {"c": BUREAU},
        )
        assert ledger.check(conn) == ledger.LedgerCheck(1, 0, 1)
        conn.execute(
            text("INSERT INTO ledger_entry (txn_id, account, amount_fen) VALUES (:t, :p, -170)"),
            {"t": txn, "p": PAN_A},
        )
        found = ledger.check(conn)
        assert found.negative == 1
        # an entry whose transaction is gone (no foreign key: the check counts it)
        conn.execute(
            text("INSERT INTO ledger_entry (txn_id, account, amount_fen) VALUES (:t, :p, 5)"),
            {"t": 999_999, "p": ledger.settlement()},
        )
        assert (ledger.check(conn).orphans, ledger.check(conn).ok()) == (1, False)


def test_two_connections_racing_on_one_key_post_it_once(accounts: Engine) -> None:
    if accounts.dialect.name != "postgresql":
        pytest.skip("SQLite serialises writers: no race to lose")
    barrier = threading.Barrier(2)
    results: list[bool] = []
    errors: list[BaseException] = []

    def post() -> None:
        try:
            with accounts.begin() as conn:
                barrier.wait()
                results.append(credit(conn, "race", PAN_A, 700))
                time.sleep(0.3)  # both have looked for the key before either commits
        except Exception as exc:
            errors.append(exc)

    threads = [threading.Thread(target=post) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert sorted(results) == [False, True]
    with accounts.connect() as conn:
        assert ledger.balance(conn, PAN_A) == held(conn, PAN_A) == 700
        assert conn.scalar(text("SELECT COUNT(*) FROM ledger_txn")) == 1
        assert ledger.check(conn).ok()


def test_transfers_racing_on_the_same_keys_post_each_once(accounts: Engine) -> None:
    if accounts.dialect.name != "postgresql":
        pytest.skip("SQLite serialises writers: no race to lose")
    rows = [(f"r{i}", BUREAU, PAN_A if i % 2 else PAN_B, 10) for i in range(200)]
    barrier = threading.Barrier(2)
    counts: list[int] = []
    errors: list[BaseException] = []

    def post() -> None:
        try:
            with accounts.begin() as conn:
                barrier.wait()
                counts.append(ledger.post_transfers(conn, "DISB", DAY, rows, NOW))
                time.sleep(0.3)
        except Exception as exc:
            errors.append(exc)

    threads = [threading.Thread(target=post) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert sorted(counts) == [0, 200]
    with accounts.connect() as conn:
        assert ledger.balance(conn, PAN_A) == held(conn, PAN_A) == 1_000
        assert conn.scalar(text("SELECT COUNT(*) FROM ledger_entry")) == 201
        assert ledger.check(conn).ok()


def test_yuan_and_fen_round_trip() -> None:
    assert ledger.yuan(123_456) == "1234.56"
    assert ledger.yuan(5) == "0.05"
    assert ledger.yuan(-5) == "-0.05"
    assert ledger.fen_of("1234.50") == 123_450
    for bad in (
        "1234.5",
        "1,234.50",
        "-1.00",
        "1.005",
        " 1.00",
        "1.00\n",
        "１.00",
        "12345678901.00",
    ):
        with pytest.raises(ValueError):
            ledger.fen_of(bad)
