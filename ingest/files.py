"""Writing files into the catalogue, in bulk and idempotently (by GUID).

Shared by the ProdSys and Tier-0 ingesters. A file whose LFN already belongs
to another GUID is a contradiction between sources: it goes to quarantine
rather than overwrite the other file.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from math import isfinite
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

NONE: frozenset[int] = frozenset()


class FileRow(NamedTuple):
    """A file as a source describes it (a named tuple: thousands are made
    per bite).
    """

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
        values = self._asdict()
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
    upsert_values(session, File.__table__, COLUMNS, values, ["guid"], known=existing)  # type: ignore[arg-type]
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
    for chunk in chunked(rows):
        guids = [r.guid for r in chunk]
        lfns = [r.lfn for r in chunk]
        query = select(File.guid, File.lfn, File.dataset_id).where(
            or_(among(File.guid, guids), among(File.lfn, lfns))
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


# The columns a file is written with, in the order of :func:`_values`.
COLUMNS = (
    "dataset_id", "lfn", "guid", "size", "checksum", "events", "status",
    "lumi_blocks", "cross_section", "gen_filt_eff", "modified",
)  # fmt: skip


def _values(row: FileRow, dataset_id: int, now: Any) -> tuple[Any, ...]:
    return (
        dataset_id, row.lfn, row.guid, row.size, row.checksum, row.events,
        row.status, row.lumi_blocks, row.cross_section, row.gen_filt_eff, now,
    )  # fmt: skip


def _write_lumi_ranges(rows: Sequence[FileRow], *, session: Session) -> None:
    with_blocks = [r for r in rows if r.blocks]
    for chunk in chunked(with_blocks):
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
