"""Faults an audit found in skims, each shown the way a user meets it: a
retried skim whose name was taken meanwhile, outputs without the trigger
menu, ``hepcat skim run`` without ``--wait``, repeated events in an upload,
errors that said too much or the wrong thing, and surfaces that disagreed.
The tests that use a catalogue run on SQLite, PostgreSQL and MariaDB.
"""

from __future__ import annotations

import base64
import datetime as dt
import os
import re
import signal
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import uproot
from click.testing import CliRunner
from sqlalchemy import Engine, delete, select, update
from sqlalchemy import inspect as sa_inspect
from test_skim_pages import DATASET as SURFACE_DATASET
from test_skim_pages import PASSWORD, SurfaceWorld
from test_skims import (
    DATASET,
    DIMUON,
    SMALL_FILES,
    SkimWorld,
    dimuon_events,
    output_events,
    output_files,
    root_entries,
    root_prints,
    source_paths,
)

from catalog.datasets import get_dataset
from catalog.db import utcnow
from catalog.errors import InvalidInput
from catalog.models import Dataset, File, Skim, TagDatabase
from catalog.users import get_user
from hepcat.cli import main
from skimengine.collection import CollectionError, FileRef, read_collection
from skimengine.extract import OutputFile, output_dataset_name
from skimengine.filestore import EventFileDamaged, deterministic_path
from skimengine.register import publish_files
from skimengine.skims import (
    OutputCorrupt,
    OutputTaken,
    get_skim,
    output_note,
    request_skim,
    retry_skim,
    retryable,
)
from skimengine.tags import EventFile, build_tag, get_tag, open_tag
from skimengine.task import SkimTask

MENU = "HLT_mu26_ivarmedium"


def the_tag(world: SkimWorld) -> Any:
    with world.Session() as session:
        return open_tag(get_tag(DATASET, session=session))


def retry(world: SkimWorld, skim_id: int) -> None:
    with world.Session.begin() as session:
        retry_skim(skim_id, by=get_user("jdoe", session=session), session=session)


# -- 1. a name reused while a skim had failed --------------------------------------


@pytest.fixture
def reused(skim_world: SkimWorld, skim_task: SkimTask) -> tuple[Skim, Skim]:
    """Skim "zee" failed for want of an event file; once the file was back,
    another skim took the name "zee" and is done.
    """
    hidden = source_paths(skim_world)[0]
    hidden.rename(hidden.with_name("aside"))
    failed = skim_world.drive(skim_task, skim_world.request(name="zee"))
    hidden.with_name("aside").rename(hidden)
    done = skim_world.drive(skim_task, skim_world.request("MET > 30", name="zee"))
    assert (failed.state, done.state) == ("failed", "done")
    return failed, done


def test_a_retry_is_refused_once_another_skim_took_its_name(
    skim_world: SkimWorld, reused: tuple[Skim, Skim]
) -> None:
    failed, done = reused

    with pytest.raises(OutputTaken) as raised:
        retry(skim_world, failed.id)

    assert str(raised.value) == (
        f"skim {failed.id} cannot be retried: there is already a dataset "
        f"{done.output.name}; request it again under another name"
    )
    assert skim_world.skim(failed.id).state == "failed"


def test_a_skim_whose_name_was_taken_is_not_offered_a_retry(
    skim_world: SkimWorld, reused: tuple[Skim, Skim]
) -> None:
    failed, _ = reused

    with skim_world.Session() as session:
        assert retryable(get_skim(failed.id, session=session)) is False
        assert output_note(get_skim(failed.id, session=session)) == (
            "not registered: the skim failed, and a retry cannot mend it"
        )
        session.execute(delete(Skim).where(Skim.id != failed.id))  # not committed
        session.execute(delete(Dataset).where(Dataset.name.startswith("user.")))
        assert retryable(get_skim(failed.id, session=session)) is True


# -- 1b. output names: in the owner's scope, whatever the parent ---------------------

ZMUMU = DATASET.split(".deriv.")


def test_a_skim_of_another_users_skim_keeps_its_name_whole() -> None:
    theirs = f"user.other.{ZMUMU[0]}.DAOD_PHYS.e3601_s3126_r9364_p4164.dimuon"
    mine = theirs.replace("user.other.", "user.jdoe.")

    assert output_dataset_name(theirs, "jdoe", "x") == f"user.jdoe.{theirs}.x"
    assert output_dataset_name(mine, "jdoe", "x") == f"{mine}.x"


def test_skims_of_two_parents_with_one_output_name_are_refused_at_the_request(
    skim_world: SkimWorld,
) -> None:
    # The output name leaves out the production step: deriv and merge meet.
    twin_name = f"{ZMUMU[0]}.merge.{ZMUMU[1]}"
    with skim_world.Session.begin() as session:
        original = get_dataset(DATASET, session=session)
        twin = Dataset(name=twin_name, **_copied(original, "name"))
        session.add(twin)
        session.flush()
        tag = get_tag(DATASET, session=session)
        session.add(TagDatabase(dataset_id=twin.id, **_copied(tag, "dataset_id")))
    first = skim_world.request(name="x", run=False)

    with skim_world.Session.begin() as session, pytest.raises(OutputTaken) as raised:
        request_skim(
            twin_name, DIMUON, "x", owner=get_user("jdoe", session=session),
            session=session,
        )  # fmt: skip

    wanted = output_dataset_name(DATASET, "jdoe", "x")
    assert str(raised.value) == (
        f"skim {first} of {DATASET}, also called 'x', will register the same "
        f"dataset {wanted}; choose another name"
    )


def _copied(row: Any, *left_out: str) -> dict[str, Any]:
    """The column values of *row* but its id and those *left_out*."""
    columns = sa_inspect(type(row)).columns
    skipped = {"id", *left_out}
    return {c.key: getattr(row, c.key) for c in columns if c.key not in skipped}


def test_a_skim_never_registers_into_another_skims_dataset(
    skim_world: SkimWorld, skim_task: SkimTask, reused: tuple[Skim, Skim]
) -> None:
    failed, done = reused
    published = {p: p.read_bytes() for p in published_files(skim_world, done)}
    with skim_world.Session.begin() as session:
        # What a retry did before it looked at the name: run it again.
        session.execute(
            update(Skim).where(Skim.id == failed.id).values(state="selected")
        )

    again = skim_world.drive(skim_task, failed.id)

    assert again.state == "failed" and again.output_id is None
    assert again.error == (
        f"OutputTaken: skim {failed.id} cannot register its output: dataset "
        f"{done.output.name} is the output of skim {done.id}; request the skim "
        "again under another name"
    )
    with skim_world.Session() as session:
        rows = session.scalars(
            select(File).where(File.dataset_id == done.output_id)
        ).all()
        assert sum(row.events for row in rows) == done.n_selected
    assert {p: p.read_bytes() for p in published} == published


def published_files(world: SkimWorld, skim: Skim) -> list[Path]:
    scope = skim.output.scope
    storage = world.config.storage_path
    return [deterministic_path(storage, scope, p.name) for p in output_files(skim)]


def test_publishing_keeps_the_same_file_and_refuses_another(tmp_path: Path) -> None:
    written = tmp_path / "out.root"
    written.write_bytes(b"the events of this skim")
    output = OutputFile(1, "out.root", written, 3, 23, "ad:65c40811", ("in.root",))
    storage = tmp_path / "storage"
    target = deterministic_path(storage, "user.jdoe", "out.root")

    publish_files([output], "user.jdoe", storage)
    publish_files([output], "user.jdoe", storage)  # again: the same file
    target.unlink()
    target.write_bytes(b"the events of another one")
    with pytest.raises(OutputCorrupt) as raised:
        publish_files([output], "user.jdoe", storage)

    assert f"the file store already holds another out.root at {target}" in str(
        raised.value
    )
    assert target.read_bytes() == b"the events of another one"


def test_a_file_name_of_255_characters_is_published(tmp_path: Path) -> None:
    name = "user.jdoe." + "x" * (255 - len("user.jdoe.") - len("._000001.root"))
    name += "._000001.root"
    written = tmp_path / "out.root"
    written.write_bytes(b"the events of this skim")
    output = OutputFile(1, name, written, 3, 23, "ad:65c40811", ("in.root",))
    storage = tmp_path / "storage"

    publish_files([output], "user.jdoe", storage)

    target = deterministic_path(storage, "user.jdoe", name)
    assert len(name) == 255
    assert target.read_bytes() == b"the events of this skim"
    assert [p.name for p in target.parent.iterdir()] == [name]


# -- 2. metadata objects travel with the events ------------------------------------


def test_outputs_carry_the_trigger_menu_so_a_skim_of_a_skim_selects_triggers(
    skim_world: SkimWorld, skim_task: SkimTask
) -> None:
    skim = skim_world.drive(skim_task, skim_world.request(target_size=SMALL_FILES))

    paths = output_files(skim)
    with uproot.open(source_paths(skim_world)[0]) as source:
        menu = str(source["TriggerMenu"])
    refs = [EventFile(FileRef("", p.name), p) for p in paths]
    table = build_tag(refs)
    assert skim.state == "done" and len(paths) > 1
    for path in paths:
        with uproot.open(path) as opened:
            assert str(opened["TriggerMenu"]) == menu
    assert table.triggers == the_tag(skim_world).triggers
    assert 0 < table.count(f'trigger("{MENU}")') < len(table)
    assert root_menus(paths) == [menu] * len(paths)
    assert root_entries(paths) == [
        uproot.open(p)["CollectionTree"].num_entries for p in paths
    ]


def root_menus(paths: list[Path]) -> list[str]:
    """The TriggerMenu of each file, as ROOT itself reads it."""
    pytest.importorskip("ROOT")
    return root_prints("f.Get('TriggerMenu').GetString().Data()", paths)


# -- 3. hepcat skim run, one step at a time ----------------------------------------


def hepcat(engine: Engine, data_dir: Path, *args: str) -> Any:
    """Run ``hepcat ARGS...`` on the catalogue of *engine*."""
    env = {k: "" for k in os.environ if k.startswith("HEPCAT_")}
    env["HEPCAT_DATABASE_URL"] = engine.url.render_as_string(hide_password=False)
    return CliRunner().invoke(main, ["--data-dir", str(data_dir), *args], env=env)


def test_skim_run_without_wait_takes_each_step_to_its_end(
    skim_world: SkimWorld, catalog_engine: Engine
) -> None:
    data_dir = skim_world.config.data_path
    created = hepcat(
        catalog_engine, data_dir, "skim", "create", "--dataset", DATASET,
        "--select", DIMUON, "--name", "dimuon", "--user", "jdoe",
    )  # fmt: skip
    skim_id = created.stdout.strip()

    steps = [hepcat(catalog_engine, data_dir, "skim", "run", skim_id) for _ in range(3)]

    assert [step.exit_code for step in steps] == [0, 0, 0]
    assert [step.stdout for step in steps] == [
        f"skim {skim_id}: {state}\n" for state in ("selected", "extracting", "done")
    ]
    output_dir = skim_world.skim(int(skim_id)).output_dir
    assert not (Path(output_dir) / ".cancel").exists()


def test_skim_run_says_when_another_worker_holds_the_skim(
    skim_world: SkimWorld, catalog_engine: Engine
) -> None:
    skim_id = skim_world.request(run=False)
    worker = "elsewhere:4242:a1b2c3"
    with skim_world.Session.begin() as session:
        session.execute(
            update(Skim)
            .where(Skim.id == skim_id)
            .values(worker=worker, heartbeat=utcnow() - dt.timedelta(seconds=5))
        )

    data_dir = skim_world.config.data_path
    step = hepcat(catalog_engine, data_dir, "skim", "run", str(skim_id))

    assert step.exit_code == 0
    assert step.stdout == f"skim {skim_id}: defined\n"
    held = re.fullmatch(
        rf"skim {skim_id} is held by {worker}, whose last sign of life was (\d+) s "
        r"ago: it goes on there, or is taken over here (\d+) s from now if that "
        r"worker has died",
        step.stderr.splitlines()[-1],  # after the progress bar
    )
    assert held is not None, step.stderr
    lease = skim_world.config.taskserver_lease_seconds
    assert 5 <= int(held[1]) < 60 and int(held[1]) + int(held[2]) in (lease, lease + 1)


def test_skim_run_takes_sigterm_as_ctrl_c() -> None:
    from hepcat.cli.skims import _terminated_as_interrupted

    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(KeyboardInterrupt), _terminated_as_interrupted():
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(5)  # the signal comes first

    assert signal.getsignal(signal.SIGTERM) is before


# -- 4. an event listed twice --------------------------------------------------------


def test_an_upload_listing_an_event_twice_is_refused(skim_world: SkimWorld) -> None:
    tag = the_tag(skim_world)
    chosen = tag.collection(tag.select(DIMUON)[:5])
    lines = chosen.to_csv().splitlines()
    upload = "\n".join([*lines, lines[2]]).encode()

    with pytest.raises(CollectionError) as raised:
        skim_world.request(None, collection=upload, collection_name="mine.csv")

    run, event = chosen.run_number[1], chosen.event_number[1]
    lfn = chosen.files[chosen.file_index[1]].lfn
    assert str(raised.value) == (
        f"collection, event 6 of 6: run {run} event {event} (entry "
        f"{chosen.entry[1]} of {lfn}) is listed already as event 2; list each "
        "event once"
    )


# -- 5. errors that say what happened ---------------------------------------------


def test_a_source_file_gone_during_extraction_is_named(
    skim_world: SkimWorld, skim_task: SkimTask
) -> None:
    skim_id = skim_world.request()
    skim_world.drive(skim_task, skim_id, until=("extracting",))  # planned
    gone = source_paths(skim_world)[0]
    gone.unlink()

    failed = skim_world.drive(skim_task, skim_id)

    assert failed.state == "failed"
    said = (
        f"EventFileGone: event file {gone.name} is missing from the file store: "
        f"{gone} is gone since the skim was planned"
    )
    assert said in (failed.error or "")
    assert "Files may be specified as" not in (failed.error or "")
    assert len(failed.error or "") < 600


def spoil_basket(path: Path, branch: str = "EventNumber") -> None:
    """Spoil the ZSTD frame of the first basket of *branch* in the ROOT file
    at *path*: its magic number, after ROOT's 9-byte block header.
    """
    with uproot.open(path) as opened:
        seek = int(opened["CollectionTree"][branch].member("fBasketSeek")[0])
    with path.open("r+b") as handle:
        handle.seek(seek + 14)
        keylen = int.from_bytes(handle.read(2), "big")
        handle.seek(seek + keylen + 9)
        handle.write(b"\x00" * 4)


def test_a_damaged_event_file_fails_the_skim_naming_it_and_a_retry_mends_it(
    skim_world: SkimWorld, skim_task: SkimTask, tmp_path: Path
) -> None:
    skim_id = skim_world.request()
    skim_world.drive(skim_task, skim_id, until=("extracting",))  # planned
    damaged = source_paths(skim_world)[0]
    good = tmp_path / "good copy"
    good.write_bytes(damaged.read_bytes())
    spoil_basket(damaged)

    failed = skim_world.drive(skim_task, skim_id)

    assert failed.state == "failed"
    said = (
        f"EventFileDamaged: event file {damaged.name} cannot be read: the copy in "
        "the file store is damaged (ZstdError: "
    )
    assert said in (failed.error or "")
    assert f"replace {damaged} with a good copy, then try again" in failed.error
    good.replace(damaged)
    retry(skim_world, skim_id)
    done = skim_world.drive(skim_task, skim_id)
    assert done.state == "done"
    expected = dimuon_events(source_paths(skim_world))
    assert sorted(output_events(output_files(done))) == sorted(expected)


def test_a_truncated_event_file_fails_the_planning_naming_it(
    skim_world: SkimWorld, skim_task: SkimTask
) -> None:
    damaged = source_paths(skim_world)[0]
    damaged.write_bytes(damaged.read_bytes()[:5_000])

    failed = skim_world.drive(skim_task, skim_world.request())

    assert failed.state == "failed"
    assert (failed.error or "").startswith(
        f"EventFileDamaged: event file {damaged.name} cannot be read: the copy in "
        "the file store is damaged (OSError: expected Chunk of length "
    )


def test_building_a_tag_from_a_damaged_file_names_it(skim_world: SkimWorld) -> None:
    paths = source_paths(skim_world)
    damaged = paths[-1]
    damaged.write_bytes(b"\x00" * 64 + damaged.read_bytes()[64:])
    files = [EventFile(FileRef(f"G{n}", p.name), p) for n, p in enumerate(paths)]

    with pytest.raises(EventFileDamaged) as raised:
        build_tag(files)

    assert str(raised.value) == (
        f"event file {damaged.name} cannot be read: the copy in the file store is "
        "damaged (ValueError: not a ROOT file: first four bytes are "
        f"b'\\x00\\x00\\x00\\x00'); replace {damaged} with a good copy, then try "
        "again"
    )


def test_a_file_lost_since_the_tag_was_built_says_the_tag_is_out_of_date(
    skim_world: SkimWorld, skim_task: SkimTask
) -> None:
    lost = source_paths(skim_world)[0].name
    with skim_world.Session.begin() as session:
        session.execute(update(File).where(File.lfn == lost).values(lost=True))

    failed = skim_world.drive(skim_task, skim_world.request())

    assert failed.error == (
        f"TagOutdated: event file {lost} of {DATASET} was reported lost, but its "
        f"TAG still lists it: the TAG of {DATASET} is out of date; request the "
        "skim again once the TAG is built again from the dataset's files"
    )
    # A retry keeps the collection, which lists the file: it is not offered.
    with skim_world.Session() as session:
        assert retryable(get_skim(failed.id, session=session)) is False
    with pytest.raises(InvalidInput) as raised:
        retry(skim_world, failed.id)
    assert str(raised.value) == (
        f"skim {failed.id} failed because its event collection lists a file its "
        "dataset no longer has: a retry keeps the collection; request the skim "
        "again once the dataset's TAG is built again"
    )


def test_unknown_branches_are_refused_when_the_skim_is_requested(
    skim_world: SkimWorld,
) -> None:
    with pytest.raises(InvalidInput) as raised:
        skim_world.request(branches=["mu_pt", "MET_et"])

    assert str(raised.value) == (
        "no branch 'MET_et' (did you mean 'MET'?) in the source tree"
    )


def test_the_api_refuses_unknown_branches_at_once(surface: SurfaceWorld) -> None:
    answer = surface.app.test_client().post(
        "/api/v1/skims",
        json={
            "logicalDatasetName": SURFACE_DATASET,
            "name": "dimuon",
            "select": DIMUON,
            "branches": ["nope"],
        },
        headers=surface.bearer("phil"),
    )

    assert answer.status_code == 400
    assert answer.json["error"]["type"] == "InvalidInput"
    assert answer.json["error"]["message"].startswith("no branch 'nope'")


# -- 6. uploads --------------------------------------------------------------------


def collection_root(path: Path, **changes: Any) -> bytes:
    """A ROOT collection of three events, with *changes* to its branches
    (None: left out) and ``Files`` unless ``Files=None``.
    """
    files = changes.pop("Files", "GUID-1 file1.root")
    branches: dict[str, Any] = {
        "RunNumber": np.array([1, 1, 1], np.int32),
        "EventNumber": np.array([1, 2, 3], np.uint64),
        "LumiBlock": np.array([1, 1, 1], np.int32),
        "FileIndex": np.array([0, 0, 0], np.int32),
        "Entry": np.array([0, 1, 2], np.int64),
    }
    branches |= changes
    with uproot.recreate(path) as out:
        if files is not None:
            out["Files"] = files
        tree = out.mktree("Collection", {k: v.dtype for k, v in branches.items()})
        tree.extend(branches)
    return path.read_bytes()


def test_a_readable_root_upload_says_what_is_wrong_without_more(
    tmp_path: Path,
) -> None:
    floats = collection_root(tmp_path / "a.root", Entry=np.array([0.0, 1.0, 2.0]))
    no_files = collection_root(tmp_path / "b.root", Files=None)
    whole = collection_root(tmp_path / "c.root")

    errors = []
    for data in (floats, no_files, whole[:3000]):
        with pytest.raises(CollectionError) as raised:
            read_collection(data, "mine.root")
        errors.append(str(raised.value))

    assert errors[0] == "mine.root: branch 'Entry' holds float64, not whole numbers"
    assert errors[1] == (
        "mine.root: has no 'Files' object listing the files (GUID LFN lines)"
    )
    assert errors[2].startswith(
        "mine.root: cannot be read as ROOT: it is truncated or damaged ("
    )
    assert "BytesIO" not in errors[2] and "\n" not in errors[2]


def test_an_entry_beyond_any_file_is_out_of_range(
    skim_world: SkimWorld, tmp_path: Path
) -> None:
    far = 2**40 + 5
    tag = the_tag(skim_world)
    lines = tag.collection(tag.select(DIMUON)[:1]).to_csv().splitlines()
    upload = "\n".join([lines[0], re.sub(r",\d+$", f",{far}", lines[1])]).encode()
    as_root = collection_root(tmp_path / "far.root", Entry=np.array([0, far, 2]))

    with pytest.raises(CollectionError) as from_csv:
        skim_world.request(None, collection=upload, collection_name="mine.csv")
    with pytest.raises(CollectionError) as from_root:
        read_collection(as_root, "far.root")

    limit = f"is out of range (0 to {2**40 - 1})"
    assert str(from_csv.value) == f"mine.csv, line 2: Entry {far} {limit}"
    assert str(from_root.value) == f"far.root, entry 1: Entry {far} {limit}"


def test_guids_match_in_any_case_and_must_agree_with_the_lfn(
    skim_world: SkimWorld,
) -> None:
    tag = the_tag(skim_world)
    chosen = tag.collection(tag.select(DIMUON)[:3])
    text = chosen.to_csv()
    lower = re.sub(r"[0-9A-F-]{36}", lambda m: m.group(0).lower(), text)
    first, other = tag.files[0], tag.files[1]
    crossed = text.replace(f"{first.guid},{first.lfn}", f"{first.guid},{other.lfn}")

    accepted = skim_world.request(None, collection=lower.encode(), name="lower")
    with pytest.raises(CollectionError) as raised:
        skim_world.request(None, collection=crossed.encode(), name="crossed")

    assert accepted > 0
    assert str(raised.value) == (
        f"collection: GUID {first.guid} and LFN {other.lfn} name different "
        f"files: {first.guid} is the GUID of {first.lfn} in {DATASET}; give the "
        "GUID and LFN of one file"
    )


# -- 7. every surface says the same ------------------------------------------------


def test_listing_skims_of_an_unknown_dataset_is_a_404(surface: SurfaceWorld) -> None:
    """An unknown owner is no error (it would tell which logins exist:
    docs/access.md); an unknown dataset is."""
    answer = surface.app.test_client().get("/api/v1/skims?dataset=nope")

    assert answer.status_code == 404
    error = answer.json["error"]
    assert set(error) == {"type", "message", "status", "details"}
    assert (error["type"], error["status"]) == ("DatasetNotFound", 404)
    assert error["message"].startswith("no dataset named 'nope'")


def test_an_unknown_skim_hints_at_no_command_line(surface: SurfaceWorld) -> None:
    answer = surface.app.test_client().get("/api/v1/skims/9999")

    assert answer.status_code == 404
    assert answer.json["error"]["message"] == (
        "no skim 9999; the list of skims gives their numbers"
    )


def test_an_anonymous_ami_request_is_told_to_send_ami_credentials(
    surface: SurfaceWorld,
) -> None:
    command = (
        f'AMICreateSkim -logicalDatasetName="{SURFACE_DATASET}" -select="{DIMUON}" '
        '-name="dimuon"'
    )

    answer = surface.app.test_client().post("/AMI/FrontEnd", data={"Command": command})
    with_password = surface.app.test_client().post(
        "/AMI/FrontEnd",
        data={"Command": f'{command} -AMIUser="phil" -AMIPass="{PASSWORD}"'},
    )

    assert "send -AMIUser and -AMIPass with the command" in answer.text
    assert "Bearer" not in answer.text
    assert "<error" not in with_password.text


def test_an_upload_in_base64_with_a_repeated_event_is_refused_by_the_api(
    surface: SurfaceWorld,
) -> None:
    tag = surface.tag
    lines = tag.collection(tag.select(DIMUON)[:2]).to_csv().splitlines()
    upload = "\n".join([*lines, lines[1]]).encode()

    answer = surface.app.test_client().post(
        "/api/v1/skims",
        json={
            "logicalDatasetName": SURFACE_DATASET,
            "name": "twice",
            "collection": base64.b64encode(upload).decode(),
            "collectionName": "twice.csv",
        },
        headers=surface.bearer("phil"),
    )

    assert answer.status_code == 400
    assert "is listed already as event 1" in answer.json["error"]["message"]
