"""Running tasks without the scheduler, and running the task server as a
long-lived process.

:func:`run_until_drained` is what ``hepcat ingest --once`` calls;
:func:`serve_forever` is what ``hepcat taskserver`` calls.
"""

from __future__ import annotations

import logging
import math
import signal
import threading
import time
from collections.abc import Callable, Sequence
from types import FrameType

from sqlalchemy.orm import Session, sessionmaker

from taskserver.base import Task
from taskserver.dispatch import check_tasks
from taskserver.errors import DrainFailed
from taskserver.leases import LeaseHeartbeat, Leases, default_owner
from taskserver.runs import FAILED, run_leased
from taskserver.server import TaskServer

logger = logging.getLogger(__name__)

#: ``progress(task_name, items_so_far, backlog)``, called after each run.
Progress = Callable[[str, int, int | None], None]

#: Seconds to pause when every task left is leased by a running task server.
BUSY_PAUSE = 0.2


class Drained(dict[str, int]):
    """The records handled per task name, as :func:`run_until_drained`
    returns them, with the tasks it left before their source was drained.
    """

    def __init__(self, items: dict[str, int], undrained: Sequence[str] = ()) -> None:
        super().__init__(items)
        #: The tasks still pending when the time ran out or a stop came.
        self.undrained = list(undrained)


def run_until_drained(
    tasks: Sequence[Task],
    Session: sessionmaker[Session],  # noqa: N803
    *,
    max_seconds: float | None = None,
    progress: Progress | None = None,
    stop: threading.Event | None = None,
    owner: str | None = None,
    lease_seconds: float = 30.0,
) -> Drained:
    """Run each task again and again, round robin, until it reports backlog 0.

    Runs take the same leases and write the same ``task_run`` records as the
    task server's, so this is safe beside a running ``hepcat taskserver``: a
    task it holds is skipped until it lets go. A task that fails is logged,
    recorded and left out of later rounds.

    :param max_seconds: give up after about this many seconds (default: no
        limit); the tasks not drained by then are logged, and listed in the
        result's ``undrained``.
    :param progress: called as ``progress(task_name, items_so_far, backlog)``
        after each run, for a progress display.
    :param stop: when set, the current run is asked to stop and no other
        starts.
    :param owner: the name in leases and run records (default: host, process
        id and a random tag).
    :returns: the records handled, per task name; ``undrained`` names the
        tasks left before they were drained.
    :raises DrainFailed: when some task failed, after the others drained;
        a note per failed task gives its error in one line.
    """
    check_tasks(tasks)
    leases = Leases(
        Session, owner=owner or default_owner("once"), seconds=lease_seconds
    )
    drain = _Drain(tasks, Session, leases, stop or threading.Event(), progress)
    deadline = math.inf if max_seconds is None else time.monotonic() + max_seconds
    with drain:
        drain.run(deadline)
    if drain.failed:
        error = DrainFailed(drain.failed, drain.items)
        for name in drain.failed:
            error.add_note(f"{name}: {drain.reasons[name]}")
        raise error
    return Drained(drain.items, [task.name for task in drain.pending])


class _Drain:
    """The state of one :func:`run_until_drained`."""

    def __init__(
        self,
        tasks: Sequence[Task],
        Session: sessionmaker[Session],  # noqa: N803
        leases: Leases,
        stop: threading.Event,
        progress: Progress | None,
    ) -> None:
        self.Session = Session
        self.leases = leases
        self.heartbeat = LeaseHeartbeat(leases)
        self.stop = stop
        self.progress = progress
        self.pending = list(tasks)
        self.items = {task.name: 0 for task in tasks}
        self.failed: list[str] = []
        self.reasons: dict[str, str] = {}  # the failed tasks' errors, in a line
        self.opened: list[Task] = []

    def __enter__(self) -> _Drain:
        self.heartbeat.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.heartbeat.stop(timeout=5.0)
        for task in self.opened:
            try:
                task.close()
            except Exception:
                logger.exception("Task %s failed to close", task.name)

    def run(self, deadline: float) -> None:
        while self.pending and not self.stop.is_set():
            if time.monotonic() >= deadline:
                names = [task.name for task in self.pending]
                logger.warning("Tasks not drained in the time allowed: %s", names)
                return
            if self.round() == len(self.pending):
                self.stop.wait(BUSY_PAUSE)

    def round(self) -> int:
        """Run each pending task once; return how many were leased elsewhere."""
        busy = 0
        for task in list(self.pending):
            if self.stop.is_set():
                break
            busy += not self.run_once(task)
        return busy

    def run_once(self, task: Task) -> bool:
        """Run *task* once; False when another owner held its lease."""
        result = run_leased(
            task,
            Session=self.Session,
            leases=self.leases,
            heartbeat=self.heartbeat,
            stop=self.stop,
            prepare=lambda: self.open(task),
        )
        if result is None:
            return False
        self.items[task.name] += result.items
        if self.progress is not None:
            self.progress(task.name, self.items[task.name], result.backlog)
        if result.outcome == FAILED:
            self.failed.append(task.name)
            self.reasons[task.name] = result.reason or "see the log"
        if not result.again:
            self.pending.remove(task)
        return True

    def open(self, task: Task) -> None:
        if task not in self.opened:
            task.open(self.Session)
            self.opened.append(task)


def serve_forever(
    server: TaskServer, stop: threading.Event, *, stop_timeout: float = 10.0
) -> None:
    """Start *server* (unless it runs already), wait for *stop*, then stop it.

    Called in the main thread, it sets *stop* on SIGTERM and SIGINT; the
    first such signal asks for a clean stop, and a second one acts as it did
    before (Ctrl-C interrupts the stop).

    :param stop_timeout: seconds :meth:`TaskServer.stop` may take.
    """
    restore = install_stop_handlers(stop)
    try:
        if not server.running:
            server.start()
        while not stop.wait(1.0):
            pass
        logger.info("Stopping task server %s", server.owner)
    finally:
        restore()
        server.stop(stop_timeout)


def install_stop_handlers(stop: threading.Event) -> Callable[[], None]:
    """Make SIGTERM and SIGINT set *stop*, when called in the main thread.

    :returns: a function that puts the previous handlers back.
    """
    if threading.current_thread() is not threading.main_thread():
        return lambda: None
    signals = (signal.SIGTERM, signal.SIGINT)
    previous = {signum: signal.getsignal(signum) for signum in signals}

    def restore() -> None:
        for signum, handler in previous.items():
            signal.signal(signum, signal.SIG_DFL if handler is None else handler)

    def handle(signum: int, frame: FrameType | None) -> None:
        # No logging here: a handler may interrupt the logging machinery.
        stop.set()
        restore()

    for signum in signals:
        signal.signal(signum, handle)
    return restore
