"""Ingestion throughput in backlog mode, against a raw ``executemany``.

Two workloads, each in one run of the script:

- **files**: a ProdSys source (SQLite) holds TASKS tasks, one output dataset
  each, and FILES files spread over them round robin (every bite of files
  touches every dataset: the worst case for derived quantities). Measured
  in files per second.
- **tasks**: a source holds TASK_ONLY tasks with one output dataset each
  and no file yet (tasks defined ahead of their jobs). Measured in tasks per
  second.

The ProdSys ingester drains the source into a fresh catalogue, derived
quantities included. Then the peers write the same data into fresh
catalogues of the same kind, per table, 20,000 rows per transaction:

- **the catalogue's rows** (the goal's peer): every row and column the
  ingester left in the tables of data (tasks, AMI tags, datasets, the AMI
  tags of each dataset's version, provenance, files), read back from its
  catalogue: "the same rows", what a raw writer would have to write to hold
  what hepcat holds. Written twice,
  into two catalogues: with the driver's own ``executemany`` (plain Python
  values, which the driver adapts) and with SQLAlchemy's (``insert`` and a
  list: its types convert the values, and on PostgreSQL it sends many rows
  per ``INSERT``). The faster of the two is the peer: on SQLite it is
  usually the driver, on PostgreSQL SQLAlchemy.
- **the source's columns** (the peer of the figures before 2026-12-06): the
  columns ProdSys gives (5 of a task, the few a dataset row cannot be
  inserted without, the file's own) with SQLAlchemy's executemany.
  Narrower than what the catalogue holds; printed for comparison.

The ingester and the peers take turns ``--repeat`` times (default 3), each
turn into fresh catalogues, and the best time of each is kept: the machine
is shared, and a burst of other work (or, on PostgreSQL, a checkpoint)
should not decide a ratio. The script prints every rate and the ratios
(raw time / ingest time).

    python bench/ingest_throughput.py                       # SQLite catalogue
    python bench/ingest_throughput.py --catalog postgresql  # PostgreSQL (local)
    python bench/ingest_throughput.py --repeat 1            # one turn only

Goal (issue 3): ratio >= 0.5, >= 20,000 files/s, >= 1,000 tasks/s.
"""

from __future__ import annotations

import argparse
import datetime as dt
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from sqlalchemy import Table, create_engine, insert, select, text

import migrations
from catalog.db import create_catalog_engine, session_factory
from catalog.models import (
    AmiTag,
    Dataset,
    DatasetAmiTag,
    File,
    ProductionTask,
    ProvenanceEdge,
)
from ingest import schemas
from ingest.prodsys import ProdSysIngester
from ingest.simulate import ProdSysSource
from ingest.world import adler32
from taskserver.base import RunContext

SERVERS = {
    "postgresql": "postgresql+psycopg://postgres@127.0.0.1:5432/",
    "mariadb": "mysql+pymysql://root@127.0.0.1:3306/",
}
# The tables the ingester fills with data (stop points and the like aside).
DATA_TABLES: tuple[Table, ...] = tuple(
    model.__table__  # type: ignore[misc]
    for model in (ProductionTask, AmiTag, Dataset, ProvenanceEdge, File, DatasetAmiTag)
)
TASK, DATASET, FILE = (DATA_TABLES[i] for i in (0, 2, 4))
STAMP = dt.datetime.now(dt.UTC).replace(tzinfo=None) - dt.timedelta(hours=1)


def source_rows(tasks: int, files: int) -> tuple[list[dict], list[dict], list[dict]]:
    task_rows, dataset_rows, file_rows = [], [], []
    for t in range(tasks):
        task_id = 1_000_000 + t
        name = f"mc16_13TeV.{300000 + t % 99999:06d}.Bench.recon.AOD.e{t}_s1_r{t}"
        task_rows.append(_task(task_id, name))
        dataset_rows.append(
            {
                "name": name,
                "taskid": task_id,
                "type": "output",
                "status": "done",
                "events": 0,
                "files": 0,
                "timestamp": STAMP,
            }
        )
    for f in range(files):
        dataset = dataset_rows[f % tasks]
        file_rows.append(_file(f, dataset))
    return task_rows, dataset_rows, file_rows


def _task(task_id: int, name: str) -> dict:
    return {
        "taskid": task_id,
        "parent_tid": task_id,
        "taskname": name,
        "project": "mc16_13TeV",
        "step_name": "recon",
        "status": "done",
        "ctag": "r1",
        "inputdataset": None,
        "phys_group": "SOFT",
        "campaign": "MC16a",
        "username": "bench",
        "total_events": 1000,
        "submit_time": STAMP,
        "start_time": STAMP,
        "endtime": None,
        "timestamp": STAMP,
    }


def _file(number: int, dataset: dict) -> dict:
    lfn = f"AOD.{number:09d}._000001.pool.root.1"
    return {
        "fileid": number + 1,
        "dataset": dataset["name"],
        "taskid": dataset["taskid"],
        "lfn": lfn,
        "guid": str(uuid.UUID(int=number + 1)).upper(),
        "fsize": 1_000_000,
        "checksum": adler32(lfn),
        "events": 1000,
        "lumiblocknr": None,
        "cross_section": None,
        "gen_filt_eff": None,
        "status": "finished",
        "timestamp": STAMP,
    }


class Catalogue:
    """A fresh, migrated catalogue of the chosen kind."""

    def __init__(self, kind: str, directory: Path, label: str) -> None:
        self.kind = kind
        self.name = f"hepcat_bench_{label}_{uuid.uuid4().hex[:6]}"
        if kind == "sqlite":
            self.url = f"sqlite:///{directory / (self.name + '.sqlite')}"
        else:
            with create_engine(
                SERVERS[kind], isolation_level="AUTOCOMMIT"
            ).connect() as c:
                c.execute(text(f"CREATE DATABASE {self.name}"))
            self.url = SERVERS[kind] + self.name
        self.engine = create_catalog_engine(self.url)
        migrations.upgrade(self.engine)

    def drop(self) -> None:
        self.engine.dispose()
        if self.kind != "sqlite":
            with create_engine(
                SERVERS[self.kind], isolation_level="AUTOCOMMIT"
            ).connect() as c:
                c.execute(text(f"DROP DATABASE {self.name}"))


def run_ingester(catalogue: Catalogue, source: ProdSysSource) -> float:
    Session = session_factory(catalogue.engine)
    ingester = ProdSysIngester(source.engine, lag=0.0)
    start = time.perf_counter()
    while True:
        outcome = ingester.run(RunContext(Session, time.monotonic() + 5.0))
        if outcome.backlog == 0:
            return time.perf_counter() - start


def source_values(tasks: list, datasets: list, files: list) -> dict[Table, list]:
    """The narrow peer's rows: the columns the source gives, and the few a
    dataset row cannot be inserted without.
    """
    now = dt.datetime.now(dt.UTC)
    task_values = [
        {
            "task_id": t["taskid"],
            "name": t["taskname"],
            "status": t["status"],
            "total_events": t["total_events"],
            "modified": now,
        }
        for t in tasks
    ]
    dataset_values = [
        {
            "id": i + 1,
            "name": d["name"],
            "scope": "mc16_13TeV",
            "source": "prodsys",
            "project_name": "mc16_13TeV",
            "data_type": "AOD",
            "task_id": d["taskid"],
            "ami_status": "VALID",
            "n_files": 0,
            "total_events": 0,
            "total_size": 0,
            "ddm_incomplete": False,
            "created": now,
            "last_modified": now,
        }
        for i, d in enumerate(datasets)
    ]
    by_name = {d["name"]: d["id"] for d in dataset_values}
    file_values = [
        {
            "dataset_id": by_name[f["dataset"]],
            "lfn": f["lfn"],
            "guid": f["guid"],
            "size": f["fsize"],
            "checksum": f["checksum"],
            "events": f["events"],
            "status": f["status"],
            "lost": False,
            "created": now,
            "modified": now,
        }
        for f in files
    ]
    return {TASK: task_values, DATASET: dataset_values, FILE: file_values}


def catalogue_values(catalogue: Catalogue) -> dict[Table, list]:
    """The full peer's rows: every row and column the ingester left in the
    catalogue's tables of data, read back from it.
    """
    values = {}
    with catalogue.engine.connect() as connection:
        for table in DATA_TABLES:
            rows = connection.execute(select(table)).mappings()
            values[table] = [dict(row) for row in rows]
    return values


def run_driver(catalogue: Catalogue, values: dict[Table, list]) -> float:
    """Seconds to write *values* with the driver's own ``executemany``, per
    table and per 20,000 rows, each in its own transaction. The rows are
    tuples of plain Python values, which the driver adapts itself (as a raw
    writer would hand them over): no SQLAlchemy in the way.
    """
    prepared = [
        driver_insert(table, rows, catalogue.engine.dialect)
        for table, rows in values.items()
        if rows
    ]
    start = time.perf_counter()
    for statement, rows in prepared:
        for offset in range(0, len(rows), 20_000):
            with catalogue.engine.begin() as connection:
                connection.exec_driver_sql(statement, rows[offset : offset + 20_000])
    return time.perf_counter() - start


def run_sqlalchemy(catalogue: Catalogue, values: dict[Table, list]) -> float:
    """Seconds to write *values* with SQLAlchemy's executemany (``insert``
    and a list of rows: its types convert the values; on PostgreSQL it sends
    many rows per ``INSERT``), per table and per 20,000 rows.
    """
    start = time.perf_counter()
    for table, rows in values.items():
        for offset in range(0, len(rows), 20_000):
            with catalogue.engine.begin() as connection:
                connection.execute(insert(table), rows[offset : offset + 20_000])
    return time.perf_counter() - start


def driver_insert(
    table: Table, rows: list[dict], dialect: Any
) -> tuple[str, list[tuple]]:
    """An ``INSERT`` of *table* in the driver's parameter style, and *rows*
    as tuples in its column order.
    """
    names = list(rows[0])
    marker = "?" if dialect.paramstyle == "qmark" else "%s"
    quoted = ", ".join(dialect.identifier_preparer.quote(name) for name in names)
    statement = (
        f"INSERT INTO {table.name} ({quoted}) "
        f"VALUES ({', '.join(marker for _ in names)})"
    )
    return statement, [tuple(row[name] for name in names) for row in rows]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=5_000)
    parser.add_argument("--files", type=int, default=200_000)
    parser.add_argument("--task-only", type=int, default=20_000)
    parser.add_argument("--catalog", choices=["sqlite", *SERVERS], default="sqlite")
    parser.add_argument(
        "--workload", choices=["files", "tasks", "both"], default="both"
    )
    parser.add_argument(
        "--repeat", type=int, default=3, help="turns; the best of each is kept"
    )
    args = parser.parse_args()
    print(f"catalogue: {args.catalog}; best of {args.repeat} turns")
    if args.workload in ("files", "both"):
        rows = source_rows(args.tasks, args.files)
        report("files", args.files, measure(args.catalog, *rows, args.repeat))
    if args.workload in ("tasks", "both"):
        rows = source_rows(args.task_only, 0)
        report("tasks", args.task_only, measure(args.catalog, *rows, args.repeat))


def measure(
    kind: str,
    tasks: list[dict],
    datasets: list[dict],
    files: list[dict],
    repeat: int = 1,
) -> dict[str, float]:
    """Seconds for the ingester and for each peer, by name: the best of
    *repeat* turns, each into fresh catalogues.
    """
    best: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory)
        source = ProdSysSource(f"sqlite:///{path / 'prodsys.sqlite'}").create()
        source.insert(schemas.t_production_task, tasks)
        source.insert(schemas.t_production_dataset, datasets)
        for offset in range(0, len(files), 50_000):
            source.insert(schemas.t_production_file, files[offset : offset + 50_000])
        narrow = source_values(tasks, datasets, files)
        try:
            for _ in range(repeat):
                for name, seconds in one_turn(kind, path, source, narrow).items():
                    best[name] = min(seconds, best.get(name, seconds))
        finally:
            source.engine.dispose()
    return best


def one_turn(
    kind: str, path: Path, source: ProdSysSource, narrow: dict[Table, list]
) -> dict[str, float]:
    """One turn: the ingester drains *source*, then each peer writes."""
    ours = Catalogue(kind, path, "ours")
    try:
        seconds = {"ours": run_ingester(ours, source)}
        written = catalogue_values(ours)
    finally:
        ours.drop()
    for name, run, values in (
        ("driver", run_driver, written),
        ("sqlalchemy", run_sqlalchemy, written),
        ("narrow", run_sqlalchemy, narrow),
    ):
        peer = Catalogue(kind, path, name)
        try:
            seconds[name] = run(peer, values)
        finally:
            peer.drop()
    return seconds


def report(unit: str, count: int, seconds: dict[str, float]) -> None:
    raw = min(seconds["driver"], seconds["sqlalchemy"])
    print(f"workload {unit}: {count:,} {unit}")
    for label, name in (
        ("hepcat ingest", "ours"),
        ("raw: driver", "driver"),
        ("raw: SQLAlchemy", "sqlalchemy"),
        ("raw: source's columns", "narrow"),
    ):
        took = seconds[name]
        print(f"  {label:22}: {took:7.2f} s  {count / took:10,.0f} {unit}/s")
    goal = "20,000" if unit == "files" else "1,000"
    print(
        f"  ratio (faster raw time / ingest time): {raw / seconds['ours']:.2f}"
        f"  (goal >= 0.5, and >= {goal} {unit}/s)"
    )
    narrow = seconds["narrow"] / seconds["ours"]
    print(f"  ratio against the source's columns (the earlier peer): {narrow:.2f}")


if __name__ == "__main__":
    main()
