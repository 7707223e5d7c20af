"""Executors: where the units of an extraction plan run.

:class:`LocalExecutor` runs them on a pool of local processes
(:mod:`concurrent.futures`); :class:`DaskExecutor` on a Dask distributed
cluster, when the setting ``dask_scheduler`` (``HEPCAT_DASK_SCHEDULER``)
names its scheduler. Both run only the units whose output is not complete
yet (:func:`skimengine.extract.pending_units`), so running a plan again after
a crash, a failure or a cancellation does only what is left.

Cancellation is checked between units, several times a second: once the
*cancel* event is set, units not started are dropped and :meth:`run`
returns; a unit already running finishes in the background, and its output,
written atomically, is simply there for the next run.
"""

from __future__ import annotations

import dataclasses
import logging
import multiprocessing
import os
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from skimengine.extract import OutputFile, Plan, Unit, extract_unit, pending_units

__all__ = ["DaskExecutor", "Executor", "LocalExecutor", "RunOutcome", "executor_for"]

logger = logging.getLogger(__name__)

#: Seconds between two looks at the cancel event and the running units.
POLL_SECONDS = 0.2

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
        :param progress: called with (units done, units in the plan).
        """
        cancel = cancel or threading.Event()
        output_dir = Path(output_dir)
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
                futures = {submit(header, unit, output_dir): unit for unit in todo}
                self._gather(futures, outcome, cancel, _counter(plan, progress, done))
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
    ) -> None:
        while futures:
            finished = [future for future in futures if future.done()]
            for future in finished:
                unit = futures.pop(future)
                self._settle(future, unit, outcome)
                advance()
            if cancel.is_set():
                for future in futures:
                    future.cancel()
                return
            if not finished:
                cancel.wait(POLL_SECONDS)

    @staticmethod
    def _settle(future: Any, unit: Unit, outcome: RunOutcome) -> None:
        try:
            outcome.outputs.append(future.result())
        except Exception as err:  # a unit's failure is recorded, not raised
            logger.warning("Extraction of %s failed: %s", unit.name, err)
            outcome.failed[unit.number] = f"{type(err).__name__}: {err}"


def _counter(plan: Plan, progress: Progress | None, done: list[Unit]) -> Callable:
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
    threads (the task server, the web server) is never forked.
    """

    name = "local"

    def __init__(self, workers: int | None = None) -> None:
        self.workers = workers or os.cpu_count() or 1

    @contextmanager
    def _submitter(self) -> Iterator[Callable[..., Any]]:
        context = multiprocessing.get_context("forkserver")
        pool = ProcessPoolExecutor(self.workers, mp_context=context)
        try:
            yield lambda *args: pool.submit(extract_unit, *args)
        finally:
            # Units not started are dropped; a running one finishes on its own.
            pool.shutdown(wait=False, cancel_futures=True)


class DaskExecutor(Executor):
    """Runs units on the Dask distributed cluster whose scheduler is at
    *address* (``tcp://host:8786``). The workers need hepcat installed.
    """

    name = "dask"

    def __init__(self, address: str) -> None:
        self.address = address

    @contextmanager
    def _submitter(self) -> Iterator[Callable[..., Any]]:
        from distributed import Client  # optional: only when a cluster is used

        with Client(self.address, set_as_default=False) as client:
            yield lambda header, unit, directory: client.submit(
                extract_unit, header, unit, directory, pure=False, key=_key(unit)
            )


def _key(unit: Unit) -> str:
    return f"extract-{unit.name}-{threading.get_ident()}-{id(unit)}"


def executor_for(config: Any, *, workers: int | None = None) -> Executor:
    """The executor a :class:`~catalog.config.Config` asks for: Dask when
    ``dask_scheduler`` is set, else a local pool of *workers* processes.
    """
    address = config.values.get("dask_scheduler")
    return DaskExecutor(address) if address else LocalExecutor(workers)
