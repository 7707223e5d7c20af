"""The hepcat command: schema management, the demo, and how errors look."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

import migrations
from hepcat.cli import main


@pytest.fixture
def hepcat(tmp_path):
    """Run ``hepcat ARGS...`` with a data directory of the test's own."""

    def run(*args: str, env: dict[str, str] | None = None):
        return CliRunner().invoke(main, ["--data-dir", str(tmp_path), *args], env=env)

    return run


def test_db_upgrade_then_downgrade_on_every_database(hepcat, empty_engine):
    url = {"HEPCAT_DATABASE_URL": empty_engine.url.render_as_string(False)}

    upgraded = hepcat("db", "upgrade", env=url)
    current = hepcat("db", "current", env=url)
    downgraded = hepcat("db", "downgrade", "base", env=url)

    assert upgraded.exit_code == 0, upgraded.output
    assert f"schema empty -> {migrations.head()}" in upgraded.output
    assert f"current: {migrations.head()}" in current.output
    assert downgraded.exit_code == 0, downgraded.output
    assert migrations.current(empty_engine) is None


def test_an_unreachable_database_is_one_line_on_stderr(hepcat):
    env = {"HEPCAT_DATABASE_URL": "postgresql+psycopg://nobody:secret@127.0.0.1:9/x"}

    result = hepcat("db", "current", env=env)

    assert result.exit_code == 1
    assert result.stderr.startswith("DatabaseUnavailable: cannot reach the catalogue")
    assert "secret" not in result.stderr
    assert "Traceback" not in result.output


def test_serving_an_unmigrated_catalogue_says_what_to_run(hepcat):
    result = hepcat("serve")

    assert result.exit_code == 1
    assert "SchemaOutdated:" in result.stderr
    assert "run 'hepcat db upgrade'" in result.stderr


def test_a_misspelt_setting_stops_the_command_with_a_hint(hepcat):
    result = hepcat("config", "show", env={"HEPCAT_PROT": "80"})

    assert result.exit_code == 1
    assert "UnknownSetting: unknown setting 'prot'" in result.stderr
    assert "did you mean 'port'" in result.stderr


def test_demo_prepares_a_catalogue_once(hepcat, tmp_path):
    first = hepcat("demo", "--no-serve")
    second = hepcat("demo", "--no-serve")

    assert first.exit_code == 0, first.output
    assert "datasets added" in first.output
    assert (tmp_path / "catalog.sqlite").is_file()
    assert "already holds datasets" in second.output
