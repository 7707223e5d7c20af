"""Extraction of an event collection into new ROOT files, and its executors."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
import warnings
import zlib
from pathlib import Path

import awkward as ak
import numpy as np
import pytest
import uproot
from conftest import unavailable
from test_skim_pages import DATASET, make_surface_world

from catalog.datasets import add_dataset
from catalog.errors import InvalidInput, InvalidName
from catalog.models.datasets import SOURCE_SKIM
from catalog.nomenclature import parse_dataset_name
from ingest.eventfiles import write_dataset_files
from ingest.world import build_world
from skimengine import baskets, extract
from skimengine.baskets import SourceTree
from skimengine.executors import (
    DaskExecutor,
    LocalExecutor,
    SchedulerUnreachable,
    executor_for,
)
from skimengine.extract import (
    Piece,
    Plan,
    Unit,
    UnitCancelled,
    cancel_units,
    cluster_ranges,
    extract_unit,
    output_dataset_name,
    plan_extraction,
)
from skimengine.filestore import FileStore
from skimengine.rootformat import TreeInfo
from skimengine.tags import register_tag

PARENT = (
    "mc16_13TeV.410470.PhPy8EG_A14_ttbar_hdamp258p75_nonallhad.deriv.DAOD_PHYS."
    "e6337_s3126_r10724_p4164"
)
TREE = "CollectionTree"
BASKET = 250
PARENT_SKIM = output_dataset_name(PARENT, "jdoe", "jets")


@pytest.fixture(scope="session")
def source(tmp_path_factory: pytest.TempPathFactory):
    """The event files of a ttbar DAOD (3 files of about 1000 events, in
    baskets of 250 entries) and their paths, found through the file store.
    """
    dataset = build_world(files_per_dataset=3).dataset(PARENT)
    root = tmp_path_factory.mktemp("store")
    written = write_dataset_files(dataset, root, basket_entries=BASKET)
    store = FileStore(root)
    return store.paths([w.lfn for w in written], scope="mc16_13TeV")


def read(paths) -> ak.Array:
    return uproot.concatenate([f"{p}:{TREE}" for p in paths])


def selected(source, cut) -> dict[str, np.ndarray]:
    """An independent selection: the entries of each file where *cut* holds."""
    return {
        lfn: np.flatnonzero(np.asarray(cut(uproot.open(path)[TREE].arrays())))
        for lfn, path in source.items()
    }


def expected_events(source, collection) -> ak.Array:
    return ak.concatenate(
        [read([source[lfn]])[entries] for lfn, entries in collection.items()]
    )


def one_muon_and_met(events: ak.Array) -> ak.Array:
    return (events.nMuons >= 1) & (events.MET > 30)


def plan_for(source, collection, **options) -> Plan:
    dataset = output_dataset_name(PARENT, "jdoe", "ttbar1mu")
    return plan_extraction(collection, source, dataset=dataset, **options)


@pytest.fixture
def one_muon(source):
    return selected(source, one_muon_and_met)


def extract_all(plan: Plan, output: Path):
    return [extract_unit(plan, unit, output) for unit in plan.units]


def test_extraction_keeps_exactly_the_selected_events(source, one_muon, tmp_path):
    plan = plan_for(source, one_muon)

    outputs = extract_all(plan, tmp_path)

    got = read(o.path for o in outputs)
    want = expected_events(source, one_muon)
    assert sum(map(len, one_muon.values())) == len(want) > 100
    assert got.RunNumber.tolist() == want.RunNumber.tolist()
    assert got.EventNumber.tolist() == want.EventNumber.tolist()
    assert ak.array_equal(got, want)


def test_an_event_collection_is_extracted_as_it_is(source, one_muon, tmp_path):
    collection_module = pytest.importorskip("skimengine.collection")
    files = [collection_module.FileRef("", lfn) for lfn in one_muon]
    index = np.concatenate(
        [np.full(len(e), i) for i, e in enumerate(one_muon.values())]
    )
    entries = np.concatenate(list(one_muon.values()))
    want = expected_events(source, one_muon)
    collection = collection_module.make_collection(
        files,
        file_index=index,
        entry=entries,
        run_number=want.RunNumber,
        event_number=want.EventNumber,
        lumi_block=want.LumiBlock,
    )

    outputs = extract_all(plan_for(source, collection), tmp_path)

    assert read(o.path for o in outputs).EventNumber.tolist() == (
        want.EventNumber.tolist()
    )


def test_jagged_arrays_survive_basket_boundaries(source, tmp_path):
    # Every other entry from 200 to 800: four baskets in and out of the
    # selection, each output basket gathered from several input baskets.
    entries = np.arange(200, 800, 2)
    collection = {lfn: entries for lfn in source}

    outputs = extract_all(plan_for(source, collection), tmp_path)

    got = read(o.path for o in outputs)
    want = expected_events(source, collection)
    for branch in ("jet_pt", "jet_eta", "el_pt", "mu_charge", "nJets"):
        assert got[branch].tolist() == want[branch].tolist()
    assert ak.all(ak.num(got.jet_pt) == got.nJets)


def test_a_subset_of_branches_keeps_identity_and_count_branches(
    source, one_muon, tmp_path
):
    plan = plan_for(source, one_muon, branches=["MET", "mu_pt"])

    outputs = extract_all(plan, tmp_path)

    tree = uproot.open(outputs[0].path)[TREE]
    assert tree.keys() == [
        "RunNumber",
        "EventNumber",
        "LumiBlock",
        "MET",
        "nMuons",
        "mu_pt",
    ]
    assert tree["mu_pt"].count_branch.name == "nMuons"
    want = expected_events(source, one_muon)
    assert read(o.path for o in outputs).mu_pt.tolist() == want.mu_pt.tolist()


def test_an_unknown_branch_is_refused_with_a_suggestion(source, one_muon):
    with pytest.raises(InvalidInput, match="'mu_ptt' \\(did you mean 'mu_pt'\\?\\)"):
        plan_for(source, one_muon, branches=["mu_ptt"])


def test_an_entry_beyond_the_file_is_refused(source):
    lfn = next(iter(source))

    with pytest.raises(InvalidInput, match="asks for entry 99999 of file"):
        plan_for(source, {lfn: [1, 99999]})


def test_only_the_clusters_holding_selected_entries_are_read(source):
    lfn, path = next(iter(source.items()))
    tree = uproot.open(path)[TREE]
    n = tree.num_entries

    ranges = cluster_ranges(tree, tree.keys(), np.array([3, 260, 270, n - 1]))

    assert ranges == [(0, 2 * BASKET), ((n - 1) // BASKET * BASKET, n)]
    # A range stays within the entries it may hold, to bound memory.
    capped = cluster_ranges(tree, tree.keys(), np.array([3, 260]), max_entries=BASKET)
    assert capped == [(0, BASKET), (BASKET, 2 * BASKET)]


def test_both_ways_of_reading_give_the_same_output(
    source, one_muon, tmp_path, monkeypatch
):
    # Plain numbers are gathered from the baskets; other trees go through
    # uproot's arrays and awkward. Both must write the same events.
    plan = plan_for(source, one_muon)
    fast = extract_all(plan, tmp_path / "baskets")
    monkeypatch.setattr(baskets, "_plain", lambda tree, names: False)

    slow = extract_all(plan, tmp_path / "arrays")

    assert ak.array_equal(read(o.path for o in fast), read(o.path for o in slow))
    assert ak.array_equal(read(o.path for o in slow), expected_events(source, one_muon))


def test_a_small_selection_stays_one_file_whatever_the_workers(source, one_muon):
    plan = plan_for(source, one_muon, parallel=4)

    assert len(plan.units) == 1


def test_a_plan_for_parallel_workers_shares_the_reading_between_clusters(
    source, tmp_path, monkeypatch
):
    # Every third entry: every cluster of every file is read. Without the
    # least share a unit must read, these small files are cut for 2 workers.
    monkeypatch.setattr(extract, "MIN_SHARE", 1)
    collection = {lfn: np.arange(0, 900, 3) for lfn in source}

    plan = plan_for(source, collection, parallel=2)
    outputs = extract_all(plan, tmp_path)

    assert len(plan.units) == 2
    read_by = [
        {(p.source, int(e) // BASKET) for p in unit.pieces for e in p.entries}
        for unit in plan.units
    ]
    assert not read_by[0] & read_by[1]
    assert abs(len(read_by[0]) - len(read_by[1])) <= 1
    got = read(o.path for o in outputs)
    assert ak.array_equal(got, expected_events(source, collection))


def test_a_target_size_splits_the_output(source, tmp_path):
    collection = {lfn: np.arange(0, 900) for lfn in source}
    target = 80_000

    outputs = extract_all(plan_for(source, collection, target_size=target), tmp_path)

    assert len(outputs) > 3
    assert sum(o.events for o in outputs) == 2700
    assert all(o.size < 1.1 * target for o in outputs)
    assert sum(o.size for o in outputs) > 0.8 * target * (len(outputs) - 1)
    assert [o.number for o in outputs] == list(range(1, len(outputs) + 1))


def test_outputs_are_named_by_the_nomenclature_with_adler32_checksums(
    source, one_muon, tmp_path
):
    plan = plan_for(source, one_muon, compression="lz4")

    (output,) = extract_all(plan, tmp_path)

    content = output.path.read_bytes()
    assert output.checksum == f"ad:{zlib.adler32(content):08x}"
    assert output.size == len(content)
    assert output.events == uproot.open(output.path)[TREE].num_entries
    assert output.name == (
        "user.jdoe.mc16_13TeV.410470.PhPy8EG_A14_ttbar_hdamp258p75_nonallhad."
        "DAOD_PHYS.e6337_s3126_r10724_p4164.ttbar1mu._000001.root"
    )
    assert parse_dataset_name(plan.dataset).scope == "user.jdoe"
    assert output.sources == tuple(lfn for lfn in one_muon if len(one_muon[lfn]))


# A parent of each kind, and a skim of it by LOGIN, whose output name fits
# in 255 characters but leaves no room for the suffix of its files.
LOGIN = "l" * 40
LONG_SKIMS = {
    "mc": (
        "mc16_13TeV.410470.PhPy8EG_A14_ttbar_hdamp258p75_nonallhad.deriv."
        "DAOD_PHYS.e6337_s3126_r10724_" + "_".join(f"p{4164 + i}" for i in range(14)),
        "s" * 64,
    ),
    "data": (
        "data18_13TeV.00348885.physics_Main.deriv.DAOD_PHYS.r11969_r11784_"
        + "_".join(f"p{4072 + i}" for i in range(14)),
        "s" * 64,
    ),
    "user": (  # a skim of a skim of a skim
        f"user.{LOGIN}.mc16_13TeV.361107.PowhegPythia8EvtGen_AZNLOCTEQ6L1_"
        f"Zmumu.DAOD_PHYS.e3601_s3126_r9364_p4164.{'a' * 40}.{'b' * 41}",
        "d" * 30,
    ),
}


@pytest.mark.parametrize("kind", sorted(LONG_SKIMS))
def test_an_output_name_without_room_for_its_files_is_refused(kind):
    parent, skim = LONG_SKIMS[kind]

    with pytest.raises(InvalidName) as raised:
        output_dataset_name(parent, LOGIN, skim)

    message = str(raised.value)
    assert "its output files would have names of" in message
    assert "more than 255" in message
    assert "choose a skim name of at most" in message


def test_a_name_at_the_limit_leaves_room_for_the_temporary_file(
    source, one_muon, tmp_path
):
    two_tags_fewer = LONG_SKIMS["mc"][0][:-12]
    dataset = output_dataset_name(two_tags_fewer, LOGIN, "s" * 64)
    plan = plan_extraction(one_muon, source, dataset=dataset)

    (output,) = extract_all(plan, tmp_path)

    assert len(output.name) == 255
    assert output.events == sum(map(len, one_muon.values()))


def test_a_skim_of_a_skim_without_room_for_its_files_is_refused_when_requested(
    catalog_engine, tmp_path
):
    world = make_surface_world(catalog_engine, tmp_path / "data")
    first = output_dataset_name(DATASET, "phil", "a" * 64)
    parent = output_dataset_name(first, "phil", "b" * 64)
    with world.Session.begin() as session:
        add_dataset(parent, SOURCE_SKIM, session=session)
        session.flush()
        register_tag(
            parent, world.tag, data_dir=world.config.data_path, session=session
        )

    answer = world.app.test_client().post(
        "/api/v1/skims",
        json={"logicalDatasetName": parent, "name": "c" * 30, "select": "MET > 1"},
        headers=world.bearer("phil"),
    )

    assert answer.status_code == 400, answer.text
    error = answer.json["error"]
    assert error["type"] == "InvalidName"
    assert "output files would have names of 263 characters" in error["message"]
    assert "choose a skim name of at most 22 characters" in error["message"]


def test_compression_is_chosen_by_name(source, one_muon, tmp_path):
    with pytest.raises(InvalidInput, match="unknown compression 'bzip2'"):
        plan_for(source, one_muon, compression="bzip2")

    plan = plan_for(source, one_muon, compression="zlib:6")
    (output,) = extract_all(plan, tmp_path)

    # ROOT's compression header: "ZL" for zlib, "ZS" for zstd.
    assert b"ZL\x08" in output.path.read_bytes()


def test_a_plan_survives_json(source, one_muon):
    plan = plan_for(source, one_muon, target_size=50_000)

    again = Plan.from_json(plan.to_json())

    assert again.dataset == plan.dataset and again.branches == plan.branches
    assert [u.name for u in again.units] == [u.name for u in plan.units]
    for one, other in zip(again.units, plan.units, strict=True):
        for a, b in zip(one.pieces, other.pieces, strict=True):
            assert (a.source, a.path) == (b.source, b.path)
            assert np.array_equal(a.entries, b.entries)


# -- Resuming, failing, cancelling ---------------------------------------------------


@pytest.fixture
def local_executor():
    """Makes local executors, and closes them after the test."""
    made: list[LocalExecutor] = []

    def make(workers: int) -> LocalExecutor:
        made.append(LocalExecutor(workers))
        return made[-1]

    yield make
    for executor in made:
        executor.close()


@pytest.fixture
def split_plan(source) -> Plan:
    collection = {lfn: np.arange(0, 900, 3) for lfn in source}
    return plan_for(source, collection, target_size=50_000)


def test_a_resumed_run_writes_only_the_missing_outputs(
    split_plan, tmp_path, local_executor
):
    executor = local_executor(2)
    first = executor.run(split_plan, tmp_path)
    kept = {o.name: (o.checksum, o.path.stat().st_mtime_ns) for o in first.outputs}
    lost = first.outputs[1]
    lost.path.unlink()
    (tmp_path / f".{lost.number:06d}.deadbeef.part").write_bytes(b"half a file")

    second = executor.run(split_plan, tmp_path)

    assert second.complete
    assert [o.name for o in second.outputs] == [u.name for u in split_plan.units]
    for output in second.outputs:
        if output.name != lost.name:
            assert kept[output.name] == (
                output.checksum,
                output.path.stat().st_mtime_ns,
            )
    assert (tmp_path / lost.name).is_file()
    assert not list(tmp_path.glob(".*.part"))
    assert (
        read(o.path for o in second.outputs).EventNumber.tolist()
        == read(o.path for o in first.outputs).EventNumber.tolist()
    )


def test_a_failed_unit_leaves_no_file_and_a_retry_redoes_only_it(
    split_plan, tmp_path, local_executor
):
    broken = split_plan.units[-1].pieces[-1].path
    original = Path(broken).read_bytes()
    Path(broken).write_bytes(original[: len(original) // 2])
    try:
        outcome = local_executor(1).run(split_plan, tmp_path / "out")
    finally:
        Path(broken).write_bytes(original)
    last = split_plan.units[-1]

    assert last.number in outcome.failed
    assert not outcome.complete
    assert not (tmp_path / "out" / last.name).exists()
    assert not list((tmp_path / "out").glob(".*.part"))
    written = {o.name: o.checksum for o in outcome.outputs}

    retry = local_executor(1).run(split_plan, tmp_path / "out")

    assert retry.complete
    for output in retry.outputs:
        if output.name in written:
            assert output.checksum == written[output.name]
    assert sum(o.events for o in retry.outputs) == split_plan.events


def test_cancel_stops_between_units_and_a_rerun_finishes(
    split_plan, tmp_path, local_executor
):
    cancel = threading.Event()
    seen = []

    def progress(done: int, total: int) -> None:
        seen.append(done)
        if done >= 1:
            cancel.set()

    outcome = local_executor(1).run(
        split_plan, tmp_path, cancel=cancel, progress=progress
    )

    assert outcome.cancelled
    assert len(outcome.outputs) < len(split_plan.units)
    assert seen[0] == 0
    rest = local_executor(1).run(split_plan, tmp_path)
    assert rest.complete
    assert sum(o.events for o in rest.outputs) == split_plan.events


def test_a_cancel_mark_stops_a_unit_midway_and_leaves_no_file(
    source, tmp_path, monkeypatch
):
    plan = plan_for(source, {lfn: np.arange(0, 900, 2) for lfn in source})
    unit = plan.units[0]
    reading = extract.read_piece

    def read_then_cancel(*args):
        # The mark appears while the unit reads its first piece.
        chunks = reading(*args)
        yield next(chunks)
        cancel_units(tmp_path)
        yield from chunks

    monkeypatch.setattr(extract, "read_piece", read_then_cancel)

    with pytest.raises(UnitCancelled) as raised:
        extract_unit(plan, unit, tmp_path)

    assert 0 < raised.value.written < raised.value.planned == unit.events
    assert "cancelled after" in str(raised.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == [".cancel"]


def long_plan(source, pieces: int) -> Plan:
    """A plan of one unit that reads the first source file *pieces* times:
    it takes seconds where the others take milliseconds.
    """
    lfn, path = next(iter(source.items()))
    piece = Piece(lfn, str(path), np.arange(0, 900))
    plan = plan_for(source, {lfn: piece.entries})
    unit = Unit(1, plan.units[0].name, (piece,) * pieces)
    return Plan(plan.dataset, TREE, plan.branches, plan.compression, 2**40, (unit,))


def test_cancel_interrupts_a_running_unit_and_frees_its_worker(
    source, split_plan, tmp_path, local_executor
):
    executor = local_executor(1)
    executor.start()
    cancel, outcomes = threading.Event(), []
    long_run = threading.Thread(
        target=lambda: outcomes.append(
            executor.run(long_plan(source, 400), tmp_path / "long", cancel=cancel)
        )
    )
    long_run.start()
    deadline = time.monotonic() + 60
    while not list((tmp_path / "long").glob(".*.part")):
        assert time.monotonic() < deadline, "the long unit never started"
        time.sleep(0.01)

    cancel.set()
    long_run.join(timeout=60)
    # One worker: this plan's units run only once the long unit has let go.
    other = executor.run(split_plan, tmp_path / "other")

    assert outcomes[0].cancelled and not outcomes[0].outputs
    assert not outcomes[0].failed  # a cancelled unit is not a failed one
    assert sorted(p.name for p in (tmp_path / "long").iterdir()) == [".cancel"]
    assert other.complete
    assert sum(o.events for o in other.outputs) == split_plan.events


def test_a_worker_that_dies_is_replaced_and_the_plan_completes(
    split_plan, tmp_path, local_executor
):
    executor = local_executor(1)
    executor.start()
    for process in list(executor._pool._processes.values()):
        process.kill()
        process.join()

    first = executor.run(split_plan, tmp_path)

    # The units sent before the pool knew it broke are sent again.
    assert first.complete, first.failed
    assert sum(o.events for o in first.outputs) == split_plan.events


def test_a_worker_killed_midway_costs_no_unit_of_any_plan(
    split_plan, tmp_path, local_executor
):
    # Two plans share a pool of one worker; it dies while the first runs.
    executor = local_executor(1)
    executor.start()
    (worker,) = executor._pool._processes.values()
    runs: dict[str, object] = {}
    threads = [
        threading.Thread(
            target=lambda key=key: runs.update(
                {key: executor.run(split_plan, tmp_path / key)}
            )
        )
        for key in ("a", "b")
    ]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + 60
    while not any(p.suffix == ".part" for p in tmp_path.rglob("*")):
        assert time.monotonic() < deadline, "no unit started"
        time.sleep(0.005)
    worker.kill()
    for thread in threads:
        thread.join(timeout=120)

    for key in ("a", "b"):
        assert runs[key].complete, runs[key].failed
        assert sum(o.events for o in runs[key].outputs) == split_plan.events


OWNER_SCRIPT = """
import os, signal
from skimengine.executors import LocalExecutor

if __name__ == "__main__":
    executor = LocalExecutor(2)
    executor.start()
    print(*executor._pool._processes, flush=True)
    os.kill(os.getpid(), signal.SIGKILL)
"""


def running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_the_workers_of_a_killed_task_server_exit(tmp_path):
    script = tmp_path / "owner.py"
    script.write_text(OWNER_SCRIPT)
    # Its stdout is a pipe that the workers hold too: the killed owner stays
    # a zombie until they let go of it.
    done = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=60
    )
    workers = [int(pid) for pid in done.stdout.split()]

    deadline = time.monotonic() + 30
    while any(map(running, workers)) and time.monotonic() < deadline:
        time.sleep(0.1)

    assert len(workers) == 2
    assert not any(map(running, workers))


def test_the_configuration_chooses_the_executor():
    from catalog.config import load_config

    assert isinstance(executor_for(load_config(env={})), LocalExecutor)
    dask = executor_for(load_config(env={"HEPCAT_DASK_SCHEDULER": "tcp://h:8786"}))
    assert isinstance(dask, DaskExecutor) and dask.address == "tcp://h:8786"


def test_dask_asked_for_and_not_installed_is_a_clear_error(monkeypatch):
    from catalog.config import load_config
    from catalog.errors import ConfigError

    monkeypatch.setitem(sys.modules, "distributed", None)  # as if not installed
    config = load_config(env={"HEPCAT_DASK_SCHEDULER": "tcp://h:8786"})

    with pytest.raises(ConfigError, match=r"pip install 'hepcat\[dask\]'") as error:
        executor_for(config)
    assert str(error.value).startswith("setting dask_scheduler = 'tcp://h:8786'")


def test_an_unreachable_dask_scheduler_is_named_with_its_setting(split_plan, tmp_path):
    pytest.importorskip("distributed")
    executor = DaskExecutor("tcp://127.0.0.1:1")
    executor.connect_timeout = 1.0

    with pytest.raises(SchedulerUnreachable) as raised:
        executor.run(split_plan, tmp_path / "dask")

    message = str(raised.value)
    assert message.startswith("cannot reach the Dask scheduler at tcp://127.0.0.1:1")
    assert "check HEPCAT_DASK_SCHEDULER" in message


def test_dask_gives_the_same_outputs_as_the_local_pool(
    split_plan, tmp_path, local_executor
):
    distributed = pytest.importorskip("distributed")
    local = local_executor(2).run(split_plan, tmp_path / "local")

    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=2, processes=False, dashboard_address=None
    ) as cluster:
        executor = DaskExecutor(cluster.scheduler_address)
        threads = executor.workers
        remote = executor.run(split_plan, tmp_path / "dask")

    assert threads == 4  # a plan for this cluster is cut for 4 units at once
    assert remote.complete
    assert [(o.name, o.events) for o in remote.outputs] == [
        (o.name, o.events) for o in local.outputs
    ]
    assert ak.array_equal(
        read(o.path for o in remote.outputs), read(o.path for o in local.outputs)
    )


# -- ROOT itself ----------------------------------------------------------------------


@pytest.fixture(scope="session")
def root_module():
    try:
        with warnings.catch_warnings():
            # The PyPI build of ROOT warns that it is an alpha distribution.
            warnings.simplefilter("ignore")
            import ROOT
    except ImportError as err:
        unavailable("ROOT (pip install root)", str(err))
    ROOT.gROOT.SetBatch(True)
    return ROOT


def test_root_opens_every_output(root_module, split_plan, tmp_path, local_executor):
    outputs = local_executor(2).run(split_plan, tmp_path).outputs
    want = read(o.path for o in outputs)

    position = 0
    for output in outputs:
        handle = root_module.TFile.Open(str(output.path))
        tree = handle.Get(TREE)
        assert tree.GetEntries() == output.events
        for entry in (0, output.events - 1):
            tree.GetEntry(entry)
            expected = want[position + entry]
            assert tree.EventNumber == expected.EventNumber
            jets = [tree.GetLeaf("jet_pt").GetValue(k) for k in range(tree.nJets)]
            assert jets == pytest.approx(expected.jet_pt.tolist())
        position += output.events
        handle.Close()


@pytest.fixture
def root_written(root_module, tmp_path) -> Path:
    """A tree written by ROOT itself, as ATLAS software writes them: jagged
    leaf arrays (``jet_pt[nJets]/F``) and every branch with baskets of its
    own size, so no two branches share their basket boundaries.
    """
    path = tmp_path / "root-written.root"
    output = root_module.TFile(str(path), "RECREATE")
    tree = root_module.TTree(TREE, "written by ROOT")
    run, event = np.zeros(1, np.int32), np.zeros(1, np.uint64)
    lumi, met, n = np.zeros(1, np.int32), np.zeros(1, np.float32), np.zeros(1, np.int32)
    pt, eta = np.zeros(50, np.float32), np.zeros(50, np.float32)
    for name, buffer, leaf in [
        ("RunNumber", run, "RunNumber/I"),
        ("EventNumber", event, "EventNumber/l"),
        ("LumiBlock", lumi, "LumiBlock/I"),
        ("MET", met, "MET/F"),
        ("nJets", n, "nJets/I"),
        ("jet_pt", pt, "jet_pt[nJets]/F"),
        ("jet_eta", eta, "jet_eta[nJets]/F"),
    ]:
        tree.Branch(name, buffer, leaf)
    for name, size in [("MET", 3000), ("jet_pt", 4000), ("jet_eta", 7000)]:
        tree.SetBasketSize(name, size)
    rng = np.random.default_rng(7)
    for number in range(5000):
        run[0], event[0], lumi[0] = 300000, 1000 + number, 1 + number // 500
        met[0], n[0] = rng.exponential(30), rng.poisson(3)
        pt[: n[0]], eta[: n[0]] = rng.exponential(40, n[0]), rng.normal(0, 2, n[0])
        tree.Fill()
    tree.Write()
    output.Close()
    return path


def test_a_tree_written_by_root_is_extracted_exactly(root_written, tmp_path):
    entries = np.r_[np.arange(0, 5000, 7), 4999]

    plan = plan_extraction({"f": entries}, {"f": root_written}, dataset=PARENT_SKIM)
    outputs = extract_all(plan, tmp_path)

    source = uproot.open(root_written)[TREE]
    assert len({tuple(b.entry_offsets) for b in source.branches}) > 3
    got = read(o.path for o in outputs)
    assert ak.array_equal(got, source.arrays()[entries])


def test_a_tree_written_by_root_is_laid_out_from_its_record(root_module, tmp_path):
    # Leaves of every plain type, and two that are not one number per entry
    # or per item (a fixed array, a leaf list): hepcat reads the tree's
    # record itself, and says what uproot says of each branch.
    path = tmp_path / "leaves.root"
    output = root_module.TFile(str(path), "RECREATE")
    tree = root_module.TTree(TREE, "written by ROOT")
    leaves = {
        "flag": (np.bool_, "flag/O"),
        "byte": (np.uint8, "byte/b"),
        "short": (np.int16, "short/S"),
        "count": (np.uint32, "count/i"),
        "big": (np.int64, "big/L"),
        "real": (np.float64, "real/D"),
        "nJets": (np.int32, "nJets/I"),
        "jet_pt": (np.float32, "jet_pt[nJets]/F"),
        "fixed": (np.float32, "fixed[3]/F"),
        "pair": (np.float32, "a/F:b/F"),
    }
    buffers = {name: np.zeros(8, kind) for name, (kind, _) in leaves.items()}
    for name, (_, leaf) in leaves.items():
        tree.Branch(name, buffers[name], leaf)
    tree.SetBasketSize("jet_pt", 2000)
    for number in range(3000):
        buffers["nJets"][0] = number % 5
        buffers["jet_pt"][:] = number
        tree.Fill()
    tree.Write()
    output.Close()

    with SourceTree(path, TREE) as source:
        info = source.info

    tree = uproot.open(path)[TREE]
    assert isinstance(info, TreeInfo)
    assert info.keys() == tree.keys() and info.num_entries == 3000
    for branch in tree.branches:
        mine = info[branch.name]
        assert mine.entry_offsets.tolist() == list(branch.entry_offsets)
        stored = branch.member("fBasketSeek")[: branch.num_baskets]
        assert mine.seeks.tolist() == stored.tolist()
    assert info["jet_pt"].count == "nJets"
    assert info["jet_pt"].dtype == np.dtype(">f4")
    assert info["count"].dtype == np.dtype(">u4")
    assert info["flag"].dtype == np.dtype("?")
    assert info["fixed"].dtype is None and info["pair"].dtype is None
