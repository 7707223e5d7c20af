"""The search page sorted by a nullable field, on SQLite, PostgreSQL and
MariaDB: a page at an offset shows the rows one ORDER BY would (NULLs
last either way, ties by id in the direction of the sort) wherever the
offset falls, before the NULLs, at them or among them, while the database
reads the field's values, then its NULLs, each as a range of its index:
on PostgreSQL no plan sorts the rows (a plain index read backwards gives
the NULLs first), and on MariaDB no ORDER BY leads with ``IS NULL``
(which no index serves).

No timing: the sorts these guard against were measured on a million
datasets (the report of the change that added this file).
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import Engine
from sqlalchemy.orm import Session as OrmSession
from sqlalchemy.orm import sessionmaker
from statements import Sent, statements_of
from test_pages import CheckedClient, link, listed_datasets
from test_scale_order import dataset_pages

from catalog.config import load_config
from catalog.datasets import DatasetQuery, search_datasets
from web.app import create_app

START = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
ATTRIBUTE = {"runNumber": "run_number", "created": "created", "ddmOpen": "ddm_open"}
# Seven datasets of three runs, then five simulated ones (no run number).
VALUED = 7


@pytest.fixture
def client(catalog_engine: Engine, tmp_path: Path) -> FlaskClient:
    config = load_config(env={}, data_dir=str(tmp_path))
    app: Flask = create_app(config, engine=catalog_engine)
    app.test_client_class = CheckedClient
    return app.test_client()


@pytest.fixture
def datasets(dataset_factory: Callable[..., Any]) -> list[Any]:
    """Twelve datasets, catalogued in a shuffled order so that ids do not
    follow the runs: seven of runs 350001 (three), 350002 and 350003 (two
    each), five simulated, without a run number. They were created on
    three days, and DDM has said whether two thirds of them are open.
    """
    runs = [350002, None, 350001, 350003, None, 350001, 350002]
    runs += [None, 350003, None, 350001, None]
    return [
        dataset_factory(
            f"mc16_13TeV.{361000 + number}.Sample{number}.evgen.EVNT.e{number}"
            if run is None
            else f"data18_13TeV.{run:08d}.physics_Main.merge.AOD.f{number}_m1",
            created=START + dt.timedelta(days=number % 3),
            ddm_open=[None, True, False][number % 3],
        )
        for number, run in enumerate(runs)
    ]


def expected_names(datasets: Sequence[Any], sort: Sequence[str]) -> list[str]:
    """The names in the order of the fields *sort*, NULLs last either way,
    ties by id in the direction of the last field.
    """
    ordered = sorted(datasets, key=lambda d: d.id, reverse=sort[-1].startswith("-"))
    for key in reversed(sort):
        attribute = ATTRIBUTE[key.lstrip("-")]
        valued = [d for d in ordered if getattr(d, attribute) is not None]
        valued.sort(key=lambda d: getattr(d, attribute), reverse=key.startswith("-"))
        ordered = valued + [d for d in ordered if getattr(d, attribute) is None]
    return [d.name for d in ordered]


def args_of(url: str) -> dict[str, list[str]]:
    return parse_qs(urlsplit(url).query)


# offset, limit: before the NULLs, up to them, across them, at them, among
# them, and up to the last dataset.
PAGES = [(0, 3), (4, 3), (5, 4), (VALUED, 3), (9, 2), (9, 5)]


@pytest.mark.parametrize("sort", ["runNumber", "-runNumber"])
@pytest.mark.parametrize(("offset", "limit"), PAGES)
def test_a_page_at_an_offset_shows_the_datasets_in_order_nulls_last(
    client: FlaskClient, datasets: list[Any], sort: str, offset: int, limit: int
) -> None:
    everything = expected_names(datasets, [sort])
    query = {"sort": sort, "offset": str(offset), "limit": str(limit)}

    response = client.get("/datasets", query_string=query)

    assert response.status_code == 200
    assert listed_datasets(response) == everything[offset : offset + limit]


@pytest.mark.parametrize(
    "sort", ["runNumber,-created", "-runNumber,created", "ddmOpen", "-ddmOpen"]
)
@pytest.mark.parametrize(("offset", "limit"), PAGES)
def test_other_sorts_with_nulls_page_by_offset_in_the_same_order(
    client: FlaskClient, datasets: list[Any], sort: str, offset: int, limit: int
) -> None:
    everything = expected_names(datasets, sort.split(","))
    query = {"sort": sort, "offset": str(offset), "limit": str(limit)}

    response = client.get("/datasets", query_string=query)

    assert listed_datasets(response) == everything[offset : offset + limit]


@pytest.mark.parametrize("sort", ["runNumber", "-runNumber"])
@pytest.mark.parametrize("offset", [0, 4, VALUED])
def test_the_next_link_goes_on_after_the_last_dataset_shown(
    client: FlaskClient, datasets: list[Any], sort: str, offset: int
) -> None:
    everything = expected_names(datasets, [sort])
    query = {"sort": sort, "offset": str(offset), "limit": "2"}
    first = client.get("/datasets", query_string=query)

    second = client.get(link(first, "next"))

    assert "after" in args_of(link(first, "next"))
    assert listed_datasets(second) == everything[offset + 2 : offset + 4]


# --- what the database is asked -------------------------------------------------------


def index_plan(engine: Engine, statement: Sent) -> str:
    """PostgreSQL's plan of *statement* where it may neither read a table
    whole nor sort what an index can give in order (a small table would be
    read and sorted): a Sort node is left where no index gives the order.
    """
    with engine.connect() as connection:
        for setting in ("enable_seqscan", "enable_bitmapscan", "enable_sort"):
            connection.exec_driver_sql(f"SET LOCAL {setting} = off")
        explain = f"EXPLAIN {statement}"
        rows = connection.exec_driver_sql(explain, statement.parameters).all()
        connection.rollback()
    return "\n".join(row[0] for row in rows)


@pytest.mark.parametrize("sort", ["runNumber", "-runNumber"])
@pytest.mark.parametrize(("offset", "limit"), [(0, 3), (5, 4), (9, 2), (12, 3)])
def test_a_page_at_an_offset_reads_the_values_then_the_nulls_from_the_index(
    Session: sessionmaker[OrmSession],  # noqa: N803
    catalog_engine: Engine,
    datasets: list[Any],
    sort: str,
    offset: int,
    limit: int,
) -> None:
    query = DatasetQuery(sort=[sort], offset=offset, limit=limit)
    with statements_of(catalog_engine) as sent, Session() as session:
        page = search_datasets(query, session=session)

    assert [d.name for d in page.rows] == expected_names(datasets, [sort])[
        offset : offset + limit
    ]
    reads = dataset_pages(sent)
    assert reads
    for sql in reads:
        assert not re.search(r"ORDER BY \S+ IS NULL", sql), sql
        assert "NULLS LAST" not in sql, sql
    if catalog_engine.dialect.name == "postgresql":
        for sql in reads:
            plan = index_plan(catalog_engine, sql)
            # An Incremental Sort orders the ties of each run number by id
            # as the index gives them; a Sort would read every row first.
            assert not re.search(r"^\s*(->\s*)?Sort\s+\(", plan, re.MULTILINE), plan
