"""The counterparty configuration is checked when it is loaded: typed settings per kind of
party, and every problem (unknown key, wrong type, encoding the ICD does not allow, code
not matching ICD §1 or used twice, a bureau naming a factory that is not configured) is
listed at once, naming the file, the party and the key. ``sscard config check`` also
reports connections Airflow cannot resolve, and exits 0, 1 or 2."""

from __future__ import annotations

import copy
import json
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

import sscard.config as config
from sscard.cli import main
from sscard.config import DEFAULT_COUNTERPARTIES, ConfigError, load_counterparties

SHIPPED: dict[str, Any] = yaml.safe_load(DEFAULT_COUNTERPARTIES.read_text(encoding="utf-8"))
CONN_IDS = ("sftp_r440100", "sftp_b002", "sftp_b003", "sftp_f01", "sftp_c01", "sftp_p01")


def write(tmp_path: Path, data: dict[str, Any] | str) -> Path:
    path = tmp_path / "counterparties.yaml"
    text = data if isinstance(data, str) else yaml.safe_dump(data, allow_unicode=True)
    path.write_text(text, encoding="utf-8")
    return path


def changed(section: str, index: int, **settings: Any) -> dict[str, Any]:
    """The shipped configuration with one party's settings changed (``None`` removes one)."""
    data = copy.deepcopy(SHIPPED)
    entry = data[section][index]
    for key, value in settings.items():
        if value is None:
            entry.pop(key, None)
        else:
            entry[key] = value
    return data


def problems(path: Path) -> list[tuple[str, str, str]]:
    """(file, party, key) of every problem of the file; the error's message names each."""
    with pytest.raises(ConfigError) as caught:
        load_counterparties(path)
    for p in caught.value.problems:
        assert str(p) in str(caught.value)
    return [(p.file, p.party, p.key) for p in caught.value.problems]


@pytest.fixture
def every_connection_in_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for conn_id in CONN_IDS:
        monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", '{"conn_type": "sftp"}')


# --------------------------------------------------------------------------- the shipped file


def test_the_shipped_configuration_loads_clean_into_typed_settings() -> None:
    parties = load_counterparties(DEFAULT_COUNTERPARTIES)

    bureau = parties.bureau("R440100")
    assert isinstance(bureau, config.Bureau)
    assert (bureau.zip_wait_minutes, bureau.max_forward_days, bureau.factory) == (120, 5, "F01")
    assert [p.partner_wait_days for p in parties.partner_banks] == [1, 1]
    assert parties.factories[0].max_records == 10_000
    assert parties.channels[0].medium == "counter"
    assert (parties.hub, parties.timezone) == ("B001", "Asia/Shanghai")
    assert [tuple(r) for r in parties.pan_ranges] == [("6217881", 19)]
    assert parties.bank_codes == {"B001", "B002", "B003"}
    assert config.check_counterparties(DEFAULT_COUNTERPARTIES, connections=False).problems == ()


def test_an_unset_setting_takes_its_kinds_default_and_option_refuses_a_key_the_kind_lacks(
    tmp_path: Path,
) -> None:
    path = write(tmp_path, changed("bureaus", 0, zip_wait_minutes=None, factory=None))

    bureau = load_counterparties(path).bureau("R440100")

    assert bureau.zip_wait_minutes == 120
    assert bureau.option("zip_wait_minutes", 999) == 120
    assert bureau.option("factory", None) is None
    with pytest.raises(KeyError, match="zip_wait_minuts"):
        bureau.option("zip_wait_minuts", 120)


# --------------------------------------------------------------------------- each kind of problem


def test_an_unknown_key_is_an_error_naming_file_party_and_key(tmp_path: Path) -> None:
    path = write(tmp_path, changed("bureaus", 0, zip_wait_minutes=None, zip_wait_minuts=60))

    assert problems(path) == [(str(path), "bureau R440100", "zip_wait_minuts")]
    with pytest.raises(ConfigError, match=r"did you mean zip_wait_minutes\?"):
        load_counterparties(path)


def test_an_unknown_top_level_key_is_an_error(tmp_path: Path) -> None:
    data = copy.deepcopy(SHIPPED)
    data["factorys"] = data.pop("factories")

    found = problems(write(tmp_path, data))

    assert (str(tmp_path / "counterparties.yaml"), "", "factorys") in found


@pytest.mark.parametrize(
    ("section", "setting", "value"),
    [
        ("bureaus", "max_forward_days", "5"),
        ("bureaus", "zip_wait_minutes", True),
        ("bureaus", "zip_wait_minutes", 0),
        ("partner_banks", "partner_wait_days", 1.5),
        ("factories", "max_records", 100_000_000),
        ("channels", "medium", "fax"),
        ("bureaus", "pickup", ""),
        ("payment_systems", "conn_id", 17),
        ("bureaus", "pay_before_funding", "yes"),
        ("bureaus", "credit_preopened", 1),
        ("channels", "pin_window_minutes", 0),
    ],
)
def test_a_value_of_the_wrong_type_or_out_of_range_is_an_error(
    tmp_path: Path, section: str, setting: str, value: object
) -> None:
    path = write(tmp_path, changed(section, 0, **{setting: value}))
    code = SHIPPED[section][0]["code"]
    role = {"bureaus": "bureau", "partner_banks": "partner bank", "factories": "factory"}
    role |= {"channels": "channel", "payment_systems": "payment system"}

    assert problems(path) == [(str(path), f"{role[section]} {code}", setting)]


@pytest.mark.parametrize(
    ("section", "encoding"), [("bureaus", "GBK"), ("partner_banks", "UTF8"), ("factories", "UTF-8")]
)
def test_an_encoding_the_icd_does_not_allow_is_an_error(
    tmp_path: Path, section: str, encoding: str
) -> None:
    path = write(tmp_path, changed(section, 0, encoding=encoding))
    party = {"bureaus": "bureau R440100", "partner_banks": "partner bank B002"}
    party["factories"] = "factory F01"

    assert problems(path) == [(str(path), party[section], "encoding")]


def test_a_code_used_twice_is_an_error_naming_both_entries(tmp_path: Path) -> None:
    data = changed("partner_banks", 1, code="B002", conn_id="sftp_b003")
    path = write(tmp_path, data)

    with pytest.raises(ConfigError) as caught:
        load_counterparties(path)

    [problem] = caught.value.problems
    assert (problem.file, problem.party, problem.key) == (
        str(path),
        "partner bank B002 (partner_banks[1])",
        "code",
    )
    assert "partner_banks[0]" in problem.problem


def test_a_partner_bank_with_the_hubs_own_code_is_an_error(tmp_path: Path) -> None:
    path = write(tmp_path, changed("partner_banks", 0, code="B001"))

    assert problems(path) == [(str(path), "partner bank B001 (partner_banks[0])", "code")]


@pytest.mark.parametrize(
    ("section", "code"),
    [
        ("bureaus", "R44010"),
        ("partner_banks", "P002"),
        ("factories", "F1"),
        ("channels", "c01"),
        ("payment_systems", "P001"),
    ],
)
def test_a_code_not_matching_its_kinds_pattern_is_an_error(
    tmp_path: Path, section: str, code: str
) -> None:
    data = changed(section, 0, code=code)
    if section == "factories":
        data["bureaus"][0]["factory"] = code
    path = write(tmp_path, data)

    found = problems(path)

    assert len(found) == 1
    assert found[0][0] == str(path)
    assert found[0][1].endswith(code)
    assert found[0][2] == "code"


def test_a_hub_code_not_matching_icd_1_is_an_error(tmp_path: Path) -> None:
    data = copy.deepcopy(SHIPPED)
    data["hub"] = "B01"
    path = write(tmp_path, data)

    assert problems(path) == [(str(path), "hub", "hub")]


def test_a_bureau_naming_a_factory_that_is_not_configured_is_an_error(tmp_path: Path) -> None:
    path = write(tmp_path, changed("bureaus", 0, factory="F02"))

    assert problems(path) == [(str(path), "bureau R440100", "factory")]
    with pytest.raises(ConfigError, match="F02 is not a configured factory"):
        load_counterparties(path)


def test_a_bureau_whose_cards_no_factory_would_make_is_an_error(tmp_path: Path) -> None:
    data = changed("bureaus", 0, factory=None)
    data["factories"] = []
    path = write(tmp_path, data)

    assert problems(path) == [(str(path), "bureau R440100", "factory")]


def test_a_missing_required_setting_is_an_error(tmp_path: Path) -> None:
    data = changed("channels", 0, medium=None)
    del data["partner_banks"][1]["conn_id"]
    path = write(tmp_path, data)

    assert problems(path) == [
        (str(path), "partner bank B003", "conn_id"),
        (str(path), "channel C01", "medium"),
    ]


def test_a_key_given_twice_is_an_error_though_yaml_would_keep_the_last(tmp_path: Path) -> None:
    text = DEFAULT_COUNTERPARTIES.read_text(encoding="utf-8").replace(
        "    partner_wait_days: 1\n  - code: B003",
        "    partner_wait_days: 1\n    partner_wait_days: 3\n  - code: B003",
    )
    path = write(tmp_path, text)

    assert problems(path) == [(str(path), "partner bank B002", "partner_wait_days")]


def test_the_same_directory_for_pickup_and_drop_is_an_error(tmp_path: Path) -> None:
    path = write(tmp_path, changed("factories", 0, drop="pickup"))

    assert problems(path) == [(str(path), "factory F01", "drop")]


@pytest.mark.parametrize(
    ("ranges", "key"),
    [
        ([{"prefix": 6217881, "length": 19}], "hub_pan_ranges[0].prefix"),
        ([{"prefix": "6217881", "length": 20}], "hub_pan_ranges[0].length"),
        ([{"prefix": "621788100000000000"}], "hub_pan_ranges[0].prefix"),
        ([{"prefix": "6217881"}, {"prefix": "62178815"}], "hub_pan_ranges"),
        ([{"prefix": "6217881", "size": 19}], "hub_pan_ranges[0].size"),
        ([], "hub_pan_ranges"),
    ],
)
def test_a_pan_range_that_cannot_issue_unique_pans_is_an_error(
    tmp_path: Path, ranges: list[dict[str, Any]], key: str
) -> None:
    data = copy.deepcopy(SHIPPED)
    data["hub_pan_ranges"] = ranges
    path = write(tmp_path, data)

    assert problems(path) == [(str(path), "hub", key)]


def test_an_unknown_time_zone_is_an_error(tmp_path: Path) -> None:
    data = copy.deepcopy(SHIPPED)
    data["timezone"] = "Asia/Shanghia"
    path = write(tmp_path, data)

    assert problems(path) == [(str(path), "hub", "timezone")]


def test_holidays_are_dates_and_a_wrong_one_is_an_error_naming_its_place(tmp_path: Path) -> None:
    data = copy.deepcopy(SHIPPED)
    data["holidays"] = ["20261001", 20261002, "20261001"]
    assert load_counterparties(write(tmp_path, data)).holidays == ("20261001", "20261002")
    data["holidays"] = ["20261001", "20260230", "1 Oct"]
    path = write(tmp_path, data)
    assert problems(path) == [
        (str(path), "hub", "holidays[1]"),
        (str(path), "hub", "holidays[2]"),
    ]
    assert load_counterparties(write(tmp_path, copy.deepcopy(SHIPPED))).holidays == ()


@pytest.mark.parametrize("text", ["hub: [unclosed\n", "- a list\n", "hub: B001\n---\nhub: B002\n"])
def test_a_file_that_is_not_a_yaml_mapping_is_one_problem_naming_the_file(
    tmp_path: Path, text: str
) -> None:
    path = write(tmp_path, text)

    assert problems(path) == [(str(path), "", "")]


# --------------------------------------------------------------------------- all at once


def test_every_problem_is_listed_at_once_in_file_order(tmp_path: Path) -> None:
    data = changed("bureaus", 0, zip_wait_minuts=60, encoding="GBK", factory="F09")
    data["partner_banks"][0]["partner_wait_days"] = "1"
    data["channels"][0]["medium"] = "fax"
    path = write(tmp_path, data)

    with pytest.raises(ConfigError) as caught:
        load_counterparties(path)

    assert [(p.party, p.key) for p in caught.value.problems] == [
        ("bureau R440100", "encoding"),
        ("bureau R440100", "zip_wait_minuts"),
        ("bureau R440100", "factory"),
        ("partner bank B002", "partner_wait_days"),
        ("channel C01", "medium"),
    ]
    assert all(p.file == str(path) for p in caught.value.problems)
    assert len(str(caught.value).splitlines()) == 1


# --------------------------------------------------------------------------- connections


def test_a_connection_neither_the_environment_nor_airflow_resolves_is_missing(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    every_connection_in_the_environment: None,
) -> None:
    monkeypatch.delenv("AIRFLOW_CONN_SFTP_B003")
    monkeypatch.setenv("AIRFLOW_CONN_SFTP_C01", "")
    monkeypatch.delenv("AIRFLOW_HOME", raising=False)
    path = write(tmp_path, SHIPPED)

    check = config.check_counterparties(path)

    assert [(p.file, p.party, p.key) for p in check.problems] == [
        (str(path), "partner bank B003", "conn_id"),
        (str(path), "channel C01", "conn_id"),
    ]
    assert "AIRFLOW_CONN_SFTP_B003" in check.problems[0].problem
    assert "AIRFLOW_HOME is not set" in check.problems[0].problem
    load_counterparties(path)  # loading never looks connections up


def test_airflow_is_asked_only_for_the_connections_the_environment_lacks(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    every_connection_in_the_environment: None,
) -> None:
    monkeypatch.delenv("AIRFLOW_CONN_SFTP_B003")
    monkeypatch.delenv("AIRFLOW_CONN_SFTP_F01")
    monkeypatch.setenv("AIRFLOW_HOME", str(tmp_path))
    asked: list[list[str]] = []

    def airflow_knows_f01(conn_ids: list[str]) -> set[str]:
        asked.append(conn_ids)
        return {"sftp_f01"} & set(conn_ids)

    monkeypatch.setattr(config, "_airflow_lookup", airflow_knows_f01)

    check = config.check_counterparties(write(tmp_path, SHIPPED))

    assert asked == [["sftp_b003", "sftp_f01"]]
    assert [(p.party, p.key) for p in check.problems] == [("partner bank B003", "conn_id")]
    assert "Airflow does not know it" in check.problems[0].problem
    assert check.connections["sftp_f01"] == "Airflow"
    assert check.connections["sftp_b002"] == "environment"


def test_airflow_that_does_not_answer_in_time_leaves_the_connection_missing(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    every_connection_in_the_environment: None,
) -> None:
    monkeypatch.delenv("AIRFLOW_CONN_SFTP_P01")
    monkeypatch.setenv("AIRFLOW_HOME", str(tmp_path))
    monkeypatch.setattr(config, "AIRFLOW_TIMEOUT_SECONDS", 0.05)
    monkeypatch.setattr(config, "_airflow_lookup", lambda ids: time.sleep(2) or set(ids))

    started = time.monotonic()
    check = config.check_counterparties(write(tmp_path, SHIPPED))

    assert time.monotonic() - started < 1.5
    assert [(p.party, p.key) for p in check.problems] == [("payment system P01", "conn_id")]
    assert "did not answer" in check.problems[0].problem


# --------------------------------------------------------------------------- sscard config check


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["config", "check", *args])
    out, err = capsys.readouterr()
    return code, out, err


def test_config_check_lists_every_problem_one_line_each_and_exits_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], every_connection_in_the_environment: None
) -> None:
    data = changed("bureaus", 0, zip_wait_minutes=None, zip_wait_minuts=60, factory="F02")
    path = write(tmp_path, data)

    code, out, _ = run(capsys, "--config", str(path))

    assert code == 1
    assert out.splitlines() == [
        f"{path}: bureau R440100: zip_wait_minuts: unknown key (did you mean zip_wait_minutes?)",
        f"{path}: bureau R440100: factory: F02 is not a configured factory (configured: F01)",
        f"2 problems in {path}",
    ]


def test_config_check_reports_missing_connections_with_the_files_problems(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    every_connection_in_the_environment: None,
) -> None:
    monkeypatch.delenv("AIRFLOW_CONN_SFTP_R440100")
    monkeypatch.delenv("AIRFLOW_HOME", raising=False)
    path = write(tmp_path, changed("bureaus", 0, encoding="GBK"))

    code, out, _ = run(capsys, "--config", str(path), "--json")

    assert code == 1
    report = json.loads(out)
    assert [(p["party"], p["key"]) for p in report["problems"]] == [
        ("bureau R440100", "encoding"),
        ("bureau R440100", "conn_id"),
    ]
    assert report["hub"] is None and report["parties"] == []

    code, out, _ = run(capsys, "--config", str(path), "--no-connections")
    assert code == 1
    assert "conn_id" not in out


def test_config_check_summarises_a_sound_configuration_and_exits_0(
    capsys: pytest.CaptureFixture[str], every_connection_in_the_environment: None
) -> None:
    code, out, _ = run(capsys, "--config", str(DEFAULT_COUNTERPARTIES))

    assert code == 0
    lines = out.splitlines()
    assert lines[0] == f"{DEFAULT_COUNTERPARTIES}: no problems"
    assert lines[1] == "hub B001, time zone Asia/Shanghai, PAN ranges 6217881 (19 digits)"
    assert any("R440100" in line and "factory F01" in line for line in lines)
    assert lines[-1] == "6 parties configured"


def test_config_check_json_is_one_object_with_the_typed_settings(
    capsys: pytest.CaptureFixture[str], every_connection_in_the_environment: None
) -> None:
    code, out, _ = run(capsys, "--config", str(DEFAULT_COUNTERPARTIES), "--json")

    assert code == 0
    assert len(out.splitlines()) == 1
    report = json.loads(out)
    assert report["problems"] == []
    assert report["hub"] == {
        "code": "B001",
        "timezone": "Asia/Shanghai",
        "pan_ranges": [{"prefix": "6217881", "length": 19}],
    }
    bureau = next(p for p in report["parties"] if p["code"] == "R440100")
    assert bureau["kind"] == "bureaus"
    assert bureau["zip_wait_minutes"] == 120
    assert bureau["connection"] == "environment"
    assert [p["code"] for p in report["parties"]] == [
        "R440100",
        "B002",
        "B003",
        "F01",
        "C01",
        "P01",
    ]


def test_config_check_takes_the_file_from_sscard_counterparties(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    path = write(tmp_path, changed("channels", 0, medium="fax"))
    monkeypatch.setenv("SSCARD_COUNTERPARTIES", str(path))

    code, out, _ = run(capsys, "--no-connections")

    assert code == 1
    assert out.startswith(f"{path}: channel C01: medium: 'fax' is not one of counter, phone")


def test_config_check_of_a_missing_file_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "nowhere.yaml"

    code, out, err = run(capsys, "--config", str(missing))

    assert code == 2
    assert out == ""
    assert str(missing) in err


@pytest.mark.parametrize("name", ["nowhere.yaml", "a" * 300, "directory"])
def test_config_check_json_of_a_file_it_cannot_read_is_one_object_saying_why(
    name: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / name
    if name == "directory":
        path.mkdir()

    code, out, err = run(capsys, "--config", str(path), "--json")

    assert code == 2
    assert err.splitlines() == [f"sscard config check: no such file: {path}"]
    assert json.loads(out) == {"error": f"no such file: {path}", "exit": 2}


@pytest.mark.parametrize(
    "argv", [["config"], ["config", "verify"], ["config", "check", "--config"]]
)
def test_config_used_wrongly_exits_2(capsys: pytest.CaptureFixture[str], argv: list[str]) -> None:
    with pytest.raises(SystemExit) as caught:
        main(argv)

    assert caught.value.code == 2
    assert "usage: sscard config" in capsys.readouterr().err


def test_a_bureau_may_be_paid_before_funding_and_refuse_preopened_accounts(tmp_path: Path) -> None:
    path = write(tmp_path, changed("bureaus", 0, pay_before_funding=True, credit_preopened=False))
    bureau = load_counterparties(path).bureaus[0]
    assert (bureau.pay_before_funding, bureau.credit_preopened) == (True, False)
    assert load_counterparties().bureaus[0].pay_before_funding is False
