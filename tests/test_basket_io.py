"""Reading baskets and writing trees the fast way, against uproot's own way."""

from __future__ import annotations

import warnings
from pathlib import Path

import awkward as ak
import numpy as np
import pytest
import uproot
from conftest import unavailable

from ingest.eventfiles import PROFILES, EventFileSpec, write_event_file
from skimengine import treewriter
from skimengine.baskets import GROUP_SUFFIX, BasketBytes, Column
from skimengine.extract import extract_unit, output_dataset_name, plan_extraction
from skimengine.rootformat import BLOCK_HEADER, KEY_START, MAX_BLOCK, block_sizes

TREE = "CollectionTree"
PARENT = "mc16_13TeV.410470.PhPy8EG_ttbar.deriv.DAOD_PHYS.e6337_s3126_r10724_p4164"
COMPRESSIONS = {
    "zstd": uproot.ZSTD(1),
    "zlib": uproot.ZLIB(1),
    "lz4": uproot.LZ4(1),
    "none": uproot.ZLIB(0),
}


def event_file(path: Path, compression, events: int = 3000, basket: int = 700) -> Path:
    spec = EventFileSpec(
        scope="mc16_13TeV",
        lfn=path.name,
        guid="TEST",
        n_events=events,
        run_number=310000,
        mc_channel_number=410470,
        lumi_blocks=(1, 2, 3),
        first_event=1,
        profile=PROFILES[410470],
        seed=3,
    )
    return write_event_file(path, spec, basket_entries=basket, compression=compression)


@pytest.fixture(scope="module", params=list(COMPRESSIONS))
def source(request, tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp(request.param)
    return event_file(folder / "events.root", COMPRESSIONS[request.param])


def test_basket_bytes_are_those_uproot_reads(source):
    tree = uproot.open(source)[TREE]
    compared = 0
    with BasketBytes(source) as baskets:
        for branch in tree.branches:
            for number in range(branch.num_baskets):
                data, offsets = baskets.read(branch, number)
                basket = branch.basket(number)
                assert bytes(data) == bytes(basket.data), (branch.name, number)
                if basket.byte_offsets is None:
                    assert offsets is None
                else:
                    assert offsets.tolist() == basket.byte_offsets.tolist()
                compared += 1
    assert compared == len(tree.branches) * 5  # 3000 entries in baskets of 700


def test_an_extraction_from_any_compression_keeps_the_selected_events(source, tmp_path):
    entries = np.r_[0, np.arange(5, 2990, 3), 2999]
    got = extract(source, entries, tmp_path)
    assert ak.array_equal(got, uproot.open(source)[TREE].arrays()[entries])


def extract(source: Path, entries: np.ndarray, output: Path) -> ak.Array:
    plan = plan_extraction(
        {"f": entries}, {"f": source}, dataset=output_dataset_name(PARENT, "jdoe", "t")
    )
    files = [extract_unit(plan, unit, output).path for unit in plan.units]
    return uproot.concatenate([f"{f}:{TREE}" for f in files])


@pytest.fixture(scope="module")
def zstd_source(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("zstd-many")
    return event_file(folder / "events.root", uproot.ZSTD(1), events=6000, basket=250)


def test_small_flushes_outgrow_the_basket_tables_and_read_back(
    zstd_source, tmp_path, monkeypatch
):
    # A basket per branch for each cluster of 250 source entries read: the
    # tree's tables (ten baskets at first) grow once through extend, then
    # baskets are written directly again.
    monkeypatch.setattr(treewriter, "FLUSH_BYTES", 1)
    monkeypatch.setattr("skimengine.baskets.READ_STEP", 10_000)
    entries = np.arange(0, 6000, 2)

    got = extract(zstd_source, entries, tmp_path)

    output = uproot.open(next(tmp_path.glob("*.root*")))[TREE]
    assert output["jet_pt"].num_baskets == 24
    assert ak.array_equal(got, uproot.open(zstd_source)[TREE].arrays()[entries])


def test_the_direct_way_writes_what_extend_writes(zstd_source, tmp_path, monkeypatch):
    entries = np.arange(1, 6000, 5)
    written = []
    original = treewriter.direct_writing
    monkeypatch.setattr(
        treewriter,
        "direct_writing",
        lambda tree: written.append(original(tree)) or written[-1],
    )
    direct = extract(zstd_source, entries, tmp_path / "direct")
    monkeypatch.setattr(treewriter, "direct_writing", lambda tree: False)

    through_extend = extract(zstd_source, entries, tmp_path / "extend")

    assert written == [True]  # this uproot has what the direct way uses
    assert ak.array_equal(direct, through_extend)
    assert direct.fields == through_extend.fields


@pytest.fixture(scope="module")
def root_module():
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the PyPI ROOT says it is an alpha
            import ROOT
    except ImportError as err:
        unavailable("ROOT (pip install root)", str(err))
    ROOT.gROOT.SetBatch(True)
    return ROOT


def test_root_reads_a_tree_whose_tables_grew(
    root_module, zstd_source, tmp_path, monkeypatch
):
    monkeypatch.setattr(treewriter, "FLUSH_BYTES", 1)
    monkeypatch.setattr("skimengine.baskets.READ_STEP", 10_000)
    entries = np.arange(0, 6000, 2)
    want = extract(zstd_source, entries, tmp_path)
    path = next(tmp_path.glob("*.root*"))

    handle = root_module.TFile.Open(str(path))
    tree = handle.Get(TREE)
    assert tree.GetEntries() == len(entries)
    for entry in (0, 1234, len(entries) - 1):
        tree.GetEntry(entry)
        assert tree.EventNumber == want.EventNumber[entry]
        jets = [tree.GetLeaf("jet_pt").GetValue(k) for k in range(tree.nJets)]
        assert jets == pytest.approx(want.jet_pt[entry].tolist())
    handle.Close()


def test_a_zstd_basket_over_16_mb_and_one_that_does_not_shrink(root_module, tmp_path):
    # 20 MB of counting numbers: compressed in two blocks of at most 16 MB.
    # 5 MB of noise: stored as it is, as ROOT stores what does not shrink.
    n = 5_000_000
    rng = np.random.default_rng(5)
    counting = np.arange(n, dtype=">i4")
    noise = rng.integers(0, 256, n, dtype=np.uint8)
    counts = rng.integers(0, 2, n).astype(np.int32)
    jets = rng.normal(50, 10, int(counts.sum())).astype(">f4")
    path = tmp_path / "big.root"
    with uproot.recreate(path, compression=uproot.ZSTD(1)) as output:
        writer = treewriter.TreeWriter(output, TREE)
        writer.add(
            {
                "counting": Column(values=counting),
                "noise": Column(values=noise),
                "nJets" + GROUP_SUFFIX: Column(counts=counts, contents={"jet": jets}),
            }
        )
        writer.flush()
    tree = uproot.open(path)[TREE]

    assert writer.direct
    assert np.array_equal(tree["counting"].array(library="np"), counting)
    assert np.array_equal(tree["noise"].array(library="np"), noise)
    want = ak.unflatten(jets.astype(np.float32), counts)
    assert ak.array_equal(tree["jet"].array(), want)
    assert tree["noise"].compressed_bytes >= noise.nbytes  # stored as it is
    assert tree["counting"].compressed_bytes < 0.9 * counting.nbytes
    raw = path.read_bytes()
    seek = int(tree["counting"].member("fBasketSeek")[0])
    _, _, length, _, keylen, _ = KEY_START.unpack_from(raw, seek)
    _, first = block_sizes(raw[seek + keylen : seek + keylen + BLOCK_HEADER])
    assert first == MAX_BLOCK < length  # a second block follows
    handle = root_module.TFile.Open(str(path))
    root_tree = handle.Get(TREE)
    for entry in (0, 4_194_303, 4_194_304, n - 1):  # across the block boundary
        root_tree.GetEntry(entry)
        value = root_tree.GetLeaf
        assert value("counting").GetValue() == entry
        assert value("noise").GetValue() == noise[entry]
        assert value("nJets").GetValue() == counts[entry]
    handle.Close()
