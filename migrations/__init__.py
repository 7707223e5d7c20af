"""The catalogue schema's migrations (Alembic), and the functions that apply
them: ``hepcat db upgrade`` and ``hepcat db downgrade`` call these.

Every schema change is a migration in ``versions/``; each has a working
``downgrade()``. The tests take every migration base → head → base → head on
SQLite, PostgreSQL and MariaDB, and check that the models and the migrations
agree.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config as AlembicConfig
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine

from catalog.errors import SchemaOutdated

HERE = Path(__file__).resolve().parent


def alembic_config(engine: Engine | None = None) -> AlembicConfig:
    """Return an Alembic configuration for our scripts, bound to *engine*."""
    config = AlembicConfig()
    config.set_main_option("script_location", str(HERE))
    config.attributes["engine"] = engine
    return config


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Bring the catalogue at *engine* to *revision* (default: the newest)."""
    command.upgrade(alembic_config(engine), revision)


def downgrade(engine: Engine, revision: str = "base") -> None:
    """Take the catalogue at *engine* back to *revision* (default: empty)."""
    command.downgrade(alembic_config(engine), revision)


def head() -> str:
    """The newest revision of the schema."""
    revision = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert revision is not None, "migrations/versions holds no migration"
    return revision


def current(engine: Engine) -> str | None:
    """The revision the catalogue at *engine* is at (None: never migrated)."""
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def require_current(engine: Engine) -> None:
    """:raises SchemaOutdated: when the catalogue is not at the newest revision."""
    at, newest = current(engine), head()
    if at != newest:
        raise SchemaOutdated(at, newest)
