"""COMA changing a run: the catalogue's run takes the new values and a new
modified time, and a run COMA leaves as it was keeps its own.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from sqlalchemy import select, update

from catalog.models import Run
from ingest import schemas
from ingest.coma import ComaIngester
from ingest.world import build_world
from taskserver.runner import run_until_drained


@pytest.fixture
def world():
    return build_world(seed=11, files_per_dataset=3)


def runs(Session: Any) -> dict[int, tuple[int | None, dt.datetime]]:  # noqa: N803
    """Each run's number of lumi blocks and modified time, by number."""
    with Session() as session:
        query = select(Run.run_number, Run.n_lumi_blocks, Run.modified)
        return {
            number: (blocks, when) for number, blocks, when in session.execute(query)
        }


@pytest.mark.parametrize("blocks", [30, None], ids=["more", "null"])
def test_a_run_coma_changes_gets_a_new_modified_time(Session, sources, world, blocks):
    sources.coma.add_world(world)
    coma = ComaIngester(sources.coma.engine)
    run_until_drained([coma], Session, max_seconds=20)
    before = runs(Session)
    changed = world.runs[0].run_number
    table = schemas.coma_run
    with sources.coma.engine.begin() as connection:
        connection.execute(
            update(table).where(table.c.runnumber == changed).values(nlumiblocks=blocks)
        )

    counts = run_until_drained([coma], Session, max_seconds=20)

    after = runs(Session)
    assert counts["coma"] == 1
    assert after[changed][0] == blocks
    assert after[changed][1] > before[changed][1]
    del after[changed], before[changed]
    assert after == before
