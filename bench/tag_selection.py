"""TAG selection on the columnar store, against DuckDB on the same data.

A TAG of EVENTS made-up events (default 10,000,000; jets, leptons, missing
ET and trigger bits with physics-like spectra) is written once to the
columnar store (one uncompressed ``.npy`` per attribute, opened
memory-mapped) and, by DuckDB itself, to a zstd Parquet file with the same
columns. The same four-cut selection then runs on both, warm (the files are
in the page cache), REPEAT times each; the best time counts:

- **count**: the number of events that pass (the live count of the query
  composer): ``TagTable.count`` against ``SELECT count(*) ... WHERE``;
- **collect**: the run and event numbers of those events, as an event
  collection needs them: ``TagTable.select`` + gathering against
  ``SELECT RunNumber, EventNumber ... WHERE`` fetched as numpy arrays.

Both use every core (numpy on a thread per core, DuckDB's own threads).

    python bench/tag_selection.py [--events N] [--repeat R] [--directory DIR]

Goal (issue 5): ratio >= 1.0 (DuckDB reached ~60 M events/s from zstd
Parquet on this machine).
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import duckdb
import numpy as np

from skimengine.collection import FileRef
from skimengine.tags import TagTable, open_columns, write_columns

TRIGGERS = ("HLT_e26_lhtight", "HLT_mu26_ivarmedium", "HLT_xe110", "HLT_j420")
SELECTION = 'nJets >= 2 && jet_pt1 > 50 && MET > 30 && trigger("HLT_xe110")'
SQL_WHERE = "nJets >= 2 AND jet_pt1 > 50 AND MET > 30 AND (triggerBits & 4) != 0"


def make_tag(n: int, seed: int = 2015) -> TagTable:
    """A TAG of *n* events with plausible distributions, in 1M-event steps."""
    rng = np.random.default_rng(seed)
    parts = [
        _part(rng, start, min(n, start + 1_000_000)) for start in range(0, n, 10**6)
    ]
    columns = {name: np.concatenate([p[name] for p in parts]) for name in parts[0]}
    files = tuple(
        FileRef(f"guid-{i:04d}", f"AOD._{i:06d}.pool.root")
        for i in range(n // 100_000 + 1)
    )
    return TagTable(files, columns, TRIGGERS)


def _part(rng: np.random.Generator, start: int, stop: int) -> dict[str, np.ndarray]:
    n = stop - start
    jets = rng.poisson(2.2, n).astype(np.int32)
    jet_pt1 = np.where(jets > 0, 20 + rng.exponential(35, n), 0).astype(np.float32)
    met = rng.exponential(28, n).astype(np.float32)
    bits = rng.random((n, 4)) < [0.3, 0.3, 0.2, 0.05]
    mask = (bits * (1 << np.arange(4))).sum(axis=1).astype(np.int64)
    return {
        "RunNumber": np.full(n, 310000, np.int32),
        "EventNumber": np.arange(start, stop, dtype=np.int64) + 1,
        "LumiBlock": (1 + np.arange(start, stop) // 2000).astype(np.int32),
        "nJets": jets,
        "nElectrons": rng.poisson(0.4, n).astype(np.int32),
        "nMuons": rng.poisson(0.4, n).astype(np.int32),
        "jet_pt1": jet_pt1,
        "jet_pt2": np.where(jets > 1, jet_pt1 * rng.random(n), 0).astype(np.float32),
        "el_pt1": rng.exponential(20, n).astype(np.float32),
        "mu_pt1": rng.exponential(20, n).astype(np.float32),
        "MET": met,
        "triggerBits": mask,
        "FileIndex": (np.arange(start, stop) // 100_000).astype(np.int32),
        "Entry": (np.arange(start, stop) % 100_000).astype(np.int64),
    }


def prepare(directory: Path, n: int) -> tuple[Path, Path]:
    """The columnar store and the Parquet file of an *n*-event TAG."""
    store, parquet = directory / f"tag-{n}", directory / f"tag-{n}.parquet"
    if store.exists() and parquet.exists():
        return store, parquet
    tag = make_tag(n)
    shutil.rmtree(store, ignore_errors=True)  # a store without its Parquet twin
    write_columns(tag, store)
    arrays = dict(tag.columns)  # DuckDB scans a dict of numpy arrays
    with duckdb.connect() as connection:
        connection.register("arrays", arrays)
        connection.execute(
            f"COPY arrays TO '{parquet}' (FORMAT parquet, COMPRESSION zstd)"
        )
    return store, parquet


def best(run: Callable[[], object], repeat: int) -> tuple[float, object]:
    times, result = [], None
    for _ in range(repeat):
        start = time.perf_counter()
        result = run()
        times.append(time.perf_counter() - start)
    return min(times), result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=10_000_000)
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--directory", type=Path, default=None)
    args = parser.parse_args()
    directory = args.directory or Path(tempfile.mkdtemp(prefix="hepcat-bench-"))
    store, parquet = prepare(directory, args.events)
    tag = open_columns(store)
    n = len(tag)
    print(f"{n:,} events, {os.cpu_count()} cores; selection: {SELECTION}")
    print(
        f"columnar store {store} ({_size(store)}), Parquet {parquet} ({_size(parquet)})"
    )

    with duckdb.connect() as connection:
        source = f"read_parquet('{parquet}')"

        def duck_count() -> int:
            query = f"SELECT count(*) FROM {source} WHERE {SQL_WHERE}"
            return connection.execute(query).fetchone()[0]

        def duck_collect() -> dict[str, np.ndarray]:
            query = f"SELECT RunNumber, EventNumber FROM {source} WHERE {SQL_WHERE}"
            return connection.execute(query).fetchnumpy()

        def our_collect() -> dict[str, np.ndarray]:
            rows = tag.select(SELECTION)
            return {k: tag.columns[k][rows] for k in ("RunNumber", "EventNumber")}

        for label, ours, theirs in (
            ("count", lambda: tag.count(SELECTION), duck_count),
            ("collect", our_collect, duck_collect),
        ):
            our_time, our_result = best(ours, args.repeat)
            duck_time, duck_result = best(theirs, args.repeat)
            _same(label, our_result, duck_result)
            ratio = duck_time / our_time
            print(
                f"{label:8s} hepcat {n / our_time / 1e6:8.1f} M events/s   "
                f"DuckDB {n / duck_time / 1e6:8.1f} M events/s   ratio {ratio:5.2f}"
            )


def _same(label: str, ours: object, theirs: object) -> None:
    if isinstance(ours, dict):
        assert isinstance(theirs, dict)
        order = np.argsort(theirs["EventNumber"], kind="stable")
        for key, values in ours.items():
            assert np.array_equal(values, np.asarray(theirs[key])[order]), label
    else:
        assert ours == theirs, (label, ours, theirs)


def _size(path: Path) -> str:
    files = path.iterdir() if path.is_dir() else [path]
    return f"{sum(f.stat().st_size for f in files) / 1e6:.0f} MB"


if __name__ == "__main__":
    main()
