"""``hepcat status``, as an operator or a cron job reads it: a line per task
with its last run, the task that needs a look flagged with the reason, and
the exit status that says whether anything does.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from sqlalchemy import Engine
from sqlalchemy.orm import Session as OrmSession
from sqlalchemy.orm import sessionmaker
from test_taskserver_page import (
    OWNER,
    add_runs,
    multi_line_sql_error,
    running_servers_tasks,
)

from catalog.derived import mark_changed
from catalog.models import TaskLease, TaskRun
from catalog.operations import quarantine
from hepcat.cli import main
from taskserver.runs import describe_error

ZEE = "mc16_13TeV.361106.PowhegPythia8EvtGen_AZNLOCTEQ6L1_Zee"
ZEE_AOD = f"{ZEE}.recon.AOD.e3601_s3126_r10724"


@pytest.fixture
def now() -> dt.datetime:
    """The time the test begins: its runs are this long ago."""
    return dt.datetime.now(dt.UTC)


def task_line(result: Result, name: str) -> str:
    """The line of task *name* in the output."""
    found = [line for line in result.stdout.splitlines() if line.split()[0] == name]
    assert len(found) == 1, result.output
    return found[0]


FLAGS = ("LATE", "STALE", "FAILED")


def test_a_task_that_stopped_while_the_others_run_is_named_late(
    status: Callable[[], Result],
    Session: sessionmaker[OrmSession],  # noqa: N803
    now: dt.datetime,
) -> None:
    running_servers_tasks(Session, now)
    # ddm ran every second until 4 min ago.
    add_runs(
        Session,
        "ddm",
        now=now,
        last=dt.timedelta(minutes=4, seconds=20),
        every=dt.timedelta(seconds=1),
    )

    result = status()

    assert result.exit_code == 1, result.output
    ddm = task_line(result, "ddm")
    assert "ok, ended 4 min ago, 3 items, backlog 0" in ddm
    assert "LATE: no run for 4 min; it usually runs again within 1 s" in ddm
    assert not any(flag in task_line(result, "tier0") for flag in FLAGS)
    assert "a task server runs" in result.stdout


@pytest.mark.parametrize("lease", ["free", "another owner"])
def test_a_run_left_running_without_its_lease_is_stale(
    status: Callable[[], Result],
    Session: sessionmaker[OrmSession],  # noqa: N803
    now: dt.datetime,
    lease: str,
) -> None:
    running_servers_tasks(Session, now)
    started = now - dt.timedelta(hours=1, minutes=10)
    with Session.begin() as session:
        # The task server died in this run; nothing ended it.
        session.add(TaskRun(task_name="ddm", owner="host-2:99", started=started))
        session.add(
            TaskLease(
                task_name="ddm",
                owner=None if lease == "free" else "host-3:7",
                expires=None if lease == "free" else now + dt.timedelta(seconds=30),
            )
        )

    result = status()

    assert result.exit_code == 1, result.output
    ddm = task_line(result, "ddm")
    assert "no end, started 1 h 10 min ago" in ddm
    why = "its lease is free" if lease == "free" else "host-3:7 holds its lease now"
    assert (
        f"STALE: the run started 1 h 10 min ago by host-2:99 never ended: {why}" in ddm
    )
    assert "LATE" not in ddm
    assert "running" not in ddm


def test_a_task_whose_last_run_failed_says_why_without_the_sql(
    status: Callable[[], Result],
    Session: sessionmaker[OrmSession],  # noqa: N803
    catalog_engine: Engine,
    now: dt.datetime,
) -> None:
    running_servers_tasks(Session, now)
    exc = multi_line_sql_error(catalog_engine)
    with Session.begin() as session:
        session.add(
            TaskRun(
                task_name="tier0",
                owner=OWNER,
                started=now - dt.timedelta(seconds=3),
                ended=now - dt.timedelta(seconds=2),
                outcome="failed",
                error=describe_error(exc),
            )
        )

    result = status()

    assert result.exit_code == 1, result.output
    tier0 = task_line(result, "tier0")
    assert "failed, ended " in tier0
    first_line = str(exc).splitlines()[0]
    assert f"FAILED: sqlalchemy.exc.{type(exc).__name__}: {first_line}" in tier0
    for sql in ("FROM", "[SQL", "Traceback"):
        assert sql not in result.stdout


def test_healthy_tasks_raise_no_flag_and_exit_0(
    status: Callable[[], Result],
    Session: sessionmaker[OrmSession],  # noqa: N803
    dataset_factory: Callable[..., Any],
    now: dt.datetime,
) -> None:
    running_servers_tasks(Session, now)
    aod = dataset_factory(ZEE_AOD)
    with Session.begin() as session:
        mark_changed([aod.id], session=session)
        for key in ("a", "b"):
            quarantine("tier0", key, {}, "bad", session=session)

    result = status()

    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert [line.split()[0] for line in lines[:4]] == [
        "coma",
        "prodsys",
        "skim",
        "tier0",
    ]
    assert not any(flag in result.stdout for flag in FLAGS)
    assert "ok, ended " in task_line(result, "coma")
    assert f"lease held by {OWNER}" in task_line(result, "prodsys")
    assert "lease held" not in task_line(result, "tier0")
    assert lines[4:] == [
        "a task server runs",
        "2 records held in quarantine",
        "1 dataset waiting for their derived quantities",
    ]


def test_no_task_server_running_is_said_with_when_the_last_run_ended(
    status: Callable[[], Result],
    Session: sessionmaker[OrmSession],  # noqa: N803
    now: dt.datetime,
) -> None:
    three_hours = dt.timedelta(hours=3, seconds=30)
    add_runs(Session, "prodsys", now=now, last=three_hours, count=1)

    result = status()

    assert "no task server seems to run: the last run ended 3 h ago" in result.stdout
    assert result.exit_code == 1  # a monitoring check raises the alarm


def test_an_empty_catalogue_says_no_task_has_run(
    status: Callable[[], Result],
) -> None:
    result = status()

    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[0] == (
        "no task has run yet: start 'hepcat taskserver', or run 'hepcat ingest --once'"
    )


def test_an_unreachable_catalogue_is_one_line_on_stderr(tmp_path: Path) -> None:
    url = "postgresql+psycopg://nobody:secret@127.0.0.1:9/x"

    result = CliRunner().invoke(
        main,
        ["--data-dir", str(tmp_path), "status"],
        env={"HEPCAT_DATABASE_URL": url},
    )

    assert result.exit_code == 1
    assert result.stderr.startswith("DatabaseUnavailable: cannot reach the catalogue")
    assert "secret" not in result.output
    assert result.stdout == ""
