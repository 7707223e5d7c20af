"""Executors: where the units of an extraction plan run.

:class:`LocalExecutor` runs them on a pool of local processes
(:mod:`concurrent.futures`); :class:`DaskExecutor` on a Dask distributed
cluster, when the setting ``dask_scheduler`` (``HEPCAT_DASK_SCHEDULER``)
names its scheduler. Both run only the units whose output is not complete
yet (:func:`skimengine.extract.pending_units`), so running a plan again after
a crash, a failure or a cancellation does only what is left.

Cancellation is looked at several times a second: once the *cancel* event
is set, units not started are dropped, the output directory is marked
cancelled (:func:`skimengine.extract.cancel_units`) and :meth:`run`
returns. A unit already running sees the mark between the branches it reads
and stops within a fraction of a second, leaving no file, so its worker is
free for the next unit, of this plan or another: the mark is in this plan's
output directory only, and the next run of the plan removes it.

The local pool is started once and kept warm between runs: starting worker
processes and importing uproot in them takes about a second, as long as a
small skim takes to extract. :meth:`Executor.close` stops it, and its
workers exit by themselves if the process owning it dies without closing it.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib
import logging
import multiprocessing
import os
import subprocess
import sys
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager
from dataclasses import dataclass, field
from multiprocessing import forkserver, spawn
from pathlib import Path
from typing import Any

from catalog.errors import ConfigError, HepcatError
from skimengine.extract import (
    OutputFile,
    Plan,
    Unit,
    UnitCancelled,
    cancel_units,
    clear_cancel,
    extract_unit,
    pending_units,
)

__all__ = [
    "DaskExecutor",
    "Executor",
    "LocalExecutor",
    "RunOutcome",
    "WorkerPoolNotStarted",
    "executor_for",
]

logger = logging.getLogger(__name__)

#: Seconds between two looks at the cancel event and the running units.
POLL_SECONDS = 0.2
#: Seconds between two looks of a pool's worker at the process owning it.
OWNER_SECONDS = 1.0
#: Set, Python leaves the working directory off the path of what it starts.
SAFE_PATH = "PYTHONSAFEPATH"
#: Held while the environment is changed to start the fork server.
_ENVIRON_LOCK = threading.Lock()

Progress = Callable[[int, int], None]


@dataclass
class RunOutcome:
    """What a run did: the complete output files (those of earlier runs
    included), the units that failed with their error, and whether it was
    cancelled.
    """

    outputs: list[OutputFile] = field(default_factory=list)
    failed: dict[int, str] = field(default_factory=dict)
    cancelled: bool = False

    @property
    def complete(self) -> bool:
        return not self.failed and not self.cancelled


class Executor(ABC):
    """Runs the pending units of a plan and gathers their outputs."""

    name: str = "executor"
    #: Units it runs at once: a plan is split into at least this many units
    #: when there is enough to read (see :func:`~skimengine.extract.plan_extraction`).
    workers: int = 1

    def start(self, *, wait: bool = True) -> None:  # noqa: B027 (most have nothing)
        """Get ready to run units, so that the first run does not wait; with
        *wait* false, in the background.
        """

    def close(self) -> None:  # noqa: B027 (most executors have nothing to stop)
        """Release what the executor keeps between runs."""

    def __enter__(self) -> Executor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def run(
        self,
        plan: Plan,
        output_dir: Path | str,
        *,
        cancel: threading.Event | None = None,
        progress: Progress | None = None,
    ) -> RunOutcome:
        """Write the outputs of *plan* that are not in *output_dir* yet.

        :param cancel: set it to stop the run between units.
        :param progress: called with (output files written, units in the plan);
            a unit that failed or was cancelled is not counted.
        """
        cancel = cancel or threading.Event()
        output_dir = Path(output_dir)
        clear_cancel(output_dir)  # left by a cancelled earlier run
        todo = pending_units(plan, output_dir)
        waiting = {unit.number for unit in todo}
        done = [unit for unit in plan.units if unit.number not in waiting]
        outcome = RunOutcome()
        # Units already written are described where the plan is, not shipped.
        outcome.outputs += [extract_unit(plan, unit, output_dir) for unit in done]
        if todo and not cancel.is_set():
            # The workers get the plan's header; each unit carries its entries.
            header = dataclasses.replace(plan, units=())
            with self._submitter() as submit:
                send = functools.partial(_send, submit, header, output_dir)
                futures = {send(unit): unit for unit in todo}
                self._gather(
                    futures, outcome, cancel, _counter(plan, progress, done), send
                )
            if cancel.is_set():
                # The units still running stop at this mark.
                cancel_units(output_dir)
        outcome.cancelled = cancel.is_set() and len(outcome.outputs) < len(plan.units)
        outcome.outputs.sort(key=lambda output: output.number)
        return outcome

    @abstractmethod
    def _submitter(self) -> Any:
        """A context manager giving a function (header, unit, dir) → future."""

    def _gather(
        self,
        futures: dict[Any, Unit],
        outcome: RunOutcome,
        cancel: threading.Event,
        advance: Callable[[], None],
        send: Callable[[Unit], Any],
    ) -> None:
        # Each finished unit wakes the loop at once; the timeout is only
        # there to look at the cancel event.
        woken = threading.Event()
        for future in futures:
            future.add_done_callback(lambda _: woken.set())
        sent_again: set[int] = set()
        while futures:
            woken.clear()
            finished = [future for future in futures if future.done()]
            for future in finished:
                unit = futures.pop(future)
                if _lost(future) and unit.number not in sent_again:
                    # Its worker died, perhaps running another skim's unit:
                    # once more on the new pool, not counted as a failure.
                    sent_again.add(unit.number)
                    again = send(unit)
                    again.add_done_callback(lambda _: woken.set())
                    futures[again] = unit
                    continue
                if self._settle(future, unit, outcome):
                    advance()
            if cancel.is_set():
                for future in futures:
                    future.cancel()
                return
            if futures and not finished:
                woken.wait(POLL_SECONDS)

    @staticmethod
    def _settle(future: Any, unit: Unit, outcome: RunOutcome) -> bool:
        """Put the finished *unit* in *outcome*; return whether its output
        file is written (a failed or cancelled unit is not progress).
        """
        try:
            outcome.outputs.append(future.result())
        except UnitCancelled:
            return False  # the run is being cancelled: the unit is not done
        except Exception as err:  # a unit's failure is recorded, not raised
            logger.warning("Extraction of %s failed: %s", unit.name, err)
            outcome.failed[unit.number] = f"{type(err).__name__}: {err}"
            return False
        return True


def _send(submit: Callable[..., Any], header: Plan, directory: Path, unit: Unit) -> Any:
    return submit(header, unit, directory)


def _lost(future: Any) -> bool:
    """Whether a finished unit failed only because a worker of its local
    pool died (the pool breaks, and every unit in it fails with it).
    """
    return not future.cancelled() and isinstance(future.exception(), BrokenProcessPool)


def _counter(
    plan: Plan, progress: Progress | None, done: list[Unit]
) -> Callable[..., Any]:
    count = len(done)
    if progress is not None:
        progress(count, len(plan.units))

    def advance() -> None:
        nonlocal count
        count += 1
        if progress is not None:
            progress(count, len(plan.units))

    return advance


class LocalExecutor(Executor):
    """Runs units on *workers* local processes (default: one per core).

    The processes are started by a fork server, so that a process with
    threads (the task server, the web server) is never forked; the fork
    server imports the extraction code once, and every worker it forks has
    it. The pool starts with :meth:`start` or the first run and stays until
    :meth:`close`, so later runs find warm workers. A pool broken by a
    worker that died is replaced at the next submission, and each run sends
    the units it lost with it there once more.
    """

    name = "local"

    def __init__(self, workers: int | None = None) -> None:
        self.workers = workers or os.cpu_count() or 1
        self._pool: ProcessPoolExecutor | None = None
        self._lock = threading.Lock()
        self._starter: threading.Thread | None = None

    def start(self, *, wait: bool = True) -> None:
        """Start the pool (see :meth:`Executor.start`).

        :raises WorkerPoolNotStarted: when its processes cannot start.
        """
        if not wait:
            # Starting the fork server blocks for a second: not the caller.
            if self._pool is None and self._starter is None:
                self._starter = threading.Thread(
                    target=self._start_quietly, name="extraction-pool", daemon=True
                )
                self._starter.start()
            return
        pool = self._current_pool()
        # Wait for every worker to be up: a unit submitted now starts at once.
        for future in [self._on(pool, os.getpid) for _ in range(self.workers)]:
            future.result()

    def _start_quietly(self) -> None:
        try:
            self.start()
        except Exception as err:  # the first run will start it, or say why not
            logger.warning("The extraction pool did not start: %s", err)

    def close(self) -> None:
        if self._starter is not None:
            self._starter.join(timeout=30)
            self._starter = None
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            # Units not started are dropped; a running one finishes on its own.
            pool.shutdown(wait=False, cancel_futures=True)

    def _current_pool(self, broken: ProcessPoolExecutor | None = None) -> Any:
        with self._lock:
            if self._pool is None or self._pool is broken:
                context = multiprocessing.get_context("forkserver")
                context.set_forkserver_preload(["skimengine.extract"])
                try:
                    _start_fork_server()
                except OSError as err:
                    raise _not_started(err) from None
                self._pool = ProcessPoolExecutor(
                    self.workers,
                    mp_context=context,
                    initializer=_follow_owner,
                    initargs=(os.getpid(),),
                )
            return self._pool

    def _submit(self, *args: Any) -> Any:
        pool = self._current_pool()
        try:
            return self._on(pool, extract_unit, *args)
        except BrokenProcessPool:
            logger.warning("The extraction pool broke; starting a new one")
            return self._on(self._current_pool(broken=pool), extract_unit, *args)

    def _on(self, pool: ProcessPoolExecutor, function: Any, *args: Any) -> Any:
        """Submit *function* to *pool*, which starts a worker if it has
        fewer than it may.

        :raises WorkerPoolNotStarted: when the worker cannot start; the pool
            is dropped, so the next submission starts a new one.
        """
        try:
            return pool.submit(function, *args)
        except (OSError, EOFError) as err:  # the fork server did not answer
            with self._lock:
                if self._pool is pool:
                    self._pool = None
            pool.shutdown(wait=False, cancel_futures=True)
            raise _not_started(err) from None

    @contextmanager
    def _submitter(self) -> Iterator[Callable[..., Any]]:
        yield self._submit


def _start_fork_server() -> None:
    """Start the fork server of the local pools unless it runs, with
    ``PYTHONSAFEPATH`` set: Python starts it with ``-c``, which would put the
    working directory first on its path, and a file there named like a
    module it imports (``selectors.py``, ``numbers.py``) would stop it.
    """
    if sys.flags.safe_path or os.environ.get(SAFE_PATH):
        forkserver.ensure_running()  # it gets -P or the variable from us
        return
    # The fork server is given no environment of its own but ours: ours has
    # the variable while it starts, under a lock (a process another thread
    # starts meanwhile gets it too).
    with _ENVIRON_LOCK:
        before = os.environ.get(SAFE_PATH)
        os.environ[SAFE_PATH] = "1"
        try:
            forkserver.ensure_running()
        finally:
            if before is None:
                del os.environ[SAFE_PATH]
            else:
                os.environ[SAFE_PATH] = before


class WorkerPoolNotStarted(HepcatError, OSError):
    """The processes of a local pool cannot be started: the skim fails
    saying why (a retry starts the pool again).
    """

    status = 503

    def __init__(self, why: str) -> None:
        super().__init__(f"the skim worker pool could not start: {why}")


def _not_started(error: BaseException) -> WorkerPoolNotStarted:
    """The error to raise for *error*, met starting a pool's process: what
    its fork server stops with, if that is why.
    """
    died = _fork_server_error()
    why = f"its fork server stops as it starts: {died}" if died else None
    return WorkerPoolNotStarted(why or f"{type(error).__name__}: {error}")


def _fork_server_error() -> str | None:
    """The error a fork server would stop with if started now, or None. It
    writes its traceback to the standard error of the task server only, so
    Python is started here as it would be, for the last line of it.
    """
    flags = subprocess._args_from_interpreter_flags()  # type: ignore[attr-defined]
    command = [
        spawn.get_executable(),
        *flags,
        "-c",
        "import multiprocessing.forkserver",
    ]
    environ = {**os.environ, SAFE_PATH: os.environ.get(SAFE_PATH) or "1"}
    try:
        done = subprocess.run(
            command, env=environ, capture_output=True, text=True, timeout=60
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    lines = done.stderr.strip().splitlines()
    return lines[-1] if done.returncode and lines else None


def _follow_owner(owner: int) -> None:
    """In each worker of a local pool: exit once the process owning the pool
    is gone. A task server killed without closing its pool would otherwise
    leave its workers waiting for work forever (a worker holds both ends of
    its queue, so it never sees the owner go).
    """

    def watch() -> None:
        while not _gone(owner):
            time.sleep(OWNER_SECONDS)
        os._exit(1)

    # A daemon thread: it ends with the worker, which has no other way out.
    threading.Thread(target=watch, name="follow-owner", daemon=True).start()


def _gone(pid: int) -> bool:
    """Whether process *pid* has ended: it does not exist, or it is a
    zombie, dead and waiting for its parent to reap it (which may be
    waiting for our end of a pipe to close).
    """
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False  # it exists, under another user's name
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            state = stat.read().rsplit(b")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False  # no /proc here: only the end of the process is seen
    return state == b"Z"


class DaskExecutor(Executor):
    """Runs units on the Dask distributed cluster whose scheduler is at
    *address* (``tcp://host:8786``). The workers need hepcat installed.
    """

    name = "dask"
    #: Seconds to wait for the scheduler to answer.
    connect_timeout = 30.0

    def __init__(self, address: str) -> None:
        self.address = address

    @property
    def workers(self) -> int:  # type: ignore[override]
        """The threads of the cluster's workers, as its scheduler tells now
        (1 when it cannot be reached: the run will say why).
        """
        from distributed import Client

        try:
            with Client(  # type: ignore[no-untyped-call]
                self.address, set_as_default=False, timeout=10
            ) as client:
                workers = client.scheduler_info(n_workers=-1)["workers"].values()
        except (OSError, TimeoutError) as err:
            logger.warning("The Dask scheduler at %s: %s", self.address, err)
            return 1
        return max(1, sum(int(w.get("nthreads", 1)) for w in workers))

    @contextmanager
    def _submitter(self) -> Iterator[Callable[..., Any]]:
        from distributed import Client  # optional: only when a cluster is used

        try:
            client = Client(  # type: ignore[no-untyped-call]
                self.address, set_as_default=False, timeout=self.connect_timeout
            )
        except (OSError, TimeoutError) as err:
            raise SchedulerUnreachable(self.address, err) from None
        with client:
            yield lambda header, unit, directory: client.submit(
                extract_unit, header, unit, directory, pure=False, key=_key(unit)
            )


class SchedulerUnreachable(HepcatError, OSError):
    """The Dask scheduler that ``HEPCAT_DASK_SCHEDULER`` names cannot be
    reached: the skim fails saying so (a retry runs it again).
    """

    status = 503

    def __init__(self, address: str, error: BaseException) -> None:
        super().__init__(
            f"cannot reach the Dask scheduler at {address} ({error}); check "
            "HEPCAT_DASK_SCHEDULER and that the scheduler runs, then retry the skim"
        )
        self.address = address


def _key(unit: Unit) -> str:
    return f"extract-{unit.name}-{threading.get_ident()}-{id(unit)}"


def executor_for(config: Any, *, workers: int | None = None) -> Executor:
    """The executor a :class:`~catalog.config.Config` asks for: Dask when
    ``dask_scheduler`` is set, else a local pool of *workers* processes.

    :raises ConfigError: when Dask is asked for and not installed.
    """
    address = config.values.get("dask_scheduler")
    if not address:
        return LocalExecutor(workers)
    try:
        importlib.import_module("distributed")
    except ImportError as err:
        reason = (
            f"the Dask executor needs dask.distributed ({err}): "
            "pip install 'hepcat[dask]'"
        )
        raise ConfigError("dask_scheduler", address, reason) from err
    return DaskExecutor(address)
