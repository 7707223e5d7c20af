"""Reading source values defensively, and mapping source rows.

Sources hold surprises (SOURCES.md): NULLs where a value was expected, text
in number columns, unknown words. A value that cannot be used raises
:class:`Unusable`; the ingester puts the record in quarantine with the reason
and carries on (``ingest.base``).

Nothing here touches the catalogue, and the module imports no more than the
mapping needs: a process that reads bites ahead (``ingest.readprocess``)
imports it, and starts sooner for it.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from catalog.errors import HepcatError
from catalog.nomenclature import is_plain_name

T = TypeVar("T")


class Unusable(ValueError):
    """A source record that cannot be understood; the message says why."""


# The largest integer the catalogue's columns hold (BIGINT).
BIGINT_MAX = 2**63 - 1


def integer(
    row: Mapping[str, Any],
    column: str,
    *,
    required: bool = True,
    at_most: int = BIGINT_MAX,
) -> int | None:
    """The value of *column* as a non-negative integer of at most *at_most*."""
    value = row.get(column)
    if value.__class__ is int and 0 <= value <= at_most:  # the common case
        return value
    if value is None:
        if required:
            raise Unusable(f"{column} is missing")
        return None
    if isinstance(value, bool) or not _is_integral(value):
        raise Unusable(f"{column} = {value!r} is not an integer")
    number = int(value)
    if number < 0:
        raise Unusable(f"{column} = {number} is negative")
    if number > at_most:
        raise Unusable(f"{column} = {number} is more than {at_most}")
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


def non_negative(
    row: Mapping[str, Any], column: str, *, at_most: float = math.inf
) -> float | None:
    """The value of *column* as a finite float from 0 to *at_most*, or None."""
    result = number(row, column)
    if result is not None and result < 0:
        raise Unusable(f"{column} = {row.get(column)!r} is negative")
    if result is not None and result > at_most:
        raise Unusable(f"{column} = {row.get(column)!r} is more than {at_most:g}")
    return result


def fraction(row: Mapping[str, Any], column: str) -> float | None:
    """The value of *column* as a float in (0, 1], or None (an efficiency)."""
    result = number(row, column)
    if result is not None and not 0 < result <= 1:
        raise Unusable(f"{column} = {row.get(column)!r} is not in (0, 1]")
    return result


def text(
    row: Mapping[str, Any], column: str, *, required: bool = True, length: int = 255
) -> str | None:
    """The value of *column* as stripped text of at most *length* characters."""
    value = row.get(column)
    if value.__class__ is str:  # the common case, quickly
        result = value.strip()
        if result and len(result) <= length:
            return result
    if value is None or (isinstance(value, str) and not value.strip()):
        if required:
            raise Unusable(f"{column} is missing")
        return None
    result = str(value).strip()
    if len(result) > length:
        raise Unusable(f"{column} is longer than {length} characters")
    return result


def lfn(row: Mapping[str, Any], column: str = "lfn") -> str:
    """The value of *column* as a logical file name: a name, as Rucio's,
    never a path (the file store puts it under its storage root).
    """
    value = text(row, column) or ""
    if not is_plain_name(value):
        raise Unusable(f"{column} {value!r} is a path, not a file name")
    return value


# A GUID: 8-4-4-4-12 hexadecimal digits.
GUID = re.compile(r"[0-9A-Fa-f]{8}-(?:[0-9A-Fa-f]{4}-){3}[0-9A-Fa-f]{12}")


def guid(row: Mapping[str, Any], column: str = "guid") -> str:
    """The value of *column* as an upper-case GUID."""
    value = text(row, column, required=True, length=255) or ""
    if not GUID.fullmatch(value):
        raise Unusable(
            f"{column} = {row.get(column)!r} is not a GUID "
            "(8-4-4-4-12 hexadecimal digits)"
        )
    return value.upper()


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
