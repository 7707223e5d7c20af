"""A run's commits are fenced with its leases: once another task-server
instance took them over (the run's process was frozen past
``lease_seconds``), what the run commits is refused, and it ends cancelled.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
from collections.abc import Callable

import pytest
from sqlalchemy import select, update

from catalog.db import utcnow
from catalog.models.operations import StopPoint, TaskLease, TaskRun
from taskserver.base import RunContext, RunOutcome, Task
from taskserver.leases import LeaseHeartbeat, LeaseLost, Leases
from taskserver.runs import RunResult, run_leased
from tests.statements import statements_of

POINT = "fenced.stream"
EARLY = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
LATE = dt.datetime(2026, 6, 1, tzinfo=dt.UTC)


class Writer(Task):
    """Moves the stop point to *to*; *meanwhile* runs between reading it and
    committing (another instance taking the lease over, as during a freeze).
    """

    name = "fenced"
    budget = 30.0

    def __init__(self, to: dt.datetime, meanwhile: Callable[[], None] = lambda: None):
        self.to = to
        self.meanwhile = meanwhile
        self.refused: list[str] = []

    def run(self, context: RunContext) -> RunOutcome:
        with context.Session.begin() as session:
            point = session.get(StopPoint, POINT)
            assert point is not None
            point.timestamp = self.to
            self.meanwhile()
        return RunOutcome(1, 0)


def run(Session, task: Task) -> RunResult:  # noqa: N803
    leases = Leases(Session, owner="frozen", seconds=30)
    result = run_leased(
        task,
        Session=Session,
        leases=leases,
        heartbeat=LeaseHeartbeat(leases),
        stop=threading.Event(),
    )
    assert result is not None
    return result


def take_over(Session, name: str = "fenced", owner: str | None = "thief") -> None:  # noqa: N803
    """Another instance takes the lease *name* over and moves the stop point
    on, as its run of the task would.
    """
    expires = utcnow() + dt.timedelta(hours=1)
    with Session.begin() as session:
        lease = update(TaskLease).where(TaskLease.task_name == name)
        session.execute(lease.values(owner=owner, expires=expires))
        moved = update(StopPoint).where(StopPoint.name == POINT)
        session.execute(moved.values(timestamp=LATE))


@pytest.fixture
def stop_point(Session):  # noqa: N803
    with Session.begin() as session:
        session.add(StopPoint(name=POINT, timestamp=EARLY, key="k"))


def stored_point(Session) -> dt.datetime | None:  # noqa: N803
    with Session() as session:
        return session.scalar(
            select(StopPoint.timestamp).where(StopPoint.name == POINT)
        )


def recorded(Session) -> list[str]:  # noqa: N803
    with Session() as session:
        return list(session.scalars(select(TaskRun.outcome)))


def warnings(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]


def test_a_run_whose_lease_was_taken_over_commits_nothing_and_is_cancelled(
    Session,  # noqa: N803
    stop_point,
    caplog,
):
    task = Writer(EARLY + dt.timedelta(days=1), lambda: take_over(Session))

    result = run(Session, task)

    assert stored_point(Session) == LATE  # not moved back by the stale bite
    assert (result.outcome, result.attempts) == ("cancelled", 1)
    assert recorded(Session) == ["cancelled"]
    assert warnings(caplog) == [
        "Task fenced lost its lease to thief; its commit was refused and the "
        "run cancelled"
    ]
    with Session() as session:
        assert session.get(TaskLease, "fenced").owner == "thief"  # still


class Persistent(Writer):
    """Writes, loses its lease, and goes on writing, catching what it meets."""

    def run(self, context: RunContext) -> RunOutcome:
        for _ in range(3):
            try:
                super().run(context)
            except Exception as err:
                self.refused.append(f"{type(err).__name__}: {err}")
        return RunOutcome(3, 0)


def test_every_later_commit_is_refused_and_the_loss_logged_once(
    Session,  # noqa: N803
    stop_point,
    caplog,
):
    task = Persistent(EARLY, lambda: take_over(Session))

    result = run(Session, task)

    assert result.outcome == "cancelled"
    assert stored_point(Session) == LATE
    assert (
        task.refused
        == ["LeaseLost: task fenced lost its lease to thief: commit refused"] * 3
    )
    assert len(warnings(caplog)) == 1


class Locked(Writer):
    locks = frozenset({"catalogue"})


@pytest.mark.parametrize(
    ("owner", "reason"),
    [
        ("thief", "lease lock:catalogue to thief"),
        (None, "lease lock:catalogue: it was released"),
    ],
)
def test_a_lost_lock_lease_refuses_the_commit_too(
    Session,  # noqa: N803
    stop_point,
    caplog,
    owner,
    reason,
):
    task = Locked(EARLY, lambda: take_over(Session, "lock:catalogue", owner))

    assert run(Session, task).outcome == "cancelled"
    assert stored_point(Session) == LATE
    assert warnings(caplog) == [
        f"Task fenced lost its {reason}; its commit was refused and the run cancelled"
    ]


def test_a_commit_after_the_lease_expired_is_refused(Session, stop_point, caplog):  # noqa: N803
    expired = utcnow() - dt.timedelta(seconds=1)

    def expire() -> None:
        with Session.begin() as session:
            lease = update(TaskLease).where(TaskLease.task_name == "fenced")
            session.execute(lease.values(expires=expired))

    assert run(Session, Writer(LATE, expire)).outcome == "cancelled"
    assert stored_point(Session) == EARLY
    assert warnings(caplog) == [
        f"Task fenced lost its lease: it expired at {expired:%Y-%m-%d %H:%M:%S} "
        "UTC; its commit was refused and the run cancelled"
    ]


def test_a_run_that_keeps_its_lease_commits(Session, stop_point, caplog):  # noqa: N803
    result = run(Session, Writer(LATE))

    assert (result.outcome, result.items) == ("ok", 1)
    assert stored_point(Session) == LATE
    assert recorded(Session) == ["ok"]
    assert warnings(caplog) == []


class Measured(Task):
    """Reads in one session, writes in another; keeps what each sent."""

    name = "measured"
    budget = 30.0

    def __init__(self, engine) -> None:
        self.engine = engine
        self.sent: dict[str, list[str]] = {}

    def run(self, context: RunContext) -> RunOutcome:
        with statements_of(self.engine) as self.sent["read"]:
            with context.Session() as session:
                session.get(StopPoint, POINT)
        with statements_of(self.engine) as self.sent["write"]:
            with context.Session.begin() as session:
                session.get(StopPoint, POINT).key = "written"  # type: ignore[union-attr]
        return RunOutcome(1, 0)


def test_only_a_commit_checks_the_lease_in_one_locking_query(
    catalog_engine,
    Session,  # noqa: N803
    stop_point,
):
    task = Measured(catalog_engine)

    assert run(Session, task).outcome == "ok"

    assert len(task.sent["read"]) == 1  # the read itself, no check
    checks = [s for s in task.sent["write"] if "task_lease" in s]
    assert len(checks) == 1
    if catalog_engine.dialect.name != "sqlite":
        assert "FOR UPDATE" in checks[0]


def test_work_left_running_after_the_run_commits_unfenced(Session, stop_point):  # noqa: N803
    """A skim's extraction outlives the run that started it, and answers to
    its own claim on the skim: its commits are not the run's.
    """
    kept: list[RunContext] = []

    class Starter(Task):
        name, budget = "starter", 30.0

        def run(self, context: RunContext) -> RunOutcome:
            kept.append(context)
            return RunOutcome()

    run(Session, Starter())
    with kept[0].Session.begin() as session:  # the leases are released now
        session.get(StopPoint, POINT).timestamp = LATE  # type: ignore[union-attr]

    assert stored_point(Session) == LATE


def test_the_refusal_looks_like_an_aborted_transaction_to_a_task() -> None:
    """Ingesters keep what an operational error kept from committing (DDM
    its messages unacknowledged), where another error would be a bad record.
    """
    from sqlalchemy.exc import OperationalError

    error = LeaseLost("ddm", "lease to thief")

    assert isinstance(error, OperationalError)
    assert str(error) == "task ddm lost its lease to thief: commit refused"
