"""An AMI answer (XML) read into typed rows."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from web.client.errors import AmiProtocolError, error_from

# --- results --------------------------------------------------------------

NUMERIC_FIELDS = frozenset(
    {
        # dataset
        "datasetNumber",
        "runNumber",
        "nFiles",
        "totalEvents",
        "totalSize",
        "crossSection",
        "crossSectionMin",
        "crossSectionMax",
        "genFiltEff",
        "completion",
        "ecmEnergy",
        "nLostLumiBlocks",
        "ddmNFiles",
        "ddmTotalEvents",
        "ddmTotalSize",
        "tier0NFiles",
        "tier0TotalEvents",
        "tier0TotalSize",
        "prodsysIdentifier",
        # DDM container
        "nDatasets",
        # production task
        "taskId",
        "parentTaskId",
        "totalEventsRequested",
        # file
        "fileSize",
        "events",
        # provenance, runs, periods, AMI tags
        "distance",
        "nLumiBlocks",
        "periodLevel",
        "nRuns",
        "reprocessingErrors",
        "tagNumber",
    }
)
"""AMI field names whose values are numbers; the client returns them as
``int`` or ``float``. A test keeps this set in step with the catalogue's
numeric columns.
"""

BOOLEAN_FIELDS = frozenset(
    {"ddmOpen", "ddmConsistent", "ddmIncomplete", "lost", "stableBeams", "isBaseType"}
)
"""AMI field names whose values are ``true`` or ``false``; the client returns
them as ``bool``.
"""

#: How AMI writes a missing value.
NULL = "NULL"
_BOOLEANS = {"true": True, "false": False, "1": True, "0": False}

# The select list of MQL, up to WHERE, ORDER BY or LIMIT; one item of it,
# ``entity.field AS alias``. The list holds names only, never quoted text.
_SELECT_LIST = re.compile(
    r"\s*SELECT\s+(?P<items>.*?)(?:\s+(?:WHERE|ORDER\s+BY|LIMIT)\b.*)?",
    re.IGNORECASE | re.DOTALL,
)
_ALIASED = re.compile(
    r"\s*(?:\w+\s*\.\s*)?(?P<field>\w+)\s+AS\s+(?P<alias>\w+)\s*", re.IGNORECASE
)
_TYPED_FIELDS = {name.lower(): name for name in NUMERIC_FIELDS | BOOLEAN_FIELDS}


def alias_types(mql: str) -> dict[str, str]:
    """Map each ``AS`` alias of the select list of *mql* to the AMI field it
    stands for, the argument *types* of :func:`parse_answer` takes:
    ``SELECT dataset.nFiles AS nfiles`` gives ``{"nfiles": "nFiles"}``. The
    server matches field names in any letter case, and so does this.
    """
    select = _SELECT_LIST.fullmatch(mql)
    if select is None:
        return {}
    types = {}
    for item in select["items"].split(","):
        aliased = _ALIASED.fullmatch(item)
        if aliased is not None:
            field = aliased["field"]
            types[aliased["alias"]] = _TYPED_FIELDS.get(field.lower(), field)
    return types


def typed_value(name: str, text: str | None) -> Any:
    """Return the value of field *name* as the server wrote it in *text*:
    ``None`` when missing, a number or a ``bool`` when the field is one.
    """
    if text is None or text == "" or text == NULL:
        return None
    if name in BOOLEAN_FIELDS:
        return _BOOLEANS.get(text.lower(), text)
    if name not in NUMERIC_FIELDS:
        return text
    try:
        return int(text)
    except ValueError:
        pass
    try:
        return float(text)
    except ValueError:
        return text  # An AMI server may write "N/A"; keep what it says.


@dataclass(frozen=True)
class Rowset:
    """One ``<rowset type="...">`` of an answer: its rows, as dicts."""

    type: str
    rows: list[dict[str, Any]] = field(default_factory=list)


@dataclass(frozen=True)
class AmiResult:
    """The parsed answer to one command."""

    command: str
    arguments: dict[str, str]
    rowsets: list[Rowset]
    infos: list[str]
    xml: str

    def rows(self, rowset_type: str | None = None) -> list[dict[str, Any]]:
        """The rows of every rowset of *rowset_type* (default: of all)."""
        return [
            row
            for rowset in self.rowsets
            if rowset_type is None or rowset.type == rowset_type
            for row in rowset.rows
        ]

    def rowset_types(self) -> list[str]:
        """The types of the rowsets, each once, in the order they came."""
        return list(dict.fromkeys(rowset.type for rowset in self.rowsets))


def parse_answer(
    body: bytes, url: str, types: Mapping[str, str] | None = None
) -> AmiResult:
    """Parse the XML answer *body* of *url*.

    :param types: maps a field name (an ``AS`` alias) to the AMI field whose
        type it has; other names are their own AMI field.
    :raises AmiError: the subclass the answer's ``<error>`` names.
    :raises AmiProtocolError: when *body* is not an AMI message.
    """
    try:
        root = ET.fromstring(body)
    except ET.ParseError as err:
        raise AmiProtocolError(url, f"not XML ({err})") from None
    if root.tag != "AMIMessage":
        raise AmiProtocolError(url, f"the root element is <{root.tag}>")
    _raise_errors(root)
    arguments = {
        args.get("argName", ""): args.get("argValue", "") for args in root.iter("args")
    }
    entity = arguments.get("entity")
    rowsets = [
        Rowset(element.get("type", ""), _rows(element, entity, types or {}))
        for element in root.iter("rowset")
    ]
    return AmiResult(
        command=(root.findtext("command") or "").strip(),
        arguments=arguments,
        rowsets=rowsets,
        infos=[(info.text or "").strip() for info in root.findall("info")],
        xml=body.decode("utf-8", "replace"),
    )


def _raise_errors(root: ET.Element) -> None:
    errors = root.findall("error")
    if not errors:
        return
    message = "\n".join((error.text or "").strip() for error in errors)
    raise error_from(errors[0].get("type"), message or "the server gave no reason")


def _rows(
    rowset: ET.Element, entity: str | None, types: Mapping[str, str]
) -> list[dict[str, Any]]:
    rows = []
    for row in rowset.iter("row"):
        values: dict[str, Any] = {}
        for element in row.iter("field"):
            name = element.get("name", "")
            table = element.get("table")
            value = typed_value(types.get(name, name), element.text)
            # pyAMI names a field of another table than the command's entity
            # "table.name", so that files.LFN and dataset.LFN cannot collide.
            if entity and table and table != entity:
                name = f"{table}.{name}"
            values[name] = value
        rows.append(values)
    return rows
