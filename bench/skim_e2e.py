"""End to end: a skim from its request to its registered output dataset.

The world is built before the clock starts, under ``--directory`` (default
``/tmp/hepcat-e2e``):

- the event files of the ttbar ``DAOD_PHYS`` dataset of the simulated world
  (``mc16_13TeV.410470...p4164``), given ``--files`` files (default 50) of
  ``--events`` events (default 200,000): 10,000,000 events, about 1.6 GB,
  at Rucio's deterministic paths under ``<directory>/storage``. They are
  written the first time, two at a time, and reused by later runs (their
  bytes only depend on their names);
- a fresh SQLite catalogue seeded with that world, and the dataset's TAG of
  10,000,000 events built from the files (``build_tag``) and registered in
  the columnar store only (``relational=False``, as a TAG this size would
  be: the skim selects on the columnar store anyway), in a directory of
  their own (650 MB) removed at the end;
- a physicist, ``jdoe``, and a :class:`~skimengine.task.SkimTask` whose
  :class:`~skimengine.executors.LocalExecutor` of ``--workers`` processes
  is started, as a running task server keeps it (its start is printed).
  With ``--cold`` it is not: the skim task starts it in the background when
  the selection starts, inside the timed part, as after a server's start.

The selection keeps 1% of the events of the first ``--source-files`` files
(default 5, so 1,000,000 events), spread among them:
``EventNumber <= LAST && MET > CUT``, LAST being the last event number of
those files and CUT the 99th percentile of their MET (both read from the TAG
before the clock starts). So the whole 10,000,000-event TAG is searched, and
extraction reads every cluster of the 1,000,000 events of the source files.

Timed: ``request_skim`` in a transaction of its own (what the JSON API
does), then ``SkimTask.run`` called as the task server calls it (again at
once while it reports a backlog), until the skim is ``done`` and its output
dataset registered: the row is looked at every 10 ms. The phases are timed
inside the task: request, selection (the TAG and the collection file),
planning, extraction (``executor.run``), registration, and the rest (waiting
between steps).

    python bench/skim_e2e.py [--files 50] [--events 200000] [--source-files 5]
                             [--workers 2] [--directory /tmp/hepcat-e2e] [--cold]
"""

from __future__ import annotations

import argparse
import dataclasses
import multiprocessing
import shutil
import tempfile
import time
from collections import defaultdict
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import uproot

import migrations
from catalog.config import load_config
from catalog.db import create_catalog_engine, session_factory
from catalog.models import Skim
from catalog.users import add_user, get_user
from ingest.eventfiles import file_spec, write_event_file
from ingest.seed import seed_catalog
from ingest.world import DatasetSpec, build_world
from skimengine.executors import LocalExecutor
from skimengine.filestore import FileStore, deterministic_path
from skimengine.skims import request_skim
from skimengine.tags import build_tag, dataset_event_files, open_tag, register_tag
from skimengine.task import SkimTask
from taskserver.base import RunContext

DATASET = (
    "mc16_13TeV.410470.PhPy8EG_A14_ttbar_hdamp258p75_nonallhad.deriv.DAOD_PHYS."
    "e6337_s3126_r10724_p4164"
)
TREE = "CollectionTree"


# -- The world, untimed -------------------------------------------------------------


def world_dataset(files: int, events: int) -> tuple[Any, DatasetSpec]:
    """The simulated world with DATASET made of *files* files of *events*."""
    world = build_world(files_per_dataset=files)
    spec = world.dataset(DATASET)
    spec.files = [dataclasses.replace(f, events=events) for f in spec.files]
    return world, spec


def write_files(spec: DatasetSpec, storage: Path) -> float:
    """Write the event files of *spec* that are not there yet; return seconds."""
    start = time.perf_counter()
    todo = []
    for file in spec.files:
        event_spec = file_spec(spec, file)
        path = deterministic_path(storage, event_spec.scope, event_spec.lfn)
        if not _complete(path, file.events):
            todo.append((path, event_spec))
    if todo:
        print(f"writing {len(todo)} event files under {storage} (once)")
        context = multiprocessing.get_context("forkserver")
        with ProcessPoolExecutor(2, mp_context=context) as pool:
            list(pool.map(write_event_file, *zip(*todo, strict=True)))
    return time.perf_counter() - start


def _complete(path: Path, events: int) -> bool:
    try:
        with uproot.open(path) as handle:
            return bool(handle[TREE].num_entries == events)
    except (OSError, ValueError, KeyError):
        return False


def catalogue(run: Path, storage: Path, world: Any) -> tuple[Any, Any]:
    """A fresh catalogue of *world* in *run*, with DATASET's TAG (its files
    in *storage*) and a physicist.
    """
    config = load_config(env={}, data_dir=str(run), storage_root=str(storage))
    engine = create_catalog_engine(f"sqlite:///{run / 'catalog.sqlite'}")
    migrations.upgrade(engine)
    Session = session_factory(engine)
    with Session.begin() as session:
        seed_catalog(world, session=session)
        files = dataset_event_files(
            DATASET, FileStore.from_config(config), session=session
        )
        table = build_tag(files)
        register_tag(
            DATASET,
            table,
            data_dir=config.data_path,
            session=session,
            relational=False,
        )
        add_user("jdoe", roles=["physicist"], session=session)
    return config, Session


def selection(Session: Any, source_files: int) -> tuple[str, int]:  # noqa: N803
    """The 1% selection over the first *source_files* files, and the number
    of events an independent numpy computation on the TAG keeps.
    """
    from skimengine.tags import get_tag

    with Session() as session:
        table = open_tag(get_tag(DATASET, session=session))
    file_index = np.asarray(table.columns["FileIndex"])
    event = np.asarray(table.columns["EventNumber"])
    met = np.asarray(table.columns["MET"])
    inside = file_index < source_files
    last = int(event[inside].max())
    cut = round(float(np.percentile(met[inside], 99)), 1)
    # The selection compares a float32 attribute as its double value.
    kept = int(np.count_nonzero((event <= last) & (met.astype(np.float64) > cut)))
    return f"EventNumber <= {last} && MET > {cut}", kept


# -- The timed part ----------------------------------------------------------------


class TimedExecutor(LocalExecutor):
    """A local executor that records how long its runs take."""

    def __init__(self, workers: int, phases: dict[str, float]) -> None:
        super().__init__(workers)
        self.phases = phases

    def run(self, *args: Any, **kwargs: Any) -> Any:
        with timed(self.phases, "extraction"):
            return super().run(*args, **kwargs)


class TimedSkimTask(SkimTask):
    """The skim task, its steps timed."""

    def __init__(self, config: Any, executor: TimedExecutor) -> None:
        super().__init__(config, executor=executor)
        self.phases = executor.phases

    def _select(self, *args: Any) -> None:
        with timed(self.phases, "selection"):
            super()._select(*args)

    def _plan(self, *args: Any) -> None:
        with timed(self.phases, "planning"):
            super()._plan(*args)

    def _register(self, *args: Any) -> None:
        with timed(self.phases, "registration"):
            super()._register(*args)


@contextmanager
def timed(phases: dict[str, float], name: str) -> Iterator[None]:
    start = time.perf_counter()
    try:
        yield
    finally:
        phases[name] += time.perf_counter() - start


def skim(Session: Any, task: TimedSkimTask, expression: str) -> tuple[float, int]:  # noqa: N803
    """Request the skim and run it to its registered output; return the
    seconds and the skim's id.
    """
    start = time.perf_counter()
    with timed(task.phases, "request"), Session.begin() as session:
        owner = get_user("jdoe", session=session)
        skim_id = request_skim(
            DATASET, expression, "onepercent", owner=owner, session=session, run=True
        ).id
    state = "defined"
    while state not in ("done", "failed", "cancelled"):
        outcome = task.run(RunContext(Session, time.monotonic() + task.budget))
        while state not in ("done", "failed", "cancelled"):
            with Session() as session:
                state = session.get(Skim, skim_id).state
            if outcome.backlog or state in ("done", "failed", "cancelled"):
                break
            time.sleep(0.01)
    return time.perf_counter() - start, skim_id


def report(Session: Any, skim_id: int, seconds: float, phases, kept: int) -> None:  # noqa: N803
    with Session() as session:
        found = session.get(Skim, skim_id)
        assert found.state == "done", (found.state, found.error)
        output = found.output
        events = sum(f.events for f in output.files)
        name, n_files = output.name, len(output.files)
    assert events == kept, (events, kept)
    print(f"output: {name}, {n_files} files, {events:,} events "
          f"(numpy on the TAG: {kept:,})")  # fmt: skip
    rest = seconds - sum(phases.values())
    parts = "  ".join(f"{k} {v:.2f}" for k, v in phases.items())
    print(f"request to registered dataset: {seconds:.2f} s (goal <= 10 s)")
    print(f"  phases (s): {parts}  waiting/other {rest:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=50)
    parser.add_argument("--events", type=int, default=200_000, help="per file")
    parser.add_argument("--source-files", type=int, default=5)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--directory", type=Path, default=Path("/tmp/hepcat-e2e"))
    parser.add_argument(
        "--cold", action="store_true", help="start the pool inside the timed part"
    )
    args = parser.parse_args()
    world, spec = world_dataset(args.files, args.events)
    written = write_files(spec, args.directory / "storage")
    started = time.perf_counter()
    # The catalogue and the TAG (650 MB) are made again for each run, in a
    # directory of its own removed at the end; the event files stay.
    run = Path(tempfile.mkdtemp(prefix="run-", dir=args.directory))
    try:
        config, Session = catalogue(run, args.directory / "storage", world)
        built = time.perf_counter() - started
        measure(args, config, Session, written, built)
    finally:
        shutil.rmtree(run, ignore_errors=True)


def measure(args: Any, config: Any, Session: Any, written: float, built: float) -> None:  # noqa: N803
    """Start the executor, choose the selection, and time the skim."""
    phases: dict[str, float] = defaultdict(float)
    executor = TimedExecutor(args.workers, phases)
    started = time.perf_counter()
    if not args.cold:
        executor.start()
    warm = time.perf_counter() - started
    expression, kept = selection(Session, args.source_files)
    total = args.files * args.events
    source = args.source_files * args.events
    pool = "started by the skim task, timed" if args.cold else f"{warm:.2f} s"
    print(f"TAG: {total:,} events in {args.files} files (files {written:.0f} s, "
          f"catalogue and TAG {built:.0f} s); source files: {source:,} events; "
          f"pool start: {pool}")  # fmt: skip
    print(f"selection: {expression}")
    task = TimedSkimTask(config, executor)
    try:
        seconds, skim_id = skim(Session, task, expression)
    finally:
        task.close()
        executor.close()
    report(Session, skim_id, seconds, {k: phases[k] for k in PHASES}, kept)


PHASES = ("request", "selection", "planning", "extraction", "registration")


if __name__ == "__main__":
    main()
