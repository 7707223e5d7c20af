"""The simulated event files, and finding them in the file store."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import awkward as ak
import numpy as np
import pytest
import uproot

from catalog.config import load_config
from catalog.errors import ConfigError, EventFileNotFound
from catalog.lumiblocks import parse_lumi_blocks
from ingest.eventfiles import (
    TREE_NAME,
    TRIGGERS,
    has_event_files,
    write_dataset_files,
    write_pool_file_catalog,
    write_world_files,
)
from ingest.world import World, build_world
from skimengine.filestore import FileStore, deterministic_path

BRANCHES = [
    "RunNumber",
    "EventNumber",
    "LumiBlock",
    "mcChannelNumber",
    "mcEventWeight",
    "averageInteractionsPerCrossing",
    "MET",
    "MET_phi",
    "triggerBits",
    "nJets",
    "jet_pt",
    "jet_eta",
    "jet_phi",
    "jet_m",
    "nElectrons",
    "el_pt",
    "el_eta",
    "el_phi",
    "el_charge",
    "nMuons",
    "mu_pt",
    "mu_eta",
    "mu_phi",
    "mu_charge",
]
ZMUMU_DAOD = (
    "mc16_13TeV.361107.PowhegPythia8EvtGen_AZNLOCTEQ6L1_Zmumu.deriv.DAOD_PHYS."
    "e3601_s3126_r9364_p4164"
)
DATA_AOD = "data15_13TeV.00267073.physics_Main.merge.AOD.f629_m1504"


@pytest.fixture(scope="session")
def small_world() -> World:
    return build_world(files_per_dataset=2)


@pytest.fixture(scope="session")
def world_store(tmp_path_factory: pytest.TempPathFactory, small_world: World):
    """Every event file of a small world, under a storage root, with a
    PoolFileCatalog.xml beside it.
    """
    root = tmp_path_factory.mktemp("store")
    catalog = root / "PoolFileCatalog.xml"
    written = write_world_files(small_world, root, pool_file_catalog=catalog)
    return root, catalog, written


def test_every_aod_and_daod_file_of_the_world_is_written(world_store, small_world):
    root, _, written = world_store

    expected = {
        f.lfn: f.events
        for d in small_world.datasets
        if has_event_files(d)
        for f in d.files
        if f.status == "finished"
    }

    assert {w.lfn: w.events for w in written} == expected
    for file in written:
        with uproot.open(file.path) as handle:
            assert handle[TREE_NAME].num_entries == expected[file.lfn]


def test_files_are_at_rucio_deterministic_paths(world_store):
    root, _, written = world_store

    for file in written:
        digest = hashlib.md5(f"{file.scope}:{file.lfn}".encode()).hexdigest()
        assert file.path == root / file.scope / digest[:2] / digest[2:4] / file.lfn
        assert file.path.is_file()


def test_an_event_file_has_the_branches_and_types_of_an_atlas_file(world_store):
    _, _, written = world_store

    with uproot.open(written[0].path) as handle:
        tree = handle[TREE_NAME]
        types = {name: tree[name].interpretation for name in tree.keys()}
        menu = str(handle["TriggerMenu"])

    assert list(types) == BRANCHES
    assert types["RunNumber"].to_dtype == np.dtype("int32")
    assert types["EventNumber"].to_dtype == np.dtype("uint64")
    assert types["LumiBlock"].to_dtype == np.dtype("int32")
    assert types["triggerBits"].to_dtype == np.dtype("uint64")
    assert menu.split(",")[1] == f"1:{TRIGGERS[1]}"


def test_real_data_events_carry_the_run_and_the_files_lumi_blocks(
    tmp_path: Path, small_world: World
):
    dataset = small_world.dataset(DATA_AOD)

    written = write_dataset_files(dataset, tmp_path)

    for file, spec in zip(written, dataset.files, strict=True):
        events = uproot.open(file.path)[TREE_NAME].arrays(
            ["RunNumber", "EventNumber", "LumiBlock", "mcEventWeight"]
        )
        assert set(events.RunNumber.tolist()) == {267073}
        assert set(events.LumiBlock.tolist()) == set(
            parse_lumi_blocks(spec.lumi_blocks or "")
        )
        assert len(set(events.EventNumber.tolist())) == spec.events
        assert set(events.mcEventWeight.tolist()) == {1.0}


def test_objects_are_counted_and_ordered_by_pt(tmp_path: Path, small_world: World):
    written = write_dataset_files(small_world.dataset(ZMUMU_DAOD), tmp_path)

    events = uproot.open(written[0].path)[TREE_NAME].arrays()

    assert ak.all(ak.num(events.jet_pt) == events.nJets)
    assert ak.all(ak.num(events.mu_charge) == events.nMuons)
    assert ak.all(events.jet_pt[:, :-1] >= events.jet_pt[:, 1:])
    assert ak.all(events.mu_pt[:, :-1] >= events.mu_pt[:, 1:])
    # Z → μμ: most events have two muons, and the DAOD channel is Zmumu.
    assert ak.mean(events.nMuons >= 2) > 0.6
    assert set(events.mcChannelNumber.tolist()) == {361107}


def test_the_same_world_writes_the_same_events(tmp_path: Path, small_world: World):
    dataset = small_world.dataset(ZMUMU_DAOD)

    first = write_dataset_files(dataset, tmp_path / "a")
    second = write_dataset_files(dataset, tmp_path / "b")

    for one, other in zip(first, second, strict=True):
        a = uproot.open(one.path)[TREE_NAME].arrays()
        b = uproot.open(other.path)[TREE_NAME].arrays()
        assert ak.array_equal(a, b)


def test_baskets_hold_the_requested_number_of_entries(
    tmp_path: Path, small_world: World
):
    written = write_dataset_files(
        small_world.dataset(ZMUMU_DAOD), tmp_path, basket_entries=300
    )

    tree = uproot.open(written[0].path)[TREE_NAME]
    n = tree.num_entries
    expected = [*range(0, n, 300), n]
    assert list(tree["jet_pt"].entry_offsets) == expected
    assert list(tree["EventNumber"].entry_offsets) == expected


# -- The file store ---------------------------------------------------------------


def test_store_finds_a_file_at_its_deterministic_path(world_store):
    root, _, written = world_store
    store = FileStore(root)

    file = written[3]

    assert store.path(file.lfn, scope=file.scope) == file.path


def test_store_finds_a_file_through_a_pool_file_catalog_first(
    tmp_path: Path, world_store
):
    root, _, written = world_store
    file = written[0]
    elsewhere = tmp_path / "elsewhere" / file.lfn
    elsewhere.parent.mkdir()
    os.link(file.path, elsewhere)
    catalog = write_pool_file_catalog(
        tmp_path / "PoolFileCatalog.xml",
        [type(file)(file.scope, file.lfn, file.guid, elsewhere, file.events)],
    )

    store = FileStore(root, [catalog])

    assert store.path(file.lfn, scope=file.scope) == elsewhere
    assert store.path("unused", scope=file.scope, guid=file.guid) == elsewhere


def test_store_reads_the_catalogue_the_world_wrote(tmp_path: Path, world_store):
    _, catalog, written = world_store

    store = FileStore(tmp_path / "empty-root", [catalog])

    assert store.paths([w.lfn for w in written[:3]], scope=written[0].scope) == {
        w.lfn: w.path.resolve() for w in written[:3]
    }


@pytest.mark.parametrize(
    "lfn", ["/etc/hostname", "../../../../../../etc/passwd", "..", "a/b.root"]
)
def test_a_name_that_is_a_path_is_never_looked_for_outside_the_root(
    tmp_path: Path, lfn: str
) -> None:
    root = tmp_path / "root"
    # The hash directories exist, as they do once files are stored.
    deterministic_path(root, "mc16_13TeV", "x").parent.mkdir(parents=True)
    store = FileStore(root)

    with pytest.raises(EventFileNotFound) as raised:
        store.path(lfn, scope="mc16_13TeV")

    assert str(raised.value) == (
        f"event file {lfn!r} not found; looked in: storage root {root} (not "
        f"there: {lfn!r} is not a name the file store can hold)"
    )


def test_a_missing_file_names_the_lfn_and_every_place_looked(
    tmp_path: Path, world_store
):
    root, catalog, _ = world_store
    store = FileStore(root, [catalog])

    with pytest.raises(EventFileNotFound) as raised:
        store.path("AOD.99999999._000999.pool.root.1", scope="mc16_13TeV")

    message = str(raised.value)
    assert "'AOD.99999999._000999.pool.root.1'" in message
    assert f"PoolFileCatalog {catalog} (not listed)" in message
    assert f"storage root {root}" in message
    assert raised.value.status == 404


def test_a_remote_or_vanished_pfn_is_reported_and_skipped(tmp_path: Path):
    catalog = tmp_path / "PoolFileCatalog.xml"
    catalog.write_text(
        "<POOLFILECATALOG>"
        '<File ID="G1"><physical><pfn name="root://eos//a.root"/></physical>'
        '<logical><lfn name="a.root"/></logical></File>'
        '<File ID="G2"><physical><pfn name="gone/b.root"/></physical>'
        '<logical><lfn name="b.root"/></logical></File>'
        "</POOLFILECATALOG>"
    )
    store = FileStore(None, [catalog])

    with pytest.raises(EventFileNotFound, match="remote PFN root://eos//a.root"):
        store.path("a.root", scope="user.jdoe")
    with pytest.raises(EventFileNotFound, match="gone/b.root: no such file"):
        store.path("b.root", scope="user.jdoe")


def test_a_catalogue_that_is_not_pool_xml_is_a_configuration_error(tmp_path: Path):
    catalog = tmp_path / "PoolFileCatalog.xml"
    catalog.write_text("<catalog/>")

    with pytest.raises(ConfigError, match="not <POOLFILECATALOG>"):
        FileStore(None, [catalog]).path("a.root", scope="user.jdoe")


def test_the_store_follows_the_configuration(tmp_path: Path, world_store):
    root, catalog, written = world_store
    env = {"HEPCAT_STORAGE_ROOT": str(root), "HEPCAT_POOL_FILE_CATALOGS": ""}

    store = FileStore.from_config(load_config(env=env))

    assert store.root == root.resolve()
    assert store.path(written[1].lfn, scope=written[1].scope) == written[1].path
