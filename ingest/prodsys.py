"""The ProdSys ingester: tasks, output datasets, files and AMI tags.

Four tables are read as keyset streams (``ingest.keyset``), each with its own
stop point: config tags, tasks, datasets, files, in that order. AMI's rule
sets the pace: bites of 20 tasks, and when the backlog exceeds 1000 tasks,
a change of gear to much larger bites (and larger transactions) until it is
drained; bites of a large backlog of files or tasks are then read ahead in
a process of its own (``ingest.readprocess``). Every write is an upsert on a
natural key (tag, task id, dataset name, file GUID), so re-reading the
overlap window or replaying the source gives the same catalogue. A row that
cannot be understood goes to quarantine, and the stream moves past it.
The rows are mapped by ``ingest.prodsysrows``, which the reading process
imports.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

from sqlalchemy import Engine, Row, Table, select
from sqlalchemy.orm import Session

from catalog.datasets import dataset_ids, upsert_datasets
from catalog.db import among, utcnow
from catalog.derived import derive_new, mark_changed, mark_tagged, producing_tasks
from catalog.models import AmiTag, Dataset, ProductionTask
from catalog.operations import quarantine
from catalog.provenance import link_datasets
from catalog.upsert import differing, upsert
from ingest import prodsysrows, schemas
from ingest.base import (
    load_cursor,
    quarantine_refused,
    refresh_stale_datasets,
    save_stop_point,
)
from ingest.bites import Ahead, Bite, BiteReader, ReadAhead, ReadThread
from ingest.filerows import DATASET, GUID, AnyFileRow, payload
from ingest.files import write_files
from ingest.gcpause import collector_paused
from ingest.keyset import KeysetStream
from ingest.prodsysrows import SOURCE, dataset_row, file_row, tag_row, task_row
from ingest.readprocess import ReadProcess, can_read
from ingest.values import map_rows
from taskserver.base import RunContext, RunOutcome, Task

logger = logging.getLogger(__name__)

# Rows without a timestamp read per pass of a stream (a source should have
# none; a few are read again at every pass).
UNTIMED_LIMIT = 10_000
# Files, or rows of tasks and datasets, left to read from which bites are
# read ahead in a process of their own, which takes about a third of a
# second of another core to start. Reading and mapping a file is about half
# the work of writing it; reading a task and its dataset about a third of
# writing them, derived quantities included: on a thread, that work holds
# the interpreter's lock the writer needs.
PROCESS_BACKLOG = 20_000


@dataclass(frozen=True)
class Bites:
    """Rows per transaction, per stream: (normal, largest in backlog mode).

    In backlog mode a bite is as large as fits in half the run's budget at
    the rate the stream last went (the slower of writing a bite and reading
    one), between the two sizes: transactions stay large (commit granularity
    dominates ingest speed), yet a bite never keeps the other tasks, nor the
    catalogue's write lock, waiting for long.
    """

    tags: tuple[int, int] = (100, 2000)
    tasks: tuple[int, int] = (20, 2000)
    datasets: tuple[int, int] = (50, 5000)
    files: tuple[int, int] = (1000, 20000)
    gear_threshold: int = 1000

    def size(self, stream: str, backlog: int, rate: float | None, budget: float) -> int:
        """Rows for the next bite; *rate* is the stream's last rows per second."""
        normal, large = getattr(self, stream)
        if backlog <= self.gear_threshold or rate is None:
            return int(normal)
        return int(min(large, max(normal, rate * budget / 2)))


class ProdSysIngester(Task):
    """Keeps the catalogue in step with the ProdSys database."""

    name = "prodsys"
    priority = 5
    interval = 5.0
    budget = 2.0

    def __init__(
        self,
        source: Engine,
        *,
        lag: float = 120.0,
        bites: Bites = Bites(),
        process_backlog: int | None = PROCESS_BACKLOG,
    ):
        """
        :param lag: the safety lag of the streams (seconds, default 120).
        :param process_backlog: files, or rows of tasks and datasets, left
            to read from which bites are read ahead in a process of their
            own, not a thread (None: never).
        """
        self.source = source
        self.bites = bites
        self.process_backlog = process_backlog
        self.streams = {
            "tags": KeysetStream(schemas.t_config_tag, key_column="tag", lag=lag),
            "tasks": KeysetStream(
                schemas.t_production_task, key_column="taskid", lag=lag
            ),
            "datasets": KeysetStream(
                schemas.t_production_dataset, key_column="name", lag=lag
            ),
            "files": KeysetStream(
                schemas.t_production_file, key_column="fileid", lag=lag
            ),
        }
        self._remaining: dict[str, int] = {}
        self._rate: dict[str, float] = {}
        # What reads bites ahead, started when first needed.
        self._thread: ReadThread | None = None
        self._process: ReadProcess | None = None
        self._process_failed = False
        mappers: dict[str, tuple[Callable[[Mapping[str, Any]], Any], str]] = {
            "tags": (tag_row, "tag"),
            "tasks": (task_row, "taskid"),
            "datasets": (dataset_row, "name"),
            "files": (file_row, "fileid"),
        }
        self.readers = {
            stream: BiteReader(source, self.streams[stream], mapper, key, self._reader)
            for stream, (mapper, key) in mappers.items()
        }
        # Each writes a bite's rows and says how many it wrote: new, or
        # changed (a row read again as the catalogue holds it is not).
        self._apply: dict[str, Callable[[list[Any], Session], int]] = {
            "tags": self._apply_tags,
            "tasks": self._apply_tasks,
            "datasets": self._apply_datasets,
            "files": self._apply_files,
        }

    def run(self, context: RunContext) -> RunOutcome:
        # Every stream starts its pass first, so that the backlog reported
        # counts the streams this run has no time left for.
        read = written = 0
        for stream, keyset in self.streams.items():
            if not keyset.in_pass:
                rows, changed = self._begin_pass(stream, context)
                read, written = read + rows, written + changed
        self._start_process()
        for stream in self.streams:
            rows, changed = self._drain(stream, context)
            read, written = read + rows, written + changed
            if context.should_stop():
                break
        if self.backlog() == 0:
            self._stop_process()
        stale = refresh_stale_datasets(context)
        backlog = self.backlog() + stale
        # The items are the rows written: the overlap window's rows, read
        # again every pass, would count many times over in the ingest rate.
        return RunOutcome(written, backlog, f"{read} rows read, {written} written")

    # Streams.

    def _drain(self, stream: str, context: RunContext) -> tuple[int, int]:
        """Write bites of *stream* while the run has time, the next bite read
        ahead while one is written (ingest.bites); return the rows read and
        the rows written.
        """
        keyset, reader = self.streams[stream], self.readers[stream]
        if not keyset.in_pass or context.should_stop():
            return 0, 0
        items = changed = 0
        bite = reader.read(self._bite_size(stream))
        while True:
            ahead = None if bite.last else reader.read_ahead(self._bite_size(stream))
            started = time.monotonic()
            changed += self._write(stream, bite, ahead, context)
            took = time.monotonic() - started
            items += bite.rows
            self._remaining[stream] = max(0, self._remaining[stream] - bite.rows)
            if ahead is None:
                keyset.end_pass()
                self._remaining[stream] = 0
                return items, changed
            with collector_paused():  # thousands of rows unpickled
                following = ahead.result()
            self._measure(stream, bite.rows, took, following)
            if context.should_stop():
                reader.give_back(ahead)
                return items, changed
            bite = following

    def _write(
        self, stream: str, bite: Bite, ahead: Ahead | None, context: RunContext
    ) -> int:
        """Write *bite* with its stop point in one transaction, and return the
        rows written; if that fails, give the bite back, and the bite read
        *ahead* too.
        """
        try:
            with collector_paused(), context.Session.begin() as session:
                good = quarantine_refused(bite.mapped, SOURCE, session=session)
                written = self._apply[stream](good, session)
                point = f"{SOURCE}.{stream}"
                save_stop_point(point, bite.stop_point, session=session)
            return written
        except BaseException:
            if ahead is not None:
                self.readers[stream].give_back(ahead)
            self.streams[stream].cursor = bite.before
            raise

    def _measure(self, stream: str, rows: int, took: float, read: Bite) -> None:
        """Note the rate *stream* goes at: the slower of writing the last
        bite (*rows* in *took* seconds) and reading the next (*read*),
        which overlap. Each is the rate of its own bite: waiting for a
        larger bite than the one written is no slower a pace.
        """
        if not rows:
            return
        rate = rows / max(took, 1e-3)
        if read.pace is not None:
            rate = min(rate, read.pace)
        self._rate[stream] = rate

    def _bite_size(self, stream: str) -> int:
        rate = self._rate.get(stream)
        return self.bites.size(stream, self._remaining[stream], rate, self.budget)

    def _begin_pass(self, stream: str, context: RunContext) -> tuple[int, int]:
        """Start a pass of *stream*: its backlog, and its rows that have no
        timestamp, which every pass reads; return the rows read and written.
        All or nothing: if any of it fails, the stream is left out of pass,
        and the next run starts the pass again.
        """
        keyset = self.streams[stream]
        try:
            return self._start_pass(stream, keyset, context)
        except BaseException:
            # A pass half started has no backlog known, and would fail every
            # later run; the error (a source not reachable, or its tables
            # not there yet) may well be transient.
            keyset.end_pass()
            self._remaining.pop(stream, None)
            raise

    def _start_pass(
        self, stream: str, keyset: KeysetStream, context: RunContext
    ) -> tuple[int, int]:
        with context.Session() as session:
            stored = load_cursor(f"{SOURCE}.{stream}", keyset, session=session)
        with self.source.connect() as connection:
            keyset.begin_pass(connection, stored)
            self._remaining[stream] = keyset.backlog(connection)
            untimed = keyset.read_untimed(connection, UNTIMED_LIMIT)
        if not untimed:
            return 0, 0
        with context.Session.begin() as session:
            return len(untimed), self._apply_rows(stream, untimed, session)

    def _apply_rows(
        self, stream: str, rows: Sequence[Row[Any]], session: Session
    ) -> int:
        """Map source *rows* of *stream* (quarantining those refused), write
        them, and return the rows written.
        """
        reader = self.readers[stream]
        mapped = map_rows(rows, reader.mapper, reader.key)
        good = quarantine_refused(mapped, SOURCE, session=session)
        return self._apply[stream](good, session)

    def _reader(self) -> ReadAhead:
        """What reads the next bite ahead: the process once it is ready,
        else the thread (started when first needed).
        """
        if self._process is not None:
            if self._process.ready():
                return self._process
            if self._process.failed:
                self._process_failed = True  # the thread, from now on
                self._stop_process()
        if self._thread is None:
            self._thread = ReadThread("prodsys-read")
        return self._thread

    def _start_process(self) -> None:
        """Start the process that reads ahead when many files, or many rows
        of tasks and datasets, are left.
        """
        large = self.process_backlog is not None and (
            self._remaining.get("files", 0) >= self.process_backlog
            or self._task_rows_left() >= self.process_backlog
        )
        if self._process is None and large and not self._process_failed:
            if can_read(self.source):
                self._process = ReadProcess(self.source, modules=[prodsysrows.__name__])

    def _task_rows_left(self) -> int:
        """Rows of tasks and of datasets left to read."""
        return self._remaining.get("tasks", 0) + self._remaining.get("datasets", 0)

    def _stop_process(self) -> None:
        if self._process is not None:
            self._process.close()
            self._process = None

    def close(self) -> None:
        """Stop the thread and the process that read bites ahead (a later
        run starts them again when needed).
        """
        if self._thread is not None:
            self._thread.close()
            self._thread = None
        self._stop_process()

    def backlog(self) -> int:
        """Rows known to be left, over all streams."""
        return sum(self._remaining.values())

    # Config tags.

    def _apply_tags(self, mapped: list[dict[str, Any]], session: Session) -> int:
        # A tag new or changed changes the configuration (release,
        # conditions, geometry) of the datasets whose chain holds it.
        table = AmiTag.__table__
        changed, known = differing(session, table, mapped, "tag")  # type: ignore[arg-type]
        if not changed:
            return 0
        upsert(session, table, changed, ["tag"], known=known)  # type: ignore[arg-type]
        tags = {row["tag"] for row in changed}
        mark_tagged(tags & known, tags - known, session=session)
        return len(changed)

    # Tasks.

    def _apply_tasks(self, mapped: list[dict[str, Any]], session: Session) -> int:
        # A task read again as the catalogue holds it is left alone: its
        # datasets need no relinking nor recomputing.
        table = ProductionTask.__table__
        changed, known = differing(session, table, mapped, "task_id")  # type: ignore[arg-type]
        if not changed:
            return 0
        stamp = {"modified": utcnow()}  # converted once for the whole bite
        upsert(session, table, changed, ["task_id"], known=known, same=stamp)  # type: ignore[arg-type]
        ids = [row["task_id"] for row in changed]
        datasets = _linkable(among(Dataset.task_id, ids), session=session)
        gained = link_datasets(datasets, session=session)
        mark_changed({d.id for d in datasets} | gained, gained, session=session)
        return len(changed)

    def _ensure_tasks(
        self, task_ids: set[int], session: Session
    ) -> tuple[dict[int, Any], int]:
        """The tasks *task_ids* that are known (:func:`producing_tasks`), those
        not yet catalogued read straight from the source (a dataset row can
        be seen before its task row); and the rows that reading wrote. They
        count as this bite's: read again by their own stream, unchanged,
        they would count nowhere.
        """
        known = producing_tasks(task_ids, session=session)
        missing = task_ids - set(known)
        written = 0
        if missing:
            rows = self._read(schemas.t_production_task, "taskid", missing)
            written = self._apply_rows("tasks", rows, session)
            known.update(producing_tasks(missing, session=session))
        return known, written

    def _read(self, table: Table, column: str, keys: set[Any]) -> Sequence[Row[Any]]:
        """The source rows of *table* whose *column* is one of *keys*."""
        query = select(table).where(table.c[column].in_(sorted(keys)))
        with self.source.connect() as connection:
            return connection.execute(query).all()

    # Datasets.

    def _apply_datasets(self, mapped: list[dict[str, Any]], session: Session) -> int:
        tasks, ensured = self._ensure_tasks({r["task_id"] for r in mapped}, session)
        usable = []
        for row in mapped:
            if row["task_id"] in tasks:
                usable.append(row)
            else:
                reason = (
                    f"task {row['task_id']} is in neither ProdSys nor the catalogue"
                )
                quarantine(SOURCE, row["name"], row, reason, session=session)
        ids, written, changed = _write_datasets(usable, tasks, session=session)
        # Only the datasets written can have an edge missing: one read again
        # unchanged was linked when it was written.
        datasets: list[Any] = [
            Linkable(ids[r["name"]], r["name"], r["task_id"])
            for r in usable
            if r["name"] in written
        ]
        gained = link_datasets(datasets, session=session)
        mark_changed(changed | gained, gained, session=session)
        return ensured + len(written)

    def _ensure_datasets(
        self, names: set[str], session: Session
    ) -> tuple[dict[str, int], int]:
        """Catalogue ids of *names*, reading unknown datasets from the
        source; and the rows that reading wrote (their tasks' included).
        """
        ids = dataset_ids(sorted(names), session=session)
        missing = names - set(ids)
        written = 0
        if missing:
            rows = self._read(schemas.t_production_dataset, "name", missing)
            written = self._apply_rows("datasets", rows, session)
            ids.update(dataset_ids(sorted(missing), session=session))
        return ids, written

    # Files.

    def _apply_files(self, mapped: list[AnyFileRow], session: Session) -> int:
        """Write files: FileRows, or plain tuples from the reading process."""
        ids, ensured = self._ensure_datasets({f[DATASET] for f in mapped}, session)
        usable = []
        for row in mapped:
            if row[DATASET] in ids:
                usable.append(row)
            else:
                reason = (
                    f"dataset {row[DATASET]!r} is in neither ProdSys nor the catalogue"
                )
                quarantine(SOURCE, row[GUID], payload(row), reason, session=session)
        written = write_files(usable, ids, SOURCE, session=session)
        mark_changed(written.datasets, set(), session=session)
        return ensured + written.files


def _write_datasets(
    rows: list[dict[str, Any]], tasks: dict[int, Any], *, session: Session
) -> tuple[dict[str, int], set[str], set[int]]:
    """Write dataset *rows*, the new ones with their derived values
    (:func:`~catalog.derived.derive_new`, from *tasks*, their producing
    tasks). Return the ids by name; the names written: new, or known with a
    value changed (a known dataset read again unchanged is left alone); and
    the ids of those whose derived values must be recomputed: the known ones
    written, new ones DDM spoke of, and new EVNT and RAW datasets (others
    depend on them: cross-sections, lost lumi blocks).
    """
    ids = dataset_ids([row["name"] for row in rows], session=session)
    known = [row for row in rows if row["name"] in ids]
    new = [row for row in rows if row["name"] not in ids]
    rewritten = upsert_datasets(known, session=session, known=ids).written
    heard = derive_new(new, session=session, tasks=tasks)
    ids.update(upsert_datasets(new, session=session, known=ids).ids)
    changed = {ids[name] for name in rewritten} | {ids[name] for name in heard}
    changed |= {ids[r["name"]] for r in new if r["data_type"] in ("EVNT", "RAW")}
    return ids, {row["name"] for row in new} | rewritten, changed


class Linkable(NamedTuple):
    """What linking a dataset into provenance needs of it."""

    id: int
    name: str
    task_id: int | None


def _linkable(condition: Any, *, session: Session) -> Sequence[Any]:
    """The datasets that meet *condition*, with what linking them needs
    (id, name, producing task), as rows: no ORM objects for thousands.
    """
    query = select(Dataset.id, Dataset.name, Dataset.task_id).where(condition)
    return session.execute(query).all()
