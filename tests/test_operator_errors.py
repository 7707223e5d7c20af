"""What an operator sees when something is wrong: one line, ``Type: message``,
saying what is wrong and what to do; never a traceback.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from live import free_port
from sqlalchemy import update

from catalog.models import Quarantine
from catalog.operations import quarantine
from hepcat.cli import main
from hepcat.cli.base import check_free

ROOT = Path(__file__).resolve().parents[1]


def run_hepcat(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """``python -m hepcat ARGS`` in a process of its own, as an operator runs
    it (its log lines are configured as the command configures them).
    """
    clean = {k: v for k, v in os.environ.items() if not k.startswith("HEPCAT_")}
    return subprocess.run(
        [sys.executable, "-m", "hepcat", *args],
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )


# -- a source that cannot be used -----------------------------------------------


def test_a_source_database_without_its_tables_fails_in_one_line(tmp_path):
    data = tmp_path / "data"
    empty = tmp_path / "empty.sqlite"
    empty.touch()  # a database without ProdSys's tables
    env = {"HEPCAT_DATA_DIR": str(data), "HEPCAT_PRODSYS_URL": f"sqlite:///{empty}"}
    run_hepcat("db", "upgrade", env=env)

    result = run_hepcat("ingest", "--once", env=env)

    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    [line] = [ln for ln in result.stderr.splitlines() if "Task prodsys failed" in ln]
    assert f"on its source database sqlite:///{empty} (check HEPCAT_PRODSYS_URL" in line
    assert "no such table" in line
    assert result.stderr.splitlines()[-1].startswith("DrainFailed: task(s) 'prodsys'")


# -- listening ------------------------------------------------------------------


def test_a_host_that_does_not_resolve_is_not_called_a_busy_port():
    from hepcat.cli.base import UnknownHost

    with pytest.raises(UnknownHost) as raised:
        check_free("no-such-host.invalid", 5614)

    assert raised.value.type == "UnknownHost"
    assert raised.value.message.startswith(
        "cannot listen on 'no-such-host.invalid': no such host name or address ("
    )
    assert "set the host setting (or --host)" in raised.value.message
    assert "in use" not in raised.value.message


# -- gunicorn --------------------------------------------------------------------


def test_gunicorn_with_an_unreachable_catalogue_says_so_in_one_line(tmp_path):
    closed = free_port()
    env = {
        "HEPCAT_DATA_DIR": str(tmp_path),
        "HEPCAT_DATABASE_URL": f"postgresql+psycopg://hepcat@127.0.0.1:{closed}/x",
        "PATH": "/usr/bin:/bin",
    }
    command = [sys.executable, "-m", "gunicorn", "--workers", "1"]
    command += ["--bind", f"127.0.0.1:{free_port()}", "web.wsgi:app"]

    result = subprocess.run(
        command, env=env, capture_output=True, text=True, timeout=60, cwd=ROOT
    )

    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    assert (
        "DatabaseUnavailable: cannot reach the catalogue database "
        f"postgresql+psycopg://hepcat@127.0.0.1:{closed}/x: "
    ) in result.stderr


# -- hepcat quarantine list, like the other lists -------------------------------


@pytest.fixture
def hepcat(catalog_engine, tmp_path):
    env = {"HEPCAT_DATABASE_URL": catalog_engine.url.render_as_string(False)}

    def run(*args: str):
        return CliRunner().invoke(main, ["--data-dir", str(tmp_path), *args], env=env)

    return run


@pytest.fixture
def released_records(Session):
    """Two records put in quarantine by Tier-0, both released since."""
    with Session.begin() as session:
        for key in ("a.RAW._0001", "a.RAW._0002"):
            quarantine("tier0", key, {"guid": "x"}, "not a GUID", session=session)
        session.execute(update(Quarantine).values(released=True))


def test_an_empty_quarantine_list_prints_nothing_on_stdout(hepcat):
    result = hepcat("quarantine", "list")

    assert result.exit_code == 0, result.output
    assert result.stdout == ""
    assert result.stderr == "0 held records in quarantine\n"


def test_quarantine_list_all_says_how_many_are_held_and_released(
    hepcat, released_records
):
    result = hepcat("quarantine", "list", "--all", "--header")

    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["ID", "CREATED", "SOURCE", "STATE", "KEY", "REASON"]
    assert [line.split()[4] for line in lines[1:]] == ["released", "released"]
    assert result.stderr == "2 records in quarantine (0 held, 2 released)\n"


def test_quarantine_list_of_an_unknown_source_names_the_known_ones(hepcat):
    result = hepcat("quarantine", "list", "--source", "bogus")

    assert result.exit_code == 1
    assert result.stderr == (
        "UnknownSource: no source named 'bogus'; the sources are coma, ddm, "
        "prodsys, tier0\n"
    )


def test_the_demo_host_is_checked_before_anything_is_written(tmp_path):
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]

    result = CliRunner().invoke(
        main,
        ["--data-dir", str(tmp_path), "demo", "--host", "no-such-host.invalid"]
        + ["--port", str(port)],
        env={},
    )

    assert result.exit_code == 1
    assert result.stderr.startswith("UnknownHost: cannot listen on ")
    assert not (tmp_path / "sources").exists()
