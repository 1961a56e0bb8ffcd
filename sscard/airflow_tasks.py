"""What every DAG task does around its job: failures that a retry cannot cure fail the
task at once, without Airflow's retries (ICD §2: a host-key failure is never retried).

Imported by DAG tasks only (it imports Airflow, inside the function)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def no_retry_for_hard_failures() -> Iterator[None]:
    """Turn a changed or unknown host key, a refused key and files left in the pickup
    for the next run (``IntakeIncomplete``) into ``AirflowFailException``: the task
    fails now and is not retried; everything else (a dropped connection, a database
    outage) keeps the task's retries."""
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
