"""Tier-0 changing a dataset while hepcat reads it: the dataset is not
flagged DONE with what was read, but read again, and counted once.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import pytest
from sqlalchemy import func, insert, select, update

from catalog.models import Dataset
from ingest import schemas
from ingest.tier0 import Tier0Ingester
from ingest.world import build_world
from taskserver.runner import run_until_drained


@pytest.fixture
def raw():
    world = build_world(seed=11, files_per_dataset=3)
    return next(d for d in world.datasets if d.name.endswith(".daq.RAW"))


class Racing(Tier0Ingester):
    """A Tier-0 ingester during whose first read of a dataset's files
    Tier-0 changes the dataset (*change*, given a connection and its name).
    """

    def __init__(self, source: Any, change: Callable[[Any, str], None]) -> None:
        super().__init__(source)
        self.change: Callable[[Any, str], None] | None = change

    def _files(self, name: str) -> list[Mapping[str, Any]]:
        files = super()._files(name)
        if self.change is not None:
            with self.source.begin() as connection:
                self.change(connection, name)
            self.change = None
        return files


def fewer_events(connection: Any, name: str) -> None:
    """Tier-0 corrects a file's events, and the dataset's (same nfiles)."""
    file, dataset = schemas.t0_file, schemas.t0_dataset
    first = select(func.min(file.c.lfn)).where(file.c.dataset == name)
    events = file.c.events - 2200
    connection.execute(
        update(file).where(file.c.lfn == first.scalar_subquery()).values(events=events)
    )
    connection.execute(
        update(dataset)
        .where(dataset.c.name == name)
        .values(nevents=dataset.c.nevents - 2200, ami_flag="READY")
    )


def one_more_file(connection: Any, name: str) -> None:
    """Tier-0 adds a file to the dataset, and counts it."""
    file, dataset = schemas.t0_file, schemas.t0_dataset
    connection.execute(
        insert(file).values(
            dataset=name,
            lfn=f"{name}._9999.1",
            guid="99999999-2222-3333-4444-555555555555",
            fsize=100,
            checksum="ad:1",
            events=100,
            lumiblocknr="17",
        )
    )
    connection.execute(
        update(dataset)
        .where(dataset.c.name == name)
        .values(
            nfiles=dataset.c.nfiles + 1,
            nevents=dataset.c.nevents + 100,
            totalsize=dataset.c.totalsize + 100,
            ami_flag="READY",
        )
    )


def tier0_row(sources: Any, name: str) -> Any:
    table = schemas.t0_dataset
    with sources.tier0.engine.connect() as connection:
        return connection.execute(select(table).where(table.c.name == name)).one()


def stored(Session: Any, name: str) -> Dataset:  # noqa: N803
    with Session() as session:
        return session.scalar(select(Dataset).where(Dataset.name == name))


@pytest.mark.parametrize("change", [fewer_events, one_more_file])
def test_a_dataset_tier0_changes_while_it_is_read_is_read_again_and_counted_once(
    Session, sources, raw, change
):
    sources.tier0.add_dataset(raw)

    counts = run_until_drained(
        [Racing(sources.tier0.engine, change)], Session, max_seconds=60
    )

    row = tier0_row(sources, raw.name)
    dataset = stored(Session, raw.name)
    assert (counts["tier0"], counts.undrained) == (1, [])
    assert row.ami_flag == "DONE"
    assert (dataset.tier0_total_events, dataset.tier0_n_files) == (
        row.nevents,
        row.nfiles,
    )
    assert (dataset.total_events, dataset.n_files, dataset.tier0_state) == (
        row.nevents,
        row.nfiles,
        "DONE",
    )
