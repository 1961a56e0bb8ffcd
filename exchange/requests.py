"""The request-intake pipeline's moving parts, for any request a counterparty sends
(APPLY today; STATUS, CHANNEL and DISB next): the flow gives its line rules, its
database rules and its answer writer; this module overlaps them.

stage → line rules → database rules → store → answers. Lines are read and checked in
Python chunk by chunk while the database checks and stores the previous chunk (the
driver waits without the GIL), and a third thread writes the answers of every settled
chunk into the response, so a file of a million lines streams with flat memory. All of
it runs inside the file's one transaction (the caller's connection, never used by two
threads at once).
"""

from __future__ import annotations

import logging
import queue
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from types import TracebackType
from typing import Generic, TypeVar

log = logging.getLogger("sscard.exchange")

T = TypeVar("T")
S = TypeVar("S")
A = TypeVar("A")


def stage_overlapped(
    name: str,
    chunks: Iterable[T],
    prepare: Callable[[T], tuple[S, int]],
    load: Callable[[S, int, int], None],
) -> int:
    """For every chunk in order: ``prepare`` it here (Python: the line rules, the staging
    table; returns it and its number of lines), then ``load`` it (the database: stage,
    database rules, store) in a worker thread with its SEQ range, while the next chunk is
    prepared. A failure waits for the chunk in flight before it leaves. Returns the
    number of lines."""
    staged = 0
    loading: Future[None] | None = None
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="stage") as loader:
        for chunk in chunks:
            table, count = prepare(chunk)
            if loading is not None:
                loading.result()
            loading = loader.submit(load, table, staged + 1, staged + count)
            staged += count
            log.info("%s: %d lines checked", name, staged)
        if loading is not None:
            loading.result()
    return staged


class AnswerStream(Generic[A]):
    """Per-line answers handed from the database thread to a writer thread, in order, a
    few chunks at most in memory. ``with AnswerStream(write) as answers:`` starts
    ``write(iterator of answers)`` in its own thread; ``answers.put(part)`` hands on one
    chunk's answers; leaving the block ends the stream and raises the writer's error."""

    def __init__(self, write: Callable[[Iterator[A]], object], depth: int = 2) -> None:
        self._write = write
        self._queue: queue.Queue[list[A] | None] = queue.Queue(maxsize=depth)
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="answers")
        self._written: Future[object] | None = None

    def __enter__(self) -> AnswerStream[A]:
        self._written = self._pool.submit(self._write, self._items())
        return self

    def _items(self) -> Iterator[A]:
        while (part := self._queue.get()) is not None:
            yield from part

    def put(self, part: list[A] | None) -> None:
        """Hand answers on, waiting while the writer catches up; if it has stopped, its
        error is raised when the stream ends, not waited for here."""
        while True:
            try:
                self._queue.put(part, timeout=0.5)
                return
            except queue.Full:
                if self._written is not None and self._written.done():
                    return

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.put(None)
        try:
            if self._written is not None and exc is None:
                self._written.result()
        finally:
            self._pool.shutdown(wait=True)
