"""What several test files build the same way, built in one place:

- ``app`` and ``client``: the web application on the test's catalogue, whose
  test client fails a test that is answered a traceback or SQL;
  ``plain_client``: a test client of it that checks nothing, for answers that
  echo SQL (MQL's echo their SELECT);
- ``seeded_world``: the simulated world (``ingest.world``) seeded into the
  test's catalogue;
- ``skim_world`` and ``skim_task``: the skim world of ``test_skims`` and its
  skim task; ``surface``: the skim surfaces' world of ``test_skim_pages``;
- ``status``: ``hepcat status`` run on the test's catalogue;
- ``ami_url`` and ``served_engine``: the AMI endpoint of the live
  ``hepcat serve`` (``live.py``) and an engine on the catalogue it serves;
- :func:`oracle_sql`: the SQL a migration step writes for Oracle.

A pytest plugin (``pytest_plugins`` in ``conftest.py``), as ``live.py`` is:
a test file asks for these fixtures by name, and one that builds its own of
the same name uses that instead. The fixtures that take ``catalog_engine``
run on SQLite, PostgreSQL and MariaDB.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from alembic import command
from click.testing import CliRunner, Result
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import Engine
from sqlalchemy.orm import Session as OrmSession
from sqlalchemy.orm import sessionmaker
from werkzeug.test import TestResponse

import migrations
from catalog.config import load_config
from catalog.db import create_catalog_engine
from hepcat.cli import main
from ingest.seed import seed_catalog
from ingest.world import build_world
from web.app import create_app

if TYPE_CHECKING:
    from live import ServedCatalog
    from test_skim_pages import SurfaceWorld
    from test_skims import SkimWorld

    from skimengine.task import SkimTask


class CheckedClient(FlaskClient):
    """A test client that fails any test whose answer leaks a traceback or SQL."""

    def open(self, *args: Any, **kwargs: Any) -> TestResponse:
        response = super().open(*args, **kwargs)
        body = response.get_data(as_text=True)
        assert "Traceback" not in body
        assert "SELECT" not in body
        return response


def make_app(engine: Engine, data_dir: Path, **settings: str) -> Flask:
    """The application on *engine*, configured by *settings* over the
    defaults, with :class:`CheckedClient` as its test client.
    """
    config = load_config(env={}, data_dir=str(data_dir))
    app = create_app(config.replace(**settings) if settings else config, engine=engine)
    app.test_client_class = CheckedClient
    return app


@pytest.fixture
def app(catalog_engine: Engine, tmp_path: Path) -> Flask:
    """The application on the test's catalogue (:func:`make_app`)."""
    return make_app(catalog_engine, tmp_path)


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def plain_client(app: Flask) -> FlaskClient:
    """A test client of ``app`` that checks nothing in the answers: for the
    tests whose answers echo SQL, as MQL's echo their SELECT.
    """
    return FlaskClient(app, app.response_class)


@pytest.fixture
def seeded_world(Session: sessionmaker[OrmSession]) -> None:  # noqa: N803
    """The simulated world (:func:`ingest.world.build_world`) seeded into the
    test's catalogue.
    """
    with Session.begin() as session:
        seed_catalog(build_world(), session=session)


@pytest.fixture
def skim_world(catalog_engine: Engine, tmp_path: Path) -> SkimWorld:
    """The skim world of ``test_skims`` (:func:`test_skims.make_world`)."""
    from test_skims import make_world

    return make_world(catalog_engine, tmp_path / "data")


@pytest.fixture
def skim_task(skim_world: SkimWorld) -> Iterator[SkimTask]:
    """The skim task of the skim world, closed after the test."""
    from skimengine.task import SkimTask

    made = SkimTask(skim_world.config)
    yield made
    made.close()


@pytest.fixture
def surface(catalog_engine: Engine, tmp_path: Path) -> SurfaceWorld:
    """The skim surfaces' world of ``test_skim_pages``
    (:func:`test_skim_pages.make_surface_world`).
    """
    from test_skim_pages import make_surface_world

    return make_surface_world(catalog_engine, tmp_path / "data")


@pytest.fixture(scope="module")
def ami_url(served_catalog: ServedCatalog) -> str:
    """The AMI endpoint of the live ``hepcat serve`` (``live.py``)."""
    return served_catalog.url + "/AMI/FrontEnd"


@pytest.fixture(scope="module")
def served_engine(served_catalog: ServedCatalog) -> Iterator[Engine]:
    """An engine on the catalogue of the live ``hepcat serve`` (``live.py``),
    for the tests that read, or add to, what it serves.
    """
    engine = create_catalog_engine(served_catalog.database_url)
    yield engine
    engine.dispose()


def oracle_sql(before: str, after: str) -> str:
    """The SQL that migrating from revision *before* to *after* and back
    writes for Oracle, offline (no Oracle server needed).
    """
    script = io.StringIO()
    config = migrations.alembic_config()
    config.set_main_option("sqlalchemy.url", "oracle+oracledb://")
    config.output_buffer = script
    command.upgrade(config, f"{before}:{after}", sql=True)
    command.downgrade(config, f"{after}:{before}", sql=True)
    return script.getvalue()


@pytest.fixture
def status(catalog_engine: Engine, tmp_path: Path) -> Callable[[], Result]:
    """Run ``hepcat status`` on the test's catalogue."""

    def run() -> Result:
        url = catalog_engine.url.render_as_string(hide_password=False)
        return CliRunner().invoke(
            main,
            ["--data-dir", str(tmp_path), "status"],
            env={"HEPCAT_DATABASE_URL": url},
        )

    return run
