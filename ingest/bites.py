"""Reading a keyset stream in bites, one bite ahead of the writer.

While a bite is written into the catalogue (the database works, the reader
waits), the next bite is read from the source and mapped on a thread of its
own, so reading, mapping and writing overlap. A bite read ahead that is not
written (the run's time is up, or the write failed) is given back: the
stream's cursor returns to where the bite started, and the next read reads
it again. Each bite carries the stop point to store with it, taken when it
was read, so a bite read ahead never moves the stored stop point; and how
many of its rows the stream had not reached before, and how far it goes,
which the writer notes once the bite is written (``KeysetStream.reached``).

The helper that reads ahead is a thread (:class:`ReadThread`) or, while a
large backlog drains, a process of its own (``ingest.readprocess``).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Protocol

from sqlalchemy import Engine

from ingest.keyset import Cursor, KeysetStream, Position, Reached
from ingest.values import Mapped, map_rows


@dataclass(frozen=True)
class Bite:
    """Rows read from a stream, mapped, with where the stream stood."""

    before: Position | None  # the cursor before the bite (to give it back)
    stop_point: Cursor  # to store in the transaction that writes the bite
    rows: int
    limit: int
    mapped: Mapped[Any]
    seconds: float = 0.0  # to read and map it
    new: int = 0  # rows past how far the stream had been read and written
    reached: Reached = Reached()  # how far the bite goes

    @property
    def pace(self) -> float | None:
        """Rows per second it was read and mapped at (None for no row)."""
        return self.rows / max(self.seconds, 1e-3) if self.rows else None

    @property
    def last(self) -> bool:
        """Fewer rows than asked for: the stream's pass ends with this bite."""
        return self.rows < self.limit


class Ahead(Protocol):
    """A bite being read ahead."""

    def result(self) -> Bite:
        """The bite, once read (the error, if reading it failed)."""
        ...


class ReadAhead(Protocol):
    """What reads bites ahead: a thread, or a process."""

    def submit(self, reader: BiteReader, limit: int) -> Ahead:
        """Start reading the next bite of *reader*, of at most *limit* rows."""
        ...

    def close(self) -> None:
        """Stop reading ahead (a bite being read is finished first)."""
        ...


class ReadThread:
    """Reads bites ahead on a thread of its own, named *name*."""

    def __init__(self, name: str) -> None:
        self._pool = ThreadPoolExecutor(1, thread_name_prefix=name)

    def submit(self, reader: BiteReader, limit: int) -> Future[Bite]:
        return self._pool.submit(reader.read, limit)

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)


class BiteReader:
    """Reads bites of one keyset stream of *source*, mapped by *mapper*
    (refused rows named by their *key* column), now or ahead of time with
    the helper that *ahead* gives (the caller owns it, and may close it).
    """

    def __init__(
        self,
        source: Engine,
        keyset: KeysetStream,
        mapper: Callable[[Mapping[str, Any]], Any],
        key: str,
        ahead: Callable[[], ReadAhead],
    ) -> None:
        self.source = source
        self.keyset = keyset
        self.mapper = mapper
        self.key = key
        self.ahead = ahead

    def read(self, limit: int) -> Bite:
        """The next bite of at most *limit* rows; the cursor moves past it."""
        before, started = self.keyset.cursor, time.monotonic()
        try:
            with self.source.connect() as connection:
                batch = self.keyset.read(connection, limit)
            stop_point = self.keyset.stop_point()
            mapped = map_rows(batch.rows, self.mapper, self.key)
        except BaseException:
            self.keyset.cursor = before
            raise
        seconds = time.monotonic() - started
        rows = len(batch.rows)
        return Bite(
            before, stop_point, rows, limit, mapped, seconds, batch.new, batch.reached
        )

    def read_ahead(self, limit: int) -> Ahead:
        """:meth:`read` by the helper that reads ahead. Nothing else may read
        this stream until the bite is taken (``result()``) or given back.
        """
        return self.ahead().submit(self, limit)

    def give_back(self, ahead: Ahead) -> None:
        """Undo a bite read ahead and not written: the next read reads it again."""
        try:
            bite = ahead.result()
        except Exception:  # the read failed, and put the cursor back itself
            return
        self.keyset.cursor = bite.before
