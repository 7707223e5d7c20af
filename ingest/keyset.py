"""Reading a source table in keyset order, with a stop point that survives
late commits.

A source row's ``timestamp`` may be up to a *safety lag* older than the moment
it becomes visible (it was written in a transaction that committed later),
and corrections can rewrite a row with an older timestamp. Asking only for
``timestamp > stop point`` loses such rows. So a reader:

- pages by the keyset ``(timestamp, key)``, never by offset;
- starts each *pass* from the stored stop point, and keeps its cursor in
  memory while a backlog drains;
- stores as stop point at most ``R - lag``, where ``R`` is the source
  database's clock when the pass started: every row invisible at ``R`` has a
  timestamp later than ``R - lag``, so the next pass, starting there, sees
  it. Rows between that point and the cursor are read again (the overlap
  window), and idempotent writes make the re-read harmless.

Rows without a timestamp can never be reached in that order: each pass reads
them first, all of them, in key order and in bites like the others
(:class:`Untimed` is the cursor among them).

The stream remembers how far it has been read and written (:class:`Reached`,
kept in memory): the rows a pass reads again up to there, the overlap window
and the rows without a timestamp, are not counted as left to ingest
(:meth:`KeysetStream.left`), only as left to read. Keys that are text are
never put in order in Python: the database orders them by its collation,
which may not be Python's, so it counts what only their order decides.

The stop point is committed by the caller in the same transaction as the
rows it covers.

A SQLite source compares its timestamps as text: before each read, the
stream makes sure that the text of those it depends on sorts as their time
does (:meth:`KeysetStream._unordered`), and stops with
:class:`UnorderedTimestamp` where one does not.
"""

from __future__ import annotations

import datetime as dt
from bisect import bisect_left, bisect_right
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

from sqlalchemy import (
    Connection,
    String,
    Table,
    and_,
    func,
    or_,
    select,
    text,
    type_coerce,
    union_all,
)

from catalog.errors import HepcatError
from ingest.schemas import select_raw

EPOCH = dt.datetime(1970, 1, 1)

# SQLite has no time type: a timestamp is text, compared as text. The text
# SQLAlchemy writes, 'YYYY-MM-DD HH:MM:SS.ffffff', sorts as its time does,
# and is the one a cursor is compared in; another text of a time (no
# fraction, a 'T') does not, and rows would be lost or read for ever.
SQLITE_FORM = "YYYY-MM-DD HH:MM:SS.ffffff"
_DIGIT = "[0-9]"
SQLITE_GLOB = "".join(_DIGIT if c.isalpha() else c for c in SQLITE_FORM)


class UnorderedTimestamp(HepcatError, ValueError):
    """A SQLite source's timestamp that is not text in :data:`SQLITE_FORM`."""

    def __init__(self, table: str, column: str, key: Any, value: Any) -> None:
        self.table, self.column, self.key, self.value = table, column, key, value
        super().__init__(
            f"{table}: the row {column} = {key!r} has timestamp {value!r}, "
            f"not a time in text of the form {SQLITE_FORM!r} (UTC, from 1970 on): in a "
            "SQLite source only that form sorts as time does, so the table is "
            "not read past it; correct the source's timestamps to that form "
            "and the next run goes on (docs/ingest.md)"
        )

    def __reduce__(self) -> Any:
        return type(self), (self.table, self.column, self.key, self.value)


def _in_calendar(stamp: Any) -> Any:
    """Whether the SQLite text *stamp*, of the form of :data:`SQLITE_GLOB`,
    is a time the calendar has (not 2026-02-30, nor 25:00): SQLite's date
    rolls a day it lacks over into the next month, and its time refuses an
    hour it lacks.
    """
    day, clock = func.substr(stamp, 1, 10), func.substr(stamp, 12, 8)
    read_day = func.coalesce(func.date(func.julianday(day)), "")
    return and_(read_day == day, func.coalesce(func.time(clock), "") == clock)


def source_clock(connection: Connection) -> dt.datetime:
    """The source database's current time, as naive UTC."""
    dialect = connection.dialect.name
    if dialect == "sqlite":
        value = connection.scalar(text("SELECT strftime('%Y-%m-%d %H:%M:%f', 'now')"))
        return dt.datetime.fromisoformat(str(value))
    if dialect in ("mysql", "mariadb"):
        return _naive(connection.scalar(text("SELECT UTC_TIMESTAMP(6)")))
    if dialect == "postgresql":
        query = "SELECT (now() AT TIME ZONE 'UTC')"
        return _naive(connection.scalar(text(query)))
    return _naive(
        connection.scalar(text("SELECT SYS_EXTRACT_UTC(SYSTIMESTAMP) FROM DUAL"))
    )


def _naive(value: Any) -> dt.datetime:
    moment = dt.datetime.fromisoformat(value) if isinstance(value, str) else value
    if not isinstance(moment, dt.datetime):
        raise TypeError(f"the source clock answered {value!r}, not a time")
    if moment.tzinfo is not None:
        moment = moment.astimezone(dt.UTC).replace(tzinfo=None)
    return moment


@dataclass(frozen=True)
class Cursor:
    """A position in keyset order: rows after ``(timestamp, key)``."""

    timestamp: dt.datetime
    key: Any

    def after(self, table: Table, ts_column: str, key_column: str) -> Any:
        # The range first: SQLite reads a bare OR of the two from the start
        # of the (timestamp, key) index, each bite further in.
        ts, key = table.c[ts_column], table.c[key_column]
        return and_(ts >= self.timestamp, or_(ts > self.timestamp, key > self.key))


@dataclass(frozen=True)
class Untimed:
    """A position among the rows without a timestamp, which a pass reads
    first, in key order: those after *key*.
    """

    key: Any


# Where a stream stands in its pass.
Position = Cursor | Untimed


@dataclass(frozen=True)
class Reached:
    """How far a stream's rows have been read and written: the rows without
    a timestamp up to the key *untimed*, the others up to the cursor *timed*
    (None: none yet, or, for a batch, not past how far the stream had been).
    """

    untimed: Any = None
    timed: Cursor | None = None

    def joined(self, batch: Reached) -> Reached:
        """How far the stream has been once a *batch* that it had not
        reached before is written: a batch that holds rows the stream had not
        reached ends past them, so past where the stream had been.
        """
        untimed = self.untimed if batch.untimed is None else batch.untimed
        return Reached(untimed, batch.timed or self.timed)


class Batch(NamedTuple):
    """Rows read from a stream: how many of them it had not reached before
    (they are new to the catalogue, or changed since), and how far they go.
    """

    rows: Sequence[Any]
    new: int
    reached: Reached


class Left(NamedTuple):
    """What a pass has left: rows to read, and of those the rows to ingest
    (past how far the stream had been read and written).
    """

    rows: int
    new: int


class KeysetStream:
    """One source table read in ``(timestamp, key)`` order."""

    def __init__(
        self,
        table: Table,
        ts_column: str = "timestamp",
        key_column: str | None = None,
        lag: float = 120.0,
    ) -> None:
        self.table = table
        self.ts_column = ts_column
        self.key_column = key_column or next(iter(table.primary_key.columns)).name
        self.lag = dt.timedelta(seconds=lag)
        self.cursor: Position | None = None  # None: a new pass starts
        self.reached = Reached()
        names = list(table.c.keys())
        self._ts_index = names.index(self.ts_column)
        self._key_index = names.index(self.key_column)
        self._lowest = _lowest(table.c[self.key_column])
        # Whether Python orders the keys as the database does: numbers.
        self._numbers = table.c[self.key_column].type.python_type is int
        self._start = Cursor(EPOCH, self._lowest)  # where the pass's timed rows begin
        self._safe_point: dt.datetime = EPOCH

    def begin_pass(self, connection: Connection, stored: Cursor | None) -> None:
        """Start a pass from the stored stop point; the rows without a
        timestamp come first.
        """
        self._safe_point = source_clock(connection) - self.lag
        self._start = stored or Cursor(EPOCH, self._lowest)
        self.cursor = Untimed(None)

    @property
    def in_pass(self) -> bool:
        return self.cursor is not None

    def read(self, connection: Connection, limit: int) -> Batch:
        """The next *limit* rows after the cursor; the cursor moves past them.
        Fewer rows than *limit* end the pass.
        """
        assert self.cursor is not None, "begin_pass() first"
        untimed: Sequence[Any] = ()
        if isinstance(self.cursor, Untimed):
            query = self._untimed(connection, self.cursor, limit)
            untimed = connection.execute(query).all()
            if len(untimed) == limit:
                self.cursor = Untimed(untimed[-1][self._key_index])
                return self._batch(connection, untimed, ())
            # The rows without a timestamp are all read: the bite goes on
            # with the others, from the stop point.
            self.cursor, limit = self._start, limit - len(untimed)
        self._check_order(connection, self.cursor, limit)
        query = (
            select_raw(self.table, keep=self.ts_column)
            .where(self.cursor.after(self.table, self.ts_column, self.key_column))
            .order_by(self.table.c[self.ts_column], self.table.c[self.key_column])
            .limit(limit)
        )
        timed = connection.execute(query).all()
        if timed:
            last = timed[-1]
            self.cursor = Cursor(last[self._ts_index], last[self._key_index])
        return self._batch(connection, untimed, timed)

    def _check_order(self, connection: Connection, cursor: Cursor, limit: int) -> None:
        """On SQLite, raise :class:`UnorderedTimestamp` for a row whose
        timestamp is not text in :data:`SQLITE_FORM` (:meth:`_unordered`).
        """
        if connection.dialect.name != "sqlite":
            return
        found = connection.execute(self._unordered(cursor, limit)).first()
        if found is not None:
            raise UnorderedTimestamp(self.table.name, self.key_column, *found)

    def _unordered(self, cursor: Cursor, limit: int) -> Any:
        """The query of the first row, as (key, timestamp as stored), whose
        timestamp text is not in :data:`SQLITE_FORM` among those that decide
        where reading *limit* rows after *cursor* goes: the rows it reads;
        the shorter texts of the cursor's own time, which sort before it and
        which it would step over; and the values that sort before 1970, which
        no cursor reaches (numbers, text such as '01/12/2026'). Each is a
        range of the ``(timestamp, key)`` index, the first as long as the
        read, the others found at once.
        """
        stamp, key = self.table.c[self.ts_column], self.table.c[self.key_column]
        stored = type_coerce(stamp, String)
        reads = (
            select(key.label("key"), stored.label("stamp"))
            .where(cursor.after(self.table, self.ts_column, self.key_column))
            .order_by(stamp, key)
            .limit(limit)
            .subquery()
        )
        form = cursor.timestamp.strftime("%Y-%m-%d %H:%M:%S.%f")
        shorter = [form[:length] for length in range(10, len(form))]
        epoch = EPOCH.strftime("%Y-%m-%d %H:%M:%S.%f")
        return union_all(
            select(reads.c.key, reads.c.stamp).where(
                or_(
                    ~reads.c.stamp.op("GLOB", is_comparison=True)(SQLITE_GLOB),
                    ~_in_calendar(reads.c.stamp),
                )
            ),
            select(key, stored).where(stored.in_(shorter)),
            select(key, stored).where(stored < epoch),
        ).limit(1)

    def _timeless(self, connection: Connection) -> Any:
        """The condition of the rows without a timestamp a cursor reaches:
        none, or (but on SQLite, which stops at them, :meth:`_unordered`)
        one before 1970, which every cursor starts after (a MariaDB zero
        date, a year 1900 typed in error), so that they are not lost.
        """
        stamp = self.table.c[self.ts_column]
        if connection.dialect.name == "sqlite":
            return stamp.is_(None)
        return or_(stamp.is_(None), stamp < EPOCH)

    def _untimed(self, connection: Connection, after: Untimed, limit: int) -> Any:
        """The query of the next *limit* rows without a timestamp."""
        key = self.table.c[self.key_column]
        query = select_raw(self.table, keep=self.ts_column)
        query = query.where(self._timeless(connection))
        if after.key is not None:
            query = query.where(key > after.key)
        return query.order_by(key).limit(limit)

    def _batch(
        self, connection: Connection, untimed: Sequence[Any], timed: Sequence[Any]
    ) -> Batch:
        """The rows read, *untimed* then *timed*, each in its keyset order,
        with how many the stream had not reached, and how far those go.
        """
        new_untimed = self._new_untimed(connection, untimed)
        new_timed = self._new_timed(connection, timed)
        went = Reached(
            untimed[-1][self._key_index] if new_untimed else None,
            Cursor(timed[-1][self._ts_index], timed[-1][self._key_index])
            if new_timed
            else None,
        )
        rows = [*untimed, *timed] if untimed and timed else (untimed or timed)
        return Batch(rows, new_untimed + new_timed, went)

    def _new_untimed(self, connection: Connection, rows: Sequence[Any]) -> int:
        """How many of *rows*, without a timestamp, lie past the key the
        stream had reached among such rows.
        """
        mark = self.reached.untimed
        if mark is None or not rows:
            return len(rows)
        if self._numbers:
            return len(rows) - bisect_right(rows, mark, key=self._key_of)
        key = self.table.c[self.key_column]
        first, last = rows[0][self._key_index], rows[-1][self._key_index]
        untimed = self._timeless(connection)
        return self._count(connection, untimed, key >= first, key <= last, key > mark)

    def _new_timed(self, connection: Connection, rows: Sequence[Any]) -> int:
        """How many of *rows* lie past the cursor the stream had reached:
        a binary search by time (and by key, for numbers), not a look at
        each row; the database counts those that share the cursor's time
        when only the order of their text keys decides.
        """
        mark = self.reached.timed
        if mark is None or not rows:
            return len(rows)
        stamp = self._stamp_of
        low = bisect_left(rows, mark.timestamp, key=stamp)
        high = bisect_right(rows, mark.timestamp, low, key=stamp)
        new = len(rows) - high
        if low == high:
            return new
        if self._numbers:
            return (
                new + high - bisect_right(rows, mark.key, low, high, key=self._key_of)
            )
        key, ts = self.table.c[self.key_column], self.table.c[self.ts_column]
        first, last = rows[low][self._key_index], rows[high - 1][self._key_index]
        conditions = (ts == mark.timestamp, key >= first, key <= last, key > mark.key)
        return new + self._count(connection, *conditions)

    def _key_of(self, row: Any) -> Any:
        return row[self._key_index]

    def _stamp_of(self, row: Any) -> Any:
        return row[self._ts_index]

    def end_pass(self) -> None:
        self.cursor = None

    def stop_point(self) -> Cursor:
        """Where the next pass must start: the cursor, but never later than
        the source clock at the start of this pass less the safety lag.
        """
        assert self.cursor is not None
        cursor = self._start if isinstance(self.cursor, Untimed) else self.cursor
        if cursor.timestamp <= self._safe_point:
            return cursor
        return Cursor(self._safe_point, _lowest_value(cursor.key))

    def left(self, connection: Connection) -> Left:
        """What the pass has left from where its cursor stands (all of it
        just after :meth:`begin_pass`): rows to read, and of those the rows
        past how far the stream has been read and written, to ingest.
        """
        rows = self._left(connection, Reached())
        new = self.new_left(connection) if rows and self.reached != Reached() else rows
        return Left(rows, new)

    def new_left(self, connection: Connection) -> int:
        """The rows the pass has left that lie past how far the stream has
        been read and written.
        """
        return self._left(connection, self.reached)

    def _left(self, connection: Connection, marks: Reached) -> int:
        """How many rows lie after the cursor and past *marks*."""
        assert self.cursor is not None, "begin_pass() first"
        position, count = self.cursor, 0
        if isinstance(position, Untimed):
            key = self.table.c[self.key_column]
            conditions = [self._timeless(connection)]
            conditions += [
                key > k for k in (position.key, marks.untimed) if k is not None
            ]
            count, position = self._count(connection, *conditions), self._start
        bounds = self._bounds(position, marks.timed)
        return count + self._count(connection, *map(self._after, bounds))

    def _bounds(self, position: Cursor, mark: Cursor | None) -> list[Cursor]:
        """The cursors a row must lie after to lie after both *position* and
        *mark*: the later of the two when Python can tell (their times
        differ, or their keys are numbers), else both, for the database to
        compare.
        """
        if mark is None:
            return [position]
        if position.timestamp != mark.timestamp:
            return [max(position, mark, key=lambda cursor: cursor.timestamp)]
        if self._numbers:
            return [max(position, mark, key=lambda cursor: cursor.key)]
        return [position, mark]

    def _after(self, cursor: Cursor) -> Any:
        return cursor.after(self.table, self.ts_column, self.key_column)

    def _count(self, connection: Connection, *conditions: Any) -> int:
        query = select(func.count()).select_from(self.table).where(*conditions)
        return int(connection.scalar(query) or 0)


def _lowest(column: Any) -> Any:
    return _lowest_value(0 if column.type.python_type is int else "")


def _lowest_value(key: Any) -> Any:
    if isinstance(key, int):
        return -(2**63)
    return ""
