"""Writing files into the catalogue, in bulk and idempotently (by GUID).

Shared by the ProdSys and Tier-0 ingesters. A file whose LFN already belongs
to another GUID is a contradiction between sources: it goes to quarantine
rather than overwrite the other file.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from sqlalchemy import delete, insert, select
from sqlalchemy.orm import Session

from catalog.db import among, utcnow
from catalog.ddm import mark_lost_files
from catalog.errors import HepcatError
from catalog.lumiblocks import parse_lumi_blocks, ranges
from catalog.models import File, FileLumiRange
from catalog.operations import quarantine
from catalog.upsert import upsert
from ingest import base

CHUNK = 1000
NONE: frozenset[int] = frozenset()


@dataclass(frozen=True)
class FileRow:
    """A file as a source describes it."""

    dataset: str
    lfn: str
    guid: str
    size: int | None
    checksum: str | None
    events: int | None
    status: str
    lumi_blocks: str | None
    blocks: frozenset[int]
    cross_section: float | None = None
    gen_filt_eff: float | None = None

    def payload(self) -> dict[str, Any]:
        values = asdict(self)
        values.pop("blocks")
        return values


def source_file(
    row: Mapping[str, Any], *, dataset: str, status: str, with_physics: bool = False
) -> FileRow:
    """A file as a source row (ProdSys or Tier-0 columns) describes it.

    :param with_physics: read the generator columns (ProdSys evgen files).
    :raises Unusable: for a value that cannot be used.
    """
    lumi_blocks = base.text(row, "lumiblocknr", required=False, length=4000)
    try:
        blocks = frozenset(parse_lumi_blocks(lumi_blocks)) if lumi_blocks else NONE
    except HepcatError as err:
        raise base.Unusable(str(err)) from None
    return FileRow(
        dataset=dataset,
        lfn=base.text(row, "lfn") or "",
        guid=base.guid(row),
        size=base.integer(row, "fsize", required=False),
        checksum=base.text(row, "checksum", required=False, length=16),
        events=base.integer(row, "events", required=False),
        status=status,
        lumi_blocks=lumi_blocks,
        blocks=blocks,
        cross_section=base.number(row, "cross_section") if with_physics else None,
        gen_filt_eff=base.number(row, "gen_filt_eff") if with_physics else None,
    )


def write_files(
    rows: Sequence[FileRow],
    dataset_ids: Mapping[str, int],
    source: str,
    *,
    session: Session,
) -> set[int]:
    """Upsert *rows* (their datasets' ids in *dataset_ids*); return the ids of
    every dataset whose files changed, including datasets a file left.
    """
    latest = list({row.guid: row for row in rows}.values())
    existing = _existing(latest, session=session)
    owner = {lfn: guid for guid, (lfn, _) in existing.items()}
    usable = [row for row in latest if _consistent(row, owner, source, session)]
    if not usable:
        return set()
    now = utcnow()
    values = [_values(row, dataset_ids[row.dataset], now) for row in usable]
    upsert(session, File.__table__, values, ["guid"])  # type: ignore[arg-type]
    # DDM may have reported a file lost before the file arrived here.
    mark_lost_files([row.lfn for row in usable], session=session)
    _write_lumi_ranges(usable, session=session)
    moved_from = {existing[r.guid][1] for r in usable if r.guid in existing}
    return {dataset_ids[r.dataset] for r in usable} | moved_from


def _existing(
    rows: Sequence[FileRow], *, session: Session
) -> dict[str, tuple[str, int]]:
    """The catalogue's (LFN, dataset id) of these GUIDs and of these LFNs,
    keyed by GUID.
    """
    found: dict[str, tuple[str, int]] = {}
    for chunk in _chunks(rows):
        guids = [r.guid for r in chunk]
        lfns = [r.lfn for r in chunk]
        for column, keys in ((File.guid, guids), (File.lfn, lfns)):
            query = select(File.guid, File.lfn, File.dataset_id).where(
                among(column, keys)
            )
            for file_guid, lfn, dataset_id in session.execute(query):
                found[file_guid] = (lfn, dataset_id)
    return found


def _consistent(
    row: FileRow, owner: dict[str, str], source: str, session: Session
) -> bool:
    """Whether *row* can be written; *owner* maps LFNs to the GUID holding
    them, in the catalogue and earlier in this bite.
    """
    other = owner.get(row.lfn)
    if other is not None and other != row.guid:
        reason = f"LFN {row.lfn!r} already belongs to the file with GUID {other}"
        quarantine(source, row.guid, row.payload(), reason, session=session)
        return False
    owner[row.lfn] = row.guid
    return True


def _values(row: FileRow, dataset_id: int, now: Any) -> dict[str, Any]:
    return {
        "dataset_id": dataset_id,
        "lfn": row.lfn,
        "guid": row.guid,
        "size": row.size,
        "checksum": row.checksum,
        "events": row.events,
        "status": row.status,
        "lumi_blocks": row.lumi_blocks,
        "cross_section": row.cross_section,
        "gen_filt_eff": row.gen_filt_eff,
        "modified": now,
    }


def _write_lumi_ranges(rows: Sequence[FileRow], *, session: Session) -> None:
    with_blocks = [r for r in rows if r.blocks]
    for chunk in _chunks(with_blocks):
        by_guid = {r.guid: r for r in chunk}
        query = select(File.guid, File.id).where(among(File.guid, by_guid))
        ids = {guid: id_ for guid, id_ in session.execute(query)}
        session.execute(
            delete(FileLumiRange).where(among(FileLumiRange.file_id, ids.values()))
        )
        values = [
            {"file_id": ids[guid], "first": first, "last": last}
            for guid, row in by_guid.items()
            for first, last in ranges(row.blocks)
        ]
        if values:
            session.execute(insert(FileLumiRange), values)


def _chunks(rows: Sequence[FileRow]) -> Iterable[Sequence[FileRow]]:
    for start in range(0, len(rows), CHUNK):
        yield rows[start : start + CHUNK]
