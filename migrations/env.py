"""Alembic's environment: runs migrations on the engine handed over in
``config.attributes["engine"]``, or on the catalogue named by the hepcat
configuration when Alembic is run by hand (``alembic -c alembic.ini ...``).
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import Engine

import catalog.models  # noqa: F401  (registers every table)
from catalog.config import load_config
from catalog.db import Base, open_catalog

target_metadata = Base.metadata


def _engine() -> Engine:
    engine = context.config.attributes.get("engine")
    return engine if engine is not None else open_catalog(load_config())


def run_migrations_online() -> None:
    with _engine().connect() as connection:
        context.configure(
            connection=connection,
            target_metadata=target_metadata,
            render_as_batch=connection.dialect.name == "sqlite",
            compare_type=True,
        )
        with context.begin_transaction():
            context.run_migrations()


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
