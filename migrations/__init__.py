"""The catalogue schema's migrations (Alembic), and the functions that apply
them: ``hepcat db upgrade`` and ``hepcat db downgrade`` call these.

Every schema change is a migration in ``versions/``; each has a working
``downgrade()``. The tests take every migration base → head → base → head on
SQLite, PostgreSQL and MariaDB, and check that the models and the migrations
agree. On SQLite the migrations run in one transaction with foreign keys off
(see ``env.py``): a failed upgrade leaves the file as it was.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from alembic import command
from alembic.config import Config as AlembicConfig
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util import CommandError
from sqlalchemy import Engine
from sqlalchemy.exc import DBAPIError

from catalog.errors import HepcatError, SchemaOutdated
from catalog.urls import hide_password

HERE = Path(__file__).resolve().parent


class UnknownRevision(HepcatError, LookupError):
    """A revision to migrate to that the migrations do not have."""

    status = 400

    def __init__(self, revision: str, known: list[str], reason: str = "") -> None:
        why = f" ({reason})" if reason else ""
        super().__init__(
            f"no schema revision {revision!r}{why}; the revisions are "
            f"{known[0]} to {known[-1]}, 'head' (the newest), 'base' (empty), "
            "or a step such as +1 or -1"
        )

    def __str__(self) -> str:  # LookupError would quote the message
        return self.message


class WrongWay(HepcatError, ValueError):
    """``db upgrade`` to an older revision, or ``db downgrade`` to a newer one."""

    status = 400

    # Per command: how the revision compares, where the command goes, and
    # the command that goes the other way.
    WAYS = {
        "upgrade": ("older", "up", "downgrade"),
        "downgrade": ("newer", "down", "upgrade"),
    }

    def __init__(self, revision: str, current: str | None, going: str) -> None:
        than, way, other = self.WAYS[going]
        super().__init__(
            f"revision {revision} is {than} than the catalogue's revision "
            f"{current or 'empty'}; 'hepcat db {going}' only goes {way}: run "
            f"'hepcat db {other} {revision}'"
        )


class SchemaNewer(SchemaOutdated):
    """The catalogue schema is at a revision this hepcat does not know: a
    newer hepcat made it.
    """

    def __init__(self, current: str, head: str) -> None:
        HepcatError.__init__(
            self,
            f"the catalogue schema is at revision {current}, made by a newer "
            f"hepcat (this hepcat knows up to {head}); upgrade hepcat",
        )


class ForeignKeysBroken(HepcatError, RuntimeError):
    """After the migrations on SQLite, rows refer to rows that do not exist;
    the migrations are rolled back.
    """

    def __init__(self, table: str, parent: str, rows: int) -> None:
        super().__init__(
            f"the migrations would leave {rows} row(s) of table {table} "
            f"referring to missing rows of table {parent}; nothing was changed"
        )


class MigrationFailed(HepcatError, RuntimeError):
    """A migration failed in the database; the message says what was left."""

    def __init__(self, going: str, revision: str, reason: str, left: str) -> None:
        super().__init__(f"the {going} to {revision} failed: {reason}; {left}")


class NoPermission(HepcatError, PermissionError):
    """The database user lacks a right the catalogue needs."""

    def __init__(self, url: str, reason: str) -> None:
        super().__init__(
            f"the catalogue database {hide_password(url)} refused: {reason}; the "
            "database user needs the rights to read and write the catalogue's "
            "tables, and to create them for 'hepcat db upgrade'"
        )


def alembic_config(engine: Engine | None = None) -> AlembicConfig:
    """Return an Alembic configuration for our scripts, bound to *engine*."""
    config = AlembicConfig()
    config.set_main_option("script_location", str(HERE))
    config.attributes["engine"] = engine
    return config


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Bring the catalogue at *engine* to *revision* (default: the newest).

    :raises UnknownRevision, WrongWay, SchemaNewer, NoPermission:
    """
    _migrate(engine, command.upgrade, revision, "upgrade")


def downgrade(engine: Engine, revision: str = "base") -> None:
    """Take the catalogue at *engine* back to *revision* (default: empty).

    :raises UnknownRevision, WrongWay, SchemaNewer, NoPermission:
    """
    _migrate(engine, command.downgrade, revision, "downgrade")


def _migrate(
    engine: Engine,
    step: Callable[[AlembicConfig, str], None],
    revision: str,
    going: str,
) -> None:
    at = current(engine)
    here, there = _position(at or "base"), _position(revision)
    if here is not None and there is not None and there != here:
        if (there < here) == (going == "upgrade"):
            raise WrongWay(revision, at, going)
    with _refusals(engine):
        try:
            step(alembic_config(engine), revision)
        except CommandError as err:  # a relative step that goes nowhere
            raise UnknownRevision(revision, revisions(), str(err)) from None
        except DBAPIError as err:
            if _refused(err):
                raise
            left = _left(engine, at)
            raise MigrationFailed(going, revision, _reason(err), left) from err


def _left(engine: Engine, before: str | None) -> str:
    """What a failed migration left of the catalogue at *engine*."""
    if engine.dialect.name in ("sqlite", "postgresql"):  # one transaction
        return f"nothing was changed (the schema is still at {before or 'empty'})"
    return (
        f"the schema is at {current(engine) or 'empty'}, and {engine.dialect.name} "
        "keeps what the failed migration changed before the error: "
        "undo that by hand before running the command again"
    )


def _position(revision: str) -> int | None:
    """Where *revision* is among :func:`revisions` (0: empty), or None for a
    relative step (``+1``, ``-2``), which Alembic reads itself.

    :raises UnknownRevision:
    """
    if revision[:1] in ("+", "-"):
        return None
    try:
        script = _scripts().get_revision(revision)
    except CommandError as err:
        raise UnknownRevision(revision, revisions(), str(err)) from None
    return 0 if script is None else revisions().index(script.revision) + 1


def _scripts() -> ScriptDirectory:
    return ScriptDirectory.from_config(alembic_config())


def revisions() -> list[str]:
    """Every revision of the schema, oldest first."""
    return [script.revision for script in reversed(list(_scripts().walk_revisions()))]


def head() -> str:
    """The newest revision of the schema."""
    revision = _scripts().get_current_head()
    assert revision is not None, "migrations/versions holds no migration"
    return revision


def current(engine: Engine) -> str | None:
    """The revision the catalogue at *engine* is at (None: never migrated).

    :raises SchemaNewer: a newer hepcat made the catalogue.
    :raises NoPermission: the database user may not read the revision.
    """
    with _refusals(engine), engine.connect() as connection:
        at = MigrationContext.configure(connection).get_current_revision()
    if at is not None and at not in revisions():
        raise SchemaNewer(at, head())
    return at


def require_current(engine: Engine) -> None:
    """:raises SchemaOutdated: when the catalogue is not at the newest revision."""
    at, newest = current(engine), head()
    if at != newest:
        raise SchemaOutdated(at, newest)


@contextmanager
def _refusals(engine: Engine) -> Iterator[None]:
    """Turn the database's refusal for lack of rights into :class:`NoPermission`."""
    try:
        yield
    except DBAPIError as err:
        if not _refused(err):
            raise
        url = engine.url.render_as_string(hide_password=True)
        raise NoPermission(url, _reason(err)) from None


def _reason(err: DBAPIError) -> str:
    """The first line of the database's own message in *err*."""
    return (str(err.orig).strip() or str(err)).splitlines()[0]


# MariaDB's errors for a missing right: on a database, a command, a column.
MARIADB_REFUSALS = {1044, 1142, 1143, 1227}


def _refused(err: DBAPIError) -> bool:
    """Whether *err* is the database refusing for lack of rights."""
    # PostgreSQL: no right; no schema the user may create in (no USAGE).
    if getattr(err.orig, "sqlstate", None) in ("42501", "3F000"):
        return True
    code = getattr(err.orig, "args", (None,))[:1]
    if code and code[0] in MARIADB_REFUSALS:
        return True
    return "readonly database" in str(err.orig)  # SQLite
