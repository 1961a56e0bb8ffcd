"""What every DAG task does around its job: failures that a retry cannot cure fail the
task at once, without Airflow's retries (ICD §2: a host-key failure is never retried),
and an error that quotes a PAN or an ID number reaches the task log with them masked.

Imported by DAG tasks only (it imports Airflow, inside the function)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def task_errors() -> Iterator[None]:
    """Around a task's job:

    - a changed or unknown host key, a refused key and files left in the pickup for the
      next run (``IntakeIncomplete``) become ``AirflowFailException``: the task fails
      now and is not retried; everything else (a dropped connection, a database outage)
      keeps the task's retries;
    - an error whose text (or that of an error it was raised from) quotes a PAN or an
      ID number, such as a database's "Key (pan)=(…) already exists", is raised again
      as ``MaskedError`` with them masked (an ``AirflowFailException`` stays one), so
      neither the task log nor the failure alert shows them in full."""
    from airflow.sdk.exceptions import AirflowFailException

    from exchange.logsafe import masked_error

    try:
        with _no_retry_for_hard_failures():
            yield
    except Exception as exc:
        masked = masked_error(exc)
        if masked is None:
            raise
        if isinstance(exc, AirflowFailException):
            raise AirflowFailException(str(masked)).with_traceback(masked.__traceback__) from None
        raise masked from None


@contextmanager
def _no_retry_for_hard_failures() -> Iterator[None]:
    from airflow.sdk.exceptions import AirflowFailException

    from exchange.pickup import IntakeIncomplete
    from transport.errors import AuthenticationError, HostKeyError

    try:
        yield
    except (HostKeyError, AuthenticationError) as exc:
        raise AirflowFailException(
            f"{type(exc).__name__}: {exc} (not retried: confirm the key with the "
            "counterparty out of band, then update the connection)"
        ) from exc
    except IntakeIncomplete as exc:
        # the same file would fail again at once: no retry, the next run tries it
        raise AirflowFailException(str(exc)) from exc
