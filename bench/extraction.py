"""Extraction against ROOT's RDataFrame ``Filter`` + ``Snapshot``, and
against a bare read of the input it needs.

Same input files (simulated ttbar events, ZSTD level 1, clusters of 25,000
entries: one basket per branch) and the same selections, expressed on
``EventNumber`` so that both sides keep the same events:

- ``1% clustered``: runs of 1,000 consecutive events every 100,000 (as a
  lumi-block or run selection gives); with 200,000-event files this touches
  a quarter of the clusters;
- ``1% spread``: one event in a hundred, at pseudo-random places, touching
  every cluster;
- ``50% spread``: every other event.

What is timed, for each selection (the collection is computed beforehand:
selecting events is the TAG's job, timed by its own benchmark):

- **ours**: ``plan_extraction`` (with ``parallel=--workers``) and
  ``LocalExecutor(--workers).run``, all branches, ZSTD level 1, published
  and checksummed. The executor's pool is started before the clock starts,
  as a task server keeps it warm between skims; its start is printed once.
  Each turn writes into a new directory (a finished output is never written
  again), removed after the turn, untimed: RDataFrame writes over its one
  output file each turn, so both write into pages the page cache has freed.
- **RDataFrame**: ``ROOT.EnableImplicitMT(--workers)``, then
  ``RDataFrame(tree, files).Filter(expr).Snapshot(tree, out, "", options)``
  with ZSTD level 1 (``RSnapshotOptions``), all branches. One untimed
  Snapshot with another expression comes first, so that loading ROOT's
  libraries is not counted. The first timed run of a selection compiles its
  ``Filter`` expression, as a user's does; the repeats may find it compiled
  already, which can only favour RDataFrame.
- **bare read**: the needed input and nothing else: for each unit of our
  plan, ``tree.arrays(branches, entry_start=, entry_stop=, how=dict)`` over
  exactly the cluster ranges extraction reads (files opened with
  ``handler=uproot.MemmapSource``, as extraction opens them), the units
  shared over ``--workers`` warm processes like ours; no selection, no
  output. It is what reading the needed input with uproot's simplest call
  costs (extraction gathers from the baskets itself, which can be faster).

- **codec floor**: what no extraction of these files can avoid when the
  selected entries of each basket reach near its end, in the same warm
  processes: decompress every basket of the clusters read, whole (ZSTD
  straight into a reused buffer, :class:`skimengine.baskets.BasketBytes`),
  and compress, with the output's codec and level, as many bytes of each
  as the selection keeps. No gathering, no file written; where the baskets
  are is read as extraction reads it (:class:`skimengine.baskets.SourceTree`).
  Extraction decompresses a basket only up to its last selected entry when
  that comes early, so with runs of events at the start of clusters (``1%
  clustered``) it can take less than this floor.

The four take turns ``--repeat`` times (default 5) and the best time of each
is kept: the machine is shared, and a burst of other work should not decide
a ratio. A lucky run of one side can still decide it, so the ratios of each
turn (ours and RDataFrame, ours and the bare read, timed one after the
other) are also printed, their median: a burst that falls on a turn falls on
both of its sides more often than on one. It prints the seconds of each,
``RDF/ours`` (the goal is at least 2), ``ours/bare`` (the goal is at most
1.3), and the floor's share of each: ``RDF/floor`` below 2 means that no
extraction can be twice as fast as RDataFrame here, ``floor/bare`` above 1.3
that none can stay within 1.3 times the bare read.

    python bench/extraction.py [--files 5] [--events 200000] [--workers 2]
                               [--repeat 5]
"""

from __future__ import annotations

import argparse
import multiprocessing
import shutil
import statistics
import tempfile
import time
import warnings
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import uproot

from ingest.eventfiles import PROFILES, EventFileSpec, write_event_file
from skimengine.baskets import BasketBytes, SourceTree
from skimengine.executors import LocalExecutor
from skimengine.extract import (
    Plan,
    Unit,
    cluster_ranges,
    parse_compression,
    plan_extraction,
)

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


def ours(collection, paths, output: Path, executor) -> tuple[float, int, Plan]:
    start = time.perf_counter()
    plan = plan_extraction(
        collection,
        {str(p): p for p in paths},
        dataset="user.bench.extraction",
        parallel=executor.workers,
    )
    outcome = executor.run(plan, output)
    elapsed = time.perf_counter() - start
    assert outcome.complete, outcome.failed
    return elapsed, sum(o.events for o in outcome.outputs), plan


def read_unit(plan: Plan, unit: Unit) -> int:
    """Read the clusters extraction reads for *unit*; keep nothing."""
    read = 0
    for piece in unit.pieces:
        with uproot.open(piece.path, handler=uproot.MemmapSource) as handle:
            tree = handle[plan.tree]
            for first, stop in cluster_ranges(tree, plan.branches, piece.entries):
                tree.arrays(plan.branches, entry_start=first, entry_stop=stop, how=dict)
                read += stop - first
    return read


def bare_read(plan: Plan, pool: ProcessPoolExecutor) -> tuple[float, int]:
    start = time.perf_counter()
    futures = [pool.submit(read_unit, plan, unit) for unit in plan.units]
    read = sum(future.result() for future in futures)
    return time.perf_counter() - start, read


def codec_unit(plan: Plan, unit: Unit) -> int:
    """Decompress the baskets extraction reads for *unit*, and compress the
    share of their bytes the selection keeps; return the bytes unpacked.
    """
    codec = parse_compression(plan.compression)
    unpacked = 0
    for piece in unit.pieces:
        with (
            SourceTree(piece.path, plan.tree) as source,
            BasketBytes(source) as baskets,
        ):
            tree = source.info
            ranges = cluster_ranges(tree, plan.branches, piece.entries)
            kept = len(piece.entries) / sum(stop - first for first, stop in ranges)
            for name in plan.branches:
                unpacked += _codec_branch(tree[name], ranges, kept, codec, baskets)
    return unpacked


def _codec_branch(branch, ranges, kept: float, codec, baskets: BasketBytes) -> int:
    starts = branch.entry_offsets
    unpacked = 0
    for number in range(branch.num_baskets):
        if any(first <= starts[number] < stop for first, stop in ranges):
            data, _ = baskets.read(branch, number)
            uproot.compression.compress(data[: int(len(data) * kept)], codec)
            unpacked += len(data)
    return unpacked


def codec_floor(plan: Plan, pool: ProcessPoolExecutor) -> float:
    start = time.perf_counter()
    futures = [pool.submit(codec_unit, plan, unit) for unit in plan.units]
    for future in futures:
        future.result()
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
    parser.add_argument("--repeat", type=int, default=5, help="best of")
    args = parser.parse_args()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the PyPI ROOT says it is an alpha
        import ROOT
    ROOT.EnableImplicitMT(args.workers)
    work = Path(tempfile.mkdtemp(prefix="hepcat-bench-"))
    context = multiprocessing.get_context("forkserver")
    try:
        paths = write_inputs(work / "in", args.files, args.events)
        size = sum(p.stat().st_size for p in paths) / 1e6
        print(f"input: {args.files} files, {args.files * args.events:,} events, "
              f"{size:.0f} MB; workers: {args.workers}")  # fmt: skip
        started = time.perf_counter()
        with (
            LocalExecutor(args.workers) as executor,
            ProcessPoolExecutor(args.workers, mp_context=context) as pool,
        ):
            executor.start()
            print(f"pool start (untimed below): {time.perf_counter() - started:.2f} s")
            list(pool.map(abs, range(args.workers)))  # the workers are up
            rdataframe(ROOT, "EventNumber % 1000 == 7", paths, work)  # warm-up
            for name, expression in SELECTIONS.items():
                run(ROOT, name, expression, paths, work, executor, pool, args.repeat)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def run(ROOT, name: str, expression: str, paths, work: Path, executor, pool, repeat):
    collection = collection_for(name, paths)
    wanted = sum(len(e) for e in collection.values())
    output = work / name.replace(" ", "_").replace("%", "")
    mine, theirs, bare, floors = [], [], [], []
    for attempt in range(repeat):
        # The four take turns, so that a burst of other work on the machine
        # does not fall on one of them only.
        seconds, kept, plan = ours(collection, paths, output / str(attempt), executor)
        mine.append(seconds)
        # Untimed: RDataFrame writes over its one output file each turn, so
        # that the page cache reuses its pages; ours are removed likewise.
        shutil.rmtree(output / str(attempt))
        seconds, read = bare_read(plan, pool)
        bare.append(seconds)
        floors.append(codec_floor(plan, pool))
        seconds, their_kept = rdataframe(ROOT, expression, paths, work)
        theirs.append(seconds)
        assert kept == their_kept == wanted, (kept, their_kept, wanted)
    best, rdf, read_only, floor = min(mine), min(theirs), min(bare), min(floors)
    paired_rdf = statistics.median(r / o for r, o in zip(theirs, mine, strict=True))
    paired_bare = statistics.median(o / b for o, b in zip(mine, bare, strict=True))
    print(
        f"{name:>13}: {kept:>9,} events ({read:,} read, {len(plan.units)} units)\n"
        f"    ours {best:5.2f} s  RDataFrame {rdf:5.2f} s  bare read {read_only:5.2f} s"
        f"  codec floor {floor:5.2f} s\n"
        f"    RDF/ours {rdf / best:5.2f}  ours/bare {best / read_only:5.2f}  "
        f"RDF/floor {rdf / floor:5.2f}  floor/bare {floor / read_only:5.2f}  "
        f"ours/floor {best / floor:5.2f}\n"
        f"    paired, median of {repeat}: RDF/ours {paired_rdf:5.2f}  "
        f"ours/bare {paired_bare:5.2f}"
    )


if __name__ == "__main__":
    main()
