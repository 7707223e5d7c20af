"""Revision 0015 on a catalogue with datasets: each dataset's version gives
its rows of ``dataset_ami_tag``, one per tag, batch after batch, so that the
datasets of a tag are found by the tag. On SQLite, PostgreSQL and MariaDB.
"""

from __future__ import annotations

from sqlalchemy import Engine, column, insert, select, table
from test_migration_tags import row

import migrations

TAGGED = table("dataset_ami_tag", column("tag"), column("dataset_id"))

VERSIONS = {
    1: "e3601_s3126_r10724_p4164",
    2: "r10724",
    3: "e1_r10724_r10724",  # a tag twice: one row
    4: "e3601_s3126_tid01234_00",  # parts that are no tags
    5: None,  # no version
}


# Datasets past the migration's first batch (10,000 datasets).
LAST = 10_006


def test_each_dataset_gets_the_tags_of_its_version(empty_engine: Engine) -> None:
    migrations.upgrade(empty_engine, "0014")
    versions = {**VERSIONS, **dict.fromkeys(range(6, LAST), "p1"), LAST: "f2_m3"}
    rows = [row("dataset", id=i, name=f"d{i}", version=v) for i, v in versions.items()]
    with empty_engine.begin() as connection:
        connection.execute(insert(table("dataset", *map(column, rows[0]))), rows)
    migrations.upgrade(empty_engine, "0015")

    with empty_engine.connect() as connection:
        found = set(connection.execute(select(TAGGED.c.dataset_id, TAGGED.c.tag)))
    assert {(i, t) for i, t in found if t == "p1"} == {
        (i, "p1") for i in range(6, LAST)
    }
    assert {(i, t) for i, t in found if t != "p1"} == {
        (1, "e3601"), (1, "s3126"), (1, "r10724"), (1, "p4164"),
        (2, "r10724"),
        (3, "e1"), (3, "r10724"),
        (4, "e3601"), (4, "s3126"),
        (LAST, "f2"), (LAST, "m3"),
    }  # fmt: skip
