"""The task server: time-shares tasks on a pool of worker threads.

APScheduler is only the clock here. Each task has one interval job, which
marks the task due and returns at once; it never runs task code, so
APScheduler's misfire and ``max_instances`` rules never skip a run. A
dispatcher thread of ours hands due tasks to a pool of ``workers`` threads
in the order of :mod:`taskserver.dispatch` (priority with ageing, lock
exclusion). A run holds leases in the catalogue (:mod:`taskserver.leases`),
so a task never runs twice at once, also across task-server processes, and
each run is recorded in ``task_run`` (:mod:`taskserver.runs`).

Timing: every task is due when the server starts. A run that reports a
backlog (or an unknown backlog after doing some work) makes its task due
again at once, the gear change; otherwise the task is due again ``interval``
seconds after the run ended. A task whose lease another instance holds is
tried again after ``min(interval, lease_seconds)`` seconds. A task that
fails the same way run after run waits twice as long after each such failure,
up to :data:`MAX_FAILURE_PAUSE` (five minutes): a source that is down or
misconfigured is not hammered, nor the log filled, every few seconds.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from types import TracebackType

from apscheduler.executors.pool import ThreadPoolExecutor as ClockExecutor
from apscheduler.jobstores.base import JobLookupError
from apscheduler.schedulers import SchedulerNotRunningError
from apscheduler.schedulers.background import BackgroundScheduler
from sqlalchemy.orm import Session, sessionmaker

from catalog.db import utcnow
from taskserver.base import Task
from taskserver.dispatch import DueQueue, Entry, check_tasks
from taskserver.errors import TaskConfigError
from taskserver.leases import (
    MAX_OWNER,
    LeaseHeartbeat,
    Leases,
    default_owner,
    lease_names,
)
from taskserver.metrics import TaskMetrics
from taskserver.runs import RunResult, run_leased

logger = logging.getLogger(__name__)

#: A run longer than this many budgets is logged as a warning: it holds a
#: worker that other tasks may be waiting for.
OVERRUN = 2.0


@dataclass(frozen=True)
class TaskStatus:
    """A snapshot of one task, for logs and the status page.

    :param effective_priority: priority plus the ageing earned while due.
    :param busy: runs skipped because another instance held the lease.
    :param last: the last finished run, if any.
    """

    name: str
    priority: int
    interval: float
    locks: tuple[str, ...]
    due: bool
    running: bool
    effective_priority: int
    runs: int = 0
    items: int = 0
    failures: int = 0
    busy: int = 0
    last: RunResult | None = None


#: The longest pause, in seconds, before a task that keeps failing the same
#: way is tried again (its interval, when that is longer).
MAX_FAILURE_PAUSE = 300.0


def failure_pause(interval: float, repeats: int) -> float:
    """Seconds before the next run of a task whose last *repeats* runs failed
    the same way: its *interval*, doubled for each repeat after the first,
    up to :data:`MAX_FAILURE_PAUSE`.
    """
    longest = max(interval, MAX_FAILURE_PAUSE)
    return float(min(interval * 2 ** min(repeats - 1, 32), longest))


@dataclass
class _Tally:
    runs: int = 0
    items: int = 0
    failures: int = 0
    busy: int = 0
    last: RunResult | None = None
    repeats: int = 0  # the last runs that failed with the same error

    def add(self, result: RunResult | None) -> None:
        if result is None:
            self.busy += 1
            return
        same = self.last is not None and self.last.reason == result.reason
        self.repeats = (self.repeats + 1 if same else 1) if result.failed else 0
        self.runs += 1
        self.items += result.items
        self.failures += result.failed
        self.last = result


class TaskServer:
    """Run *tasks* on a schedule until stopped.

    :param tasks: the tasks; their names must be unique.
    :param Session: the catalogue's session factory (leases, run records,
        and the tasks' own work).
    :param workers: how many runs may go on at the same time (default 8).
    :param owner: this instance's name in leases and run records (at most 64
        characters; default: host, process id and a random tag).
    :param lease_seconds: how long a lease lasts unless extended (default
        30 s); a dead instance's tasks are taken over after this long. Leases
        are extended every ``lease_seconds / 3`` while a run works.
    """

    def __init__(
        self,
        tasks: Sequence[Task],
        Session: sessionmaker[Session],  # noqa: N803
        *,
        workers: int = 8,
        owner: str | None = None,
        lease_seconds: float = 30.0,
    ) -> None:
        check_tasks(tasks)
        self._check_settings(workers, owner, lease_seconds)
        self.Session = Session
        self.workers = workers
        self._tasks = {task.name: task for task in tasks}
        self._owner = owner or default_owner()
        self._queue = DueQueue(tasks)
        self._cond = threading.Condition()
        self._stopping = threading.Event()
        self._started = False
        self._active: dict[str, threading.Event] = {}
        self._opened: set[str] = set()
        self._tallies = {name: _Tally() for name in self._tasks}
        self._leases = Leases(Session, owner=self._owner, seconds=lease_seconds)
        self._heartbeat = LeaseHeartbeat(self._leases)
        self.metrics = TaskMetrics(self._tasks)
        self._clock = BackgroundScheduler(
            timezone=dt.UTC, executors={"default": ClockExecutor(1)}
        )
        self._executor: ThreadPoolExecutor | None = None
        self._dispatcher: threading.Thread | None = None

    @staticmethod
    def _check_settings(workers: int, owner: str | None, lease_seconds: float) -> None:
        if workers < 1:
            raise TaskConfigError("*", f"workers = {workers}; at least 1 is needed")
        if owner is not None and not 0 < len(owner) <= MAX_OWNER:
            raise TaskConfigError("*", f"owner {owner!r} is empty or too long")
        if not lease_seconds > 0:
            raise TaskConfigError("*", f"lease_seconds = {lease_seconds} is not > 0")

    # -- status -------------------------------------------------------------

    @property
    def owner(self) -> str:
        """This instance's name in leases and run records."""
        return self._owner

    @property
    def lease_seconds(self) -> float:
        return self._leases.seconds

    @property
    def tasks(self) -> tuple[Task, ...]:
        return tuple(self._tasks.values())

    @property
    def running(self) -> bool:
        """Whether the server has started and not been asked to stop."""
        return self._started and not self._stopping.is_set()

    @property
    def active(self) -> list[str]:
        """The names of the tasks running now."""
        with self._cond:
            return list(self._active)

    @property
    def status(self) -> dict[str, TaskStatus]:
        """A snapshot of every task's schedule and runs, by name."""
        with self._cond:
            return {entry.task.name: self._status(entry) for entry in self._queue}

    def _status(self, entry: Entry) -> TaskStatus:
        task, tally = entry.task, self._tallies[entry.task.name]
        return TaskStatus(
            name=task.name,
            priority=task.priority,
            interval=task.interval,
            locks=tuple(sorted(task.locks)),
            due=entry.due,
            running=entry.running,
            effective_priority=entry.effective_priority,
            runs=tally.runs,
            items=tally.items,
            failures=tally.failures,
            busy=tally.busy,
            last=tally.last,
        )

    def metrics_text(self) -> bytes:
        """The server's metrics in the Prometheus text exposition format."""
        return self.metrics.text()

    # -- starting, waiting, stopping -----------------------------------------

    def start(self) -> None:
        """Create the lease rows, make every task due and start the threads.

        :raises RuntimeError: if the server was started before.
        """
        if self._started:
            raise RuntimeError(f"task server {self.owner} was already started")
        self._leases.ensure([n for t in self.tasks for n in lease_names(t)])
        self._started = True
        self._executor = ThreadPoolExecutor(
            self.workers, thread_name_prefix="hepcat-task"
        )
        self._heartbeat.start()
        with self._cond:
            for name in self._tasks:
                self._queue.mark_due(name)
        self._start_clock()
        self._dispatcher = threading.Thread(
            target=self._dispatch_loop, name="hepcat-dispatcher", daemon=True
        )
        self._dispatcher.start()
        logger.info(
            "Task server %s started: %d task(s), %d worker(s)",
            self.owner,
            len(self._tasks),
            self.workers,
        )

    def _start_clock(self) -> None:
        now = utcnow()
        for task in self.tasks:
            self._clock.add_job(
                self._tick,
                "interval",
                seconds=task.interval,
                args=[task.name],
                id=task.name,
                name=f"mark {task.name} due",
                next_run_time=now + dt.timedelta(seconds=task.interval),
                # The job only marks the task due, so it may always run late
                # and several missed ticks are worth one.
                misfire_grace_time=None,
                coalesce=True,
                max_instances=1,
            )
        self._clock.start()

    def wait(
        self,
        until: Callable[[TaskServer], bool] | None = None,
        timeout: float | None = None,
    ) -> bool:
        """Block until ``until(server)`` is true, checked after every run, or
        without *until*, until the server has stopped and its runs ended.

        :param timeout: seconds to wait at most (default: no limit).
        :returns: whether the condition was met (False: timed out).
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while not self._condition_met(until):
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    return False
                self._cond.wait(left)
            return True

    def _condition_met(self, until: Callable[[TaskServer], bool] | None) -> bool:
        if until is not None:
            return until(self)
        return self._stopping.is_set() and not self._active

    def stop(self, timeout: float = 10.0) -> bool:
        """Stop scheduling, ask running tasks to stop, and close the tasks.

        Running tasks see ``context.stop`` set. Returns within *timeout*
        seconds; a run still going then keeps its lease extended and closes
        its task when it returns.

        :returns: whether every run had ended in time.
        """
        if not self._started:
            return True
        deadline = time.monotonic() + timeout
        with self._cond:
            self._stopping.set()
            for run_stop in self._active.values():
                run_stop.set()
            self._cond.notify_all()
        self._stop_threads(deadline)
        idle = self.wait(timeout=max(deadline - time.monotonic(), 0))
        if idle:
            self._heartbeat.stop(max(deadline - time.monotonic(), 0))
        else:
            logger.warning(
                "Task server %s stopped with runs going: %s", self.owner, self.active
            )
        self._close_idle_tasks()
        logger.info("Task server %s stopped", self.owner)
        return idle

    def _stop_threads(self, deadline: float) -> None:
        try:
            self._clock.shutdown(wait=False)
        except SchedulerNotRunningError:
            pass
        if self._dispatcher is not None:
            self._dispatcher.join(max(deadline - time.monotonic(), 0))
        if self._executor is not None:
            self._executor.shutdown(wait=False)

    def _close_idle_tasks(self) -> None:
        for name in list(self._tasks):
            self._close_if_idle(name)

    def _close_if_idle(self, name: str) -> None:
        with self._cond:
            if name not in self._opened or name in self._active:
                return
            self._opened.discard(name)
        try:
            self._tasks[name].close()
        except Exception:
            logger.exception("Task %s failed to close", name)

    def __enter__(self) -> TaskServer:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    # -- the clock, the dispatcher and the workers ---------------------------

    def _tick(self, name: str) -> None:
        # A tick during a run is dropped: the run that is going on is the
        # one the tick asks for, and the next is timed from its end.
        with self._cond:
            if not self._stopping.is_set() and name not in self._active:
                self._queue.mark_due(name)
                self._cond.notify_all()

    def _dispatch_loop(self) -> None:
        while True:
            with self._cond:
                task = self._next_task()
                if task is None:
                    return
                run_stop = threading.Event()
                self._active[task.name] = run_stop
            self._submit(task, run_stop)

    def _next_task(self) -> Task | None:
        while not self._stopping.is_set():
            if len(self._active) < self.workers:
                task = self._queue.pick()
                if task is not None:
                    return task
            self._cond.wait()
        return None

    def _submit(self, task: Task, run_stop: threading.Event) -> None:
        assert self._executor is not None
        try:
            self._executor.submit(self._work, task, run_stop)
        except RuntimeError:
            # The pool was shut down by stop() after the task was picked.
            self._vacate(task, again=False)

    def _work(self, task: Task, run_stop: threading.Event) -> None:
        if run_stop.is_set():
            # Picked just before stop(): not worth a lease and a record.
            self._vacate(task, again=False)
            return
        try:
            result = run_leased(
                task,
                Session=self.Session,
                leases=self._leases,
                heartbeat=self._heartbeat,
                stop=run_stop,
                prepare=lambda: self._open(task),
            )
        except BaseException:
            # run_leased handles the task's errors; this is ours, or an exit.
            logger.exception("Task server %s could not run %s", self.owner, task.name)
            self._vacate(task, again=False)
            self._reschedule(task, task.interval)
            raise
        self._finish(task, result)

    def _open(self, task: Task) -> None:
        with self._cond:
            if task.name in self._opened:
                return
        task.open(self.Session)
        with self._cond:
            self._opened.add(task.name)

    def _finish(self, task: Task, result: RunResult | None) -> None:
        """Count the run, free its slot, and time the task's next run: at once
        after a backlog, else after its interval, or sooner when another
        owner held the lease (it may have died).
        """
        self._observe(task, result)
        again = result is not None and result.again
        with self._cond:
            tally = self._tallies[task.name]
            tally.add(result)
            repeats = tally.repeats
        if not self._vacate(task, again=again) and not again:
            busy_delay = min(task.interval, self.lease_seconds)
            delay = task.interval if result else busy_delay
            if repeats:
                delay = failure_pause(task.interval, repeats)
            if repeats > 1:
                logger.warning(
                    "Task %s failed the same way %d times in a row; next try in %.0f s",
                    task.name,
                    repeats,
                    delay,
                )
            self._reschedule(task, delay)

    def _vacate(self, task: Task, *, again: bool) -> bool:
        """Mark *task* no longer running; when stopping, close it, and stop
        the heartbeat after the last run.

        :returns: whether the server is stopping.
        """
        with self._cond:
            stopping = self._stopping.is_set()
            self._queue.finish(task.name, again=again and not stopping)
            del self._active[task.name]
            idle = not self._active
            self._cond.notify_all()
        if stopping:
            self._close_if_idle(task.name)
            if idle:
                self._heartbeat.stop(0)
        return stopping

    def _observe(self, task: Task, result: RunResult | None) -> None:
        if result is None:
            self.metrics.observe_busy(task.name)
            logger.debug("Task %s is leased by another task server", task.name)
            return
        self.metrics.observe(result)
        if result.attempts == 1 and result.seconds > OVERRUN * task.budget:
            logger.warning(
                "Task %s took %.1f s, over twice its budget of %.1f s",
                task.name,
                result.seconds,
                task.budget,
            )
        held = result.quarantined
        log = logger.info if result.items or held else logger.debug
        log(
            "Task %s: %s, %d item(s)%s, backlog %s, %.3f s%s",
            task.name,
            result.outcome,
            result.items,
            f", {held} quarantined" if held else "",
            result.backlog,
            result.seconds,
            f"; {result.note}" if result.note else "",
        )

    def _reschedule(self, task: Task, delay: float) -> None:
        """Make the next tick of *task* come *delay* seconds from now."""
        try:
            self._clock.modify_job(
                task.name, next_run_time=utcnow() + dt.timedelta(seconds=delay)
            )
        except (JobLookupError, SchedulerNotRunningError):
            pass  # stopping: nothing more is scheduled
