"""What every ingester shares: reading source values defensively, and
keeping a keyset stream's stop point in the catalogue.

Sources hold surprises (SOURCES.md): NULLs where a value was expected, text
in number columns, unknown words. A value that cannot be used raises
:class:`Unusable`; the ingester puts the record in quarantine with the reason
and carries on.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from sqlalchemy.orm import Session

from catalog.derived import refresh_stale, stale_count
from catalog.errors import HepcatError
from catalog.operations import get_stop_point, quarantine, set_stop_point
from ingest.keyset import Cursor, KeysetStream
from taskserver.base import RunContext

T = TypeVar("T")

# Stale datasets recomputed per transaction, and at most per run.
STALE_BATCH = 2000
STALE_PER_RUN = 5000


class Unusable(ValueError):
    """A source record that cannot be understood; the message says why."""


def integer(
    row: Mapping[str, Any], column: str, *, required: bool = True
) -> int | None:
    """The value of *column* as a non-negative integer."""
    value = row.get(column)
    if value.__class__ is int and value >= 0:  # the common case, quickly
        return value  # type: ignore[no-any-return]
    if value is None:
        if required:
            raise Unusable(f"{column} is missing")
        return None
    if isinstance(value, bool) or not _is_integral(value):
        raise Unusable(f"{column} = {value!r} is not an integer")
    number = int(value)
    if number < 0:
        raise Unusable(f"{column} = {number} is negative")
    return number


def _is_integral(value: Any) -> bool:
    if isinstance(value, int):
        return True
    if isinstance(value, float):
        return math.isfinite(value) and value.is_integer()
    if isinstance(value, str):
        return value.strip().lstrip("+").isdigit()
    return False


def number(row: Mapping[str, Any], column: str) -> float | None:
    """The value of *column* as a finite float, or None."""
    value = row.get(column)
    if value is None:
        return None
    try:
        result = float(value)
    except (TypeError, ValueError):
        raise Unusable(f"{column} = {value!r} is not a number") from None
    if not math.isfinite(result):
        raise Unusable(f"{column} = {value!r} is not a finite number")
    return result


def text(
    row: Mapping[str, Any], column: str, *, required: bool = True, length: int = 255
) -> str | None:
    """The value of *column* as stripped text of at most *length* characters."""
    value = row.get(column)
    if value.__class__ is str:  # the common case, quickly
        result = value.strip()
        if result and len(result) <= length:
            return result  # type: ignore[no-any-return]
    if value is None or (isinstance(value, str) and not value.strip()):
        if required:
            raise Unusable(f"{column} is missing")
        return None
    result = str(value).strip()
    if len(result) > length:
        raise Unusable(f"{column} is longer than {length} characters")
    return result


def guid(row: Mapping[str, Any], column: str = "guid") -> str:
    """The value of *column* as an upper-case GUID."""
    value = (text(row, column, length=36) or "").upper()
    if len(value) != 36 or value.count("-") != 4:
        raise Unusable(f"{column} = {value!r} is not a GUID (36 characters, 4 dashes)")
    return value


def moment(row: Mapping[str, Any], column: str) -> dt.datetime | None:
    """The value of *column* (naive UTC in the source) as an aware datetime."""
    value = row.get(column)
    if value is None:
        return None
    if isinstance(value, str):
        try:
            value = dt.datetime.fromisoformat(value)
        except ValueError:
            raise Unusable(f"{column} = {value!r} is not a time") from None
    if not isinstance(value, dt.datetime):
        raise Unusable(f"{column} = {value!r} is not a time")
    return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value


@dataclass(frozen=True)
class Mapped(Generic[T]):
    """Source rows mapped: the usable ones, and the refused ones with why."""

    good: list[T]
    refused: list[tuple[str, dict[str, Any], str]]  # (record, values, reason)

    def quarantine(self, source: str, *, session: Session) -> list[T]:
        """Put the refused rows in quarantine under *source*; return the good."""
        for record, values, reason in self.refused:
            quarantine(source, record, values, reason, session=session)
        return self.good


def map_rows(
    rows: Iterable[Any], mapper: Callable[[Mapping[str, Any]], T | None], key: str
) -> Mapped[T]:
    """Map each source row with *mapper*, which may skip a row (None) or
    refuse it (with :class:`Unusable` or a hepcat error); refused rows are
    named by their *key* column. Touches no database: a reader may map the
    next bite while the last one is written.
    """
    good = []
    refused = []
    fields = None  # the column names of the rows, when they are Rows
    for row in rows:
        # A plain dict: a Row's mapping answers get() at Python speed.
        if fields is None and hasattr(row, "_fields"):
            fields = row._fields
        values = dict(zip(fields, row, strict=True)) if fields else dict(row)
        try:
            mapped = mapper(values)
        except (Unusable, HepcatError) as err:
            refused.append((str(values.get(key)), values, str(err)))
            continue
        if mapped is not None:
            good.append(mapped)
    return Mapped(good, refused)


def usable_rows(
    rows: Iterable[Any],
    mapper: Callable[[Mapping[str, Any]], T],
    key: str,
    source: str,
    *,
    session: Session,
) -> list[T]:
    """Map each source row with *mapper*; put the rows it refuses (with
    :class:`Unusable` or a hepcat error) in quarantine, under *source* and
    the row's *key* column.
    """
    return map_rows(rows, mapper, key).quarantine(source, session=session)


def load_cursor(
    stream: str, keyset: KeysetStream, *, session: Session
) -> Cursor | None:
    """The stored stop point of *stream* as a cursor (None: from the start)."""
    point = get_stop_point(stream, session=session)
    if point.timestamp is None:
        return None
    stamp = point.timestamp.astimezone(dt.UTC).replace(tzinfo=None)
    key_type = keyset.table.c[keyset.key_column].type.python_type
    return Cursor(stamp, key_type(point.key or ""))


def save_stop_point(stream: str, cursor: Cursor, *, session: Session) -> None:
    """Store *cursor* as where *stream*'s next pass must start (in the
    transaction that writes the rows it covers).
    """
    stamp = cursor.timestamp.replace(tzinfo=dt.UTC)
    set_stop_point(stream, stamp, str(cursor.key), session=session)


def refresh_stale_datasets(context: RunContext, limit: int = STALE_PER_RUN) -> int:
    """Recompute the datasets marked stale, a transaction per batch, while the
    run has time and up to *limit* of them; one batch always, even past the
    deadline, so derived quantities keep close behind the data while a
    backlog takes every run's budget. Return how many are still stale.
    """
    done = 0
    while done < limit and not context.stop.is_set():
        if done and context.time_left() <= 0:
            break
        with context.Session.begin() as session:
            refreshed = refresh_stale(session=session, limit=STALE_BATCH)
        done += refreshed
        if refreshed < STALE_BATCH:
            break
    with context.Session() as session:
        return stale_count(session=session)
