"""The task base class: what the task server knows of every task.

A task does a little work per run, within its time budget, and says how
much it did and how much is left. The task server calls it again promptly
while it has a backlog ("gear change") and otherwise every ``interval``
seconds. Ingesters and the skim task are subclasses; the task server knows
them only through this class.
"""

from __future__ import annotations

import threading
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, ClassVar

from sqlalchemy.orm import Session, sessionmaker


@dataclass(frozen=True)
class RunOutcome:
    """What one run did.

    :param items: records handled (rows, messages, files...).
    :param backlog: what is known to be left (0: drained; None: unknown).
    :param note: a short human-readable summary for logs and the status page.
    """

    items: int = 0
    backlog: int | None = 0
    note: str = ""

    @property
    def drained(self) -> bool:
        return self.backlog == 0


@dataclass
class RunContext:
    """What a run gets: the catalogue, its deadline and the stop signal.

    :param Session: the catalogue's session factory; a task opens
        ``with context.Session.begin() as session:`` for each transaction.
        Under the task server it is the run's own, fenced with its leases: a
        commit after another instance took them over raises
        :class:`~taskserver.leases.LeaseLost` and rolls back, and the run
        ends cancelled (let the error go up, or stop at :meth:`should_stop`).
    :param deadline: ``time.monotonic()`` value by which the run should return.
    :param stop: set when the task server is shutting down or the run is
        cancelled; a run checks :meth:`should_stop` between bites.
    :param owner: the task-server instance running this task.
    """

    Session: sessionmaker[Session]
    deadline: float
    stop: threading.Event = field(default_factory=threading.Event)
    owner: str = "local"

    def time_left(self) -> float:
        return self.deadline - time.monotonic()

    def should_stop(self) -> bool:
        """Whether the run must return now: out of time or asked to stop."""
        return self.stop.is_set() or self.time_left() <= 0


class Task(ABC):
    """A unit of recurring work of the task server.

    Class attributes configure scheduling:

    - ``name``: unique, stable (it names leases and run records);
    - ``priority``: larger runs first when several tasks are due (default 5);
    - ``interval``: seconds between runs when there is no backlog;
    - ``locks``: tasks that share a lock name never run at the same time;
    - ``budget``: seconds a run may take before it should return.
    """

    name: ClassVar[str] = "task"
    priority: ClassVar[int] = 5
    interval: ClassVar[float] = 10.0
    locks: ClassVar[frozenset[str]] = frozenset()
    budget: ClassVar[float] = 2.0

    # open() and close() are optional hooks: most tasks need neither.

    def open(self, Session: sessionmaker[Session]) -> None:  # noqa: B027, N803
        """Prepare long-lived resources (connections); called once."""

    def close(self) -> None:  # noqa: B027
        """Release what :meth:`open` prepared; called once at shutdown."""

    @abstractmethod
    def run(self, context: RunContext) -> RunOutcome:
        """Do one bite of work within ``context.deadline``."""

    def describe(self) -> dict[str, Any]:
        """The task's scheduling settings, for logs and the status page."""
        return {
            "name": self.name,
            "priority": self.priority,
            "interval": self.interval,
            "locks": sorted(self.locks),
            "budget": self.budget,
        }
