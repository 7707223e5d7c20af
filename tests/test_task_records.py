"""The ``task_run`` record of a run, from its start: a task server killed
during a run leaves the run recorded as running, and ``hepcat status`` calls
it stale once the lease is gone; a run in progress is shown running, and its
record is completed when it ends.

The kill is real: ``hepcat taskserver`` in a subprocess, ingesting from a
simulated ProdSys database, gets SIGKILL once the run has committed rows.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from click.testing import Result
from flask.testing import FlaskClient
from sqlalchemy import Engine, event, func, select
from sqlalchemy.orm import Session as OrmSession
from sqlalchemy.orm import sessionmaker
from test_status_cli import task_line
from test_taskserver_page import (  # noqa: F401 - client is a fixture
    client,
    task_row,
)

from catalog.db import utcnow
from catalog.models import File, TaskLease, TaskRun
from ingest.simulate import ProdSysSource
from ingest.world import build_world
from taskserver.base import RunContext, RunOutcome, Task
from taskserver.errors import DrainFailed
from taskserver.runner import run_until_drained

ROOT = Path(__file__).resolve().parents[1]
#: Seconds any wait may take before the test fails; never reached when all is well.
WAIT = 60.0
#: The name in the leases and run records of the in-process runs.
OWNER = "host-1:4242:once:a1b2c3"


@pytest.fixture(scope="module")
def prodsys_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A simulated ProdSys database with a world in it (only read)."""
    url = f"sqlite:///{tmp_path_factory.mktemp('sources') / 'prodsys.sqlite'}"
    source = ProdSysSource(url).create()
    source.add_world(build_world(seed=5, files_per_dataset=30))
    source.engine.dispose()
    return url


def runs_of(Session: sessionmaker[OrmSession], name: str) -> list[TaskRun]:  # noqa: N803
    with Session() as session:
        query = select(TaskRun).where(TaskRun.task_name == name).order_by(TaskRun.id)
        return list(session.scalars(query))


# -- a task server killed during a run ---------------------------------------------


def start_task_server(catalogue: str, prodsys_url: str, folder: Path) -> Any:
    """``hepcat taskserver`` ingesting from ProdSys alone, with 1 s leases."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("HEPCAT_")}
    env.update(
        HEPCAT_DATABASE_URL=catalogue,
        HEPCAT_PRODSYS_URL=prodsys_url,
        HEPCAT_PRODSYS_SAFETY_LAG="0",
        HEPCAT_TASKSERVER_LEASE_SECONDS="1",
        HEPCAT_DATA_DIR=str(folder / "data"),
    )
    command = [sys.executable, "-m", "hepcat", "taskserver"]
    with (folder / "taskserver.log").open("w") as log:
        return subprocess.Popen(
            command, env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT
        )


def kill_once_rows_appear(
    process: Any,
    Session: sessionmaker[OrmSession],  # noqa: N803
    log: Path,
) -> None:
    """SIGKILL *process* as soon as its ProdSys run has committed files."""
    deadline = time.monotonic() + WAIT
    try:
        while True:
            with Session() as session:
                if session.scalar(select(func.count()).select_from(File)):
                    return
            running = process.poll() is None
            assert running and time.monotonic() < deadline, log.read_text()
            time.sleep(0.005)
    finally:
        os.kill(process.pid, signal.SIGKILL)
        process.wait(timeout=WAIT)


def wait_for_the_lease_to_run_out(
    Session: sessionmaker[OrmSession],  # noqa: N803
    name: str,
) -> str:
    """Wait until the lease of task *name* has run out; return its owner."""
    with Session() as session:
        lease = session.get(TaskLease, name)
    assert lease is not None and lease.owner and lease.expires
    time.sleep(max((lease.expires - utcnow()).total_seconds(), 0) + 0.2)
    return lease.owner


def test_a_task_server_killed_during_a_run_leaves_it_recorded_and_status_says_stale(
    catalog_engine: Engine,
    Session: sessionmaker[OrmSession],  # noqa: N803
    prodsys_url: str,
    status: Callable[[], Result],
    tmp_path: Path,
) -> None:
    catalogue = catalog_engine.url.render_as_string(hide_password=False)
    process = start_task_server(catalogue, prodsys_url, tmp_path)
    kill_once_rows_appear(process, Session, tmp_path / "taskserver.log")
    owner = wait_for_the_lease_to_run_out(Session, "prodsys")

    [run] = runs_of(Session, "prodsys")
    assert (run.owner, run.outcome, run.ended) == (owner, "running", None)
    result = status()

    assert result.exit_code == 1, result.output
    line = task_line(result, "prodsys")
    assert "prodsys  no end, started " in line
    assert f" by {owner} never ended: its lease ran out " in line
    assert "STALE: the run started " in line


# -- a run in progress, in this process ----------------------------------------------


class Held(Task):
    """Fails while told to; else works until it is let go: a run in progress."""

    name = "held"
    interval = 3600.0

    def __init__(self, fail: bool = False) -> None:
        self.fail = fail
        self.inside = threading.Event()
        self.let_go = threading.Event()

    def run(self, context: RunContext) -> RunOutcome:
        if self.fail:
            raise RuntimeError("the source said no")
        self.inside.set()
        assert self.let_go.wait(WAIT)
        return RunOutcome(items=1, backlog=0)


def hold(task: Held, Session: sessionmaker[OrmSession]) -> threading.Thread:  # noqa: N803
    drain = threading.Thread(
        target=run_until_drained, args=([task], Session), kwargs={"owner": OWNER}
    )
    drain.start()
    assert task.inside.wait(WAIT)
    return drain


def test_a_run_in_progress_is_shown_running_then_its_record_completed(
    Session: sessionmaker[OrmSession],  # noqa: N803
    status: Callable[[], Result],
    client: FlaskClient,  # noqa: F811
) -> None:
    task = Held()
    drain = hold(task, Session)
    try:
        during, page = status(), client.get("/taskserver")
        [running] = runs_of(Session, "held")
    finally:
        task.let_go.set()
        drain.join(WAIT)

    assert during.exit_code == 0, during.output
    line = task_line(during, "held")
    assert line.startswith("held  running, started just now, 0 items")
    assert f"lease held by {OWNER}" in line
    assert "STALE" not in line
    row = task_row(page, "held")
    assert "running" in row and "stale?" not in row
    after = status()
    assert after.exit_code == 0, after.output
    assert task_line(after, "held").startswith("held  ok, ended just now, 1 item,")
    [ended] = runs_of(Session, "held")
    assert (ended.id, ended.owner, ended.started) == (
        running.id,
        OWNER,
        running.started,
    )
    assert (ended.outcome, ended.items, ended.backlog) == ("ok", 1, 0)
    assert ended.ended is not None


def test_a_task_run_again_after_a_failure_stays_failed_until_a_run_ends(
    Session: sessionmaker[OrmSession],  # noqa: N803
    status: Callable[[], Result],
) -> None:
    task = Held(fail=True)
    with pytest.raises(DrainFailed):
        run_until_drained([task], Session, owner=OWNER)
    task.fail = False
    drain = hold(task, Session)
    try:
        during = status()
    finally:
        task.let_go.set()
        drain.join(WAIT)

    assert during.exit_code == 1, during.output
    line = task_line(during, "held")
    assert line.startswith("held  running, started just now, 0 items")
    assert "FAILED: RuntimeError: the source said no" in line
    after = status()
    assert after.exit_code == 0, after.output
    assert [run.outcome for run in runs_of(Session, "held")] == ["failed", "ok"]


def test_a_start_that_cannot_be_recorded_leaves_the_run_recorded_at_its_end(
    catalog_engine: Engine,
    Session: sessionmaker[OrmSession],  # noqa: N803
    caplog: pytest.LogCaptureFixture,
) -> None:
    task = Held()
    task.let_go.set()
    refused: list[str] = []

    def refuse_first_record(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if statement.startswith("INSERT INTO task_run") and not refused:
            refused.append(statement)
            raise RuntimeError("the catalogue refused the row")

    event.listen(catalog_engine, "before_cursor_execute", refuse_first_record)
    try:
        with caplog.at_level(logging.ERROR, logger="taskserver.runs"):
            drained = run_until_drained([task], Session, owner=OWNER)
    finally:
        event.remove(catalog_engine, "before_cursor_execute", refuse_first_record)

    assert refused
    assert "Could not record the start of a run of task held" in caplog.messages
    assert drained == {"held": 1}
    [run] = runs_of(Session, "held")
    assert (run.owner, run.outcome, run.items, run.backlog) == (OWNER, "ok", 1, 0)
    assert run.ended is not None
