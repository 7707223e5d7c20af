"""AMI field names of the catalogue's entities.

Every column that AMI shows declares its AMI name once, in the model
(``mapped_column(..., info={"ami": "totalEvents"})``). This module reads those
declarations, so that search pages, the JSON API, the AMI endpoint and the MQL
compiler agree on one name for each field.
"""

from __future__ import annotations

import datetime as dt
import difflib
import math
import re
from typing import Any

from sqlalchemy import BigInteger, ColumnElement, TypeDecorator

from catalog.errors import InvalidInput

_FIELDS: dict[str, dict[str, ColumnElement[Any]]] = {}


def ami_fields(model: type[Any]) -> dict[str, ColumnElement[Any]]:
    """Map the AMI field names of *model* to its columns, in column order."""
    table = model.__table__
    if table.name not in _FIELDS:
        _FIELDS[table.name] = _declared_fields(table)
    return _FIELDS[table.name]


def _declared_fields(table: Any) -> dict[str, ColumnElement[Any]]:
    return {
        column.info["ami"]: column for column in table.columns if "ami" in column.info
    }


def field_column(model: type[Any], name: str) -> ColumnElement[Any]:
    """Return the column of *model* whose AMI name is *name* (case-insensitive).

    :raises InvalidInput: when there is none; the message suggests near names.
    """
    fields = ami_fields(model)
    lowered = {key.lower(): column for key, column in fields.items()}
    column = lowered.get(name.lower())
    if column is None:
        near = difflib.get_close_matches(name, fields, n=3)
        hint = f"; did you mean {', '.join(near)}?" if near else ""
        entity = model.__tablename__
        raise InvalidInput(f"unknown field {name!r} of {entity}{hint}")
    return column


def row_to_ami(obj: Any, model: type[Any] | None = None) -> dict[str, Any]:
    """Return every AMI field of the model instance *obj*, by AMI name."""
    fields = ami_fields(model if model is not None else type(obj))
    return {name: getattr(obj, str(column.key)) for name, column in fields.items()}


#: The largest whole number the databases hold (BIGINT).
INT64_MAX = 2**63 - 1
#: A whole number as a user types it: ASCII digits (Python's int() also takes
#: other scripts' digits and underscores), at most a hundred of them, so that
#: a number too long is refused here and not by an error of int()'s own.
_WHOLE = {
    True: re.compile(r"[+-]?[0-9]{1,100}"),
    False: re.compile(r"\+?[0-9]{1,100}"),
}


def parse_whole(text: str, *, signed: bool = False) -> int | None:
    """*text*, spaces around it allowed, as a whole number (with *signed*,
    perhaps negative); None when it is not one.
    """
    text = text.strip()
    return int(text) if _WHOLE[signed].fullmatch(text) else None


def whole_number(
    text: str,
    what: str,
    *,
    kind: str = "a whole number",
    signed: bool = False,
    maximum: int | None = INT64_MAX,
) -> int:
    """*text* as a whole number, the value of *what* (a request's argument or
    field): the one way every surface reads the numbers users type.

    :param kind: what *what* must be, as the error says it.
    :param maximum: the largest value (in magnitude) taken, or None when the
        caller checks the range itself.
    :raises InvalidInput: naming *what*, for anything but a whole number in
        range.
    """
    number = parse_whole(text, signed=signed)
    if number is None:
        raise InvalidInput(f"{what} must be {kind}, got {text[:20]!r}")
    if maximum is not None and abs(number) > maximum:
        raise InvalidInput(f"{what} is too large: at most {maximum:,}")
    return number


# The integers a column holds: BIGINT is 64 bits, INTEGER 32 on every database.
_INT_BITS = {True: 63, False: 31}
_TRUE = ("1", "true", "yes")
_FALSE = ("0", "false", "no")


def typed_value(column: Any, value: Any, *, name: str | None = None) -> Any:
    """Return *value* (text a user typed, or a JSON value) as the Python type
    of *column*, checked to fit it: integers within the column's range,
    finite numbers, ``true``/``false``, ISO 8601 times (UTC when no zone is
    given), text without NUL characters. ``None`` stays ``None``.

    :param column: a column, or any expression: only its ``type`` is read
        when *name* is given.
    :param name: what the error calls the value (an argument's ``-name``, a
        query's field); without it, the column's AMI name.
    :raises InvalidInput: naming the field, when the value does not fit.
    """
    if value is None:
        return None
    python_type = value_type(column)
    try:
        converted = _CONVERTERS.get(python_type, _text)(value)
    except OverflowError:  # a time before year 1 or after 9999 in UTC
        raise InvalidInput(
            f"{_named(column, name)} is out of range (years 1 to 9999 in UTC): "
            f"{value!r}"
        ) from None
    if converted is None:
        kind = _KINDS.get(python_type, "text")
        raise InvalidInput(f"{_named(column, name)} must be {kind}, got {value!r}")
    if isinstance(converted, int) and not _fits(converted, column):
        raise InvalidInput(f"{_named(column, name)} is out of range: {value!r}")
    return converted


def _named(column: Any, name: str | None) -> str:
    """*name*, or without it the AMI name of *column*."""
    return name if name is not None else column.info.get("ami", column.key)


def value_type(column: Any) -> type:
    """The Python type of the values of *column* (for a decorated type such
    as :class:`catalog.db.UTCDateTime`, that of the type it decorates).
    """
    kind = column.type
    if isinstance(kind, TypeDecorator):
        kind = kind.impl_instance
    try:
        python_type: type = kind.python_type
    except NotImplementedError:
        return str
    return python_type


def _fits(number: int, column: Any) -> bool:
    bits = _INT_BITS[isinstance(column.type, BigInteger)]
    return abs(number) < 1 << bits


def _integer(value: Any) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int | str):
        return None
    return value if isinstance(value, int) else parse_whole(value, signed=True)


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return None
    try:
        number = float(value)
    except (ValueError, OverflowError):  # OverflowError: an int past 1e308
        return None
    return number if math.isfinite(number) else None


def _boolean(value: Any) -> bool | None:
    if isinstance(value, bool):
        return value
    lowered = str(value).strip().lower()
    return True if lowered in _TRUE else False if lowered in _FALSE else None


def _moment(value: Any) -> dt.datetime | None:
    if not isinstance(value, str):
        return None
    try:
        moment = dt.datetime.fromisoformat(value.strip())
    except ValueError:
        return None
    if moment.tzinfo is None:
        return moment.replace(tzinfo=dt.UTC)
    return moment.astimezone(dt.UTC)  # OverflowError before year 1, after 9999


def _text(value: Any) -> str | None:
    # PostgreSQL refuses NUL characters in text, and no database driver
    # encodes a lone surrogate (JSON's "\ud800") to UTF-8.
    if not isinstance(value, str) or "\x00" in value:
        return None
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return None
    return value


_CONVERTERS = {
    int: _integer,
    float: _number,
    bool: _boolean,
    dt.datetime: _moment,
    str: _text,
}
_KINDS = {
    int: "an integer",
    float: "a number",
    bool: "true or false",
    dt.datetime: "a time in ISO 8601 (2015-07-03T10:15:00Z)",
    str: "text without NUL characters",
}
