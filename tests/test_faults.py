"""Faults: an ingest process killed with SIGKILL at random moments, then
restarted, leaves the same catalogue as a clean run.
"""

from __future__ import annotations

import random

import crash
import pytest

TRIALS = 20


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    folder = tmp_path_factory.mktemp("crash")
    return folder, crash.prepare(folder)


@pytest.mark.parametrize("number", range(TRIALS))
def test_kill_9_then_restart_gives_the_clean_catalogue(prepared, number):
    folder, urls = prepared
    kill_after = random.Random(number).uniform(0.2, 3.0)

    assert crash.trial(folder, urls, number, kill_after), (
        f"killed after {kill_after:.2f} s"
    )


def test_a_prodsys_pass_that_fails_to_start_starts_again_next_run(
    Session, sources, ingest
):
    """The ProdSys tables are not there yet: the first run fails, and once
    they appear the next run ingests them (no pass left half started).
    """
    from sqlalchemy import func, select

    from catalog.models import Dataset
    from ingest.world import build_world
    from taskserver.errors import DrainFailed

    sources.prodsys.drop()
    with pytest.raises(DrainFailed) as failed:
        ingest()
    notes = " ".join(failed.value.__notes__)
    assert "prodsys" in notes
    assert "KeyError" not in notes

    world = build_world(seed=11, files_per_dataset=3)
    sources.prodsys.create().add_world(world)
    ingest()

    with Session() as session:
        query = select(func.count()).select_from(Dataset)
        count = session.scalar(query.where(Dataset.source == "prodsys"))
    assert count == sum(d.source == "prodsys" for d in world.datasets)
