"""The skim lifecycle on simulated event files: a TAG is built, a skim is
requested, :class:`skimengine.task.SkimTask` takes it to ``done`` and the
output is a registered dataset; cancel, failure, retry, and the checks of a
request.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import awkward as ak
import pytest
import uproot
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session as OrmSession
from sqlalchemy.orm import sessionmaker

import migrations
from catalog.config import Config, load_config
from catalog.consistency import check_derived
from catalog.db import create_catalog_engine, session_factory
from catalog.errors import InvalidInput, PermissionDenied
from catalog.models import Dataset, File, ProvenanceEdge, Skim, TagDatabase
from catalog.users import add_user, get_user
from ingest.eventfiles import write_dataset_files
from ingest.seed import seed_catalog
from ingest.world import World, build_world
from skimengine.collection import CollectionError
from skimengine.filestore import FileStore
from skimengine.selection import SelectionError
from skimengine.skims import (
    FINISHED_STATES,
    SkimNotFound,
    cancel_skim,
    collection_path,
    get_skim,
    list_skims,
    request_skim,
    retry_skim,
    run_skim,
    skim_progress,
)
from skimengine.tags import (
    TagNotFound,
    build_tag,
    dataset_event_files,
    get_tag,
    open_tag,
    register_tag,
)
from skimengine.task import SkimTask, TagBuildTask
from taskserver.base import RunContext

DATASET = (
    "mc16_13TeV.361107.PowhegPythia8EvtGen_AZNLOCTEQ6L1_Zmumu.deriv.DAOD_PHYS."
    "e3601_s3126_r9364_p4164"
)
DIMUON = "nMuons >= 2 && mu_pt1 > 30"
#: Bytes per output file: several output files from the four source files.
SMALL_FILES = 60_000


@dataclass
class SkimWorld:
    """A catalogue seeded with the simulated world, the event files of
    :data:`DATASET` on disk, its TAG registered, and three users.
    """

    Session: sessionmaker[OrmSession]
    config: Config
    world: World

    def user(self, login: str) -> Any:
        with self.Session() as session:
            return get_user(login, session=session)

    def request(self, selection: str | None = DIMUON, **options: Any) -> int:
        options.setdefault("name", "dimuon")
        options.setdefault("run", True)
        with self.Session.begin() as session:
            owner = get_user(options.pop("login", "jdoe"), session=session)
            skim = request_skim(
                DATASET, selection, options.pop("name"), owner=owner, session=session,
                **options,
            )  # fmt: skip
            return skim.id

    def skim(self, skim_id: int) -> Skim:
        with self.Session() as session:
            skim = get_skim(skim_id, session=session)
            skim.parent, skim.output  # noqa: B018 (loaded while the session is open)
            return skim

    def drive(
        self, task: SkimTask, skim_id: int, until: tuple[str, ...] = FINISHED_STATES
    ) -> Skim:
        """Run *task* as the task server would until the skim is in *until*."""
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            task.run(RunContext(self.Session, time.monotonic() + task.budget))
            skim = self.skim(skim_id)
            if skim.state in until:
                return skim
            time.sleep(0.05)
        raise AssertionError(f"skim {skim_id} is still {skim.state}")


def make_world(engine: Engine, directory: Path) -> SkimWorld:
    world = build_world(files_per_dataset=4)
    Session = session_factory(engine)
    config = load_config(env={}, data_dir=str(directory))
    spec = next(d for d in world.datasets if d.name == DATASET)
    write_dataset_files(spec, config.storage_path)
    with Session.begin() as session:
        seed_catalog(world, session=session)
        files = dataset_event_files(
            DATASET, FileStore.from_config(config), session=session
        )
        register_tag(
            DATASET, build_tag(files), data_dir=config.data_path, session=session
        )
        add_user("jdoe", roles=["physicist"], session=session)
        add_user("mona", roles=["physicist"], session=session)
        add_user("rita", roles=["reader"], session=session)
        add_user("boss", roles=["admin"], session=session)
    return SkimWorld(Session, config, world)


@pytest.fixture
def sqlite_world(tmp_path: Path) -> Any:
    """On SQLite only, for the tests of timing and files."""
    engine = create_catalog_engine(f"sqlite:///{tmp_path / 'catalog.sqlite'}")
    migrations.upgrade(engine)
    yield make_world(engine, tmp_path / "data")
    engine.dispose()


@pytest.fixture
def task(request: pytest.FixtureRequest) -> Any:
    made: list[SkimTask] = []

    def make(world: SkimWorld, **options: Any) -> SkimTask:
        made.append(SkimTask(world.config, **options))
        return made[-1]

    yield make
    for one in made:
        one.close()


# -- what an independent computation selects -------------------------------------


def source_paths(world: SkimWorld) -> list[Path]:
    with world.Session() as session:
        store = FileStore.from_config(world.config)
        return [f.path for f in dataset_event_files(DATASET, store, session=session)]


def dimuon_events(paths: list[Path]) -> set[tuple[int, int]]:
    """(run, event) of the events with two muons or more, the leading one
    above 30 GeV, computed with numpy from the event files.
    """
    selected = set()
    for path in paths:
        with uproot.open(path) as opened:
            arrays = opened["CollectionTree"].arrays(
                ["RunNumber", "EventNumber", "mu_pt"]
            )
        n_muons = ak.to_numpy(ak.num(arrays["mu_pt"], axis=1))
        leading = ak.to_numpy(ak.fill_none(ak.max(arrays["mu_pt"], axis=1), 0.0))
        keep = (n_muons >= 2) & (leading > 30)
        runs = ak.to_numpy(arrays["RunNumber"])[keep]
        events = ak.to_numpy(arrays["EventNumber"])[keep]
        selected |= set(zip(runs.tolist(), events.tolist(), strict=True))
    return selected


def output_events(paths: list[Path]) -> list[tuple[int, int]]:
    found = []
    for path in paths:
        with uproot.open(path) as opened:
            arrays = opened["CollectionTree"].arrays(
                ["RunNumber", "EventNumber"], library="np"
            )
        runs, events = arrays["RunNumber"].tolist(), arrays["EventNumber"].tolist()
        pairs = zip(runs, events, strict=True)
        found += list(pairs)
    return found


def root_entries(paths: list[Path]) -> list[int]:
    """The entries of each file's CollectionTree, as ROOT itself reads them."""
    printed = root_prints("f.Get('CollectionTree').GetEntries()", paths)
    return [int(line) for line in printed]


def root_prints(expression: str, paths: list[Path]) -> list[str]:
    """What ROOT itself prints of *expression* for each file (open as ``f``),
    one line each, in a process of its own.
    """
    script = (
        "import sys, ROOT\n"
        "for path in sys.argv[1:]:\n"
        "    f = ROOT.TFile.Open(path)\n"
        "    assert f and not f.IsZombie(), path\n"
        f"    print({expression})\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, *map(str, paths)],
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    return done.stdout.split()


def output_files(skim: Skim) -> list[Path]:
    return sorted(Path(skim.output_dir or "").glob("*.root"))


# -- end to end ------------------------------------------------------------------


def test_a_skim_runs_to_a_registered_dataset_of_exactly_the_selected_events(
    skim_world: SkimWorld, task: Any
) -> None:
    skim_id = skim_world.request(target_size=SMALL_FILES)

    skim = skim_world.drive(task(skim_world), skim_id)

    assert (skim.state, skim.error, skim_progress(skim)) == ("done", None, 100.0)
    expected = dimuon_events(source_paths(skim_world))
    written = output_events(output_files(skim))
    assert len(written) == len(set(written)) == skim.n_selected
    assert set(written) == expected
    assert skim.n_events_in == source_events(source_paths(skim_world))
    with skim_world.Session() as session:
        output = session.get(Dataset, skim.output_id)
        files = session.scalars(select(File).where(File.dataset_id == output.id)).all()
        edge = session.scalar(
            select(ProvenanceEdge).where(ProvenanceEdge.child_id == output.id)
        )
        assert output.name == (
            "user.jdoe.mc16_13TeV.361107.PowhegPythia8EvtGen_AZNLOCTEQ6L1_Zmumu."
            "DAOD_PHYS.e3601_s3126_r9364_p4164.dimuon"
        )
        assert (output.scope, output.source) == ("user.jdoe", "skim")
        assert DIMUON in (output.physics_comment or "")
        parent = session.get(Dataset, skim.parent_id)
        described = ("data_type", "version", "dataset_number", "physics_short")
        assert [getattr(output, c) for c in described] == [
            "DAOD_PHYS", "e3601_s3126_r9364_p4164", 361107,
            "PowhegPythia8EvtGen_AZNLOCTEQ6L1_Zmumu",
        ]  # fmt: skip
        assert output.cross_section == parent.cross_section is not None
        assert check_derived(session=session) == []  # derive --check agrees
        assert (edge.parent_id, edge.kind) == (skim.parent_id, "skim")
        assert output.n_files == len(files) == skim.n_units > 1
        assert output.total_events == len(expected)
    with skim_world.Session() as session:  # and finds an output's column gone wrong
        output = session.get(Dataset, skim.output_id)
        output.version = "e3601"
        session.flush()
        found = [(d.dataset, d.field, d.stored) for d in check_derived(session=session)]
        assert found == [(output.name, "version", "e3601")]
        session.rollback()
    by_name = {path.name: path for path in output_files(skim)}
    assert sorted(by_name) == sorted(f.lfn for f in files)
    for file in files:
        data = by_name[file.lfn].read_bytes()
        assert file.size == len(data)
        assert file.checksum == f"ad:{zlib.adler32(data):08x}"
    store = FileStore.from_config(skim_world.config)
    assert all(store.path(f.lfn, scope="user.jdoe").is_file() for f in files)


def source_events(paths: list[Path]) -> int:
    total = 0
    for path in paths:
        with uproot.open(path) as opened:
            total += opened["CollectionTree"].num_entries
    return total


def test_root_reads_every_output_file(sqlite_world: SkimWorld, task: Any) -> None:
    skim_id = sqlite_world.request(
        target_size=SMALL_FILES, branches=["mu_pt", "MET"], compression="lz4:4"
    )

    skim = sqlite_world.drive(task(sqlite_world), skim_id)

    paths = output_files(skim)
    assert skim.state == "done"
    assert root_entries(paths) == [len(output_events([p])) for p in paths]
    with uproot.open(paths[0]) as opened:
        branches = set(opened["CollectionTree"].keys())
    assert branches == {
        "RunNumber", "EventNumber", "LumiBlock", "MET", "nMuons", "mu_pt",
    }  # fmt: skip


def test_the_collection_is_kept_and_an_uploaded_one_is_skimmed_the_same(
    sqlite_world: SkimWorld, task: Any
) -> None:
    first = sqlite_world.drive(task(sqlite_world), sqlite_world.request())
    with sqlite_world.Session() as session:
        tag = open_tag(get_tag(DATASET, session=session))
    chosen = tag.collection(tag.select(DIMUON)[::3])
    upload = chosen.to_csv().encode()

    second_id = sqlite_world.request(
        None, name="mine", collection=upload, collection_name="mine.csv"
    )
    second = sqlite_world.drive(task(sqlite_world), second_id)

    assert collection_path(first).is_file()
    assert first.n_selected == len(tag.select(DIMUON))
    assert second.state == "done" and second.n_selected == len(chosen)
    written = output_events(output_files(second))
    assert written == list(
        zip(chosen.run_number.tolist(), chosen.event_number.tolist(), strict=True)
    )
    assert "mine.csv" in (second.output.physics_comment or "")


# -- cancel, failure, retry --------------------------------------------------------


def test_cancel_during_extraction_stops_the_extraction(
    sqlite_world: SkimWorld, task: Any
) -> None:
    runner = task(sqlite_world)
    skim_id = sqlite_world.request(target_size=1)  # one event a file: a long run
    sqlite_world.drive(runner, skim_id, until=("extracting",))
    while (sqlite_world.skim(skim_id).units_done or 0) < 3:
        runner.run(RunContext(sqlite_world.Session, time.monotonic() + 1))
        time.sleep(0.05)

    with sqlite_world.Session.begin() as session:
        cancel_skim(skim_id, by=get_user("jdoe", session=session), session=session)
    stopped = runner.wait(skim_id, timeout=30)

    skim = sqlite_world.skim(skim_id)
    # Cancel takes effect: the extraction ends before its last output file
    # (the watcher polls 5 times a second; a timed bound would flake).
    assert stopped
    assert skim.state == "cancelled" and skim.output_id is None
    assert len(output_files(skim)) < skim.n_units
    with pytest.raises(InvalidInput, match="only a failed skim can be retried"):
        with sqlite_world.Session.begin() as session:
            retry_skim(skim_id, by=get_user("jdoe", session=session), session=session)


def test_a_failed_file_fails_the_skim_and_a_retry_redoes_only_it(
    sqlite_world: SkimWorld, task: Any
) -> None:
    runner = task(sqlite_world)
    skim_id = sqlite_world.request(target_size=SMALL_FILES)
    sqlite_world.drive(runner, skim_id, until=("extracting",))  # planned
    broken = source_paths(sqlite_world)[1]
    kept = broken.with_name("kept")
    shutil.copyfile(broken, kept)
    broken.write_bytes(b"not a ROOT file" * 1000)

    failed = sqlite_world.drive(runner, skim_id)
    written = {p.name: p.stat() for p in output_files(failed)}
    shutil.copyfile(kept, broken)
    with sqlite_world.Session.begin() as session:
        retry_skim(skim_id, by=get_user("jdoe", session=session), session=session)
    done = sqlite_world.drive(runner, skim_id)

    bad = json.loads(failed.failed_units or "{}")
    assert failed.state == "failed" and bad
    assert f"{len(bad)} of {failed.n_units} output files failed" in (failed.error or "")
    assert 0 < len(written) == failed.n_units - len(bad)
    assert done.state == "done" and len(output_files(done)) == done.n_units
    for path in output_files(done):
        if path.name in written:  # untouched by the retry
            after = path.stat()
            assert (after.st_ino, after.st_mtime_ns) == (
                written[path.name].st_ino,
                written[path.name].st_mtime_ns,
            )
    assert set(output_events(output_files(done))) == dimuon_events(
        source_paths(sqlite_world)
    )


def test_a_selection_that_keeps_nothing_fails_with_a_clear_error(
    sqlite_world: SkimWorld, task: Any
) -> None:
    skim = sqlite_world.drive(task(sqlite_world), sqlite_world.request("MET < 0"))

    assert skim.state == "failed"
    assert skim.error == (
        "InvalidInput: no event passes the selection: nothing to extract"
    )


# -- requests ------------------------------------------------------------------------


def test_a_bad_expression_is_refused_with_where_and_what(skim_world: SkimWorld) -> None:
    with pytest.raises(SelectionError) as raised:
        skim_world.request("nJets >= 2 && jetpt1 > 20")

    assert (
        str(raised.value)
        .splitlines()[0]
        .startswith("column 15: unknown attribute 'jetpt1'; did you mean 'jet_pt1'")
    )
    with skim_world.Session() as session:
        assert list_skims(session=session).total == 0


@pytest.mark.parametrize(
    ("upload", "message"),
    [
        (b"\x00\xff garbage", "neither a ROOT file nor UTF-8 CSV"),
        (b"RunNumber,EventNumbr,LumiBlock,LFN,Entry\n", "(not 'EventNumbr'?)"),
        (
            b"RunNumber,EventNumber,LumiBlock,LFN,Entry\n1,2,3,other.root,0\n",
            "1 file(s) are not files of " + DATASET,
        ),
    ],
)
def test_a_bad_upload_is_refused_with_a_clear_error(
    sqlite_world: SkimWorld, upload: bytes, message: str
) -> None:
    with pytest.raises(CollectionError) as raised:
        sqlite_world.request(None, collection=upload, collection_name="mine.csv")

    assert message in str(raised.value)


def test_what_a_request_must_be(skim_world: SkimWorld) -> None:
    with pytest.raises(PermissionDenied, match="requesting a skim needs the role"):
        skim_world.request(login="rita")
    with pytest.raises(InvalidInput, match="not a usable skim name"):
        skim_world.request(name="two words")
    with pytest.raises(InvalidInput, match="give a selection or a collection"):
        skim_world.request(DIMUON, collection=b"x")
    with pytest.raises(InvalidInput, match="unknown compression 'gzip'"):
        skim_world.request(compression="gzip")
    with pytest.raises(TagNotFound):
        with skim_world.Session.begin() as session:
            owner = get_user("jdoe", session=session)
            other = next(d.name for d in skim_world.world.datasets if d.name != DATASET)
            request_skim(other, DIMUON, "x", owner=owner, session=session)
    first = skim_world.request()
    with pytest.raises(InvalidInput, match=f"skim {first} of .* is already called"):
        skim_world.request()


def test_who_may_cancel_and_what_a_listing_shows(skim_world: SkimWorld) -> None:
    mine = skim_world.request()
    theirs = skim_world.request(login="mona", name="theirs")

    with skim_world.Session.begin() as session:
        mona = get_user("mona", session=session)
        with pytest.raises(PermissionDenied, match="cancelling a skim of another"):
            cancel_skim(mine, by=mona, session=session)
        cancel_skim(theirs, by=get_user("boss", session=session), session=session)
    with skim_world.Session() as session:
        listed = list_skims(session=session, owner="jdoe")
        cancelled = list_skims(session=session, state="cancelled")
        everything = list_skims(session=session)
        with pytest.raises(SkimNotFound, match="no skim 999"):
            get_skim(999, session=session)
        with pytest.raises(InvalidInput, match="no skim state 'finished'"):
            list_skims(session=session, state="finished")
    assert [s.id for s in listed.rows] == [mine]
    assert [s.id for s in cancelled.rows] == [theirs]
    assert [s.id for s in everything.rows] == [theirs, mine]
    with skim_world.Session.begin() as session:
        with pytest.raises(InvalidInput, match="only a skim in progress"):
            cancel_skim(theirs, by=get_user("mona", session=session), session=session)


def test_a_defined_skim_waits_until_its_run_is_requested(
    sqlite_world: SkimWorld, task: Any
) -> None:
    runner = task(sqlite_world)
    skim_id = sqlite_world.request(run=False)
    runner.run(RunContext(sqlite_world.Session, time.monotonic() + runner.budget))
    waiting = sqlite_world.skim(skim_id)

    with sqlite_world.Session.begin() as session:
        with pytest.raises(PermissionDenied, match="running a skim of another"):
            run_skim(skim_id, by=get_user("mona", session=session), session=session)
        run_skim(skim_id, by=get_user("jdoe", session=session), session=session)
    done = sqlite_world.drive(runner, skim_id)

    assert waiting.state == "defined" and waiting.run_requested is None
    assert done.state == "done" and done.run_requested is not None
    with sqlite_world.Session.begin() as session:
        with pytest.raises(InvalidInput, match=f"skim {skim_id} is done: it cannot"):
            run_skim(skim_id, by=get_user("jdoe", session=session), session=session)


def test_the_tag_task_leaves_a_catalogue_without_event_files_alone(
    sqlite_world: SkimWorld,
) -> None:
    # Only DATASET has event files (and its TAG); the other derivations
    # of the world have none anywhere.
    tags = TagBuildTask(sqlite_world.config)

    notes = [
        tags.run(RunContext(sqlite_world.Session, time.monotonic() + 5)).note
        for _ in range(3)
    ]

    with sqlite_world.Session() as session:
        assert session.scalar(select(func.count()).select_from(TagDatabase)) == 1
    waiting = int(notes[0].split(", ")[1].split()[0])
    assert waiting > 0 and notes[:2] == [f"0 TAGs built, {waiting} wait"] * 2
    # Missed twice in a row, they are not looked for again at once.
    assert notes[2] == "0 TAGs built, 0 wait"


def test_a_skim_output_gets_its_tag_and_is_skimmed_in_turn(
    sqlite_world: SkimWorld, task: Any
) -> None:
    first = sqlite_world.drive(task(sqlite_world), sqlite_world.request())
    tags = TagBuildTask(sqlite_world.config)
    note = tags.run(RunContext(sqlite_world.Session, time.monotonic() + 30)).note
    with sqlite_world.Session.begin() as session:
        output = session.get(Dataset, first.output_id)
        tag = get_tag(output.name, session=session)
        assert (tag.status, tag.n_events) == ("ready", first.n_selected)
        again = request_skim(
            output.name, "nMuons >= 2 && mu_pt1 > 45", "hard",
            owner=get_user("jdoe", session=session), session=session, run=True,
        )  # fmt: skip
        second_id = again.id

    second = sqlite_world.drive(task(sqlite_world), second_id)

    assert note.startswith("1 TAGs built")
    assert second.state == "done", second.error
    hard = {
        (run, event)
        for path in output_files(first)
        for run, event in _hard_dimuons(path)
    }
    written = output_events(output_files(second))
    assert len(written) == second.n_selected and set(written) == hard
    with sqlite_world.Session() as session:
        edge = session.scalar(
            select(ProvenanceEdge).where(ProvenanceEdge.child_id == second.output_id)
        )
        assert edge.parent_id == first.output_id


def _hard_dimuons(path: Path) -> list[tuple[int, int]]:
    """(run, event) of the events of *path* with two muons or more, the
    leading one above 45 GeV, computed with numpy.
    """
    with uproot.open(path) as opened:
        arrays = opened["CollectionTree"].arrays(["RunNumber", "EventNumber", "mu_pt"])
    n_muons = ak.to_numpy(ak.num(arrays["mu_pt"], axis=1))
    leading = ak.to_numpy(ak.fill_none(ak.max(arrays["mu_pt"], axis=1), 0.0))
    keep = (n_muons >= 2) & (leading > 45)
    runs = ak.to_numpy(arrays["RunNumber"])[keep].tolist()
    events = ak.to_numpy(arrays["EventNumber"])[keep].tolist()
    return list(zip(runs, events, strict=True))


# -- the real pyAMI client ---------------------------------------------------------


def test_the_real_pyami_client_sees_the_output_and_its_provenance(
    sqlite_world: SkimWorld, task: Any, tmp_path: Path
) -> None:
    import pyAMI.client
    import pyAMI.config
    import pyAMI_atlas.api as atlas
    from live import _wait_until_up, free_port

    skim = sqlite_world.drive(task(sqlite_world), sqlite_world.request())
    output = skim.output.name
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("HEPCAT_")}
    env["HEPCAT_DATABASE_URL"] = f"sqlite:///{tmp_path / 'catalog.sqlite'}"
    command = [
        sys.executable, "-m", "hepcat", "--data-dir", str(tmp_path / "data"),
        "serve", "--port", str(port),
    ]  # fmt: skip
    log = tmp_path / "serve.log"
    with log.open("wb") as out:
        server = subprocess.Popen(command, env=env, stdout=out, stderr=out)
    try:
        _wait_until_up(server, f"http://127.0.0.1:{port}/", log)
        with pytest.MonkeyPatch.context() as patch:
            patch.setitem(
                pyAMI.config.endpoint_descrs,
                "hepcat",
                {"prot": "http", "host": "127.0.0.1", "port": str(port)}
                | {"path": "/AMI/FrontEnd"},
            )
            patch.setattr(pyAMI.config, "config_path", str(tmp_path))
            patch.setattr(pyAMI.config, "config_file", str(tmp_path / "pyami.cfg"))
            client = pyAMI.client.Client("hepcat")
            info = atlas.get_dataset_info(client, output)[0]
            files = atlas.list_files(client, output)
            provenance = atlas.get_dataset_prov(client, output)
    finally:
        server.terminate()
        server.wait(timeout=30)

    assert info["logicalDatasetName"] == output
    assert info["totalEvents"] == str(skim.n_selected)
    assert DIMUON in info["physicsComment"]
    assert sorted(f["LFN"] for f in files) == sorted(p.name for p in output_files(skim))
    distances = {
        row["logicalDatasetName"]: int(row["distance"]) for row in provenance["node"]
    }
    assert distances[output] == 0 and distances[DATASET] == 1
