"""The answer to an AMI command and its renderings.

A :class:`Reply` holds what a command found (rowsets of rows of named
fields), or the error it met. It is rendered as AMI's XML (``Converter``
empty), or as what AMI's converters make of that XML: JSON
(``AMIXmlToJson.xsl``), text (``AMIXmlToText.xsl``) and CSV
(``AMIXmlToCsv.xsl``), as ``../shared/AMI_PROTOCOL.md`` describes.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any
from xml.sax.saxutils import escape, quoteattr

from catalog.errors import InvalidInput


@dataclass(frozen=True)
class Field:
    """A named value of a row; *table* is the entity it comes from, when it
    is not the command's.
    """

    name: str
    value: Any
    table: str | None = None


Row = Sequence[Field]


@dataclass(frozen=True)
class Rowset:
    """Rows of one type (``dataset``, ``files``, ``node``, ...)."""

    type: str
    rows: Sequence[Row]


def rowset(type_: str, rows: Iterable[dict[str, Any]]) -> Rowset:
    """A rowset of *rows* given as dicts of field name to value."""
    return Rowset(type_, [[Field(k, v) for k, v in row.items()] for row in rows])


@dataclass(frozen=True)
class Reply:
    """What an AMI command answers: its rowsets and notes, or its error
    (the class name and the message of a :class:`catalog.errors.HepcatError`).
    """

    command: str
    arguments: Sequence[tuple[str, str]] = ()
    rowsets: Sequence[Rowset] = ()
    infos: Sequence[str] = ()
    error: tuple[str, str] | None = None
    seconds: float = 0.0


def text_of(value: Any) -> str | None:
    """A field value as AMI shows it; ``None`` stays ``None`` (no text)."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dt.datetime):
        if value.tzinfo is not None:
            value = value.astimezone(dt.UTC)
        moment: str = value.strftime("%Y-%m-%d %H:%M:%S")
        return moment
    if isinstance(value, float):
        # Fifteen significant digits, all a double holds for sure: a mean
        # such as 1.90098670625 is not shown as 1.9009867062499999.
        return f"{value:.15g}"
    return str(value)


# ---------------------------------------------------------------------------
# The XML tree


@dataclass
class Node:
    """An element of the AMI message: tag, attributes, text, children."""

    tag: str
    attributes: dict[str, str] = field(default_factory=dict)
    text: str | None = None
    children: list[Node] = field(default_factory=list)
    cdata: bool = False


def message_tree(reply: Reply) -> Node:
    """The ``AMIMessage`` element of *reply*."""
    root = Node("AMIMessage")
    root.children.append(Node("command", text=reply.command))
    args = [Node("args", {"argName": k, "argValue": v}) for k, v in reply.arguments]
    root.children.append(Node("commandArgs", children=args))
    if reply.error is not None:
        kind, message = reply.error
        root.children.append(Node("error", {"type": kind}, message, cdata=True))
    root.children.extend(Node("info", text=info) for info in reply.infos)
    if reply.error is None:
        rowsets = [_rowset_node(each) for each in reply.rowsets]
        root.children.append(Node("Result", children=rowsets))
    root.children.append(Node("executionTime", text=f"{reply.seconds:.3f}"))
    return root


def _rowset_node(each: Rowset) -> Node:
    rows = [Node("row", children=[_field_node(f) for f in row]) for row in each.rows]
    return Node("rowset", {"type": each.type}, children=rows)


def _field_node(item: Field) -> Node:
    attributes = {"name": item.name}
    if item.table:
        attributes["table"] = item.table
    return Node("field", attributes, text_of(item.value))


# Characters XML 1.0 cannot carry, even escaped.
_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def _xml_text(text: str) -> str:
    return _NOT_XML.sub("\ufffd", text)


def render_xml(reply: Reply) -> str:
    """*reply* as AMI's XML."""
    lines = ['<?xml version="1.0" encoding="UTF-8"?>']
    _write_xml(message_tree(reply), 0, lines)
    return "\n".join(lines) + "\n"


def _write_xml(node: Node, depth: int, lines: list[str]) -> None:
    indent = "  " * depth
    attributes = "".join(
        f" {name}={quoteattr(_xml_text(value))}"
        for name, value in node.attributes.items()
    )
    opening = f"{indent}<{node.tag}{attributes}"
    if node.children:
        lines.append(opening + ">")
        for child in node.children:
            _write_xml(child, depth + 1, lines)
        lines.append(f"{indent}</{node.tag}>")
    elif node.text is None or node.text == "":
        lines.append(opening + "/>")
    elif node.cdata and "]]>" not in node.text:
        lines.append(f"{opening}><![CDATA[{_xml_text(node.text)}]]></{node.tag}>")
    else:
        # Text that holds "]]>" is escaped rather than split across two CDATA
        # sections: pyAMI reads the first text node of an element only.
        lines.append(f"{opening}>{escape(_xml_text(node.text))}</{node.tag}>")


# ---------------------------------------------------------------------------
# The converters


def render_json(reply: Reply) -> str:
    """*reply* as ``AMIXmlToJson.xsl`` makes it: every element a list,
    attributes under ``@name``, text under ``$``.
    """
    root = message_tree(reply)
    return json.dumps({root.tag: [_json_node(root)]}, ensure_ascii=False)


def _json_node(node: Node) -> dict[str, Any]:
    found: dict[str, Any] = {f"@{k}": v for k, v in node.attributes.items()}
    if node.text is not None and node.text != "":
        found["$"] = node.text
    for child in node.children:
        found.setdefault(child.tag, []).append(_json_node(child))
    return found


def render_text(reply: Reply) -> str:
    """*reply* as ``AMIXmlToText.xsl`` makes it: one line per field."""
    lines = ["#AMI Result", ""]
    if reply.error is not None:
        lines.append(f"Error: {reply.error[1]}")
    lines.extend(f"Info: {info}" for info in reply.infos)
    for each in reply.rowsets if reply.error is None else ():
        lines.append(f"Rowset: {each.type}")
        for row in each.rows:
            lines.append("  -> row")
            lines.extend(
                f"    -> {_label(f, each.type)} = {_quoted(f.value)}" for f in row
            )
    lines.append("#")
    return "\n".join(lines) + "\n"


def _label(item: Field, entity: str) -> str:
    """The name of a field as pyAMI reads it: ``table.name`` for a field of
    another entity than the rowset's.
    """
    foreign = item.table and item.table != entity
    return f"{item.table}.{item.name}" if foreign else item.name


def _quoted(value: Any) -> str:
    text = text_of(value)
    if text is None:
        return "NULL"
    # The backslash first: "a\\nb" and "a<newline>b" must not print alike.
    escaped = text.replace("\\", "\\\\").replace('"', '\\"')
    return '"' + escaped.replace("\n", "\\n").replace("\t", "\\t") + '"'


def render_csv(reply: Reply) -> str:
    """*reply* as CSV: for each rowset a ``#ROWSET type`` line, a header of
    field names and the rows (RFC 4180 quoting, empty for NULL); an error
    is a ``#ERROR`` line.
    """
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    if reply.error is not None:
        out.write(f"#ERROR {reply.error[0]}: {_one_line(reply.error[1])}\n")
    for info in reply.infos:
        out.write(f"#INFO {_one_line(info)}\n")
    for each in reply.rowsets if reply.error is None else ():
        out.write(f"#ROWSET {each.type}\n")
        if each.rows:
            writer.writerow([_label(f, each.type) for f in each.rows[0]])
        for row in each.rows:
            writer.writerow([text_of(f.value) or "" for f in row])
    return out.getvalue()


def _one_line(text: str) -> str:
    return text.replace("\r", " ").replace("\n", " ")


@dataclass(frozen=True)
class Converter:
    """A rendering of replies, and its media type."""

    render: Callable[[Reply], str]
    mimetype: str


CONVERTERS = {
    "": Converter(render_xml, "text/xml"),
    "AMIXmlToJson.xsl": Converter(render_json, "application/json"),
    "AMIXmlToText.xsl": Converter(render_text, "text/plain"),
    "AMIXmlToCsv.xsl": Converter(render_csv, "text/csv"),
}


def get_converter(name: str) -> Converter:
    """The converter called *name* (a trailing path is ignored, as AMI does).

    :raises InvalidInput: for a converter hepcat does not have.
    """
    found = CONVERTERS.get(name.strip().rsplit("/", 1)[-1])
    if found is None:
        known = ", ".join(repr(key) for key in CONVERTERS)
        raise InvalidInput(f"unknown Converter {name!r}; hepcat has {known}")
    return found
