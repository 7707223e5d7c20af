"""The task server: priorities and ageing, locks, the gear change, leases
across instances, run records, stopping, metrics, and the drain runner.

The tests run on a real catalogue (SQLite, PostgreSQL, MariaDB) with tiny
tasks defined here, and assert orderings and invariants, never durations;
waits have generous timeouts and fail the test when they run out.
"""

from __future__ import annotations

import collections
import contextlib
import datetime as dt
import logging
import os
import signal
import threading
import time
import uuid
from collections.abc import Callable, Collection, Iterator

import pytest
from sqlalchemy import create_engine, select, text
from sqlalchemy.exc import OperationalError
from sqlalchemy.pool import NullPool

from catalog.db import utcnow
from catalog.models.operations import TaskLease, TaskRun
from catalog.operations import quarantine
from taskserver.base import RunContext, RunOutcome, Task
from taskserver.dispatch import DueQueue
from taskserver.errors import DrainFailed, TaskConfigError
from taskserver.leases import Leases, has_skip_locked
from taskserver.runner import run_until_drained, serve_forever
from taskserver.runs import RunResult
from taskserver.server import TaskServer

#: Seconds any wait may take before the test fails; never reached when all is well.
WAIT = 30.0


class Journal:
    """What the tasks of a test did: the order in which runs started, and
    the most runs that were ever inside one key (a task or lock name) at once.
    """

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self.order: list[str] = []
        self._inside: collections.Counter[str] = collections.Counter()
        self.most_inside: collections.Counter[str] = collections.Counter()

    @contextlib.contextmanager
    def visit(self, name: str, keys: Collection[str]) -> Iterator[None]:
        with self._cond:
            self.order.append(name)
            for key in keys:
                self._inside[key] += 1
                self.most_inside[key] = max(self.most_inside[key], self._inside[key])
        try:
            yield
        finally:
            with self._cond:
                for key in keys:
                    self._inside[key] -= 1
                self._cond.notify_all()

    def wait_for(self, predicate: Callable[[Journal], bool]) -> bool:
        with self._cond:
            return self._cond.wait_for(lambda: predicate(self), WAIT)


class Countdown(Task):
    """Handles one item per run until none is left, and says how many are."""

    interval = 3600.0

    def __init__(self, left: int = 0, journal: Journal | None = None, pause: float = 0):
        self.left = left
        self.journal = journal or Journal()
        self.pause = pause
        self.opened = self.closed = 0

    def open(self, Session):  # noqa: N803
        self.opened += 1

    def close(self):
        self.closed += 1

    def run(self, context: RunContext) -> RunOutcome:
        with self.journal.visit(self.name, {self.name, *self.locks}):
            time.sleep(self.pause)
            done = min(1, self.left)
            self.left -= done
            return RunOutcome(items=done, backlog=self.left)


class Endless(Countdown):
    """Always has more to do."""

    def __init__(self, journal: Journal | None = None, pause: float = 0):
        super().__init__(10**9, journal, pause)


def runs_of(Session, name: str) -> list[TaskRun]:  # noqa: N803
    with Session() as session:
        query = select(TaskRun).where(TaskRun.task_name == name).order_by(TaskRun.id)
        return list(session.scalars(query))


def ran(name: str, times: int = 1) -> Callable[[TaskServer], bool]:
    return lambda server: server.status[name].runs >= times


@pytest.fixture
def task_server(Session):  # noqa: N803
    """Start a task server: ``task_server(*tasks, **options)``; stopped after."""
    servers: list[TaskServer] = []

    def start(*tasks: Task, **options) -> TaskServer:
        server = TaskServer(tasks, Session, **options)
        servers.append(server)
        server.start()
        return server

    yield start
    for server in servers:
        assert server.stop(timeout=WAIT)


# -- the order of runs -------------------------------------------------------


def test_due_tasks_run_in_priority_order(task_server):
    journal = Journal()

    class Low(Countdown):
        name, priority = "low", 1

    class Mid(Countdown):
        name, priority = "mid", 5

    class High(Countdown):
        name, priority = "high", 9

    server = task_server(Low(0, journal), Mid(0, journal), High(0, journal), workers=1)

    assert server.wait(lambda s: all(t.runs for t in s.status.values()), WAIT)
    assert journal.order == ["high", "mid", "low"]


def test_a_low_priority_task_ages_past_a_busy_high_priority_one(task_server):
    journal = Journal()

    class Busy(Endless):
        name, priority = "busy", 9

    class Low(Countdown):
        name, priority = "low", 1

    server = task_server(Busy(journal), Low(0, journal), workers=1)

    assert server.wait(ran("low"), WAIT)
    # Each run of "busy" ages "low" by one; at 1 + 8 = 9 it ties with "busy"
    # and wins the tie as the task that has been due longer.
    assert journal.order[:9] == ["busy"] * 8 + ["low"]


def test_ageing_is_reset_by_a_run():
    class A(Countdown):
        name, priority = "a", 2

    class B(Countdown):
        name, priority = "b", 1

    queue = DueQueue([A(), B()])
    queue.mark_due("a")
    queue.mark_due("b")

    picked = []
    for _ in range(6):
        task = queue.pick()
        assert task is not None
        picked.append(task.name)
        queue.finish(task.name, again=True)

    assert picked == ["a", "b", "a", "b", "a", "b"]


def test_tasks_sharing_a_lock_never_overlap(task_server):
    journal = Journal()

    class Left(Countdown):
        name, locks = "left", frozenset({"catalogue"})

    class Right(Countdown):
        name, locks = "right", frozenset({"catalogue", "other"})

    class Free(Countdown):
        name = "free"

    tasks = [cls(5, journal, pause=0.01) for cls in (Left, Right, Free)]
    server = task_server(*tasks, workers=4)

    assert server.wait(lambda s: all(t.runs == 5 for t in s.status.values()), WAIT)
    assert journal.most_inside["catalogue"] == 1
    assert journal.most_inside["left"] == journal.most_inside["right"] == 1


# -- the gear change and run records ------------------------------------------


def test_a_task_with_a_backlog_runs_again_without_waiting_its_interval(
    task_server,
    Session,  # noqa: N803
):
    class Backlogged(Countdown):
        name, interval = "backlogged", 3600.0

    server = task_server(Backlogged(3))

    assert server.wait(ran("backlogged", 3), WAIT)
    runs = runs_of(Session, "backlogged")
    assert [(r.items, r.backlog, r.outcome) for r in runs] == [
        (1, 2, "ok"),
        (1, 1, "ok"),
        (1, 0, "ok"),
    ]
    assert all(r.owner == server.owner and r.ended >= r.started for r in runs)
    assert server.status["backlogged"].due is False


def test_a_run_gets_its_budget_and_the_owner(task_server):
    seen = {}

    class Budgeted(Task):
        name, budget = "budgeted", 120.0

        def run(self, context):
            seen.update(left=context.time_left(), owner=context.owner)
            return RunOutcome()

    server = task_server(Budgeted())

    assert server.wait(ran("budgeted"), WAIT)
    assert 0 < seen["left"] <= 120.0
    assert seen["owner"] == server.owner


@pytest.mark.parametrize(
    ("items", "backlog", "again"),
    [(5, 3, True), (5, 0, False), (5, None, True), (0, None, False), (0, 2, True)],
)
def test_the_gear_change_rule(items, backlog, again):
    now = utcnow()
    result = RunResult("t", "me", now, now, 0.0, "ok", items=items, backlog=backlog)

    assert result.again is again


def test_a_failing_task_is_recorded_and_the_others_still_run(
    task_server,
    Session,  # noqa: N803
    caplog,
):
    class Failing(Task):
        name, interval = "failing", 3600.0

        def run(self, context):
            raise RuntimeError("the source database is unreachable")

    class Healthy(Countdown):
        name = "healthy"

    server = task_server(Failing(), Healthy(2), workers=1)

    assert server.wait(lambda s: ran("failing")(s) and ran("healthy", 2)(s), WAIT)
    [failure] = runs_of(Session, "failing")
    assert failure.outcome == "failed"
    assert "the source database is unreachable" in failure.error
    assert [r.outcome for r in runs_of(Session, "healthy")] == ["ok"] * 2
    assert "Task failing failed" in caplog.messages


def test_a_transient_database_error_is_retried(task_server, Session, caplog):  # noqa: N803
    class Flaky(Task):
        name, interval = "flaky", 3600.0
        calls = 0

        def run(self, context):
            self.calls += 1
            if self.calls == 1:
                raise OperationalError("SELECT 1", {}, ConnectionError("server gone"))
            return RunOutcome(items=4, backlog=0)

    server = task_server(Flaky())

    assert server.wait(ran("flaky"), WAIT)
    [run] = runs_of(Session, "flaky")
    assert (run.outcome, run.items, run.attempt) == ("ok", 4, 2)
    assert any(
        m.startswith("Temporary database error in flaky (attempt 1)")
        for m in caplog.messages
    )


def test_a_schema_error_fails_at_once_and_is_not_called_temporary(
    task_server,
    Session,  # noqa: N803
    caplog,
):
    # An operational error on SQLite ("no such column") and on MariaDB
    # (1054), a programming error on PostgreSQL: the catalogue is not the
    # schema the code needs, which no retry mends.
    class Outdated(Task):
        name, interval = "outdated", 3600.0

        def run(self, context):
            with context.Session() as session:
                session.execute(text("SELECT no_such_column FROM task_run"))
            return RunOutcome(items=1, backlog=0)

    server = task_server(Outdated())

    assert server.wait(ran("outdated"), WAIT)
    [run] = runs_of(Session, "outdated")
    assert (run.outcome, run.attempt) == ("failed", 1)
    assert "no_such_column" in run.error
    assert not any(m.startswith("Temporary database error") for m in caplog.messages)


class Quarantining(Countdown):
    """Handles one item per run, and keeps the records *bad* in quarantine
    each run: held once, so only the first run puts them there.
    """

    name, interval = "quarantining", 3600.0

    def __init__(self, left: int, bad: Collection[str]) -> None:
        super().__init__(left)
        self.bad = bad

    def run(self, context: RunContext) -> RunOutcome:
        with context.Session.begin() as session:
            for key in self.bad:
                quarantine(self.name, key, {"key": key}, "unreadable", session=session)
        return super().run(context)


def test_the_log_line_of_a_run_says_how_many_records_it_quarantined(
    task_server,
    Session,  # noqa: N803
    caplog,
):
    caplog.set_level(logging.INFO, logger="taskserver.server")
    with Session.begin() as session:  # an earlier run's record: not this run's
        quarantine("quarantining", "old", {}, "unreadable", session=session)

    server = task_server(Quarantining(2, ["old", "a", "b"]))

    assert server.wait(ran("quarantining", 2), WAIT)
    server.stop(WAIT)
    lines = [m for m in caplog.messages if m.startswith("Task quarantining: ")]
    assert lines[0].startswith("Task quarantining: ok, 1 item(s), 2 quarantined,")
    assert lines[1].startswith("Task quarantining: ok, 1 item(s), backlog 0,")


# -- leases ------------------------------------------------------------------


class Sleepy(Endless):
    name, interval = "sleepy", 0.05


def test_two_servers_never_run_a_task_at_the_same_time(Session, task_server):  # noqa: N803
    journal = Journal()

    alpha = task_server(Sleepy(journal, pause=0.02), owner="alpha", workers=2)
    beta = task_server(Sleepy(journal, pause=0.02), owner="beta", workers=2)

    assert journal.wait_for(lambda j: len(j.order) >= 20)
    alpha.stop(WAIT)
    beta.stop(WAIT)
    assert journal.most_inside["sleepy"] == 1
    runs = runs_of(Session, "sleepy")
    assert len(runs) == len(journal.order)
    assert {r.owner for r in runs} <= {"alpha", "beta"}


def test_two_servers_never_overlap_tasks_that_share_a_lock(task_server):
    journal = Journal()

    class Left(Endless):
        name, interval, locks = "left", 0.05, frozenset({"catalogue"})

    class Right(Endless):
        name, interval, locks = "right", 0.05, frozenset({"catalogue"})

    for owner in ("alpha", "beta"):
        task_server(Left(journal, 0.01), Right(journal, 0.01), owner=owner)

    assert journal.wait_for(lambda j: len(j.order) >= 20)
    assert journal.most_inside["catalogue"] == 1


@pytest.fixture
def foreign_leases(Session):  # noqa: N803
    """Leases held by others: "orphan" by a dead owner, "held" by a live one."""
    now = utcnow()
    with Session.begin() as session:
        session.add_all(
            [
                TaskLease(
                    task_name="orphan",
                    owner="dead",
                    expires=now - dt.timedelta(seconds=1),
                ),
                TaskLease(
                    task_name="held", owner="alive", expires=now + dt.timedelta(hours=1)
                ),
                TaskLease(task_name="free"),
            ]
        )


@pytest.fixture(params=["skip-locked", "conditional-update"])
def lease_strategy(request, catalog_engine) -> bool:
    """Each way of taking a lease that the test's database supports: returns
    the ``skip_locked`` argument of :class:`Leases`.
    """
    skip_locked = request.param == "skip-locked"
    with catalog_engine.connect() as connection:
        if skip_locked and not has_skip_locked(connection.dialect):
            pytest.skip(f"{connection.dialect.name} has no FOR UPDATE SKIP LOCKED")
    return skip_locked


def test_an_expired_lease_is_taken_over_and_a_live_one_is_not(
    Session,  # noqa: N803
    foreign_leases,
    lease_strategy,
):
    mine = Leases(Session, owner="me", seconds=30, skip_locked=lease_strategy)

    assert mine.acquire(["orphan"]) is True
    assert mine.acquire(["held"]) is False
    assert mine.acquire(["free", "held"]) is False  # all or none

    with Session() as session:
        rows = session.execute(select(TaskLease.task_name, TaskLease.owner))
        owners = {name: owner for name, owner in rows}
    assert owners == {"orphan": "me", "held": "alive", "free": None}


def test_contending_owners_hold_a_lease_one_at_a_time(
    Session,  # noqa: N803
    lease_strategy,
):
    journal = Journal()
    taken = collections.Counter()

    def contend(owner: str) -> None:
        leases = Leases(Session, owner=owner, seconds=30, skip_locked=lease_strategy)
        deadline = time.monotonic() + WAIT
        while taken[owner] < 5 and time.monotonic() < deadline:
            if leases.acquire(["contended"]):
                with journal.visit(owner, {"contended"}):
                    taken[owner] += 1
                    time.sleep(0.001)
                leases.release(["contended"])

    threads = [
        threading.Thread(target=contend, args=(f"owner-{i}",), name=f"owner-{i}")
        for i in range(4)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(WAIT)

    assert journal.most_inside["contended"] == 1
    assert list(taken.values()) == [5] * 4


def test_a_server_skips_a_task_leased_by_a_live_owner(
    task_server,
    Session,  # noqa: N803
    foreign_leases,
):
    class Orphan(Countdown):
        name = "orphan"

    class Held(Countdown):
        name = "held"

    server = task_server(Orphan(), Held())

    assert server.wait(
        lambda s: s.status["orphan"].runs and s.status["held"].busy, WAIT
    )
    assert [r.owner for r in runs_of(Session, "orphan")] == [server.owner]
    assert runs_of(Session, "held") == []
    assert b'hepcat_task_lease_busy_total{task="held"} 1.0' in server.metrics_text()


def test_a_lease_is_extended_while_its_run_works(task_server, Session):  # noqa: N803
    def expiry() -> dt.datetime:
        with Session() as session:
            expires = session.get(TaskLease, "patient").expires
            assert expires is not None
            return expires

    class Patient(Task):
        name, interval, budget = "patient", 3600.0, WAIT
        extended = threading.Event()

        def run(self, context):
            first = expiry()
            deadline = time.monotonic() + WAIT
            while time.monotonic() < deadline and not self.extended.is_set():
                if expiry() > first:
                    self.extended.set()
                time.sleep(0.05)
            return RunOutcome()

    task = Patient()
    server = task_server(task, lease_seconds=0.6)

    assert server.wait(ran("patient"), WAIT)
    assert task.extended.is_set()
    with Session() as session:
        assert session.get(TaskLease, "patient").owner is None  # released


# -- stopping ------------------------------------------------------------------


class Waiting(Task):
    """Runs until told to stop, or until *release* is set."""

    name, interval, budget = "waiting", 3600.0, 3600.0

    def __init__(self) -> None:
        self.started = threading.Event()
        self.release = threading.Event()
        self.saw_stop = False
        self.closed = False

    def run(self, context):
        self.started.set()
        while not (context.stop.is_set() or self.release.is_set()):
            time.sleep(0.01)
        self.saw_stop = context.stop.is_set()
        return RunOutcome(items=1, backlog=7)

    def close(self):
        self.closed = True


def test_stop_returns_within_its_timeout_while_a_task_runs(task_server, Session):  # noqa: N803
    task = Waiting()
    server = task_server(task)
    assert task.started.wait(WAIT)

    began = time.monotonic()
    assert server.stop(timeout=WAIT) is True

    assert time.monotonic() - began < WAIT
    assert task.saw_stop and task.closed
    assert not server.running
    [run] = runs_of(Session, "waiting")
    assert (run.outcome, run.items, run.backlog) == ("cancelled", 1, 7)


class Stubborn(Waiting):
    """Ignores the stop signal: runs until *release* is set."""

    name = "stubborn"

    def run(self, context):
        self.started.set()
        self.release.wait(WAIT)
        return RunOutcome(items=1, backlog=0)


def test_a_run_that_outlives_stop_closes_its_task_when_it_ends(
    task_server,
    Session,  # noqa: N803
):
    task = Stubborn()
    server = task_server(task)
    assert task.started.wait(WAIT)

    assert server.stop(timeout=0.2) is False
    assert not task.closed

    task.release.set()
    assert server.wait(timeout=WAIT)
    assert task.closed
    assert [r.outcome for r in runs_of(Session, "stubborn")] == ["cancelled"]
    with Session() as session:
        assert session.get(TaskLease, "stubborn").owner is None


def test_serve_forever_stops_the_server_on_sigterm(Session):  # noqa: N803
    class Once(Countdown):
        name = "once"

    server = TaskServer([Once()], Session)
    stop = threading.Event()

    def terminate_after_the_first_run() -> None:
        server.wait(ran("once"), WAIT)
        os.kill(os.getpid(), signal.SIGTERM)

    before = signal.getsignal(signal.SIGTERM)
    killer = threading.Thread(target=terminate_after_the_first_run, name="killer")
    killer.start()
    serve_forever(server, stop)
    killer.join(WAIT)

    assert stop.is_set()
    assert not server.running and server.status["once"].runs == 1
    assert signal.getsignal(signal.SIGTERM) is before


# -- metrics -------------------------------------------------------------------


def test_metrics_count_runs_and_items(task_server):
    class Counted(Countdown):
        name = "counted"

    server = task_server(Counted(3))

    assert server.wait(ran("counted", 3), WAIT)
    text = server.metrics_text()
    assert b'hepcat_task_runs_total{outcome="ok",task="counted"} 3.0' in text
    assert b'hepcat_task_items_total{task="counted"} 3.0' in text
    assert b'hepcat_task_backlog{task="counted"} 0.0' in text
    assert b'hepcat_task_run_duration_seconds_count{task="counted"} 3.0' in text
    assert b"hepcat_task_last_success_timestamp_seconds" in text


# -- the drain runner ----------------------------------------------------------


def test_run_until_drained_returns_the_items_per_task(Session):  # noqa: N803
    class Small(Countdown):
        name = "small"

    class Large(Countdown):
        name = "large"

    small, large = Small(2), Large(4)
    seen = []

    items = run_until_drained(
        [small, large], Session, progress=lambda *args: seen.append(args)
    )

    assert items == {"small": 2, "large": 4}
    assert seen[:4] == [
        ("small", 1, 1),
        ("large", 1, 3),
        ("small", 2, 0),
        ("large", 2, 2),
    ]
    assert seen[-1] == ("large", 4, 0)
    assert (small.opened, small.closed) == (1, 1)
    assert len(runs_of(Session, "large")) == 4


def test_run_until_drained_reports_a_failed_task_after_draining_the_others(
    Session,  # noqa: N803
):
    class Broken(Task):
        name = "broken"

        def run(self, context):
            raise ValueError("cannot parse the source")

    class Fine(Countdown):
        name = "fine"

    with pytest.raises(DrainFailed, match="'broken' failed") as raised:
        run_until_drained([Broken(), Fine(3)], Session)

    assert raised.value.items == {"broken": 0, "fine": 3}


def test_tasks_with_the_same_name_are_refused(Session):  # noqa: N803
    class Twin(Countdown):
        name = "twin"

    with pytest.raises(TaskConfigError, match="'twin'"):
        TaskServer([Twin(), Twin()], Session)


# -- a dropped connection ------------------------------------------------------


def drop_connections(url) -> None:
    """Kill every other connection to the database at *url*, as a restarting
    server or a firewall would.
    """
    engine = create_engine(url, poolclass=NullPool)
    with engine.connect() as connection:
        if engine.dialect.name == "postgresql":
            connection.execute(
                text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND pid <> pg_backend_pid()"
                )
            )
        else:
            ids = connection.scalars(
                text(
                    "SELECT id FROM information_schema.processlist "
                    "WHERE db = DATABASE() AND id <> CONNECTION_ID()"
                )
            )
            for connection_id in list(ids):
                connection.execute(text(f"KILL CONNECTION {int(connection_id)}"))
    engine.dispose()


@pytest.mark.parametrize(
    "catalog_engine",
    [
        pytest.param("postgresql", marks=pytest.mark.external_service),
        pytest.param("mariadb", marks=pytest.mark.external_service),
    ],
    indirect=True,
)
def test_runs_are_recorded_after_the_connections_dropped(catalog_engine, Session):  # noqa: N803
    class Again(Countdown):
        name = "again"

    assert run_until_drained([Again(1)], Session) == {"again": 1}
    drop_connections(catalog_engine.url.render_as_string(hide_password=False))

    assert run_until_drained([Again(1)], Session) == {"again": 1}
    assert len(runs_of(Session, "again")) == 2


# -- the drain runner, again -------------------------------------------------


def test_a_failed_drain_says_in_a_line_why_each_task_failed(Session):  # noqa: N803
    class Broken(Task):
        name = "broken"

        def run(self, context):
            raise ValueError("cannot parse the source\nrow 7 has text for a count")

    with pytest.raises(DrainFailed) as raised:
        run_until_drained([Broken()], Session)

    assert raised.value.__notes__ == ["broken: ValueError: cannot parse the source"]


def test_recording_runs_removes_a_task_s_runs_older_than_a_week(Session):  # noqa: N803
    from catalog.db import utcnow
    from catalog.models import TaskRun
    from taskserver.runs import RUNS_KEPT, record

    now = utcnow()
    name = f"pruned-{uuid.uuid4().hex[:6]}"  # its first record in this process
    with Session.begin() as session:
        for age in (RUNS_KEPT + dt.timedelta(hours=1), dt.timedelta(days=1)):
            session.add(TaskRun(task_name=name, started=now - age, outcome="ok"))
        session.add(TaskRun(task_name="other", started=now - 2 * RUNS_KEPT))

    record(RunResult(name, "me", now, now, 0.0, "ok"), Session=Session)

    with Session() as session:
        kept = session.scalars(
            select(TaskRun.started).where(TaskRun.task_name == name)
        ).all()
        others = session.scalars(
            select(TaskRun.id).where(TaskRun.task_name == "other")
        ).all()
    assert sorted(now - started for started in kept) == [
        dt.timedelta(0),
        dt.timedelta(days=1),
    ]
    assert len(others) == 1  # another task's runs wait for its own records


# -- a task that keeps failing ----------------------------------------------------


def test_a_task_failing_the_same_way_waits_longer_each_time(
    task_server,
    Session,  # noqa: N803
    caplog,
):
    class Broken(Task):
        name, interval = "broken", 0.2

        def run(self, context):
            raise RuntimeError("the source has no such table")

    server = task_server(Broken())
    # Its interval alone would run it about 15 times in 3 s; waiting 0.2,
    # 0.4, 0.8, 1.6 s after the runs, it runs 4 or 5 times.
    assert not server.wait(ran("broken", 6), 3.0)

    runs = runs_of(Session, "broken")
    assert 3 <= len(runs) <= 5
    assert all(run.outcome == "failed" for run in runs)
    assert "Task broken failed the same way 3 times in a row; next try in 1 s" in (
        caplog.messages
    )


def test_a_failure_on_a_source_database_names_its_setting(
    task_server,
    Session,  # noqa: N803
    caplog,
    tmp_path,
):
    source = create_engine(f"sqlite:///{tmp_path / 'empty.sqlite'}", poolclass=NullPool)

    class Prodsys(Task):
        name, interval = "prodsys", 3600.0

        def __init__(self):
            self.source = source

        def run(self, context):
            with self.source.connect() as connection:
                connection.execute(text("SELECT taskid FROM t_production_task"))
            return RunOutcome()

    server = task_server(Prodsys())

    assert server.wait(ran("prodsys"), WAIT)
    source.dispose()
    [line] = [m for m in caplog.messages if m.startswith("Task prodsys failed")]
    assert line == (
        f"Task prodsys failed on its source database {source.url} (check "
        "HEPCAT_PRODSYS_URL, that the server runs and that the database has the "
        "prodsys tables)"
    )
