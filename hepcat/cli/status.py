"""``hepcat status``: the task server's health from the shell, as the
task-server page judges it (:mod:`catalog.taskhealth`), for an operator, cron
or a monitoring check.
"""

from __future__ import annotations

import click

from catalog.operations import TaskStatus
from catalog.taskhealth import TaskHealth, ago, held, task_health
from hepcat.cli.base import Context, main, pass_context

#: What an empty catalogue prints, as the task-server page says it.
NO_TASK = (
    "no task has run yet: start 'hepcat taskserver', or run 'hepcat ingest --once'"
)


@main.command()
@pass_context
def status(context: Context) -> None:
    """Print the task server's health.

    As the /taskserver page judges it: a line per task with its last run's
    outcome, when it ended, items, backlog and who holds its lease, flagged
    LATE, STALE or FAILED with the reason when it needs a look; then
    whether a task server seems to run, the records held in quarantine and
    the datasets waiting for their derived quantities.

    Exit status 0 when nothing needs a look, 1 when a task is late, a run
    is stale (recorded as running, but no task server runs it), a task's
    last run failed or tasks have run but no task server seems to run now,
    for cron or a Nagios check; 1 also, with the error on stderr, when the
    catalogue cannot be opened.
    """
    with context.catalog().begin() as session:
        health = task_health(session=session)
    for line in status_lines(health):
        click.echo(line)
    if health.needs_look:
        raise SystemExit(1)


def status_lines(health: TaskHealth) -> list[str]:
    """What ``hepcat status`` prints of *health*, line by line."""
    width = max((len(task.name) for task in health.tasks), default=0)
    lines = [
        f"{task.name:<{width}}  {_task_line(task, health)}" for task in health.tasks
    ]
    lines.append(_server_line(health) if health.tasks else NO_TASK)
    held_back, waiting = health.quarantined, health.stale_datasets
    lines.append(f"{held_back:,} record{_s(held_back)} held in quarantine")
    lines.append(
        f"{waiting:,} dataset{_s(waiting)} waiting for their derived quantities"
    )
    return lines


def _task_line(task: TaskStatus, health: TaskHealth) -> str:
    """A task's last run, its backlog, its lease and its flags, in words."""
    parts = [_last_run(task, health)]
    backlog = "unknown" if task.backlog is None else f"{task.backlog:,}"
    parts.append(f"backlog {backlog}")
    if held(task.lease, health.now) and task.lease is not None:
        parts.append(f"lease held by {task.lease.owner}")
    return "  ".join([", ".join(parts), *_flags(task, health)])


def _last_run(task: TaskStatus, health: TaskHealth) -> str:
    """The outcome of the last run of *task*, when, and its items."""
    run = task.last
    if run is None:
        return "never ran"
    items = f"{run.items:,} item{_s(run.items)}"
    if run.ended is not None:
        return f"{run.outcome}, ended {ago(run.ended, health.now)}, {items}"
    state = "no end" if run.id in health.stale_runs else "running"
    return f"{state}, started {ago(run.started, health.now)}, {items}"


def _flags(task: TaskStatus, health: TaskHealth) -> list[str]:
    """The flags of *task* that need a look, each with the reason in words."""
    flags = [
        f"STALE: the run started {ago(run.started, health.now)} by "
        f"{run.owner or 'an unnamed task server'} never ended: "
        f"{health.stale_runs[run.id]}"
        for run in task.runs
        if run.id in health.stale_runs
    ]
    if task.name in health.late:
        flags.insert(0, f"LATE: {health.late[task.name]}")
    if task.name in health.failed:
        flags.append(f"FAILED: {health.failed[task.name]}")
    return flags


def _server_line(health: TaskHealth) -> str:
    """Whether a task server seems to run, and if not since when."""
    if health.server_running:
        return "a task server runs"
    if health.idle_since is None:
        return "no task server seems to run: no run has ended"
    ended = ago(health.idle_since, health.now)
    return f"no task server seems to run: the last run ended {ended}"


def _s(count: int) -> str:
    return "" if count == 1 else "s"
