"""``hepcat db``: what the schema commands say when they cannot do what they
are asked, in one line on stderr (``Type: message``) and exit status 1.
"""

from __future__ import annotations

import sqlite3
import uuid

import pytest
from click.testing import CliRunner
from conftest import ServerDatabase, server_database
from sqlalchemy import text

import migrations
from catalog.db import DriverMissing, create_catalog_engine
from hepcat.cli import main


@pytest.fixture
def hepcat(tmp_path):
    """Run ``hepcat ARGS...`` with a data directory of the test's own."""

    def run(*args: str, env: dict[str, str] | None = None):
        return CliRunner().invoke(main, ["--data-dir", str(tmp_path), *args], env=env)

    return run


@pytest.fixture
def catalog_file(tmp_path, hepcat):
    """The test's SQLite catalogue, at the newest revision."""
    assert hepcat("db", "upgrade").exit_code == 0
    return tmp_path / "catalog.sqlite"


def revision_in(path) -> str | None:
    with sqlite3.connect(path) as connection:
        row = connection.execute("SELECT version_num FROM alembic_version").fetchone()
    return row[0] if row else None


@pytest.mark.parametrize(
    "command", [("upgrade", "9999"), ("upgrade", "abc"), ("downgrade", "9999")]
)
def test_an_unknown_revision_is_one_line_naming_the_known_ones(
    hepcat, catalog_file, command
):
    result = hepcat("db", *command)

    assert result.exit_code == 1
    assert result.stderr.startswith(
        f"UnknownRevision: no schema revision {command[1]!r}"
    )
    assert f"the revisions are 0001 to {migrations.head()}" in result.stderr
    assert "Traceback" not in result.output
    assert revision_in(catalog_file) == migrations.head()


def test_a_step_past_the_newest_revision_is_one_line(hepcat, catalog_file):
    result = hepcat("db", "upgrade", "+1")

    assert result.exit_code == 1
    assert result.stderr.startswith("UnknownRevision: no schema revision '+1'")
    assert revision_in(catalog_file) == migrations.head()


def test_upgrading_to_an_older_revision_points_to_downgrade(hepcat, catalog_file):
    result = hepcat("db", "upgrade", "0005")

    assert result.exit_code == 1
    assert result.stderr == (
        f"WrongWay: revision 0005 is older than the catalogue's revision "
        f"{migrations.head()}; 'hepcat db upgrade' only goes up: "
        "run 'hepcat db downgrade 0005'\n"
    )
    assert revision_in(catalog_file) == migrations.head()


def test_downgrading_to_a_newer_revision_points_to_upgrade(hepcat, catalog_file):
    hepcat("db", "downgrade", "0010")

    result = hepcat("db", "downgrade", "0012")

    assert result.exit_code == 1
    assert "run 'hepcat db upgrade 0012'" in result.stderr
    assert revision_in(catalog_file) == "0010"


@pytest.mark.parametrize("command", [("db", "upgrade"), ("derive", "--check")])
def test_a_catalogue_of_a_newer_hepcat_asks_for_a_newer_hepcat(
    hepcat, catalog_file, command
):
    with sqlite3.connect(catalog_file) as connection:
        connection.execute("UPDATE alembic_version SET version_num = '0099'")

    result = hepcat(*command)

    assert result.exit_code == 1
    assert result.stderr == (
        "SchemaNewer: the catalogue schema is at revision 0099, made by a newer "
        f"hepcat (this hepcat knows up to {migrations.head()}); upgrade hepcat\n"
    )


def test_a_failed_upgrade_of_a_sqlite_catalogue_changes_nothing(hepcat, tmp_path):
    path = tmp_path / "catalog.sqlite"
    with sqlite3.connect(path) as connection:
        connection.execute("CREATE TABLE project (x INTEGER)")  # not ours

    failed = hepcat("db", "upgrade")
    with sqlite3.connect(path) as connection:
        connection.execute("DROP TABLE project")
    tables = {
        row[0]
        for row in sqlite3.connect(path).execute(
            "SELECT name FROM sqlite_master WHERE type = 'table'"
        )
    }
    again = hepcat("db", "upgrade")

    assert failed.exit_code == 1
    assert failed.stderr == (
        "MigrationFailed: the upgrade to head failed: table project already "
        "exists; nothing was changed (the schema is still at empty)\n"
    )
    assert tables == set()
    assert again.exit_code == 0, again.output
    assert revision_in(path) == migrations.head()


def test_a_mysql_url_without_a_driver_suggests_pymysql():
    with pytest.raises(DriverMissing) as raised:
        create_catalog_engine("mysql://hepcat:secret@127.0.0.1/catalog")

    assert str(raised.value) == (
        "cannot load the database driver of mysql://hepcat:***@127.0.0.1/catalog "
        "(No module named 'MySQLdb'); hepcat installs pymysql: write "
        "mysql+pymysql://hepcat:***@127.0.0.1/catalog"
    )


def test_a_mysql_source_url_setting_suggests_pymysql(hepcat):
    result = hepcat(
        "config", "show", env={"HEPCAT_PRODSYS_URL": "mysql://u:secret@h/db"}
    )

    assert result.exit_code == 1
    assert "hepcat installs pymysql: write mysql+pymysql://u:***@h/db" in (
        result.output
    )
    assert "secret" not in result.output


@pytest.fixture
def powerless_url(server_databases):
    """The URL of a new PostgreSQL database, for a user without rights in it."""
    server_database(server_databases, "postgresql")  # skip or fail when absent
    database = ServerDatabase("postgresql")
    database.create()
    user = f"hepcat_t_{uuid.uuid4().hex[:10]}"
    assert database._admin is not None
    with database._admin.connect() as connection:
        connection.execute(text(f"CREATE ROLE {user} LOGIN"))
    revoke = create_catalog_engine(database.url.render_as_string(False))
    with revoke.begin() as connection:
        connection.execute(text("REVOKE CREATE ON SCHEMA public FROM PUBLIC"))
    revoke.dispose()
    yield database.url.set(username=user, password=None).render_as_string(False)
    database.drop()
    with database._admin.connect() as connection:
        connection.execute(text(f"DROP ROLE {user}"))
    database._admin.dispose()


@pytest.mark.external_service
def test_a_user_without_rights_is_told_so_in_one_line(hepcat, powerless_url):
    result = hepcat("db", "upgrade", env={"HEPCAT_DATABASE_URL": powerless_url})

    assert result.exit_code == 1
    assert result.stderr.startswith("NoPermission: the catalogue database ")
    assert "refused: permission denied for schema public; " in result.stderr
    assert "Traceback" not in result.output
