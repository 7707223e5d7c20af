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
from skimengine import baskets, treewriter
from skimengine.baskets import GROUP_SUFFIX, BasketBytes, Column, SourceTree
from skimengine.extract import extract_unit, output_dataset_name, plan_extraction
from skimengine.rootformat import (
    BLOCK_HEADER,
    KEY_START,
    MAX_BLOCK,
    TreeInfo,
    UnreadableRecord,
    block_sizes,
    parse_tree,
)

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
    with SourceTree(source, TREE) as ours, BasketBytes(ours) as baskets:
        for branch in tree.branches:
            for number in range(branch.num_baskets):
                data, offsets = baskets.read(ours.info[branch.name], number)
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


def test_a_flat_tree_is_laid_out_from_its_record_as_uproot_reads_it(source):
    tree = uproot.open(source)[TREE]

    with SourceTree(source, TREE) as ours:
        info = ours.info

    assert isinstance(info, TreeInfo)  # read by hepcat, not through uproot
    assert_same_layout(info, tree)


def assert_same_layout(info, tree) -> None:
    assert info.num_entries == tree.num_entries
    assert info.keys() == tree.keys(recursive=False)
    for branch in tree.branches:
        mine = info[branch.name]
        assert mine.entry_offsets.tolist() == list(branch.entry_offsets)
        stored = branch.member("fBasketSeek")[: branch.num_baskets]
        assert mine.seeks.tolist() == stored.tolist()
        assert mine.compressed_bytes == branch.compressed_bytes
        assert mine.uncompressed_bytes == branch.uncompressed_bytes
        counts = branch.count_branch
        assert mine.count == (counts.name if counts is not None else None)
        interpretation = branch.interpretation
        if isinstance(interpretation, uproot.AsJagged):
            interpretation = interpretation.content
        assert mine.dtype == interpretation.from_dtype, branch.name


def test_a_record_cut_short_is_left_to_uproot(source):
    with uproot.open(source) as handle:
        key = handle.key(TREE)
        record = bytes(key.get_uncompressed_chunk_cursor()[0].raw_data)

    with pytest.raises(UnreadableRecord):
        parse_tree(record[: len(record) // 2], key.fKeylen)


def test_a_tree_laid_out_by_uproot_is_extracted_the_same(
    zstd_source, tmp_path, monkeypatch
):
    # The layout uproot reads is the fallback for trees hepcat's reader of
    # records does not know.
    entries = np.arange(3, 6000, 4)
    ours = extract(zstd_source, entries, tmp_path / "record")

    def unreadable(data, keylen):
        raise UnreadableRecord("as if")

    monkeypatch.setattr(baskets, "parse_tree", unreadable)
    with SourceTree(zstd_source, TREE) as fallback:
        assert not isinstance(fallback.info, TreeInfo)
        assert_same_layout(fallback.info, uproot.open(zstd_source)[TREE])

    through_uproot = extract(zstd_source, entries, tmp_path / "uproot")

    assert ak.array_equal(ours, through_uproot)


def test_entries_early_in_their_baskets_are_read_from_the_baskets_start(
    source, tmp_path
):
    # The first 40 entries of each basket of 700, and one late entry: the
    # ZSTD baskets are decompressed only as far as needed (the jagged ones
    # as far as their count branch says), the others whole.
    entries = np.r_[np.flatnonzero(np.arange(3000) % 700 < 40), 2998]

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


def test_the_start_of_a_basket_of_two_blocks_is_what_the_whole_holds(tmp_path):
    # 20 MB of counting numbers: a basket of two compressed blocks; its
    # start is read from the first block or from both.
    n = 5_000_000
    path = tmp_path / "two-blocks.root"
    with uproot.recreate(path, compression=uproot.ZSTD(1)) as output:
        writer = treewriter.TreeWriter(output, TREE)
        writer.add({"counting": Column(values=np.arange(n, dtype=">i4"))})
        writer.flush()

    with SourceTree(path, TREE) as tree, BasketBytes(tree) as baskets:
        branch = tree.info["counting"]
        whole = bytes(baskets.read(branch, 0)[0])
        for need in (400, MAX_BLOCK + 400):
            start, offsets = baskets.read(branch, 0, need)
            assert bytes(start[:need]) == whole[:need]
            assert offsets is None

    assert len(whole) == 4 * n


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
