"""Revision 0014 on a catalogue with TAGs: one TAG record is left a dataset
(the newest of twins, its events with it), and each TAG gets the totals of
the files it was made from, so that the tags task rebuilds only the TAGs
out of step with their files. On SQLite, PostgreSQL and MariaDB.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from sqlalchemy import Engine, column, insert, select, table

import migrations
from catalog.db import Base

NOW = dt.datetime(2026, 12, 7)
DATASET = table(
    "dataset",
    *(column(c) for c in ("id", "name", "scope", "source", "project_name")),
    *(column(c) for c in ("ami_status", "n_files", "total_events", "total_size")),
    *(column(c) for c in ("ddm_incomplete", "created", "last_modified")),
)
TAG = table(
    "tag_database",
    *(column(c) for c in ("id", "dataset_id", "store", "location", "schema_json")),
    *(column(c) for c in ("n_events", "status", "created", "updated")),
)


def row(table_name: str, **values: Any) -> dict[str, Any]:
    """A row of *table_name* at revision 0013 (its columns are those of the
    models): *values*, and a placeholder in each other column that takes
    no NULL.
    """
    placeholders = {
        str: "g",
        bool: False,
        int: 1,
        float: 1.0,
        object: NOW.replace(tzinfo=dt.UTC),
    }
    for c in Base.metadata.tables[table_name].columns:
        if not c.nullable and not c.primary_key:
            values.setdefault(c.name, placeholders[c.type.python_type])
    return values


def schema(*guids: str) -> str:
    return json.dumps({"files": [{"guid": g, "lfn": f"{g}.root"} for g in guids]})


def test_twin_tags_leave_the_newest_and_tags_get_their_files_totals(
    empty_engine: Engine,
) -> None:
    migrations.upgrade(empty_engine, "0013")
    common = {"scope": "mc16_13TeV", "source": "prodsys", "project_name": "mc16_13TeV"}
    counts = {"ami_status": "VALID", "n_files": 3, "total_events": 60}
    times = {"ddm_incomplete": False, "created": NOW, "last_modified": NOW}
    tag_times = {"store": "npy", "status": "ready", "created": NOW, "updated": NOW}
    with empty_engine.begin() as connection:
        connection.execute(
            insert(DATASET),
            [
                {"id": i, "name": f"d{i}", **common, **counts, "total_size": 6, **times}
                for i in (1, 2)
            ],
        )
        connection.execute(
            insert(Base.metadata.tables["file"]),
            [
                row("file", dataset_id=d, guid=g, lfn=f"{g}.root", events=e, size=s)
                for d, g, e, s in (
                    (1, "a", 10, 1), (1, "b", 20, 2), (1, "c", 30, 3),
                    (2, "x", 5, 100), (2, "y", None, 200),
                )
            ],
        )  # fmt: skip
        connection.execute(
            insert(TAG),
            [
                {"id": 7, "dataset_id": 1, "location": "old", "n_events": 30,
                 "schema_json": schema("a", "b"), **tag_times},
                {"id": 9, "dataset_id": 1, "location": "new", "n_events": 60,
                 "schema_json": schema("a", "b", "c"), **tag_times},
                {"id": 8, "dataset_id": 2, "location": "two", "n_events": 5,
                 "schema_json": schema("x", "y", "z"), **tag_times},
            ],
        )  # fmt: skip
        connection.execute(
            insert(Base.metadata.tables["tag_event"]),
            [
                row("tag_event", tag_database_id=t, seq=s)
                for t, s in ((7, 0), (7, 1), (9, 0), (8, 0))
            ],
        )

    migrations.upgrade(empty_engine)

    with empty_engine.connect() as connection:
        sources = [column(c) for c in ("source_files", "source_events", "source_size")]
        tags = connection.execute(
            select(column("id"), column("location"), *sources)
            .select_from(table("tag_database"))
            .order_by(column("id"))
        ).all()
        events = connection.execute(
            select(column("tag_database_id")).select_from(table("tag_event"))
        ).all()
    assert [tuple(row) for row in tags] == [(8, "two", 2, 5, 300), (9, "new", 3, 60, 6)]
    assert sorted(row[0] for row in events) == [8, 9]
