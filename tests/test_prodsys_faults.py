"""ProdSys ingestion faults an operator's audit found: rows held for want of
a refused parent, rows without a timestamp past the first 10,000, files of
log datasets, a backlog that counted the overlap window, timestamps a
SQLite source holds as other text, and file values whose sums overflow. On
SQLite, and on PostgreSQL and MariaDB (sources on the same server as the
catalogue).
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from typing import Any

import pytest
from sqlalchemy import func, select, text, update

from catalog.consistency import check_derived
from catalog.models import Dataset, File, ProductionTask, Quarantine
from catalog.operations import quarantine
from ingest import schemas
from ingest.keyset import KeysetStream, UnorderedTimestamp
from ingest.prodsys import ProdSysIngester
from ingest.simulate import ProdSysSource, naive
from taskserver.base import RunContext, RunOutcome
from taskserver.errors import DrainFailed

TASK = 20_000_001
NAME = "mc16_13TeV.999001.Audit_Zee.evgen.EVNT.e3601"
LOG = "mc16_13TeV.999001.Audit_Zee.evgen.log.e3601"


def _ago(minutes: float) -> dt.datetime:
    return naive(dt.datetime.now(dt.UTC) - dt.timedelta(minutes=minutes))


def _task(status: str | None, when: dt.datetime) -> dict[str, Any]:
    return {
        "taskid": TASK,
        "parent_tid": TASK,
        "taskname": "mc16_13TeV.999001.Audit_Zee.evgen.e3601",
        "project": "mc16_13TeV",
        "step_name": "evgen",
        "status": status,
        "ctag": "e3601",
        "total_events": 5000,
        "timestamp": when,
    }


def _dataset(name: str, when: dt.datetime, kind: str = "output") -> dict[str, Any]:
    return {"name": name, "taskid": TASK, "type": kind, "timestamp": when}


def _file(fileid: int, dataset: str, when: dt.datetime | None) -> dict[str, Any]:
    return {
        "fileid": fileid,
        "dataset": dataset,
        "taskid": TASK,
        "lfn": f"EVNT.{fileid:08d}._000001.pool.root.1",
        "guid": f"00000000-0000-0000-0000-{fileid:012d}",
        "fsize": 1000,
        "checksum": "ad:00000001",
        "events": 10,
        "status": "finished",
        "timestamp": when,
    }


def _records(Session) -> dict[str, Quarantine]:  # noqa: N803
    with Session() as session:
        return {q.record_key: q for q in session.scalars(select(Quarantine))}


def _catalogued(Session) -> tuple[set[int], set[str], set[str]]:  # noqa: N803
    with Session() as session:
        return (
            set(session.scalars(select(ProductionTask.task_id))),
            set(session.scalars(select(Dataset.name))),
            set(session.scalars(select(File.guid))),
        )


def _fix_task(sources) -> None:
    table = schemas.t_production_task
    with sources.prodsys.engine.begin() as connection:
        connection.execute(
            update(table)
            .where(table.c.taskid == TASK)
            .values(status="running", timestamp=naive(dt.datetime.now(dt.UTC)))
        )


# --- 1. rows held for want of a refused parent --------------------------------


@pytest.fixture
def refused_task(Session, sources, ingest) -> dict[str, Quarantine]:  # noqa: N803
    """A task refused (no status) with its dataset and a file, written ten
    minutes ago: the stop points move past them. Return the records held.
    """
    when = _ago(10)
    sources.prodsys.insert(schemas.t_production_task, [_task(None, when)])
    sources.prodsys.insert(schemas.t_production_dataset, [_dataset(NAME, when)])
    sources.prodsys.insert(schemas.t_production_file, [_file(7001, NAME, when)])
    ingest()
    ingest()  # the operator waits; the rows are behind the stop points now
    return _records(Session)


def test_a_row_held_for_a_refused_parent_says_so(refused_task):
    task, dataset = refused_task[str(TASK)], refused_task[NAME]
    file = refused_task["00000000-0000-0000-0000-000000007001"]

    assert task.reason == "status is missing"
    assert dataset.reason == f"task {TASK} was refused (quarantine record {task.id})"
    assert file.reason == (
        f"dataset {NAME!r} was refused (quarantine record {dataset.id})"
    )
    assert len(refused_task) == 3


def test_rows_held_for_a_refused_task_are_ingested_once_it_is_fixed(
    Session,  # noqa: N803
    sources,
    ingest,
    refused_task,
):
    _fix_task(sources)

    ingest()

    tasks, names, guids = _catalogued(Session)
    assert TASK in tasks and NAME in names
    assert "00000000-0000-0000-0000-000000007001" in guids
    with Session() as session:
        dataset = session.scalar(select(Dataset).where(Dataset.name == NAME))
        assert (dataset.n_files, dataset.total_events) == (1, 10)
    records = _records(Session)
    for key in (NAME, "00000000-0000-0000-0000-000000007001"):
        assert records[key].released
        assert records[key].reason.endswith(" UTC: read again without error")
    # The task's own record names a number a file id could have too: it
    # waits for an operator, as before.
    assert not records[str(TASK)].released


def test_rows_an_operator_released_before_the_fix_are_not_lost(
    Session,  # noqa: N803
    sources,
    ingest,
    refused_task,
):
    with Session.begin() as session:
        session.execute(update(Quarantine).values(released=True))
    ingest()
    _fix_task(sources)

    ingest()

    _, names, guids = _catalogued(Session)
    assert NAME in names and "00000000-0000-0000-0000-000000007001" in guids


def test_a_file_read_before_its_dataset_exists_is_ingested_when_it_comes(
    Session,  # noqa: N803
    sources,
    ingest,
):
    sources.prodsys.insert(schemas.t_production_task, [_task("running", _ago(10))])
    sources.prodsys.insert(schemas.t_production_file, [_file(7002, NAME, _ago(10))])
    ingest()
    [record] = _records(Session).values()
    assert record.reason == f"dataset {NAME!r} is in neither ProdSys nor the catalogue"

    sources.prodsys.insert(schemas.t_production_dataset, [_dataset(NAME, _ago(0))])
    ingest()

    _, _, guids = _catalogued(Session)
    assert "00000000-0000-0000-0000-000000007002" in guids
    assert _records(Session)[record.record_key].released


def test_a_file_waiting_for_its_dataset_stays_held_when_another_takes_its_guid(
    Session,  # noqa: N803
    sources,
    ingest,
):
    """Its dataset comes with another file of the same GUID: the waiting
    file is no longer taken for catalogued, and stays held for the clash."""
    sources.prodsys.insert(schemas.t_production_task, [_task("running", _ago(10))])
    waiting = _file(7003, NAME, _ago(10))
    sources.prodsys.insert(schemas.t_production_file, [waiting])
    ingest()
    other = {**_file(7004, NAME, _ago(0)), "guid": waiting["guid"]}
    sources.prodsys.insert(schemas.t_production_dataset, [_dataset(NAME, _ago(0))])
    sources.prodsys.insert(schemas.t_production_file, [other])

    ingest()

    with Session() as session:
        held = session.scalars(
            select(Quarantine).where(
                Quarantine.record_key == waiting["guid"],
                Quarantine.released.is_not(True),
            )
        ).all()
        lfn = session.scalar(select(File.lfn).where(File.guid == waiting["guid"]))
    assert lfn == other["lfn"]
    assert held, "the file that lost its GUID is held, not released"


def test_adopting_a_file_leaves_held_another_rows_record_under_its_guid(
    Session,  # noqa: N803
    sources,
    ingest,
):
    """A file waiting for its dataset is read once the dataset comes; a row
    of another LFN refused under the same GUID (its LFN is another file's)
    is not corrected by that, and its record stays held."""
    other_dataset = NAME.replace("e3601", "e3602")
    sources.prodsys.insert(schemas.t_production_task, [_task("running", _ago(10))])
    sources.prodsys.insert(
        schemas.t_production_dataset, [_dataset(other_dataset, _ago(10))]
    )
    owner = _file(7007, other_dataset, _ago(10))
    sources.prodsys.insert(schemas.t_production_file, [owner])
    ingest()
    waiting = _file(7005, NAME, _ago(5))
    taken = {**_file(7006, other_dataset, _ago(5)), "guid": waiting["guid"]}
    taken["lfn"] = owner["lfn"]
    sources.prodsys.insert(schemas.t_production_file, [waiting, taken])
    ingest()
    sources.prodsys.insert(schemas.t_production_dataset, [_dataset(NAME, _ago(0))])

    ingest()

    with Session() as session:
        held = session.scalars(
            select(Quarantine.payload).where(
                Quarantine.record_key == waiting["guid"],
                Quarantine.released.is_not(True),
            )
        ).all()
        lfn = session.scalar(select(File.lfn).where(File.guid == waiting["guid"]))
    assert lfn == waiting["lfn"], "the waiting file is read"
    assert len(held) == 1 and owner["lfn"] in held[0], "the other row stays held"


# --- 2. rows without a timestamp ----------------------------------------------


def test_every_row_without_a_timestamp_is_read(Session, sources, ingest):  # noqa: N803
    sources.prodsys.insert(schemas.t_production_task, [_task("running", _ago(1))])
    sources.prodsys.insert(schemas.t_production_dataset, [_dataset(NAME, _ago(1))])
    files = [_file(100_000 + n, NAME, None) for n in range(10_050)]
    sources.prodsys.insert(schemas.t_production_file, files)

    ingest()

    with Session() as session:
        assert session.scalar(select(func.count()).select_from(File)) == 10_050
        assert session.scalar(select(func.count()).select_from(Quarantine)) == 0


def test_a_stream_reads_the_rows_without_a_timestamp_first_in_bites(sources):
    table = schemas.t_production_file
    sources.prodsys.insert(table, [_file(n, NAME, None) for n in (5, 1, 3)])
    sources.prodsys.insert(table, [_file(10 + n, NAME, _ago(5 - n)) for n in range(5)])
    keyset = KeysetStream(table, key_column="fileid", lag=0)

    def fileids(rows) -> list[int]:
        return [row.fileid for row in rows]

    with sources.prodsys.engine.connect() as connection:
        keyset.begin_pass(connection, None)
        left = keyset.left(connection)
        first, second, third = (keyset.read(connection, 4) for _ in range(3))
        stop = keyset.stop_point()
        for written in (first, second, third):  # as the ingester notes them
            keyset.reached = keyset.reached.joined(written.reached)
        keyset.begin_pass(connection, None)  # a pass over what was read
        again = keyset.left(connection), keyset.read(connection, 10)

    assert (left.rows, left.new) == (8, 8)
    assert fileids(first.rows) == [1, 3, 5, 10]
    assert fileids(second.rows) == [11, 12, 13, 14]
    assert list(third.rows) == [] and (stop.key, stop.timestamp) == (14, _last(sources))
    assert [first.new, second.new] == [4, 4]
    assert (again[0].rows, again[0].new) == (8, 0)
    assert fileids(again[1].rows) == [1, 3, 5, 10, 11, 12, 13, 14]
    assert again[1].new == 0


def _running_task_with_files(sources, files: list[dict[str, Any]]) -> None:
    """A running task, written a minute ago, its dataset NAME, and *files*."""
    sources.prodsys.insert(schemas.t_production_task, [_task("running", _ago(1))])
    sources.prodsys.insert(schemas.t_production_dataset, [_dataset(NAME, _ago(1))])
    sources.prodsys.insert(schemas.t_production_file, files)


def test_a_row_timed_before_1970_is_read_as_one_without_a_timestamp(
    Session,  # noqa: N803
    sources,
    ingest,
):
    # Every cursor starts after 1970: a year typed in error (or MariaDB's
    # zero date) was never read on PostgreSQL and MariaDB, without a word.
    when = [dt.datetime(1900, 1, 1), dt.datetime(1969, 12, 31, 23, 59), _ago(1)]
    _running_task_with_files(
        sources, [_file(300 + n, NAME, moment) for n, moment in enumerate(when)]
    )
    if sources.prodsys.engine.dialect.name == "sqlite":
        # Text that sorts before 1970 stops the table, as other text does.
        with pytest.raises(DrainFailed):
            ingest()
        return

    ingest()
    ingest()  # each pass reads them again, as rows without a timestamp

    with Session() as session:
        assert get_counts(session) == (3, 30)
        assert session.scalar(select(func.count()).select_from(Quarantine)) == 0
        assert check_derived(session=session) == []


def test_a_file_name_that_is_a_path_is_quarantined(
    Session,  # noqa: N803
    sources,
    ingest,
):
    names = {400: "/etc/hostname", 401: "../../etc/passwd", 402: "..", 403: None}
    _running_task_with_files(
        sources,
        [
            _file(fileid, NAME, _ago(1)) | ({"lfn": lfn} if lfn else {})
            for fileid, lfn in names.items()
        ],
    )

    ingest()

    held = _records(Session)
    assert {key[-3:]: q.reason for key, q in held.items()} == {
        str(fileid): f"lfn {lfn!r} is a path, not a file name"
        for fileid, lfn in names.items()
        if lfn
    }
    with Session() as session:
        assert get_counts(session) == (1, 10)


def test_text_keys_are_counted_in_the_order_of_the_database(sources):
    # Datasets that share a timestamp are read in the order of their names,
    # which MariaDB's collation gives without regard to case: Python's
    # order ("B" before "a") is not the database's.
    table = schemas.t_production_dataset
    when = _ago(5)
    names = [f"mc16_13TeV.999001.Audit.evgen.EVNT.{x}" for x in "aBcDeF"]
    sources.prodsys.insert(table, [_dataset(name, when) for name in names])
    keyset = KeysetStream(table, key_column="name", lag=0)

    def one_pass() -> tuple[int, int]:
        """A pass a row at a time: what it counted left, and found new."""
        found = 0
        with sources.prodsys.engine.connect() as connection:
            keyset.begin_pass(connection, None)
            left = keyset.left(connection)
            while batch := keyset.read(connection, 1):
                if not batch.rows:
                    break
                found += batch.new
                keyset.reached = keyset.reached.joined(batch.reached)
        return left.new, found

    first = one_pass()
    again = one_pass()
    later = _dataset(names[0][:-1] + "G", when + dt.timedelta(seconds=1))
    sources.prodsys.insert(table, [later])
    third = one_pass()

    assert first == (6, 6)
    assert again == (0, 0)
    assert third == (1, 1)


def _last(sources) -> dt.datetime:
    """The latest timestamp of the source's files."""
    table = schemas.t_production_file
    with sources.prodsys.engine.connect() as connection:
        return connection.scalar(select(func.max(table.c.timestamp)))


# --- 3. files of log datasets -------------------------------------------------


def test_files_of_a_log_dataset_are_skipped_not_quarantined(Session, sources):  # noqa: N803
    when = _ago(1)
    sources.prodsys.insert(schemas.t_production_task, [_task("running", when)])
    sources.prodsys.insert(
        schemas.t_production_dataset,
        [_dataset(NAME, when), _dataset(LOG, when, kind="log")],
    )
    sources.prodsys.insert(
        schemas.t_production_file,
        [_file(7100, NAME, when), _file(7101, LOG, when), _file(7102, LOG, when)],
    )
    ingester = ProdSysIngester(sources.prodsys.engine)

    try:
        outcomes = _drain(ingester, Session)
    finally:
        ingester.close()

    assert _records(Session) == {}
    _, names, guids = _catalogued(Session)
    assert names == {NAME}
    assert guids == {"00000000-0000-0000-0000-000000007100"}
    assert "2 files of log datasets skipped" in outcomes[0].note


def test_a_log_file_held_with_the_old_false_reason_is_released(
    Session,  # noqa: N803
    sources,
    ingest,
):
    # As ingesters before 2026-12-06 held every file of a log dataset.
    when = _ago(10)
    sources.prodsys.insert(schemas.t_production_task, [_task("running", when)])
    sources.prodsys.insert(schemas.t_production_dataset, [_dataset(LOG, when, "log")])
    row = _file(7200, LOG, when)
    sources.prodsys.insert(schemas.t_production_file, [row])
    guid = row["guid"].upper()
    with Session.begin() as session:
        held = {"dataset": LOG, "lfn": row["lfn"], "guid": guid, "status": "finished"}
        reason = f"dataset {LOG!r} is in neither ProdSys nor the catalogue"
        quarantine("prodsys", guid, held, reason, session=session)

    ingest()

    record = _records(Session)[guid]
    assert record.released
    assert record.reason.endswith(" UTC: read again without error")
    assert _catalogued(Session)[2] == set()


def _drain(ingester: ProdSysIngester, Session) -> list[RunOutcome]:  # noqa: N803
    """Run *ingester* until it reports no backlog; return the outcomes."""
    outcomes = []
    for _ in range(50):
        outcomes.append(ingester.run(RunContext(Session, time.monotonic() + 30)))
        if outcomes[-1].backlog == 0:
            return outcomes
    raise AssertionError("the ingester never drained")


# --- 4. the backlog after a burst ---------------------------------------------


def _cut_short(Session) -> RunContext:  # noqa: N803
    """A run asked to stop as it starts (the task server stopping): it
    begins its passes and counts, and reads nothing.
    """
    stop = threading.Event()
    stop.set()
    return RunContext(Session, time.monotonic() + 30, stop)


def test_rows_read_again_in_the_overlap_window_are_no_backlog(
    Session,  # noqa: N803
    sources,
):
    # A burst written now: every row is in the overlap window (the default
    # lag, 120 s) of every pass for two minutes.
    when = _ago(0)
    sources.prodsys.insert(schemas.t_production_task, [_task("running", when)])
    sources.prodsys.insert(schemas.t_production_dataset, [_dataset(NAME, when)])
    burst = [_file(200_000 + n, NAME, when) for n in range(300)]
    sources.prodsys.insert(schemas.t_production_file, burst)
    ingester = ProdSysIngester(sources.prodsys.engine)
    try:
        _drain(ingester, Session)
        _drain(ingester, Session)  # a pass that reads every row again

        drained = ingester.run(_cut_short(Session))  # its passes begin
        more = [_file(300_000 + n, NAME, _ago(0)) for n in range(4)]
        sources.prodsys.insert(schemas.t_production_file, more)
        arrived = ingester.run(_cut_short(Session))  # the same passes
        _drain(ingester, Session)
        after = ingester.run(_cut_short(Session))
    finally:
        ingester.close()

    assert drained.backlog == 0
    assert arrived.backlog == 4
    assert after.backlog == 0
    _, _, guids = _catalogued(Session)
    assert len(guids) == 304


# --- 5. timestamps a SQLite source holds as other text ------------------------


@pytest.fixture
def sqlite_prodsys(tmp_path) -> Any:
    """A ProdSys source in SQLite, whatever the catalogue's database: the
    task and its dataset written as hepcat's simulator writes them.
    """
    source = ProdSysSource(f"sqlite:///{tmp_path / 'handmade.sqlite'}").create()
    source.insert(schemas.t_production_task, [_task("running", _ago(10))])
    source.insert(schemas.t_production_dataset, [_dataset(NAME, _ago(10))])
    yield source
    source.engine.dispose()


@pytest.mark.parametrize(
    "stored",
    [
        "2026-12-01 00:00:00",  # SQLite's datetime(): lost past the first bite
        "2026-12-01T00:00:00",  # ISO: the same first bite read for ever
        1764547200,  # seconds since 1970: never read
    ],
)
def test_a_timestamp_stored_as_other_text_stops_the_table_and_loses_nothing(
    Session,  # noqa: N803
    sqlite_prodsys,
    stored,
):
    table = schemas.t_production_file
    files = [_file(9000 + n, NAME, None) for n in range(1500)]
    sqlite_prodsys.insert(table, files)
    with sqlite_prodsys.engine.begin() as connection:
        statement = text("UPDATE t_production_file SET timestamp = :stored")
        connection.execute(statement, {"stored": stored})
    ingester = ProdSysIngester(sqlite_prodsys.engine)
    try:
        with pytest.raises(UnorderedTimestamp) as stopped:
            ingester.run(RunContext(Session, time.monotonic() + 3))
        with sqlite_prodsys.engine.begin() as connection:  # the operator's fix
            connection.execute(update(table).values(timestamp=dt.datetime(2026, 12, 1)))
        _drain(ingester, Session)
    finally:
        ingester.close()

    assert str(stopped.value).startswith(
        f"t_production_file: the row fileid = 9000 has timestamp {stored!r}, "
        "not a time in text of the form 'YYYY-MM-DD HH:MM:SS.ffffff'"
    )
    assert len(_catalogued(Session)[2]) == 1500
    with Session() as session:
        assert get_counts(session) == (1500, 15_000)


def get_counts(session) -> tuple[int, int]:
    dataset = session.scalar(select(Dataset).where(Dataset.name == NAME))
    return dataset.n_files, dataset.total_events


# --- 6. file values whose sums overflow ---------------------------------------

# The column, its values in two files, how many are refused, and why.
BEYOND = {
    "events": ("events", [2**62, 2**62], 2, "is more than 1099511627776"),
    "size": ("fsize", [2**63 - 1, 1], 1, "is more than 4398046511104"),
    "cross-section": ("cross_section", [1e308, 1e308], 2, "is more than 1e+15"),
}


@pytest.mark.parametrize("beyond", BEYOND)
def test_a_file_value_beyond_any_file_is_quarantined_and_stops_nothing(
    Session,  # noqa: N803
    sources,
    ingest,
    beyond,
):
    # Two files whose values sum past BIGINT or a double, in a dataset
    # recomputed in the same batch as another dataset of the task.
    column, values, refused, bound = BEYOND[beyond]
    other = NAME.replace("EVNT", "HITS")
    when = _ago(10)
    sources.prodsys.insert(schemas.t_production_task, [_task("done", when)])
    sources.prodsys.insert(
        schemas.t_production_dataset, [_dataset(NAME, when), _dataset(other, when)]
    )
    files = [_file(8000 + n, NAME, when) | {column: v} for n, v in enumerate(values)]
    files += [_file(8100, other, when) | {"cross_section": 2.0}]
    sources.prodsys.insert(schemas.t_production_file, files)

    ingest()

    reasons = {key: record.reason for key, record in _records(Session).items()}
    reason = f"{column} = {values[0]!r} {bound}"
    assert reasons == {str(8000 + n): reason for n in range(refused)}
    with Session() as session:
        shown = {
            d.name: (d.n_files, d.total_events)
            for d in session.scalars(select(Dataset))
        }
        assert check_derived(session=session) == []
    kept = len(values) - refused
    assert shown == {NAME: (kept, 10 * kept), other: (1, 10)}
