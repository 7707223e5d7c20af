"""Bites read ahead in a process of their own (ingest.readprocess): the same
bites as read in the ingester's process, given back the same way, read in
the ingester's process when the reading process fails, and no process left
behind when the ingester ends, even by ``kill -9``.
"""

from __future__ import annotations

import datetime as dt
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import (
    Column,
    DateTime,
    MetaData,
    String,
    Table,
    create_engine,
    select,
)
from sqlalchemy.exc import DBAPIError
from test_bites import (
    SMALL,
    ShortRun,
    _catalogue,
    _count_process_reads,
    _expected_counts,
    _fill,
)

from catalog.models import Dataset
from ingest import schemas
from ingest.bites import BiteReader
from ingest.keyset import KeysetStream
from ingest.prodsys import Bites, ProdSysIngester
from ingest.prodsysrows import file_row
from ingest.readprocess import ReadProcess, can_read

WAIT = 30.0  # seconds a process may take to start or to end
# A table no source has.
ABSENT = Table(
    "t_absent",
    MetaData(),
    Column("name", String(64), primary_key=True),
    Column("timestamp", DateTime),
)


def wait_ready(process: ReadProcess) -> ReadProcess:
    """*process*, once it can take requests."""
    deadline = time.monotonic() + WAIT
    while not process.ready():
        assert not process.failed and time.monotonic() < deadline
        time.sleep(0.02)
    return process


def ended(pid: int) -> bool:
    """Whether the process *pid* has ended (a zombie has)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return True
    return "State:\tZ" in status


def wait_ended(pid: int) -> bool:
    deadline = time.monotonic() + WAIT
    while not ended(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


@pytest.fixture
def process(sources: Any) -> Iterator[ReadProcess]:
    """A reading process for the ProdSys source, ready."""
    started = ReadProcess(sources.prodsys.engine)
    yield wait_ready(started)
    started.close()


def files_reader(sources: Any, process: ReadProcess) -> BiteReader:
    """A reader of the files of the filled ProdSys source, its pass begun."""
    keyset = KeysetStream(schemas.t_production_file, key_column="fileid", lag=0)
    with sources.prodsys.engine.connect() as connection:
        keyset.begin_pass(connection, None)
    return BiteReader(
        sources.prodsys.engine, keyset, file_row, "fileid", lambda: process
    )


def test_a_bite_read_in_the_process_is_the_bite_read_here(
    sources: Any, process: ReadProcess
) -> None:
    _fill(sources.prodsys)
    reader = files_reader(sources, process)
    reader.read(10)
    start = reader.keyset.cursor

    there = reader.read_ahead(30).result()
    after_there = reader.keyset.cursor
    reader.keyset.cursor = start
    here = reader.read(30)

    assert there.mapped.good == [tuple(row) for row in here.mapped.good]
    assert len(there.mapped.good) == 30
    assert (there.before, there.stop_point, there.rows) == (
        here.before,
        here.stop_point,
        here.rows,
    )
    assert after_there == reader.keyset.cursor


def test_a_bite_given_back_is_read_again(sources: Any, process: ReadProcess) -> None:
    _fill(sources.prodsys)
    reader = files_reader(sources, process)
    reader.read(10)

    ahead = reader.read_ahead(10)
    reader.give_back(ahead)
    again = reader.read_ahead(10).result()

    assert again.mapped.good == ahead.result().mapped.good
    assert again.stop_point == ahead.result().stop_point


def test_when_the_process_dies_the_bite_is_read_here(
    sources: Any, process: ReadProcess, caplog: pytest.LogCaptureFixture
) -> None:
    _fill(sources.prodsys)
    reader = files_reader(sources, process)
    reader.read(10)
    start = reader.keyset.cursor
    os.kill(process.pid, signal.SIGKILL)
    assert wait_ended(process.pid)

    bite = reader.read_ahead(10).result()

    reader.keyset.cursor = start
    assert bite.mapped.good == reader.read(10).mapped.good
    assert process.failed and not process.ready()
    assert "reading on a thread instead" in caplog.text


def test_an_error_reading_is_raised_and_moves_no_cursor(
    sources: Any, process: ReadProcess
) -> None:
    keyset = KeysetStream(ABSENT, key_column="name", lag=0)
    with sources.prodsys.engine.connect() as connection:
        keyset.begin_pass(connection, None)
    reader = BiteReader(sources.prodsys.engine, keyset, dict, "name", lambda: process)
    before = keyset.cursor

    ahead = reader.read_ahead(10)

    with pytest.raises(DBAPIError):
        ahead.result()
    assert keyset.cursor == before
    assert not process.failed


def test_close_ends_the_process(sources: Any) -> None:
    process = wait_ready(ReadProcess(sources.prodsys.engine))

    process.close()

    assert ended(process.pid)


def test_the_process_ends_when_its_ingester_is_killed(tmp_path: Path) -> None:
    source = tmp_path / "prodsys.sqlite"
    script = textwrap.dedent(
        f"""
        import time
        from sqlalchemy import create_engine
        from ingest.readprocess import ReadProcess
        process = ReadProcess(create_engine("sqlite:///{source}"))
        while not process.ready():
            time.sleep(0.02)
        print(process.pid, flush=True)
        time.sleep(600)
        """
    )
    ingester = subprocess.Popen(
        [sys.executable, "-c", script], stdout=subprocess.PIPE, text=True
    )
    assert ingester.stdout is not None
    child = int(ingester.stdout.readline())
    assert not ended(child)

    ingester.kill()
    ingester.wait()
    ingester.stdout.close()

    assert wait_ended(child)


def test_the_process_imports_no_catalogue_model() -> None:
    """What the process imports before it is ready (itself, ProdSys's
    mappers, what unpickling a request needs) leaves out the catalogue's
    models, the ORM and the writers: it is ready in a fraction of the time.
    """
    script = textwrap.dedent(
        """
        import sys
        import ingest.readprocess, ingest.prodsysrows, ingest.schemas
        heavy = ("catalog.models", "catalog.derived", "sqlalchemy.orm", "ingest.files")
        print(",".join(sorted(m for m in heavy if m in sys.modules)))
        """
    )
    found = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    )

    assert found.stdout.strip() == ""


def test_an_in_memory_source_is_read_on_the_thread(tmp_path: Path) -> None:
    assert not can_read(create_engine("sqlite://"))
    assert not can_read(create_engine("sqlite:///:memory:"))
    assert can_read(create_engine(f"sqlite:///{tmp_path / 'source.sqlite'}"))
    assert can_read(create_engine("postgresql+psycopg://u@localhost/db"))


def test_a_bite_asked_before_the_process_is_ready_waits_for_it(
    sources: Any,
) -> None:
    _fill(sources.prodsys)
    process = ReadProcess(sources.prodsys.engine)
    reader = files_reader(sources, process)

    bite = reader.read_ahead(10).result()
    process.close()

    assert len(bite.mapped.good) == 10
    assert not process.failed


def test_a_reading_process_killed_while_draining_loses_no_file(
    Session: Any,  # noqa: N803
    sources: Any,
    caplog: pytest.LogCaptureFixture,
) -> None:
    guids = _fill(sources.prodsys)
    ingester = ProdSysIngester(
        sources.prodsys.engine, lag=0.0, bites=SMALL, process_backlog=0
    )
    outcome = ingester.run(ShortRun(Session))
    process = ingester._process
    assert process is not None and outcome.backlog > 0
    wait_ready(process)
    ingester.run(ShortRun(Session))
    os.kill(process.pid, signal.SIGKILL)

    for _ in range(100):
        outcome = ingester.run(ShortRun(Session))
        if outcome.backlog == 0:
            break
    ingester.close()

    assert outcome.backlog == 0
    assert wait_ended(process.pid)
    assert "reading on a thread instead" in caplog.text
    found, counts = _catalogue(Session)
    assert found == guids
    assert counts == _expected_counts()


def _fill_tasks(source: Any, count: int) -> set[str]:
    """*count* tasks with an output dataset each and no file; their names."""
    stamp = dt.datetime(2026, 11, 1, 12, 0, 0)
    names = [f"mc16_13TeV.{420000 + t}.Ahead.recon.AOD.e{t}_r{t}" for t in range(count)]
    source.insert(
        schemas.t_production_task,
        [{"taskid": 500 + t, "taskname": name, "status": "done",
          "total_events": 1000, "timestamp": stamp}
         for t, name in enumerate(names)],
    )  # fmt: skip
    source.insert(
        schemas.t_production_dataset,
        [{"name": name, "taskid": 500 + t, "type": "output", "timestamp": stamp}
         for t, name in enumerate(names)],
    )  # fmt: skip
    return set(names)


@pytest.mark.parametrize(("tasks", "in_process"), [(30, True), (10, False)])
def test_a_large_backlog_of_tasks_is_read_ahead_in_a_process(
    Session: Any,  # noqa: N803
    sources: Any,
    monkeypatch: pytest.MonkeyPatch,
    tasks: int,
    in_process: bool,
) -> None:
    names = _fill_tasks(sources.prodsys, tasks)
    asked = _count_process_reads(monkeypatch)
    bites = Bites(tasks=(5, 5), datasets=(5, 5), gear_threshold=10**9)
    # 60 rows of tasks and datasets are enough for a process, 20 are not.
    ingester = ProdSysIngester(
        sources.prodsys.engine, lag=0.0, bites=bites, process_backlog=50
    )
    outcome = ingester.run(ShortRun(Session))
    process = ingester._process
    assert (process is not None) == in_process
    if process is not None:
        wait_ready(process)
    for _ in range(100):
        if outcome.backlog == 0:
            break
        outcome = ingester.run(ShortRun(Session))
    ingester.close()

    assert outcome.backlog == 0
    assert bool(asked) == in_process
    with Session() as session:
        query = select(Dataset.name, Dataset.prodsys_status)
        found = dict(session.execute(query).all())
    assert found == {name: "NO EVENTS AVAILABLE" for name in names}
