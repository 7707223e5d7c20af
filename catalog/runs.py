"""Runs and data periods, as COMA describes them, with what the catalogue
knows about them: the datasets of a run, the runs of a period and the
reprocessing errors of a period (DESIGN.md).

Functions here take the session keyword-only and never commit.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, func, select, tuple_, union
from sqlalchemy.orm import Session, aliased

from catalog.datasets import Page, check_paging
from catalog.db import UTCDateTime
from catalog.derived import FAILED_TASK
from catalog.errors import InvalidInput, RunNotFound
from catalog.fields import typed_value
from catalog.keyset import DEFAULT_LIMIT, Keyset, KeysetPage, SortKey, keyset_page
from catalog.models import Dataset, Period, PeriodRun, ProductionTask, Run
from catalog.mql import ExactText, text_like

PERIOD_LEVELS = (1, 2, 3)


@dataclass(frozen=True)
class RunSummary:
    """A run and the names of the periods (all levels) that hold it."""

    run: Run
    periods: list[str]


@dataclass(frozen=True)
class PeriodSummary:
    """A period with ``nRuns`` (the runs COMA lists in it) and
    ``reprocessingErrors`` (failed, broken or aborted ProdSys tasks whose input
    or output belongs to one of its runs).
    """

    period: Period
    n_runs: int
    reprocessing_errors: int


def _matching(column: Any, pattern: str) -> ColumnElement[bool]:
    """*column* like *pattern* when it holds ``%``, else equal to it, as MQL
    compares text (:func:`catalog.mql.filter_condition`), on every database:
    ``LIKE`` ignores letter case (a backslash is an ordinary character) and
    ``=`` does not.
    """
    if "%" in pattern:
        return text_like(column, pattern)
    return ExactText(column, [pattern])


def list_runs(
    *,
    session: Session,
    project: str | None = None,
    period: str | None = None,
    offset: int = 0,
    limit: int = 100,
) -> Page:
    """Return a page of :class:`RunSummary`, newest run first.

    :param project: a project name, letter case included; or a pattern, in
        which ``%`` matches any run of characters, that ignores letter case.
    :param period: a period name of any level (``A``, ``A1``), in any letter
        case: only its runs.
    :raises InvalidInput: for an unusable page.
    """
    check_paging(offset, limit)
    conditions = _run_conditions(project, period, session=session)
    total = session.scalar(select(func.count()).select_from(Run).where(*conditions))
    query = select(Run).where(*conditions).order_by(Run.run_number.desc())
    runs = session.scalars(query.offset(offset).limit(limit)).all()
    return Page(_summaries(runs, session=session), total or 0, offset, limit)


def _run_conditions(
    project: str | None, period: str | None, *, session: Session
) -> list[Any]:
    """The conditions on :class:`Run` of *project* and *period* (as for
    :func:`list_runs`).

    A run is in a period of its own project that lists it: the periods named
    *period* are looked up first, then the runs are matched as ``(project,
    run_number) IN`` the pairs those periods list. That subquery does not
    refer to the run, so every database reads the period's runs by index and
    each run by its key. A subquery comparing the period's project with the
    run's was run once per run on PostgreSQL and SQLite (a minute at 200k
    runs), and MariaDB, blind to how few periods match ``upper(name)``, read
    every run; with the periods' ids it reads only theirs.
    """
    conditions: list[Any] = []
    if project:
        conditions.append(_matching(Run.project, project))
    if period:
        ids = _period_ids(project, period, session=session)
        in_period = (
            select(Period.project, PeriodRun.run_number)
            .join(Period, Period.id == PeriodRun.period_id)
            .where(PeriodRun.period_id.in_(ids))
        )
        conditions.append(tuple_(Run.project, Run.run_number).in_(in_period))
    return conditions


def _period_ids(project: str | None, period: str, *, session: Session) -> list[int]:
    """The ids of the periods named *period*, in any letter case, of the
    projects *project* (a name or a pattern; any project without one).
    """
    query = select(Period.id).where(func.upper(Period.name) == period.upper())
    if project:
        query = query.where(_matching(Period.project, project))
    return list(session.scalars(query.order_by(Period.id)))


def _summaries(runs: Sequence[Run], *, session: Session) -> list[RunSummary]:
    periods = periods_of_runs(runs, session=session)
    return [RunSummary(run, periods.get(run.run_number, [])) for run in runs]


# Newest run first; the run number is unique, so it is its own tie-breaker.
RUN_KEYSET = Keyset(
    [SortKey(Run.__table__.c.run_number, descending=True)],
    Run.__table__.c.run_number,
    "-runNumber",
)


def list_runs_keyset(
    *,
    session: Session,
    project: str | None = None,
    period: str | None = None,
    cursor: str | None = None,
    limit: int = DEFAULT_LIMIT,
) -> KeysetPage:
    """Return the page of :class:`RunSummary`, newest run first, that follows
    *cursor* (the first page without one); *project* and *period* as for
    :func:`list_runs`.

    :raises InvalidInput: for a bad cursor or page size.
    """
    conditions = _run_conditions(project, period, session=session)
    statement = select(Run).where(*conditions)
    page = keyset_page(
        statement, RUN_KEYSET, session=session, cursor=cursor, limit=limit
    )
    return KeysetPage(_summaries(page.rows, session=session), page.next_cursor)


def periods_of_runs(runs: Iterable[Run], *, session: Session) -> dict[int, list[str]]:
    """The names of the periods of each run (of the run's own project), sorted."""
    projects = {run.run_number: run.project for run in runs}
    if not projects:
        return {}
    query = (
        select(PeriodRun.run_number, Period.project, Period.name)
        .join(Period, Period.id == PeriodRun.period_id)
        .where(PeriodRun.run_number.in_(sorted(projects)))
    )
    found: dict[int, list[str]] = {}
    for number, project, name in session.execute(query):
        if projects[number] == project:
            found.setdefault(number, []).append(name)
    return {number: sorted(names) for number, names in found.items()}


def get_run(run_number: int, *, session: Session) -> Run:
    """Return the run *run_number*.

    :raises InvalidInput: for a number past what a run number can be (the
        database could not even be asked).
    :raises RunNotFound: if the catalogue does not know it.
    """
    run = session.get(Run, typed_value(Run.run_number, run_number))
    if run is None:
        raise RunNotFound(run_number)
    return run


def run_datasets(run: Run, *, session: Session) -> list[Dataset]:
    """The datasets of *run* (its project, any stream and data type), by name."""
    query = select(Dataset).where(
        Dataset.run_number == run.run_number, Dataset.project_name == run.project
    )
    return list(session.scalars(query.order_by(Dataset.name)))


def list_periods(
    *,
    session: Session,
    level: int | None = None,
    project: str | None = None,
    created_since: dt.datetime | None = None,
    level_argument: str = "level",
) -> list[PeriodSummary]:
    """Return the periods, by project, level and name, with their counts.

    :param level: only periods of this level (1, 2 or 3).
    :param project: a project name, letter case included; or a pattern, in
        which ``%`` matches any run of characters, that ignores letter case.
    :param created_since: only periods created since then
        (:func:`period_created`): whose data began then or later.
    :param level_argument: the name the request gave *level* (for the
        message: ``level`` on the pages and the API, ``-periodLevel`` in AMI).
    :raises InvalidInput: for a level other than 1, 2 or 3.
    """
    conditions = []
    if level is not None:
        if level not in PERIOD_LEVELS:
            raise InvalidInput(f"{level_argument} must be 1, 2 or 3, got {level}")
        conditions.append(Period.level == level)
    if project:
        conditions.append(_matching(Period.project, project))
    if created_since is not None:
        conditions.append(period_created() >= created_since)
    order = (Period.project, Period.level, Period.name)
    periods = list(session.scalars(select(Period).where(*conditions).order_by(*order)))
    if not periods:
        return []
    runs = run_counts(conditions, session=session)
    errors = reprocessing_errors(conditions, session=session)
    return [PeriodSummary(p, runs.get(p.id, 0), errors.get(p.id, 0)) for p in periods]


def period_created() -> ColumnElement[Any]:
    """When a period was created, as AMI's ``createdSince`` reads it: when
    its data began, the first start of its runs the catalogue knows; when it
    knows none (COMA may list a period before its runs), when the catalogue
    first read the period (``Period.created``).
    """
    # Aliases, correlated to the period only: the queries of the periods'
    # counts join the period's runs themselves.
    member, run = aliased(PeriodRun), aliased(Run)
    first_start = (
        select(func.min(run.start_time))
        .join(member, member.run_number == run.run_number)
        .where(member.period_id == Period.id)
        .correlate(Period)
        .scalar_subquery()
    )
    return func.coalesce(first_start, Period.created, type_=UTCDateTime)


def run_counts(
    conditions: Sequence[ColumnElement[bool]], *, session: Session
) -> dict[int, int]:
    """``nRuns`` of each period that meets *conditions* (on :class:`Period`),
    by period id.

    The periods are selected by their conditions, not by a list of their
    ids: MariaDB looked up each id of a list of thousands (1.2 s for 2k
    periods), where it now reads the index of the periods' runs once.
    """
    query = (
        select(PeriodRun.period_id, func.count())
        .join(Period, Period.id == PeriodRun.period_id)
        .where(*conditions)
        .group_by(PeriodRun.period_id)
    )
    return {period_id: int(count) for period_id, count in session.execute(query)}


def reprocessing_errors(
    conditions: Sequence[ColumnElement[bool]], *, session: Session
) -> dict[int, int]:
    """``reprocessingErrors`` of each period that meets *conditions* (on
    :class:`Period`), by period id: the number of ProdSys tasks in
    ``failed``, ``broken`` or ``aborted`` whose input or output dataset
    belongs to a run of the period (and its project).

    The periods are selected by their conditions, not by a list of their
    ids: given thousands of ids, SQLite looked up every (period, run) pair of
    the list for each dataset of a failed task (140 s for 2k periods).
    """
    in_period = (
        select(Period.id.label("period_id"), Dataset.id.label("dataset_id"))
        .join(PeriodRun, PeriodRun.period_id == Period.id)
        .join(
            Dataset,
            (Dataset.run_number == PeriodRun.run_number)
            & (Dataset.project_name == Period.project),
        )
        .where(*conditions)
        .subquery()
    )
    failed = ProductionTask.status.in_(sorted(FAILED_TASK))
    as_output = (
        select(in_period.c.period_id, ProductionTask.task_id)
        .join(Dataset, Dataset.id == in_period.c.dataset_id)
        .join(ProductionTask, ProductionTask.task_id == Dataset.task_id)
        .where(failed)
    )
    as_input = (
        select(in_period.c.period_id, ProductionTask.task_id)
        .join(Dataset, Dataset.id == in_period.c.dataset_id)
        .join(ProductionTask, ProductionTask.input_dataset == Dataset.name)
        .where(failed)
    )
    pairs = union(as_output, as_input).subquery()
    query = select(pairs.c.period_id, func.count()).group_by(pairs.c.period_id)
    return {period_id: int(count) for period_id, count in session.execute(query)}
