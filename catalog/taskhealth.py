"""The task server's health, as an operator judges it: the tasks that are
late (a task stopped running while the others go on), the runs recorded as
running that no task server runs any more (stale), the tasks whose last run
failed, and whether a task server seems to run at all.

The task-server page (``/taskserver``) and ``hepcat status`` both read it
through :func:`task_health`; the words helpers (:func:`span`, :func:`ago`,
:func:`error_summary`) say it the same way on both.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass

from sqlalchemy.orm import Session

from catalog.db import utcnow
from catalog.derived import stale_count
from catalog.models import TaskLease, TaskRun
from catalog.operations import TaskStatus, quarantine_count, task_statuses

# No run ended for this long, and none running: no task server, it seems.
IDLE_AFTER = dt.timedelta(minutes=2)
# A task is late when no run of it ended for LATE_FACTOR times its usual
# pause between runs, and for LATE_AFTER at least: a task server may wait for
# a worker, or behind a long run of another task.
LATE_FACTOR = 5
LATE_AFTER = dt.timedelta(minutes=1)
# Characters of a run's error shown. A database error quotes its statement
# from a line starting with one of SQL_QUOTED to its "(Background ..." line;
# PostgreSQL also quotes the statement's line that it stumbled on, and marks
# the place with a caret on a line of its own.
ERROR_SHOWN = 300
SQL_QUOTED = ("[SQL", "[parameters:")
SQL_QUOTE_ENDS = "(Background on this error"
SQL_POSITION = re.compile(r"LINE \d+: |\s*\^\s*$")
#: The outcome of a run that failed, as the task server records it.
FAILED = "failed"


@dataclass(frozen=True)
class TaskHealth:
    """The task server's health at *now*: each task's status, and what
    needs a look.
    """

    tasks: list[TaskStatus]
    now: dt.datetime
    #: The runs recorded as running that no task server seems to run, by
    #: id, with the reason in words.
    stale_runs: dict[int, str]
    #: The tasks that seem late, by name, with the reason in words.
    late: dict[str, str]
    #: Whether a task server seems to run (see :func:`running`).
    server_running: bool
    #: When the newest run ended (None: no run ended).
    last_ended: dt.datetime | None
    #: How many datasets wait for their derived quantities.
    stale_datasets: int
    #: How many records are held in quarantine (not released).
    quarantined: int

    @property
    def idle_since(self) -> dt.datetime | None:
        """When the last run ended, if no task server seems to run now."""
        return None if self.server_running else self.last_ended

    @property
    def failed(self) -> dict[str, str]:
        """The tasks whose last finished run failed, by name, with its error
        in words: a task run again after a failure is flagged until a run of
        it ends well.
        """
        lasts = {task.name: last_finished(task) for task in self.tasks}
        return {
            name: error_summary(run.error) or "the task failed"
            for name, run in lasts.items()
            if run is not None and run.outcome == FAILED
        }

    @property
    def needs_look(self) -> bool:
        """Whether a task is late, a run stale, a task's last finished run
        failed, or tasks have run but no task server seems to run now.
        """
        stopped = bool(self.tasks) and not self.server_running
        return bool(self.late or self.stale_runs or self.failed or stopped)


def task_health(
    *, session: Session, runs_per_task: int = 5, now: dt.datetime | None = None
) -> TaskHealth:
    """The task server's health: every task with its last *runs_per_task*
    runs, judged at *now* (default: when they have been read).
    """
    tasks = task_statuses(session=session, runs_per_task=runs_per_task)
    stale_datasets = stale_count(session=session)
    quarantined = quarantine_count(released=False, session=session)
    now = utcnow() if now is None else now
    last = max((r.ended for t in tasks for r in t.runs if r.ended), default=None)
    stale_runs = {
        run_id: why for task in tasks for run_id, why in stale(task, now).items()
    }
    return TaskHealth(
        tasks=tasks,
        now=now,
        stale_runs=stale_runs,
        late=late(tasks, now, stale_runs),
        server_running=running(tasks, last, now),
        last_ended=last,
        stale_datasets=stale_datasets,
        quarantined=quarantined,
    )


def last_finished(task: TaskStatus) -> TaskRun | None:
    """The newest run of *task* that ended (of the runs read), if any: a run
    is recorded as running from its start.
    """
    return next((run for run in task.runs if run.ended is not None), None)


def held(lease: TaskLease | None, now: dt.datetime) -> bool:
    """Whether a task-server instance holds *lease* now (during a run)."""
    return bool(lease and lease.owner and lease.expires and lease.expires > now)


def running(
    tasks: list[TaskStatus], last: dt.datetime | None, now: dt.datetime
) -> bool:
    """Whether a task server seems to run: a task runs now, or a run ended
    (the newest at *last*) within :data:`IDLE_AFTER` (a task server runs
    each task every few seconds).
    """
    if any(held(task.lease, now) for task in tasks):
        return True
    return last is not None and now - last < IDLE_AFTER


def stale(task: TaskStatus, now: dt.datetime) -> dict[int, str]:
    """The runs of *task* recorded as running that no task server seems to
    run any more, by id, with the reason in words. A run extends its task's
    lease while it works, and the lease keeps two runs of a task apart: a run
    is stale when a later run of its task was recorded, or when its owner
    does not hold the task's lease now.
    """
    found = {}
    for index, run in enumerate(task.runs):
        if run.ended is not None:
            continue
        why = "a later run was recorded" if index else _lost_lease(task, run, now)
        if why:
            found[run.id] = why
    return found


def _lost_lease(task: TaskStatus, run: TaskRun, now: dt.datetime) -> str | None:
    """Why the owner of *run* seems no longer to run it, judged by the lease
    of *task*; None when the owner holds the lease.
    """
    lease = task.lease
    if lease is None or lease.owner is None:
        return "its lease is free"
    if lease.expires is None or lease.expires <= now:
        return f"its lease ran out {ago(lease.expires, now)}"
    if lease.owner != run.owner:
        return f"{lease.owner} holds its lease now"
    return None


def late(
    tasks: list[TaskStatus], now: dt.datetime, stale_runs: dict[int, str]
) -> dict[str, str]:
    """The tasks that seem late, by name, with the reason in words.

    A task is late when no task server holds its lease, and its last run
    ended more than :data:`LATE_FACTOR` times its usual pause between runs
    ago, and at least :data:`LATE_AFTER` ago. A task with a single run has no
    usual pause: the waits since their last runs of the tasks that go on (the
    middle one) stand in for it. A task whose newest run is stale is not said
    to be late as well.
    """
    waits = {task.name: _waiting(task, now) for task in tasks}
    stalled = {t.name for t in tasks if t.last is not None and t.last.id in stale_runs}
    found = {}
    for task in tasks:
        waited, usual = waits[task.name], task.usual_pause
        if waited is None or usual is None or task.name in stalled:
            continue
        if waited > max(LATE_AFTER, LATE_FACTOR * usual):
            why = f"it usually runs again within {span(usual)}"
            found[task.name] = f"no run for {span(waited)}; {why}"
    once = [t.name for t in tasks if t.usual_pause is None and t.name not in stalled]
    going_on = {n: w for n, w in waits.items() if n not in found.keys() | stalled}
    found.update(_late_among(once, going_on))
    return found


def _late_among(
    names: list[str], waits: dict[str, dt.timedelta | None]
) -> dict[str, str]:
    """Which of the tasks *names*, each with a single run, are late beside
    the tasks that go on, whose *waits* since their last runs are given.
    """
    found = {}
    for name in names:
        waited = waits.get(name)
        others = sorted(w for n, w in waits.items() if n != name and w is not None)
        if waited is None or not others:
            continue
        middle = others[len(others) // 2]
        if waited > max(LATE_AFTER, LATE_FACTOR * middle):
            why = f"the other tasks ran within the last {span(middle)}"
            found[name] = f"no run for {span(waited)}; {why}"
    return found


def _waiting(task: TaskStatus, now: dt.datetime) -> dt.timedelta | None:
    """How long *task* has waited since its last run (None: it never ran;
    nothing while a task server holds its lease: it runs now).
    """
    if task.last_seen is None:
        return None
    if held(task.lease, now):
        return dt.timedelta(0)
    return max(now - task.last_seen, dt.timedelta(0))


# --- in words ----------------------------------------------------------------------


def ago(moment: dt.datetime | None, now: dt.datetime) -> str:
    """How long before *now* *moment* was, as people say it: ``4 min ago``."""
    if moment is None:
        return ""
    if now - moment < dt.timedelta(seconds=1):
        return "just now"
    return f"{span(now - moment)} ago"


def span(length: dt.timedelta) -> str:
    """A length of time, to the unit that matters: ``20 s``, ``4 min``,
    ``1 h 10 min``, ``3 days``.
    """
    seconds = max(int(length.total_seconds()), 1)
    if seconds < 60:
        return f"{seconds} s"
    minutes, hours, days = seconds // 60, seconds // 3600, seconds // 86400
    if minutes < 60:
        return f"{minutes} min"
    if days < 2:
        return f"{hours} h {minutes % 60} min" if minutes % 60 else f"{hours} h"
    return f"{days} days"


def error_summary(error: str | None) -> str:
    """The exception a run ended with, from its recorded traceback (or its
    message alone): the lines after the last stack frame, without the SQL a
    database error quotes. Neither the page nor the CLI shows the traceback.
    """
    if not error:
        return ""
    lines = _exception_lines(error.strip().splitlines())
    summary = " ".join(_without_sql(lines)).strip() or "the task failed"
    return summary if len(summary) <= ERROR_SHOWN else summary[:ERROR_SHOWN] + "…"


def _exception_lines(lines: list[str]) -> list[str]:
    """The lines after the last frame of a traceback (each frame a ``File``
    line and the indented lines of code under it); all of them when there is
    no frame.
    """
    frames = [i for i, line in enumerate(lines) if line.startswith('  File "')]
    if not frames:
        return lines
    end = frames[-1] + 1
    while end < len(lines) and lines[end].startswith("    "):
        end += 1
    return lines[end:]


def _without_sql(lines: list[str]) -> list[str]:
    """*lines* less the SQL a database error quotes: its statement and
    parameters, which span lines, up to and with the line linking to
    SQLAlchemy's explanation, or to the end when that line is missing.
    """
    kept, quoting = [], False
    for line in lines:
        quoting = quoting or line.startswith(SQL_QUOTED)
        if not quoting and not SQL_POSITION.match(line):
            kept.append(line)
        if line.startswith(SQL_QUOTE_ENDS):
            quoting = False
    return kept
