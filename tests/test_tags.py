"""TAG databases built from real ROOT event files, their two stores, their
export, and event collections (ROOT and CSV, written and uploaded).
"""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path
from types import SimpleNamespace

import awkward as ak
import numpy as np
import pytest
import uproot

from catalog.config import load_config
from catalog.derived import refresh_changed
from catalog.errors import DatasetNotFound, InvalidInput
from catalog.models import Dataset, File
from skimengine.collection import (
    CollectionError,
    FileRef,
    read_collection,
)
from skimengine.filestore import FileStore, deterministic_path
from skimengine.selection import SelectionError
from skimengine.tags import (
    EventFile,
    TagNotFound,
    TagTable,
    build_tag,
    check_collection,
    count_sql,
    dataset_event_files,
    distributions,
    get_tag,
    open_columns,
    open_tag,
    read_tag_root,
    register_tag,
    select_rows_sql,
    write_tag_root,
)
from skimengine.task import TagBuildTask
from taskserver.base import RunContext

DATASET = "mc16_13TeV.361106.PowhegPythia8EvtGen_Zee.recon.AOD.e3601_s3126_r10724"
MENU = (
    "HLT_e26_lhtight_nod0_ivarloose",
    "HLT_mu26_ivarmedium",
    "HLT_xe110",
    "HLT_j420",
)
EVENTS_PER_FILE = (1200, 700, 1500)
COUNTERS = {"jet_pt": "nJets", "el_pt": "nElectrons", "mu_pt": "mu_n"}


def make_events(n: int, run: int, first_event: int, rng: np.random.Generator) -> dict:
    """The events of one file as plain Python lists and numpy arrays."""
    objects = {
        branch: [
            list(rng.exponential(scale, rng.poisson(mean)).astype(np.float32))
            for _ in range(n)
        ]
        for branch, mean, scale in (
            ("jet_pt", 2.5, 50),
            ("el_pt", 0.7, 30),
            ("mu_pt", 0.6, 30),
        )
    }
    return {
        "RunNumber": np.full(n, run, np.int32),
        "EventNumber": np.arange(first_event, first_event + n, dtype=np.uint64),
        "LumiBlock": (1 + np.arange(n) // 250).astype(np.int32),
        "MET": rng.exponential(35, n).astype(np.float32),
        "MET_phi": rng.uniform(-3, 3, n).astype(np.float32),
        "triggerBits": rng.integers(0, 2**16, n).astype(np.uint64)
        | np.where(rng.random(n) < 0.1, np.uint64(2**63), np.uint64(0)),
        **objects,
    }


def write_event_file(path: Path, events: dict, menu: tuple[str, ...] | str) -> None:
    """An event file as SOURCES.md describes it: TTree CollectionTree with
    jagged pT branches (unsorted, so the TAG must find the leading ones);
    *menu*, trigger names in bit order, or the text of ``TriggerMenu``.
    """
    arrays = {
        name: ak.Array(values) if isinstance(values, list) else values
        for name, values in events.items()
    }
    types = {
        name: array.type.content if isinstance(array, ak.Array) else array.dtype
        for name, array in arrays.items()
    }
    with uproot.recreate(path) as out:
        tree = out.mktree("CollectionTree", types, counter_name=COUNTERS.__getitem__)
        for start in range(0, len(arrays["MET"]), 500):
            tree.extend({k: v[start : start + 500] for k, v in arrays.items()})
        if not isinstance(menu, str):
            menu = ",".join(f"{bit}:{name}" for bit, name in enumerate(menu))
        out["TriggerMenu"] = menu


@pytest.fixture(scope="session")
def event_files(tmp_path_factory):
    """Three event files of a dataset and the events written into them."""
    directory = tmp_path_factory.mktemp("events")
    rng = np.random.default_rng(2015)
    files, written = [], []
    for number, n in enumerate(EVENTS_PER_FILE, start=1):
        lfn = f"AOD.12345678._{number:06d}.pool.root.1"
        guid = f"8c2f6a3e-1b4d-4e5f-9a7b-00000000000{number}"
        events = make_events(n, 310000 + number % 2, 100_000 * number, rng)
        path = directory / lfn
        write_event_file(path, events, MENU)
        files.append(EventFile(FileRef(guid, lfn), path))
        written.append(events)
    return SimpleNamespace(files=files, events=written)


def leading(lists: list[list[float]], nth: int) -> np.ndarray:
    return np.array(
        [sorted(x, reverse=True)[nth] if len(x) > nth else 0 for x in lists]
    )


def expected_tag(events: list[dict]) -> dict[str, np.ndarray]:
    """The TAG columns, computed independently of skimengine."""
    joined: dict[str, list] = {}
    for index, file_events in enumerate(events):
        n = len(file_events["MET"])
        columns = {
            "RunNumber": file_events["RunNumber"],
            "EventNumber": file_events["EventNumber"].astype(np.int64),
            "LumiBlock": file_events["LumiBlock"],
            "MET": file_events["MET"],
            "triggerBits": file_events["triggerBits"].view(np.int64),
            "nJets": np.array([len(x) for x in file_events["jet_pt"]]),
            "nElectrons": np.array([len(x) for x in file_events["el_pt"]]),
            "nMuons": np.array([len(x) for x in file_events["mu_pt"]]),
            "jet_pt1": leading(file_events["jet_pt"], 0),
            "jet_pt2": leading(file_events["jet_pt"], 1),
            "el_pt1": leading(file_events["el_pt"], 0),
            "mu_pt1": leading(file_events["mu_pt"], 0),
            "FileIndex": np.full(n, index),
            "Entry": np.arange(n),
        }
        for name, values in columns.items():
            joined.setdefault(name, []).append(np.asarray(values))
    return {name: np.concatenate(parts) for name, parts in joined.items()}


@pytest.fixture(scope="session")
def tag(event_files):
    return build_tag(event_files.files)


@pytest.fixture(scope="session")
def expected(event_files):
    return expected_tag(event_files.events)


# -- building ---------------------------------------------------------------------


def test_a_tag_has_one_row_per_event_with_its_place_and_attributes(tag, expected):
    assert len(tag) == sum(EVENTS_PER_FILE)
    for name, values in expected.items():
        np.testing.assert_array_equal(tag.columns[name], values, err_msg=name)


def test_a_tag_knows_its_files_and_trigger_menu(tag, event_files):
    assert tag.files == tuple(f.ref for f in event_files.files)
    assert tag.triggers == MENU


def test_an_event_file_without_a_needed_branch_is_refused(tmp_path, event_files):
    events = dict(event_files.events[0])
    del events["mu_pt"]
    path = tmp_path / "AOD.broken.pool.root"
    write_event_file(path, events, MENU)

    with pytest.raises(InvalidInput, match=r"AOD.broken.pool.root lacks .*mu_pt"):
        build_tag([EventFile(FileRef("g", "AOD.broken.pool.root"), path)])


def test_an_event_file_with_a_nan_is_refused_naming_the_entry(tmp_path, event_files):
    events = dict(event_files.events[1])
    events["MET"] = events["MET"].copy()
    events["MET"][[6, 9]] = [np.nan, np.inf]
    path = tmp_path / "AOD.nan.pool.root"
    write_event_file(path, events, MENU)
    files = [event_files.files[0], EventFile(FileRef("g", "AOD.nan.pool.root"), path)]

    with pytest.raises(InvalidInput) as refused:
        build_tag(files)

    assert str(refused.value) == (
        "event file AOD.nan.pool.root, entry 6: MET nan is not a finite number"
    )


@pytest.mark.parametrize(
    ("menu", "message"),
    [
        ("0:HLT_e26,70:HLT_far", "trigger bit 70 of 'TriggerMenu' is beyond 63"),
        ("0:HLT_e26,", "'TriggerMenu' entry '' is not 'bit:name'"),
        ("0:HLT_e26,x:HLT_mu26", "'TriggerMenu' entry 'x:HLT_mu26' is not 'bit:name'"),
    ],
)
def test_an_event_file_with_a_bad_trigger_menu_is_refused(
    tmp_path, event_files, menu, message
):
    path = tmp_path / "AOD.menu.pool.root"
    write_event_file(path, event_files.events[0], menu)

    with pytest.raises(InvalidInput) as refused:
        build_tag([EventFile(FileRef("g", "AOD.menu.pool.root"), path)])

    assert str(refused.value) == f"event file AOD.menu.pool.root: {message}"


def test_distributions_describe_every_attribute(tag, expected):
    found = distributions(tag)

    met = found["MET"]
    assert sum(met["counts"]) == len(tag)
    assert met["min"] == pytest.approx(float(expected["MET"].min()))
    assert met["max"] == pytest.approx(float(expected["MET"].max()))
    assert met["mean"] == pytest.approx(float(expected["MET"].astype(float).mean()))
    jets = found["nJets"]
    assert jets["counts"] == np.bincount(expected["nJets"]).tolist()
    assert jets["edges"][0] == -0.5
    bits = expected["triggerBits"].view(np.uint64)
    fired = {
        name: int(((bits >> np.uint64(b)) & np.uint64(1)).sum())
        for b, name in enumerate(MENU)
    }
    assert found["triggerBits"]["fired"] == fired


# -- selecting --------------------------------------------------------------------

TRIGGERED = 'trigger("HLT_mu26_ivarmedium") or nElectrons == 2 and el_pt1 in [25, 80)'
SELECTIONS = {
    "nJets >= 2 && jet_pt1 > 60 && MET > 20": lambda e: (
        (e["nJets"] >= 2)
        & (e["jet_pt1"].astype(float) > 60)
        & (e["MET"].astype(float) > 20)
    ),
    TRIGGERED: lambda e: (
        (((e["triggerBits"] >> 1) & 1) == 1)
        | (
            (e["nElectrons"] == 2)
            & (e["el_pt1"].astype(float) >= 25)
            & (e["el_pt1"].astype(float) < 80)
        )
    ),
    "abs(jet_pt1 - jet_pt2) < 10 and not bit(triggerBits, 63)": lambda e: (
        (np.abs(e["jet_pt1"].astype(float) - e["jet_pt2"].astype(float)) < 10)
        & (e["triggerBits"] >= 0)
    ),
}


@pytest.mark.parametrize("expression", list(SELECTIONS))
def test_a_selection_collects_exactly_the_events_numpy_selects(
    tag, expected, expression
):
    collection = tag.collection(tag.select(expression))

    mask = SELECTIONS[expression](expected)
    assert 0 < mask.sum() < len(tag)
    assert tag.count(expression) == mask.sum()
    np.testing.assert_array_equal(
        collection.event_number, expected["EventNumber"][mask]
    )
    np.testing.assert_array_equal(collection.run_number, expected["RunNumber"][mask])
    np.testing.assert_array_equal(collection.lumi_block, expected["LumiBlock"][mask])
    np.testing.assert_array_equal(collection.entry, expected["Entry"][mask])
    assert [collection.files[i] for i in collection.file_index[:1]] == [
        tag.files[expected["FileIndex"][mask][0]]
    ]


def test_a_wrong_selection_is_a_selection_error(tag):
    with pytest.raises(SelectionError, match="did you mean 'nJets'"):
        tag.count("njet > 2")


# -- registering: the two stores ------------------------------------------------


@pytest.fixture
def registered(Session, dataset_factory, tag, tmp_path):  # noqa: N803
    dataset_factory(DATASET)
    with Session.begin() as session:
        register_tag(DATASET, tag, data_dir=tmp_path, session=session)


def test_a_registered_tag_is_in_the_catalogue_with_schema_and_distributions(
    Session,  # noqa: N803
    registered,
    tag,
):
    with Session() as session:
        record = get_tag(DATASET, session=session)

        assert record.n_events == len(tag)
        assert record.status == "ready"
        schema = json.loads(record.schema_json)
        names = [attribute["name"] for attribute in schema["attributes"]]
        assert {"nJets", "jet_pt1", "MET", "triggerBits", "EventNumber"} <= set(names)
        assert schema["triggers"] == list(MENU)
        assert schema["files"][0]["lfn"] == tag.files[0].lfn
        assert json.loads(record.distributions_json)["MET"]["mean"] > 0


@pytest.mark.parametrize("expression", list(SELECTIONS))
def test_the_relational_and_columnar_stores_select_the_same_events(
    Session,  # noqa: N803
    registered,
    expression,
):
    with Session() as session:
        record = get_tag(DATASET, session=session)
        columnar = open_tag(record)

        by_sql = select_rows_sql(record, expression, session=session)
        counted = count_sql(record, expression, session=session)

    by_numpy = columnar.select(expression)
    assert isinstance(columnar.columns["MET"], np.memmap)
    assert len(by_numpy) > 0
    np.testing.assert_array_equal(by_sql, by_numpy)
    assert counted == len(by_numpy)


def test_registering_again_replaces_the_tag(Session, registered, tag, tmp_path):  # noqa: N803
    first_file = tag.columns["FileIndex"] == 0
    columns = {name: values[first_file] for name, values in tag.columns.items()}
    with Session.begin() as session:
        register_tag(
            DATASET, TagTable(tag.files, columns), data_dir=tmp_path, session=session
        )

    with Session() as session:
        record = get_tag(DATASET, session=session)
        assert record.n_events == EVENTS_PER_FILE[0]
        assert count_sql(record, "1 < 2", session=session) == EVENTS_PER_FILE[0]
        assert open_tag(record).count("1 < 2") == EVENTS_PER_FILE[0]
        assert json.loads(record.schema_json)["triggers"] == []


def first_file_only(tag: TagTable) -> TagTable:
    """The TAG of the events of *tag*'s first file."""
    first = tag.columns["FileIndex"] == 0
    return TagTable(tag.files, {name: v[first] for name, v in tag.columns.items()})


def test_a_tag_being_replaced_reads_whole_until_the_new_one_is_committed(
    Session,  # noqa: N803
    registered,
    tag,
    tmp_path,
):
    with Session.begin() as session:
        register_tag(DATASET, first_file_only(tag), data_dir=tmp_path, session=session)
        # Another process (the web server) reads meanwhile.
        with Session() as reader:
            record = get_tag(DATASET, session=reader)
            seen = (record.n_events, open_tag(record).count("1 < 2"))

    assert seen == (len(tag), len(tag))


def test_a_reader_that_found_the_tag_just_before_its_replacement_reads_it(
    Session,  # noqa: N803
    registered,
    tag,
    tmp_path,
):
    with Session() as reader:
        record = get_tag(DATASET, session=reader)
        with Session.begin() as session:
            register_tag(
                DATASET, first_file_only(tag), data_dir=tmp_path, session=session
            )
        found = open_tag(record)

        assert (record.n_events, found.count("1 < 2")) == (len(tag), len(tag))
        assert found.files == tag.files and found.triggers == MENU


def test_a_tag_whose_replacement_fails_stays_as_it_was(
    Session,  # noqa: N803
    registered,
    tag,
    tmp_path,
):
    with pytest.raises(RuntimeError), Session.begin() as session:
        register_tag(DATASET, first_file_only(tag), data_dir=tmp_path, session=session)
        raise RuntimeError("the database went away")

    with Session() as session:
        record = get_tag(DATASET, session=session)
        assert record.n_events == open_tag(record).count("1 < 2") == len(tag)
        assert count_sql(record, "1 < 2", session=session) == len(tag)


def test_a_replaced_store_is_removed_once_no_reader_can_hold_it(
    Session,  # noqa: N803
    registered,
    tag,
    tmp_path,
):
    def location() -> str:
        with Session() as session:
            return get_tag(DATASET, session=session).location

    locations = []
    for table in (first_file_only(tag), tag, first_file_only(tag)):
        locations.append(location())
        with Session.begin() as session:
            register_tag(DATASET, table, data_dir=tmp_path, session=session)
    # Registered again in quick succession: each store replaced is kept for
    # the readers that found it just before.
    readable = [open_columns(where).count("1 < 2") for where in locations]
    for where in locations:
        an_hour_ago = time.time() - 3600
        os.utime(Path(where) / "files.json", (an_hour_ago, an_hour_ago))
    locations.append(location())
    with Session.begin() as session:
        register_tag(DATASET, tag, data_dir=tmp_path, session=session)

    assert readable == [len(tag), EVENTS_PER_FILE[0], len(tag)]
    assert [Path(where).exists() for where in locations] == [False] * 3 + [True]
    assert sorted(Path(location()).parent.iterdir()) == sorted(
        Path(where) for where in (locations[-1], location())
    )


def test_a_catalogued_dataset_gets_its_tag_from_the_file_store(
    Session,  # noqa: N803
    dataset_factory,
    event_files,
    tag,
    tmp_path,
):
    dataset = dataset_factory(DATASET)
    for event_file in event_files.files:
        place = deterministic_path(tmp_path / "store", "mc16_13TeV", event_file.ref.lfn)
        place.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(event_file.path, place)
    with Session.begin() as session:
        for ref in reversed([f.ref for f in event_files.files]):
            session.add(
                File(
                    dataset_id=dataset.id, lfn=ref.lfn, guid=ref.guid, status="finished"
                )
            )

    with Session.begin() as session:
        store = FileStore(tmp_path / "store")
        files = dataset_event_files(DATASET, store, session=session)
        record = register_tag(
            DATASET, build_tag(files), data_dir=tmp_path, session=session
        )
        rows = count_sql(record, "nMuons >= 1", session=session)

    assert [f.ref for f in files] == [f.ref for f in event_files.files]
    assert rows == tag.count("nMuons >= 1") > 0


def test_the_tag_task_builds_the_tag_of_the_counted_files_once(
    Session,  # noqa: N803
    dataset_factory,
    event_files,
    tmp_path,
):
    # The third file failed in ProdSys: the dataset does not count it.
    dataset = dataset_factory(DATASET)
    config = load_config(env={}, data_dir=str(tmp_path))
    with Session.begin() as session:
        statuses = ("finished", "finished", "failed")
        for event_file, events, status in zip(
            event_files.files, EVENTS_PER_FILE, statuses, strict=True
        ):
            place = deterministic_path(
                config.storage_path, "mc16_13TeV", event_file.ref.lfn
            )
            place.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(event_file.path, place)
            session.add(
                File(
                    dataset_id=dataset.id, lfn=event_file.ref.lfn,
                    guid=event_file.ref.guid, status=status,
                    events=events,
                )
            )  # fmt: skip
        refresh_changed([dataset.id], session=session)
    task = TagBuildTask(config, prefix="AOD")

    built = [task.run(RunContext(Session, time.monotonic() + 30)).items for _ in "12"]

    with Session() as session:
        counted = session.get(Dataset, dataset.id)
        record = get_tag(DATASET, session=session)
        assert built == [1, 0]
        assert counted.n_files == len(json.loads(record.schema_json)["files"]) == 2
        assert record.n_events == counted.total_events == sum(EVENTS_PER_FILE[:2])
        assert open_tag(record).count("1 < 2") == record.n_events


def test_a_dataset_without_a_tag_says_so(Session, dataset_factory):  # noqa: N803
    dataset_factory(DATASET)

    with Session() as session, pytest.raises(TagNotFound, match="has no TAG database"):
        get_tag(DATASET, session=session)
    with Session() as session, pytest.raises(DatasetNotFound):
        get_tag(DATASET + "_x", session=session)


# -- export and import ------------------------------------------------------------


def test_a_tag_exported_to_root_reads_back_the_same(tag, tmp_path):
    path = write_tag_root(tag, tmp_path / "tag.root")

    again = read_tag_root(path)

    assert again.files == tag.files and again.triggers == tag.triggers
    for name, values in tag.columns.items():
        np.testing.assert_array_equal(again.columns[name], values, err_msg=name)
    with uproot.open(path) as opened:
        assert opened["TAG"].num_entries == len(tag)
        assert opened["TAG"]["EventNumber"].typename == "uint64_t"


def test_a_root_file_without_a_tag_tree_is_refused(event_files):
    with pytest.raises(InvalidInput, match="has no TTree 'TAG'"):
        read_tag_root(event_files.files[0].path)


# -- collections ------------------------------------------------------------------


@pytest.fixture(scope="session")
def collection(tag):
    return tag.collection(tag.select("MET > 60 or nMuons >= 2"))


def assert_same(a, b):
    assert a.files == b.files
    for name in ("file_index", "entry", "run_number", "event_number", "lumi_block"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)


def test_a_collection_round_trips_through_root(collection, tmp_path):
    path = collection.write_root(tmp_path / "collection.root")

    assert_same(read_collection(path), collection)
    with uproot.open(path) as opened:
        assert opened["Collection"].num_entries == len(collection) > 0


def test_a_collection_round_trips_through_csv(collection):
    text = collection.to_csv()

    assert text.splitlines()[0] == "RunNumber,EventNumber,LumiBlock,GUID,LFN,Entry"
    assert len(text.splitlines()) == len(collection) + 1
    assert_same(read_collection(text.encode(), "selected.csv"), collection)


def test_a_collection_lists_the_entries_of_each_file(collection, tag):
    by_file = collection.entries_by_file()

    assert list(by_file) == [ref.lfn for ref in tag.files]
    assert sum(len(entries) for entries in by_file.values()) == len(collection)
    assert all(np.all(np.diff(entries) > 0) for entries in by_file.values())


def test_an_uploaded_collection_naming_files_by_guid_only_is_completed(collection, tag):
    lines = collection.to_csv().splitlines()
    header = "RunNumber,EventNumber,LumiBlock,GUID,Entry"
    rows = [",".join(line.split(",")[:4] + line.split(",")[5:]) for line in lines[1:]]
    uploaded = read_collection("\n".join([header, *rows]).encode(), "mine.csv")

    checked = check_collection(uploaded, tag, DATASET)

    assert checked.files == tag.files
    np.testing.assert_array_equal(checked.entry, collection.entry)


@pytest.mark.parametrize(
    ("content", "words"),
    [
        (
            "RunNumber,EventNumbr,LumiBlock,LFN,Entry\n1,2,3,f,4\n",
            "no column 'EventNumber' (not 'EventNumbr'?)",
        ),
        ("RunNumber,EventNumber,LumiBlock,Entry\n1,2,3,4\n", "'GUID or LFN'"),
        (
            "RunNumber,EventNumber,LumiBlock,LFN,Entry\n1,two,3,f,4\n",
            "line 2: EventNumber must be a whole number, not 'two'",
        ),
        (
            "RunNumber,EventNumber,LumiBlock,LFN,Entry\n1,2,3,f\n",
            "line 2: has 4 fields, the header 5",
        ),
        (
            "RunNumber,EventNumber,LumiBlock,LFN,Entry\n1,-2,3,f,4\n",
            "EventNumber -2 is out of range",
        ),
        (b"\xff\xfe\x00garbage", "neither a ROOT file nor UTF-8 CSV"),
        (b"root\x00\x00\x00\x00broken", "cannot be read as ROOT"),
    ],
)
def test_a_bad_upload_is_refused_with_what_is_wrong(content, words):
    data = content if isinstance(content, bytes) else content.encode()

    with pytest.raises(CollectionError) as caught:
        read_collection(data, "upload.csv")

    assert caught.value.status == 400
    assert words in str(caught.value)


def test_a_root_upload_with_a_float_branch_is_refused(tmp_path):
    path = tmp_path / "floats.root"
    with uproot.recreate(path) as out:
        out["Files"] = "g f"
        out.mktree(
            "Collection",
            {
                "RunNumber": np.int32,
                "EventNumber": np.float64,
                "LumiBlock": np.int32,
                "FileIndex": np.int32,
                "Entry": np.int64,
            },
        ).extend(
            {
                "RunNumber": np.ones(3, np.int32),
                "EventNumber": np.ones(3),
                "LumiBlock": np.ones(3, np.int32),
                "FileIndex": np.zeros(3, np.int32),
                "Entry": np.arange(3),
            }
        )

    with pytest.raises(CollectionError, match="'EventNumber' holds float64, not whole"):
        read_collection(path)


def test_a_root_upload_without_the_entry_branch_is_refused(tmp_path):
    path = tmp_path / "short.root"
    with uproot.recreate(path) as out:
        out["Files"] = "g f"
        out.mktree("Collection", {"RunNumber": np.int32}).extend(
            {"RunNumber": np.ones(3, np.int32)}
        )

    with pytest.raises(CollectionError, match="no branch 'EventNumber'"):
        read_collection(path)


def test_an_upload_naming_a_file_of_another_dataset_is_refused(collection, tag):
    text = collection.to_csv().replace(tag.files[1].guid, "0000-elsewhere")
    text = text.replace(tag.files[1].lfn, "AOD.other._000001.pool.root.1")
    uploaded = read_collection(text.encode(), "mine.csv")

    with pytest.raises(
        CollectionError, match=r"1 file\(s\) are not files of mc16.*AOD.other"
    ):
        check_collection(uploaded, tag, DATASET)


def test_an_upload_with_an_entry_beyond_its_file_is_refused(collection, tag):
    lines = collection.to_csv().splitlines()
    fields = lines[1].split(",")
    fields[5] = "999999"
    uploaded = read_collection("\n".join([lines[0], ",".join(fields)]).encode())

    with pytest.raises(CollectionError, match="entry 999999 of .* is not in the TAG"):
        check_collection(uploaded, tag, DATASET)


def test_an_upload_with_the_wrong_event_at_an_entry_is_refused(collection, tag):
    lines = collection.to_csv().splitlines()
    fields = lines[1].split(",")
    fields[1] = str(int(fields[1]) + 1)
    uploaded = read_collection("\n".join([lines[0], ",".join(fields)]).encode())

    with pytest.raises(CollectionError, match="holds another run or event number"):
        check_collection(uploaded, tag, DATASET)
