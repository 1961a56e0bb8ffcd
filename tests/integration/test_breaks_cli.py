"""``sscard breaks list|show|resolve``: output, exit codes, and a resolution kept with who,
when and why and its audit record."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import Engine, text

from banking import audit
from reconciliation.daily import add_business_days
from sscard.breaks_cli import main
from tests.integration.test_reconciliation import FAIL, MON, OK, WED, run, seed_batch, stmt


def plant_breaks(engine: Engine, monday: str = MON) -> dict[str, int]:
    """What the reconciliations of a Monday to Wednesday leave open: a batch whose return
    is overdue (R07, first seen on the Wednesday) and an unidentified statement item (R09,
    the Monday); their ids by R-code."""
    tuesday, wednesday = add_business_days(monday, 1), add_business_days(monday, 2)
    with engine.begin() as conn:
        seed_batch(
            conn,
            "B001",
            [{"amount": 10000, "result": OK}, {"amount": 5000, "result": FAIL}],
            day=monday,
            funded_date=monday,
            answered_date=monday,
        )
        stmt(conn, [("T1", "C", 15000, "DISB/B001"), ("T9", "C", 88, "refund?")], day=monday)
    for day in (monday, tuesday, wednesday):
        run(engine, day)
    return break_ids(engine)


@pytest.fixture
def hub(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> Engine:
    """A batch whose return is overdue (R07 found on Wednesday) and an unidentified item."""
    monkeypatch.setenv("SSCARD_DATABASE_URL", str(engine.url.render_as_string(False)))
    monkeypatch.setenv("USER", "li.finance")
    assert plant_breaks(engine).keys() == {"R07", "R09"}
    return engine


def break_ids(engine: Engine) -> dict[str, int]:
    with engine.connect() as conn:
        return dict(conn.execute(text("SELECT reason, id FROM recon_break")).all())


def test_list_shows_open_breaks_oldest_first(
    hub: Engine, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["breaks", "list", "--json"]) == 0
    found = json.loads(capsys.readouterr().out)
    assert [
        (b["reason"], b["batch_no"], b["amount_yuan"], b["first_date"]) for b in found["breaks"]
    ] == [
        ("R09", "", "0.88", MON),
        ("R07", "B001", "50.00", WED),
    ]
    assert found["breaks"][1]["meaning"] == {
        "zh": "退款到期未收到",
        "en": "return not received when due",
    }
    assert main(["breaks", "list", "--bureau", "R440100"]) == 0
    out = capsys.readouterr().out
    assert "B001" in out and "R07" in out and "R09" not in out and "1 open break(s)" in out


def test_ages_counted_without_the_holidays_say_so_when_the_configuration_is_unusable(
    hub: Engine,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    monkeypatch.setenv("SSCARD_COUNTERPARTIES", str(tmp_path / "missing.yaml"))
    for argv in (["breaks", "list", "--json"], ["breaks", "show", "1", "--json"]):
        assert main(argv) == 0
        out, err = capsys.readouterr()
        assert json.loads(out)
        [line] = err.splitlines()
        assert line.startswith(f"sscard breaks {argv[1]}: counterparty configuration unusable")
        assert "without the configured holidays" in line


def test_show_gives_the_batch_figures_and_its_statement_lines(
    hub: Engine, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["breaks", "show", str(break_ids(hub)["R07"]), "--json"]) == 0
    found = json.loads(capsys.readouterr().out)
    assert found["batch"]["business_date"] == WED
    assert (found["batch"]["failed_fen"], found["batch"]["returned_fen"]) == (5000, 0)
    assert found["failed_lines"] == 1
    assert [(s["txn_ref"], s["kind"], s["amount_fen"]) for s in found["statement_lines"]] == [
        ("T1", "DISB", 15000)
    ]
    assert main(["breaks", "show", str(break_ids(hub)["R09"])]) == 0
    assert "T9" in capsys.readouterr().out


def test_show_lists_the_batch_s_lines_not_credited_in_full_with_their_pan_masked(
    hub: Engine, capsys: pytest.CaptureFixture[str]
) -> None:
    break_id = break_ids(hub)["R07"]
    with hub.connect() as conn:
        pan = conn.scalar(text("SELECT pan FROM disb_line WHERE result <> '0000'"))
    assert main(["breaks", "show", str(break_id), "--json"]) == 0
    out = capsys.readouterr().out
    [line] = json.loads(out)["lines"]
    assert (line["seq"], line["pay_no"], line["amount_yuan"], line["result"]) == (
        2,
        "B001P2",
        "50.00",
        "103",
    )
    assert line["pan"] == pan[:6] + "****" + pan[-4:]
    assert main(["breaks", "show", str(break_id)]) == 0
    out += capsys.readouterr().out
    assert "lines not credited in full: 1" in out
    assert "B001P2" in out and "result 103" in out
    assert pan not in out


def test_a_statement_memo_cannot_send_control_sequences_to_the_operator_s_terminal(
    hub: Engine, capsys: pytest.CaptureFixture[str]
) -> None:
    memo = "refund?\x1b[2J\x1b]0;owned\x07\x9b"
    with hub.begin() as conn:
        conn.execute(text("UPDATE statement_line SET memo = :m WHERE txn_ref = 'T9'"), {"m": memo})
        # a pay_no refused for its form is kept as the bureau sent it
        conn.execute(text("UPDATE disb_line SET pay_no = 'P\x1b[2J' WHERE result <> '0000'"))
    assert main(["breaks", "show", str(break_ids(hub)["R07"])]) == 0
    assert "pay_no P\ufffd[2J " in capsys.readouterr().out
    assert main(["breaks", "show", str(break_ids(hub)["R09"])]) == 0
    out = capsys.readouterr().out
    assert "refund?\ufffd[2J\ufffd]0;owned\ufffd\ufffd" in out
    assert not any((ord(c) < 32 and c != "\n") or 127 <= ord(c) < 160 for c in out)
    assert main(["breaks", "show", str(break_ids(hub)["R09"]), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["statement_lines"][0]["memo"] == memo


def test_a_reason_typed_with_control_characters_is_not_echoed_raw_to_the_terminal(
    hub: Engine, capsys: pytest.CaptureFixture[str]
) -> None:
    reason = "paid\x1b[2J by phone"
    assert main(["breaks", "resolve", str(break_ids(hub)["R07"]), "--reason", reason]) == 0
    out = capsys.readouterr().out
    assert ": paid\ufffd[2J by phone" in out
    assert not any((ord(c) < 32 and c != "\n") or 127 <= ord(c) < 160 for c in out)
    with hub.connect() as conn:
        # what was typed is kept as it was
        assert (
            conn.scalar(text("SELECT resolution FROM recon_break WHERE resolution LIKE 'paid%'"))
            == reason
        )


def test_a_resolution_keeps_who_when_and_why_with_its_audit_record(
    hub: Engine, capsys: pytest.CaptureFixture[str]
) -> None:
    break_id = break_ids(hub)["R07"]
    assert main(["breaks", "resolve", str(break_id), "--reason", "退款已线下处理", "--json"]) == 0
    done = json.loads(capsys.readouterr().out)
    assert (done["resolved_by"], done["resolution"]) == ("li.finance", "退款已线下处理")
    with hub.connect() as conn:
        row = conn.execute(text("SELECT * FROM recon_break WHERE id = :i"), {"i": break_id}).one()
        assert (row.resolved_by, row.resolution) == ("li.finance", "退款已线下处理")
        assert row.resolved_at is not None
        record = conn.execute(text("SELECT * FROM audit_record")).one()
        assert (
            record.op,
            record.channel,
            record.actor,
            record.ref,
            record.before,
            record.after,
            record.detail,
        ) == (
            "break:resolve",
            "operator",
            "li.finance",
            f"break:{break_id}",
            "open",
            "resolved",
            "退款已线下处理",
        )
        assert audit.verify(conn).ok()
    # the reason is in the chained trail: changing it on the record is found
    with hub.begin() as conn:
        conn.execute(text("UPDATE audit_record SET detail = 'refund sent'"))
        assert audit.verify(conn).why == "hash does not match its content"
        conn.rollback()
    # resolved items stay resolved when the day is reconciled again
    run(hub, "20261210")
    with hub.connect() as conn:
        assert conn.scalar(
            text("SELECT resolved_by FROM recon_break WHERE id = :i"), {"i": break_id}
        )
    assert main(["breaks", "list", "--json"]) == 0
    assert [b["reason"] for b in json.loads(capsys.readouterr().out)["breaks"]] == ["R09"]


def test_resolve_refuses_unknown_resolved_and_empty(
    hub: Engine, capsys: pytest.CaptureFixture[str]
) -> None:
    break_id = break_ids(hub)["R09"]
    assert main(["breaks", "resolve", "999", "--reason", "x"]) == 1
    assert "no break 999" in capsys.readouterr().err
    assert main(["breaks", "resolve", str(break_id), "--reason", "  "]) == 2
    assert main(["breaks", "resolve", str(break_id), "--reason", "booked", "--by", "wang"]) == 0
    assert main(["breaks", "resolve", str(break_id), "--reason", "again"]) == 1
    assert "resolved already" in capsys.readouterr().err
    for wrong in ("abc", "0", str(2**63)):  # no id; beyond any database's integers
        with pytest.raises(SystemExit) as bad:
            main(["breaks", "resolve", wrong, "--reason", "x"])
        assert bad.value.code == 2
    assert "a break id is a positive whole number" in capsys.readouterr().err
    assert main(["breaks", "show", "999"]) == 1


def delivered(hub: Engine, name: str, type_: str) -> None:
    """A file of the outbox for bureau R440100, delivered."""
    with hub.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO outbound_file (conn_id, directory, name, type, data, sha256, "
                "record_count, with_control, created_at, delivered_at) VALUES ('sftp_r440100', "
                "'drop', :n, :type, :d, :s, 0, :c, :t, :t)"
            ),
            {
                "n": name,
                "type": type_,
                "d": b"x",
                "s": "0" * 64,
                "c": type_ != "REJ",
                "t": "2026-12-07 10:00:00+00",
            },
        )


def test_a_delivered_response_is_sent_again_on_request_and_audited(
    hub: Engine, capsys: pytest.CaptureFixture[str]
) -> None:
    name = "DISBRSP_B001_R440100_20261207_001.txt"
    delivered(hub, name, "DISBRSP")
    assert main(["outbox", "resend", name, "--by", "ops-wang"]) == 0
    assert "queued again" in capsys.readouterr().out
    with hub.connect() as conn:
        assert (
            conn.scalar(text("SELECT delivered_at FROM outbound_file WHERE name = :n"), {"n": name})
            is None
        )
        assert (
            conn.scalar(text("SELECT actor FROM audit_record WHERE op = 'outbox:resend'"))
            == "ops-wang"
        )
    # not delivered yet: nothing to resend; an unknown or malformed name is refused
    assert main(["outbox", "resend", name]) == 1
    assert main(["outbox", "resend", "DISBRSP_B001_R440100_20261207_009.txt"]) == 1
    assert main(["outbox", "resend", "../etc/passwd"]) == 2


def test_a_delivered_rej_is_sent_again_on_request_and_audited(
    hub: Engine, capsys: pytest.CaptureFixture[str]
) -> None:
    """A bureau that lost the NAME.rej of a file rejected as a whole gets it again."""
    name = "DISB_R440100_B001_20261207_001.txt.rej"
    delivered(hub, name, "REJ")
    assert main(["outbox", "resend", name, "--by", "ops-wang"]) == 0
    assert "queued again" in capsys.readouterr().out
    with hub.connect() as conn:
        assert (
            conn.scalar(text("SELECT delivered_at FROM outbound_file WHERE name = :n"), {"n": name})
            is None
        )
        assert conn.scalar(text("SELECT ref FROM audit_record WHERE op = 'outbox:resend'")) == (
            name
        )
    assert main(["outbox", "resend", "x" * 61 + ".rej"]) == 2  # too long to audit whole
    assert main(["outbox", "resend", "../x.rej"]) == 2


def test_a_name_the_audit_trail_cannot_keep_is_refused_before_anything_is_done(
    hub: Engine, capsys: pytest.CaptureFixture[str]
) -> None:
    name = "DISBRSP_B001_R440100_20261207_001.txt"
    delivered(hub, name, "DISBRSP")
    for argv in (
        ["outbox", "resend", name, "--by", "x" * 41],
        ["outbox", "resend", name, "--by", " "],
        ["breaks", "resolve", str(break_ids(hub)["R07"]), "--reason", "x", "--by", ""],
    ):
        with pytest.raises(SystemExit) as refused:
            main(argv)
        assert refused.value.code == 2
        assert "a name of 1 to 40 characters" in capsys.readouterr().err
    with hub.connect() as conn:
        assert conn.scalar(text("SELECT delivered_at FROM outbound_file")) is not None
        assert conn.scalar(text("SELECT COUNT(*) FROM audit_record")) == 0
        assert (
            conn.scalar(text("SELECT COUNT(*) FROM recon_break WHERE resolved_at IS NOT NULL")) == 0
        )


def test_a_decision_in_the_airflow_ui_resolves_a_break_with_who_why_and_when_answered(
    hub: Engine,
) -> None:
    from datetime import UTC, datetime

    from sscard.payments_jobs import settle_break

    ids = break_ids(hub)
    run_at = datetime(2026, 12, 10, 1, 0, tzinfo=UTC)
    answered = datetime(2026, 12, 10, 3, 25, tzinfo=UTC)
    left = settle_break(ids["R09"], {"chosen_options": ["Leave open"], "params_input": {}}, run_at)
    assert left["resolved"] is False
    with pytest.raises(ValueError, match="needs a reason"):
        settle_break(
            ids["R09"], {"chosen_options": ["Resolve"], "params_input": {"reason": " "}}, run_at
        )
    done = settle_break(
        ids["R09"],
        {
            "chosen_options": ["Resolve"],
            "params_input": {"reason": "fee refund, booked by branch"},
            "responded_by_user": {"id": "7", "name": "zhao.finance"},
            "responded_at": answered.isoformat(),
        },
        run_at,
    )
    assert done == {"break": ids["R09"], "resolved": True, "by": "zhao.finance"}
    with hub.connect() as conn:
        row = conn.execute(
            text("SELECT resolved_by, resolution, resolved_at FROM recon_break WHERE id = :i"),
            {"i": ids["R09"]},
        ).one()
        assert (row.resolved_by, row.resolution) == ("zhao.finance", "fee refund, booked by branch")
        assert _aware(row.resolved_at) == answered
        assert (
            conn.scalar(text("SELECT channel FROM audit_record WHERE op = 'break:resolve'"))
            == "airflow"
        )
        assert audit.verify(conn).ok()


def test_a_review_settles_each_answer_by_its_break_and_names_those_it_could_not(
    hub: Engine,
) -> None:
    from datetime import UTC, datetime

    from sscard.payments_jobs import settle_breaks

    ids = break_ids(hub)
    run_at = datetime(2026, 12, 10, 1, 0, tzinfo=UTC)
    user = {"id": "admin", "name": "zhao.finance"}
    # the answers as the mapped questions return them: in any order, the first one refused
    decisions = [
        {"break_id": ids["R09"], "chosen_options": ["Resolve"], "params_input": {"reason": ""}},
        {
            "break_id": ids["R07"],
            "chosen_options": ["Resolve"],
            "params_input": {"reason": "returned by branch"},
            "responded_by_user": user,
        },
    ]
    with pytest.raises(ValueError, match=f"break {ids['R09']}: a resolution needs a reason"):
        settle_breaks(decisions, run_at)
    with hub.connect() as conn:
        found: dict[int, str | None] = dict(
            conn.execute(text("SELECT id, resolution FROM recon_break")).all()
        )
    assert found == {ids["R07"]: "returned by branch", ids["R09"]: None}


def _aware(value: object) -> object:
    """A stored time as an aware datetime (SQLite gives back text or a naive UTC time)."""
    from datetime import UTC, datetime

    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if isinstance(value, datetime) and value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value
