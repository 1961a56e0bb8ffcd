"""Two transactions raced: one held open at a chosen point while the other runs beside it
until it is done or waits for a lock (PostgreSQL: seen in ``pg_stat_activity``; SQLite,
which cannot tell, gives it a second)."""

from __future__ import annotations

import time
from collections.abc import Callable
from threading import Event, Thread
from typing import Any

import pytest
from sqlalchemy import Engine, text


def held_open(monkeypatch: pytest.MonkeyPatch, owner: object, name: str) -> tuple[Event, Event]:
    """``owner.name`` made to tell when it has returned and then wait to be let go, so its
    caller's transaction stays open meanwhile."""
    reached, go = Event(), Event()
    original = getattr(owner, name)

    def held(*args: Any, **kwargs: Any) -> Any:
        done = original(*args, **kwargs)
        reached.set()
        assert go.wait(60), "never let go"
        return done

    monkeypatch.setattr(owner, name, held)
    return reached, go


def race(
    engine: Engine,
    first: Callable[[], object],
    held: tuple[Event, Event],
    second: Callable[[], object],
) -> None:
    """``first`` run until it is held open, ``second`` beside it until it is done or
    waits for a lock, then ``first`` let go; both end without error."""
    reached, go = held
    errors: list[BaseException] = []

    def run(step: Callable[[], object]) -> None:
        try:
            step()
        except BaseException as exc:
            errors.append(exc)
            reached.set()

    one = Thread(target=run, args=(first,))
    one.start()
    assert reached.wait(60)
    two = Thread(target=run, args=(second,))
    two.start()
    if engine.dialect.name != "postgresql":
        two.join(1.0)
    deadline = time.monotonic() + 30
    with engine.connect() as conn:
        while (
            engine.dialect.name == "postgresql" and two.is_alive() and time.monotonic() < deadline
        ):
            waiting = conn.scalar(
                text(
                    "SELECT COUNT(*) FROM pg_stat_activity WHERE datname = current_database() "
                    "AND wait_event_type = 'Lock'"
                )
            )
            if waiting:
                break
            conn.rollback()
            time.sleep(0.05)
    go.set()
    one.join(60)
    two.join(60)
    assert not (one.is_alive() or two.is_alive()), "a step never ended"
    assert not errors, "; ".join(f"{type(e).__name__}: {str(e).splitlines()[0]}" for e in errors)
