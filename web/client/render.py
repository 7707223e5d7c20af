"""Output of a result for the command line: text, JSON, CSV or XML."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Mapping, Sequence
from typing import Any

from web.client.errors import InvalidInput
from web.client.results import NULL, AmiResult

# --- output for the command line ------------------------------------------

FORMATS = ("text", "json", "csv", "xml")
"""The formats :func:`render` writes (``hepcat ami --format``)."""


def render(result: AmiResult, form: str = "text") -> str:
    """Return *result* as text to print in the format *form*.

    ``text``: each rowset as a table with a header line (a rowset of one row
    as ``field  value`` lines); ``json``: an object mapping each rowset type
    to its rows; ``csv``: a header and the rows (``# type`` before each
    rowset when there are several); ``xml``: the answer as the server sent
    it. A missing value is ``NULL`` in text (as pyAMI prints it), empty in
    CSV, ``null`` in JSON; a rowset without rows is left out of text and CSV.
    The server's ``<info>`` messages (``result.infos``) are not rows:
    ``hepcat ami`` prints them on stderr, in every format.
    """
    if form == "xml":
        return result.xml if result.xml.endswith("\n") else result.xml + "\n"
    if form == "json":
        rowsets = {kind: result.rows(kind) for kind in result.rowset_types()}
        return json.dumps(rowsets, indent=2) + "\n"
    if form == "csv":
        return _csv(result)
    if form == "text":
        return _text(result)
    raise InvalidInput(f"unknown format {form!r}; use one of {', '.join(FORMATS)}")


def _columns(rows: Sequence[Mapping[str, Any]]) -> list[str]:
    return list(dict.fromkeys(name for row in rows for name in row))


def _shown(value: Any, null: str = NULL) -> str:
    """*value* as the server wrote it (``true``, not ``True``)."""
    if value is None:
        return null
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _filled(result: AmiResult) -> list[str]:
    """The types of the rowsets that have rows."""
    return [kind for kind in result.rowset_types() if result.rows(kind)]


def _csv(result: AmiResult) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    kinds = _filled(result)
    for kind in kinds:
        rows = result.rows(kind)
        columns = _columns(rows)
        if len(kinds) > 1:
            out.write(f"# {kind}\n")
        writer.writerow(columns)
        writer.writerows([[_shown(row.get(c), "") for c in columns] for row in rows])
    return out.getvalue()


def _text(result: AmiResult) -> str:
    blocks = []
    kinds = _filled(result)
    for kind in kinds:
        rows = result.rows(kind)
        title = [f"{kind}:"] if len(kinds) > 1 else []
        table = _fields(rows[0]) if len(rows) == 1 else _table(rows)
        blocks.append("\n".join(title + table))
    return "".join(block + "\n" for block in blocks if block)


def _fields(row: Mapping[str, Any]) -> list[str]:
    width = max((len(name) for name in row), default=0)
    return [f"{name:<{width}}  {_shown(value)}" for name, value in row.items()]


def _table(rows: Sequence[Mapping[str, Any]]) -> list[str]:
    columns = _columns(rows)
    cells = [[_shown(row.get(c)) for c in columns] for row in rows]
    widths = [max(len(c), *(len(r[i]) for r in cells)) for i, c in enumerate(columns)]
    lines = [columns, ["-" * w for w in widths], *cells]
    return [_line(line, widths) for line in lines]


def _line(cells: Sequence[str], widths: Sequence[int]) -> str:
    padded = (f"{cell:<{width}}" for cell, width in zip(cells, widths, strict=True))
    return "  ".join(padded).rstrip()
