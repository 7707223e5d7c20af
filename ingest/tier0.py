"""The Tier-0 ingester, driven by the READY → DONE semaphore.

Tier-0 raises ``ami_flag = 'READY'`` when a dataset and all its files are
written. hepcat reads the dataset and its files, commits them to the
catalogue, then sets ``ami_flag = 'DONE'`` — the only column it ever writes
in Tier-0. A crash between the two leaves the flag READY, so the dataset is
read again and the idempotent writes make that harmless.

A dataset can be raised to READY again after Tier-0 changed it (added
files, corrected a file's events), perhaps while hepcat is reading it.
Setting DONE only where the flag is still READY *and* Tier-0's counts
(``nfiles``, ``nevents``, ``totalsize``) are still those hepcat read keeps
such a dataset READY, and it is read again at once.

A dataset whose files, once written, fall short of Tier-0's counts (a file
row refused into quarantine, say: :mod:`catalog.tier0`) is not marked DONE
either: it is held READY, so that Tier-0 sees it is not done and hepcat
reads it again. Not at every run, which would read the same rows every few
seconds and keep the backlog from ever draining: a held dataset is read
again after :data:`HELD_RETRY` seconds, and at once when Tier-0 changes its
counts or an operator releases a Tier-0 record from quarantine (having
fixed the row in Tier-0). Once its files add up, it is marked DONE.

A dataset whose row cannot be understood (its ``runnumber`` contradicts
its name, say) is refused into quarantine and held READY the same way: not
marked DONE, which would tell Tier-0 the catalogue has it, and read again
after :data:`HELD_RETRY` seconds, at once when Tier-0 changes its row or an
operator releases a Tier-0 record from quarantine.

A Tier-0 record held in quarantine (a file row, or a dataset row) that is
read again and written without error -- Tier-0 corrected the row -- is
released, as an operator would release it, with a note saying so at the end
of its reason (:func:`catalog.operations.release_read`).

Tier-0 is the authority for the files of its datasets: a dataset read again
loses the catalogue's files of it that Tier-0 no longer lists
(:func:`catalog.tier0.drop_unlisted_files`).

A run counts as its items the datasets it catalogued (marked DONE); its note
says apart how many it read and held READY, and how many it refused into
quarantine.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

from sqlalchemy import ColumnElement, Engine, and_, func, select, update
from sqlalchemy.orm import Session

from catalog.datasets import one_source, owned_elsewhere, upsert_datasets
from catalog.db import chunked
from catalog.derived import refresh_changed
from catalog.errors import HepcatError
from catalog.models import Dataset
from catalog.models.datasets import SOURCE_TIER0
from catalog.nomenclature import name_columns
from catalog.operations import quarantine, quarantine_count
from catalog.provenance import link_datasets, link_tier0
from catalog.tier0 import DONE, READY, drop_unlisted_files, held_ready
from ingest import schemas
from ingest.base import RecordsRead
from ingest.filerows import GUID, LFN, source_file
from ingest.files import held_for_other_rows, write_files
from ingest.values import Unusable, guid, integer, text
from taskserver.base import RunContext, RunOutcome, Task

logger = logging.getLogger(__name__)

SOURCE = "tier0"
# Seconds before a dataset held READY is read again (see above).
HELD_RETRY = 300.0
# Names per NOT IN list sent to Tier-0: Oracle takes at most 1000.
NAMES_PER_LIST = 1000
# Tier-0's counts of a dataset, and the catalogue's columns for them.
COUNTS = (
    ("nfiles", "tier0_n_files"),
    ("nevents", "tier0_total_events"),
    ("totalsize", "tier0_total_size"),
)
# What reading a READY dataset came to (:meth:`Tier0Ingester._ingest`).
CATALOGUED = "catalogued"  # written, and marked DONE in Tier-0
HELD = "held"  # written, its files short of Tier-0's counts: left READY
CHANGED = "changed"  # written, but Tier-0 changed its counts meanwhile: left READY
REFUSED = "refused"  # its row refused into quarantine: left READY


@dataclass
class Read:
    """What one run did with the READY datasets it read."""

    catalogued: int = 0
    held: int = 0
    refused: int = 0
    drained: bool = False

    def note(self, waiting: int) -> str:
        """The run's note, *waiting* datasets being held READY in all."""
        plural = "" if self.catalogued == 1 else "s"
        parts = [f"{self.catalogued} dataset{plural} catalogued"]
        if self.held:
            parts.append(f"{self.held} held READY")
        if self.refused:
            parts.append(f"{self.refused} refused into quarantine")
        if waiting:
            parts.append(f"{waiting} waiting READY for a retry")
        return ", ".join(parts)


class Tier0Ingester(Task):
    """Reads the Tier-0 datasets flagged READY and marks them DONE."""

    name = "tier0"
    priority = 7
    interval = 2.0
    budget = 1.0

    def __init__(
        self, source: Engine, *, bite: int = 20, held_retry: float = HELD_RETRY
    ) -> None:
        self.source = source
        self.bite = bite
        self.held_retry = held_retry
        # When the held datasets were all last read again (monotonic time),
        # and how many Tier-0 records were released from quarantine then,
        # with those this ingester released itself since. Kept in memory: a
        # new process reads them all again once.
        self._retried: float | None = None
        self._released: int | None = None
        self._released_here = 0  # records the current run released
        # The datasets whose row was refused into quarantine, by name, with
        # the row as read: held READY until Tier-0 changes it (in memory, as
        # above: a new process reads them again once).
        self._refused: dict[str, dict[str, Any]] = {}

    def run(self, context: RunContext) -> RunOutcome:
        waiting, retry = self._waiting(context)
        self._released_here = 0
        read = self._read_ready(waiting, context)
        if retry is not None and read.drained:
            # Every held dataset was read again: the next retry waits.
            self._retried, self._released = retry
        if self._released is not None:
            # A record released on reading its corrected row is no news of an
            # operator's: it calls for no retry of the held datasets.
            self._released += self._released_here
        note = read.note(len(waiting))
        return RunOutcome(read.catalogued, self.backlog(waiting), note)

    def _read_ready(self, waiting: set[str], context: RunContext) -> Read:
        """Read the datasets READY but for those *waiting*, adding to them
        those held or refused; say what came of them, and whether none is
        left.
        """
        read = Read()
        while not context.should_stop():
            ready = self._ready(waiting)
            for row in ready:
                came_to = self._ingest(row, context)
                if came_to == CATALOGUED:
                    read.catalogued += 1
                elif came_to != CHANGED:  # a changed dataset is read again
                    waiting.add(str(row["name"]))
                    read.held += came_to == HELD
                    read.refused += came_to == REFUSED
                if context.should_stop():
                    break
            if len(ready) < self.bite:
                read.drained = True
                break
        return read

    def backlog(self, waiting: Collection[str] = ()) -> int:
        """The datasets READY in Tier-0, but for those *waiting*."""
        table = schemas.t0_dataset
        query = select(func.count()).select_from(table).where(_ready_but(waiting))
        with self.source.connect() as connection:
            return int(connection.scalar(query) or 0)

    def _waiting(
        self, context: RunContext
    ) -> tuple[set[str], tuple[float, int] | None]:
        """The datasets held READY that are not due to be read again: none
        every :attr:`held_retry` seconds and once an operator released a
        Tier-0 record (then also the retry's time and released count, to
        keep once they are all read); otherwise all but those whose counts
        Tier-0 changed, with the datasets refused whose row it left as it was.
        """
        with context.Session() as session:
            held = held_ready(session=session)
            released = quarantine_count(
                source=SOURCE_TIER0, released=True, session=session
            )
        now = time.monotonic()
        due = self._retried is None or now - self._retried >= self.held_retry
        if due or released != self._released:
            return set(), (now, released)
        return (set(held) - self._recounted(held)) | self._still_refused(), None

    def _recounted(self, held: Mapping[str, tuple[int | None, ...]]) -> set[str]:
        """The datasets among *held* whose counts Tier-0 changed since hepcat
        read them (more files were added, say).
        """
        table = schemas.t0_dataset
        counts = [table.c[key] for key, _ in COUNTS]
        changed: set[str] = set()
        with self.source.connect() as connection:
            for names in chunked(sorted(held), NAMES_PER_LIST):
                query = select(table.c.name, *counts).where(table.c.name.in_(names))
                rows = connection.execute(query)
                changed.update(name for name, *now in rows if tuple(now) != held[name])
        return changed

    def _still_refused(self) -> set[str]:
        """The datasets whose row was refused that Tier-0 has left as it
        was; those it changed (or removed) are forgotten, to be read again.
        """
        table = schemas.t0_dataset
        rows: dict[str, dict[str, Any]] = {}
        with self.source.connect() as connection:
            for names in chunked(sorted(self._refused), NAMES_PER_LIST):
                query = schemas.select_raw(table).where(table.c.name.in_(names))
                for found in connection.execute(query):
                    rows[found.name] = dict(found._mapping)
        for name, row in list(self._refused.items()):
            if rows.get(name) != row:
                del self._refused[name]
        return set(self._refused)

    def _ready(self, waiting: Collection[str]) -> list[Mapping[str, Any]]:
        table = schemas.t0_dataset
        query = (
            schemas.select_raw(table)
            .where(_ready_but(waiting))
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

    def _ingest(self, row: Mapping[str, Any], context: RunContext) -> str:
        """Write the dataset *row* and its files, and mark it DONE in Tier-0
        unless its row is refused into quarantine, its files fall short of
        Tier-0's counts, or Tier-0 changed its counts meanwhile; return which
        (:data:`CATALOGUED`, :data:`REFUSED`, :data:`HELD`, :data:`CHANGED`).
        """
        name = str(row["name"])
        files = self._files(name)
        refused = False
        with context.Session.begin() as session:
            try:
                state, released = write_dataset(row, files, session=session)
            except (Unusable, HepcatError) as err:
                # The dataset row itself is held in quarantine, and the
                # dataset READY: DONE would tell Tier-0 the catalogue has it.
                quarantine(
                    SOURCE, name, _payload(row, files), str(err), session=session
                )
                refused = True
        if refused:
            self._refused[name] = dict(row)
            return REFUSED
        self._refused.pop(name, None)
        self._released_here += released
        if state != DONE:
            return HELD
        return CATALOGUED if self._mark_done(row) else CHANGED

    def _mark_done(self, row: Mapping[str, Any]) -> bool:
        """Flag the dataset *row* DONE where Tier-0 still has it READY with
        the counts read; return whether it did.
        """
        table = schemas.t0_dataset
        same = [
            table.c[key].is_(None) if row.get(key) is None else table.c[key] == row[key]
            for key, _ in COUNTS
        ]
        statement = (
            update(table)
            .where(table.c.name == row["name"], table.c.ami_flag == READY, *same)
            .values(ami_flag=DONE)
        )
        with self.source.begin() as connection:
            return connection.execute(statement).rowcount > 0


class DatasetWritten(NamedTuple):
    """What :func:`write_dataset` did."""

    state: str | None  # the dataset's tier0State
    released: int  # records of it released from quarantine, read again


def write_dataset(
    row: Mapping[str, Any], files: list[Mapping[str, Any]], *, session: Session
) -> DatasetWritten:
    """Write a Tier-0 dataset and its files into the catalogue, and release
    the records of them held in quarantine that are now written (the dataset
    row by its name, a file row by its LFN and its GUID). Return its
    ``tier0State`` -- ``DONE`` when the files it holds add up to Tier-0's
    counts, ``READY`` when they fall short -- and how many were released.

    :raises Unusable: when the dataset row contradicts its own name, or a
        count is not a count.
    """
    dataset_row = _dataset_row(row)
    name = dataset_row["name"]
    owned = owned_elsewhere([name], SOURCE, session=session)
    if owned:
        raise Unusable(one_source(name, owned[name]))
    ids, written = upsert_datasets([dataset_row], session=session)
    dataset_id = ids[name]
    records = RecordsRead(SOURCE)
    good = records.usable(
        files,
        lambda f: source_file(f, dataset=name, status="finished"),
        "lfn",
        session=session,
    )
    files_written = write_files(good, ids, SOURCE, session=session)
    kept = files_written.kept
    # A row refused under the GUID of a row kept (two rows giving one GUID)
    # keeps that GUID's records held, and so does a record of another row
    # of that GUID (refused in another dataset, say): only reading that row
    # again without error releases it.
    records.refused |= files_written.refused
    records.refused |= held_for_other_rows(kept, SOURCE, session=session)
    records.wrote([name, *(f[LFN] for f in kept), *(f[GUID] for f in kept)])
    touched = files_written.datasets
    dropped = drop_unlisted_files(dataset_id, *_listed(files), session=session)
    if dropped:
        logger.info(
            "Tier-0 no longer lists %d file(s) of %s, removed: %s",
            len(dropped),
            name,
            ", ".join(dropped),
        )
        touched.add(dataset_id)
    if written:  # not a dataset READY again as the catalogue holds it
        touched.add(dataset_id)
    dataset = session.get(Dataset, dataset_id)
    gained = set()
    if dataset is not None:
        gained = link_datasets([dataset], session=session)
        gained |= link_tier0([dataset], session=session)
    refresh_changed(touched, gained, session=session)
    state = session.scalar(select(Dataset.tier0_state).where(Dataset.id == dataset_id))
    return DatasetWritten(state, records.release(session=session))


def _dataset_row(row: Mapping[str, Any]) -> dict[str, Any]:
    """The catalogue's row for the Tier-0 dataset *row*: the columns of its
    name, and Tier-0's counts.

    :raises Unusable: when the row contradicts its own name, or a count is
        not a count.
    """
    columns = name_columns(text(row, "name") or "")
    run = integer(row, "runnumber", required=False)
    if run is not None and run != columns["run_number"]:
        raise Unusable(
            f"runnumber {run} differs from the name's {columns['run_number']}"
        )
    counts = {column: integer(row, key, required=False) for key, column in COUNTS}
    return {**columns, **counts, "source": SOURCE_TIER0}


def _ready_but(waiting: Collection[str]) -> ColumnElement[bool]:
    """The Tier-0 datasets flagged READY, but for those among *waiting*."""
    table = schemas.t0_dataset
    lists = chunked(sorted(waiting), NAMES_PER_LIST)
    return and_(table.c.ami_flag == READY, *(table.c.name.not_in(n) for n in lists))


def _listed(files: list[Mapping[str, Any]]) -> tuple[set[str], set[str]]:
    """The LFNs and the GUIDs, read as for a file (``ingest.filerows``), of
    every file row Tier-0 gives, those that cannot be written too. A value
    that cannot be used is left out: the catalogue holds no file of it.
    """
    lfns: set[str] = set()
    guids: set[str] = set()
    for row in files:
        lfns.update(_usable(text, row, "lfn"))
        guids.update(_usable(guid, row, "guid"))
    return lfns, guids


def _usable(
    read: Callable[[Mapping[str, Any], str], str | None],
    row: Mapping[str, Any],
    column: str,
) -> list[str]:
    """The value of *column* as *read* gives it, in a list; none when it is
    missing or cannot be used.
    """
    try:
        value = read(row, column)
    except Unusable:
        return []
    return [value] if value else []


def _payload(row: Mapping[str, Any], files: list[Mapping[str, Any]]) -> dict[str, Any]:
    return {"dataset": dict(row), "files": [dict(f) for f in files]}
