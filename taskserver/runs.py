"""One run of a task: executing it, retrying transient database errors,
holding its leases meanwhile, and recording it in the ``task_run`` table.

The task server and :func:`taskserver.runner.run_until_drained` both run tasks
through :func:`run_leased`, so a run looks the same in the catalogue whoever
ran it.
"""

from __future__ import annotations

import datetime as dt
import logging
import sqlite3
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TypeVar

from sqlalchemy import Engine, delete
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from catalog.config import declared
from catalog.db import utcnow
from catalog.models.operations import TaskRun
from catalog.operations import quarantine_count
from catalog.urls import hide_password
from taskserver.base import RunContext, RunOutcome, Task
from taskserver.leases import LeaseFence, LeaseHeartbeat, Leases, lease_names

logger = logging.getLogger(__name__)

T = TypeVar("T")

OK, FAILED, CANCELLED = "ok", "failed", "cancelled"
OUTCOMES = (OK, FAILED, CANCELLED)
#: The outcome of a run's record from its start until it ends; a run whose
#: process died keeps it (``hepcat status`` calls it stale).
RUNNING = "running"

#: Attempts at an operation that meets transient database errors.
MAX_ATTEMPTS = 5
#: Seconds before the second attempt; doubled for each further one, up to
#: :data:`MAX_BACKOFF`.
FIRST_BACKOFF = 0.1
MAX_BACKOFF = 2.0
#: Characters of a traceback kept in ``task_run.error`` (the end is kept).
MAX_ERROR = 8000


@dataclass(frozen=True)
class RunResult:
    """How one run of a task went, as recorded in ``task_run``.

    :param seconds: the run's duration (monotonic clock), retries included.
    :param attempts: how many times the task was called; more than one after
        transient database errors.
    :param reason: for a failed run, its error in one line (type and the
        first line of the message), for a summary; ``error`` has it all.
    :param quarantined: records put in quarantine under the task's name
        while it ran (an ingester quarantines under its own name); a record
        already held is not counted again.
    """

    task_name: str
    owner: str
    started: dt.datetime
    ended: dt.datetime
    seconds: float
    outcome: str
    items: int = 0
    backlog: int | None = None
    note: str = ""
    error: str | None = None
    attempts: int = 1
    reason: str | None = None
    quarantined: int = 0

    @property
    def failed(self) -> bool:
        return self.outcome == FAILED

    @property
    def again(self) -> bool:
        """Whether the task should run again at once (the gear change): it
        succeeded and reported a backlog, or an unknown backlog after doing
        some work.
        """
        if self.outcome != OK:
            return False
        if self.backlog is None:
            return self.items > 0
        return self.backlog > 0


def is_transient(exc: BaseException) -> bool:
    """Whether *exc*, or an error it was raised from, is a database error that
    may go away when tried again: a dropped connection, a deadlock, a lock
    timeout, a server restarting.
    """
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, OperationalError):
            return not _lasting(seen.orig)
        if isinstance(seen, DBAPIError) and seen.connection_invalidated:
            return True
        seen = seen.__cause__
    return False


#: SQLite's operational errors that trying again cannot mend: the schema
#: or the file is not what the statement needs (``no such table: ...``).
SQLITE_LASTING = ("no such ", "has no column", "syntax error", "readonly database")
#: MySQL/MariaDB error numbers that PyMySQL reports as operational errors
#: and that last: access denied (1044, 1045, 1142, 1143), no such database
#: (1049), no such column (1054).
MYSQL_LASTING = frozenset({1044, 1045, 1049, 1054, 1142, 1143})


def _lasting(error: BaseException | None) -> bool:
    """Whether the driver's operational *error* says that the catalogue's
    schema or rights are wrong: an operator must act, and retrying only
    delays the failure and calls it temporary in the log.
    """
    if isinstance(error, sqlite3.OperationalError):
        return any(word in str(error) for word in SQLITE_LASTING)
    if error is not None and type(error).__module__.startswith("pymysql"):
        return bool(error.args) and error.args[0] in MYSQL_LASTING
    return False


def backoff(attempt: int) -> float:
    """Seconds to wait after failed *attempt* (1, 2, ...): 0.1, 0.2, 0.4 ... 2."""
    return float(min(FIRST_BACKOFF * 2 ** (attempt - 1), MAX_BACKOFF))


def retry_transient(
    operation: Callable[[], T],
    *,
    what: str,
    stop: threading.Event | None = None,
    attempts: int = MAX_ATTEMPTS,
) -> T:
    """Return ``operation()``, trying again after transient database errors.

    :param what: names the operation in the warnings logged for each retry.
    :param stop: when set, no further attempt is made.
    :raises Exception: the last error, when attempts run out or it is not
        transient.
    """
    stop = stop or threading.Event()
    for attempt in range(1, attempts + 1):
        try:
            return operation()
        except Exception as exc:
            if attempt == attempts or stop.is_set() or not is_transient(exc):
                raise
            _warn_transient(what, attempt, exc)
            stop.wait(backoff(attempt))
    raise AssertionError("unreachable: the last attempt returns or raises")


def _warn_transient(what: str, attempt: int, exc: BaseException) -> None:
    logger.warning(
        "Temporary database error in %s (attempt %d): %s",
        what,
        attempt,
        describe_reason(exc),
    )


def describe_reason(exc: BaseException) -> str:
    """*exc* in one line: its type and the first line of its message."""
    lines = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {lines[0]}" if lines else type(exc).__name__


def describe_error(exc: BaseException) -> str:
    """The traceback of *exc* as text, its end kept when it is long."""
    text = "".join(traceback.format_exception(exc))
    return text if len(text) <= MAX_ERROR else "...\n" + text[-MAX_ERROR:]


def source_hint(task: Task, exc: BaseException) -> str:
    """Where to look when *exc* came from the source database of *task* (an
    ingester's ``source`` engine): the setting naming it; else nothing.
    """
    source = getattr(task, "source", None)
    if not isinstance(source, Engine) or not _raised_by(exc, source):
        return ""
    name = f"{task.name}_url"
    setting = next((s for s in declared() if s.name == name), None)
    where = setting.env if setting else "its setting"
    return (
        f" on its source database {hide_password(str(source.url))} (check "
        f"{where}, that the server runs and that the database has the "
        f"{task.name} tables)"
    )


def _raised_by(exc: BaseException, engine: Engine) -> bool:
    """Whether *exc* is a database error raised working on *engine*: a frame
    of its traceback is a method of *engine* or of one of its connections.
    """
    if not isinstance(exc, DBAPIError):
        return False
    frame = exc.__traceback__
    while frame is not None:
        owner = frame.tb_frame.f_locals.get("self")
        if owner is engine or getattr(owner, "engine", None) is engine:
            return True
        frame = frame.tb_next
    return False


class _Clock:
    """When a run started, on the wall clock and the monotonic one."""

    def __init__(self) -> None:
        self.started = utcnow()
        self._start = time.monotonic()

    def result(
        self,
        task: Task,
        owner: str,
        outcome: str,
        *,
        items: int = 0,
        backlog: int | None = None,
        note: str = "",
        error: str | None = None,
        attempts: int = 1,
        reason: str | None = None,
    ) -> RunResult:
        seconds = time.monotonic() - self._start
        return RunResult(
            task.name,
            owner,
            self.started,
            utcnow(),
            seconds,
            outcome,
            items=items,
            backlog=backlog,
            note=note,
            error=error,
            attempts=attempts,
            reason=reason,
        )


def execute(
    task: Task,
    *,
    Session: sessionmaker[Session],  # noqa: N803
    owner: str,
    stop: threading.Event,
    attempts: int = MAX_ATTEMPTS,
    fence: LeaseFence | None = None,
) -> RunResult:
    """Run *task* once and say how it went; never raises for the task's errors.

    Each attempt gets a :class:`RunContext` whose deadline is ``task.budget``
    seconds away. A transient database error is retried with backoff; any
    other error, or the last transient one, makes the outcome ``failed`` and
    is logged with its traceback. A run that returns after *stop* was set is
    ``cancelled`` (its items still count).

    :param fence: the run's leases: its context gets the fence's session
        factory, whose commits are refused once the leases are lost; the run
        then ends ``cancelled`` whatever it raised (the fence sets *stop*).
    """
    clock = _Clock()
    fenced = Session if fence is None else fence.sessions(Session)
    for attempt in range(1, attempts + 1):
        context = RunContext(
            fenced, time.monotonic() + task.budget, stop=stop, owner=owner
        )
        try:
            outcome = _checked(task, task.run(context))
        except Exception as exc:
            if fence is not None and fence.lost is not None:
                return clock.result(
                    task,
                    owner,
                    CANCELLED,
                    note=f"lost its {fence.lost}",
                    attempts=attempt,
                )
            if attempt < attempts and not stop.is_set() and is_transient(exc):
                _warn_transient(task.name, attempt, exc)
                stop.wait(backoff(attempt))
                continue
            return _failed(task, owner, clock, exc, attempts=attempt)
        return clock.result(
            task,
            owner,
            CANCELLED if stop.is_set() else OK,
            items=outcome.items,
            backlog=outcome.backlog,
            note=outcome.note,
            attempts=attempt,
        )
    raise AssertionError("unreachable: the last attempt returns")


def _checked(task: Task, outcome: object) -> RunOutcome:
    if not isinstance(outcome, RunOutcome):
        raise TypeError(
            f"task {task.name!r} returned {outcome!r} from run(); "
            "it must return a RunOutcome"
        )
    return outcome


def _failed(
    task: Task, owner: str, clock: _Clock, exc: BaseException, *, attempts: int = 1
) -> RunResult:
    """Log *exc* as the failure of *task* and return the failed result. The
    record carries the traceback; the CLI shows it in one line unless -v.
    """
    logger.error("Task %s failed%s", task.name, source_hint(task, exc), exc_info=exc)
    error, reason = describe_error(exc), describe_reason(exc)
    return clock.result(
        task, owner, FAILED, error=error, attempts=attempts, reason=reason
    )


#: How long the runs of a task are kept in ``task_run``: the task-server
#: page shows the last few, and its ingest-rate plot two days at most.
RUNS_KEPT = dt.timedelta(days=7)
#: How often, per task and process, the runs older than that are removed.
PRUNE_EVERY = 3600.0
_pruned: dict[str, float] = {}  # task name: monotonic time of the last pruning


def record_start(
    task_name: str,
    owner: str,
    *,
    Session: sessionmaker[Session],  # noqa: N803
    stop: threading.Event | None = None,
) -> int | None:
    """Write a run of *task_name* by *owner*, starting now, to ``task_run`` as
    running, retrying transient database errors, and return the row's id: a
    run whose process dies leaves it, and ``hepcat status`` calls it stale
    once its owner no longer holds the task's lease.

    A row that cannot be written is logged and None returned: the run goes
    on, and :func:`record` adds its row when it ends.
    """

    def write() -> int:
        with Session.begin() as session:
            row = TaskRun(
                task_name=task_name, owner=owner, started=utcnow(), outcome=RUNNING
            )
            session.add(row)
            session.flush()
            return row.id

    try:
        return retry_transient(write, what=f"the run record of {task_name}", stop=stop)
    except Exception:
        logger.exception("Could not record the start of a run of task %s", task_name)
        return None


def record(
    result: RunResult,
    *,
    Session: sessionmaker[Session],  # noqa: N803
    run_id: int | None = None,
) -> None:
    """Write *result* to ``task_run``: complete the row :func:`record_start`
    wrote, *run_id*, or add one (None: it was not written); retry transient
    database errors. About once an hour per task, remove its runs older than
    :data:`RUNS_KEPT` (a task server records a run of each task every few
    seconds: hundreds of thousands a day).

    A record that cannot be written is logged; the task server carries on.
    """
    now = time.monotonic()
    prune = now - _pruned.get(result.task_name, -PRUNE_EVERY) >= PRUNE_EVERY

    def write() -> None:
        with Session.begin() as session:
            _complete(session, result, run_id)
            if prune:
                old = TaskRun.started < result.started - RUNS_KEPT
                named = TaskRun.task_name == result.task_name
                session.execute(delete(TaskRun).where(named, old))

    try:
        retry_transient(write, what=f"the run record of {result.task_name}")
    except Exception:
        logger.exception("Could not record a run of task %s", result.task_name)
    else:
        if prune:
            _pruned[result.task_name] = now


def _complete(session: Session, result: RunResult, run_id: int | None) -> None:
    """Write how the run ended to its row *run_id*, or add a row for it."""
    row = None if run_id is None else session.get(TaskRun, run_id)
    if row is None:
        row = TaskRun(
            task_name=result.task_name, owner=result.owner, started=result.started
        )
        session.add(row)
    for name, value in _ending(result).items():
        setattr(row, name, value)


def _ending(result: RunResult) -> dict[str, object]:
    """The columns of ``task_run`` that say how the run of *result* ended."""
    return {
        "ended": result.ended,
        "items": result.items,
        "backlog": result.backlog,
        "outcome": result.outcome,
        "error": result.error,
        "attempt": result.attempts,
    }


def run_leased(
    task: Task,
    *,
    Session: sessionmaker[Session],  # noqa: N803
    leases: Leases,
    heartbeat: LeaseHeartbeat,
    stop: threading.Event,
    prepare: Callable[[], None] | None = None,
) -> RunResult | None:
    """Take the leases of *task*, record the run as running, run it, record
    how it ended and release the leases. The run is recorded at its start so
    that a process killed during it leaves a record; it is completed while
    the leases are held, so that it is never seen running without them.
    The run's own transactions are fenced with its leases
    (:class:`~taskserver.leases.LeaseFence`): a commit after another owner
    took one of them is refused, and the run ends ``cancelled``.

    :param prepare: called once the leases are held and before the run (the
        task server opens a task there); an error in it fails the run.
    :returns: the result, or None when another owner holds one of the leases
        (nothing ran and nothing is recorded).
    """
    names = lease_names(task)
    if not _acquire(leases, names, task.name):
        return None
    heartbeat.hold(task.name, names, stop)
    fence = LeaseFence(task.name, names, leases.owner, stop)
    try:
        run_id = record_start(task.name, leases.owner, Session=Session, stop=stop)
        result = _prepare_and_execute(task, Session, fence, prepare)
        result = _count_quarantined(result, Session)
        record(result, Session=Session, run_id=run_id)
    finally:
        heartbeat.drop(task.name)
        _release(leases, names, task.name)
    return result


def _prepare_and_execute(
    task: Task,
    Session: sessionmaker[Session],  # noqa: N803
    fence: LeaseFence,
    prepare: Callable[[], None] | None,
) -> RunResult:
    clock, owner, stop = _Clock(), fence.owner, fence.stop
    try:
        if prepare is not None:
            prepare()
    except Exception as exc:
        return _failed(task, owner, clock, exc)
    try:
        return execute(task, Session=Session, owner=owner, stop=stop, fence=fence)
    finally:
        fence.close()


def _count_quarantined(
    result: RunResult,
    Session: sessionmaker[Session],  # noqa: N803
) -> RunResult:
    """*result* with the records its run put in quarantine. It is counted
    while the run's lease is held, so no other run of the task adds to it;
    a count that cannot be read leaves 0, and the run stands.
    """

    def count() -> int:
        with Session() as session:
            return quarantine_count(
                source=result.task_name,
                since=result.started,
                until=result.ended,
                session=session,
            )

    what = f"the quarantine count of {result.task_name}"
    try:
        return replace(result, quarantined=retry_transient(count, what=what))
    except Exception:
        logger.exception("Could not count what task %s quarantined", result.task_name)
        return result


def _acquire(leases: Leases, names: tuple[str, ...], task_name: str) -> bool:
    try:
        return retry_transient(
            lambda: leases.acquire(names), what=f"the lease of {task_name}"
        )
    except Exception:
        logger.exception("Could not take the lease of task %s", task_name)
        return False


def _release(leases: Leases, names: tuple[str, ...], task_name: str) -> None:
    try:
        retry_transient(lambda: leases.release(names), what=f"the lease of {task_name}")
    except Exception:
        # The lease runs out by itself after lease_seconds.
        logger.exception("Could not release the lease of task %s", task_name)
