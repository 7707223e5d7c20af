"""Files as the sources describe them: ProdSys's and Tier-0's file rows,
mapped to :class:`FileRow`.

Touches no database: a process that reads bites ahead (``ingest.readprocess``)
imports it. Writing files into the catalogue is ``ingest.files``.
"""

from __future__ import annotations

from collections.abc import Mapping
from math import isfinite
from typing import Any, NamedTuple

from catalog.errors import HepcatError
from catalog.lumiblocks import parse_lumi_blocks
from catalog.nomenclature import is_plain_name
from ingest import values

# No lumi block. Blocks are a tuple of numbers: a row of such values is
# left alone by the garbage collector (a frozenset would keep it tracked,
# and a bite's rows would make the collector sweep the whole heap).
NONE: tuple[int, ...] = ()

# The most a file can plausibly hold: events, bytes (4 TiB) and generator
# cross-section (nb; the total proton-proton cross-section is about 1e8 nb).
# A row beyond them is quarantined: a dataset's totals are sums over its
# files, and even 2**20 files at these bounds sum to at most 2**62 events,
# 2**62 bytes and 1e21 nb, within the catalogue's BIGINT and a double.
MAX_EVENTS = 2**40
MAX_SIZE = 2**42
MAX_CROSS_SECTION = 1e15


class FileRow(NamedTuple):
    """A file as a source describes it (a named tuple: thousands are made
    per bite).

    The writer (``ingest.files.write_files``) reads rows by position, so it takes
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
    fields = dict(zip(FileRow._fields, row, strict=True))
    fields.pop("blocks")
    return fields


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
    lumi_blocks = values.text(row, "lumiblocknr", required=False, length=4000)
    try:
        blocks = tuple(sorted(parse_lumi_blocks(lumi_blocks))) if lumi_blocks else NONE
    except HepcatError as err:
        raise values.Unusable(str(err)) from None
    return FileRow(
        dataset=dataset,
        lfn=values.lfn(row),
        guid=values.guid(row),
        size=values.integer(row, "fsize", required=False, at_most=MAX_SIZE),
        checksum=values.text(row, "checksum", required=False, length=16),
        events=values.integer(row, "events", required=False, at_most=MAX_EVENTS),
        status=status,
        lumi_blocks=lumi_blocks,
        blocks=blocks,
        cross_section=values.non_negative(
            row, "cross_section", at_most=MAX_CROSS_SECTION
        )
        if with_physics
        else None,
        gen_filt_eff=values.fraction(row, "gen_filt_eff") if with_physics else None,
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
        and is_plain_name(lfn)
        and _plain_text(checksum, 16)
        and guid.__class__ is str
        and values.GUID.fullmatch(guid) is not None
        and size.__class__ is int
        and 0 <= size <= MAX_SIZE
        and events.__class__ is int
        and 0 <= events <= MAX_EVENTS
        and _plain_number(section)
        and (section is None or 0 <= section <= MAX_CROSS_SECTION)
        and _plain_number(efficiency)
        and (efficiency is None or 0 < efficiency <= 1)
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
