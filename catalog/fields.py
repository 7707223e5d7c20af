"""AMI field names of the catalogue's entities.

Every column that AMI shows declares its AMI name once, in the model
(``mapped_column(..., info={"ami": "totalEvents"})``). This module reads those
declarations, so that search pages, the JSON API, the AMI endpoint and the MQL
compiler agree on one name for each field.
"""

from __future__ import annotations

import difflib
from typing import Any

from sqlalchemy import ColumnElement

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
