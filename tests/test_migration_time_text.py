"""Revision 0016 on a SQLite catalogue whose bulk writes gave a time on a
whole second without its fraction (``2015-06-01 09:00:00``, which sorts
before ``2015-06-01 09:00:00.000000`` as text): its times get the six
digits, so that a time asked for finds the rows of that very second; and
the bulk writes now write them. On SQLite; elsewhere a time is a time and
the revision does nothing.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import Engine, select, text
from sqlalchemy.orm import Session

import migrations
from catalog.models import Run
from catalog.upsert import upsert

START = dt.datetime(2015, 6, 1, 9, 0, tzinfo=dt.UTC)


def stored(engine: Engine, query: str) -> list[str]:
    with engine.connect() as connection:
        return [str(value) for value in connection.scalars(text(query))]


def test_a_whole_second_written_before_gets_its_fraction(empty_engine: Engine) -> None:
    migrations.upgrade(empty_engine, "0015")
    with empty_engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO run (run_number, project, start_time, end_time, modified)"
                " VALUES (266904, 'data15_13TeV', :start, NULL, :start)"
            ),
            {"start": "2015-06-01 09:00:00"},
        )
    migrations.upgrade(empty_engine, "0016")

    texts = stored(empty_engine, "SELECT start_time FROM run")
    moments = stored(empty_engine, "SELECT modified FROM run")
    if empty_engine.dialect.name == "sqlite":
        assert texts == moments == ["2015-06-01 09:00:00.000000"]
    assert runs_since(empty_engine, START) == [266904]


def runs_since(engine: Engine, moment: dt.datetime) -> list[int]:
    with Session(engine) as session:
        query = select(Run.run_number).where(Run.start_time >= moment)
        return list(session.scalars(query))


def test_the_bulk_writes_give_a_whole_second_its_fraction(
    catalog_engine: Engine,
) -> None:
    row = {
        "run_number": 266904,
        "project": "data15_13TeV",
        "start_time": START,
        "modified": START,
    }
    with Session(catalog_engine) as session, session.begin():
        upsert(session, Run.__table__, [row], ["run_number"])

    if catalog_engine.dialect.name == "sqlite":
        assert stored(catalog_engine, "SELECT start_time FROM run") == [
            "2015-06-01 09:00:00.000000"
        ]
    assert runs_since(catalog_engine, START) == [266904]
