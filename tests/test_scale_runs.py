"""The runs of a period and the counts of the periods as a large catalogue
needs them, on SQLite, PostgreSQL and MariaDB: every run listed is one its
period (of the run's own project) lists, with and without a project or a
pattern, page after page, while the SQL reads the period's runs by index
rather than asking a subquery once per run (EXPLAIN on PostgreSQL and
SQLite); the periods' counts are asked by the periods' conditions, not a list
of their ids.

No timing: the slow plans this guards against were measured on 200k runs and
2k periods with overlapping run ranges (the report of the change that added
this file): 15-80 s for a page of runs of a period on PostgreSQL and SQLite,
140 s for the reprocessing errors of every period on SQLite.
"""

from __future__ import annotations

import re

import pytest
from sqlalchemy import Engine
from sqlalchemy.orm import Session as OrmSession
from sqlalchemy.orm import sessionmaker
from statements import Sent, statements_of

from catalog.models import Period, PeriodRun, Run
from catalog.mql.compiler import like_matches
from catalog.runs import list_periods, list_runs, list_runs_keyset

PROJECTS = ["data15_13TeV", "data16_13TeV", "data17_13TeV", "data15_hi"]
RUNS_PER_PROJECT = 60
LETTERS = "ABCD"


def run_numbers(index: int) -> range:
    """The runs of the project of *index*: one range each."""
    first = 200_000 + index * 1000
    return range(first, first + RUNS_PER_PROJECT)


def catalogue_periods() -> dict[tuple[str, str], list[int]]:
    """Periods of every project with overlapping run ranges: ``A``-``D`` of
    20 runs every 12, ``A1``-``D1`` of 5 runs inside them, one period named
    in lower case, and periods that list a run of another project or one the
    catalogue does not know (COMA may list them).
    """
    periods: dict[tuple[str, str], list[int]] = {}
    for index, project in enumerate(PROJECTS):
        numbers = list(run_numbers(index))
        for step, letter in enumerate(LETTERS):
            periods[project, letter] = numbers[step * 12 : step * 12 + 20]
            periods[project, f"{letter}1"] = numbers[step * 12 + 3 : step * 12 + 8]
    periods["data16_13TeV", "e"] = list(run_numbers(1))[::7]
    periods["data17_13TeV", "E"] = [*run_numbers(0)][:4] + [999_999]
    periods["data15_hi", "F1"] = [*run_numbers(2)][:3] + [*run_numbers(3)][:3]
    return periods


PERIODS = catalogue_periods()


@pytest.fixture
def runs(Session: sessionmaker[OrmSession]) -> dict[int, str]:  # noqa: N803
    """The catalogue's runs and their projects (the periods: PERIODS)."""
    projects = {n: p for i, p in enumerate(PROJECTS) for n in run_numbers(i)}
    with Session.begin() as session:
        session.add_all(Run(run_number=n, project=p) for n, p in projects.items())
        for (project, name), numbers in PERIODS.items():
            period = Period(project=project, name=name, level=len(name))
            period.runs = [PeriodRun(run_number=n) for n in numbers]
            session.add(period)
    return projects


def project_matches(project: str, wanted: str | None) -> bool:
    """Whether *project* is *wanted*: a pattern with ``%``, else exactly."""
    if wanted is None:
        return True
    return like_matches(project, wanted) if "%" in wanted else project == wanted


def expected_runs(runs: dict[int, str], project: str | None, period: str) -> list[int]:
    """The runs, newest first, of *project* that a period named *period* (any
    letter case) of their own project lists.
    """
    listed = {
        (period_project, number)
        for (period_project, name), numbers in PERIODS.items()
        if name.upper() == period.upper()
        for number in numbers
    }
    return sorted(
        (
            number
            for number, run_project in runs.items()
            if (run_project, number) in listed and project_matches(run_project, project)
        ),
        reverse=True,
    )


def expected_periods(runs: dict[int, str], number: int) -> list[str]:
    """The names of the periods of run *number*'s project that list it."""
    return sorted(
        name
        for (project, name), numbers in PERIODS.items()
        if project == runs[number] and number in numbers
    )


SELECTIONS = [
    (None, "A"),
    (None, "a1"),
    (None, "B1"),
    (None, "E"),
    ("data16_13TeV", "B"),
    ("data16_13TeV", "E"),
    ("data17_13TeV", "e"),
    ("DATA1%", "c"),
    ("%13tev", "D1"),
    ("%_hi", "f1"),
    (None, "F1"),
    ("data16_13tev", "B"),
    (None, "Z"),
]


@pytest.mark.parametrize(("project", "period"), SELECTIONS)
def test_the_runs_of_a_period_are_those_it_lists_in_the_run_s_project(
    Session: sessionmaker[OrmSession],  # noqa: N803
    runs: dict[int, str],
    project: str | None,
    period: str,
) -> None:
    expected = expected_runs(runs, project, period)
    with Session() as session:
        pages = [
            list_runs(
                session=session, project=project, period=period, offset=o, limit=7
            )
            for o in range(0, max(len(expected), 1), 7)
        ]
        listed = [summary for page in pages for summary in page.rows]

    assert [s.run.run_number for s in listed] == expected
    assert {page.total for page in pages} == {len(expected)}
    assert all(s.periods == expected_periods(runs, s.run.run_number) for s in listed)


@pytest.mark.parametrize(("project", "period"), SELECTIONS)
def test_the_keyset_pages_of_a_period_hold_each_of_its_runs_once(
    Session: sessionmaker[OrmSession],  # noqa: N803
    runs: dict[int, str],
    project: str | None,
    period: str,
) -> None:
    listed: list[int] = []
    cursor = None
    with Session() as session:
        while True:
            page = list_runs_keyset(
                session=session, project=project, period=period, cursor=cursor, limit=6
            )
            listed += [summary.run.run_number for summary in page.rows]
            if (cursor := page.next_cursor) is None:
                break

    assert listed == expected_runs(runs, project, period)


def plan(engine: Engine, statement: Sent) -> str:
    """The plan of *statement*: PostgreSQL's where it may read no table whole
    (a small table would be), SQLite's EXPLAIN QUERY PLAN.
    """
    explain = "EXPLAIN" if engine.dialect.name == "postgresql" else "EXPLAIN QUERY PLAN"
    with engine.connect() as connection:
        if engine.dialect.name == "postgresql":
            connection.exec_driver_sql("SET LOCAL enable_seqscan = off")
        sql = f"{explain} {statement}"
        rows = connection.exec_driver_sql(sql, statement.parameters).all()
        connection.rollback()
    return "\n".join(str(row[-1]) for row in rows)


@pytest.mark.parametrize("project", [None, "data16_13TeV", "DATA1%"])
def test_the_runs_of_a_period_are_read_without_a_subquery_per_run(
    catalog_engine: Engine,
    Session: sessionmaker[OrmSession],  # noqa: N803
    runs: dict[int, str],
    project: str | None,
) -> None:
    if catalog_engine.dialect.name not in ("postgresql", "sqlite"):
        pytest.skip("the plan is read on PostgreSQL and SQLite")
    with statements_of(catalog_engine) as sent, Session() as session:
        list_runs(session=session, project=project, period="b")
        list_runs_keyset(session=session, project=project, period="b", limit=5)
    of_runs = [s for s in sent if re.search(r"FROM run\b", s)]
    plans = [plan(catalog_engine, statement) for statement in of_runs]

    assert len(plans) == 3  # the count and the page; the keyset page
    for shown in plans:
        # A correlated subquery: "SubPlan" (PostgreSQL), "CORRELATED" (SQLite).
        assert "SubPlan" not in shown
        assert "CORRELATED" not in shown
    if catalog_engine.dialect.name == "sqlite":
        # Each run of the period is read by its key (PostgreSQL plans these
        # few rows as it likes; on 200k runs it reads pk_run per run).
        assert all(re.search(r"SEARCH run USING .*rowid=", p) for p in plans)


# --- the periods and their counts -------------------------------------------------


@pytest.mark.parametrize(
    ("level", "project"), [(None, None), (2, None), (None, "DATA16%"), (1, "data15_hi")]
)
def test_each_period_counts_the_runs_it_lists(
    Session: sessionmaker[OrmSession],  # noqa: N803
    runs: dict[int, str],
    level: int | None,
    project: str | None,
) -> None:
    expected = {
        key: len(numbers)
        for key, numbers in PERIODS.items()
        if level in (None, len(key[1])) and project_matches(key[0], project)
    }
    with Session() as session:
        found = list_periods(session=session, level=level, project=project)

    assert {(s.period.project, s.period.name): s.n_runs for s in found} == expected
    assert {s.reprocessing_errors for s in found} == {0}


def test_the_counts_of_the_periods_are_asked_without_a_list_of_their_ids(
    catalog_engine: Engine,
    Session: sessionmaker[OrmSession],  # noqa: N803
    runs: dict[int, str],
) -> None:
    # Given thousands of ids, SQLite looked up every (period, run) pair of the
    # list for each dataset of a failed task.
    with statements_of(catalog_engine) as sent, Session() as session:
        found = list_periods(session=session)

    assert len(found) == len(PERIODS)
    assert max(len(s.parameters or ()) for s in sent) < len(PERIODS) / 2
