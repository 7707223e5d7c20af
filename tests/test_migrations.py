"""The catalogue schema: migrations round-trip on every database, and the
models and the migrations describe the same schema.
"""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine, inspect

import migrations
from catalog.db import MAX_IDENTIFIER, Base


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
