"""Paths that read a whole table at production size (a million datasets,
hundreds of thousands of task runs): the projects a name pattern reaches,
the datasets of an AMI tag, the ingest rates and the home page's totals.
Each gives the same answers on every database, read in a way that an index
serves, or once instead of on every visit.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import Engine, select, text
from sqlalchemy.dialects import oracle
from sqlalchemy.orm import Session as OrmSession
from sqlalchemy.orm import sessionmaker
from statements import statements_of
from test_pages import CheckedClient, listed_datasets, visible_text
from test_scale_order import postgresql_plan

from catalog import amitags
from catalog.amitags import datasets_with_tag
from catalog.datasets import add_dataset, upsert_datasets
from catalog.models import AmiTag, TaskRun
from catalog.mql.narrowing import ProjectFinder, Reach
from catalog.nomenclature import name_columns
from catalog.operations import EpochMinutes, ingest_rates
from web import amitags as web_amitags
from web import pages

Factory = Callable[..., Any]

ZEE = "mc16_13TeV.361106.PowhegPythia8EvtGen_AZNLOCTEQ6L1_Zee"


def on_mariadb(engine: Engine) -> bool:
    return engine.dialect.name in ("mysql", "mariadb")


# --- the projects of a name pattern -------------------------------------------

# Three names per project: the scan must give each project once.
PROJECT_NAMES = [
    "mc16_13TeV.36110{n}.Sample.evgen.EVNT.e3601",
    "mc20_13TeV.36110{n}.Sample.evgen.EVNT.e3601",
    "mc23_13p6TeV.60118{n}.Sample.deriv.DAOD_PHYSLITE.e8514_p5855",
    "data15_13TeV.0027626{n}.physics_Main.daq.RAW",
    "user.jdoe.test{n}",
    "user.mc16.private{n}",
    "group.phys-higgs.mc16_13TeV.skim_v{n}",
]


@pytest.fixture
def projects(Session: sessionmaker[OrmSession]) -> None:  # noqa: N803
    with Session.begin() as session:
        for name in PROJECT_NAMES:
            for n in range(3):
                add_dataset(name.format(n=n), "prodsys", session=session)


@pytest.mark.usefixtures("projects")
def test_the_projects_a_pattern_reaches_are_the_same_on_every_database(
    Session: sessionmaker[OrmSession],  # noqa: N803
) -> None:
    with Session() as session:
        finder = ProjectFinder(session)
        found = {
            pattern: finder.reachable(pattern)
            for pattern in (
                "mc%",
                "MC16_13TEV.%",
                "mc16_13TeV.%Zee%",
                "u%",
                "_c2%",
                "x%",
            )
        }

    assert found == {
        "mc%": Reach(
            frozenset({"mc16_13TeV", "mc20_13TeV", "mc23_13p6TeV"}), frozenset()
        ),
        "MC16_13TEV.%": Reach(frozenset({"mc16_13TeV"}), frozenset()),
        "mc16_13TeV.%Zee%": Reach(frozenset(), frozenset({"mc16_13TeV"})),
        "u%": Reach(frozenset({"user.jdoe", "user.mc16"}), frozenset()),
        "_c2%": Reach(frozenset({"mc20_13TeV", "mc23_13p6TeV"}), frozenset()),
        "x%": Reach(frozenset(), frozenset()),
    }


@pytest.mark.usefixtures("projects")
def test_mariadb_reads_the_projects_with_a_loose_index_scan(
    Session: sessionmaker[OrmSession],  # noqa: N803
    catalog_engine: Engine,
) -> None:
    with statements_of(catalog_engine) as ran, Session() as session:
        ProjectFinder(session).reachable("mc16_13TeV.%")
        ProjectFinder(session).reachable("_c16%")

    assert len(ran) == 2
    if on_mariadb(catalog_engine):
        # A plain DISTINCT: MariaDB skips through the project_name index
        # ("Using index for group-by"); its recursive query read every row
        # of the letter's range, seconds at a million datasets.
        assert all("SELECT DISTINCT dataset.project_name" in sql for sql in ran)
        assert not any("RECURSIVE" in sql for sql in ran)
        with catalog_engine.connect() as connection:
            plan = connection.exec_driver_sql(
                "EXPLAIN SELECT DISTINCT project_name FROM dataset "
                "WHERE project_name >= 'm' AND project_name < 'n'"
            ).all()
        assert "ix_dataset_project_name" in str(plan)
    else:
        # One probe of the index per project (a skip scan).
        assert all("RECURSIVE" in sql for sql in ran)


# --- the datasets of an AMI tag ------------------------------------------------

TAG = "r10724"
WITH_TAG = [
    f"{ZEE}.recon.AOD.e3601_s3126_r10724",  # at the end
    f"{ZEE}.deriv.DAOD_PHYS.e3601_s3126_r10724_p4164",  # in the middle
    "mc20_13TeV.361106.Sample.recon.AOD.r10724",  # the whole version
    "mc20_13TeV.361107.Sample.deriv.DAOD_PHYS.r10724_p5001",  # at the start
    "mc20_13TeV.361108.Sample.deriv.DAOD_PHYS.e1_r10724_r10724",  # twice
]
WITHOUT_TAG = [
    f"{ZEE}.recon.AOD.e3601_s3126_r107240",  # a longer number
    f"{ZEE}.recon.AOD.e3601_s3126_r1072",  # a shorter one
    "mc16_13TeV.361106.r10724_Sample.recon.AOD.e3601_s3126",  # not in the version
    "user.jdoe.r10724_test",  # no version at all
    "data15_13TeV.00276262.physics_Main.daq.RAW",
]


@pytest.fixture(params=["one by one", "upserted"])
def tagged(Session: sessionmaker[OrmSession], request: pytest.FixtureRequest) -> None:  # noqa: N803
    """The datasets of :data:`WITH_TAG` and :data:`WITHOUT_TAG`, catalogued
    as a script does (``add_dataset``) or as ingesting does (in bulk).
    """
    with Session.begin() as session:
        session.add(AmiTag(tag=TAG, tag_type="r", tag_number=10724))
        names = WITH_TAG + WITHOUT_TAG
        if request.param == "one by one":
            for name in names:
                add_dataset(name, "prodsys", session=session)
        else:
            rows = [{**name_columns(n), "source": "prodsys"} for n in names]
            upsert_datasets(rows, session=session)


@pytest.mark.usefixtures("tagged")
def test_the_datasets_of_a_tag_are_those_whose_chain_holds_it(
    Session: sessionmaker[OrmSession],  # noqa: N803
) -> None:
    with Session() as session:
        page = datasets_with_tag(TAG, session=session, limit=3)
        rest = datasets_with_tag(TAG, session=session, offset=3, limit=3)
        past = datasets_with_tag(TAG, session=session, offset=6, limit=3)

    expected = sorted(WITH_TAG)
    assert [d.name for d in page.rows] == expected[:3]
    assert [d.name for d in rest.rows] == expected[3:]
    assert past.rows == []
    assert (page.total, page.counted, page.has_next) == (5, True, True)
    assert (rest.total, rest.counted, rest.has_next) == (5, True, False)
    assert past.total == 5


@pytest.mark.usefixtures("tagged")
def test_a_tag_in_many_datasets_is_counted_up_to_a_bound(
    Session: sessionmaker[OrmSession],  # noqa: N803
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(amitags, "MAX_COUNTED", 2)
    with Session() as session:
        first = datasets_with_tag(TAG, session=session, limit=2)
        second = datasets_with_tag(TAG, session=session, offset=2, limit=2)
        last = datasets_with_tag(TAG, session=session, offset=4, limit=2)

    expected = sorted(WITH_TAG)
    # More than 2 (at least 3): the count stopped, and the page goes on.
    assert (first.total, first.counted, first.has_next) == (3, False, True)
    assert [d.name for d in first.rows] == expected[:2]
    # Counted as far as the page needs.
    assert (second.total, second.counted, second.has_next) == (5, False, True)
    assert [d.name for d in second.rows] == expected[2:4]
    assert (last.total, last.counted, last.has_next) == (5, True, False)
    assert [d.name for d in last.rows] == expected[4:]


@pytest.mark.usefixtures("tagged")
def test_the_datasets_of_a_tag_are_a_range_of_its_rows(
    Session: sessionmaker[OrmSession],  # noqa: N803
    catalog_engine: Engine,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with statements_of(catalog_engine) as counted, Session() as session:
        datasets_with_tag(TAG, session=session)
    with statements_of(catalog_engine) as none, Session() as session:
        datasets_with_tag("e9999", session=session)
    monkeypatch.setattr(amitags, "MAX_COUNTED", 2)
    with statements_of(catalog_engine) as deep, Session() as session:
        datasets_with_tag(TAG, session=session, offset=1, limit=1)

    # No version is compared: the tag's rows give the ids, once, and the
    # page is read by name among them.
    assert not any(" LIKE " in sql for sql in counted + none + deep)
    assert [_reads_tag_rows(sql) for sql in counted] == [True, False]
    assert "count(" not in " ".join(counted)
    # A tag of no dataset: nothing more to read.
    assert len(none) == 1
    # Past the count, the page is found by the tag's rows again; MariaDB
    # reads them and sorts the page, not walking every name in order.
    assert [_reads_tag_rows(sql) for sql in deep] == [True, True]
    assert ("IGNORE INDEX FOR ORDER BY" in deep[1]) == on_mariadb(catalog_engine)
    if catalog_engine.dialect.name == "postgresql":
        plan = postgresql_plan(catalog_engine, counted[0])
        assert "Index Only Scan using pk_dataset_ami_tag" in plan, plan


def _reads_tag_rows(sql: str) -> bool:
    return re.search(r"FROM dataset_ami_tag\b", sql) is not None


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    app.test_client_class = CheckedClient  # the pages' (plots are not text)
    return app.test_client()


@pytest.mark.usefixtures("tagged")
def test_the_tag_page_says_more_than_the_bound(
    client: FlaskClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    exact = client.get(f"/amitags/{TAG}")
    monkeypatch.setattr(amitags, "MAX_COUNTED", 2)
    monkeypatch.setattr(web_amitags, "DATASETS_PER_PAGE", 2)
    bounded = client.get(f"/amitags/{TAG}")
    last = client.get(f"/amitags/{TAG}?offset=4")

    assert "5 datasets ; showing 1–5." in visible_text(exact)
    assert listed_datasets(exact) == sorted(WITH_TAG)
    assert "More than 2 datasets ; showing 1–2." in visible_text(bounded)
    assert listed_datasets(bounded) == sorted(WITH_TAG)[:2]
    assert "5 datasets ; showing 5–5." in visible_text(last)
    assert listed_datasets(last) == sorted(WITH_TAG)[4:]


# --- the ingest rates ------------------------------------------------------------

NOW = dt.datetime.now(dt.UTC).replace(second=0, microsecond=0)


def test_ingest_rates_are_summed_per_task_and_minute_by_the_database(
    Session: sessionmaker[OrmSession],  # noqa: N803
    catalog_engine: Engine,
) -> None:
    minute = NOW - dt.timedelta(minutes=10)
    second = dt.timedelta(seconds=1)
    ended = {
        # task: (when it ended, items)
        "prodsys": [
            (minute, 1),  # the first instant of the minute
            (minute + 59 * second + dt.timedelta(microseconds=999_999), 2),
            (minute + 60 * second, 4),  # the next minute
            (minute + 61 * second, 8),
        ],
        "tier0": [(minute + 30 * second, 16), (minute + 30 * second, 32)],
        "coma": [(minute - dt.timedelta(days=40), 64)],  # started long before
    }
    with Session.begin() as session:
        for name, runs in ended.items():
            for when, items in runs:
                started = when - 5 * second
                session.add(
                    TaskRun(task_name=name, started=started, ended=when, items=items)
                )
        session.add(TaskRun(task_name="ddm", started=NOW, ended=None, items=128))

    with statements_of(catalog_engine) as ran, Session() as session:
        # Another time zone for the session: minutes are counted in UTC.
        zone = {"postgresql": "SET TIME ZONE 'Asia/Kolkata'"}
        zone |= {
            "mysql": "SET time_zone = '+05:30'",
            "mariadb": "SET time_zone = '+05:30'",
        }
        if catalog_engine.dialect.name in zone:
            session.execute(text(zone[catalog_engine.dialect.name]))
        rates = ingest_rates(NOW - dt.timedelta(hours=48), session=session)

    assert rates == {
        "prodsys": {minute: 3, minute + 60 * second: 12},
        "tier0": {minute: 48},
    }
    assert all(t.tzinfo is not None for per in rates.values() for t in per)
    # Summed per task and minute in SQL, not a row per run into Python.
    (query,) = [sql for sql in ran if "task_run" in sql]
    assert "GROUP BY" in query
    assert "sum(task_run.items)" in query


def test_oracle_counts_the_minutes_from_whole_seconds() -> None:
    # No Oracle server runs here: the SQL is compiled. Oracle's DATE
    # arithmetic counts days, in which a minute is no exact fraction: the
    # seconds are rounded whole before they are divided into minutes, so
    # that 12:04:00 is not 723.999... minutes into the day.
    minute = EpochMinutes(TaskRun.ended)
    query = select(TaskRun.task_name, minute).group_by(TaskRun.task_name, minute)

    sql = str(query.compile(dialect=oracle.dialect()))

    seconds = "ROUND((CAST(task_run.ended AS DATE) - DATE '1970-01-01') * 86400)"
    assert f"FLOOR({seconds} / 60)" in sql
    assert sql.count("FLOOR(") == 2  # selected and grouped by


# --- the home page's totals ----------------------------------------------------------


def test_the_home_page_totals_are_kept_for_a_minute(
    client: FlaskClient,
    dataset_factory: Factory,
    catalog_engine: Engine,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    created = dt.datetime(2015, 6, 3, tzinfo=dt.UTC)
    dataset_factory(f"{ZEE}.evgen.EVNT.e3601", n_files=3, created=created)
    client.get("/plots/datasets-per-month.png")
    first = visible_text(client.get("/"))
    dataset_factory(f"{ZEE}.recon.AOD.e3601_s3126_r10724", n_files=2, created=created)

    with statements_of(catalog_engine) as ran:
        kept = visible_text(client.get("/"))
        client.get("/plots/datasets-per-month.png")
    monkeypatch.setattr(pages, "TOTALS_KEPT", 0.0, raising=False)
    fresh = visible_text(client.get("/"))

    assert "1 datasets" in first and "3 files" in first
    # A minute old at most: the second visit reads neither total again ...
    assert "1 datasets" in kept and "3 files" in kept
    assert not any("sum(dataset.n_files)" in sql for sql in ran)
    assert not any("GROUP BY" in sql and "created" in sql for sql in ran)
    # The latest datasets are not counted either: the page shows 20 of them.
    assert not [
        sql for sql in ran if re.search(r"count\(\*\)[^()]*FROM dataset\b", sql)
    ]
    # ... and the latest datasets are still read afresh.
    assert "mc16_13TeV.361106.PowhegPythia8EvtGen_AZNLOCTEQ6L1_Zee.recon.AOD" in kept
    assert "2 datasets" in fresh and "5 files" in fresh
