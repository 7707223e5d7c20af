"""Keyset pagination: a long result read a page at a time, each page
starting after the last row of the page before.

Offset paging makes the database count past every skipped row and shifts
when rows arrive between two pages; a keyset page asks for the rows *after*
the previous page's last sort key, which an index answers directly. For that
the order must be total and the same on every database, so:

- the row's id is the last key, breaking ties in the direction of the key
  before it (a descending sort lists the newest of its ties first: an
  index read backwards gives them so), unless a key is unique and never
  NULL (a name): the order is total there already, and an index on that
  key alone serves it (MariaDB filesorts ``name, id`` though its index
  holds the id);
- NULLs sort last in either direction, on every database
  (:func:`nulls_last`).

Each page must be a range of an index, never a scan from the start that
filters: the condition of the rows after a cursor is bounded by its
leading key (``key >= x AND (key > x OR (key = x AND id > y))``), which
PostgreSQL and MariaDB use as the index range. A nullable leading key's
NULLs, which follow every value, are read as a band of their own (a
second query when a page reaches them, :meth:`Keyset.bands`): ``key >= x
OR key IS NULL`` is no range of an index. So is each value of a yes/no
key, read by id (``key = false AND id > y``: a range of the primary key).

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

from sqlalchemy import (
    Column,
    ColumnElement,
    Select,
    UniqueConstraint,
    and_,
    false,
    or_,
    true,
)
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import Session
from sqlalchemy.sql.visitors import InternalTraversal

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
    """The total order of a paged query: *keys*, then *id* (see
    :attr:`ordering`). The
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
        """The columns of a cursor's key: every key, then the id (also where
        :attr:`ordering` leaves them out, so that a cursor keeps its form).
        """
        return [key.column for key in self.keys] + [self.id]

    @property
    def ordering(self) -> list[SortKey]:
        """The keys that decide the order: up to the first one unique and
        never NULL, else all of them and the id, in the direction of the
        last key: an index of that key read backwards (a descending sort)
        gives its ties by id descending, and MariaDB sorts the whole table
        for ``x DESC, id ASC``.
        """
        for number, key in enumerate(self.keys):
            if unique_key(key.column):
                return list(self.keys[: number + 1])
        descending = bool(self.keys) and self.keys[-1].descending
        return [*self.keys, SortKey(self.id, descending)]

    def order_by(self) -> list[Any]:
        """The ORDER BY clauses, NULLs last."""
        return [nulls_last(k.column, descending=k.descending) for k in self.ordering]

    def bands(self, values: Sequence[Any] | None) -> list[tuple[Any, list[Any]]]:
        """The (condition, ORDER BY) of each part of the order read in turn
        for the page after the key *values* (None: the first page), each an
        index range: the leading key's values (a yes/no key's one value,
        then the other), then its NULLs; from the cursor's part on.
        """
        lead = self.ordering[0]
        column, rest = lead.column, self.order_by()[1:]
        # (condition, value of the leading key or ... for any, ORDER BY)
        groups: list[tuple[Any, Any, list[Any]]]
        if value_type(column) is bool:
            firsts = [True, False] if lead.descending else [False, True]
            groups = [(column == value, value, rest) for value in firsts]
        else:
            valued = column.is_not(None) if column.nullable else true()
            ordered = column.desc() if lead.descending else column.asc()
            groups = [(valued, ..., [ordered, *rest])]
        if column.nullable:
            groups.append((column.is_(None), None, rest))
        if values is None:
            return [(condition, order) for condition, _, order in groups]
        at = dict(zip(self.columns, values, strict=True))[column]
        start = next(
            n
            for n, (_, v, _) in enumerate(groups)
            if v is at or (v is ... and at is not None)
        )
        _, _, order = groups[start]
        later = [(condition, order) for condition, _, order in groups[start + 1 :]]
        return [(self.after(values), order), *later]

    def after(self, values: Sequence[Any]) -> ColumnElement[bool]:
        """The condition selecting the rows of the part of the key *values*
        (one per key, then the id: :meth:`bands`) that sort after them: of
        its leading key's value, or its NULLs, or (another key) bounded by
        that value so that an index range holds them.
        """
        by_column = dict(zip(self.columns, values, strict=True))
        lead, *rest = self.ordering
        value = by_column[lead.column]
        if not rest:  # a unique key: never NULL
            return _later(lead, value)
        same = _same(lead.column, value)
        if value is None or value_type(lead.column) is bool:
            return and_(same, or_(*_following(rest, by_column, [])))
        bound = lead.column <= value if lead.descending else lead.column >= value
        terms = _following(rest, by_column, [same])
        return and_(bound, or_(_later(lead, value), *terms))

    def key_of(self, row: Any) -> tuple[Any, ...]:
        """The key values of the ORM object *row*."""
        return tuple(getattr(row, column.key) for column in self.columns)


def unique_key(column: Any) -> bool:
    """Whether no two rows share a value of *column* (a table column, or any
    other expression: no) nor lack one: sorted by it, the order is total.
    """
    if not isinstance(column, Column) or column.nullable:
        return False
    if column.primary_key and len(column.table.primary_key.columns) == 1:
        return True
    table = column.table
    keys = [c.columns for c in table.constraints if isinstance(c, UniqueConstraint)]
    keys += [index.columns for index in table.indexes if index.unique]
    return any(len(key) == 1 and key.contains_column(column) for key in keys)


def _following(
    keys: Sequence[SortKey], by_column: dict[Any, Any], equal: list[Any]
) -> list[ColumnElement[bool]]:
    """The terms of the rows after the values *by_column* of *keys*, among
    the rows that hold the conditions *equal*.
    """
    terms, equal = [], list(equal)
    for key in keys:
        value = by_column[key.column]
        terms.append(and_(*equal, _beyond(key, value)))
        equal.append(_same(key.column, value))
    return terms


class _NullsLast(ColumnElement[Any]):
    """An ORDER BY clause of an expression, NULLs last (:func:`nulls_last`)."""

    inherit_cache = True
    _traverse_internals = [
        ("clause", InternalTraversal.dp_clauseelement),
        ("descending", InternalTraversal.dp_boolean),
    ]

    def __init__(self, expression: Any, descending: bool) -> None:
        self.clause = expression
        self.descending = descending

    def ordered(self) -> Any:
        return self.clause.desc() if self.descending else self.clause.asc()


@compiles(_NullsLast)
def _standard_nulls_last(element: _NullsLast, compiler: Any, **kw: Any) -> str:
    # PostgreSQL and SQLite (3.30 and later); on PostgreSQL a plain index
    # (NULLs last) serves the ascending order; descending, it would give
    # NULLs first.
    return str(compiler.process(element.ordered().nulls_last(), **kw))


@compiles(_NullsLast, "mysql")
@compiles(_NullsLast, "mariadb")
def _mariadb_nulls_last(element: _NullsLast, compiler: Any, **kw: Any) -> str:
    # MariaDB has no NULLS LAST and sorts NULLs first: an IS NULL key leads,
    # which no index serves (a page splits off the NULLs: Keyset.bands).
    nulls = compiler.process(element.clause.is_(None), **kw)
    return f"{nulls}, {compiler.process(element.ordered(), **kw)}"


def nulls_last(expression: Any, *, descending: bool = False) -> Any:
    """The ORDER BY clause of *expression* (a column, or a computed field's
    subquery), NULLs last in either direction on every database: ``NULLS
    LAST`` where the database has it, else an ``IS NULL`` key first;
    nothing of that for a column without NULLs.
    """
    if not getattr(expression, "nullable", True):
        return expression.desc() if descending else expression.asc()
    return _NullsLast(expression, descending)


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
    values = decode_cursor(cursor, keyset) if cursor else None
    rows: list[Any] = []
    for condition, order in keyset.bands(values):
        if len(rows) > limit:
            break
        band = statement.where(condition).order_by(*order)
        rows.extend(session.scalars(band.limit(limit + 1 - len(rows))).all())
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
