"""The Tier-0 ingester, driven by the READY → DONE semaphore.

Tier-0 raises ``ami_flag = 'READY'`` when a dataset and all its files are
written. hepcat reads the dataset and its files, commits them to the
catalogue, then sets ``ami_flag = 'DONE'`` — the only column it ever writes
in Tier-0. A crash between the two leaves the flag READY, so the dataset is
read again and the idempotent writes make that harmless.

A dataset can be raised to READY again after more files were added, perhaps
while hepcat is reading it. Setting DONE only where the flag is still READY
*and* ``nfiles`` is still the count hepcat read keeps such a dataset READY,
so the new files are read on the next run.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from sqlalchemy import Engine, func, select, update
from sqlalchemy.orm import Session

from catalog.datasets import upsert_datasets
from catalog.derived import refresh_changed
from catalog.errors import HepcatError
from catalog.models import Dataset
from catalog.models.datasets import SOURCE_TIER0
from catalog.nomenclature import name_columns
from catalog.operations import quarantine
from catalog.provenance import link_datasets, link_tier0
from ingest import schemas
from ingest.base import usable_rows
from ingest.filerows import source_file
from ingest.files import write_files
from ingest.values import Unusable, integer, text
from taskserver.base import RunContext, RunOutcome, Task

logger = logging.getLogger(__name__)

SOURCE = "tier0"
READY = "READY"
DONE = "DONE"


class Tier0Ingester(Task):
    """Reads the Tier-0 datasets flagged READY and marks them DONE."""

    name = "tier0"
    priority = 7
    interval = 2.0
    budget = 1.0

    def __init__(self, source: Engine, *, bite: int = 20) -> None:
        self.source = source
        self.bite = bite

    def run(self, context: RunContext) -> RunOutcome:
        items = 0
        while not context.should_stop():
            ready = self._ready()
            for row in ready:
                items += self._ingest(row, context)
                if context.should_stop():
                    break
            if len(ready) < self.bite:
                break
        return RunOutcome(items, self.backlog(), f"{items} datasets")

    def backlog(self) -> int:
        table = schemas.t0_dataset
        query = select(func.count()).select_from(table).where(table.c.ami_flag == READY)
        with self.source.connect() as connection:
            return int(connection.scalar(query) or 0)

    def _ready(self) -> list[Mapping[str, Any]]:
        table = schemas.t0_dataset
        query = (
            select(table)
            .where(table.c.ami_flag == READY)
            .order_by(table.c.created, table.c.name)
            .limit(self.bite)
        )
        with self.source.connect() as connection:
            return [dict(row._mapping) for row in connection.execute(query)]

    def _files(self, name: str) -> list[Mapping[str, Any]]:
        table = schemas.t0_file
        query = select(table).where(table.c.dataset == name).order_by(table.c.lfn)
        with self.source.connect() as connection:
            return [dict(row._mapping) for row in connection.execute(query)]

    def _ingest(self, row: Mapping[str, Any], context: RunContext) -> int:
        name = str(row["name"])
        files = self._files(name)
        with context.Session.begin() as session:
            try:
                write_dataset(row, files, session=session)
            except (Unusable, HepcatError) as err:
                quarantine(
                    SOURCE, name, _payload(row, files), str(err), session=session
                )
        self._mark_done(name, row.get("nfiles"))
        return 1

    def _mark_done(self, name: str, nfiles: Any) -> None:
        table = schemas.t0_dataset
        same_count = (
            table.c.nfiles.is_(None) if nfiles is None else table.c.nfiles == nfiles
        )
        statement = (
            update(table)
            .where(table.c.name == name, table.c.ami_flag == READY, same_count)
            .values(ami_flag=DONE)
        )
        with self.source.begin() as connection:
            connection.execute(statement)


def write_dataset(
    row: Mapping[str, Any], files: list[Mapping[str, Any]], *, session: Session
) -> None:
    """Write a Tier-0 dataset and its files into the catalogue.

    :raises Unusable: when the dataset row contradicts its own name.
    """
    columns = name_columns(text(row, "name") or "")
    run = integer(row, "runnumber", required=False)
    if run is not None and run != columns["run_number"]:
        raise Unusable(
            f"runnumber {run} differs from the name's {columns['run_number']}"
        )
    dataset_row = {**columns, "source": SOURCE_TIER0, "tier0_state": DONE}
    ids, written = upsert_datasets([dataset_row], session=session)
    dataset_id = ids[columns["name"]]
    good = usable_rows(
        files,
        lambda f: source_file(f, dataset=columns["name"], status="finished"),
        "lfn",
        SOURCE,
        session=session,
    )
    touched = write_files(good, ids, SOURCE, session=session).datasets
    if written:  # not a dataset READY again as the catalogue holds it
        touched.add(dataset_id)
    dataset = session.get(Dataset, dataset_id)
    gained = set()
    if dataset is not None:
        gained = link_datasets([dataset], session=session)
        gained |= link_tier0([dataset], session=session)
    refresh_changed(touched, gained, session=session)


def _payload(row: Mapping[str, Any], files: list[Mapping[str, Any]]) -> dict[str, Any]:
    return {"dataset": dict(row), "files": [dict(f) for f in files]}
