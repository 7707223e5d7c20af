"""Source simulators: write a :class:`~ingest.world.World` into the source
systems' own schemas (ProdSys, Tier-0, COMA), as those systems would.

The demo and the tests use them instead of mocks. A simulator writes through
SQLAlchemy Core into any database (SQLite by default, MariaDB or PostgreSQL
from a URL). Times in source tables are naive UTC, as the sources keep them.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import logging
import threading
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Self

from sqlalchemy import Engine, MetaData, insert, update

from catalog.db import create_catalog_engine
from ingest import schemas
from ingest.world import (
    ConfigTag,
    DatasetSpec,
    FileSpec,
    PeriodSpec,
    RunSpec,
    TaskSpec,
    World,
)

logger = logging.getLogger(__name__)


def naive(when: dt.datetime) -> dt.datetime:
    """*when* as the sources store it: naive UTC."""
    return when.astimezone(dt.UTC).replace(tzinfo=None)


def now() -> dt.datetime:
    return naive(dt.datetime.now(dt.UTC))


class Source:
    """A source database with its schema."""

    metadata: MetaData

    def __init__(self, engine: Engine | str) -> None:
        self.engine = (
            create_catalog_engine(engine) if isinstance(engine, str) else engine
        )

    def create(self) -> Self:
        """Create the source's tables (when missing); return self."""
        self.metadata.create_all(self.engine)
        return self

    def drop(self) -> None:
        self.metadata.drop_all(self.engine)

    def insert(self, table: Any, rows: Sequence[dict[str, Any]]) -> None:
        if rows:
            with self.engine.begin() as connection:
                connection.execute(insert(table), list(rows))


class ProdSysSource(Source):
    """The ProdSys database: tasks, output datasets, files, config tags."""

    metadata = schemas.PRODSYS

    def __init__(self, engine: Engine | str) -> None:
        super().__init__(engine)
        self._file_ids = iter(range(1, 2**62))

    def add_tags(
        self, tags: Iterable[ConfigTag], when: dt.datetime | None = None
    ) -> None:
        stamp = when or now()
        self.insert(schemas.t_config_tag, [_tag_row(t, stamp) for t in tags])

    def add_task(self, task: TaskSpec, when: dt.datetime | None = None) -> None:
        self.insert(schemas.t_production_task, [_task_row(task, when or now())])

    def add_dataset(self, spec: DatasetSpec, when: dt.datetime | None = None) -> None:
        row = _dataset_row(spec, when or now())
        self.insert(schemas.t_production_dataset, [row])

    def add_files(
        self,
        spec: DatasetSpec,
        files: Sequence[FileSpec],
        when: dt.datetime | None = None,
    ) -> None:
        stamp = when or now()
        rows = [_file_row(next(self._file_ids), spec, f, stamp) for f in files]
        self.insert(schemas.t_production_file, rows)

    def set_task_status(
        self, task_id: int, status: str, when: dt.datetime | None = None
    ) -> None:
        table = schemas.t_production_task
        with self.engine.begin() as connection:
            connection.execute(
                update(table)
                .where(table.c.taskid == task_id)
                .values(status=status, timestamp=when or now())
            )

    def add_world(self, world: World, when: dt.datetime | None = None) -> None:
        """Write every tag, task, dataset and file of *world*."""
        self.add_tags(world.tags, when)
        for task in world.tasks:
            self.add_task(task, when)
        for spec in world.datasets:
            if spec.source == "prodsys":
                self.add_dataset(spec, when)
                self.add_files(spec, spec.files, when)


class Tier0Source(Source):
    """The Tier-0 database and its READY → DONE semaphore."""

    metadata = schemas.TIER0

    def add_dataset(
        self, spec: DatasetSpec, files: Sequence[FileSpec] | None = None
    ) -> None:
        """Write *spec* and its files, and raise the flag to READY."""
        files = spec.files if files is None else files
        self.insert(schemas.t0_file, [_t0_file_row(spec, f) for f in files])
        self.insert(schemas.t0_dataset, [_t0_dataset_row(spec, files)])

    def add_files(self, spec: DatasetSpec, files: Sequence[FileSpec]) -> None:
        """Add more files to a dataset already written, and raise READY again."""
        self.insert(schemas.t0_file, [_t0_file_row(spec, f) for f in files])
        table = schemas.t0_dataset
        with self.engine.begin() as connection:
            connection.execute(
                update(table)
                .where(table.c.name == spec.name)
                .values(
                    ami_flag="READY",
                    nfiles=table.c.nfiles + len(files),
                    nevents=table.c.nevents + sum(f.events for f in files),
                    totalsize=table.c.totalsize + sum(f.size for f in files),
                )
            )

    def add_world(self, world: World) -> None:
        for spec in world.datasets:
            if spec.source == "tier0":
                self.add_dataset(spec)


class ComaSource(Source):
    """The COMA database: runs, periods and the runs of each period."""

    metadata = schemas.COMA

    def add_runs(self, runs: Iterable[RunSpec]) -> None:
        self.insert(schemas.coma_run, [_run_row(r) for r in runs])

    def add_periods(self, periods: Iterable[PeriodSpec]) -> None:
        periods = list(periods)
        self.insert(schemas.coma_period, [_period_row(p) for p in periods])
        links = [
            {"project": p.project, "period": p.period, "runnumber": run}
            for p in periods
            for run in p.runs
        ]
        self.insert(schemas.coma_period_run, links)

    def add_world(self, world: World) -> None:
        self.add_runs(world.runs)
        self.add_periods(world.periods)


def _tag_row(tag: ConfigTag, stamp: dt.datetime) -> dict[str, Any]:
    return {
        "tag": tag.tag,
        "tag_type": tag.tag[0],
        "transformation": tag.transformation,
        "release": tag.release,
        "parameters": json.dumps(tag.parameters, sort_keys=True),
        "description": tag.description,
        "timestamp": naive(stamp),
    }


def _task_row(task: TaskSpec, stamp: dt.datetime) -> dict[str, Any]:
    return {
        "taskid": task.task_id,
        "parent_tid": task.parent_task_id,
        "taskname": task.name,
        "project": task.project,
        "step_name": task.step_name,
        "status": task.status,
        "ctag": task.ctag,
        "inputdataset": task.input_dataset,
        "phys_group": "SOFT" if task.project.startswith("mc") else "DPD",
        "campaign": task.campaign,
        "username": task.username,
        "total_events": task.total_events,
        "submit_time": naive(task.submit_time),
        "start_time": naive(task.submit_time + dt.timedelta(hours=1)),
        "endtime": None,
        "timestamp": naive(stamp),
    }


def _dataset_row(spec: DatasetSpec, stamp: dt.datetime) -> dict[str, Any]:
    return {
        "name": spec.name,
        "taskid": spec.task_id,
        "type": "output",
        "status": "done" if spec.files else "running",
        "events": sum(f.events for f in spec.files),
        "files": len(spec.files),
        "timestamp": naive(stamp),
    }


def _file_row(
    fileid: int, spec: DatasetSpec, f: FileSpec, stamp: dt.datetime
) -> dict[str, Any]:
    return {
        "fileid": fileid,
        "dataset": spec.name,
        "taskid": spec.task_id,
        **_file_columns(f),
        "cross_section": f.cross_section,
        "gen_filt_eff": f.gen_filt_eff,
        "status": f.status,
        "timestamp": naive(stamp),
    }


def _t0_dataset_row(spec: DatasetSpec, files: Sequence[FileSpec]) -> dict[str, Any]:
    parts = spec.name.split(".")
    return {
        "name": spec.name,
        "runnumber": int(parts[1]),
        "stream": parts[2],
        "project": parts[0],
        "datatype": parts[4],
        "nfiles": len(files),
        "nevents": sum(f.events for f in files),
        "totalsize": sum(f.size for f in files),
        "created": naive(spec.created),
        "ami_flag": "READY",
    }


def _t0_file_row(spec: DatasetSpec, f: FileSpec) -> dict[str, Any]:
    return {"dataset": spec.name, **_file_columns(f)}


def _file_columns(f: FileSpec) -> dict[str, Any]:
    """The columns that ProdSys and Tier-0 both keep of a file, by the same
    names.
    """
    return {
        "lfn": f.lfn,
        "guid": f.guid,
        "fsize": f.size,
        "checksum": f.checksum,
        "events": f.events,
        "lumiblocknr": f.lumi_blocks,
    }


def _run_row(run: RunSpec) -> dict[str, Any]:
    return {
        "runnumber": run.run_number,
        "project": run.project,
        "start_time": naive(run.start_time),
        "end_time": naive(run.end_time),
        "nlumiblocks": run.n_lumi_blocks,
        "stable_beams": run.stable_beams,
    }


def _period_row(period: PeriodSpec) -> dict[str, Any]:
    return {
        "project": period.project,
        "period": period.period,
        "level": period.level,
        "description": period.description,
    }


def world_steps(
    world: World, prodsys: ProdSysSource, tier0: Tier0Source, coma: ComaSource
) -> list[Callable[[], None]]:
    """The world as a sequence of small writes, in the order the sources
    would make them: COMA's runs first, then each task with its outputs and
    files (ProdSys) and each Tier-0 dataset as its run ends.
    """
    steps: list[Callable[[], None]] = [
        lambda: coma.add_world(world),
        lambda: prodsys.add_tags(world.tags),
    ]
    specs = {spec.name: spec for spec in world.datasets}
    for spec in world.datasets:
        if spec.source == "tier0":
            steps.append(functools.partial(tier0.add_dataset, spec))
    for task in world.tasks:
        steps.append(functools.partial(prodsys.add_task, task))
        for name in task.outputs:
            steps.append(functools.partial(prodsys.add_dataset, specs[name]))
            files = specs[name].files
            for start in range(0, len(files), 2):
                chunk = files[start : start + 2]
                steps.append(functools.partial(prodsys.add_files, specs[name], chunk))
    return steps


class Feeder:
    """Writes a world into the sources a step at a time, in a thread, so
    that data arrives while one watches (``hepcat demo``).
    """

    def __init__(self, steps: Sequence[Callable[[], None]], pace: float = 0.5) -> None:
        self.steps = list(steps)
        self.pace = pace
        self.done = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._run, name="demo-feeder", daemon=True
        )

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        self._thread.join(timeout)

    def _run(self) -> None:
        for step in self.steps:
            if self._stop.wait(self.pace):
                return
            try:
                step()
            except Exception:
                logger.exception("The demo feeder failed at step %d", self.done)
                return
            self.done += 1
