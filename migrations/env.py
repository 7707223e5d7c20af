"""Alembic's environment: runs migrations on the engine handed over in
``config.attributes["engine"]``, or on the catalogue named by the hepcat
configuration when Alembic is run by hand (``alembic -c alembic.ini ...``).

On SQLite the migrations run as one transaction with foreign keys off.
SQLite alters a table by copying it and dropping the old one
(``batch_alter_table``); with foreign keys on, that drop would cascade and
delete every row that refers to the table (files, lumi ranges, provenance,
TAGs). The pragma does nothing inside a transaction, so it is set before the
transaction begins; ``PRAGMA foreign_key_check`` then checks what the
migrations left before they are committed. A migration that fails leaves the
file as it was: SQLite's DDL is transactional once the driver stops
committing on its own (its isolation level None, and BEGIN issued here).
"""

from __future__ import annotations

from typing import Any

from alembic import context
from sqlalchemy import Connection, Engine, event

import catalog.models  # noqa: F401  (registers every table)
from catalog.config import load_config
from catalog.db import Base, open_catalog
from migrations import ForeignKeysBroken

target_metadata = Base.metadata


def _engine() -> Engine:
    engine = context.config.attributes.get("engine")
    return engine if engine is not None else open_catalog(load_config())


def run_migrations_online() -> None:
    with _engine().connect() as connection:
        if connection.dialect.name == "sqlite":
            _run_on_sqlite(connection)
        else:
            _run(connection)


def _run(connection: Connection, **options: Any) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
        **options,
    )
    with context.begin_transaction():
        context.run_migrations()
        if connection.dialect.name == "sqlite":
            _check_foreign_keys(connection)


def _run_on_sqlite(connection: Connection) -> None:
    """Run the migrations in one SQLite transaction with foreign keys off."""
    driver: Any = connection.connection.driver_connection
    isolation = driver.isolation_level
    driver.execute("PRAGMA foreign_keys=OFF")  # outside any transaction
    driver.isolation_level = None  # the driver begins nothing on its own ...
    event.listen(connection, "begin", _begin)  # ... BEGIN comes from here
    try:
        _run(connection, transactional_ddl=True)
    finally:
        event.remove(connection, "begin", _begin)
        connection.rollback()  # nothing left open when the pragma is set
        driver.isolation_level = isolation
        driver.execute("PRAGMA foreign_keys=ON")


def _begin(connection: Connection) -> None:
    connection.exec_driver_sql("BEGIN")


def _check_foreign_keys(connection: Connection) -> None:
    """:raises ForeignKeysBroken: naming the first table whose rows refer to
    missing rows.
    """
    broken = connection.exec_driver_sql("PRAGMA foreign_key_check").all()
    if broken:
        table, _rowid, parent, _key = broken[0]
        rows = sum(1 for row in broken if row[0] == table)
        raise ForeignKeysBroken(table, parent, rows)


def run_migrations_offline() -> None:
    context.configure(
        url=context.config.get_main_option("sqlalchemy.url"),
        target_metadata=target_metadata,
        literal_binds=True,
        render_as_batch=False,
    )
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
