"""The ProdSys ingester reads one bite ahead while it writes the last one
(ingest.bites), on a thread or in a process of its own (ingest.readprocess):
a bite read ahead and not written is read again, never lost.
"""

from __future__ import annotations

import datetime as dt
import gc
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import func, select

from catalog.models import Dataset, File
from ingest import schemas
from ingest.bites import BiteReader, ReadThread
from ingest.gcpause import collector_paused
from ingest.keyset import KeysetStream
from ingest.prodsys import Bites, ProdSysIngester
from ingest.prodsysrows import file_row
from ingest.readprocess import ReadProcess
from taskserver.base import RunContext

STAMP = dt.datetime(2026, 11, 1, 12, 0, 0)
TASKS = 3
FILES = 95
SMALL = Bites(files=(10, 10), gear_threshold=10**9)


def _fill(source: Any) -> set[str]:
    """TASKS tasks with a dataset each and FILES files over them; return the
    GUIDs of the files.
    """
    tasks, datasets, files = [], [], []
    for t in range(TASKS):
        name = f"mc16_13TeV.{410000 + t}.Bites.recon.AOD.e1_s2_r{t + 1}"
        tasks.append(
            {"taskid": 100 + t, "taskname": name, "status": "running",
             "total_events": 10_000, "timestamp": STAMP}
        )  # fmt: skip
        datasets.append(
            {"name": name, "taskid": 100 + t, "type": "output", "timestamp": STAMP}
        )
    for f in range(FILES):
        dataset = datasets[f % TASKS]
        files.append(
            {"fileid": f + 1, "dataset": dataset["name"], "taskid": dataset["taskid"],
             "lfn": f"AOD.{f:06d}.pool.root.1", "guid": _guid(f),
             "fsize": 1000, "checksum": "ad:0000abcd", "events": 10 + f,
             "status": "finished", "timestamp": STAMP + dt.timedelta(seconds=f % 7)}
        )  # fmt: skip
    source.insert(schemas.t_production_task, tasks)
    source.insert(schemas.t_production_dataset, datasets)
    source.insert(schemas.t_production_file, files)
    return {f["guid"] for f in files}


def _guid(number: int) -> str:
    return str(uuid.UUID(int=number + 1)).upper()


@pytest.fixture(params=["thread", "process"])
def ingester(request: pytest.FixtureRequest, sources: Any) -> Iterator[Any]:
    """A ProdSys ingester reading bites ahead on a thread, or in a process
    (started and ready before the first run); closed at the end.
    """
    in_process = request.param == "process"
    made = ProdSysIngester(
        sources.prodsys.engine,
        lag=0.0,
        bites=SMALL,
        process_backlog=0 if in_process else None,
    )
    if in_process:
        made._start_process()
        process = made._process
        assert process is not None
        deadline = time.monotonic() + 30
        while not process.ready():
            assert time.monotonic() < deadline, "the reading process did not start"
            time.sleep(0.02)
    yield made
    made.close()


def _count_process_reads(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Count the bites asked of reading processes (one item per bite)."""
    asked: list[int] = []
    real = ReadProcess.submit

    def submit(process: ReadProcess, reader: BiteReader, limit: int) -> Any:
        asked.append(limit)
        return real(process, reader, limit)

    monkeypatch.setattr(ReadProcess, "submit", submit)
    return asked


class ShortRun(RunContext):
    """A run that says "stop" from the ninth time it is asked: it ends in
    the middle of a stream, with a bite read ahead.
    """

    def __init__(self, Session: Any) -> None:  # noqa: N803
        super().__init__(Session, time.monotonic() + 60)
        self.asked = 0

    def should_stop(self) -> bool:
        self.asked += 1
        return self.asked > 8


def _catalogue(Session: Any) -> tuple[set[str], dict[str, tuple[int, int]]]:  # noqa: N803
    with Session() as session:
        guids = set(session.scalars(select(File.guid)))
        counts = {
            name: (n, events)
            for name, n, events in session.execute(
                select(Dataset.name, Dataset.n_files, Dataset.total_events)
            )
        }
    return guids, counts


def _expected_counts() -> dict[str, tuple[int, int]]:
    counts: dict[str, tuple[int, int]] = {}
    for f in range(FILES):
        name = f"mc16_13TeV.{410000 + f % TASKS}.Bites.recon.AOD.e1_s2_r{f % TASKS + 1}"
        n, events = counts.get(name, (0, 0))
        counts[name] = (n + 1, events + 10 + f)
    return counts


def test_runs_out_of_time_give_back_the_bite_read_ahead(
    Session: Any,  # noqa: N803
    sources: Any,
    ingester: ProdSysIngester,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    guids = _fill(sources.prodsys)
    in_process = _count_process_reads(monkeypatch)
    given_back = []
    real = BiteReader.give_back

    def give_back(reader: BiteReader, ahead: Any) -> None:
        given_back.append(ahead.result().rows)
        real(reader, ahead)

    monkeypatch.setattr(BiteReader, "give_back", give_back)
    for _ in range(100):
        outcome = ingester.run(ShortRun(Session))
        if outcome.backlog == 0:
            break
    assert outcome.backlog == 0
    assert given_back and max(given_back) > 0
    assert bool(in_process) == (ingester.process_backlog is not None)
    assert ingester._process is None  # drained: the process is stopped
    found, counts = _catalogue(Session)
    assert found == guids
    assert counts == _expected_counts()


def test_a_failed_write_loses_no_bite(
    Session: Any,  # noqa: N803
    sources: Any,
    ingester: ProdSysIngester,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    guids = _fill(sources.prodsys)
    in_process = _count_process_reads(monkeypatch)
    import ingest.prodsys

    real = ingest.prodsys.write_files
    calls = {"n": 0}

    def failing(*args: Any, **kwargs: Any) -> Any:
        calls["n"] += 1
        if calls["n"] == 3:
            raise ConnectionError("the catalogue went away")
        return real(*args, **kwargs)

    monkeypatch.setattr(ingest.prodsys, "write_files", failing)
    with pytest.raises(ConnectionError):
        ingester.run(RunContext(Session, time.monotonic() + 60))
    monkeypatch.setattr(ingest.prodsys, "write_files", real)
    outcome = ingester.run(RunContext(Session, time.monotonic() + 60))
    assert outcome.backlog == 0
    assert bool(in_process) == (ingester.process_backlog is not None)
    found, counts = _catalogue(Session)
    assert found == guids
    assert counts == _expected_counts()
    with Session() as session:
        assert session.scalar(select(func.count()).select_from(File)) == FILES


def test_a_bite_given_back_is_read_again(sources: Any) -> None:
    _fill(sources.prodsys)
    keyset = KeysetStream(schemas.t_production_file, key_column="fileid", lag=0)
    thread = ReadThread("test-read")
    reader = BiteReader(
        sources.prodsys.engine, keyset, file_row, "fileid", lambda: thread
    )
    with sources.prodsys.engine.connect() as connection:
        keyset.begin_pass(connection, None)
    first = reader.read(10)
    ahead = reader.read_ahead(10)
    reader.give_back(ahead)
    again = reader.read(10)
    thread.close()
    taken = ahead.result()
    assert [f.guid for f in again.mapped.good] == [f.guid for f in taken.mapped.good]
    assert {f.guid for f in first.mapped.good}.isdisjoint(
        f.guid for f in again.mapped.good
    )
    assert again.stop_point == taken.stop_point


# --- the garbage collector while a bite is written ------------------------------


def test_the_collector_is_paused_while_any_thread_writes_a_bite() -> None:
    first_in, second_in, first_out = (threading.Event() for _ in range(3))
    seen: dict[str, bool] = {}

    def writer(name: str, entered: threading.Event, leave: threading.Event) -> None:
        with collector_paused():
            entered.set()
            leave.wait(5)
            seen[name] = gc.isenabled()

    assert gc.isenabled()
    stays = threading.Event()
    second = threading.Thread(target=writer, args=("second", second_in, stays))
    first = threading.Thread(target=writer, args=("first", first_in, first_out))
    first.start()
    first_in.wait(5)
    second.start()
    second_in.wait(5)
    first_out.set()
    first.join(5)
    during = gc.isenabled()  # the second is still writing
    stays.set()
    second.join(5)

    assert seen == {"first": False, "second": False}
    assert during is False
    assert gc.isenabled()


def test_a_collector_turned_off_stays_off() -> None:
    gc.disable()
    try:
        with collector_paused():
            assert not gc.isenabled()
        assert not gc.isenabled()
    finally:
        gc.enable()
