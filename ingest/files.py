"""Writing files into the catalogue, in bulk and idempotently (by GUID).

Shared by the ProdSys and Tier-0 ingesters. A file whose LFN already belongs
to another GUID, or whose GUID already belongs to another file (another LFN,
or a dataset it may not move from: :func:`_claim_refused`), is a
contradiction between or within sources: it goes to quarantine rather than
overwrite the other file. Reading file rows from a source is
``ingest.filerows``.

Such a record is about the row it refused, though held under the GUID that
other rows give too: :func:`held_for_other_rows` says which GUIDs an
ingester may not release on writing a row of that GUID.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from operator import itemgetter
from typing import Any, NamedTuple

from sqlalchemy import delete, insert, or_, select
from sqlalchemy.orm import Session

from catalog.db import among, chunked, utcnow
from catalog.ddm import mark_lost_files
from catalog.lumiblocks import ranges
from catalog.models import Dataset, File, FileLumiRange, Quarantine
from catalog.models.datasets import SOURCE_TIER0
from catalog.operations import quarantine
from catalog.upsert import upsert_values
from ingest.filerows import BLOCKS, DATASET, GUID, LFN, AnyFileRow, FileRow, payload


def write_files(
    rows: Sequence[AnyFileRow],
    dataset_ids: Mapping[str, int],
    source: str,
    *,
    session: Session,
) -> FilesWritten:
    """Upsert *rows* (FileRows or their plain tuples; their datasets' ids in
    *dataset_ids*); return the ids of every dataset whose files changed,
    including datasets a file left, how many files were written, the rows
    the catalogue now holds as given, and the GUIDs of the rows refused
    into quarantine.
    """
    latest = list({row[GUID]: row for row in rows}.values())
    # Rows of one GUID in one bite are checked in order, each against those
    # before it: a second row claiming a GUID for another file is refused,
    # not taken as the last word.
    checked = rows if len(latest) < len(rows) else latest
    existing, held = _existing(checked, session=session)
    consistent, refused = _consistent_rows(
        checked, existing, dataset_ids, source, session
    )
    if consistent is not checked:
        consistent = list({row[GUID]: row for row in consistent}.values())
    usable = kept = consistent
    # A file read again as the catalogue holds it (a source's overlap window
    # reads rows again) is left alone: its modified time stays, and its
    # dataset needs no recomputing.
    changed = []
    for row in usable:
        values = (dataset_ids[row[DATASET]], *_written(row))
        if held.get(row[GUID]) != values:
            changed.append((row, values))
    if not changed:
        return FilesWritten(set(), 0, kept, refused)
    usable = [row for row, _ in changed]
    now = utcnow()
    written = [(*values, now) for _, values in changed]
    upsert_values(session, File.__table__, COLUMNS, written, ["guid"], known=existing)  # type: ignore[arg-type]
    # DDM may have reported a file lost before the file arrived here.
    mark_lost_files([row[LFN] for row in usable], session=session)
    _write_lumi_ranges(usable, session=session)
    moved_from = {existing[r[GUID]][1] for r in usable if r[GUID] in existing}
    touched = {dataset_ids[r[DATASET]] for r in usable} | moved_from
    return FilesWritten(touched, len(usable), kept, refused)


class FilesWritten(NamedTuple):
    """What :func:`write_files` did: the datasets whose files changed, the
    number of files written (new, or holding a value that changed), and the
    rows the catalogue holds as given, written or found as written (the
    last of each GUID, less those refused into quarantine), and the GUIDs
    those refused are held under. A GUID can be in both: another row of it
    was kept.
    """

    datasets: set[int]
    files: int
    kept: Sequence[AnyFileRow]
    refused: set[str]


class Claim(NamedTuple):
    """The file that holds a GUID: its LFN, its dataset (id and name), the
    source of that dataset and the ProdSys task that made it.
    """

    lfn: str
    dataset_id: int
    dataset: str
    source: str
    task_id: int | None


def _existing(
    rows: Sequence[AnyFileRow], *, session: Session
) -> tuple[dict[str, Claim], dict[str, tuple[Any, ...]]]:
    """The catalogue's files of these GUIDs and of these LFNs, keyed by
    GUID; and the values of :data:`COLUMNS` (but the time) that it holds for
    each. One query per chunk of rows, joined to the files' datasets.
    """
    found: dict[str, Claim] = {}
    held: dict[str, tuple[Any, ...]] = {}
    columns = [File.__table__.c[name] for name in COLUMNS[:-1]]
    width = len(columns)
    owners = (Dataset.name, Dataset.source, Dataset.task_id)
    for chunk in chunked(rows):
        guids = [r[GUID] for r in chunk]
        lfns = [r[LFN] for r in chunk]
        query = (
            select(*columns, *owners)
            .join(Dataset, Dataset.id == File.dataset_id)
            .where(or_(among(File.guid, guids), among(File.lfn, lfns)))
        )
        for stored in session.execute(query):
            name, owner_source, task_id = stored[width:]
            found[stored.guid] = Claim(
                stored.lfn, stored.dataset_id, name, owner_source, task_id
            )
            held[stored.guid] = tuple(stored[:width])
    return found, held


def _consistent_rows(
    rows: Sequence[AnyFileRow],
    existing: Mapping[str, Claim],
    dataset_ids: Mapping[str, int],
    source: str,
    session: Session,
) -> tuple[Sequence[AnyFileRow], set[str]]:
    """The rows of *rows* that can be written, in order, the others put in
    quarantine, and the GUIDs of those; *existing* as :func:`_existing`
    gives it. *rows* itself when every row can be written and no GUID or
    LFN is known or given twice.
    """
    guids = {row[GUID] for row in rows}
    if not existing and len({row[LFN] for row in rows}) == len(guids) == len(rows):
        return rows, set()  # nothing known yet, nothing twice in the bite
    owner = {claim.lfn: guid for guid, claim in existing.items()}
    claims = dict(existing)
    tasks = _tasks_moved_to(rows, existing, dataset_ids, session)
    kept, refused = [], set()
    for row in rows:
        dataset_id = dataset_ids[row[DATASET]]
        target = Claim(
            row[LFN], dataset_id, row[DATASET], source, tasks.get(dataset_id)
        )
        reason = _refused(row, target, owner, claims)
        if reason is not None:
            quarantine(source, row[GUID], payload(row), reason, session=session)
            refused.add(row[GUID])
            continue
        owner[target.lfn] = row[GUID]
        claims[row[GUID]] = target
        kept.append(row)
    return kept, refused


def held_for_other_rows(
    rows: Sequence[AnyFileRow], source: str, *, session: Session
) -> set[str]:
    """The GUIDs of *rows* under which quarantine holds a record of *source*
    about a file row not among *rows*: a row refused for giving that GUID to
    another LFN, say. Writing *rows* does not correct such a row, so its
    record must not be released with theirs (``ingest.base.RecordsRead``).
    A record is about the row of the LFN its payload names (:func:`payload`).
    """
    lfns = {row[LFN] for row in rows}
    guids = {row[GUID] for row in rows}
    others: set[str] = set()
    for chunk in chunked(sorted(guids)):
        query = select(Quarantine.record_key, Quarantine.payload).where(
            Quarantine.source == source,
            Quarantine.released.is_not(True),
            among(Quarantine.record_key, chunk),
        )
        for key, held in session.execute(query):
            # Compared again in Python: MariaDB's collation takes keys that
            # differ in case for one.
            if key is not None and key in guids and _payload_lfn(held) not in lfns:
                others.add(key)
    return others


def _payload_lfn(held: str) -> str | None:
    """The LFN a quarantined file row's payload names (None: none)."""
    try:
        values = json.loads(held)
    except ValueError:
        return None  # clipped, or not a file row's: about no row written
    lfn = values.get("lfn") if isinstance(values, dict) else None
    return lfn if isinstance(lfn, str) else None


def _tasks_moved_to(
    rows: Sequence[AnyFileRow],
    existing: Mapping[str, Claim],
    dataset_ids: Mapping[str, int],
    session: Session,
) -> dict[int, int | None]:
    """The ProdSys tasks of the datasets that rows would move a GUID into:
    rows naming another dataset than the catalogue's file of their GUID, or
    than an earlier row of the bite. One query, and only when there is such
    a row (a rare thing: a bite read again finds its files where they are).
    """
    first: dict[str, int] = {guid: claim.dataset_id for guid, claim in existing.items()}
    moving: set[int] = set()
    for row in rows:
        dataset_id = dataset_ids[row[DATASET]]
        was = first.setdefault(row[GUID], dataset_id)
        if was != dataset_id:
            moving.update((was, dataset_id))
    if not moving:
        return {}
    query = select(Dataset.id, Dataset.task_id).where(among(Dataset.id, moving))
    return {id_: task_id for id_, task_id in session.execute(query)}


def _refused(
    row: AnyFileRow, target: Claim, owner: dict[str, str], claims: dict[str, Claim]
) -> str | None:
    """Why *row* (the file *target*) cannot be written, or None; *owner*
    maps LFNs to the GUID holding them and *claims* GUIDs to the file holding
    them, in the catalogue and earlier in this bite.
    """
    lfn, guid = row[LFN], row[GUID]
    other = owner.get(lfn)
    if other is not None and other != guid:
        return f"LFN {lfn!r} already belongs to the file with GUID {other}"
    claim = claims.get(guid)
    if claim is None:
        return None
    return _claim_refused(guid, claim, target)


def _claim_refused(guid: str, claim: Claim, target: Claim) -> str | None:
    """Why the file *target* may not take the GUID that *claim* holds, or
    None. A GUID names one file: its LFN never changes, and it moves to
    another dataset only within one ProdSys task (ProdSys correcting which
    of a task's output datasets a file went to), never from a dataset of
    another source or another task, nor between Tier-0 datasets: two
    sources, two tasks, or two Tier-0 datasets giving one GUID is a
    contradiction, not a move (docs/ingest.md).
    """
    held = f"GUID {guid} already belongs to {claim.lfn!r} in {claim.dataset!r}"
    if claim.lfn != target.lfn:
        return f"{held}; this row gives it to {target.lfn!r}"
    if claim.dataset_id == target.dataset_id:
        return None
    if claim.source != target.source:
        return (
            f"{held} (source {claim.source}); {target.source} gives it to "
            f"{target.dataset!r}: a file never moves between sources"
        )
    if claim.source == SOURCE_TIER0:
        return (
            f"{held}; this row moves it to {target.dataset!r}: a Tier-0 file "
            "never moves between datasets"
        )
    if claim.task_id is None or claim.task_id != target.task_id:
        return (
            f"{held}; this row moves it to {target.dataset!r}, of another task: "
            "a file moves only between datasets of one ProdSys task"
        )
    return None


# The columns a file is written with: its dataset's id, the fields of a
# FileRow that :func:`_written` picks, and the time.
COLUMNS = (
    "dataset_id", "lfn", "guid", "size", "checksum", "events", "status",
    "lumi_blocks", "cross_section", "gen_filt_eff", "modified",
)  # fmt: skip
_written = itemgetter(*map(FileRow._fields.index, COLUMNS[1:-1]))


def _write_lumi_ranges(rows: Sequence[AnyFileRow], *, session: Session) -> None:
    with_blocks = [r for r in rows if r[BLOCKS]]
    for chunk in chunked(with_blocks):
        by_guid = {r[GUID]: r for r in chunk}
        query = select(File.guid, File.id).where(among(File.guid, by_guid))
        ids = {guid: id_ for guid, id_ in session.execute(query)}
        session.execute(
            delete(FileLumiRange).where(among(FileLumiRange.file_id, ids.values()))
        )
        values = [
            {"file_id": ids[guid], "first": first, "last": last}
            for guid, row in by_guid.items()
            for first, last in ranges(row[BLOCKS])
        ]
        if values:
            session.execute(insert(FileLumiRange), values)
