"""Writing files into the catalogue, in bulk and idempotently (by GUID).

Shared by the ProdSys and Tier-0 ingesters. A file whose LFN already belongs
to another GUID is a contradiction between sources: it goes to quarantine
rather than overwrite the other file. Reading file rows from a source is
``ingest.filerows``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from operator import itemgetter
from typing import Any, NamedTuple

from sqlalchemy import delete, insert, or_, select
from sqlalchemy.orm import Session

from catalog.db import among, chunked, utcnow
from catalog.ddm import mark_lost_files
from catalog.lumiblocks import ranges
from catalog.models import File, FileLumiRange
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
    including datasets a file left, how many files were written, and the
    rows the catalogue now holds as given.
    """
    latest = list({row[GUID]: row for row in rows}.values())
    existing, held = _existing(latest, session=session)
    usable = kept = _consistent_rows(latest, existing, source, session)
    # A file read again as the catalogue holds it (a source's overlap window
    # reads rows again) is left alone: its modified time stays, and its
    # dataset needs no recomputing.
    changed = []
    for row in usable:
        values = (dataset_ids[row[DATASET]], *_written(row))
        if held.get(row[GUID]) != values:
            changed.append((row, values))
    if not changed:
        return FilesWritten(set(), 0, kept)
    usable = [row for row, _ in changed]
    now = utcnow()
    written = [(*values, now) for _, values in changed]
    upsert_values(session, File.__table__, COLUMNS, written, ["guid"], known=existing)  # type: ignore[arg-type]
    # DDM may have reported a file lost before the file arrived here.
    mark_lost_files([row[LFN] for row in usable], session=session)
    _write_lumi_ranges(usable, session=session)
    moved_from = {existing[r[GUID]][1] for r in usable if r[GUID] in existing}
    touched = {dataset_ids[r[DATASET]] for r in usable} | moved_from
    return FilesWritten(touched, len(usable), kept)


class FilesWritten(NamedTuple):
    """What :func:`write_files` did: the datasets whose files changed, the
    number of files written (new, or holding a value that changed), and the
    rows the catalogue holds as given, written or found as written (the
    last of each GUID, less those refused into quarantine).
    """

    datasets: set[int]
    files: int
    kept: Sequence[AnyFileRow]


def _existing(
    rows: Sequence[AnyFileRow], *, session: Session
) -> tuple[dict[str, tuple[str, int]], dict[str, tuple[Any, ...]]]:
    """The catalogue's (LFN, dataset id) of these GUIDs and of these LFNs,
    keyed by GUID; and the values of :data:`COLUMNS` (but the time) that it
    holds for each.
    """
    found: dict[str, tuple[str, int]] = {}
    held: dict[str, tuple[Any, ...]] = {}
    columns = [File.__table__.c[name] for name in COLUMNS[:-1]]
    for chunk in chunked(rows):
        guids = [r[GUID] for r in chunk]
        lfns = [r[LFN] for r in chunk]
        query = select(*columns).where(
            or_(among(File.guid, guids), among(File.lfn, lfns))
        )
        for stored in session.execute(query):
            found[stored.guid] = (stored.lfn, stored.dataset_id)
            held[stored.guid] = tuple(stored)
    return found, held


def _consistent_rows(
    rows: list[AnyFileRow],
    existing: Mapping[str, tuple[str, int]],
    source: str,
    session: Session,
) -> list[AnyFileRow]:
    """The rows of *rows* (one per GUID) that can be written, the others put
    in quarantine; *existing* as :func:`_existing` gives it.
    """
    if not existing and len({row[LFN] for row in rows}) == len(rows):
        return rows  # no LFN is known yet, nor twice in the bite
    owner = {lfn: guid for guid, (lfn, _) in existing.items()}
    return [row for row in rows if _consistent(row, owner, source, session)]


def _consistent(
    row: AnyFileRow, owner: dict[str, str], source: str, session: Session
) -> bool:
    """Whether *row* can be written; *owner* maps LFNs to the GUID holding
    them, in the catalogue and earlier in this bite.
    """
    lfn, guid = row[LFN], row[GUID]
    other = owner.get(lfn)
    if other is not None and other != guid:
        reason = f"LFN {lfn!r} already belongs to the file with GUID {other}"
        quarantine(source, guid, payload(row), reason, session=session)
        return False
    owner[lfn] = guid
    return True


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
