"""Extraction against ROOT's RDataFrame ``Filter`` + ``Snapshot``.

Same input files (simulated ttbar events, ZSTD, baskets of 25,000 entries)
and the same selections, expressed on ``EventNumber`` so that both sides
keep the same events:

- ``1% clustered``: runs of 1,000 consecutive events (as a lumi-block or
  run selection gives), touching ~2% of the baskets;
- ``1% spread``: one event in a hundred, at pseudo-random places, touching
  every basket;
- ``50% spread``: every other event.

For each it prints the time of our extraction (plan + local process pool of
``--workers``), RDataFrame with ``EnableImplicitMT(--workers)`` writing with
ZSTD level 1 like us, and a bare uproot read of the clusters our extraction
reads (one process, no output), with the ratios. The collection is computed
beforehand: selecting events is the TAG's job, timed by its own benchmark.

    python bench/extraction.py [--files 5] [--events 200000] [--workers 2]
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import uproot

from ingest.eventfiles import PROFILES, EventFileSpec, write_event_file
from skimengine.executors import LocalExecutor
from skimengine.extract import cluster_ranges, plan_extraction

TREE = "CollectionTree"
HASH = 2654435761  # Knuth's multiplicative hash: spreads EventNumber
SELECTIONS = {
    "1% clustered": "(EventNumber / 1000) % 100 == 0",
    "1% spread": f"(EventNumber * {HASH}ull) % 100 == 0",
    "50% spread": "EventNumber % 2 == 0",
}


def numpy_cut(name: str, event: np.ndarray) -> np.ndarray:
    if name == "1% clustered":
        return (event // np.uint64(1000)) % np.uint64(100) == 0
    if name == "1% spread":
        return (event * np.uint64(HASH)) % np.uint64(100) == 0
    return event % np.uint64(2) == 0


def write_inputs(directory: Path, files: int, events: int) -> list[Path]:
    paths = []
    for number in range(files):
        spec = EventFileSpec(
            scope="mc16_13TeV",
            lfn=f"DAOD_PHYS.bench._{number:06d}.pool.root.1",
            guid=f"BENCH-{number}",
            n_events=events,
            run_number=310000,
            mc_channel_number=410470,
            lumi_blocks=tuple(range(1, 1 + events // 1000)),
            first_event=number * events,
            profile=PROFILES[410470],
            seed=number,
        )
        paths.append(write_event_file(directory / spec.lfn, spec))
    return paths


def collection_for(name: str, paths: list[Path]) -> dict[str, np.ndarray]:
    found = {}
    for path in paths:
        event = uproot.open(path)[TREE]["EventNumber"].array(library="np")
        found[str(path)] = np.flatnonzero(numpy_cut(name, event))
    return found


def ours(collection, paths, output: Path, workers: int) -> tuple[float, int]:
    start = time.perf_counter()
    plan = plan_extraction(
        collection, {str(p): p for p in paths}, dataset="user.bench.extraction"
    )
    outcome = LocalExecutor(workers).run(plan, output)
    elapsed = time.perf_counter() - start
    return elapsed, sum(o.events for o in outcome.outputs)


def bare_read(collection) -> float:
    start = time.perf_counter()
    for path, entries in collection.items():
        with uproot.open(path) as handle:
            tree = handle[TREE]
            for first, stop in cluster_ranges(tree, tree.keys(), entries):
                tree.arrays(entry_start=first, entry_stop=stop, how=dict)
    return time.perf_counter() - start


def rdataframe(ROOT, expression: str, paths, output: Path) -> tuple[float, int]:
    options = ROOT.RDF.RSnapshotOptions()
    options.fCompressionAlgorithm = ROOT.RCompressionSetting.EAlgorithm.kZSTD
    options.fCompressionLevel = 1
    start = time.perf_counter()
    frame = ROOT.RDataFrame(TREE, [str(p) for p in paths])
    target = str(output / "rdf.root")
    frame.Filter(expression).Snapshot(TREE, target, "", options)
    elapsed = time.perf_counter() - start
    with uproot.open(target) as handle:
        return elapsed, handle[TREE].num_entries


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=5)
    parser.add_argument("--events", type=int, default=200_000, help="per file")
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the PyPI ROOT says it is an alpha
        import ROOT
    ROOT.EnableImplicitMT(args.workers)
    work = Path(tempfile.mkdtemp(prefix="hepcat-bench-"))
    try:
        paths = write_inputs(work / "in", args.files, args.events)
        size = sum(p.stat().st_size for p in paths) / 1e6
        print(f"input: {args.files} files, {args.files * args.events:,} events, "
              f"{size:.0f} MB; workers: {args.workers}")  # fmt: skip
        for name, expression in SELECTIONS.items():
            run(ROOT, name, expression, paths, work, args.workers)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def run(ROOT, name: str, expression: str, paths, work: Path, workers: int) -> None:
    collection = collection_for(name, paths)
    wanted = sum(len(e) for e in collection.values())
    bare = bare_read(collection)
    mine, kept = ours(collection, paths, work / name.replace(" ", "_"), workers)
    theirs, their_kept = rdataframe(ROOT, expression, paths, work)
    assert kept == their_kept == wanted, (kept, their_kept, wanted)
    print(
        f"{name:>13}: {kept:>9,} events  ours {mine:6.2f} s  "
        f"RDataFrame {theirs:6.2f} s  bare read {bare:6.2f} s  "
        f"RDF/ours {theirs / mine:5.2f}  ours/bare {mine / bare:5.2f}"
    )


if __name__ == "__main__":
    main()
