"""A catalogue that holds data keeps it through the migrations, down and up
again: SQLite rebuilds a table to alter it, which must not cascade into the
rows that refer to it. On SQLite, PostgreSQL and MariaDB.
"""

from __future__ import annotations

import sqlite3
from typing import Any

import pytest
from sqlalchemy import Engine, insert, select, text

import migrations
from catalog.db import Base, create_catalog_engine, session_factory
from catalog.models import Dataset, TagDatabase
from ingest.seed import seed_catalog
from ingest.world import build_world
from migrations import ForeignKeysBroken

# The rows that refer to a dataset, and TAGs (rebuilt by 0011 and 0014).
KEPT = (
    "dataset",
    "file",
    "file_lumi_range",
    "provenance_edge",
    "tag_database",
    "tag_event",
)


def counts(engine: Engine) -> dict[str, int]:
    with engine.connect() as connection:
        return {
            name: connection.scalar(text(f"SELECT count(*) FROM {name}")) or 0
            for name in KEPT
        }


def add_tag(engine: Engine) -> None:
    """A TAG of the first dataset, with two events."""
    with session_factory(engine).begin() as session:
        dataset = session.scalars(select(Dataset).order_by(Dataset.id)).first()
        assert dataset is not None
        tag = TagDatabase(dataset=dataset, store="npy", location="tags/1")
        session.add(tag)
        session.flush()
        session.execute(
            insert(Base.metadata.tables["tag_event"]),
            [event_row(tag.id, seq) for seq in (0, 1)],
        )


def event_row(tag_id: int, seq: int) -> dict[str, Any]:
    values: dict[str, Any] = {"tag_database_id": tag_id, "seq": seq}
    fillers = {str: "g", int: 1, float: 1.0, bool: False}
    for column in Base.metadata.tables["tag_event"].columns:
        if not column.nullable:
            values.setdefault(column.name, fillers[column.type.python_type])
    return values


def test_a_catalogue_keeps_its_data_down_to_0010_and_up_again(catalog_engine):
    with session_factory(catalog_engine).begin() as session:
        seed_catalog(build_world(), session=session)
    add_tag(catalog_engine)
    before = counts(catalog_engine)
    assert all(before.values()), before

    migrations.downgrade(catalog_engine, "0010")
    at_0010 = counts(catalog_engine)
    migrations.upgrade(catalog_engine)

    assert at_0010 == before
    assert counts(catalog_engine) == before
    assert migrations.current(catalog_engine) == migrations.head()


def test_rows_left_referring_to_nothing_stop_the_upgrade_of_sqlite(tmp_path):
    """A keyword of a dataset that is gone (foreign keys were off when an
    older hepcat deleted it): the migrations would keep it, and the check
    after them refuses to commit, naming the table.
    """
    path = tmp_path / "catalog.sqlite"
    engine = create_catalog_engine(f"sqlite:///{path}")
    migrations.upgrade(engine, "0010")
    with sqlite3.connect(path) as connection:  # foreign keys off by default
        connection.execute("INSERT INTO dataset_keyword VALUES (999, 'lost')")

    with pytest.raises(ForeignKeysBroken, match="1 row.* table dataset_keyword "):
        migrations.upgrade(engine)

    assert migrations.current(engine) == "0010"
    with engine.connect() as connection:  # and foreign keys are on again
        assert connection.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
    engine.dispose()
