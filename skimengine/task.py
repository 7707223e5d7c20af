"""The skim task: the task-server task that moves skims through their
lifecycle.

Each run looks at the active skims whose run was requested
(:func:`skimengine.skims.run_skim`), oldest first, and takes each one step
further while the run's budget lasts (a skim only defined is left alone):

- ``defined`` → ``selecting`` → ``selected``: the selection runs on the TAG
  (or the uploaded collection is read and checked again), and the event
  collection is written as ROOT into the skim's directory
  (``<skim_dir>/<id>/collection.root``); ``n_events_in`` and ``n_selected``
  are recorded.
- ``selected`` → ``extracting``: the extraction is planned over the parent's
  event files (found by the file store) and the plan is kept in the row, so
  that a restart or a retry writes exactly the same files.
- ``extracting``: the next run starts the executor on a thread of its own,
  in the background, so that no run outlasts its budget. While it runs, a
  watcher looks at the row five times a second: when the skim is no longer
  ``extracting`` (it was cancelled) or the task is closing, it sets the
  executor's cancel event, which stops the extraction within a second. The
  progress (units written) goes into the row as it comes.
- ``registering`` → ``done``: the outputs become the output dataset
  (:mod:`skimengine.register`), in the same transaction as the state change.

A failure records its error and makes the skim ``failed``; a failed output
file fails the skim once the other files are written, and a retry
(:func:`skimengine.skims.retry_skim`) writes only the missing files. The
instance working on a skim writes its identity and a heartbeat into the row;
another instance takes the skim over only when the heartbeat is older than
``stale_after`` seconds (the task-server lease time), so a crash resumes
where it stopped, and outputs, published atomically by extraction, are never
written twice.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy import ColumnElement, func, or_, select, update
from sqlalchemy.orm import Session, sessionmaker

from catalog.datasets import counted_files
from catalog.db import utcnow
from catalog.errors import EventFileNotFound, HepcatError, InvalidInput
from catalog.models import Dataset, File, Skim, TagDatabase
from skimengine.collection import EventCollection, read_collection
from skimengine.executors import Executor, executor_for
from skimengine.executors import RunOutcome as Extracted
from skimengine.extract import (
    DEFAULT_COMPRESSION,
    DEFAULT_TARGET_SIZE,
    IDENTITY_BRANCHES,
    Plan,
    extract_unit,
    pending_units,
    plan_extraction,
)
from skimengine.filestore import FileStore
from skimengine.register import register_output
from skimengine.skims import ACTIVE_STATES, output_name, skims_root
from skimengine.tags import (
    EVENT_BRANCHES,
    build_tag,
    check_collection,
    check_sources,
    dataset_event_files,
    get_tag,
    open_tag,
    register_tag,
)
from taskserver.base import RunContext, RunOutcome, Task

logger = logging.getLogger(__name__)

#: Progress in percent when the collection is there, and when every output
#: file is written; extraction fills the range between.
SELECTED_PERCENT = 5.0
EXTRACTED_PERCENT = 95.0
#: Seconds between two looks of the watcher at the row.
WATCH_SECONDS = 0.2
#: Seconds a cancelled extraction waits for its running units to stop.
SETTLE_SECONDS = 10.0
#: Longest wait, in seconds, before looking again for the files of a
#: dataset whose TAG could not be built for want of them.
RETRY_MAX = 600.0
COLLECTION_FILE = "collection.root"
OUTPUT_DIRECTORY = "output"


class SkimTask(Task):
    """Moves skims through their lifecycle (see the module's description).

    :param config: the configuration (``skim_dir``, the file store, the
        executor, ``taskserver_lease_seconds``).
    :param executor: where extraction runs (default: what *config* asks for).
    :param only: work on this skim only (``hepcat skim run``).
    :param stale_after: seconds after which another instance's heartbeat is
        taken for a crash (default: the task-server lease time).
    """

    name = "skim"
    priority = 4
    interval = 2.0
    budget = 2.0

    def __init__(
        self,
        config: Any,
        *,
        executor: Executor | None = None,
        only: int | None = None,
        stale_after: float | None = None,
    ) -> None:
        self.config = config
        self.root = skims_root(config)
        self.store = FileStore.from_config(config)
        self.executor = executor or executor_for(config)
        # An executor given by the caller is the caller's to close.
        self.owns_executor = executor is None
        self.only = only
        lease = (
            stale_after
            if stale_after is not None
            else config.values.get("taskserver_lease_seconds", 30.0)
        )
        self.stale_after = float(lease)
        self.identity = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self.closing = threading.Event()
        self.threads: dict[int, threading.Thread] = {}

    # The task-server side.

    def run(self, context: RunContext) -> RunOutcome:
        self._forget_finished()
        steps = 0
        for skim_id in self._ready(context.Session):
            if context.should_stop():
                break
            steps += self._advance(skim_id, context.Session)
        backlog = len(self._ready(context.Session))
        busy = len(self.threads)
        return RunOutcome(steps, backlog, f"{steps} steps, {busy} extracting")

    def close(self) -> None:
        """Stop the extractions of this instance (they resume at the next
        start) and wait for them.
        """
        self.closing.set()
        for thread in list(self.threads.values()):
            thread.join(timeout=30)
        if self.owns_executor:
            self.executor.close()

    def extracting(self, skim_id: int) -> bool:
        """Whether this instance is extracting skim *skim_id* right now."""
        thread = self.threads.get(skim_id)
        return thread is not None and thread.is_alive()

    def wait(self, skim_id: int, timeout: float | None = None) -> bool:
        """Wait for this instance's extraction of *skim_id* to end; return
        whether it has.
        """
        thread = self.threads.get(skim_id)
        if thread is not None:
            thread.join(timeout)
        return not self.extracting(skim_id)

    def _forget_finished(self) -> None:
        for skim_id, thread in list(self.threads.items()):
            if not thread.is_alive():
                del self.threads[skim_id]

    def _ready(self, Session: sessionmaker[Session]) -> list[int]:  # noqa: N803
        """The active skims whose run was asked for that this instance can
        take a step with, oldest first (a skim only defined waits).
        """
        query = (
            select(Skim)
            .where(Skim.state.in_(ACTIVE_STATES), Skim.run_requested.is_not(None))
            .order_by(Skim.id)
        )
        if self.only is not None:
            query = query.where(Skim.id == self.only)
        with Session() as session:
            return [s.id for s in session.scalars(query) if not self._busy(s)]

    def _busy(self, skim: Skim) -> bool:
        """Whether *skim* is being worked on: by this instance's extraction,
        or by another instance that gave a sign of life lately.
        """
        if self.extracting(skim.id):
            return True
        if skim.worker in (None, self.identity) or skim.heartbeat is None:
            return False
        age = (utcnow() - skim.heartbeat).total_seconds()
        return age < self.stale_after

    def held_elsewhere(self, skim: Skim) -> str | None:
        """What keeps this instance from taking a step with *skim*, when
        another instance works on it (:meth:`_busy`): which, since when, and
        when this one takes it over should that one have died; else None.
        """
        if self.extracting(skim.id) or not self._busy(skim):
            return None
        assert skim.heartbeat is not None  # _busy() needs a sign of life
        age = (utcnow() - skim.heartbeat).total_seconds()
        return (
            f"skim {skim.id} is held by {skim.worker}, whose last sign of life "
            f"was {age:.0f} s ago: it goes on there, or is taken over here "
            f"{self.stale_after - age:.0f} s from now if that worker has died"
        )

    def _advance(self, skim_id: int, Session: sessionmaker[Session]) -> int:  # noqa: N803
        """Take one step with skim *skim_id*; return 1 if one was taken."""
        with Session() as session:
            skim = session.get(Skim, skim_id)
            state, worker = (skim.state, skim.worker) if skim else (None, None)
        steps: dict[str | None, Callable[..., None]] = {
            "defined": self._select,
            "selecting": self._select,
            "selected": self._plan,
            "extracting": self._start_extraction,
            "registering": self._register_written,
        }
        if state not in steps:
            return 0
        try:
            steps[state](skim_id, worker, Session)
        except Exception as err:  # a skim's failure is recorded, not raised
            _fail(Session, skim_id, (state,), _message(err), unexpected=err)
        return 1

    # Selecting.

    def _select(self, skim_id: int, worker: str | None, Session: Any) -> None:  # noqa: N803
        with Session.begin() as session:
            claimed = _claim(
                session,
                skim_id,
                ("defined", "selecting"),
                worker,
                self.identity,
                state="selecting",
            )
            if not claimed:
                return
            # Extraction follows: let the executor get ready meanwhile.
            self.executor.start(wait=False)
            skim = session.get(Skim, skim_id)
            skim.started = skim.started or utcnow()
            tag = get_tag(skim.parent.name, session=session)
            table, n_in = open_tag(tag), tag.n_events
            parent, selection = skim.parent.name, skim.selection
            upload, upload_name = skim.upload, skim.collection_name
        if upload is not None:
            events = read_collection(upload, upload_name or "upload")
            events = check_collection(events, table, parent)
        else:
            events = table.collection(table.select(selection))
        directory = self.root / str(skim_id)
        directory.mkdir(parents=True, exist_ok=True)
        path = events.write_root(directory / COLLECTION_FILE)
        with Session.begin() as session:
            _move(
                session,
                skim_id,
                ("selecting",),
                state="selected",
                collection_path=str(path),
                n_events_in=n_in,
                n_selected=len(events),
                upload=None,
                progress=SELECTED_PERCENT,
                worker=None,
            )

    # Planning.

    def _plan(self, skim_id: int, worker: str | None, Session: Any) -> None:  # noqa: N803
        with Session() as session:
            skim = session.get(Skim, skim_id)
            if skim.plan_json:  # a retry keeps its plan
                plan = Plan.from_json(skim.plan_json)
            else:
                plan = self._new_plan(skim, session)
        if not plan.units:
            raise InvalidInput("no event passes the selection: nothing to extract")
        with Session.begin() as session:
            _move(
                session,
                skim_id,
                ("selected",),
                state="extracting",
                plan_json=plan.to_json(),
                output_dir=str(self.root / str(skim_id) / OUTPUT_DIRECTORY),
                n_units=len(plan.units),
                executor=self.executor.name,
            )

    def _new_plan(self, skim: Skim, session: Session) -> Plan:
        events = read_collection(Path(skim.collection_path or ""), "the collection")
        return plan_extraction(
            events,
            self._sources(events, skim.parent, session=session),
            dataset=output_name(skim),
            branches=json.loads(skim.branches) if skim.branches else None,
            compression=skim.compression or DEFAULT_COMPRESSION,
            target_size=skim.target_size or DEFAULT_TARGET_SIZE,
            parallel=self.executor.workers,
        )

    def _sources(
        self, events: EventCollection, parent: Dataset, *, session: Session
    ) -> dict[str, Path]:
        """The paths of the event files of *parent* that *events* has events
        in, by LFN. Only those are looked for: a file of the dataset that the
        skim does not read may well be missing from the file store. The
        files are those a TAG is built from: the files that count.

        :raises TagOutdated: for a file that is lost or left the dataset.
        :raises EventFileNotFound: for a file the file store does not have.
        """
        used = events.entries_by_file()
        query = (
            select(File.lfn, File.guid)
            .join(Dataset, Dataset.id == File.dataset_id)
            .where(counted_files([parent.id]))
        )
        guids = {lfn: guid for lfn, guid in session.execute(query) if lfn in used}
        check_sources(events, guids, parent, session=session)
        return self.store.paths(guids, scope=parent.scope, guids=guids)

    # Extracting, in the background.

    def _start_extraction(self, skim_id: int, worker: str | None, Session: Any) -> None:  # noqa: N803
        with Session.begin() as session:
            if not _claim(session, skim_id, ("extracting",), worker, self.identity):
                return
            skim = session.get(Skim, skim_id)
            plan = Plan.from_json(skim.plan_json or "")
            output_dir = Path(skim.output_dir or "")
        thread = threading.Thread(
            target=self._extract,
            args=(skim_id, plan, output_dir, Session),
            name=f"skim-{skim_id}",
            daemon=True,
        )
        self.threads[skim_id] = thread
        thread.start()

    def _extract(
        self,
        skim_id: int,
        plan: Plan,
        output_dir: Path,
        Session: Any,  # noqa: N803
    ) -> None:
        cancel, finished = threading.Event(), threading.Event()
        watcher = threading.Thread(
            target=self._watch,
            args=(skim_id, Session, cancel, finished),
            name=f"skim-{skim_id}-watch",
            daemon=True,
        )
        watcher.start()
        try:
            outcome = self.executor.run(
                plan,
                output_dir,
                cancel=cancel,
                progress=lambda done, total: _progress(Session, skim_id, done, total),
            )
            finished.set()
            watcher.join()
            if outcome.cancelled:
                _stopped(Session, skim_id, plan, output_dir)
            else:
                self._extracted(skim_id, outcome, Session)
        except Exception as err:  # the thread's failure goes to the row
            # Registration follows extraction on this thread: a failure
            # there finds the skim registering.
            states = ("extracting", "registering")
            _fail(Session, skim_id, states, _message(err), unexpected=err)
        finally:
            finished.set()

    def _watch(
        self,
        skim_id: int,
        Session: Any,  # noqa: N803
        cancel: threading.Event,
        finished: threading.Event,
    ) -> None:
        """Set *cancel* once the skim is no longer this instance's extraction
        (or the task closes); keep the heartbeat going meanwhile.
        """
        beat = min(5.0, max(WATCH_SECONDS, self.stale_after / 4))
        last = 0.0
        while not finished.wait(WATCH_SECONDS):
            with Session.begin() as session:
                state, worker = session.execute(
                    select(Skim.state, Skim.worker).where(Skim.id == skim_id)
                ).one()
                mine = state == "extracting" and worker == self.identity
                if mine and not self.closing.is_set():
                    last += WATCH_SECONDS
                    if last >= beat:
                        last = 0.0
                        _move(session, skim_id, ("extracting",), heartbeat=utcnow())
                    continue
            cancel.set()
            return

    def _extracted(self, skim_id: int, outcome: Extracted, Session: Any) -> None:  # noqa: N803
        if outcome.failed:
            total = len(outcome.outputs) + len(outcome.failed)
            shown = "; ".join(
                f"file {number}: {error}"
                for number, error in sorted(outcome.failed.items())[:3]
            )
            message = f"{len(outcome.failed)} of {total} output files failed: {shown}"
            failed = json.dumps({str(k): v for k, v in outcome.failed.items()})
            written = len(outcome.outputs)
            _fail(
                Session,
                skim_id,
                ("extracting",),
                message,
                failed_units=failed,
                units_done=written,
                progress=_percent(written, total),
            )
            return
        with Session.begin() as session:
            moved = _move(
                session,
                skim_id,
                ("extracting",),
                state="registering",
                units_done=len(outcome.outputs),
                progress=EXTRACTED_PERCENT,
                failed_units=None,
            )
        if moved:
            self._register(skim_id, outcome.outputs, Session)

    # Registering.

    def _register_written(self, skim_id: int, worker: str | None, Session: Any) -> None:  # noqa: N803
        """Register a skim found in ``registering`` (its instance stopped
        between the two steps): describe its outputs again, or go back to
        extraction for those missing.
        """
        with Session() as session:
            skim = session.get(Skim, skim_id)
            plan = Plan.from_json(skim.plan_json or "")
            output_dir = Path(skim.output_dir or "")
        if pending_units(plan, output_dir):
            with Session.begin() as session:
                _move(session, skim_id, ("registering",), state="extracting")
            return
        outputs = [extract_unit(plan, unit, output_dir) for unit in plan.units]
        self._register(skim_id, outputs, Session)

    def _register(self, skim_id: int, outputs: list[Any], Session: Any) -> None:  # noqa: N803
        with Session.begin() as session:
            done = _move(
                session,
                skim_id,
                ("registering",),
                state="done",
                progress=100.0,
                ended=utcnow(),
                worker=None,
                error=None,
            )
            if done:
                skim = session.get(Skim, skim_id)
                storage = self.config.storage_path
                register_output(skim, outputs, session=session, storage_root=storage)


# -- the row ---------------------------------------------------------------------


def _move(
    session: Session, skim_id: int, states: tuple[str | None, ...], **values: Any
) -> bool:
    """Update skim *skim_id* with *values* if it is in one of *states*;
    return whether it was (a cancel in between wins).
    """
    statement = (
        update(Skim)
        .where(Skim.id == skim_id, Skim.state.in_(states))
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    return bool(session.execute(statement).rowcount == 1)  # type: ignore[attr-defined]


def _claim(
    session: Session,
    skim_id: int,
    states: tuple[str, ...],
    seen: str | None,
    identity: str,
    **values: Any,
) -> bool:
    """Make *identity* the worker of skim *skim_id*, if its worker is still
    the one seen (compare and set between instances).
    """
    owner = Skim.worker.is_(None) if seen is None else Skim.worker == seen
    statement = (
        update(Skim)
        .where(Skim.id == skim_id, Skim.state.in_(states), owner)
        .values(worker=identity, heartbeat=utcnow(), **values)
        .execution_options(synchronize_session=False)
    )
    return bool(session.execute(statement).rowcount == 1)  # type: ignore[attr-defined]


def _progress(Session: Any, skim_id: int, done: int, total: int) -> None:  # noqa: N803
    """Record that *done* output files of *total* are written."""
    percent = _percent(done, total)
    with Session.begin() as session:
        _move(session, skim_id, ("extracting",), units_done=done, progress=percent)


def _stopped(
    Session: Any,  # noqa: N803
    skim_id: int,
    plan: Plan,
    output_dir: Path,
) -> None:
    """Record the end of an extraction stopped before its end: by the task
    closing (the skim stays extracting, free for the next start), or by a
    cancel, once the units still running have stopped or published their
    file (:data:`SETTLE_SECONDS` at most): its count of files done is then
    those complete on disk, some of them written after the last progress
    was recorded (only an extracting skim takes progress).
    """
    with Session.begin() as session:
        if _move(session, skim_id, ("extracting",), worker=None):
            return
    deadline = time.monotonic() + SETTLE_SECONDS
    while any(output_dir.glob(".*.part")) and time.monotonic() < deadline:
        time.sleep(WATCH_SECONDS)
    written = len(plan.units) - len(pending_units(plan, output_dir))
    with Session.begin() as session:
        _move(session, skim_id, ("cancelled",), units_done=written)


def _percent(written: int, total: int) -> float:
    """The progress of a skim whose *written* output files of *total* are
    written (those that failed are not).
    """
    share = written / total if total else 1.0
    return SELECTED_PERCENT + (EXTRACTED_PERCENT - SELECTED_PERCENT) * share


def _fail(
    Session: Any,  # noqa: N803
    skim_id: int,
    states: tuple[str | None, ...],
    message: str,
    *,
    unexpected: BaseException | None = None,
    **values: Any,
) -> None:
    if unexpected is not None and not isinstance(unexpected, HepcatError):
        logger.exception("Skim %s failed", skim_id, exc_info=unexpected)
    else:  # the operator sees it in the log too, not only on the skim
        logger.warning("Skim %s failed: %s", skim_id, message)
    with Session.begin() as session:
        _move(
            session,
            skim_id,
            states,
            state="failed",
            error=message,
            ended=utcnow(),
            worker=None,
            **values,
        )


def _message(err: BaseException) -> str:
    if isinstance(err, HepcatError):
        return f"{err.type}: {err.message}"
    return f"{type(err).__name__}: {err}"


class TagBuildTask(Task):
    """Builds the TAG of each dataset of the data types *prefix* names
    (default the derivations, ``DAOD_*``) whose TAG is missing or was built
    from another number of files, once its event files are all in the file
    store. The demo runs it; a site may too.
    """

    name = "tags"
    priority = 3
    interval = 10.0
    budget = 5.0

    def __init__(self, config: Any, *, prefix: str = "DAOD") -> None:
        self.config = config
        self.store = FileStore.from_config(config)
        self.prefix = prefix
        # Datasets whose files were missing: (misses in a row, when to look
        # again). A catalogue whose files are elsewhere is not searched for
        # them at every run: after the first miss, the wait grows (10, 30,
        # 70 s... at the default interval) up to RETRY_MAX.
        self.missing: dict[str, tuple[int, float]] = {}

    def run(self, context: RunContext) -> RunOutcome:
        with context.Session() as session:
            waiting = self._waiting(session)
        now = time.monotonic()
        waiting = [n for n in waiting if self.missing.get(n, (0, 0.0))[1] <= now]
        counts = {"built": 0, "wait": 0, "failed": 0}
        for name in waiting:
            if context.should_stop():
                break
            counts[self._build(name, context)] += 1
        backlog = len(waiting) - sum(counts.values())
        note = f"{counts['built']} TAGs built, {counts['wait']} wait"
        if counts["failed"]:
            note += f", {counts['failed']} failed"
        return RunOutcome(counts["built"], backlog, note)

    def _build(self, name: str, context: RunContext) -> str:
        """Build the TAG of dataset *name*; return ``built``, ``wait`` (its
        files are not all in the file store) or ``failed`` (they cannot
        make a TAG, or something unexpected happened). A dataset that waits
        or failed is looked at again later, and the run goes on without it.
        """
        try:
            with context.Session.begin() as session:
                files = dataset_event_files(name, self.store, session=session)
                table = build_tag(files)
                data_dir = self.config.data_path
                register_tag(name, table, data_dir=data_dir, session=session)
        except EventFileNotFound as err:
            logger.debug("The TAG of %s waits for its files: %s", name, err)
            self._back_off(name)
            return "wait"
        except HepcatError as err:
            logger.warning("The TAG of %s cannot be built: %s", name, _message(err))
            self._back_off(name)
            return "failed"
        except Exception:  # one dataset's failure must not stop the others
            logger.exception("The TAG of %s cannot be built", name)
            self._back_off(name)
            return "failed"
        self.missing.pop(name, None)
        return "built"

    def _back_off(self, name: str) -> None:
        """Look at dataset *name* again at the next run, then after waits
        that grow with each miss in a row, up to RETRY_MAX.
        """
        misses = self.missing.get(name, (0, 0.0))[0] + 1
        wait = min(RETRY_MAX, self.interval * (2 ** (misses - 1) - 1))
        self.missing[name] = (misses, time.monotonic() + wait)

    def _waiting(self, session: Session) -> list[str]:
        """The datasets whose TAG is missing or out of step with their files,
        less the outputs of skims that left out a branch a TAG is built
        from: their TAG can never be built.
        """
        query = (
            select(Dataset.name, Skim.branches)
            .outerjoin(TagDatabase, TagDatabase.dataset_id == Dataset.id)
            .outerjoin(Skim, Skim.output_id == Dataset.id)
            .where(Dataset.data_type.startswith(self.prefix), Dataset.n_files > 0)
            .where(_out_of_step())
            .order_by(Dataset.name)
        )
        waiting = [
            name
            for name, branches in session.execute(query)
            if not _lacks_tag_branches(branches)
        ]
        return list(dict.fromkeys(waiting))  # once, should two skims name it


def _out_of_step() -> ColumnElement[bool]:
    """The datasets (joined with their TAG, if any) without a TAG, or whose
    files the catalogue counts otherwise than when their TAG was made: one
    added, lost or replaced by another of other events or bytes.
    """
    return or_(
        TagDatabase.id.is_(None),
        func.coalesce(TagDatabase.source_files, -1) != Dataset.n_files,
        func.coalesce(TagDatabase.source_events, -1) != Dataset.total_events,
        func.coalesce(TagDatabase.source_size, -1) != Dataset.total_size,
    )


def _lacks_tag_branches(branches: str | None) -> bool:
    """Whether the output of a skim that asked for *branches* (JSON; None:
    every branch) lacks a branch a TAG is built from. Extraction writes the
    branches asked for and the identity branches.
    """
    if not branches:
        return False
    written = {*json.loads(branches), *IDENTITY_BRANCHES}
    return not written.issuperset(EVENT_BRANCHES)
