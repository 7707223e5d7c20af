"""Keyset pagination: a long result read a page at a time, each page
starting after the last row of the page before.

Offset paging makes the database count past every skipped row and shifts
when rows arrive between two pages; a keyset page asks for the rows *after*
the previous page's last sort key, which an index answers directly. For that
the order must be total and the same on every database, so:

- the row's id is always the last key, breaking ties;
- NULLs sort last in either direction (PostgreSQL puts them last in
  ascending order, SQLite and MariaDB first; an explicit ``IS NULL`` key
  makes them agree).

A page's position travels to the next request as an opaque *cursor*:
URL-safe base64 of JSON naming the sort and the last row's key. A cursor is
validated when decoded; a tampered one is :class:`InvalidInput`, never a
database error.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, case, false, or_
from sqlalchemy.orm import Session

from catalog.errors import InvalidInput
from catalog.fields import typed_value, value_type

DEFAULT_LIMIT = 100
MAX_LIMIT = 1000


@dataclass(frozen=True)
class SortKey:
    """A column the rows are sorted by, ascending unless *descending*."""

    column: Any  # a table column, e.g. Dataset.__table__.c.name
    descending: bool = False


@dataclass(frozen=True)
class Keyset:
    """The total order of a paged query: *keys*, then *id* ascending. The
    columns are table columns (``Dataset.__table__.c.name``), named as the
    attributes of the ORM objects the query returns.

    :param name: names the order in cursors (e.g. ``"-totalEvents"``), so a
        cursor of one order is refused for another.
    """

    keys: Sequence[SortKey]
    id: Any
    name: str = ""

    @property
    def columns(self) -> list[Any]:
        return [key.column for key in self.keys] + [self.id]

    def order_by(self) -> list[Any]:
        """The ORDER BY clauses, NULLs last."""
        clauses: list[Any] = []
        for key in self.keys:
            clauses.extend(nulls_last(key.column, descending=key.descending))
        return [*clauses, self.id.asc()]

    def after(self, values: Sequence[Any]) -> ColumnElement[bool]:
        """The condition selecting the rows that sort after the key *values*
        (one per sort key, then the id).
        """
        *key_values, last_id = values
        terms: list[ColumnElement[bool]] = []
        equal: list[ColumnElement[bool]] = []
        for key, value in zip(self.keys, key_values, strict=True):
            terms.append(and_(*equal, _beyond(key, value)))
            equal.append(_same(key.column, value))
        terms.append(and_(*equal, self.id > last_id))
        return or_(*terms)

    def key_of(self, row: Any) -> tuple[Any, ...]:
        """The key values of the ORM object *row*."""
        return tuple(getattr(row, column.key) for column in self.columns)


def nulls_last(expression: Any, *, descending: bool = False) -> list[Any]:
    """The ORDER BY clauses of *expression* (a column, or a computed field's
    subquery), NULLs last in either direction on every database: an ``IS
    NULL`` key leads, unless *expression* is a column without NULLs.
    """
    ordered = expression.desc() if descending else expression.asc()
    if not getattr(expression, "nullable", True):
        return [ordered]
    return [case((expression.is_(None), 1), else_=0), ordered]


def _beyond(key: SortKey, value: Any) -> ColumnElement[bool]:
    column = key.column
    if value is None:
        # NULLs come last: nothing sorts after a NULL but its ties.
        return false()
    later = _later(key, value)
    return or_(later, column.is_(None)) if column.nullable else later


def _later(key: SortKey, value: Any) -> ColumnElement[bool]:
    """The rows whose key sorts after the value *value* (not NULL)."""
    column = key.column
    if value_type(column) is bool:
        # SQLAlchemy compares booleans only with = and !=. Of two values,
        # the other one follows false (ascending) or true (descending), and
        # nothing follows the last; = is the same on every database.
        if value != key.descending:
            return false()
        other: ColumnElement[bool] = column == (not value)
        return other
    later: ColumnElement[bool] = column < value if key.descending else column > value
    return later


def _same(column: Any, value: Any) -> ColumnElement[bool]:
    same: ColumnElement[bool] = column.is_(None) if value is None else column == value
    return same


@dataclass(frozen=True)
class KeysetPage:
    """One page: its rows and, when more follow, the cursor of the next."""

    rows: Sequence[Any]
    next_cursor: str | None


def keyset_page(
    statement: Select[Any],
    keyset: Keyset,
    *,
    session: Session,
    cursor: str | None = None,
    limit: int = DEFAULT_LIMIT,
) -> KeysetPage:
    """Return the page of *statement* (a select of ORM objects) that follows
    *cursor* (the first page without one) in the order of *keyset*.

    :param limit: rows per page (default 100, at most 1000).
    :raises InvalidInput: for a bad cursor or page size.
    """
    check_limit(limit)
    if cursor:
        statement = statement.where(keyset.after(decode_cursor(cursor, keyset)))
    statement = statement.order_by(*keyset.order_by()).limit(limit + 1)
    rows = session.scalars(statement).all()
    if len(rows) <= limit:
        return KeysetPage(rows, None)
    last = keyset.key_of(rows[limit - 1])
    return KeysetPage(rows[:limit], encode_cursor(last, keyset))


def check_limit(limit: int) -> None:
    """:raises InvalidInput: unless 1 <= *limit* <= 1000."""
    if not 1 <= limit <= MAX_LIMIT:
        raise InvalidInput(f"limit must be between 1 and {MAX_LIMIT}, got {limit}")


def encode_cursor(values: Sequence[Any], keyset: Keyset) -> str:
    """Return the cursor that points after the key *values* of *keyset*."""
    document = {"o": keyset.name, "k": [_jsonable(value) for value in values]}
    text = json.dumps(document, separators=(",", ":"))
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def _jsonable(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        return value.astimezone(dt.UTC).isoformat()
    return value


def decode_cursor(cursor: str, keyset: Keyset) -> list[Any]:
    """Return the key values the cursor points after, typed as the columns.

    :raises InvalidInput: when *cursor* was not made for *keyset*.
    """
    document = _document(cursor)
    values = document.get("k") if isinstance(document, dict) else None
    if not isinstance(values, list) or len(values) != len(keyset.columns):
        raise _bad_cursor("it does not hold a key of this order")
    if document.get("o") != keyset.name:
        raise _bad_cursor("it was made for another sort order")
    try:
        return [_key_value(c, v) for c, v in zip(keyset.columns, values, strict=True)]
    except InvalidInput as err:
        raise _bad_cursor(err.message) from None


def _key_value(column: Any, value: Any) -> Any:
    """*value* typed as *column*, which must hold it; NULL only where the
    column has NULLs (on the id, no row would ever follow).
    """
    if value is None and not column.nullable:
        name = column.info.get("ami", column.key)
        raise InvalidInput(f"{name} cannot be null")
    return typed_value(column, value)


def _document(cursor: str) -> Any:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        return json.loads(base64.urlsafe_b64decode(padded.encode("ascii")))
    except (ValueError, binascii.Error, UnicodeError):
        raise _bad_cursor("it is not one hepcat made") from None


def _bad_cursor(reason: str) -> InvalidInput:
    return InvalidInput(
        f"the cursor is not valid: {reason}; start again from the first page"
    )
