"""The functions of ``pyAMI_atlas.api``, with their names and arguments,
returning plain Python values.
"""

from __future__ import annotations

import difflib
import re
import warnings
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from web.client.errors import IncompleteAnswer, InvalidInput
from web.client.results import AmiResult
from web.client.transport import Client

# A number of rows, or (offset, number); "10" and "0,10" too.
_Limit = int | str | Sequence[int | str] | None
# A year, 2015 or 15; "15" too.
_Year = int | str | None

PAGE_ROWS = 10_000
"""The rows the list functions ask for in one command: as many as one answer
of hepcat's endpoint holds. A longer list is read a page at a time.
"""

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
    client: Client, dataset: str, total: bool | None = None, limit: _Limit = None
) -> list[dict[str, Any]]:
    """The files of *dataset* (``LFN``, ``fileGUID``, ``fileSize``,
    ``events``); with *total*, one more row with the sums, as pyAMI returns it.
    Every file, however many answers that takes: the endpoint cuts a list at
    :data:`PAGE_ROWS` rows, and the client asks for the rest with ``-limit``.

    :param limit: the number of files, or ``(offset, number)``.
    :raises InvalidInput: for a *limit* that is neither.
    """
    arguments = {"logicalDatasetName": dataset, "total": "yes" if total else "no"}

    def page(offset: int, count: int | None) -> AmiResult:
        limited = {**arguments, "limit": _shown(offset, count)}
        arguments["total"] = "no"  # the sums come once, with the first page
        return client.execute("AMIListFiles", **limited)

    files, first = _read_pages(page, limit, "files")
    return files + first.rows("total")


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
    client: Client, year: _Year = None, data_periods: Sequence[str] | None = None
) -> list[dict[str, Any]]:
    """The runs, of *year* (``2015``, ``15``, ``"15"``) and of *data_periods* when
    given (one command per period, as pyAMI sends them). ``AMIListRuns``
    cannot be read a page at a time: when the endpoint cuts a list, an
    :class:`IncompleteAnswer` warning says so.

    :raises InvalidInput: for a *year* that is no whole number.
    """
    arguments = {"projectName": _year_pattern(year)}
    periods: Sequence[str | None] = data_periods or [None]
    rows = []
    for period in periods:
        answer = client.execute("AMIListRuns", **arguments, period=period)
        rows.extend(_whole_rows(answer))
    return rows


def list_dataperiods(
    client: Client, level: int, year: _Year = None
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


def _year_pattern(year: _Year) -> str | None:
    if not year:
        return None
    number = _whole(year)
    if number is None:
        raise InvalidInput(f"year must be a whole number, 2015 or 15, got {year!r}")
    return f"data{number % 100:02d}%"


# --- arguments and pages ---------------------------------------------------

# How hepcat's endpoint says that it cut a list at the rows an answer holds.
_CUT = re.compile(r"only the first (\d+) rows\b")


def _read_pages(
    send: Callable[[int, int | None], AmiResult],
    limit: _Limit = None,
    rowset: str | None = None,
) -> tuple[list[dict[str, Any]], AmiResult]:
    """The rows of *rowset* in the window *limit* asks for (every row
    without one), and the first answer. *send(offset, count)* sends the
    command of one page (*count* None: as many rows as an answer holds).

    An answer holds at most :data:`PAGE_ROWS` rows, and says with an
    ``<info>`` when it cut the list (``only the first 10000 rows``); the next
    page starts after the rows read, until a page comes back short.

    :raises InvalidInput: for a *limit* that is no number nor pair of them.
    """
    offset, wanted = _window(limit)
    count = None if wanted is None else min(wanted, PAGE_ROWS)
    first = answer = send(offset, count)
    rows = answer.rows(rowset)
    while _more(answer, rowset, count) and wanted != len(rows):
        size = _cut_at(answer) or count or PAGE_ROWS
        count = size if wanted is None else min(size, wanted - len(rows))
        answer = send(offset + len(rows), count)
        rows.extend(answer.rows(rowset))
    return rows, first


def _more(answer: AmiResult, rowset: str | None, count: int | None) -> bool:
    """Whether the list goes on after *answer*: it says it was cut, or it
    holds every row of *count* asked.
    """
    found = len(answer.rows(rowset))
    return found > 0 and (_cut_at(answer) is not None or found == count)


def _cut_at(answer: AmiResult) -> int | None:
    """The rows at which *answer* says the endpoint cut its list, if it did."""
    cuts = (_CUT.match(info) for info in answer.infos)
    return next((int(cut[1]) for cut in cuts if cut), None)


def _whole_rows(answer: AmiResult) -> list[dict[str, Any]]:
    """The rows of *answer*, with an :class:`IncompleteAnswer` warning when
    the endpoint says it cut the list (and the command has no ``-limit`` to
    read the rest with).
    """
    for info in answer.infos:
        if _CUT.match(info):
            warnings.warn(IncompleteAnswer(answer.command, info), stacklevel=3)
    return answer.rows()


def _window(limit: _Limit) -> tuple[int, int | None]:
    """*limit* as ``(offset, count)``, count None for every row: a number
    of rows (``10``, ``"10"``), a pair (``(20, 10)``, ``"20,10"``), or
    nothing (``None``, ``0``), as pyAMI takes it.

    :raises InvalidInput: for anything else, before anything is sent.
    """
    if not limit:
        return 0, None
    parts: Sequence[Any] = ()
    if isinstance(limit, str):
        parts = limit.split(",")
    elif isinstance(limit, int):
        parts = [limit]
    elif isinstance(limit, Sequence) and len(limit) == 2:
        parts = limit
    numbers = [number for number in map(_whole, parts) if number is not None]
    if len(numbers) != len(parts) or len(parts) not in (1, 2):
        raise InvalidInput(
            f"limit must be a number of rows or (offset, number), got {limit!r}"
        )
    return (0, numbers[0] or None) if len(numbers) == 1 else (numbers[0], numbers[1])


def _whole(value: Any) -> int | None:
    """*value* as a whole number (an ``int``, or its digits in a string);
    None when it is none.
    """
    text = value.strip() if isinstance(value, str) else None
    if text is not None and text.isascii() and text.isdigit():
        return int(text)
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    return None


def _shown(offset: int, count: int | None) -> str | None:
    """The ``-limit`` (or MQL ``LIMIT``) of a page: ``offset,count``."""
    return None if count is None else f"{offset},{count}"


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
    limit: _Limit = None,
    show_archived: bool = False,
    grl: str | None = None,
    **filters: Any,
) -> list[dict[str, Any]]:
    """Search datasets, as ``pyAMI_atlas.api.list_datasets`` does.

    Each row has ``ldn`` and one key per name in *fields*, under the short
    names pyAMI uses (``events``, ``nfiles``, ``cross_section``, ...; a field
    of another table is written ``files.lfn`` and read back as ``files_lfn``).
    Every dataset that matches, however many answers that takes: the
    endpoint cuts a list at :data:`PAGE_ROWS` rows, and the client asks for
    the rest with the MQL's ``LIMIT offset,count``.

    :param patterns: dataset names, ``%`` as the wildcard (a list, or one
        string with commas); any of them matches.
    :param fields: short names of the fields to return besides ``ldn``.
    :param order: short names to sort by (default: the returned fields).
    :param limit: the number of datasets, or ``(offset, number)``.
    :param show_archived: search the archived catalogues too.
    :param grl: a Good Run List XML file; only its runs are searched (none,
        when it lists none).
    :param filters: ``short_name=value`` (or a list of values, any of which
        matches, an empty list none; ``%`` as the wildcard). ``ami_status``
        is ``VALID`` unless given; ``data_period="A"`` matches periods ``A``,
        ``A1``, ...
    :raises InvalidInput: for a short name the client does not know, or a
        *limit* that is no number nor pair of them.
    """
    _window(limit)  # refused before anything is read, the GRL included
    arguments, aliases = dataset_search(
        patterns, fields, order, None, show_archived, grl, **filters
    )

    def page(offset: int, count: int | None) -> AmiResult:
        mql = arguments["mql"] + _mql_limit(offset, count)
        return client.send("SearchQuery", {**arguments, "mql": mql}, types=aliases)

    return _read_pages(page, limit)[0]


def dataset_search(
    patterns: str | Sequence[str] | None = None,
    fields: str | Sequence[str] | None = None,
    order: str | Sequence[str] | None = None,
    limit: _Limit = None,
    show_archived: bool = False,
    grl: str | None = None,
    **filters: Any,
) -> tuple[dict[str, Any], dict[str, str]]:
    """The arguments of the (first) ``SearchQuery`` that :func:`list_datasets`
    sends (same parameters), and the AMI field each ``AS`` alias stands for.
    """
    if grl:
        filters["run_number"] = _grl_runs(grl)
    periods = filters.pop("data_period", None)
    if _given(periods):
        filters["period"] = _period_patterns(periods)
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
    limit: _Limit,
    filters: Mapping[str, Any],
) -> tuple[str, dict[str, str]]:
    """Return the MQL of a dataset search, and its aliases' AMI fields.

    The query has the shape pyAMI gives it: ``SELECT f AS a, ... WHERE
    (patterns) AND ((filter) AND ...) ORDER BY ... LIMIT o,n``; every value
    is an MQL string literal. A filter of no value (an empty list) is a
    condition no dataset meets; ``None`` or ``""`` is no filter.
    """
    selected = list(dict.fromkeys(["ldn", *fields]))
    resolved = {name: _resolve(name) for name in selected}
    columns = ", ".join(f"{resolved[n]} AS {n.replace('.', '_')}" for n in selected)
    where = f"{_any_name(patterns)} AND {_all_of(filters)}"
    ordering = ", ".join(_resolve(name) for name in (order or selected))
    offset, count = _window(limit)
    count = None if count is None else min(count, PAGE_ROWS)
    limited = _mql_limit(offset, count)
    mql = f"SELECT {columns} WHERE {where} ORDER BY {ordering}{limited}"
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


# The condition every dataset meets, and the one none does.
_ALL, _NONE = "(1 = 1)", "(1 = 0)"


def _any_of(name: str, values: Sequence[str], empty: str = _ALL) -> str:
    """The condition that field *name* matches one of *values*; *empty*
    when there is none.
    """
    column = _resolve(name)
    if not values:
        return empty
    return "(" + " OR ".join(_condition(column, value) for value in values) + ")"


def _all_of(filters: Mapping[str, Any]) -> str:
    parts = [
        _any_of(name, _words(values), _NONE)
        for name, values in filters.items()
        if _given(values)
    ]
    return "(" + " AND ".join(parts) + ")" if parts else _ALL


def _given(value: Any) -> bool:
    """Whether a filter is given: ``None`` and ``""`` are none; an empty
    list is one, that no value meets.
    """
    return value is not None and value != ""


def _condition(column: str, value: str) -> str:
    operator = "like" if "%" in value else "="
    return f"{column} {operator} {mql_string(value)}"


def mql_string(value: str) -> str:
    """Return *value* as an MQL string literal: single-quoted, a quote inside
    doubled (``'it''s'``) as in SQL.
    """
    return "'" + value.replace("'", "''") + "'"


def _mql_limit(offset: int, count: int | None) -> str:
    shown = _shown(offset, count)
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
    """The run numbers of the Good Run List XML file *path*: none when it
    lists none (an empty ``<Run/>`` is none either).
    """
    try:
        root = ET.parse(path).getroot()
    except (OSError, ET.ParseError) as err:
        raise InvalidInput(f"cannot read the Good Run List {path}: {err}") from None
    return [text for run in root.iter("Run") if (text := (run.text or "").strip())]
