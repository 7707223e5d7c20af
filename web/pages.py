"""The web pages: home, dataset search and the dataset page.

A view parses its query arguments, calls :mod:`catalog` inside
:func:`web.app.catalog_session`, and renders a template. Bad input raises
:class:`catalog.errors.InvalidInput`, which the application renders as a 400
page; nothing here builds SQL.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from flask import Blueprint, render_template, request, url_for
from markupsafe import Markup, escape

from catalog.datasets import (
    DatasetQuery,
    catalog_totals,
    get_dataset,
    get_provenance,
    list_files,
    search_datasets,
)
from catalog.derived import (
    ALL_EVENTS,
    NO_EVENTS,
    SOME_EVENTS,
    TASK_FAILED,
    TASK_OBSOLETE,
)
from catalog.errors import InvalidInput
from catalog.fields import ami_fields, row_to_ami
from catalog.models import AMI_TRASHED, AMI_VALID, Dataset
from web.app import catalog_session

pages = Blueprint("pages", __name__)

RECENT_DATASETS = 20
FILES_PER_PAGE = 50
DEFAULT_LIMIT = 50

# The query arguments of the search page that filter on an AMI field.
SEARCH_FILTERS = (
    "dataType",
    "projectName",
    "amiStatus",
    "prodsysStatus",
    "streamName",
    "period",
    "runNumber",
    "datasetNumber",
)
# Values offered as suggestions (a <datalist>) for some filters.
SUGGESTIONS = {
    "amiStatus": (AMI_VALID, AMI_TRASHED),
    "prodsysStatus": (ALL_EVENTS, SOME_EVENTS, NO_EVENTS, TASK_FAILED, TASK_OBSOLETE),
}

HOME_COLUMNS = (
    "logicalDatasetName",
    "dataType",
    "nFiles",
    "totalEvents",
    "prodsysStatus",
    "amiStatus",
)
SEARCH_COLUMNS = (
    "logicalDatasetName",
    "dataType",
    "nFiles",
    "totalEvents",
    "totalSize",
    "crossSection",
    "prodsysStatus",
    "amiStatus",
)

# How values are shown, by AMI field name; others by their Python type.
SIZE_FIELDS = frozenset({"totalSize", "ddmTotalSize", "fileSize"})
COUNT_FIELDS = frozenset(
    {
        "nFiles",
        "totalEvents",
        "ddmNFiles",
        "ddmTotalEvents",
        "nLostLumiBlocks",
        "events",
        "totalEventsRequested",
    }
)
UNITS = {"crossSection": "nb", "crossSectionMin": "nb", "crossSectionMax": "nb"}
NUMERIC_FIELDS = SIZE_FIELDS | COUNT_FIELDS | frozenset(UNITS) | {"completion"}


# --- pages -------------------------------------------------------------------


@pages.get("/")
def home() -> str:
    """What hepcat is, the catalogue's totals and the latest datasets."""
    recent = DatasetQuery(sort=("-lastModified",), limit=RECENT_DATASETS)
    with catalog_session() as session:
        totals = catalog_totals(session=session)
        page = search_datasets(recent, session=session)
    rows = ami_rows(page.rows)
    return render_template("home.html", totals=totals, rows=rows, columns=HOME_COLUMNS)


@pages.get("/datasets")
def search() -> str:
    """Search datasets by name pattern and AMI fields, sorted and paged."""
    query = dataset_query(request.args)
    with catalog_session() as session:
        page = search_datasets(query, session=session)
    return render_template(
        "datasets.html",
        query=query,
        page=page,
        rows=ami_rows(page.rows),
        columns=SEARCH_COLUMNS,
        filters=SEARCH_FILTERS,
        suggestions=SUGGESTIONS,
    )


@pages.get("/datasets/<path:name>")
def dataset(name: str) -> str:
    """Every AMI field of one dataset, its provenance and its files."""
    files_offset = int_arg(request.args, "files_offset", 0)
    with catalog_session() as session:
        found = get_dataset(name, session=session)
        context = {
            "dataset": found,
            "fields": shown_fields(found),
            "source": found.cross_section_source,
            "provenance": get_provenance(found, session=session).nodes,
            "files": list_files(
                found, session=session, offset=files_offset, limit=FILES_PER_PAGE
            ),
        }
    return render_template("dataset.html", **context)


# --- query arguments ------------------------------------------------------------


def dataset_query(args: Mapping[str, str]) -> DatasetQuery:
    """Build the search a page's query arguments ask for.

    :raises InvalidInput: when ``offset`` or ``limit`` is not an integer.
    """
    filters = {name: args[name].strip() for name in SEARCH_FILTERS if arg(args, name)}
    sort = tuple(key.strip() for key in arg(args, "sort").split(",") if key.strip())
    return DatasetQuery(
        pattern=arg(args, "q") or None,
        filters=filters,
        sort=sort or DatasetQuery.sort,
        offset=int_arg(args, "offset", 0),
        limit=int_arg(args, "limit", DEFAULT_LIMIT),
    )


def arg(args: Mapping[str, str], name: str) -> str:
    """Return the query argument *name*, stripped; empty when absent."""
    return (args.get(name) or "").strip()


def int_arg(args: Mapping[str, str], name: str, default: int) -> int:
    """Return the integer query argument *name*, or *default* when absent.

    :raises InvalidInput: when it is not an integer.
    """
    text = arg(args, name)
    if not text:
        return default
    try:
        return int(text)
    except ValueError:
        raise InvalidInput(f"{name} must be an integer, got {text!r}") from None


@pages.app_template_global()
def url_with(**changes: Any) -> str:
    """Return the current page's URL with query arguments changed; a value of
    ``None`` removes the argument. Empty arguments are dropped.
    """
    # Names with a leading underscore are url_for options, never ours.
    values: dict[str, Any] = {
        k: v for k, v in request.args.items() if v.strip() and not k.startswith("_")
    }
    values.update(request.view_args or {})
    for key, value in changes.items():
        if value is None:
            values.pop(key, None)
        else:
            values[key] = str(value)
    return url_for(str(request.endpoint), **values)


@pages.app_template_global()
def sort_state(field: str, sort: Sequence[str]) -> str:
    """Return ``"asc"``, ``"desc"`` or ``""``: how *field* leads the sort."""
    if not sort or sort[0].lstrip("-+").lower() != field.lower():
        return ""
    return "desc" if sort[0].startswith("-") else "asc"


@pages.app_template_global()
def sort_url(field: str, sort: Sequence[str]) -> str:
    """Return the URL sorting by *field*, descending if it already leads
    ascending; paging restarts at the first page.
    """
    key = f"-{field}" if sort_state(field, sort) == "asc" else field
    return url_with(sort=key, offset=None)


# --- what is shown --------------------------------------------------------------


def ami_rows(datasets: Iterable[Dataset]) -> list[dict[str, Any]]:
    """Return each dataset's AMI fields, by AMI name."""
    return [row_to_ami(dataset, Dataset) for dataset in datasets]


def shown_fields(dataset: Dataset) -> list[tuple[str, Any]]:
    """Return the AMI fields of *dataset* that have a value, in model order."""
    row = row_to_ami(dataset, Dataset)
    return [(name, row[name]) for name in ami_fields(Dataset) if not empty(row[name])]


def empty(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


@pages.app_template_filter("ami")
def format_field(value: Any, field: str) -> str:
    """Show the value of the AMI field *field* as a physicist reads it."""
    if empty(value):
        return ""
    if field in SIZE_FIELDS:
        return human_size(value)
    if field in COUNT_FIELDS:
        return thousands(value)
    if field == "completion":
        return f"{value:.1f} %"
    return format_value(value) + (f" {UNITS[field]}" if field in UNITS else "")


def format_value(value: Any) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, dt.datetime):
        return utc(value)
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


@pages.app_template_global()
def unit(field: str) -> str:
    """Return the unit of the AMI field *field*, or ``""``."""
    return UNITS.get(field, "")


@pages.app_template_global()
def numeric(field: str) -> bool:
    """Whether the field *field* is a number, aligned right in tables."""
    return field in NUMERIC_FIELDS


@pages.app_template_filter("size")
def human_size(size: int | None) -> str:
    """Return *size* in bytes with a decimal unit: ``1.2 GB``."""
    if size is None:
        return ""
    value = float(size)
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if abs(value) < 1000:
            return f"{int(value)} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{value:.1f} PB"


@pages.app_template_filter("thousands")
def thousands(number: int | None) -> str:
    """Return *number* with thousands separators: ``12,345``."""
    return "" if number is None else f"{number:,}"


@pages.app_template_filter("utc")
def utc(moment: dt.datetime | None) -> str:
    """Return *moment* in UTC, ISO 8601: ``2015-07-03T10:15:00Z``."""
    if moment is None:
        return ""
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@pages.app_template_filter("breakable")
def breakable(name: str) -> Markup:
    """Return *name* with line-break opportunities after its dots and
    underscores, so that long dataset names wrap between their fields.
    """
    escaped = str(escape(name))
    return Markup(escaped.replace(".", ".<wbr>").replace("_", "_<wbr>"))
