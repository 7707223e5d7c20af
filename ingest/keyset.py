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

The stop point is committed by the caller in the same transaction as the
rows it covers.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Table, and_, func, or_, select, text

EPOCH = dt.datetime(1970, 1, 1)


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
        ts, key = table.c[ts_column], table.c[key_column]
        return or_(ts > self.timestamp, and_(ts == self.timestamp, key > self.key))


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
        self.cursor: Cursor | None = None  # None: a new pass starts
        self._safe_point: dt.datetime = EPOCH

    def begin_pass(self, connection: Connection, stored: Cursor | None) -> None:
        """Start a pass from the stored stop point."""
        self._safe_point = source_clock(connection) - self.lag
        self.cursor = stored or Cursor(EPOCH, _lowest(self.table.c[self.key_column]))

    @property
    def in_pass(self) -> bool:
        return self.cursor is not None

    def read(self, connection: Connection, limit: int) -> Sequence[Any]:
        """The next *limit* rows after the cursor; the cursor moves past them.
        Fewer rows than *limit* end the pass.
        """
        assert self.cursor is not None, "begin_pass() first"
        query = (
            select(self.table)
            .where(self.cursor.after(self.table, self.ts_column, self.key_column))
            .order_by(self.table.c[self.ts_column], self.table.c[self.key_column])
            .limit(limit)
        )
        rows = connection.execute(query).all()
        if rows:
            last = rows[-1]._mapping
            self.cursor = Cursor(last[self.ts_column], last[self.key_column])
        return rows

    def read_untimed(self, connection: Connection, limit: int) -> Sequence[Any]:
        """Rows without a timestamp, which keyset order can never reach: a
        pass reads them again each time (writes are idempotent).
        """
        query = (
            select(self.table)
            .where(self.table.c[self.ts_column].is_(None))
            .order_by(self.table.c[self.key_column])
            .limit(limit)
        )
        return connection.execute(query).all()

    def end_pass(self) -> None:
        self.cursor = None

    def stop_point(self) -> Cursor:
        """Where the next pass must start: the cursor, but never later than
        the source clock at the start of this pass less the safety lag.
        """
        assert self.cursor is not None
        if self.cursor.timestamp <= self._safe_point:
            return self.cursor
        return Cursor(self._safe_point, _lowest_value(self.cursor.key))

    def backlog(self, connection: Connection) -> int:
        """Rows after the cursor (or the whole table before a pass)."""
        query = select(func.count()).select_from(self.table)
        if self.cursor is not None:
            query = query.where(
                self.cursor.after(self.table, self.ts_column, self.key_column)
            )
        return int(connection.scalar(query) or 0)


def _lowest(column: Any) -> Any:
    return _lowest_value(0 if column.type.python_type is int else "")


def _lowest_value(key: Any) -> Any:
    if isinstance(key, int):
        return -(2**63)
    return ""
