"""The ProdSys ingester: tasks, output datasets, files and AMI tags.

Four tables are read as keyset streams (``ingest.keyset``), each with its own
stop point: config tags, tasks, datasets, files, in that order. AMI's rule
sets the pace: bites of 20 tasks, and when the backlog exceeds 1000 tasks,
a change of gear to much larger bites (and larger transactions) until it is
drained; bites of a large backlog of files or tasks are then read ahead in
a process of its own (``ingest.readprocess``). Every write is an upsert on a
natural key (tag, task id, dataset name, file GUID), so re-reading the
overlap window or replaying the source gives the same catalogue; the rows a
pass reads again are not counted as backlog (``KeysetStream.left``). A row
that cannot be understood goes to quarantine, and the stream moves past it.
A dataset or a file held in quarantine for want of its task or its dataset
is read again once the catalogue holds that (:meth:`ProdSysIngester.run`).
The rows are mapped by ``ingest.prodsysrows``, which the reading process
imports.
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

from sqlalchemy import Engine, Row, Table, or_, select
from sqlalchemy.orm import Session

from catalog.datasets import (
    dataset_ids,
    one_source,
    owned_elsewhere,
    upsert_datasets,
)
from catalog.db import among, chunked, utcnow
from catalog.derived import derive_new, mark_changed, mark_tagged, producing_tasks
from catalog.models import AmiTag, Dataset, File, ProductionTask, Quarantine
from catalog.operations import quarantine, release_read
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
from ingest.prodsysrows import (
    SOURCE,
    dataset_row,
    file_row,
    is_log,
    tag_row,
    task_row,
)
from ingest.readprocess import ReadProcess, can_read
from ingest.values import map_rows, text
from taskserver.base import RunContext, RunOutcome, Task

logger = logging.getLogger(__name__)

# Files, or rows of tasks and datasets, left to read from which bites are
# read ahead in a process of their own, which takes about a third of a
# second of another core to start. Reading and mapping a file is about half
# the work of writing it; reading a task and its dataset about a third of
# writing them, derived quantities included: on a thread, that work holds
# the interpreter's lock the writer needs.
PROCESS_BACKLOG = 20_000
# Seconds after which the records held in quarantine for want of their task
# or dataset are looked at again, when nothing this process wrote called for
# it sooner (another task server may have written the task, an operator
# released a record); and such records read again per transaction.
ORPHANS_RETRY = 60.0
ORPHANS_BITE = 1000


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
        # Per stream in pass: rows left to read, and of those the rows not
        # yet ingested (the backlog), which leaves out the rows a pass reads
        # again: the overlap window, and the rows without a timestamp.
        self._remaining: dict[str, int] = {}
        self._new: dict[str, int] = {}
        self._rate: dict[str, float] = {}
        self._skipped = 0  # files of log datasets, in the current run
        # Rows held in quarantine for want of their task or dataset: when
        # they were last looked at (monotonic time; None: never), how many
        # were still waiting then, and whether a parent was written or a
        # row held for want of one since.
        self._orphans_seen: float | None = None
        self._orphans_waiting = 0
        self._parents_written = False
        self._orphaned = False
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
        read = written = self._skipped = 0
        for stream, keyset in self.streams.items():
            if not keyset.in_pass:
                self._begin_pass(stream, context)
        self._start_process()
        for stream in self.streams:
            rows, changed = self._drain(stream, context)
            read, written = read + rows, written + changed
            if context.should_stop():
                break
        if not any(self._remaining.values()):
            self._stop_process()
        self._count_arrivals()
        written += self._adopt_orphans(context)
        stale = refresh_stale_datasets(context)
        # Rows read again (the overlap window) are no backlog: a run that
        # only read them again does not make the task due again at once.
        backlog = self.backlog() + stale
        # The items are the rows written: the overlap window's rows, read
        # again every pass, would count many times over in the ingest rate.
        note = f"{read} rows read, {written} written"
        if self._skipped:
            files = "file" if self._skipped == 1 else "files"
            note += f", {self._skipped} {files} of log datasets skipped"
        return RunOutcome(written, backlog, note)

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
            keyset.reached = keyset.reached.joined(bite.reached)
            self._remaining[stream] = max(0, self._remaining[stream] - bite.rows)
            self._new[stream] = max(0, self._new[stream] - bite.new)
            if ahead is None:
                keyset.end_pass()
                self._remaining[stream] = self._new[stream] = 0
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

    def _begin_pass(self, stream: str, context: RunContext) -> None:
        """Start a pass of *stream* (its rows without a timestamp first,
        read in bites like the others), and count what it has left. All or
        nothing: if any of it fails, the stream is left out of pass, and the
        next run starts the pass again.
        """
        keyset = self.streams[stream]
        try:
            with context.Session() as session:
                stored = load_cursor(f"{SOURCE}.{stream}", keyset, session=session)
            with self.source.connect() as connection:
                keyset.begin_pass(connection, stored)
                self._remaining[stream], self._new[stream] = keyset.left(connection)
        except BaseException:
            # A pass half started has no backlog known, and would fail every
            # later run; the error (a source not reachable, or its tables
            # not there yet) may well be transient.
            keyset.end_pass()
            self._remaining.pop(stream, None)
            self._new.pop(stream, None)
            raise

    def _count_arrivals(self) -> None:
        """Count again the rows to ingest of each stream still in pass that
        has none left of those counted when its pass began: rows may have
        come since, past how far it has read (a small range to count).
        """
        for stream, keyset in self.streams.items():
            if keyset.in_pass and not self._new.get(stream):
                with self.source.connect() as connection:
                    self._new[stream] = keyset.new_left(connection)

    def _apply_rows(
        self, stream: str, rows: Sequence[Row[Any]], session: Session
    ) -> int:
        """Map source *rows* of *stream* (quarantining those refused, which
        :func:`_refused` then names), write them, and return the rows
        written.
        """
        reader = self.readers[stream]
        mapped = map_rows(rows, reader.mapper, reader.key)
        refused = _refused(session)
        for record, values, reason in mapped.refused:
            entry = quarantine(SOURCE, record, values, reason, session=session)
            refused[(stream, record)] = entry
        return self._apply[stream](mapped.good, session)

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
        """Rows known to be left to ingest, over all streams: not the rows
        a pass reads again as far as this process has read and written them.
        """
        return sum(self._new.values())

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
        self._parents_written = True
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
        query = schemas.select_raw(table).where(table.c[column].in_(sorted(keys)))
        with self.source.connect() as connection:
            return connection.execute(query).all()

    # Datasets.

    def _apply_datasets(self, mapped: list[dict[str, Any]], session: Session) -> int:
        tasks, ensured = self._ensure_tasks({r["task_id"] for r in mapped}, session)
        owned = owned_elsewhere([r["name"] for r in mapped], SOURCE, session=session)
        usable = []
        for row in mapped:
            if row["name"] in owned:
                reason = one_source(row["name"], owned[row["name"]])
                quarantine(SOURCE, row["name"], row, reason, session=session)
            elif row["task_id"] in tasks:
                usable.append(row)
            else:
                task = row["task_id"]
                reason = _wanting("tasks", str(task), f"task {task}", session)
                entry = quarantine(SOURCE, row["name"], row, reason, session=session)
                _refused(session)[("datasets", row["name"])] = entry
                self._orphaned = True
        ids, written, changed = _write_datasets(usable, tasks, session=session)
        if written:
            self._parents_written = True
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
    ) -> tuple[dict[str, int], int, set[str]]:
        """Catalogue ids of *names*, reading unknown datasets from the
        source; the rows that reading wrote (their tasks' included); and
        the names of log datasets among them, which are not catalogued.
        """
        ids = dataset_ids(sorted(names), session=session)
        missing = names - set(ids)
        written, logs = 0, set()
        if missing:
            rows = self._read(schemas.t_production_dataset, "name", missing)
            written = self._apply_rows("datasets", rows, session)
            ids.update(dataset_ids(sorted(missing), session=session))
            logs = _log_names(rows)
        return ids, written, logs

    # Files.

    def _apply_files(self, mapped: list[AnyFileRow], session: Session) -> int:
        """Write files: FileRows, or plain tuples from the reading process.
        Files of log datasets are skipped, as their datasets are.
        """
        names = {f[DATASET] for f in mapped}
        ids, ensured, logs = self._ensure_datasets(names, session)
        owned = owned_elsewhere(sorted(names), SOURCE, session=session)
        usable = []
        for row in mapped:
            if row[DATASET] in owned:
                reason = one_source(row[DATASET], owned[row[DATASET]])
                quarantine(SOURCE, row[GUID], payload(row), reason, session=session)
            elif row[DATASET] in ids:
                usable.append(row)
            elif row[DATASET] in logs:
                self._skipped += 1
            else:
                name = row[DATASET]
                reason = _wanting("datasets", name, f"dataset {name!r}", session)
                quarantine(SOURCE, row[GUID], payload(row), reason, session=session)
                self._orphaned = True
        written = write_files(usable, ids, SOURCE, session=session)
        mark_changed(written.datasets, set(), session=session)
        return ensured + written.files

    # Rows held for want of their task or dataset.

    def _adopt_orphans(self, context: RunContext) -> int:
        """Read again from ProdSys the datasets and the files held in
        quarantine for want of their task or dataset (absent, or refused),
        now that the catalogue holds it, and release the records of those
        the catalogue now holds; return the rows written. Their stop points
        have moved past them, so nothing else would read them again.

        Done when a task or a dataset was written and such records wait (or
        were added), at a process's first run, and every
        :data:`ORPHANS_RETRY` seconds. Records released by an operator are
        read again too, unless the catalogue holds their row.
        """
        now = time.monotonic()
        seen = self._orphans_seen
        waiting = self._orphans_waiting or self._orphaned
        due = seen is None or now - seen >= ORPHANS_RETRY
        if context.stop.is_set() or not (due or (self._parents_written and waiting)):
            return 0
        written = left = 0
        for stream in ("datasets", "files"):  # a dataset written frees its files
            with context.Session() as session:
                orphans = _orphans(stream, session=session)
            for chunk in chunked(orphans, ORPHANS_BITE):
                with context.Session.begin() as session:
                    rows, still = self._adopt(stream, chunk, session)
                written, left = written + rows, left + still
        # What the look itself wrote or held again is accounted for in *left*.
        self._orphans_seen, self._orphans_waiting = now, left
        self._parents_written = self._orphaned = False
        return written

    def _adopt(
        self, stream: str, orphans: Sequence[Orphan], session: Session
    ) -> tuple[int, int]:
        """Read again the *orphans* of *stream* whose parent the catalogue
        holds and whose row it does not, and release the records of those it
        holds then (and of files of log datasets, which are skipped); return
        the rows written, and the orphans still waiting.
        """
        done = _catalogued(stream, orphans, session=session)
        waiting = [o for o in orphans if o.record not in done]
        parents = _parents(stream, {o.parent for o in waiting}, session=session)
        if stream == "files":
            # Held, with a false reason, before files of log datasets were
            # skipped: there is nothing to read again.
            logs = self._logs({o.parent for o in waiting} - parents)
            done |= {o.record for o in waiting if o.parent in logs}
        again = {o.child for o in waiting if o.parent in parents}
        written = 0
        if again:
            table, column = _CHILDREN[stream]
            rows = self._read(table, column, again)
            written = self._apply_rows(stream, rows, session)
            done |= _catalogued(stream, waiting, session=session)
        read = {(o.record, o.child) for o in orphans if o.record in done}
        # Only the records about the rows read: a GUID's key may also hold
        # a record of another row (another LFN), which reading these did
        # not correct.
        release_read(
            SOURCE, done, session=session, about=lambda e: _row_of(stream, e) in read
        )
        return written, sum(o.record not in done for o in orphans)

    def _logs(self, names: set[str]) -> set[str]:
        """The names among *names* of log datasets in ProdSys."""
        if not names:
            return set()
        return _log_names(self._read(schemas.t_production_dataset, "name", names))


class Orphan(NamedTuple):
    """A ProdSys row held in quarantine for want of its parent."""

    record: str  # its key in quarantine: a dataset's name, a file's GUID
    child: str  # what finds its row in ProdSys: the dataset's name, the file's LFN
    parent: Any  # what it wants: the task id, the dataset's name


# Where ProdSys holds the rows of datasets and of files, and the column an
# orphan's ``child`` is found in.
_CHILDREN = {
    "datasets": (schemas.t_production_dataset, "name"),
    "files": (schemas.t_production_file, "lfn"),
}
# The reasons a row wants its parent, as :func:`_wanting` gives them (a
# release adds to the end of a reason).
_WANTING = re.compile(
    r"(task|dataset) \S+ (?:is in neither ProdSys nor the catalogue"
    r"|was refused \(quarantine record \d+\))"
)
_WANTS = {"task": "datasets", "dataset": "files"}
# What ends the reason of a record the ingesters released (release_read).
_RELEASED_READ = "; released automatically on "


def _orphans(stream: str, *, session: Session) -> list[Orphan]:
    """The rows of *stream* (datasets or files) held in quarantine for want
    of their parent, or released by an operator since: not those released
    once read again.
    """
    query = select(Quarantine.record_key, Quarantine.payload, Quarantine.reason)
    query = query.where(
        Quarantine.source == SOURCE,
        or_(
            Quarantine.reason.startswith("task "),
            Quarantine.reason.startswith("dataset "),
        ),
        or_(
            Quarantine.released.is_not(True),
            Quarantine.reason.not_like(f"%{_RELEASED_READ}%"),
        ),
    )
    orphans = []
    for key, held, reason in session.execute(query.order_by(Quarantine.id)):
        wants = _WANTING.match(reason)
        if key is None or wants is None or _WANTS[wants[1]] != stream:
            continue
        orphan = _orphan(stream, key, held)
        if orphan is not None:
            orphans.append(orphan)
    return orphans


def _orphan(stream: str, key: str, held: str) -> Orphan | None:
    """The orphan of *stream* held under *key*, with its payload *held*
    (None if the payload does not say what it wants).
    """
    try:
        values = json.loads(held)
    except ValueError:
        return None
    if not isinstance(values, dict):
        return None
    if stream == "datasets":
        child, parent = values.get("name"), values.get("task_id")
        wanted = isinstance(parent, int)
    else:
        child, parent = values.get("lfn"), values.get("dataset")
        wanted = isinstance(parent, str)
    return Orphan(key, child, parent) if isinstance(child, str) and wanted else None


def _row_of(stream: str, entry: Quarantine) -> tuple[str, Any] | None:
    """The key and the row (a dataset's name, a file's LFN) a quarantined
    record of *stream* is about, as its payload says (None: it does not).
    """
    orphan = _orphan(stream, entry.record_key or "", entry.payload or "")
    return (orphan.record, orphan.child) if orphan is not None else None


def _catalogued(
    stream: str, orphans: Sequence[Orphan], *, session: Session
) -> set[str]:
    """The records of *orphans* whose row the catalogue holds: a dataset of
    that name, a file of that GUID and LFN in the dataset its row names (a
    file of that GUID under another LFN is another row's, and the orphan's
    row, read again, is refused for it).
    """
    if stream == "datasets":
        return set(dataset_ids(sorted({o.child for o in orphans}), session=session))
    wanted = {(o.record, o.child, o.parent) for o in orphans}
    query = select(File.guid, File.lfn, Dataset.name).join(
        Dataset, File.dataset_id == Dataset.id
    )
    query = query.where(among(File.guid, sorted({o.record for o in orphans})))
    return {guid for guid, *row in session.execute(query) if (guid, *row) in wanted}


def _parents(stream: str, keys: set[Any], *, session: Session) -> set[Any]:
    """Those of *keys* that the catalogue holds: task ids for the datasets,
    dataset names for the files.
    """
    if stream == "datasets":
        query = select(ProductionTask.task_id).where(
            among(ProductionTask.task_id, sorted(keys))
        )
        return set(session.scalars(query))
    return set(dataset_ids(sorted(keys), session=session))


def _log_names(rows: Sequence[Row[Any]]) -> set[str]:
    """The names of the log datasets among ProdSys dataset *rows*."""
    found = [dict(row._mapping) for row in rows]
    return {text(row, "name") or "" for row in found if is_log(row)}


# Where a transaction's session keeps the quarantine records of the tasks
# and datasets it refused, by stream and key: a row wanting one of them
# names the record in its own reason.
_REFUSED = "prodsys.refused"


def _refused(session: Session) -> dict[tuple[str, str], Quarantine]:
    """The records of the rows refused in *session*'s transaction."""
    refused: dict[tuple[str, str], Quarantine] = session.info.setdefault(_REFUSED, {})
    return refused


def _wanting(stream: str, key: str, shown: str, session: Session) -> str:
    """Why a row is held for want of its parent, the row of *stream* under
    *key* (*shown* as the reason names it): refused into quarantine, read
    from ProdSys in this transaction; or in neither ProdSys nor the
    catalogue.
    """
    entry = _refused(session).get((stream, key))
    if entry is None:
        return f"{shown} is in neither ProdSys nor the catalogue"
    if entry.id is None:
        session.flush()  # the record's number
    return f"{shown} was refused (quarantine record {entry.id})"


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
