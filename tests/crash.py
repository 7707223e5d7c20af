"""Crash trials: ``kill -9`` an ingest process at a random moment, restart
it, and compare the catalogue with one from a clean run.

Used by ``tests/test_faults.py`` (20 trials) and runnable on its own::

    python tests/crash.py --trials 100

It prints each trial's kill time and whether the catalogue matched, and
exits 1 if any trial differs.
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from sqlalchemy import select

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import migrations  # noqa: E402
from catalog.db import create_catalog_engine  # noqa: E402
from catalog.fields import row_to_ami  # noqa: E402
from catalog.models import Dataset, File, Quarantine  # noqa: E402
from ingest.simulate import ComaSource, ProdSysSource, Tier0Source  # noqa: E402
from ingest.world import build_world  # noqa: E402

# Fields that say when a row was written, not what the catalogue knows.
WHEN = {"lastModified", "created", "crossSectionSource", "trashDate"}


def make_sources(folder: Path, files_per_dataset: int = 30) -> dict[str, str]:
    """Simulated ProdSys, Tier-0 and COMA databases with one world in them."""
    world = build_world(seed=5, files_per_dataset=files_per_dataset)
    urls = {name: f"sqlite:///{folder / f'{name}.sqlite'}" for name in SOURCES}
    for name, kind in SOURCES.items():
        source = kind(urls[name]).create()
        source.add_world(world)
        source.engine.dispose()
    return urls


SOURCES: dict[str, Any] = {
    "coma": ComaSource,
    "tier0": Tier0Source,
    "prodsys": ProdSysSource,
}


def ingest_command(urls: dict[str, str], catalogue: str) -> tuple[list[str], dict]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HEPCAT_")}
    env.update({f"HEPCAT_{name.upper()}_URL": url for name, url in urls.items()})
    env["HEPCAT_DATABASE_URL"] = catalogue
    env["HEPCAT_PRODSYS_SAFETY_LAG"] = "0"
    # The killed process's leases must expire before the restart can work.
    env["HEPCAT_TASKSERVER_LEASE_SECONDS"] = "1"
    return [sys.executable, "-m", "hepcat", "ingest", "--once"], env


def reset_tier0(url: str) -> None:
    """Raise every Tier-0 dataset to READY again, as before the first run."""
    from sqlalchemy import update

    from ingest import schemas

    engine = create_catalog_engine(url)
    with engine.begin() as connection:
        connection.execute(update(schemas.t0_dataset).values(ami_flag="READY"))
    engine.dispose()


def ingested(urls: dict[str, str], catalogue: str, kill_after: float | None) -> None:
    """Ingest into *catalogue*; with *kill_after*, kill -9 the first process
    after that many seconds, then run it again to the end.
    """
    command, env = ingest_command(urls, catalogue)
    engine = create_catalog_engine(catalogue)
    migrations.upgrade(engine)
    engine.dispose()
    if kill_after is not None:
        process = subprocess.Popen(
            command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        time.sleep(kill_after)
        if process.poll() is None:
            os.kill(process.pid, signal.SIGKILL)
        process.wait(timeout=30)
    subprocess.run(command, env=env, check=True, capture_output=True, timeout=300)


def snapshot(catalogue: str) -> dict[str, Any]:
    """What a user sees in the catalogue: every dataset's AMI fields, every
    file, and the quarantine.
    """
    engine = create_catalog_engine(catalogue)
    with engine.connect() as connection:
        datasets = {
            row.name: {
                k: v for k, v in row_to_ami(row, Dataset).items() if k not in WHEN
            }
            for row in connection.execute(select(Dataset))
        }
        files = sorted(
            (row.guid, row.lfn, row.size, row.events, row.status, row.lost)
            for row in connection.execute(select(File))
        )
        quarantined = len(connection.execute(select(Quarantine.id)).all())
    engine.dispose()
    return {"datasets": datasets, "files": files, "quarantine": quarantined}


def trial(folder: Path, urls: dict[str, str], number: int, kill_after: float) -> bool:
    reset_tier0(urls["tier0"])
    catalogue = f"sqlite:///{folder / f'trial{number}.sqlite'}"
    ingested(urls, catalogue, kill_after)
    return snapshot(catalogue) == snapshot(f"sqlite:///{folder / 'clean.sqlite'}")


def prepare(folder: Path) -> dict[str, str]:
    urls = make_sources(folder)
    ingested(urls, f"sqlite:///{folder / 'clean.sqlite'}", None)
    return urls


def main() -> None:
    parser = argparse.ArgumentParser(description="kill -9 crash trials of ingestion")
    parser.add_argument("--trials", type=int, default=100)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    failures = 0
    with tempfile.TemporaryDirectory() as directory:
        folder = Path(directory)
        urls = prepare(folder)
        for number in range(args.trials):
            kill_after = rng.uniform(0.2, 3.0)
            same = trial(folder, urls, number, kill_after)
            failures += not same
            print(  # noqa: T201
                f"trial {number:3d}: killed after {kill_after:.2f} s: "
                f"{'identical' if same else 'DIFFERENT'}"
            )
    print(f"{args.trials - failures} identical, {failures} different")  # noqa: T201
    raise SystemExit(1 if failures else 0)


if __name__ == "__main__":
    main()
