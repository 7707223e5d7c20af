"""Engines, sessions and the declarative base of the catalogue.

The metadata uses a naming convention, so every constraint and index has a
name and migrations run the same on SQLite, PostgreSQL, MariaDB and Oracle.
Datetimes are stored as naive UTC (MariaDB and SQLite have no time zones) and
handed back timezone-aware.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from sqlalchemy import (
    BigInteger,
    Boolean,
    ColumnElement,
    DateTime,
    Dialect,
    Engine,
    Integer,
    MetaData,
    String,
    bindparam,
    create_engine,
    event,
)
from sqlalchemy.dialects import mysql
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.engine import make_url
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import DeclarativeBase, sessionmaker
from sqlalchemy.sql.visitors import InternalTraversal
from sqlalchemy.types import TypeDecorator, TypeEngine

from catalog.errors import ConfigError, HepcatError
from catalog.urls import hide_password

if TYPE_CHECKING:  # catalog.config asks driver_hint for its URL settings
    from catalog.config import Config

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# Identifiers longer than 30 characters fail on older Oracle releases and
# 64 on MariaDB; the convention above keeps names short where it can, and
# tests check every generated name against the limit.
MAX_IDENTIFIER = 64

# An autoincrementing 64-bit key that stays INTEGER on SQLite, where only
# INTEGER PRIMARY KEY is the rowid alias.
BigId = BigInteger().with_variant(Integer(), "sqlite")

# VARCHAR lengths that appear across the model.
Name = String(255)
Short = String(64)

# The collation MariaDB compares exact text with: byte for byte, letter case
# included, as SQLite and PostgreSQL compare every text.
EXACT_COLLATION = "utf8mb4_bin"


def exact_text(length: int) -> TypeEngine[str]:
    """A VARCHAR of *length* compared exactly on every database: names that
    ATLAS and Rucio tell apart by letter case (dataset names, LFNs, scopes,
    container names, AMI tags). MariaDB's default collation
    (``utf8mb4_general_ci``) ignores case: there, ``..._Zee...`` and
    ``..._ZEE...`` would be one key of a unique index, and an upsert of one
    would overwrite the other. MQL's ``LIKE`` still ignores case on such a
    column (it compares ``lower()`` of both sides; docs/decisions.md).
    """
    exact = mysql.VARCHAR(length, collation=EXACT_COLLATION)
    return String(length).with_variant(exact, "mysql", "mariadb")


# Names compared exactly (see :func:`exact_text`).
ExactName = exact_text(255)
ExactShort = exact_text(64)


class UTCDateTime(TypeDecorator[dt.datetime]):
    """A point in time: stored as naive UTC, returned timezone-aware."""

    impl = DateTime
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        # MariaDB and MySQL keep whole seconds unless asked for more; stop
        # points and "last modified" orderings need microseconds.
        if dialect.name in ("mysql", "mariadb"):
            return dialect.type_descriptor(mysql.DATETIME(fsp=6))
        return dialect.type_descriptor(DateTime())

    def process_bind_param(
        self, value: dt.datetime | None, dialect: Dialect
    ) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: pass a timezone-aware one")
        return value.astimezone(dt.UTC).replace(tzinfo=None)

    def process_result_value(
        self, value: dt.datetime | None, dialect: Dialect
    ) -> dt.datetime | None:
        return None if value is None else value.replace(tzinfo=dt.UTC)


def utcnow() -> dt.datetime:
    """The current time, timezone-aware, in UTC."""
    return dt.datetime.now(dt.UTC)


def has_skip_locked(dialect: Dialect) -> bool:
    """Whether the database behind *dialect* knows ``FOR UPDATE SKIP LOCKED``."""
    if dialect.name in ("postgresql", "oracle"):
        return True
    if dialect.name in ("mysql", "mariadb"):
        version = tuple(dialect.server_version_info or ())[:3]
        minimum = (10, 6) if getattr(dialect, "is_mariadb", False) else (8, 0, 1)
        return version >= minimum
    return False


class Base(DeclarativeBase):
    """The declarative base of every catalogue model."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)


def create_catalog_engine(url: str, **options: Any) -> Engine:
    """Create an engine for the catalogue at *url*.

    SQLite files get their directory created, are created readable by their
    owner only (0600: they hold the password hashes), get foreign keys
    enforced and WAL journaling, so that the web server and the task server
    can share one file.
    Commits do not wait for the disk (``synchronous=NORMAL``, SQLite's advice
    for WAL): a crash of the process loses nothing, and a power cut can lose
    only the last transactions whole, never leave the file inconsistent; an
    ingester then reads again from the stop point committed with its data.

    MariaDB runs at READ COMMITTED, as PostgreSQL does by default: each
    statement sees what is committed when it starts, so a transaction that
    waited for a row lock then reads what its holder wrote (InnoDB's
    REPEATABLE READ would read the snapshot of its first read, from before),
    and InnoDB takes no gap locks, where requests about different rows
    would deadlock.
    """
    parsed = make_url(url)
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        return _sqlite_engine(url, parsed.database, **options)
    options.setdefault("pool_pre_ping", True)
    if backend in ("mysql", "mariadb"):
        options.setdefault("isolation_level", "READ COMMITTED")
    try:
        return create_engine(url, **options)
    except ImportError as err:
        raise DriverMissing(url, err) from None


class DriverMissing(HepcatError, ImportError):
    """The database driver a URL names (or its dialect's default) is not
    installed.
    """

    def __init__(self, url: str, err: ImportError) -> None:
        super().__init__(
            f"cannot load the database driver of {hide_password(url)} "
            f"({err}){driver_hint(url)}"
        )


# The driver hepcat installs for each database (pyproject.toml). A URL
# without one (mysql://) asks for SQLAlchemy's default driver of the
# dialect (mysqlclient, MySQLdb), which hepcat does not install.
INSTALLED_DRIVERS = {
    "mysql": "pymysql",
    "mariadb": "pymysql",
    "postgresql": "psycopg",
    "oracle": "oracledb",
}


def driver_hint(url: str) -> str:
    """What to write instead of *url* when its driver cannot be loaded:
    ``"; hepcat installs pymysql: write mysql+pymysql://..."``, or empty
    when the URL already names the driver hepcat installs.
    """
    parsed = make_url(url)
    backend = parsed.get_backend_name()
    driver = INSTALLED_DRIVERS.get(backend)
    if driver is None or parsed.get_driver_name() == driver:
        return ""
    suggested = parsed.set(drivername=f"{backend}+{driver}")
    shown = hide_password(suggested.render_as_string(hide_password=True))
    return f"; hepcat installs {driver}: write {shown}"


def _sqlite_engine(url: str, database: str | None, **options: Any) -> Engine:
    # A "file:" URI (with uri=true) names its file in its own way: left to SQLite.
    if database and database != ":memory:" and not database.startswith("file:"):
        Path(database).parent.mkdir(parents=True, exist_ok=True)
        _create_private(Path(database))
    engine = create_engine(url, **options)

    @event.listens_for(engine, "connect")
    def _pragmas(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()

    return engine


def _create_private(path: Path) -> None:
    """Create the empty SQLite file *path* readable and writable by its owner
    only (0600), unless it exists: an existing file keeps the permissions its
    operator gave it. SQLite takes an empty file for a new database, and gives
    its journal, WAL and shared-memory files the permissions of this one.
    """
    try:
        # O_EXCL: a file made meanwhile by another process (or a symlink
        # the operator put there) is left as it is.
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return
    os.close(descriptor)


def open_catalog(config: Config, **options: Any) -> Engine:
    """Open the catalogue database named by *config*. The engine is created
    once per process and shared by every request and task.

    A SQLite catalogue is created when its file does not exist yet, but of
    the missing directories only the data directory is made: any other one
    is more likely a mistyped path than a place meant for a new catalogue.

    :raises ConfigError: the SQLite file's directory does not exist and is
        not the data directory.
    """
    url = config.catalog_url
    path = sqlite_path(url)
    if path is not None and not path.parent.is_dir():
        if path.parent.resolve() != config.data_path:
            where = config.origin("database_url")
            raise ConfigError(
                "database_url",
                url,
                f"the directory {path.parent} does not exist; hepcat creates "
                f"a new SQLite catalogue in an existing directory, and creates "
                f"only the data directory ({config.data_path}); {where}",
            )
    return create_catalog_engine(url, **options)


def sqlite_path(url: str) -> Path | None:
    """The file of the SQLite database at *url*; None for other databases
    and in-memory SQLite.
    """
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        return None
    database = parsed.database
    if not database or database == ":memory:" or database.startswith("file:"):
        return None
    return Path(database).expanduser()


def session_factory(engine: Engine) -> sessionmaker[Any]:
    """Return the session factory bound to *engine*; use it as
    ``with Session.begin() as session:`` at the edge that owns the transaction.
    """
    return sessionmaker(engine, expire_on_commit=False)


class Among(ColumnElement[bool]):
    """``column IN (values)``, written ``column = ANY(:values)`` on PostgreSQL.

    An ``IN`` list of a thousand values is a thousand placeholders, which
    psycopg rewrites and PostgreSQL plans afresh for every length; one array
    parameter costs neither. SQLite gets the values as one JSON array
    parameter (``IN (SELECT value FROM json_each(:values))``), for the same
    reason and so that no list outgrows its limit of parameters. Other
    databases get the ``IN`` list.

    The values are parameters, so a statement is compiled once per shape and
    form of values (:func:`_form`) and then taken from SQLAlchemy's cache.
    """

    inherit_cache = True
    _traverse_internals = [
        ("column", InternalTraversal.dp_clauseelement),
        ("form", InternalTraversal.dp_string),
        ("whole", InternalTraversal.dp_clauseelement),
        ("listed", InternalTraversal.dp_clauseelement),
    ]
    type = Boolean()
    _is_implicitly_boolean = True  # a condition: no "= 1" where booleans are ints

    def __init__(self, column: ColumnElement[Any], values: Iterable[Any]) -> None:
        values = list(values)
        self.column = column
        self.form = _form(values)
        # The values as one parameter (an array, split text or JSON) ...
        self.whole = bindparam(None, values, type_=AmongValues(self.form, column.type))
        # ... or as an IN list.
        self.listed = bindparam(None, values, type_=column.type, expanding=True)


def among(column: Any, values: Iterable[Any]) -> ColumnElement[bool]:
    """*column* is one of *values* (see :class:`Among`)."""
    return Among(column, values)


# Values per membership test: one parameter on PostgreSQL and SQLite
# whatever the count, an IN list of that many on MariaDB.
LOOKUP_CHUNK = 20_000


def chunked(values: Sequence[T], size: int = LOOKUP_CHUNK) -> Iterator[Sequence[T]]:
    """*values* in slices of *size*, for one :func:`among` test each."""
    for start in range(0, len(values), size):
        yield values[start : start + size]


T = TypeVar("T")

# Joins text values into one parameter on PostgreSQL: a character no name,
# GUID or LFN holds (chr(31) in SQL).
SEPARATOR = "\x1f"
# The forms of values: non-empty text without the separator; other numbers
# and text (a JSON array); anything else (and no value at all).
TEXT, JSON, OTHER = "text", "json", "other"


def _form(values: list[Any]) -> str:
    """Which of the forms *values* take (see :data:`TEXT`)."""
    if not values:
        return OTHER
    if _joined(values) is not None:
        return TEXT
    try:
        json.dumps(values, allow_nan=False)
    except (TypeError, ValueError):
        return OTHER
    return JSON


def _joined(values: list[Any]) -> str | None:
    """*values* joined by :data:`SEPARATOR` when they are all non-empty text
    without it (None otherwise).
    """
    if not values or "" in values:
        return None
    try:
        joined = SEPARATOR.join(values)
    except TypeError:
        return None
    return joined if joined.count(SEPARATOR) == len(values) - 1 else None


class AmongValues(TypeDecorator[Any]):
    """The values of an :class:`Among` as one parameter: on PostgreSQL, text
    joined by :data:`SEPARATOR` or an array of the column's type; elsewhere a
    JSON array.
    """

    impl = String
    cache_ok = True

    def __init__(self, form: str, element: TypeEngine[Any]) -> None:
        super().__init__()
        self.form = form
        self.element = element

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "postgresql" and self.form != TEXT:
            return dialect.type_descriptor(ARRAY(self.element))
        return dialect.type_descriptor(String())

    def process_bind_param(self, value: Any, dialect: Dialect) -> Any:
        if dialect.name != "postgresql":
            return json.dumps(value, allow_nan=False)
        return SEPARATOR.join(value) if self.form == TEXT else value


@compiles(Among)
def _among_in_list(element: Among, compiler: Any, **kw: Any) -> str:
    text: str = compiler.process(element.column.in_(element.listed), **kw)
    return text


@compiles(Among, "postgresql")
def _among_any_array(element: Among, compiler: Any, **kw: Any) -> str:
    column = compiler.process(element.column, **kw)
    whole = compiler.process(element.whole, **kw)
    if element.form == TEXT:
        # One text parameter split by the server: psycopg would otherwise
        # check every element of a text array for quoting, one by one.
        return f"{column} = ANY(string_to_array({whole}, chr(31)))"
    return f"{column} = ANY({whole})"


@compiles(Among, "sqlite")
def _among_json_each(element: Among, compiler: Any, **kw: Any) -> str:
    if element.form == OTHER:  # numbers and text only; the rest: an IN list
        return _among_in_list(element, compiler, **kw)
    column = compiler.process(element.column, **kw)
    whole = compiler.process(element.whole, **kw)
    return f"{column} IN (SELECT value FROM json_each({whole}))"
