"""The catalogue schema: migrations round-trip on every database, and the
models and the migrations describe the same schema.
"""

from __future__ import annotations

import datetime as dt

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine, inspect, text

import migrations
from catalog.db import EXACT_COLLATION, MAX_IDENTIFIER, Base


def tables(engine: Engine) -> set[str]:
    return set(inspect(engine).get_table_names()) - {"alembic_version"}


def test_migrations_go_base_head_base_head(empty_engine):
    migrations.upgrade(empty_engine)
    assert migrations.current(empty_engine) == migrations.head()
    assert tables(empty_engine) == set(Base.metadata.tables)

    migrations.downgrade(empty_engine, "base")
    assert migrations.current(empty_engine) is None
    assert tables(empty_engine) == set()

    migrations.upgrade(empty_engine)
    assert migrations.current(empty_engine) == migrations.head()
    assert tables(empty_engine) == set(Base.metadata.tables)


def test_models_and_migrations_agree(catalog_engine):
    with catalog_engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        differences = compare_metadata(context, Base.metadata)

    assert differences == []


def test_the_usual_sorts_of_the_dataset_lists_have_an_index(catalog_engine):
    # A page of a list sorted by one of these is a range of an index
    # (catalog.keyset); without one, every page sorts the whole table.
    inspector = inspect(catalog_engine)
    keys = [*inspector.get_indexes("dataset")]
    keys += inspector.get_unique_constraints("dataset")
    leading = {str(key["column_names"][0]) for key in keys}

    sorts = {"name", "created", "last_modified", "total_events", "run_number"}
    assert sorts | {"dataset_number"} <= leading


def test_names_compared_exactly_have_the_binary_collation_on_mariadb(catalog_engine):
    # Alembic's comparison above leaves collations out: on MariaDB, the
    # columns the models compare exactly (catalog.db.exact_text) are checked
    # here against the database, and no other column has the collation.
    if catalog_engine.dialect.name not in ("mysql", "mariadb"):
        pytest.skip("SQLite and PostgreSQL compare every text exactly")
    dialect = catalog_engine.dialect
    wanted = {
        (table.name, column.name)
        for table in Base.metadata.sorted_tables
        for column in table.columns
        if getattr(column.type.dialect_impl(dialect), "collation", None)
        == EXACT_COLLATION
    }
    query = text(
        "SELECT table_name, column_name FROM information_schema.columns "
        "WHERE table_schema = DATABASE() AND collation_name = :collation"
    )
    with catalog_engine.connect() as connection:
        found = set(connection.execute(query, {"collation": EXACT_COLLATION}))

    assert ("dataset", "name") in wanted and ("file", "lfn") in wanted
    assert {tuple(row) for row in found} == wanted


def test_every_constraint_and_index_has_a_short_name():
    names = []
    for table in Base.metadata.sorted_tables:
        for item in [*table.constraints, *table.indexes]:
            names.append(str(item.name))

    assert all(name != "None" for name in names)
    too_long = [name for name in names if len(name) > MAX_IDENTIFIER]
    assert too_long == []


def test_an_outdated_schema_is_reported_with_the_command_to_run(empty_engine):
    import pytest

    from catalog.errors import SchemaOutdated

    with pytest.raises(SchemaOutdated, match="run 'hepcat db upgrade'"):
        migrations.require_current(empty_engine)


def test_the_datasets_catalogued_before_wait_for_the_tags_they_miss(empty_engine):
    """Revision 0011 flags the datasets a tag of whose version is not
    catalogued, so that the tag finds them when it arrives.
    """
    from sqlalchemy import column, insert, select, table

    migrations.upgrade(empty_engine, "0010")
    now = dt.datetime(2026, 12, 6)
    names = {"whole": "e1_s2", "short": "e1_s3", "none": None, "odd": "e1-x"}
    dataset = table(
        "dataset",
        *(column(c) for c in ("name", "scope", "source", "project_name", "version")),
        *(column(c) for c in ("ami_status", "n_files", "total_events", "total_size")),
        *(column(c) for c in ("ddm_incomplete", "created", "last_modified")),
    )
    tag = table(
        "ami_tag", *(column(c) for c in ("tag", "tag_type", "tag_number", "created"))
    )
    common = {"scope": "mc16_13TeV", "source": "prodsys", "project_name": "mc16_13TeV"}
    counts = {"ami_status": "VALID", "n_files": 0, "total_events": 0, "total_size": 0}
    times = {"ddm_incomplete": False, "created": now, "last_modified": now}
    with empty_engine.begin() as connection:
        connection.execute(
            insert(tag),
            [
                {"tag": t, "tag_type": t[0], "tag_number": int(t[1:]), "created": now}
                for t in ("e1", "s2")
            ],
        )
        connection.execute(
            insert(dataset),
            [
                {"name": n, "version": v, **common, **counts, **times}
                for n, v in names.items()
            ],
        )

    migrations.upgrade(empty_engine)

    with empty_engine.connect() as connection:
        flags = dict(
            connection.execute(
                select(column("name"), column("tags_pending")).select_from(
                    table("dataset")
                )
            ).all()
        )
    assert {name: bool(flag) for name, flag in flags.items()} == {
        "whole": False,
        "short": True,
        "none": False,
        "odd": True,
    }


def test_names_differing_only_in_case_keep_the_downgrade_from_starting(empty_engine):
    """MariaDB cannot tell them apart again, and alters tables one by one
    without a transaction: the downgrade of 0012 refuses before any change.
    """
    from sqlalchemy import insert

    from catalog.models import AmiTag

    if empty_engine.dialect.name not in ("mysql", "mariadb"):
        pytest.skip("0012 changes nothing on SQLite and PostgreSQL")
    migrations.upgrade(empty_engine)
    now = dt.datetime(2026, 12, 6, tzinfo=dt.UTC)
    with empty_engine.begin() as connection:
        connection.execute(
            insert(AmiTag.__table__),
            [
                {"tag": t, "tag_type": "p", "tag_number": 1, "created": now}
                for t in ("p1", "P1")
            ],
        )

    with pytest.raises(RuntimeError, match=r"differ only in case .*ami_tag \(tag\)"):
        migrations.downgrade(empty_engine, "0011")

    assert migrations.current(empty_engine) == "0012"
    collations = text(
        "SELECT collation_name FROM information_schema.columns WHERE "
        "table_schema = DATABASE() AND table_name = 'dataset' AND column_name = 'name'"
    )
    with empty_engine.connect() as connection:
        assert connection.scalar(collations) == EXACT_COLLATION
