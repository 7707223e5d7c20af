"""Which due task runs next: priorities with ageing, and lock exclusion.

The rule, applied each time a worker is free:

1. A task is *ready* when it is due, not running, and no running task holds
   any of its ``locks``.
2. Among the ready tasks, the one with the largest *effective priority*
   ``priority + age`` runs; ties go to the task that has been due longest,
   then to the larger base priority, then to the smaller name.
3. Every other due task, ready or not, ages by one: its age counts the runs
   dispatched while it waited. A task's age goes back to 0 when it runs.

So priority orders tasks that fall due together (they age alike), and a due
task waits for at most ``p_max - p`` dispatches of higher-priority tasks
(plus the runs that hold its locks), however much backlog those report: no
task starves. The rule counts dispatches, not seconds, so it is the same on a
fast or a slow machine.

:class:`DueQueue` holds state only; the task server calls it under its own
lock. :func:`check_tasks` checks that a set of tasks can be scheduled.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from taskserver.base import Task
from taskserver.errors import TaskConfigError
from taskserver.leases import lease_names

#: The length of ``task_lease.task_name`` (task names and ``lock:`` + lock names).
MAX_LEASE_NAME = 64


@dataclass
class Entry:
    """The scheduling state of one task."""

    task: Task
    due: bool = False
    due_since: int = 0
    age: int = 0
    running: bool = False

    @property
    def effective_priority(self) -> int:
        return self.task.priority + self.age

    def rank(self) -> tuple[int, int, int, str]:
        """Sort key: the smallest runs first."""
        return (
            -self.effective_priority,
            self.due_since,
            -self.task.priority,
            self.task.name,
        )


class DueQueue:
    """The due tasks of a task server, and the choice of the next one to run."""

    def __init__(self, tasks: Iterable[Task]) -> None:
        self.entries = {task.name: Entry(task) for task in tasks}
        # Due order is counted, not timed, so that ties are exact.
        self._sequence = itertools.count()

    def __iter__(self) -> Iterator[Entry]:
        return iter(self.entries.values())

    def mark_due(self, name: str) -> None:
        """Make *name* due; a task already due keeps its place."""
        entry = self.entries[name]
        if not entry.due:
            entry.due = True
            entry.due_since = next(self._sequence)

    def held_locks(self) -> set[str]:
        """The lock names held by running tasks."""
        return {lock for e in self if e.running for lock in e.task.locks}

    def ready(self) -> list[Entry]:
        held = self.held_locks()
        return [e for e in self if e.due and not e.running and not e.task.locks & held]

    def pick(self) -> Task | None:
        """Choose the next task to run and mark it running; None if none is ready."""
        candidates = self.ready()
        if not candidates:
            return None
        chosen = min(candidates, key=Entry.rank)
        for entry in self:
            if entry.due and entry is not chosen:
                entry.age += 1
        chosen.running, chosen.due, chosen.age = True, False, 0
        return chosen.task

    def finish(self, name: str, *, again: bool) -> None:
        """Mark *name* no longer running; due again at once when *again*."""
        self.entries[name].running = False
        if again:
            self.mark_due(name)

    def running(self) -> list[str]:
        return [e.task.name for e in self if e.running]


def check_tasks(tasks: Iterable[Task]) -> None:
    """Check that *tasks* can be scheduled together.

    :raises TaskConfigError: for a duplicate or over-long name, a lock name
        too long for its lease row, or an interval or budget that is not
        positive.
    """
    seen: set[str] = set()
    for task in tasks:
        if not task.name or task.name in seen:
            raise TaskConfigError(task.name, "its name is empty or used twice")
        seen.add(task.name)
        too_long = [n for n in lease_names(task) if len(n) > MAX_LEASE_NAME]
        if too_long:
            raise TaskConfigError(
                task.name,
                f"lease name(s) {too_long} exceed {MAX_LEASE_NAME} characters",
            )
        if not task.interval > 0 or not task.budget > 0:
            raise TaskConfigError(task.name, "interval and budget must be positive")
