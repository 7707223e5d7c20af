"""Fairness: Tier-0 READY → DONE latency while a large ProdSys backlog drains.

A ProdSys source holds FILES files (default 1,000,000) waiting to be
ingested. The task server runs the ProdSys and Tier-0 ingesters; meanwhile a
publisher raises a new Tier-0 dataset to READY every PERIOD seconds and the
script measures how long each takes to be flagged DONE. It prints p50 and p99
of that latency against the goal, twice the Tier-0 poll interval, and the
ProdSys throughput.

    python bench/fairness.py [--files 1000000] [--catalog postgresql]

Goal (issue 3): p99 <= 2 x the Tier-0 poll interval.
"""

from __future__ import annotations

import argparse
import datetime as dt
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

from sqlalchemy import func, select

sys.path.insert(0, str(Path(__file__).resolve().parent))

from ingest_throughput import Catalogue, source_rows  # noqa: E402

from catalog.db import session_factory  # noqa: E402
from catalog.models import File  # noqa: E402
from ingest import schemas  # noqa: E402
from ingest.prodsys import ProdSysIngester  # noqa: E402
from ingest.simulate import ProdSysSource, Tier0Source  # noqa: E402
from ingest.tier0 import Tier0Ingester  # noqa: E402
from ingest.world import DatasetSpec, FileSpec, guid_for  # noqa: E402
from taskserver.server import TaskServer  # noqa: E402


def tier0_dataset(number: int) -> DatasetSpec:
    run = 300_000 + number
    name = f"data18_13TeV.{run:08d}.physics_Main.daq.RAW"
    lfn = f"data18_13TeV.{run:08d}.physics_Main.daq.RAW._lb0001._0001.data"
    spec = FileSpec(lfn, guid_for(lfn), 1_000_000, "ad:00000001", 100, "finished", "1")
    return DatasetSpec(name, "tier0", None, [spec], dt.datetime.now(dt.UTC))


class Publisher:
    """Raises a Tier-0 dataset to READY every *period* seconds and records
    when each was flagged DONE.
    """

    def __init__(self, tier0: Tier0Source, period: float) -> None:
        self.tier0 = tier0
        self.period = period
        self.raised: dict[str, float] = {}
        self.latencies: list[float] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, name="bench-tier0")

    def _run(self) -> None:
        number = 0
        while not self.stop.wait(self.period):
            spec = tier0_dataset(number)
            self.tier0.add_dataset(spec)
            self.raised[spec.name] = time.monotonic()
            number += 1
            self._collect()

    def _collect(self) -> None:
        table = schemas.t0_dataset
        query = select(table.c.name).where(table.c.ami_flag == "DONE")
        with self.tier0.engine.connect() as connection:
            done = set(connection.scalars(query))
        now = time.monotonic()
        for name in [n for n in self.raised if n in done]:
            # Polled every period: the latency is known to within a period.
            self.latencies.append(now - self.raised.pop(name))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=1_000_000)
    parser.add_argument("--tasks", type=int, default=10_000)
    parser.add_argument("--period", type=float, default=0.5)
    parser.add_argument(
        "--catalog", choices=["sqlite", "postgresql", "mariadb"], default="sqlite"
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory)
        tasks, datasets, files = source_rows(args.tasks, args.files)
        prodsys = ProdSysSource(f"sqlite:///{path / 'prodsys.sqlite'}").create()
        prodsys.insert(schemas.t_production_task, tasks)
        prodsys.insert(schemas.t_production_dataset, datasets)
        for offset in range(0, len(files), 50_000):
            prodsys.insert(schemas.t_production_file, files[offset : offset + 50_000])
        del files
        tier0 = Tier0Source(f"sqlite:///{path / 'tier0.sqlite'}").create()
        catalogue = Catalogue(args.catalog, path, "fair")
        try:
            measure(catalogue, prodsys, tier0, args)
        finally:
            catalogue.drop()


def measure(catalogue: Catalogue, prodsys, tier0, args) -> None:  # noqa: ANN001
    Session = session_factory(catalogue.engine)
    ingesters = [ProdSysIngester(prodsys.engine, lag=0.0), Tier0Ingester(tier0.engine)]
    publisher = Publisher(tier0, args.period)
    server = TaskServer(ingesters, Session)
    start = time.monotonic()
    server.start()
    publisher.thread.start()
    while _ingested(Session) < args.files:
        time.sleep(1.0)
    drained = time.monotonic() - start
    publisher.stop.set()
    publisher.thread.join()
    server.stop()
    report(publisher.latencies, drained, args, Tier0Ingester.interval)


def _ingested(Session) -> int:  # noqa: ANN001, N803
    with Session() as session:
        return int(session.scalar(select(func.count()).select_from(File)) or 0)


def report(latencies: list[float], drained: float, args, interval: float) -> None:  # noqa: ANN001
    latencies.sort()
    p50 = statistics.median(latencies)
    p99 = latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))]
    goal = 2 * interval
    print(
        f"catalogue: {args.catalog}; ProdSys backlog {args.files:,} files, "
        f"{args.tasks:,} tasks, drained in {drained:.1f} s "
        f"({args.files / drained:,.0f} files/s)"
    )
    print(
        f"Tier-0 READY -> DONE over {len(latencies)} datasets: "
        f"p50 {p50:.2f} s, p99 {p99:.2f} s (polled every {args.period} s)"
    )
    ratio = p99 / goal
    print(f"p99 / (2 x Tier-0 interval {interval:.0f} s) = {ratio:.2f}  (goal <= 1.0)")


if __name__ == "__main__":
    main()
