"""The AMI commands hepcat answers.

Each command reads its arguments from a :class:`CommandLine`, asks
:mod:`catalog` inside the request's transaction, and returns an
:class:`Answer`: the rowsets ``../shared/AMI_PROTOCOL.md`` lists for it.
Bad or missing arguments raise :class:`InvalidInput`; nothing here builds SQL
(``SearchQuery`` compiles its MQL with :mod:`catalog.mql`).
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

from sqlalchemy import select
from sqlalchemy.orm import Session

from catalog.amitags import get_ami_tag, tag_parameters
from catalog.annotations import list_annotations
from catalog.containers import CONTAINER, ContainerInfo, dataset_or_container
from catalog.datasets import (
    ANCESTORS,
    DESCENDANTS,
    MAX_PAGE_SIZE,
    MAX_PROVENANCE_LIMIT,
    PROVENANCE_LIMIT,
    Provenance,
    get_dataset,
    get_file,
    get_provenance,
    list_files_keyset,
)
from catalog.errors import InvalidInput, PermissionDenied
from catalog.fields import INT64_MAX, parse_whole, row_to_ami, typed_value, whole_number
from catalog.models import Dataset, Period
from catalog.models.users import ROLE_ADMIN
from catalog.mql import MAX_ROWS, compile_search, entity_fields
from catalog.runs import list_periods, list_runs_keyset
from catalog.users import get_user, has_role
from web.ami.commandline import CommandLine
from web.ami.reply import Field, Rowset, rowset
from web.auth import current_user


@dataclass(frozen=True)
class Answer:
    """The rowsets a command found, and notes for the reader."""

    rowsets: list[Rowset]
    infos: tuple[str, ...] = ()


#: An argument a command's description names: ``-logicalDatasetName``.
ARGUMENT = re.compile(r"(?<![\w-])-([A-Za-z][A-Za-z0-9]*)")


@dataclass(frozen=True)
class Command:
    """An AMI command: its function and what it does, in one line, which
    names every argument it takes (and *ignored*, those it takes and does
    not use, as pyAMI sends them). Every argument needs a value but the
    *flags*, which may stand alone (``-total``).
    """

    name: str
    run: Callable[[CommandLine, Session], Answer]
    description: str
    ignored: tuple[str, ...] = ()
    flags: tuple[str, ...] = ()

    @property
    def arguments(self) -> tuple[str, ...]:
        named = ARGUMENT.findall(self.description)
        return tuple(dict.fromkeys([*named, *self.ignored]))


COMMANDS: dict[str, Command] = {}


def command(
    description: str,
    *,
    ignored: tuple[str, ...] = (),
    flags: tuple[str, ...] = (),
) -> Callable[[Any], Any]:
    """Register the decorated function as the AMI command of its name.

    :param flags: the arguments that may come without a value (read with
        :func:`flag`); any other needs one.
    """

    def register(function: Callable[[CommandLine, Session], Answer]) -> Any:
        name = function.__name__
        COMMANDS[name] = Command(name, function, description, ignored, flags)
        return function

    return register


def run_command(line: CommandLine, *, session: Session) -> Answer:
    """Run the command of *line*.

    :raises InvalidInput: for an unknown command (suggesting near names), an
        argument it does not take (a misspelt one would be ignored, and the
        answer not what was asked), one without the value it needs (a bare
        ``-projectName`` would list every run) and bad arguments; other errors of
        :mod:`catalog.errors` as they come.
    """
    found = _find(line.name)
    _check_arguments(found, line)
    return found.run(line, session)


def _check_arguments(found: Command, line: CommandLine) -> None:
    """Refuse an argument *found* does not take, suggesting the nearest, and
    one without a value that is not a flag.
    """
    takes = {name.lower(): name for name in found.arguments}
    flags = {name.lower() for name in found.flags}
    for name, value in line.arguments:
        taken = takes.get(name.lower())
        if taken is None:
            raise _not_taken(found, name, takes)
        if not value and taken.lower() not in flags:
            raise InvalidInput(f'{found.name} -{taken} needs a value: -{taken}="..."')


def _not_taken(found: Command, name: str, takes: dict[str, str]) -> InvalidInput:
    near = difflib.get_close_matches(name.lower(), list(takes), n=1, cutoff=0.6)
    hint = f"did you mean -{takes[near[0]]}? " if near else ""
    listed = ", ".join(f"-{a}" for a in found.arguments) or "no argument"
    return InvalidInput(
        f"{found.name} takes no argument -{name}; {hint}it takes {listed}"
    )


def _find(name: str) -> Command:
    by_lower = {key.lower(): value for key, value in COMMANDS.items()}
    found = by_lower.get(name.lower())
    if found is None:
        near = difflib.get_close_matches(name, list(COMMANDS), n=3, cutoff=0.5)
        hint = f"did you mean {', '.join(near)}? " if near else ""
        raise InvalidInput(
            f"unknown command {name!r}; {hint}AMIListCommands lists the commands"
        )
    return found


# --- arguments ----------------------------------------------------------------


def required(line: CommandLine, name: str) -> str:
    """The value of argument *name*.

    :raises InvalidInput: when it is missing or empty.
    """
    value = line.get(name)
    if not value:
        raise InvalidInput(f'{line.name} needs -{name}="..."')
    return value


#: The values a flag takes, in any letter case; alone, it is true.
FLAG_VALUES = {
    **dict.fromkeys(("", "true", "yes", "y", "1", "on"), True),
    **dict.fromkeys(("false", "no", "n", "0", "off"), False),
}


def flag(line: CommandLine, name: str) -> bool:
    """Whether the flag *name* is set: ``-name``, ``-name=true`` (or
    ``yes``, ``y``, ``1``, ``on``); not without it, nor with ``=false``
    (``no``, ``n``, ``0``, ``off``).

    :raises InvalidInput: for another value, naming the flag: a value
        taken for false would answer another question than the one asked.
    """
    value = line.get(name)
    if value is None:
        return False
    found = FLAG_VALUES.get(value.strip().lower())
    if found is None:
        raise InvalidInput(
            f"-{name} must be true or false (true, yes, y, 1, on; false, no, n, "
            f"0, off; in any letter case; alone it is true), got {value[:20]!r}"
        )
    return found


def typed_argument(line: CommandLine, name: str, column: Any) -> Any:
    """The value of argument *name* as the type of *column*
    (:func:`~catalog.fields.typed_value`); None when it is absent or empty.

    :raises InvalidInput: naming the argument, when the value does not fit.
    """
    value = line.get(name)
    return typed_value(column, value, name=f"-{name}") if value else None


def window(line: CommandLine, name: str = "limit") -> tuple[int, int]:
    """The rows asked for by ``-limit=o,n`` (from *o*, *n* rows) or
    ``-limit=n``, at most :data:`MAX_ROWS`; every row up to :data:`MAX_ROWS`
    without one.

    :raises InvalidInput: for anything but one or two whole numbers.
    """
    offset, count = asked_window(line, name)
    return offset, MAX_ROWS if count is None else min(count, MAX_ROWS)


def asked_window(line: CommandLine, name: str = "limit") -> tuple[int, int | None]:
    """The offset and count ``-limit`` asks for, as :func:`window` reads
    them, the count None without ``-limit`` (every row).

    :raises InvalidInput: for anything but one or two whole numbers.
    """
    value = line.get(name)
    if not value:
        return 0, None
    parts = value.split(",")
    numbers = [n for n in map(parse_whole, parts) if n is not None and n <= INT64_MAX]
    if len(parts) > 2 or len(numbers) < len(parts):
        raise InvalidInput(f'-{name} must be "offset,count" or "count", got {value!r}')
    offset, count = (0, numbers[0]) if len(numbers) == 1 else numbers
    return offset, count


def rows_to_read(asked: int | None) -> int:
    """The rows to read for a ``-limit`` count *asked* (None: every row):
    those asked for, up to a row more than an answer holds, which tells
    that :func:`first_rows` cut the list.
    """
    return MAX_ROWS + 1 if asked is None or asked > MAX_ROWS else asked


T = TypeVar("T")


def first_rows(rows: list[T], more: str) -> tuple[list[T], tuple[str, ...]]:
    """*rows* cut to the :data:`MAX_ROWS` an answer holds and, when that cut
    some, the ``<info>`` saying so and *more*: how to read the others.
    """
    if len(rows) <= MAX_ROWS:
        return rows, ()
    return rows[:MAX_ROWS], (f"only the first {MAX_ROWS} rows; {more}",)


# --- SearchQuery --------------------------------------------------------------


@command(
    "runs an MQL query on an entity: -entity, -mql, -showArchived",
    ignored=("catalog",),
    flags=("showArchived",),
)
def SearchQuery(line: CommandLine, session: Session) -> Answer:  # noqa: N802
    search = compile_search(
        required(line, "entity"),
        required(line, "mql"),
        show_archived=flag(line, "showArchived"),
        session=session,
    )
    rows = list(session.execute(search.statement).all())
    infos: tuple[str, ...] = ()
    if search.capped:
        rows, infos = first_rows(rows, "use LIMIT offset,count for more")
    labels = list(zip(search.names, search.tables, strict=True))
    found = [
        [
            Field(name, value, table)
            for (name, table), value in zip(labels, row, strict=True)
        ]
        for row in rows
    ]
    return Answer([Rowset(search.entity, found)], infos)


# --- datasets and files ---------------------------------------------------------


@command(
    "every field of a dataset, or the totals of a DDM container: -logicalDatasetName"
)
def AMIGetDatasetInfo(line: CommandLine, session: Session) -> Answer:  # noqa: N802
    name = required(line, "logicalDatasetName")
    dataset = dataset_or_container(name, session=session)
    if isinstance(dataset, ContainerInfo):
        return Answer([rowset("dataset", [_container_fields(dataset)])])
    fields = row_to_ami(dataset)
    source = dataset.cross_section_source
    fields["crossSectionSource"] = source.name if source is not None else None
    in_container = entity_fields("dataset")["inContainer"]
    fields["inContainer"] = session.scalar(
        select(in_container).where(Dataset.id == dataset.id)
    )
    return Answer([rowset("dataset", [fields])])


def _container_fields(container: ContainerInfo) -> dict[str, Any]:
    """The ``dataset`` row of a DDM container: its name, scope and times,
    the sums of its datasets' counts under the datasets' AMI names, and
    their distinct statuses, comma-separated as ``period`` is.
    """
    return {
        "logicalDatasetName": container.name,
        "scope": container.scope,
        "dataType": CONTAINER,
        "nDatasets": container.n_datasets,
        "nFiles": container.n_files,
        "totalEvents": container.total_events,
        "totalSize": container.total_size,
        "prodsysStatus": ",".join(container.prodsys_statuses) or None,
        "amiStatus": ",".join(container.ami_statuses) or None,
        "created": container.created,
        "ddmErased": container.erased,
    }


@command(
    "the files of a dataset: -logicalDatasetName, -total=yes, -limit=o,n",
    flags=("total",),
)
def AMIListFiles(line: CommandLine, session: Session) -> Answer:  # noqa: N802
    dataset = get_dataset(required(line, "logicalDatasetName"), session=session)
    offset, asked = asked_window(line)
    read = list(_counted_files(dataset, offset, rows_to_read(asked), session=session))
    files, infos = first_rows(read, "use -limit=offset,count for more")
    rows = [
        {"LFN": f.lfn, "fileGUID": f.guid, "fileSize": f.size, "events": f.events}
        for f in files
    ]
    found = [rowset("files", rows)]
    if flag(line, "total"):
        found.append(rowset("total", [_file_totals(dataset)]))
    return Answer(found, infos)


def _counted_files(
    dataset: Dataset, offset: int, count: int, *, session: Session
) -> Iterator[Any]:
    """The counted files of *dataset*, by LFN, from *offset*, at most
    *count*: read a page at a time, each page after the last LFN of the one
    before (:func:`~catalog.datasets.list_files_keyset`), so that a listing
    of a 100,000-file dataset neither counts its files nor skips again the
    ones it has read.
    """
    cursor = None
    while count > 0:
        size = min(count, MAX_PAGE_SIZE)
        page = list_files_keyset(
            dataset,
            session=session,
            cursor=cursor,
            limit=size,
            counted=True,
            offset=0 if cursor else offset,
        )
        yield from page.rows
        cursor, count = page.next_cursor, count - size
        if cursor is None:
            return


def _file_totals(dataset: Dataset) -> dict[str, Any]:
    """The ``total`` row: the fields of a file row, so that a client printing
    files prints it too; ``LFN`` says how many files it sums.
    """
    return {
        "LFN": f"TOTAL: {dataset.n_files} files",
        "fileGUID": None,
        "fileSize": dataset.total_size,
        "events": dataset.total_events,
    }


@command("one file: -LFN or -GUID")
def AMIGetFileInfo(line: CommandLine, session: Session) -> Answer:  # noqa: N802
    guid, lfn = line.get("GUID"), line.get("LFN")
    if guid and lfn:
        raise InvalidInput("AMIGetFileInfo takes -LFN or -GUID, not both: give one")
    if not guid and not lfn:
        raise InvalidInput('AMIGetFileInfo needs one of -LFN="..." and -GUID="..."')
    found = get_file(session=session, guid=guid or None, lfn=lfn or None)
    fields = row_to_ami(found)
    fields["logicalDatasetName"] = found.dataset.name
    return Answer([rowset("file", [fields])])


@command(
    "ancestors (distance > 0) and descendants (< 0): -logicalDatasetName, "
    f"-depth (steps, default any), -limit (datasets, default {PROVENANCE_LIMIT})"
)
def AMIGetDatasetProv(line: CommandLine, session: Session) -> Answer:  # noqa: N802
    dataset = get_dataset(required(line, "logicalDatasetName"), session=session)
    depth, limit = line.get("depth"), line.get("limit")
    steps = None if depth is None else whole_number(depth, "-depth")
    most = PROVENANCE_LIMIT if limit is None else whole_number(limit, "-limit")
    provenance = get_provenance(dataset, session=session, depth=steps, limit=most)
    nodes = [
        {
            "logicalDatasetName": node.dataset.name,
            "dataType": node.dataset.data_type,
            "distance": node.distance,
        }
        for node in provenance.nodes
    ]
    edges = [{"source": p, "destination": c} for p, c in provenance.edges]
    found = [rowset("node", nodes), rowset("edge", edges)]
    if provenance.complete:
        return Answer(found)
    left_out = [
        {"direction": r.direction, "dataType": r.data_type, "count": r.n_datasets}
        for r in provenance.left_out
    ]
    note = _left_out_note(provenance, steps, most)
    return Answer([*found, rowset("leftOut", left_out)], (note,))


def _left_out_note(provenance: Provenance, depth: int | None, limit: int) -> str:
    """What a graph capped at *depth* steps and *limit* datasets left out,
    which of the two cut it, and how to see more.
    """
    counts = [
        f"{provenance.n_left_out(way):,} more {way}"
        for way in (ANCESTORS, DESCENDANTS)
        if provenance.n_left_out(way)
    ]
    # The walk stops at the limit, when the graph is full, or at the depth,
    # when it reached that many steps (or both: each may have cut).
    reached = max(abs(node.distance) for node in provenance.nodes)
    cutting, larger = [], []
    if len(provenance.nodes) >= limit:
        cutting.append(f"-limit={limit}")
        if limit < MAX_PROVENANCE_LIMIT:
            larger.append(f"-limit (up to {MAX_PROVENANCE_LIMIT:,})")
    if depth is not None and reached >= depth:
        cutting.append(f"-depth={depth}")
        larger.append("-depth")
    advice = (
        f"a larger {' or '.join(larger)} shows more"
        if larger
        else f"-limit takes up to {MAX_PROVENANCE_LIMIT:,}"
    )
    return (
        f"only {len(provenance.nodes):,} datasets; left out {' and '.join(counts)} "
        f"(the leftOut rowset counts them by dataType): {' and '.join(cutting)} "
        f"cut the graph; {advice}"
    )


@command("the hashtags of a dataset: -ldn")
def DatasetWBListHashtags(line: CommandLine, session: Session) -> Answer:  # noqa: N802
    name = required(line, "ldn")
    rows = [
        {"scope": tag.scope, "name": tag.name, "comment": tag.comment}
        for tag in list_annotations(name, session=session)
    ]
    return Answer([rowset("hashtags", rows)])


# --- runs, periods, tags ----------------------------------------------------------


@command("runs: -projectName (% matches anything), -period")
def AMIListRuns(line: CommandLine, session: Session) -> Answer:  # noqa: N802
    project, period = line.get("projectName"), line.get("period")
    rows: list[dict[str, Any]] = []
    cursor: str | None = None
    # Keyset pages: each starts after the last run read, without counting
    # the runs again or stepping over the ones already read; up to a run
    # more than the answer holds, which tells that there are more.
    while len(rows) <= MAX_ROWS:
        page = list_runs_keyset(
            session=session,
            project=project,
            period=period,
            cursor=cursor,
            limit=min(MAX_PAGE_SIZE, MAX_ROWS + 1 - len(rows)),
        )
        rows.extend(_run_row(summary) for summary in page.rows)
        cursor = page.next_cursor
        if cursor is None:
            break
    rows, infos = first_rows(rows, "narrow the list with -projectName or -period")
    return Answer([rowset("runs", rows)], infos)


def _run_row(summary: Any) -> dict[str, Any]:
    run = summary.run
    return {
        "runNumber": run.run_number,
        "projectName": run.project,
        "startTime": run.start_time,
        "endTime": run.end_time,
        "nLumiBlocks": run.n_lumi_blocks,
        "periods": ",".join(summary.periods),
    }


@command("data periods: -periodLevel, -createdSince, -projectName")
def AMIListDataPeriods(line: CommandLine, session: Session) -> Answer:  # noqa: N802
    summaries = list_periods(
        session=session,
        level=typed_argument(line, "periodLevel", Period.level),
        project=line.get("projectName"),
        created_since=typed_argument(line, "createdSince", Period.created),
        level_argument="-periodLevel",
    )
    rows = [
        {
            "period": s.period.name,
            "periodLevel": s.period.level,
            "projectName": s.period.project,
            "description": s.period.description,
            "nRuns": s.n_runs,
            "reprocessingErrors": s.reprocessing_errors,
        }
        for s in summaries
    ]
    return Answer([rowset("periods", rows)])


@command("an AMI tag and its transformation parameters: -amiTag")
def AMIGetAMITagInfo(line: CommandLine, session: Session) -> Answer:  # noqa: N802
    tag = get_ami_tag(required(line, "amiTag"), session=session)
    fields: dict[str, Any] = {
        "amiTag": tag.tag,
        "tagType": tag.tag_type,
        "tagNumber": tag.tag_number,
        "transformation": tag.transformation,
        "SWReleaseCache": tag.release,
        "description": tag.description,
    }
    for name, value in tag_parameters(tag).items():
        fields.setdefault(name, value)
    return Answer([rowset("amiTagInfo", [fields])])


# --- about hepcat and its users -------------------------------------------------


@command("the commands hepcat answers")
def AMIListCommands(line: CommandLine, session: Session) -> Answer:  # noqa: N802
    rows = [
        {"command": c.name, "description": c.description}
        for c in sorted(COMMANDS.values(), key=lambda c: c.name)
    ]
    return Answer([rowset("commands", rows)])


@command("a user (yourself; an admin may ask for anyone): -amiLogin")
def GetUserInfo(line: CommandLine, session: Session) -> Answer:  # noqa: N802
    login = required(line, "amiLogin")
    asking = current_user()
    if asking is None or (asking.login != login and not has_role(asking, ROLE_ADMIN)):
        who = asking.login if asking is not None else None
        raise PermissionDenied(who, ROLE_ADMIN, "reading another user's details")
    user = get_user(login, session=session)
    first, _, last = (user.full_name or "").partition(" ")
    row = {
        "AMIUser": user.login,
        "firstName": first,
        "lastName": last,
        "mail": user.email,
        "clientDN": user.dn,
        "roles": ",".join(sorted(role.role_name for role in user.roles)),
    }
    return Answer([rowset("User_Info", [row])])


# The commands of TAG databases and skims register themselves on import.
import web.ami.skims  # noqa: E402, F401
