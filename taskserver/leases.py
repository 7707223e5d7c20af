"""Leases in the catalogue: which task-server instance runs a task, until when.

Several task-server processes may share one catalogue. Before a run, an
instance takes the lease of the task, and one lease per name in the task's
``locks`` (rows named ``lock:NAME``), all of them or none, in one
transaction. It extends them while the run works and releases them after it.
A lease names its owner and an expiry time; a process that dies without
releasing its leases loses them ``lease_seconds`` later, when another
instance may take them over. The leases live in the ``task_lease`` table,
one row per name, created on first use.

How a lease is taken, per dialect:

- **PostgreSQL, Oracle, MariaDB ≥ 10.6, MySQL ≥ 8.0.1**:
  ``SELECT ... FOR UPDATE SKIP LOCKED`` on the rows, then an ``UPDATE`` of
  those rows if every one of them is free (no owner, expired, or ours). The
  row locks make the check and the write one step; a row that another
  instance is taking or extending at that moment is skipped rather than
  waited for, and counts as busy.
- **SQLite, older MariaDB and MySQL**: one conditional
  ``UPDATE task_lease SET owner = me, expires = ... WHERE task_name IN (...)
  AND (owner IS NULL OR expires IS NULL OR expires < now OR owner = me)``,
  kept only when it changed every row (its rowcount; SQLAlchemy's MySQL
  dialects count matched rows, not changed ones). This is as safe as the
  locking read: the ``UPDATE`` write-locks each row and evaluates its
  condition on the newest committed version (PostgreSQL re-checks it after
  waiting for a lock, InnoDB updates through locking reads, SQLite holds the
  database's write lock), so two instances can never both see a row free.
  It may wait for another instance's short lease transaction instead of
  skipping it, which is the only difference.

Extending (``owner = me`` only) and releasing are single conditional
``UPDATE`` statements on every dialect.

Times come from the clock of the host that takes the lease, timezone-aware in
UTC: hosts sharing a catalogue must keep their clocks within a small fraction
of ``lease_seconds`` of each other (NTP does).

A run's commits are fenced with its leases (:class:`LeaseFence`): a process
frozen past ``lease_seconds`` (SIGSTOP, a long GC, a paused VM) may lose its
leases to another instance, which then runs the same task; when it wakes,
the bite it read before the freeze must not overwrite what the new holder
wrote. Every transaction the run commits through ``context.Session`` first
reads its lease rows, locked (``FOR UPDATE``; on SQLite a transaction that
wrote holds the database's write lock), and checks that its owner still
holds every one of them unexpired; else the commit is refused
(:class:`LeaseLost`) and the transaction rolls back. The check costs one
query per commit of a transaction that used the database: ORM events cannot
tell a read-only transaction from one that wrote through the driver's
connection (``catalog.upsert`` copies rows that way), and a read-only
``with context.Session() as session:`` block never commits, so pays nothing.
"""

from __future__ import annotations

import datetime as dt
import functools
import logging
import os
import secrets
import socket
import threading
import time
from collections.abc import Collection, Sequence
from dataclasses import dataclass

from sqlalchemy import Connection, Update, event, or_, select, update
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session, SessionTransaction, sessionmaker

from catalog.db import has_skip_locked, utcnow
from catalog.models.operations import TaskLease
from taskserver.base import Task

logger = logging.getLogger(__name__)

#: The length of ``task_lease.owner`` and ``task_run.owner``.
MAX_OWNER = 64

#: Prefix of the lease rows that stand for the names in ``Task.locks``.
LOCK_PREFIX = "lock:"


def lease_names(task: Task) -> tuple[str, ...]:
    """The leases a run of *task* needs: its own and one per lock name."""
    return (task.name, *sorted(LOCK_PREFIX + lock for lock in task.locks))


def default_owner(kind: str = "taskserver") -> str:
    """A name for a lease owner: host, process id, *kind* and a random tag, so
    that two instances in one process differ too.
    """
    suffix = f":{os.getpid()}:{kind}:{secrets.token_hex(3)}"
    return socket.gethostname()[: MAX_OWNER - len(suffix)] + suffix


class Leases:
    """Take, extend and release leases for one *owner*.

    Each method runs its own short transaction on *Session*.

    :param owner: the name of this task-server instance (at most 64 characters).
    :param seconds: how long a lease lasts unless extended.
    :param skip_locked: whether to take leases with ``FOR UPDATE SKIP
        LOCKED`` (default None: where the database has it). False uses the
        conditional ``UPDATE`` on any database; True where the database lacks
        it is unsafe (SQLite ignores ``FOR UPDATE``).
    """

    def __init__(
        self,
        Session: sessionmaker[Session],  # noqa: N803
        *,
        owner: str,
        seconds: float,
        skip_locked: bool | None = None,
    ) -> None:
        self.Session = Session
        self.owner = owner
        self.seconds = seconds
        self._known: set[str] = set()
        self._skip_locked = skip_locked

    def ensure(self, names: Collection[str]) -> None:
        """Create the lease rows of *names* that do not exist yet."""
        for name in sorted(set(names) - self._known):
            self._ensure_row(name)
            self._known.add(name)

    def _ensure_row(self, name: str) -> None:
        try:
            with self.Session.begin() as session:
                if session.get(TaskLease, name) is None:
                    session.add(TaskLease(task_name=name))
        except IntegrityError:
            # Another instance created the row first; it is as good as ours.
            pass

    def acquire(self, names: Sequence[str]) -> bool:
        """Take every lease in *names* for ``seconds``, or none of them.

        :returns: whether they are now ours.
        """
        self.ensure(names)
        with self.Session() as session:
            now = utcnow()
            if self._uses_skip_locked(session):
                taken = self._take_locked(session, names, now)
            else:
                taken = self._take_conditional(session, names, now)
            if taken:
                session.commit()
            else:
                session.rollback()
            return taken

    def _uses_skip_locked(self, session: Session) -> bool:
        if self._skip_locked is None:
            dialect = session.connection().dialect
            self._skip_locked = has_skip_locked(dialect)
            logger.debug(
                "Leases on %s use %s",
                dialect.name,
                "FOR UPDATE SKIP LOCKED" if self._skip_locked else "conditional UPDATE",
            )
        return self._skip_locked

    def _take_locked(
        self, session: Session, names: Sequence[str], now: dt.datetime
    ) -> bool:
        query = (
            select(TaskLease)
            .where(TaskLease.task_name.in_(names))
            .with_for_update(skip_locked=True)
        )
        rows = session.scalars(query).all()
        if len(rows) != len(set(names)) or not all(self._free(r, now) for r in rows):
            return False
        for row in rows:
            row.owner, row.expires = self.owner, self._until(now)
        return True

    def _free(self, lease: TaskLease, now: dt.datetime) -> bool:
        return (
            lease.owner is None
            or lease.owner == self.owner
            or lease.expires is None
            or lease.expires < now
        )

    def _take_conditional(
        self, session: Session, names: Sequence[str], now: dt.datetime
    ) -> bool:
        free = or_(
            TaskLease.owner.is_(None),
            TaskLease.owner == self.owner,
            TaskLease.expires.is_(None),
            TaskLease.expires < now,
        )
        statement = (
            update(TaskLease)
            .where(TaskLease.task_name.in_(names), free)
            .values(owner=self.owner, expires=self._until(now))
        )
        return self._changes_all(session, statement, names)

    def extend(self, names: Sequence[str]) -> bool:
        """Push the expiry of our leases in *names* ``seconds`` into the future.

        :returns: whether every one of them was still ours.
        """
        statement = (
            update(TaskLease)
            .where(TaskLease.task_name.in_(names), TaskLease.owner == self.owner)
            .values(expires=self._until(utcnow()))
        )
        with self.Session.begin() as session:
            return self._changes_all(session, statement, names)

    def release(self, names: Sequence[str]) -> None:
        """Give up our leases in *names*; leases of other owners stay."""
        statement = (
            update(TaskLease)
            .where(TaskLease.task_name.in_(names), TaskLease.owner == self.owner)
            .values(owner=None, expires=None)
        )
        with self.Session.begin() as session:
            session.execute(statement, execution_options={"synchronize_session": False})

    def _until(self, now: dt.datetime) -> dt.datetime:
        return now + dt.timedelta(seconds=self.seconds)

    @staticmethod
    def _changes_all(session: Session, statement: Update, names: Sequence[str]) -> bool:
        result = session.execute(
            statement, execution_options={"synchronize_session": False}
        )
        return bool(result.rowcount == len(set(names)))  # type: ignore[attr-defined]


@dataclass
class _Held:
    names: Sequence[str]
    stop: threading.Event
    valid_until: float


class LeaseHeartbeat:
    """Extend the leases of running tasks, on a named thread.

    Every ``leases.seconds / 3`` seconds it extends each held set of leases.
    When a lease turns out to belong to someone else, or cannot be extended
    before it would expire (the database is unreachable), it sets the run's
    stop event, so that the run returns before another instance starts it.
    """

    def __init__(self, leases: Leases) -> None:
        self.leases = leases
        self.every = leases.seconds / 3
        self._held: dict[str, _Held] = {}
        self._lock = threading.Lock()
        self._stopped = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(
            target=self._loop, name="hepcat-lease-heartbeat", daemon=True
        )
        self._thread.start()

    def stop(self, timeout: float | None = None) -> None:
        self._stopped.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout)

    def hold(self, key: str, names: Sequence[str], stop: threading.Event) -> None:
        """Keep *names* (just acquired) extended until :meth:`drop` of *key*."""
        with self._lock:
            valid_until = time.monotonic() + self.leases.seconds
            self._held[key] = _Held(names, stop, valid_until)

    def drop(self, key: str) -> None:
        with self._lock:
            self._held.pop(key, None)

    def _holds(self, key: str) -> bool:
        with self._lock:
            return key in self._held

    def _loop(self) -> None:
        while not self._stopped.wait(self.every):
            self.beat()

    def beat(self) -> None:
        """Extend every held set of leases once."""
        with self._lock:
            held = list(self._held.items())
        for key, entry in held:
            self._extend(key, entry)

    def _extend(self, key: str, entry: _Held) -> None:
        try:
            still_ours = self.leases.extend(entry.names)
        except Exception as exc:
            # Whatever went wrong, the next beat tries again while there is time.
            logger.warning("Could not extend the lease of %s: %s", key, exc)
            if self._holds(key) and time.monotonic() + self.every >= entry.valid_until:
                logger.error("Lease of %s is about to expire; stopping its run", key)
                entry.stop.set()
            return
        if still_ours:
            entry.valid_until = time.monotonic() + self.leases.seconds
        elif self._holds(key):
            # Not merely released by a run that ended during this beat.
            logger.error(
                "Lease of %s was taken by another owner; stopping its run", key
            )
            entry.stop.set()


class LeaseLost(OperationalError):
    """A commit of a run refused: its owner no longer holds one of its leases.

    It is an :class:`~sqlalchemy.exc.OperationalError`, as a transaction
    aborted by a concurrent one is, so that a task keeps what it did not
    commit for later (an ingester its cursor, DDM its messages unacknowledged)
    rather than take it for a bad record. The run ends cancelled, and is not
    tried again.
    """

    def __init__(self, task_name: str, reason: str) -> None:
        self.reason = reason
        message = f"task {task_name} lost its {reason}: commit refused"
        super().__init__(None, None, RuntimeError(message))
        self.args = (message,)

    def __str__(self) -> str:
        return str(self.args[0])


#: The keys of ``Session.info`` where a fenced session keeps its fence, and
#: whether its transaction has used a connection yet.
FENCE = "hepcat_lease_fence"
_USED = "hepcat_lease_fence_used"


class LeaseFence:
    """Refuse the commits of a run whose *owner* no longer holds its leases.

    :meth:`sessions` gives the run's own session factory; until
    :meth:`close` (the run returned), each commit of a transaction that used
    the database first checks, in that transaction, that *owner* holds every
    lease in *names* unexpired, locking their rows. The first refusal is
    logged as a warning and sets *stop*; every later commit is refused too.
    Work a task leaves running after its run (a skim's extraction) commits
    unfenced: it answers to its own claims.
    """

    def __init__(
        self, task_name: str, names: Sequence[str], owner: str, stop: threading.Event
    ) -> None:
        self.task_name = task_name
        self.names = tuple(names)
        self.owner = owner
        self.stop = stop
        #: What became of the lease, once a commit was refused.
        self.lost: str | None = None
        self._active = True
        self._lock = threading.Lock()

    def sessions(self, Session: sessionmaker[Session]) -> sessionmaker[Session]:  # noqa: N803
        """A session factory like *Session* (same bind and options) whose
        sessions are fenced by this fence.
        """
        options = dict(Session.kw)
        info = {**(options.pop("info", None) or {}), FENCE: self}
        base = Session.class_.__mro__[1]  # sessionmaker subclasses its class_
        return sessionmaker(class_=_fenced(base), info=info, **options)

    def close(self) -> None:
        """Stop fencing: the run has returned."""
        self._active = False

    def check(self, session: Session) -> None:
        """Raise :class:`LeaseLost` unless *session* may commit."""
        if not self._active or session.in_nested_transaction():
            return
        if self.lost is None:
            session.flush()  # the rows written, and locked, before the check
            if not session.info.get(_USED):
                return
            reason = self._loss(session)
            if reason is None:
                return
            self._refuse(reason)
        self.stop.set()
        raise LeaseLost(self.task_name, str(self.lost))

    def _loss(self, session: Session) -> str | None:
        """How the owner lost one of its leases, or None if it holds them all."""
        query = (
            select(TaskLease.task_name, TaskLease.owner, TaskLease.expires)
            .where(TaskLease.task_name.in_(self.names))
            .order_by(TaskLease.task_name)
            .with_for_update()
        )
        rows = {
            name: (owner, expires) for name, owner, expires in session.execute(query)
        }
        now = utcnow()
        for name in self.names:
            owner, expires = rows.get(name, (None, None))
            lease = "lease" if name == self.task_name else f"lease {name}"
            if owner != self.owner:
                return f"{lease} to {owner}" if owner else f"{lease}: it was released"
            if expires is None or expires <= now:
                return f"{lease}: it expired at {_shown(expires or now)}"
        return None

    def _refuse(self, reason: str) -> None:
        with self._lock:
            first, self.lost = self.lost is None, self.lost or reason
        if first:
            logger.warning(
                "Task %s lost its %s; its commit was refused and the run cancelled",
                self.task_name,
                reason,
            )


def _shown(moment: dt.datetime) -> str:
    return f"{moment:%Y-%m-%d %H:%M:%S} UTC"


@functools.cache
def _fenced(base: type[Session]) -> type[Session]:
    """A subclass of *base* whose sessions check their fence before a commit."""
    fenced = type(f"Fenced{base.__name__}", (base,), {})
    event.listen(fenced, "after_begin", _began)
    event.listen(fenced, "after_transaction_end", _ended)
    event.listen(fenced, "before_commit", _before_commit)
    return fenced


def _began(session: Session, _transaction: SessionTransaction, _c: Connection) -> None:
    session.info[_USED] = True


def _ended(session: Session, transaction: SessionTransaction) -> None:
    if transaction.parent is None:
        session.info.pop(_USED, None)


def _before_commit(session: Session) -> None:
    fence = session.info.get(FENCE)
    if isinstance(fence, LeaseFence):
        fence.check(session)
