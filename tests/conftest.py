"""Fixtures shared by the test suite.

The catalogue fixtures run each test on a fresh SQLite file and, marked
``external_service``, on PostgreSQL and MariaDB. A server that cannot be
reached skips its tests with the reason, except when
``HEPCAT_TEST_REQUIRE_SERVICES=1`` (set by ``.ci/run``): then it is a failure.

Server URLs: ``HEPCAT_TEST_POSTGRESQL_URL`` (default
``postgresql+psycopg://postgres@127.0.0.1:5432/test``) and
``HEPCAT_TEST_MARIADB_URL`` (default ``mysql+pymysql://root@127.0.0.1:3306/test``).
Each test session creates its own database on each server and drops it at the
end, so the suite never touches the data already there.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from sqlalchemy import Engine, delete, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session as OrmSession
from sqlalchemy.orm import sessionmaker

import migrations
from catalog.db import Base, create_catalog_engine, session_factory

# served_catalog: a live `hepcat serve` (tests/live.py); app, client, skim_world,
# skim_task and surface: what several test files build alike (tests/worlds.py).
pytest_plugins = ["live", "worlds"]

SERVER_URLS = {
    "postgresql": os.environ.get(
        "HEPCAT_TEST_POSTGRESQL_URL",
        "postgresql+psycopg://postgres@127.0.0.1:5432/test",
    ),
    "mariadb": os.environ.get(
        "HEPCAT_TEST_MARIADB_URL", "mysql+pymysql://root@127.0.0.1:3306/test"
    ),
}


def written_apart(
    path: Any,
    write: Callable[[OrmSession], Any],
    read: Callable[[sessionmaker[OrmSession]], Any],
) -> Any:
    """What *read* finds in a fresh SQLite catalogue at *path*, once *write*
    has written into it in one transaction: a reference to compare the
    catalogue of a test with.
    """
    engine = create_catalog_engine(f"sqlite:///{path}")
    try:
        migrations.upgrade(engine)
        with session_factory(engine).begin() as session:
            write(session)
        return read(session_factory(engine))
    finally:
        engine.dispose()


def services_required() -> bool:
    """Whether a missing service fails the test instead of skipping it."""
    return os.environ.get("HEPCAT_TEST_REQUIRE_SERVICES", "") not in ("", "0")


def unavailable(what: str, reason: str) -> None:
    """Skip, or in CI fail, a test whose service *what* is unavailable."""
    message = f"{what} is not available: {reason}"
    if services_required():
        pytest.fail(f"{message} (HEPCAT_TEST_REQUIRE_SERVICES is set)")
    pytest.skip(message)


STOMP_URL = os.environ.get("HEPCAT_TEST_STOMP", "stomp://127.0.0.1:61613")


@pytest.fixture(scope="session")
def broker() -> str:
    """The URL of the STOMP broker (ActiveMQ) at ``HEPCAT_TEST_STOMP``, once
    a STOMP CONNECT has been answered.
    """
    from ingest.ddm import Waiter, broker_address, connect, disconnect

    listener = Waiter()
    try:
        connection = connect(broker_address(STOMP_URL), listener, timeout=5.0)
    except Exception as err:
        unavailable(f"ActiveMQ at {STOMP_URL}", str(err))
    disconnect(connection, listener)
    return STOMP_URL


class ServerDatabase:
    """A database of our own on a server, created for this test session."""

    def __init__(self, backend: str) -> None:
        self.backend = backend
        self.admin_url = make_url(SERVER_URLS[backend])
        self.name = f"hepcat_t_{uuid.uuid4().hex[:10]}"
        self.url = self.admin_url.set(database=self.name)
        self._admin: Engine | None = None

    def create(self) -> None:
        options = {"isolation_level": "AUTOCOMMIT"}
        self._admin = create_catalog_engine(
            self.admin_url.render_as_string(hide_password=False), **options
        )
        with self._admin.connect() as connection:
            connection.execute(text(f"CREATE DATABASE {self.name}"))

    def drop(self) -> None:
        if self._admin is None:
            return
        with self._admin.connect() as connection:
            if self.backend == "postgresql":
                connection.execute(
                    text(f"DROP DATABASE IF EXISTS {self.name} WITH (FORCE)")
                )
            else:
                connection.execute(text(f"DROP DATABASE IF EXISTS {self.name}"))
        self._admin.dispose()


@pytest.fixture(scope="session")
def server_databases() -> Iterator[dict[str, ServerDatabase | str]]:
    """One empty database per server, or the reason a server is unreachable."""
    found: dict[str, ServerDatabase | str] = {}
    for backend in SERVER_URLS:
        database = ServerDatabase(backend)
        try:
            database.create()
        except OperationalError as err:
            found[backend] = str(err.orig).splitlines()[0]
        else:
            found[backend] = database
    yield found
    for database in found.values():
        if isinstance(database, ServerDatabase):
            database.drop()


def server_database(
    server_databases: dict[str, ServerDatabase | str], backend: str
) -> ServerDatabase:
    """Return the session's database on *backend*, or skip/fail the test."""
    database = server_databases[backend]
    if isinstance(database, str):
        unavailable(f"{backend} at {SERVER_URLS[backend]}", database)
    assert isinstance(database, ServerDatabase)
    return database


BACKENDS = [
    "sqlite",
    pytest.param("postgresql", marks=pytest.mark.external_service),
    pytest.param("mariadb", marks=pytest.mark.external_service),
]


@pytest.fixture(scope="session")
def _migrated_servers(
    server_databases: dict[str, ServerDatabase | str],
) -> Iterator[dict[str, Engine]]:
    # Depends on server_databases so that its engines are disposed before
    # the databases are dropped.
    engines: dict[str, Engine] = {}
    yield engines
    for engine in engines.values():
        engine.dispose()


@pytest.fixture(params=BACKENDS)
def catalog_engine(
    request: pytest.FixtureRequest,
    tmp_path: Any,
    server_databases: dict[str, ServerDatabase | str],
    _migrated_servers: dict[str, Engine],
) -> Iterator[Engine]:
    """An engine on a catalogue at the newest migration, empty at the start
    of the test: a fresh SQLite file, or the session's server database
    emptied after each test.
    """
    backend = request.param
    if backend == "sqlite":
        engine = create_catalog_engine(f"sqlite:///{tmp_path / 'catalog.sqlite'}")
        migrations.upgrade(engine)
    else:
        engine = _server_engine(backend, server_databases, _migrated_servers)
    yield engine
    checked_out = engine.pool.checkedout()  # type: ignore[attr-defined]
    _empty(engine)
    if backend == "sqlite":
        engine.dispose()
    assert checked_out == 0, f"{checked_out} connection(s) left checked out"


def _server_engine(
    backend: str,
    server_databases: dict[str, ServerDatabase | str],
    migrated: dict[str, Engine],
) -> Engine:
    if backend not in migrated:
        database = server_database(server_databases, backend)
        engine = create_catalog_engine(database.url.render_as_string(False))
        migrations.upgrade(engine)
        migrated[backend] = engine
    return migrated[backend]


def _empty(engine: Engine) -> None:
    with engine.begin() as connection:
        for table in reversed(Base.metadata.sorted_tables):
            connection.execute(delete(table))


@pytest.fixture(params=BACKENDS)
def empty_engine(
    request: pytest.FixtureRequest,
    tmp_path: Any,
    server_databases: dict[str, ServerDatabase | str],
) -> Iterator[Engine]:
    """An engine on a database of its own with no table at all."""
    backend = request.param
    if backend == "sqlite":
        engine = create_catalog_engine(f"sqlite:///{tmp_path / 'empty.sqlite'}")
        yield engine
        engine.dispose()
        return
    server_database(server_databases, backend)  # skip or fail when absent
    database = ServerDatabase(backend)
    database.create()
    engine = create_catalog_engine(database.url.render_as_string(False))
    try:
        yield engine
    finally:
        engine.dispose()
        database.drop()


@pytest.fixture
def Session(catalog_engine: Engine) -> sessionmaker[OrmSession]:  # noqa: N802
    """The session factory of the test's catalogue."""
    return session_factory(catalog_engine)


@pytest.fixture
def dataset_factory(
    Session: sessionmaker[OrmSession],  # noqa: N803
) -> Callable[..., Any]:
    """Add a dataset (committed) and return it: ``dataset_factory(name, **fields)``."""
    from catalog.datasets import add_dataset

    def make(name: str, source: str = "prodsys", **fields: Any) -> Any:
        with Session.begin() as session:
            return add_dataset(name, source, session=session, **fields)

    return make


@pytest.fixture
def source_urls(
    catalog_engine: Engine,
    tmp_path: Any,
    server_databases: dict[str, ServerDatabase | str],
) -> Iterator[dict[str, str]]:
    """URLs of three empty source databases (prodsys, tier0, coma) on the
    same kind of server as the test's catalogue.
    """
    kinds = {"postgresql": "postgresql", "mysql": "mariadb", "mariadb": "mariadb"}
    backend = kinds.get(catalog_engine.dialect.name, "sqlite")
    if backend == "sqlite":
        yield {name: f"sqlite:///{tmp_path / f'{name}.sqlite'}" for name in SOURCES}
        return
    server_database(server_databases, backend)
    databases = {name: ServerDatabase(backend) for name in SOURCES}
    for database in databases.values():
        database.create()
    try:
        yield {
            name: database.url.render_as_string(False)
            for name, database in databases.items()
        }
    finally:
        for database in databases.values():
            database.drop()


SOURCES = ("prodsys", "tier0", "coma")


@pytest.fixture
def sources(source_urls: dict[str, str]) -> Iterator[Any]:
    """The three SQL source simulators, with their tables created."""
    from types import SimpleNamespace

    from ingest.simulate import ComaSource, ProdSysSource, Tier0Source

    made = SimpleNamespace(
        prodsys=ProdSysSource(source_urls["prodsys"]).create(),
        tier0=Tier0Source(source_urls["tier0"]).create(),
        coma=ComaSource(source_urls["coma"]).create(),
    )
    yield made
    for source in vars(made).values():
        source.engine.dispose()


@pytest.fixture
def ingest(Session: sessionmaker[OrmSession], sources: Any) -> Callable[[], Any]:  # noqa: N803
    """``ingest()`` drains the three SQL sources into the test's catalogue
    with the ingesters (the same ingester objects each call, as a task
    server keeps them); returns the records each ingested.
    """
    from ingest.coma import ComaIngester
    from ingest.prodsys import ProdSysIngester
    from ingest.tier0 import Tier0Ingester
    from taskserver.runner import run_until_drained

    tasks = [
        ComaIngester(sources.coma.engine),
        Tier0Ingester(sources.tier0.engine),
        ProdSysIngester(sources.prodsys.engine),
    ]
    return lambda: run_until_drained(tasks, Session, max_seconds=120)
