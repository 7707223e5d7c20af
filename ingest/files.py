"""Writing files into the catalogue, in bulk and idempotently (by GUID).

Shared by the ProdSys and Tier-0 ingesters. A file whose LFN already belongs
to another GUID is a contradiction between sources: it goes to quarantine
rather than overwrite the other file.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from math import isfinite
from operator import itemgetter
from typing import Any, NamedTuple

from sqlalchemy import delete, insert, or_, select
from sqlalchemy.orm import Session

from catalog.db import among, chunked, utcnow
from catalog.ddm import mark_lost_files
from catalog.errors import HepcatError
from catalog.lumiblocks import parse_lumi_blocks, ranges
from catalog.models import File, FileLumiRange
from catalog.operations import quarantine
from catalog.upsert import upsert_values
from ingest import base

# No lumi block. Blocks are a tuple of numbers: a row of such values is
# left alone by the garbage collector (a frozenset would keep it tracked,
# and a bite's rows would make the collector sweep the whole heap).
NONE: tuple[int, ...] = ()


class FileRow(NamedTuple):
    """A file as a source describes it (a named tuple: thousands are made
    per bite).

    The writer (:func:`write_files`) reads rows by position, so it takes
    plain tuples in this layout too: a bite read in another process arrives
    as such (``ingest.readprocess``), and the garbage collector leaves plain
    tuples of plain values alone, where it keeps sweeping named tuples.
    """

    dataset: str
    lfn: str
    guid: str
    size: int | None
    checksum: str | None
    events: int | None
    status: str
    lumi_blocks: str | None
    blocks: tuple[int, ...]  # sorted lumi block numbers
    cross_section: float | None = None
    gen_filt_eff: float | None = None


# A FileRow, or a plain tuple in its layout.
AnyFileRow = tuple[Any, ...]
# Positions of fields of a FileRow, for rows that are plain tuples.
DATASET, LFN, GUID, BLOCKS = map(
    FileRow._fields.index, ("dataset", "lfn", "guid", "blocks")
)


def payload(row: AnyFileRow) -> dict[str, Any]:
    """The values of the file *row* (a FileRow or its plain tuple), by name,
    as quarantine keeps them.
    """
    values = dict(zip(FileRow._fields, row, strict=True))
    values.pop("blocks")
    return values


def source_file(
    row: Mapping[str, Any], *, dataset: str, status: str, with_physics: bool = False
) -> FileRow:
    """A file as a source row (ProdSys or Tier-0 columns) describes it.

    :param with_physics: read the generator columns (ProdSys evgen files).
    :raises Unusable: for a value that cannot be used.
    """
    plain = _plain_file(row, dataset, status, with_physics)
    if plain is not None:
        return plain
    lumi_blocks = base.text(row, "lumiblocknr", required=False, length=4000)
    try:
        blocks = tuple(sorted(parse_lumi_blocks(lumi_blocks))) if lumi_blocks else NONE
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


def _plain_file(
    row: Mapping[str, Any], dataset: str, status: str, with_physics: bool
) -> FileRow | None:
    """The common case checked in one go, for speed: every value present and
    already of its type, no lumi blocks. None sends the row to the careful
    path of :func:`source_file`, which also says what is wrong with it.
    """
    lfn: Any = row.get("lfn")
    guid: Any = row.get("guid")
    checksum, size, events = row.get("checksum"), row.get("fsize"), row.get("events")
    section = row.get("cross_section") if with_physics else None
    efficiency = row.get("gen_filt_eff") if with_physics else None
    plain = (
        row.get("lumiblocknr") is None
        and _plain_text(lfn, 255)
        and _plain_text(checksum, 16)
        and guid.__class__ is str
        and len(guid) == 36
        and guid.count("-") == 4
        and size.__class__ is int
        and size >= 0
        and events.__class__ is int
        and events >= 0
        and _plain_number(section)
        and _plain_number(efficiency)
    )
    if not plain:
        return None
    return FileRow(
        dataset, lfn, guid.upper(), size, checksum, events, status, None, NONE,
        section, efficiency,
    )  # fmt: skip


def _plain_number(value: Any) -> bool:
    return value is None or (value.__class__ is float and isfinite(value))


def _plain_text(value: Any, length: int) -> bool:
    """*value* is text that needs no stripping, of at most *length* characters."""
    return (
        value.__class__ is str
        and 0 < len(value) <= length
        and not value[0].isspace()
        and not value[-1].isspace()
    )


def write_files(
    rows: Sequence[AnyFileRow],
    dataset_ids: Mapping[str, int],
    source: str,
    *,
    session: Session,
) -> set[int]:
    """Upsert *rows* (FileRows or their plain tuples; their datasets' ids in
    *dataset_ids*); return the ids of every dataset whose files changed,
    including datasets a file left.
    """
    latest = list({row[GUID]: row for row in rows}.values())
    existing = _existing(latest, session=session)
    usable = _consistent_rows(latest, existing, source, session)
    if not usable:
        return set()
    now = utcnow()
    values = [(dataset_ids[row[DATASET]], *_written(row), now) for row in usable]
    upsert_values(session, File.__table__, COLUMNS, values, ["guid"], known=existing)  # type: ignore[arg-type]
    # DDM may have reported a file lost before the file arrived here.
    mark_lost_files([row[LFN] for row in usable], session=session)
    _write_lumi_ranges(usable, session=session)
    moved_from = {existing[r[GUID]][1] for r in usable if r[GUID] in existing}
    return {dataset_ids[r[DATASET]] for r in usable} | moved_from


def _existing(
    rows: Sequence[AnyFileRow], *, session: Session
) -> dict[str, tuple[str, int]]:
    """The catalogue's (LFN, dataset id) of these GUIDs and of these LFNs,
    keyed by GUID.
    """
    found: dict[str, tuple[str, int]] = {}
    for chunk in chunked(rows):
        guids = [r[GUID] for r in chunk]
        lfns = [r[LFN] for r in chunk]
        query = select(File.guid, File.lfn, File.dataset_id).where(
            or_(among(File.guid, guids), among(File.lfn, lfns))
        )
        for file_guid, lfn, dataset_id in session.execute(query):
            found[file_guid] = (lfn, dataset_id)
    return found


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
