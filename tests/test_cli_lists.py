"""The lists of the command line as a user reads them: a header naming the
columns (asked for, or when stdout is a terminal), a note on stderr when
there is nothing to list, rows as scripts parse them; and the hint of
``hepcat skim create`` run as a login that is no catalogued user. Also a
skim whose selection kept no event, which ``hepcat skim retry`` refuses.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from test_skims import DATASET, DIMUON, make_world

import migrations
from catalog.db import create_catalog_engine
from hepcat.cli import main


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    """A data directory whose catalogue holds the skim world of test_skims
    (the physicist jdoe, the dataset with its TAG).
    """
    directory = tmp_path / "data"
    directory.mkdir()
    engine = create_catalog_engine(f"sqlite:///{directory / 'catalog.sqlite'}")
    migrations.upgrade(engine)
    make_world(engine, directory)
    engine.dispose()
    return directory


def hepcat(data_dir: Path, *args: str, user: str | None = None) -> Any:
    env = {k: "" for k in os.environ if k.startswith("HEPCAT_")}
    if user is not None:  # what getpass.getuser() reads first
        env |= {"LOGNAME": user, "USER": user, "LNAME": user, "USERNAME": user}
    return CliRunner().invoke(main, ["--data-dir", str(data_dir), *args], env=env)


def create(data_dir: Path, name: str = "dimuon", selection: str = DIMUON) -> int:
    created = hepcat(
        data_dir, "skim", "create", "--dataset", DATASET, "--select", selection,
        "--name", name, "--user", "jdoe",
    )  # fmt: skip
    assert created.exit_code == 0, created.output
    return int(created.stdout)


# --- empty lists --------------------------------------------------------------------


def test_an_empty_skim_list_says_so_on_stderr(data_dir: Path) -> None:
    listed = hepcat(data_dir, "skim", "list", "--state", "done")

    assert listed.exit_code == 0
    assert listed.stdout == ""
    assert listed.stderr == "no skims in state done\n"


def test_an_empty_token_list_says_so_on_stderr(data_dir: Path) -> None:
    of_jdoe = hepcat(data_dir, "token", "list", "jdoe")
    of_all = hepcat(data_dir, "token", "list")

    assert of_jdoe.exit_code == of_all.exit_code == 0
    assert of_jdoe.stdout == of_all.stdout == ""
    assert of_jdoe.stderr == "no tokens of jdoe\n"
    assert of_all.stderr == "no tokens\n"


# --- headers ------------------------------------------------------------------------


def test_the_skim_list_has_a_header_naming_its_columns(data_dir: Path) -> None:
    skim_id = create(data_dir)

    plain = hepcat(data_dir, "skim", "list")
    headed = hepcat(data_dir, "skim", "list", "--header")

    header, row = headed.stdout.splitlines()
    assert header.split() == ["ID", "STATE", "DONE", "OWNER", "NAME", "DATASET"]
    assert row.split() == [str(skim_id), "defined", "0.0%", "jdoe", "dimuon", DATASET]
    assert plain.stdout.splitlines() == [row]  # piped: the rows alone, as before
    assert header.index("DATASET") == row.index(DATASET)
    assert header.index("NAME") == row.index("dimuon")


def test_the_user_list_has_a_header_naming_its_columns(data_dir: Path) -> None:
    plain = hepcat(data_dir, "user", "list")
    headed = hepcat(data_dir, "user", "list", "--header")

    header, *rows = headed.stdout.splitlines()
    assert header.split() == ["LOGIN", "ROLES", "NAME"]
    assert rows == plain.stdout.splitlines()
    jdoe = next(row for row in rows if row.split()[0] == "jdoe")
    assert header.index("ROLES") == jdoe.index("physicist")


def on_a_terminal(data_dir: Path, *args: str) -> str:
    """What ``hepcat`` prints on stdout when stdout is a terminal (a pty)."""
    pty = pytest.importorskip("pty")
    leader, follower = pty.openpty()
    env = {k: v for k, v in os.environ.items() if not k.startswith("HEPCAT_")}
    command = [sys.executable, "-m", "hepcat", "--data-dir", str(data_dir), *args]
    try:
        with os.fdopen(follower, "wb") as terminal:
            done = subprocess.run(command, env=env, stdout=terminal, timeout=60)
        printed = b""
        while chunk := read_terminal(leader):
            printed += chunk
    finally:
        os.close(leader)
    assert done.returncode == 0
    return printed.decode().replace("\r\n", "\n")


def read_terminal(leader: int) -> bytes:
    """The next bytes the terminal holds; none once it is closed and read."""
    try:
        return os.read(leader, 4096)
    except OSError:  # Linux: the other end is closed and all was read
        return b""


def test_a_terminal_gets_the_header_without_asking(data_dir: Path) -> None:
    skim_id = create(data_dir)

    users = on_a_terminal(data_dir, "user", "list").splitlines()
    skims = on_a_terminal(data_dir, "skim", "list").splitlines()

    assert users[0].split() == ["LOGIN", "ROLES", "NAME"] and len(users) == 5
    assert skims[0].split()[:2] == ["ID", "STATE"]
    assert skims[1:] and skims[1].split()[:2] == [str(skim_id), "defined"]


def test_the_help_says_when_the_header_is_printed(data_dir: Path) -> None:
    for command in ("user", "skim"):
        helped = hepcat(data_dir, command, "list", "--help")

        text = " ".join(helped.stdout.split())
        assert "--header / --no-header" in text
        assert "(default: when stdout is a terminal)" in text


# --- skim create as someone else ------------------------------------------------------


def test_create_as_an_unknown_login_says_how_to_name_the_user(data_dir: Path) -> None:
    created = hepcat(
        data_dir, "skim", "create", "--dataset", DATASET, "--select", DIMUON,
        "--name", "dimuon", user="root",
    )  # fmt: skip

    assert created.exit_code == 1
    assert created.stderr == (
        "UserNotFound: no user 'root'; the list of users gives their logins; "
        "pass --user LOGIN (the default is your login name)\n"
    )


# --- a skim that selected nothing -------------------------------------------------


def test_retry_refuses_a_skim_that_selected_nothing(data_dir: Path) -> None:
    skim_id = create(data_dir, "nothing", "MET > 100000")
    ran = hepcat(data_dir, "skim", "run", str(skim_id), "--wait")

    retried = hepcat(data_dir, "skim", "retry", str(skim_id))
    shown = hepcat(data_dir, "skim", "show", str(skim_id))

    assert ran.exit_code == 1
    assert retried.exit_code == 1
    assert retried.stderr.startswith(
        f"InvalidInput: skim {skim_id} selected no event: a retry would select "
        "none again"
    )
    assert "state:     failed\n" in shown.stdout
    assert "events:    0 of " in shown.stdout
