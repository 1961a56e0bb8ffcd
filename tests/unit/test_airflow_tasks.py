"""What every DAG task does around its job: which failures Airflow retries, and that an
error's text reaches the task log without a PAN or an ID number in full."""

from __future__ import annotations

import pytest
from airflow.sdk.exceptions import AirflowFailException

from exchange.logsafe import MaskedError
from exchange.pickup import IntakeIncomplete
from sscard.airflow_tasks import task_errors
from transport.errors import HostKeyError

PAN = "6217881000000000018"


def test_a_changed_host_key_fails_the_task_without_retries() -> None:
    with pytest.raises(AirflowFailException, match="not retried: confirm the key"):
        with task_errors():
            raise HostKeyError("host key of 127.0.0.1 changed")


def test_files_left_for_the_next_run_fail_the_task_without_retries_and_masked() -> None:
    with pytest.raises(AirflowFailException) as failed:
        with task_errors():
            raise IntakeIncomplete([f"APPLY_{PAN}.txt"])
    assert PAN not in str(failed.value) and "621788****0018" in str(failed.value)


def test_an_error_quoting_a_pan_is_masked_and_keeps_its_retries() -> None:
    with pytest.raises(MaskedError, match=r"KeyError: '621788\*\*\*\*0018'") as failed:
        with task_errors():
            raise KeyError(PAN)
    assert not isinstance(failed.value, AirflowFailException)  # Airflow retries it


def test_an_error_quoting_no_such_number_is_raised_as_it_was() -> None:
    with pytest.raises(ConnectionResetError, match="reset by peer"):
        with task_errors():
            raise ConnectionResetError("reset by peer")
