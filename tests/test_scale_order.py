"""Dataset lists ordered and paged as a large catalogue needs them, on
SQLite, PostgreSQL and MariaDB: every page shows the rows one full query
would, NULLs last either way, while the SQL is what an index serves: a page
after a cursor is a range of the sort key's index (EXPLAIN on PostgreSQL),
a sort by the unique name has no id to break ties (MariaDB filesorts
``name, id``), a nullable field sorts with ``NULLS LAST`` where the
database has it, and "did you mean" reads a range of the names.

No timing: the slow plans these guard against were measured on a million
datasets (the report of the change that added this file).
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import Engine
from sqlalchemy.orm import Session as OrmSession
from sqlalchemy.orm import sessionmaker
from statements import Sent, statements_of
from test_api import API, cursor_of, walked_items

from catalog.datasets import DatasetQuery, search_datasets, similar_names

SORTS = ["logicalDatasetName", "-totalEvents", "created", "-created", "runNumber"]
SORTS += ["-runNumber", "ddmOpen", "-ddmOpen"]
ATTRIBUTE = {
    "logicalDatasetName": "name",
    "totalEvents": "total_events",
    "created": "created",
    "runNumber": "run_number",
    "ddmOpen": "ddm_open",
}
# The index a page reads: a yes/no field has none, its datasets are read by id.
INDEXED = {"ddmOpen": "id"}
START = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


@pytest.fixture
def datasets(dataset_factory: Callable[..., Any]) -> list[Any]:
    """Datasets with ties in every sort field; every third is simulated (it
    has no run number), the others are of four runs; DDM has not said
    whether a fifth are open.
    """
    return [
        dataset_factory(
            f"mc16_13TeV.{361000 + number}.Sample{number}.evgen.EVNT.e{number}"
            if number % 3 == 0
            else f"data18_13TeV.{350000 + number % 4:08d}.physics_Main.merge.AOD"
            f".f{number}_m1",
            total_events=number % 5 * 1000,
            created=START + dt.timedelta(days=number % 6),
            ddm_open=[None, True, False, True, False][number % 5],
        )
        for number in range(20)
    ]


def expected_names(datasets: list[Any], sort: str) -> list[str]:
    """The names in the order of *sort*: ties by id in its direction, NULLs
    last.
    """
    attribute = ATTRIBUTE[sort.lstrip("-")]
    by_id = sorted(datasets, key=lambda d: d.id, reverse=sort.startswith("-"))
    valued = [d for d in by_id if getattr(d, attribute) is not None]
    valued.sort(key=lambda d: getattr(d, attribute), reverse=sort.startswith("-"))
    nulls = [d for d in by_id if getattr(d, attribute) is None]
    return [d.name for d in valued + nulls]


def dataset_pages(sent: list[Sent]) -> list[Sent]:
    """The statements that read a page of datasets."""
    return [
        sql
        for sql in sent
        if re.search(r"FROM dataset\b", sql) and "ORDER BY" in sql and "LIMIT" in sql
    ]


def postgresql_plan(engine: Engine, statement: Sent) -> str:
    """PostgreSQL's plan of *statement* where it may read no table whole
    (a small table would be): what an index can do for it.
    """
    with engine.connect() as connection:
        connection.exec_driver_sql("SET LOCAL enable_seqscan = off")
        connection.exec_driver_sql("SET LOCAL enable_bitmapscan = off")
        explain = f"EXPLAIN {statement}"
        rows = connection.exec_driver_sql(explain, statement.parameters).all()
        connection.rollback()
    return "\n".join(row[0] for row in rows)


@pytest.mark.parametrize("sort", SORTS)
def test_every_dataset_is_on_one_page_in_order(
    client: FlaskClient, datasets: list[Any], sort: str
) -> None:
    # Pages of 4 cross from the run numbers into their NULLs mid-page.
    items = walked_items(client, f"{API}/datasets?sort={sort}&limit=4", 4)

    assert [i["logicalDatasetName"] for i in items] == expected_names(datasets, sort)


@pytest.mark.parametrize("sort", SORTS)
def test_a_page_after_a_cursor_is_a_range_of_the_sort_index(
    client: FlaskClient, catalog_engine: Engine, datasets: list[Any], sort: str
) -> None:
    if catalog_engine.dialect.name != "postgresql":
        pytest.skip("the plan is read on PostgreSQL")
    first = client.get(f"{API}/datasets", query_string={"sort": sort, "limit": 3})
    with statements_of(catalog_engine) as sent:
        second = client.get(first.json["next"])

    assert second.status_code == 200
    plan = postgresql_plan(catalog_engine, dataset_pages(sent)[0])
    column = INDEXED.get(sort.lstrip("-"), ATTRIBUTE[sort.lstrip("-")])
    assert re.search(rf"Index Cond: .*\b{column}\b\S* [<>]=? ", plan), plan


def test_pages_by_name_have_no_tiebreak_and_old_cursors_still_work(
    client: FlaskClient, catalog_engine: Engine, datasets: list[Any]
) -> None:
    names = sorted(d.name for d in datasets)
    fifth = next(d for d in datasets if d.name == names[4])
    # A cursor as hepcat made it before: the name, then the id.
    old_cursor = cursor_of({"o": "name", "k": [fifth.name, fifth.id]})
    with statements_of(catalog_engine) as sent:
        response = client.get(
            f"{API}/datasets", query_string={"cursor": old_cursor, "limit": 3}
        )
        client.get("/datasets")

    assert [i["logicalDatasetName"] for i in response.json["items"]] == names[5:8]
    pages = dataset_pages(sent)
    orders = {re.findall(r"ORDER BY (.*?)\s+LIMIT", sql)[0] for sql in pages}
    assert len(pages) == 2
    assert orders == {"dataset.name ASC"}


@pytest.mark.parametrize("sort", ["runNumber", "-runNumber"])
def test_the_search_page_sorts_a_nullable_field_as_an_index_can(
    Session: sessionmaker[OrmSession],  # noqa: N803
    catalog_engine: Engine,
    datasets: list[Any],
    sort: str,
) -> None:
    with statements_of(catalog_engine) as sent, Session() as session:
        page = search_datasets(DatasetQuery(sort=[sort], limit=1000), session=session)

    assert [d.name for d in page.rows] == expected_names(datasets, sort)
    values, nulls = dataset_pages(sent)[:2]
    direction = "DESC" if sort.startswith("-") else "ASC"
    # The run numbers, then their NULLs: each an index range, not one sort
    # of the table (NULLs last would be one on MariaDB and, descending, on
    # PostgreSQL).
    assert "dataset.run_number IS NOT NULL" in values
    assert f"ORDER BY dataset.run_number {direction}, dataset.id {direction}" in values
    assert "dataset.run_number IS NULL" in nulls
    assert f"ORDER BY dataset.id {direction}" in nulls
    assert "CASE" not in values + nulls


def test_did_you_mean_reads_a_range_of_the_names(
    Session: sessionmaker[OrmSession],  # noqa: N803
    catalog_engine: Engine,
    dataset_factory: Callable[..., Any],
) -> None:
    near = "mc16_13TeV.361106.PowhegPythia8EvtGen_Zee.evgen.EVNT.e3601"
    for name in (near, "mc16_13TeV.3611067.PowhegPythia8EvtGen_Zee.evgen.EVNT.e3601"):
        dataset_factory(name)

    with statements_of(catalog_engine) as sent, Session() as session:
        found = similar_names(f"{near}_r1", session=session)
        none = similar_names("mc16_13TeV.361107.Sample_Zee", session=session)

    assert found[0] == near
    assert none == []
    if catalog_engine.dialect.name == "postgresql":
        plan = postgresql_plan(catalog_engine, sent[0])
        assert re.search(r"Index Cond: .*\bname\b\S* >= ", plan), plan
