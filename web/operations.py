"""The operator's pages: the quarantine (source records that could not be
understood), the reconciliation (DDM's and Tier-0's counts that differ from
the catalogue's) and the task server's status, with the tasks that need a
look: a task that is late (it stopped running while the others go on), and a
run recorded as running that no task server runs any more (stale).
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

from flask import Blueprint, redirect, render_template, request, url_for
from werkzeug.wrappers import Response

from catalog.db import utcnow
from catalog.derived import stale_count
from catalog.errors import InvalidInput
from catalog.models import TaskLease, TaskRun
from catalog.models.users import ROLE_ADMIN
from catalog.operations import (
    TaskStatus,
    list_quarantine,
    quarantine_count,
    quarantine_sources,
    release_quarantined,
    task_statuses,
)
from catalog.reconciliation import list_reconciliations, reconciliation_sources
from web.app import catalog_session
from web.auth import acting_user, require_role
from web.pages import arg, int_arg

operations = Blueprint("operations", __name__)

ROWS_PER_PAGE = 50
# Characters of a quarantined payload shown on the page.
PAYLOAD_SHOWN = 300
RUNS_PER_TASK = 5
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
DEFAULT_HOURS = 6
MAX_HOURS = 48


@operations.get("/quarantine")
def quarantine() -> str:
    """The quarantined records, newest first; ``source`` filters by source,
    ``held=1`` shows only the records not released.
    """
    source = arg(request.args, "source")
    held_only = arg(request.args, "held") in ("1", "yes", "true")
    offset = int_arg(request.args, "offset", 0)
    with catalog_session() as session:
        # Counted as the list below: held only, or held and released.
        sources = quarantine_sources(
            released=False if held_only else None, session=session
        )
        page = list_quarantine(
            session=session,
            source=source,
            released=False if held_only else None,
            offset=offset,
            limit=ROWS_PER_PAGE,
        )
    return render_template(
        "quarantine.html",
        page=page,
        source=source,
        held_only=held_only,
        sources=sources,
        shown=PAYLOAD_SHOWN,
    )


@operations.post("/quarantine/<int:record_id>/release")
@require_role(ROLE_ADMIN, action="releasing a record from quarantine")
def release(record_id: int) -> Response:
    """Release a quarantined record from the form on the quarantine page,
    and go back to where the form was.
    """
    reason = request.form.get("reason")
    with catalog_session() as session:
        release_quarantined(
            [record_id], by=acting_user().login, reason=reason, session=session
        )
    back: dict[str, Any] = {
        key: value for key in ("source", "held") if (value := arg(request.form, key))
    }
    back["_anchor"] = f"q{record_id}"
    return redirect(url_for("operations.quarantine", **back))


@operations.get("/reconciliation")
def reconciliation() -> str:
    """The differences between a source's counts (DDM's at a ``close``,
    Tier-0's) and the catalogue's; ``all=1`` shows the resolved ones too,
    ``source`` filters by source.
    """
    everything = arg(request.args, "all") in ("1", "yes", "true")
    source = arg(request.args, "source")
    offset = int_arg(request.args, "offset", 0)
    with catalog_session() as session:
        sources = reconciliation_sources(session=session)
        page = list_reconciliations(
            session=session,
            resolved=everything,
            source=source,
            offset=offset,
            limit=ROWS_PER_PAGE,
        )
    return render_template(
        "reconciliation.html",
        page=page,
        everything=everything,
        source=source,
        sources=sources,
    )


@operations.get("/taskserver")
def taskserver() -> str:
    """Each task: its lease, its last runs and its backlog; the catalogue's
    own backlogs; and the ingest-rate plot over the last ``hours``.
    """
    hours = plot_hours()
    with catalog_session() as session:
        tasks = task_statuses(session=session, runs_per_task=RUNS_PER_TASK)
        waiting = stale_count(session=session)
        quarantined = quarantine_count(released=False, session=session)
    now = utcnow()
    last = max((r.ended for t in tasks for r in t.runs if r.ended), default=None)
    stale_runs = {
        run_id: why for task in tasks for run_id, why in stale(task, now).items()
    }
    return render_template(
        "taskserver.html",
        tasks=tasks,
        stale=waiting,
        quarantined=quarantined,
        hours=hours,
        now=now,
        idle_since=None if _running(tasks, last, now) else last,
        stale_runs=stale_runs,
        late=late(tasks, now, stale_runs),
        late_factor=LATE_FACTOR,
        late_after=LATE_AFTER,
    )


@operations.app_template_global("held")
def held(lease: TaskLease | None, now: dt.datetime) -> bool:
    """Whether a task-server instance holds *lease* now (during a run)."""
    return bool(lease and lease.owner and lease.expires and lease.expires > now)


def _running(tasks: list[Any], last: dt.datetime | None, now: dt.datetime) -> bool:
    """Whether a task server seems to run: a task runs now, or a run ended
    within :data:`IDLE_AFTER` (a task server runs each task every few seconds).
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


def plot_hours() -> int:
    """The ``hours`` argument: how far back the ingest rates go.

    :raises InvalidInput: unless it is an integer from 1 to :data:`MAX_HOURS`.
    """
    hours = int_arg(request.args, "hours", DEFAULT_HOURS)
    if not 1 <= hours <= MAX_HOURS:
        raise InvalidInput(f"hours must be between 1 and {MAX_HOURS}, got {hours}")
    return hours


@operations.app_template_filter("error_summary")
def error_summary(error: str | None) -> str:
    """The exception a run ended with, from its recorded traceback (or its
    message alone): the lines after the last stack frame, without the SQL a
    database error quotes. Pages never show the traceback itself.
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


@operations.app_template_filter("duration")
def duration(seconds: float | dt.timedelta | None) -> str:
    """Return a duration as people read it: ``0.42 s``, ``3 min 5 s``."""
    if seconds is None:
        return ""
    if isinstance(seconds, dt.timedelta):
        seconds = seconds.total_seconds()
    if seconds < 60:
        return f"{seconds:.2f} s" if seconds < 10 else f"{seconds:.0f} s"
    minutes, rest = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {rest} s"
    return f"{minutes // 60} h {minutes % 60} min"


@operations.app_template_filter("ago")
def ago(moment: dt.datetime | None, now: dt.datetime) -> str:
    """How long before *now* *moment* was, as people say it: ``4 min ago``."""
    if moment is None:
        return ""
    if now - moment < dt.timedelta(seconds=1):
        return "just now"
    return f"{span(now - moment)} ago"


@operations.app_template_filter("span")
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
