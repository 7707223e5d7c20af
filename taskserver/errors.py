"""The errors of the task server."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from catalog.errors import HepcatError


class TaskConfigError(HepcatError, ValueError):
    """A set of tasks cannot be scheduled as given."""

    status = 500

    def __init__(self, name: str, reason: str) -> None:
        super().__init__(f"task {name!r} cannot be scheduled: {reason}")
        self.name = name


class DrainFailed(HepcatError, RuntimeError):
    """Some tasks failed while the others were run until drained.

    :param failed: the names of the tasks that failed; their errors are in
        the log and in the ``task_run`` table.
    :param items: records handled per task name, the failed ones included.
    """

    status = 500

    def __init__(self, failed: Sequence[str], items: Mapping[str, int]) -> None:
        names = ", ".join(map(repr, failed))
        super().__init__(
            f"task(s) {names} failed before their source was drained; "
            "see the log or the task_run table for the error"
        )
        self.failed = list(failed)
        self.items = dict(items)
