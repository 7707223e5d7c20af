"""The functions of ``pyAMI_atlas.api``, with their names and arguments,
returning plain Python values.
"""

from __future__ import annotations

import difflib
import re
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from web.client.errors import InvalidInput
from web.client.transport import Client

# --- the pyAMI_atlas functions --------------------------------------------


def get_dataset_info(client: Client, dataset: str) -> list[dict[str, Any]]:
    """Every field of *dataset*, derived quantities included: a list of one
    dict keyed by AMI field names (``logicalDatasetName``, ``nFiles``, ...).
    For a DDM container (hepcat's endpoint), the dict has ``dataType``
    ``CONTAINER``, ``nDatasets``, and the sums of its datasets' ``nFiles``,
    ``totalEvents`` and ``totalSize``.

    :raises DatasetNotFound: when there is no such dataset nor container.
    """
    return client.execute("AMIGetDatasetInfo", logicalDatasetName=dataset).rows()


def list_files(
    client: Client,
    dataset: str,
    total: bool | None = None,
    limit: int | Sequence[int] | None = None,
) -> list[dict[str, Any]]:
    """The files of *dataset* (``LFN``, ``fileGUID``, ``fileSize``,
    ``events``); with *total*, one more row with the sums, as pyAMI returns it.

    :param limit: the number of files, or ``(offset, number)``.
    """
    arguments: dict[str, Any] = {
        "logicalDatasetName": dataset,
        "total": "yes" if total else "no",
        "limit": _limit(limit),
    }
    return client.execute("AMIListFiles", **arguments).rows()


def get_dataset_prov(client: Client, dataset: str) -> dict[str, list[dict[str, Any]]]:
    """The provenance of *dataset*: ``{"node": [...], "edge": [...]}``.

    A node has ``logicalDatasetName``, ``dataType`` and ``distance`` (0 for
    *dataset*, 1, 2, ... for its ancestors, -1, -2, ... for its descendants);
    an edge has ``source`` and ``destination``.
    """
    result = client.execute("AMIGetDatasetProv", logicalDatasetName=dataset)
    return {"node": result.rows("node"), "edge": result.rows("edge")}


_GUID = re.compile(r"[0-9a-fA-F]{8}(-[0-9a-fA-F]{4}){3}-[0-9a-fA-F]{12}")


def get_file(client: Client, file: str) -> list[dict[str, Any]]:
    """The file whose GUID or LFN is *file*, as a list of one dict."""
    key = "GUID" if _GUID.match(file) else "LFN"
    return client.execute("AMIGetFileInfo", **{key: file}).rows()


def get_ami_tag(client: Client, tag: str) -> list[dict[str, Any]]:
    """The AMI tag *tag* (``r10724``): ``tagType``, ``tagNumber``,
    ``transformation``, ``SWReleaseCache``, ``description`` and its parameters.
    """
    return client.execute("AMIGetAMITagInfo", amiTag=tag).rows("amiTagInfo")


def list_runs(
    client: Client, year: int | None = None, data_periods: Sequence[str] | None = None
) -> list[dict[str, Any]]:
    """The runs, of *year* (``2015`` or ``15``) and of *data_periods* when
    given (one command per period, as pyAMI sends them).
    """
    arguments = {"projectName": _year_pattern(year)}
    if not data_periods:
        return client.execute("AMIListRuns", **arguments).rows()
    return [
        row
        for period in data_periods
        for row in client.execute("AMIListRuns", **arguments, period=period).rows()
    ]


def list_dataperiods(
    client: Client, level: int, year: int | None = None
) -> list[dict[str, Any]]:
    """The data periods of *level* (1, 2 or 3), of *year* when given."""
    return client.execute(
        "AMIListDataPeriods",
        periodLevel=level,
        createdSince="2009-01-01 00:00:00",
        projectName=_year_pattern(year),
    ).rows()


def list_commands(client: Client) -> list[dict[str, Any]]:
    """The commands the endpoint answers."""
    return client.execute("AMIListCommands").rows()


def _year_pattern(year: int | None) -> str | None:
    return None if not year else f"data{year % 100:02d}%"


def _limit(limit: int | Sequence[int] | None) -> str | None:
    if not limit:
        return None
    if isinstance(limit, int):
        return f"0,{limit}"
    offset, count = limit
    return f"{int(offset)},{int(count)}"


# --- list_datasets: the SearchQuery pyAMI builds ---------------------------


@dataclass(frozen=True)
class _Table:
    """A table the client searches: its entity, and its short field names."""

    entity: str
    fields: Mapping[str, str]


_DATASETS = _Table(
    "dataset",
    {
        "ami_status": "amiStatus",
        "ami_tags": "version",
        "atlas_release": "AtlasRelease",
        "beam": "beamType",
        "completion": "completion",
        "conditions_tag": "conditionsTag",
        "cross_section": "crossSection",
        "dataset_number": "datasetNumber",
        "ecm_energy": "ecmEnergy",
        "events": "totalEvents",
        "generator_filter_efficiency": "genFiltEff",
        "generator_name": "generatorName",
        "generator_tune": "generatorTune",
        "geometry": "geometryVersion",
        "in_container": "inContainer",
        "job_config": "jobConfig",
        "ldn": "logicalDatasetName",
        "modified": "lastModified",
        "nfiles": "nFiles",
        "pdf": "PDF",
        "period": "period",
        "physics_comment": "physicsComment",
        "physics_short": "physicsShort",
        "prodsys_status": "prodsysStatus",
        "production_step": "productionStep",
        "project": "projectName",
        "requested_by": "requestedBy",
        "responsible": "physicistResponsible",
        "run_number": "runNumber",
        "stream": "streamName",
        "total_size": "totalSize",
        "transformation_package": "TransformationPackage",
        "trash_annotation": "trashAnnotation",
        "trash_date": "trashDate",
        "trash_trigger": "trashTrigger",
        "trigger_config": "triggerConfig",
        "type": "dataType",
    },
)

# The tables a dataset search may reach through "table.field" names.
_FOREIGN = {
    "files": _Table(
        "files",
        {
            "cross_section": "crossSection",
            "events": "events",
            "generator_filter_efficiency": "genFiltEff",
            "guid": "fileGUID",
            "input_file": "inputFile",
            "lfn": "LFN",
            "size": "fileSize",
        },
    ),
    "keywords": _Table("dataset_keywords", {"name": "keyword"}),
    "hashtags": _Table(
        "HASHTAGS",
        {
            "comment": "comment",
            "fullname": "fullname",
            "name": "name",
            "scope": "scope",
        },
    ),
}

DATASET_CATALOG = "mc[0-9].*|data[0-9].*"
"""The ``-catalog`` pyAMI sends with a dataset search."""


def list_datasets(
    client: Client,
    patterns: str | Sequence[str] | None = None,
    fields: str | Sequence[str] | None = None,
    order: str | Sequence[str] | None = None,
    limit: int | Sequence[int] | None = None,
    show_archived: bool = False,
    grl: str | None = None,
    **filters: Any,
) -> list[dict[str, Any]]:
    """Search datasets, as ``pyAMI_atlas.api.list_datasets`` does.

    Each row has ``ldn`` and one key per name in *fields*, under the short
    names pyAMI uses (``events``, ``nfiles``, ``cross_section``, ...; a field
    of another table is written ``files.lfn`` and read back as ``files_lfn``).

    :param patterns: dataset names, ``%`` as the wildcard (a list, or one
        string with commas); any of them matches.
    :param fields: short names of the fields to return besides ``ldn``.
    :param order: short names to sort by (default: the returned fields).
    :param limit: the number of datasets, or ``(offset, number)``.
    :param show_archived: search the archived catalogues too.
    :param grl: a Good Run List XML file; only its runs are searched.
    :param filters: ``short_name=value`` (or a list of values, any of which
        matches; ``%`` as the wildcard). ``ami_status`` is ``VALID`` unless
        given; ``data_period="A"`` matches periods ``A``, ``A1``, ...
    :raises InvalidInput: for a short name the client does not know.
    """
    arguments, aliases = dataset_search(
        patterns, fields, order, limit, show_archived, grl, **filters
    )
    return client.send("SearchQuery", arguments, types=aliases).rows()


def dataset_search(
    patterns: str | Sequence[str] | None = None,
    fields: str | Sequence[str] | None = None,
    order: str | Sequence[str] | None = None,
    limit: int | Sequence[int] | None = None,
    show_archived: bool = False,
    grl: str | None = None,
    **filters: Any,
) -> tuple[dict[str, Any], dict[str, str]]:
    """The arguments of the ``SearchQuery`` that :func:`list_datasets` sends
    (same parameters), and the AMI field each ``AS`` alias stands for.
    """
    if grl:
        filters["run_number"] = _grl_runs(grl)
    if filters.get("data_period"):
        filters["period"] = _period_patterns(filters["data_period"])
    filters.pop("data_period", None)
    filters.setdefault("ami_status", "VALID")
    names = [p.rstrip("/") for p in _words(patterns)]
    mql, aliases = search_mql(names, _words(fields), _words(order), limit, filters)
    arguments = {
        "catalog": DATASET_CATALOG,
        "entity": _DATASETS.entity,
        "mql": mql,
        "showArchived": "true" if show_archived else None,
    }
    return arguments, aliases


def search_mql(
    patterns: Sequence[str],
    fields: Sequence[str],
    order: Sequence[str],
    limit: int | Sequence[int] | None,
    filters: Mapping[str, Any],
) -> tuple[str, dict[str, str]]:
    """Return the MQL of a dataset search, and its aliases' AMI fields.

    The query has the shape pyAMI gives it: ``SELECT f AS a, ... WHERE
    (patterns) AND ((filter) AND ...) ORDER BY ... LIMIT o,n``; every value
    is an MQL string literal.
    """
    selected = list(dict.fromkeys(["ldn", *fields]))
    resolved = {name: _resolve(name) for name in selected}
    columns = ", ".join(f"{resolved[n]} AS {n.replace('.', '_')}" for n in selected)
    where = f"{_any_name(patterns)} AND {_all_of(filters)}"
    ordering = ", ".join(_resolve(name) for name in (order or selected))
    mql = f"SELECT {columns} WHERE {where} ORDER BY {ordering}{_mql_limit(limit)}"
    aliases = {n.replace(".", "_"): resolved[n].split(".", 1)[1] for n in selected}
    return mql, aliases


def _resolve(name: str) -> str:
    """``events`` → ``dataset.totalEvents``; ``files.lfn`` → ``files.LFN``."""
    table_name, _, short = name.rpartition(".")
    table = _FOREIGN.get(table_name) if table_name else _DATASETS
    if table is None:
        raise InvalidInput(
            f"unknown table {table_name!r} in field {name!r}; the tables are "
            f"{', '.join(_FOREIGN)}"
        )
    if short not in table.fields:
        near = difflib.get_close_matches(short, table.fields, n=3)
        hint = f"; did you mean {', '.join(near)}?" if near else ""
        raise InvalidInput(f"unknown field {name!r} of {table.entity}{hint}")
    return f"{table.entity}.{table.fields[short]}"


def _any_name(patterns: Sequence[str]) -> str:
    """The condition that the dataset name matches one of *patterns*; a Rucio
    DID pattern (``scope:name``, no such name has a colon) also asks for the
    scope, as the server's dataset pages and API do.
    """
    if not any(":" in pattern for pattern in patterns):
        return _any_of("ldn", patterns)
    return "(" + " OR ".join(_name_condition(p) for p in patterns) + ")"


def _name_condition(pattern: str) -> str:
    scope, colon, name = pattern.rpartition(":")
    condition = _condition(_resolve("ldn"), name)
    if not colon:
        return condition
    return f"({condition} AND {_DATASETS.entity}.scope = {mql_string(scope)})"


def _any_of(name: str, values: Sequence[str]) -> str:
    if not values:
        return "(1 = 1)"
    column = _resolve(name)
    return "(" + " OR ".join(_condition(column, value) for value in values) + ")"


def _all_of(filters: Mapping[str, Any]) -> str:
    parts = [
        _any_of(name, _words(values)) for name, values in filters.items() if values
    ]
    return "(" + " AND ".join(parts) + ")" if parts else "(1 = 1)"


def _condition(column: str, value: str) -> str:
    operator = "like" if "%" in value else "="
    return f"{column} {operator} {mql_string(value)}"


def mql_string(value: str) -> str:
    """Return *value* as an MQL string literal: single-quoted, a quote inside
    doubled (``'it''s'``) as in SQL.
    """
    return "'" + value.replace("'", "''") + "'"


def _mql_limit(limit: int | Sequence[int] | None) -> str:
    shown = _limit(limit)
    return f" LIMIT {shown}" if shown else ""


def _words(value: str | int | Iterable[Any] | None) -> list[str]:
    """pyAMI's lists: ``None`` → ``[]``, ``"a,b"`` → ``["a", "b"]``."""
    if value is None:
        return []
    if isinstance(value, str):
        return [word for word in value.split(",") if word]
    if isinstance(value, int):
        return [str(value)]
    return [str(word) for word in value]


def _period_patterns(periods: str | Sequence[str]) -> list[str]:
    """``A`` → ``A%`` (A, A1, A2, ...); ``A1`` and ``A%`` stay as they are."""
    return [
        p if p[-1].isdigit() or p.endswith("%") else p + "%" for p in _words(periods)
    ]


def _grl_runs(path: str) -> list[str]:
    """The run numbers of the Good Run List XML file *path*."""
    try:
        root = ET.parse(path).getroot()
    except (OSError, ET.ParseError) as err:
        raise InvalidInput(f"cannot read the Good Run List {path}: {err}") from None
    return [(run.text or "").strip() for run in root.iter("Run")]
