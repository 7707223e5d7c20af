"""The skim and tags tasks when something around them goes wrong: a dataset
whose TAG cannot be built among others that can, output files that failed,
and a file of the parent that a skim does not read missing from the file
store. On SQLite, PostgreSQL and MariaDB.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np
import pytest
import uproot
from sqlalchemy import Engine, select
from test_skim_faults import hepcat
from test_skims import (
    DATASET,
    DIMUON,
    SMALL_FILES,
    SkimWorld,
    output_events,
    output_files,
    source_paths,
)

from catalog.datasets import get_dataset
from catalog.derived import refresh_datasets
from catalog.models import File
from catalog.users import get_user
from ingest.eventfiles import write_dataset_files
from skimengine.skims import cancel_skim
from skimengine.tags import TagNotFound, get_tag, open_tag
from skimengine.task import SkimTask, TagBuildTask
from taskserver.base import RunContext, RunOutcome

#: Two derivations without event files in the skim world, in name order.
BROKEN = "data15_13TeV.00267073.physics_Main.deriv.DAOD_PHYS.r11969_p4072"
SOUND = "data15_13TeV.00267639.physics_Main.deriv.DAOD_PHYS.r11969_p4072"


def run_tags(world: SkimWorld, tags: TagBuildTask) -> RunOutcome:
    return tags.run(RunContext(world.Session, time.monotonic() + 60))


def tag_events(world: SkimWorld, dataset: str) -> int | None:
    """The events of the TAG of *dataset*, or None when it has no TAG."""
    with world.Session() as session:
        try:
            return get_tag(dataset, session=session).n_events
        except TagNotFound:
            return None


def write_files(world: SkimWorld, dataset: str) -> list[Path]:
    spec = next(d for d in world.world.datasets if d.name == dataset)
    written = write_dataset_files(spec, world.config.storage_path)
    return sorted(file.path for file in written)


# -- a dataset whose TAG cannot be built --------------------------------------------


def test_a_dataset_whose_tag_cannot_be_built_does_not_stop_the_others(
    skim_world: SkimWorld, caplog: pytest.LogCaptureFixture
) -> None:
    broken = write_files(skim_world, BROKEN)[0]
    with uproot.recreate(broken) as replaced:  # a ROOT file, but no events
        replaced["Other"] = "not an event file"
    sound = write_files(skim_world, SOUND)
    tags = TagBuildTask(skim_world.config)

    with caplog.at_level(logging.WARNING, logger="skimengine.task"):
        notes = [run_tags(skim_world, tags).note for _ in range(3)]

    assert tag_events(skim_world, SOUND) == sum(
        uproot.open(path)["CollectionTree"].num_entries for path in sound
    )
    assert tag_events(skim_world, BROKEN) is None
    # Noted, looked at again at the next run, then left alone for a while,
    # as a dataset whose files are missing is.
    assert [note.endswith(", 1 failed") for note in notes] == [True, True, False]
    assert notes[0].startswith("1 TAGs built, ")
    said = (
        f"The TAG of {BROKEN} cannot be built: InvalidInput: event file "
        f"{broken.name} has no TTree 'CollectionTree'"
    )
    assert caplog.messages.count(said) == 2


def test_a_skim_output_without_the_tag_branches_is_passed_by(
    skim_world: SkimWorld, skim_task: SkimTask, caplog: pytest.LogCaptureFixture
) -> None:
    # The output of "a_subset" sorts before that of "b_full".
    subset = skim_world.drive(
        skim_task, skim_world.request(name="a_subset", branches=["mu_pt"])
    )
    full = skim_world.drive(skim_task, skim_world.request(name="b_full"))
    tags = TagBuildTask(skim_world.config)

    with caplog.at_level(logging.WARNING, logger="skimengine.task"):
        notes = [run_tags(skim_world, tags).note for _ in range(3)]

    assert (subset.state, full.state) == ("done", "done")
    assert tag_events(skim_world, full.output.name) == full.n_selected
    assert tag_events(skim_world, subset.output.name) is None
    # Never tried: it is not a failure at any run, nor a dataset waiting.
    assert not any("failed" in note for note in notes)
    assert not any(subset.output.name in message for message in caplog.messages)


def test_a_file_replaced_by_another_rebuilds_the_tag(skim_world: SkimWorld) -> None:
    paths = write_files(skim_world, SOUND)
    entries = {p.name: uproot.open(p)["CollectionTree"].num_entries for p in paths}
    last = set_files(skim_world, SOUND, status={paths[-1].name: "failed"})
    tags = TagBuildTask(skim_world.config)
    run_tags(skim_world, tags)
    assert tag_events(skim_world, SOUND) == sum(entries.values()) - entries[last]

    # The first file is lost and the last one finishes: as many files as
    # before, other events.
    set_files(skim_world, SOUND, lost={paths[0].name}, status={last: "finished"})
    run_tags(skim_world, tags)

    assert (
        tag_events(skim_world, SOUND) == sum(entries.values()) - entries[paths[0].name]
    )
    with skim_world.Session() as session:
        listed = {ref.lfn for ref in open_tag(get_tag(SOUND, session=session)).files}
    assert listed == {path.name for path in paths[1:]}


def set_files(
    world: SkimWorld,
    dataset: str,
    *,
    status: dict[str, str] | None = None,
    lost: set[str] = frozenset(),  # type: ignore[assignment]
) -> str:
    """Give the files of *dataset* named in *status* that status, mark those
    in *lost* lost, and refresh its counts; return the last name changed.
    """
    status = status or {}
    with world.Session.begin() as session:
        owner = get_dataset(dataset, session=session)
        assert owner.source == "prodsys"  # a ProdSys file counts once finished
        files = session.scalars(select(File).where(File.dataset_id == owner.id))
        for file in files:
            file.status = status.get(file.lfn, file.status)
            file.lost = file.lost or file.lfn in lost
        refresh_datasets([owner.id], session=session)
    return [*status, *lost][-1]


# -- output files that failed ---------------------------------------------------------


def test_a_skim_whose_output_files_failed_shows_only_those_written(
    skim_world: SkimWorld, skim_task: SkimTask, catalog_engine: Engine
) -> None:
    skim_id = skim_world.request(target_size=SMALL_FILES)
    skim_world.drive(skim_task, skim_id, until=("extracting",))  # planned
    source_paths(skim_world)[-1].unlink()

    failed = skim_world.drive(skim_task, skim_id)
    shown = hepcat(
        catalog_engine, skim_world.config.data_path, "skim", "show", str(skim_id)
    )

    written = len(output_files(failed))
    assert failed.state == "failed" and 0 < written < failed.n_units
    assert f"files:     {written} of {failed.n_units}\n" in shown.stdout
    percent = 5 + 90 * written / failed.n_units
    assert f"progress:  {percent:.1f}%\n" in shown.stdout


# -- a missing file the skim does not read ---------------------------------------------


def events_of_one_file(
    world: SkimWorld, index: int
) -> tuple[str, set[tuple[int, int]]]:
    """A selection keeping exactly the events of the TAG's file *index*, and
    their (run, event).
    """
    with world.Session() as session:
        tag = open_tag(get_tag(DATASET, session=session))
    numbers = tag.columns["EventNumber"]
    mine = tag.columns["FileIndex"] == index
    low, high = int(numbers[mine].min()), int(numbers[mine].max())
    selection = f"EventNumber >= {low} && EventNumber <= {high}"
    assert np.array_equal((numbers >= low) & (numbers <= high), mine)
    runs = tag.columns["RunNumber"][mine].tolist()
    return selection, set(zip(runs, numbers[mine].tolist(), strict=True))


def test_a_missing_file_holding_none_of_the_selected_events_does_not_matter(
    skim_world: SkimWorld, skim_task: SkimTask
) -> None:
    selection, expected = events_of_one_file(skim_world, 1)
    source_paths(skim_world)[0].unlink()

    skim = skim_world.drive(skim_task, skim_world.request(selection))

    assert (skim.state, skim.error) == ("done", None)
    assert set(output_events(output_files(skim))) == expected


def test_a_missing_file_holding_selected_events_is_named(
    skim_world: SkimWorld, skim_task: SkimTask
) -> None:
    missing = source_paths(skim_world)[0]
    missing.unlink()

    skim = skim_world.drive(skim_task, skim_world.request(DIMUON))

    assert skim.state == "failed"
    assert (skim.error or "").startswith(
        f"EventFileNotFound: event file {missing.name!r} not found"
    )


# -- a cancel in the middle of an extraction -------------------------------------


def test_a_cancelled_extraction_counts_the_files_it_completed(
    skim_world: SkimWorld, skim_task: SkimTask
) -> None:
    skim_id = skim_world.request(target_size=1)  # one event a file: a long run
    skim_world.drive(skim_task, skim_id, until=("extracting",))
    while (skim_world.skim(skim_id).units_done or 0) < 3:
        skim_task.run(RunContext(skim_world.Session, time.monotonic() + 1))
        time.sleep(0.05)

    with skim_world.Session.begin() as session:
        cancel_skim(skim_id, by=get_user("jdoe", session=session), session=session)
    stopped = skim_task.wait(skim_id, timeout=60)

    skim = skim_world.skim(skim_id)
    written = output_files(skim)
    assert stopped and skim.state == "cancelled"
    assert 3 <= len(written) < (skim.n_units or 0)
    # What `hepcat skim show` prints as "files: N of M".
    assert skim.units_done == len(written)
    assert not list(Path(skim.output_dir or "").glob(".*.part"))
