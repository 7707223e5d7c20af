"""The web pages: home, dataset search and the dataset page (which shows a
DDM container, given a container's name).

A view parses its query arguments, calls :mod:`catalog` inside
:func:`web.app.catalog_session`, and renders a template. Bad input raises
:class:`catalog.errors.InvalidInput`, which the application renders as a 400
page; nothing here builds SQL. The other pages (runs, AMI tags, operations,
plots) are blueprints of their own and use the helpers and filters here.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from flask import Blueprint, current_app, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from markupsafe import Markup, escape
from sqlalchemy import Column, select
from sqlalchemy.orm import Session
from werkzeug.datastructures import MultiDict
from werkzeug.wrappers import Response

from catalog.containers import (
    ContainerInfo,
    check_container,
    dataset_or_container,
    find_container,
    member_page,
)
from catalog.datasets import (
    MAX_OFFSET,
    DatasetQuery,
    Page,
    catalog_totals,
    get_provenance,
    list_files,
    search_datasets,
    search_datasets_keyset,
)
from catalog.db import among
from catalog.ddm import DdmSummary, containers_of, ddm_summaries, replicas_of
from catalog.derived import (
    ALL_EVENTS,
    NO_EVENTS,
    SOME_EVENTS,
    TASK_FAILED,
    TASK_OBSOLETE,
    file_lumi_blocks,
    raw_dataset_of,
)
from catalog.errors import ContainerNotFound, InvalidInput, RunNotFound
from catalog.fields import ami_fields, row_to_ami, whole_number
from catalog.lumiblocks import format_lumi_blocks
from catalog.models import AMI_TRASHED, AMI_VALID, Dataset, Reconciliation, Replica, Run
from catalog.models.datasets import SOURCE_TIER0
from catalog.mql import entity_field, entity_fields
from catalog.mql.compiler import PRINTED_DIGITS
from catalog.reconciliation import reconciliations_of
from catalog.runs import get_run
from skimengine.skims import list_skims, skim_making, skim_progress
from skimengine.tags import tag_of
from web.app import catalog_session
from web.provenance import PAGE_NODES, layout, page_limit

pages = Blueprint("pages", __name__)

RECENT_DATASETS = 20
# Seconds the home page's totals (and its datasets per month) are kept in
# the process: they read every dataset, and are as good a minute old.
TOTALS_KEPT = 60.0
FILES_PER_PAGE = 50
MEMBERS_PER_PAGE = 50  # a container's datasets on its page
# Skims of a dataset listed on its page (newest first; the rest on /skims).
SKIMS_SHOWN = 10
DEFAULT_LIMIT = 50

# The query arguments of the search page that filter on an AMI field, shown
# as inputs of their own; any other AMI field is added with "add a filter".
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
# Sent by the search form with its column checkboxes: the checked ones are
# the columns, even when there is none.
COLUMNS_FORM = "columns_form"
# Query arguments of the search page that are not filters.
SEARCH_CONTROLS = frozenset(
    {
        "q",
        "sort",
        "offset",
        "after",
        "limit",
        "columns",
        "column",
        COLUMNS_FORM,
        "add_field",
        "add_value",
    }
)
# Values offered as suggestions (a <datalist>) for some filters.
SUGGESTIONS = {
    "amiStatus": (AMI_VALID, AMI_TRASHED),
    "prodsysStatus": (ALL_EVENTS, SOME_EVENTS, NO_EVENTS, TASK_FAILED, TASK_OBSOLETE),
}

# "status" is not an AMI field: prodsysStatus and the DDM state together.
HOME_COLUMNS = (
    "logicalDatasetName",
    "dataType",
    "nFiles",
    "totalEvents",
    "status",
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
# The columns of the datasets of a container, on its page.
CONTAINER_COLUMNS = (
    "logicalDatasetName",
    "dataType",
    "nFiles",
    "totalEvents",
    "totalSize",
    "prodsysStatus",
    "amiStatus",
)

# How values are shown, by AMI field name; others by their Python type.
SIZE_FIELDS = frozenset({"totalSize", "ddmTotalSize", "tier0TotalSize", "fileSize"})
COUNT_FIELDS = frozenset(
    {
        "nFiles",
        "totalEvents",
        "ddmNFiles",
        "ddmTotalEvents",
        "tier0NFiles",
        "tier0TotalEvents",
        "nLostLumiBlocks",
        "events",
        "totalEventsRequested",
    }
)
UNITS = {
    "crossSection": "nb",
    "crossSectionMin": "nb",
    "crossSectionMax": "nb",
    "completion": "%",
}
NUMERIC_FIELDS = SIZE_FIELDS | COUNT_FIELDS | frozenset(UNITS)

# prodsysStatus values that make the summary status a warning or an alarm.
WARNING_STATUSES = frozenset({SOME_EVENTS, NO_EVENTS})
ALARM_STATUSES = frozenset({TASK_FAILED, TASK_OBSOLETE})


# --- pages -------------------------------------------------------------------


@pages.get("/")
def home() -> str:
    """What hepcat is, the catalogue's totals, the latest datasets with their
    summary status, and the datasets registered per month.
    """
    recent = DatasetQuery(sort=("-lastModified",), limit=RECENT_DATASETS)
    totals = kept_a_minute("totals", catalog_totals)
    with catalog_session() as session:
        # The first page of a keyset: the rows without a count of them all.
        page = search_datasets_keyset(recent, session=session)
        rows = summary_rows(page.rows, session=session)
    return render_template("home.html", totals=totals, rows=rows, columns=HOME_COLUMNS)


T = TypeVar("T")


def kept_a_minute(name: str, read: Callable[..., T]) -> T:
    """What *read* (called with a session) returns, read again at most once
    per :data:`TOTALS_KEPT` seconds by this application: the home page's
    totals and datasets per month, which add up every dataset (seconds at a
    million of them), for every visitor. Kept with the application, so that
    each catalogue served has its own.
    """
    kept: dict[str, tuple[float, Any]] = current_app.extensions.setdefault(
        "hepcat.totals", {}
    )
    now = time.monotonic()
    held = kept.get(name)
    if held is not None and now - held[0] < TOTALS_KEPT:
        value: T = held[1]
        return value
    with catalog_session() as session:
        value = read(session=session)
    kept[name] = (now, value)
    return value


@pages.get("/datasets")
def search() -> ResponseReturnValue:
    """Search datasets by name pattern and any AMI field, in the columns the
    user chose, sorted and paged: by ``offset`` near the start, and by the
    cursor ``after`` (with ``offset`` saying where) from a "next" link, so
    that a deep page costs what the first one does
    (:func:`~catalog.datasets.search_datasets`). A mistake (a field that is
    none, a value or sort the catalogue refuses, an ``inContainer`` naming
    no DDM container) shows the form as typed, with the error and its status.
    """
    try:
        return found_datasets(request.args)
    except (InvalidInput, ContainerNotFound) as err:
        # The transaction has been rolled back; nothing was read.
        return search_form(request.args, err)


def found_datasets(args: Any) -> str | Response:
    """The search page of the datasets *args* ask for, or a redirect to the
    short form of *args* (:func:`canonical_search_args`).

    :raises InvalidInput: for a field that is none, or a value, sort, page
        or cursor the catalogue refuses.
    :raises ContainerNotFound: for an ``inContainer`` without ``%`` that
        names no DDM container, as the JSON API says.
    """
    one_value_each(args, repeatable=("column",), hint=several_values)
    canonical: dict[str, Any] | None = canonical_search_args(args)
    if canonical is not None:
        return redirect(url_for("pages.search", **canonical))
    query = dataset_query(args)
    columns = chosen_columns(args)
    with catalog_session() as session:
        check_container((query.filters or {}).get("inContainer"), session=session)
        after = arg(args, "after") or None
        page = search_datasets(query, session=session, after=after)
        rows = ami_rows(page.rows, columns, session=session)
        container = container_named(query, page, session=session)
    return search_page(query, columns, page=page, rows=rows, container=container)


def container_named(query: DatasetQuery, page: Page, *, session: Session) -> str | None:
    """The name of the DDM container that a search for a name without a
    wildcard, which no dataset matches, names exactly: it has a page of its
    own, which the search page then links (a container is not a dataset).
    """
    pattern = (query.pattern or "").strip()
    if page.total or not pattern or "%" in pattern or "*" in pattern:
        return None
    found = find_container(pattern, session=session)
    return found.name if found is not None else None


def search_form(args: Any, error: InvalidInput | ContainerNotFound) -> tuple[str, int]:
    """The search form filled with *args* as typed, unchecked, and *error*
    above it, with its status; no dataset.
    """
    query = DatasetQuery(pattern=arg(args, "q") or None, filters=typed_filters(args))
    try:
        columns = chosen_columns(args)
    except InvalidInput:
        columns = SEARCH_COLUMNS  # a name that is no field has no box to tick
    return search_page(query, columns, error=error), error.status


def search_page(
    query: DatasetQuery,
    columns: Sequence[str],
    *,
    page: Page | None = None,
    rows: Sequence[dict[str, Any]] = (),
    error: InvalidInput | ContainerNotFound | None = None,
    container: str | None = None,
) -> str:
    """The search page: the form filled from *query* and *columns*, then
    the *rows* of *page*, or the *error* when there is none; and the DDM
    *container* the search named, if any.
    """
    filters = query.filters or {}
    return render_template(
        "datasets.html",
        query=query,
        page=page,
        rows=rows,
        columns=columns,
        fields=list(entity_fields("dataset")),
        columns_form=COLUMNS_FORM,
        filters=SEARCH_FILTERS,
        extra_filters={k: v for k, v in filters.items() if k not in SEARCH_FILTERS},
        suggestions=SUGGESTIONS,
        max_offset=MAX_OFFSET,
        error=error,
        container=container,
    )


@pages.get("/datasets/<path:name>")
def dataset(name: str) -> str:
    """Every AMI field of one dataset, its provenance graph, DDM state, its
    differences with Tier-0, lumi blocks and files (``files_limit`` a page,
    50 by default); its TAG and skims, and the skim that made it. The graph
    holds ``provenance_limit`` datasets at most (:mod:`web.provenance`).

    A DDM container's name (which no dataset has) shows the container: its
    totals and its datasets.
    """
    files_offset = int_arg(request.args, "files_offset", 0)
    files_limit = int_arg(request.args, "files_limit", FILES_PER_PAGE)
    nodes = page_limit(int_arg(request.args, "provenance_limit", PAGE_NODES))
    with catalog_session() as session:
        found = dataset_or_container(name, session=session)
        if isinstance(found, ContainerInfo):
            return container_page(found, session=session)
        provenance = get_provenance(found, session=session, limit=nodes)
        context = {
            "dataset": found,
            "fields": shown_fields(found),
            "source": found.cross_section_source,
            "provenance": provenance.nodes,
            "graph": layout(provenance),
            "ddm": ddm_details(found, session=session),
            "tier0": tier0_differences(found, session=session),
            "lumi": lumi_details(found, session=session),
            "files": files_page(found, files_offset, files_limit, session=session),
            "tag": tag_of(found, session=session),
            "skims": list_skims(parent=found, session=session, limit=SKIMS_SHOWN),
            "made_by": skim_making(found, session=session),
        }
        return render_template("dataset.html", **context, progress=skim_progress)


def files_page(dataset: Dataset, offset: int, limit: int, *, session: Session) -> Page:
    """The page of *dataset*'s files that ``files_offset`` and ``files_limit``
    ask for.

    :raises InvalidInput: for an unusable page, naming those arguments.
    """
    try:
        return list_files(dataset, session=session, offset=offset, limit=limit)
    except InvalidInput as err:
        # The paging check names the offset and the limit, which this page
        # calls files_offset and files_limit.
        raise InvalidInput(f"files_{err.message}") from None


def container_page(container: ContainerInfo, *, session: Session) -> str:
    """The page of a DDM container: its totals, the statuses of its datasets
    and its datasets a page at a time (``offset``, and ``limit``, 50 by
    default), each catalogued one linked to its page.
    """
    offset = int_arg(request.args, "offset", 0)
    limit = int_arg(request.args, "limit", MEMBERS_PER_PAGE)
    members, datasets = member_page(
        container, session=session, offset=offset, limit=limit
    )
    held = {dataset.name for dataset in datasets}
    context = {
        "container": container,
        "members": members,
        "rows": ami_rows(datasets, CONTAINER_COLUMNS, session=session),
        "missing": [name for name in members.rows if name not in held],
        "columns": CONTAINER_COLUMNS,
    }
    return render_template("container.html", **context)


# --- query arguments ------------------------------------------------------------


def dataset_query(args: Mapping[str, str]) -> DatasetQuery:
    """Build the search a page's query arguments ask for: every argument that
    is not a control (:data:`SEARCH_CONTROLS`) filters on the AMI field it
    names.

    :raises InvalidInput: when ``offset`` or ``limit`` is not an integer, or
        an argument names no AMI field of a dataset, or one named already.
    """
    filters = field_filters(typed_filters(args))
    sort = tuple(key.strip() for key in arg(args, "sort").split(",") if key.strip())
    return DatasetQuery(
        pattern=arg(args, "q") or None,
        filters=filters,
        sort=sort or DatasetQuery.sort,
        offset=int_arg(args, "offset", 0),
        limit=int_arg(args, "limit", DEFAULT_LIMIT),
    )


def one_value_each(
    args: MultiDict[str, str],
    *,
    repeatable: Collection[str] = (),
    hint: Callable[[str, list[str]], str] | None = None,
) -> None:
    """Refuse a query argument given more than once, but those *repeatable*:
    only its first value would be read, and the others silently ignored.

    :param hint: what to add to the message about an argument and its
        values: how to ask for several values, where the surface can.
    :raises InvalidInput: naming the argument and its values.
    """
    for name, values in args.lists():
        if len(values) > 1 and name not in repeatable:
            shown = ", ".join(map(repr, values))
            raise InvalidInput(
                f"the query argument {name} is given {len(values)} times "
                f"({shown}); it takes one value{hint(name, values) if hint else ''}"
            )


def several_values(name: str, values: list[str]) -> str:
    """How to find the datasets of any of *values* of the field *name*, if
    it is one: MQL's ``IN`` (the AMI endpoint's ``SearchQuery``).
    """
    try:
        field = field_name(name)
    except InvalidInput:
        return ""
    listed = ", ".join("'" + value.strip().replace("'", "''") + "'" for value in values)
    return (
        "; for the datasets of any of them, search once per value, or use MQL's "
        f"IN in a SearchQuery on the AMI endpoint: {field} IN ({listed})"
    )


def typed_filters(args: Mapping[str, str]) -> dict[str, str]:
    """The filters of the search *args* as typed: each argument that is not
    a control (:data:`SEARCH_CONTROLS`) and has a value, stripped.
    """
    return {
        name.strip(): value.strip()
        for name, value in args.items()
        if name not in SEARCH_CONTROLS and not name.startswith("_") and value.strip()
    }


def field_filters(typed: Mapping[str, str]) -> dict[str, str]:
    """The filters *typed*, keyed by the AMI field each names.

    :raises InvalidInput: for a name that is no field, or two names of one
        field (``datatype`` and ``dataType``): one of them would be ignored.
    """
    filters: dict[str, str] = {}
    named: dict[str, str] = {}
    for name, value in typed.items():
        field = field_name(name)
        if field in filters:
            hint = several_values(field, [filters[field], value])
            raise InvalidInput(
                f"the query arguments {named[field]} and {name} both filter on "
                f"{field}; it takes one value{hint}"
            )
        filters[field], named[field] = value, name
    return filters


def field_name(name: str) -> str:
    """The AMI field of a dataset called *name*, spelt as AMI spells it: a
    field MQL knows (``inContainer`` included).

    :raises InvalidInput: when there is none; the message suggests near names.
    """
    return entity_field("dataset", name.strip())[0]


def chosen_columns(args: Mapping[str, str]) -> tuple[str, ...]:
    """The columns of the search table: ``columns`` (comma-separated AMI
    fields), always led by the dataset name; :data:`SEARCH_COLUMNS` without it.

    :raises InvalidInput: for a name that is no AMI field of a dataset.
    """
    names = [name for name in arg(args, "columns").split(",") if name.strip()]
    return named_columns(names) if names else SEARCH_COLUMNS


def named_columns(names: Iterable[str]) -> tuple[str, ...]:
    """The columns *names* (AMI fields of a dataset, blanks skipped), led by
    the dataset name; that alone when *names* has no other.

    :raises InvalidInput: for a name that is no AMI field of a dataset.
    """
    fields = [field_name(name) for name in names if name.strip()]
    rest = [name for name in dict.fromkeys(fields) if name != "logicalDatasetName"]
    return ("logicalDatasetName", *rest)


def canonical_search_args(args: Any) -> dict[str, str] | None:
    """The search form sends column checkboxes (``column``, repeated, with
    :data:`COLUMNS_FORM` so that none ticked still says so) and an "add a
    filter" pair (``add_field``, ``add_value``); return the arguments of the
    same search in its short form (``columns=a,b``, ``field=value``), or None
    when *args* are in that form already.

    :raises InvalidInput: for a name that is no AMI field of a dataset.
    """
    from_form = COLUMNS_FORM in args or "column" in args
    if not from_form and not arg(args, "add_field"):
        return None
    drop = {"column", COLUMNS_FORM, "add_field", "add_value", "columns"}
    drop |= {"offset", "after"}  # another search starts at its first page
    values = {k: v for k, v in args.items() if k not in drop and v.strip()}
    if from_form:
        columns = named_columns(args.getlist("column"))
    else:
        columns = chosen_columns(args)
    if columns != SEARCH_COLUMNS:
        values["columns"] = ",".join(columns)
    if arg(args, "add_field") and arg(args, "add_value"):
        values[field_name(arg(args, "add_field"))] = arg(args, "add_value")
    return values


def arg(args: Mapping[str, str], name: str) -> str:
    """Return the query argument *name*, stripped; empty when absent."""
    return (args.get(name) or "").strip()


def int_arg(args: Mapping[str, str], name: str, default: int) -> int:
    """Return the integer query argument *name*, or *default* when absent.

    :raises InvalidInput: when it is not an integer that fits 64 bits.
    """
    text = arg(args, name)
    if not text:
        return default
    return whole_number(text, name, kind="an integer", signed=True)


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
    return url_with(sort=key, offset=None, after=None)


# --- what is shown --------------------------------------------------------------


def ami_rows(
    datasets: Sequence[Dataset], columns: Sequence[str], *, session: Session
) -> list[dict[str, Any]]:
    """Return each dataset's AMI fields, by AMI name, with the computed
    fields among *columns* as ``SearchQuery`` shows them (``inContainer``,
    ``crossSectionSource`` by name).
    """
    computed = computed_fields(datasets, columns, session=session)
    return [row_to_ami(d, Dataset) | computed.get(d.id, {}) for d in datasets]


def computed_fields(
    datasets: Sequence[Dataset], columns: Sequence[str], *, session: Session
) -> dict[int, dict[str, Any]]:
    """The values of the fields among *columns* that MQL computes (no column
    of their own, or a name for an id), by dataset id: one query.
    """
    fields = entity_fields("dataset")
    names = [n for n in columns if n in fields and not isinstance(fields[n], Column)]
    if not names or not datasets:
        return {}
    values = [fields[name].label(name) for name in names]
    ids = [dataset.id for dataset in datasets]
    query = select(Dataset.id, *values).where(among(Dataset.id, ids))
    return {
        id_: dict(zip(names, found, strict=True))
        for id_, *found in session.execute(query)
    }


@dataclass(frozen=True)
class SummaryStatus:
    """The status of a dataset on the home page: its ``prodsysStatus`` and
    its DDM state together, and how alarming that is (``good``, ``warn``,
    ``bad``).
    """

    production: str
    ddm: DdmSummary
    level: str

    def __str__(self) -> str:
        return f"{self.production} · {self.ddm}"


def summary_status(dataset: Dataset, ddm: DdmSummary) -> SummaryStatus:
    """Combine *dataset*'s production status with what DDM says of it.

    Alarming (``bad``): trashed, a failed or obsolete task, erased by DDM or
    files lost. A warning: events partly or not available, DDM open or
    incomplete, or counts that differ from DDM's. Otherwise ``good``.
    """
    production = dataset.prodsys_status or "no production status"
    levels = {ddm_level(ddm), production_level(dataset.prodsys_status)}
    if dataset.ami_status == AMI_TRASHED:
        levels.add("bad")
    level = next((lv for lv in ("bad", "warn") if lv in levels), "good")
    return SummaryStatus(production, ddm, level)


@pages.app_template_global()
def production_level(status: str | None) -> str:
    """How alarming a ``prodsysStatus`` is: ``bad`` for a failed or obsolete
    task, ``warn`` when events are partly or not available, ``good``
    otherwise; ``""`` without a status.
    """
    if not status:
        return ""
    if status in ALARM_STATUSES:
        return "bad"
    return "warn" if status in WARNING_STATUSES else "good"


@pages.app_template_global()
def ddm_level(ddm: DdmSummary) -> str:
    """How alarming a DDM state is: ``bad`` when erased or files are lost,
    ``warn`` when open, incomplete or counting differently, ``good`` when
    closed and agreeing, ``""`` before any DDM message.
    """
    if ddm.state == "erased" or ddm.lost_files:
        return "bad"
    if ddm.state in ("open", "incomplete") or ddm.consistent is False:
        return "warn"
    return "" if ddm.state == "unknown" else "good"


def summary_rows(
    datasets: Sequence[Dataset], *, session: Session
) -> list[dict[str, Any]]:
    """The AMI fields of *datasets* plus their summary status (``status``)."""
    ddm = ddm_summaries(datasets, session=session)
    rows = ami_rows(datasets, HOME_COLUMNS, session=session)
    for row, dataset in zip(rows, datasets, strict=True):
        row["status"] = summary_status(dataset, ddm[dataset.id])
    return rows


@dataclass(frozen=True)
class DdmDetails:
    """What the dataset page shows of DDM."""

    summary: DdmSummary
    replicas: list[Replica]
    reconciliations: list[Reconciliation]
    containers: list[str]


def ddm_details(dataset: Dataset, *, session: Session) -> DdmDetails:
    return DdmDetails(
        ddm_summaries([dataset], session=session)[dataset.id],
        replicas_of(dataset.name, session=session),
        reconciliations_of(dataset, session=session, source="ddm"),
        containers_of(dataset.name, session=session),
    )


def tier0_differences(
    dataset: Dataset, *, session: Session
) -> list[Reconciliation] | None:
    """The differences found between Tier-0's counts of *dataset* and the
    files it holds; None when it does not come from Tier-0.
    """
    if dataset.source != SOURCE_TIER0:
        return None
    return reconciliations_of(dataset, session=session, source=SOURCE_TIER0)


@dataclass(frozen=True)
class LumiDetails:
    """The lumi blocks of a real-data dataset: its run, the blocks in its
    files, and those lost compared with the run's RAW dataset.
    """

    run_number: int
    run: Run | None
    present: str
    raw: Dataset | None


def lumi_details(dataset: Dataset, *, session: Session) -> LumiDetails | None:
    """The lumi blocks of *dataset*, or None when it is not real data."""
    if dataset.run_number is None:
        return None
    try:
        run = get_run(dataset.run_number, session=session)
    except RunNotFound:
        run = None
    raw = None
    if dataset.data_type != "RAW":
        raw = raw_dataset_of(dataset, session=session)
    present = format_lumi_blocks(file_lumi_blocks(dataset, session=session))
    return LumiDetails(dataset.run_number, run, present, raw)


def shown_fields(dataset: Dataset) -> list[tuple[str, Any]]:
    """Return the AMI fields of *dataset* that have a value, in model order."""
    row = row_to_ami(dataset, Dataset)
    return [(name, row[name]) for name in ami_fields(Dataset) if not empty(row[name])]


def empty(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


@pages.app_template_filter("ami")
def format_field(value: Any, field: str, units: bool = True) -> str:
    """Show the value of the AMI field *field* as a physicist reads it,
    followed by its unit unless *units* is false (a table's header says it).
    """
    if empty(value):
        return ""
    if field in SIZE_FIELDS:
        return human_size(value)
    if field in COUNT_FIELDS:
        return thousands(value)
    shown = format_value(value)
    return f"{shown} {UNITS[field]}" if units and field in UNITS else shown


def format_value(value: Any) -> str:
    """*value* as text; a floating-point number as AMI prints it and as the
    filters compare it (15 significant digits), so that it can be copied
    into a filter.
    """
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, dt.datetime):
        return utc(value)
    if isinstance(value, float):
        return f"{value:.{PRINTED_DIGITS}g}"
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
