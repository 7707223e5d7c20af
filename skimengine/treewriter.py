"""Writing the output tree of an extraction.

uproot's ``mktree`` lays the tree out (branches, leaves, streamers) and its
``extend`` writes a basket per branch. ``extend`` takes a jagged branch only
as an awkward array, which holds numbers in native byte order, and turns
every array back into big-endian bytes before compressing it. Extraction
gathers its values big-endian, straight from the source baskets, so for
trees of plain numbers and jagged arrays of plain numbers
:class:`TreeWriter` writes each basket directly (a ZSTD basket by hepcat
itself, each part compressed where it lies; others with the basket writers
``extend`` uses), and keeps the tree's basket tables as ``extend`` does:
half the work besides compressing, on a large skim. Any other tree
goes through ``extend``, and so does the basket that finds the tree's
basket tables full: ``extend`` makes them ten times larger (they hold ten
baskets at first, as small files want).

The direct way relies on uproot's writer internals, checked once
(:func:`direct_writing`); an uproot without them is written through
``extend``, only slower.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import awkward as ak
import numpy as np
import uproot
import zstandard

from skimengine.baskets import GROUP_SUFFIX, Column
from skimengine.rootformat import (
    BASKET_END,
    BASKET_END_SIZE,
    KEY_LARGE,
    MAX_BLOCK,
    ZSTD,
    block_header,
    datime,
    root_string,
)

__all__ = ["TreeWriter", "direct_writing"]

#: Uncompressed bytes buffered before a basket per branch is written. A
#: large skim reads more than this at once, and writes what it read without
#: copying it into one array first.
FLUSH_BYTES = 16_000_000
#: What the direct way uses of uproot's writer (``uproot.writing._cascadetree``).
_INTERNALS = (
    "_name",
    "_directory",
    "_freesegments",
    "_branch_data",
    "_branch_lookup",
    "_num_baskets",
    "_basket_capacity",
    "_num_entries",
    "_metadata",
    "write_np_basket",
    "write_jagged_basket",
    "write_updates",
)


class TreeWriter:
    """Buffers selected columns (:class:`skimengine.baskets.Column`, by
    branch or jagged group) and writes a basket per branch each time about
    :data:`FLUSH_BYTES` have gathered.
    """

    def __init__(self, output: Any, name: str) -> None:
        self.output = output
        self.name = name
        self.tree: Any = None
        self.buffer: list[dict[str, Column]] = []
        self.buffered = 0
        self.entries = 0
        self.direct = False

    def add(self, chunk: dict[str, Column]) -> None:
        self.buffer.append(chunk)
        self.entries += len(next(iter(chunk.values())))
        self.buffered += sum(column.nbytes for column in chunk.values())
        if self.buffered >= FLUSH_BYTES:
            self.flush()

    def flush(self) -> None:
        if not self.buffer:
            return
        data = {key: _joined([c[key] for c in self.buffer]) for key in self.buffer[0]}
        if self.tree is None:
            self.tree = self.output.mktree(
                self.name,
                {key: _branch_type(column) for key, column in data.items()},
                counter_name=_counter_of,
                field_name=lambda outer, inner: inner,
            )
            self.direct = direct_writing(self.tree)
        if self.direct and _room(self.tree._cascading):
            _write_baskets(self.tree, data)
        else:
            self.tree.extend({key: _awkward(column) for key, column in data.items()})
        self.buffer, self.buffered = [], 0


def direct_writing(tree: Any) -> bool:
    """Whether *tree* (an uproot ``WritableTree`` just made) can have its
    baskets written directly: this uproot has the internals used, and every
    branch is a number or a jagged array of numbers.
    """
    cascading = getattr(tree, "_cascading", None)
    if cascading is None or not all(hasattr(cascading, a) for a in _INTERNALS):
        return False
    if getattr(cascading, "_needs_relocation_before_extend", False):
        return False
    return all(_plain(datum) for datum in cascading._branch_data)


def _plain(datum: dict[str, Any]) -> bool:
    if datum["kind"] == "record":
        return True
    return (
        datum["kind"] in ("normal", "counter")
        and datum["shape"] == ()
        and datum["dtype"].kind in "biuf"
    )


def _room(cascading: Any) -> bool:
    """Whether the basket tables take one more basket without growing (the
    last slot stays free, as ``extend`` keeps it)."""
    return bool(cascading._num_baskets < cascading._basket_capacity - 1)


# -- The direct way ----------------------------------------------------------------


def _write_baskets(tree: Any, data: dict[str, Column]) -> None:
    """Write one basket per branch from *data*, and the tree's tables, as
    ``extend`` would."""
    cascading, sink = tree._cascading, tree._file.sink
    arrays = _flat_arrays(data)
    entries = len(next(iter(data.values())))
    number = cascading._num_baskets
    unpacked = packed = 0
    for datum in cascading._branch_data:
        if datum["kind"] == "record":
            continue
        values, offsets = arrays[datum["fName"]]
        values = values.astype(datum["dtype"], copy=False)
        written = _write_basket(cascading, sink, datum, values, offsets)
        if offsets is not None:
            datum["fEntryOffsetLen"] = 4 * (len(offsets) - 1)
        if datum["kind"] == "counter" and len(values):
            datum["tleaf_maximum_value"] = max(
                int(values.max()), datum["tleaf_maximum_value"]
            )
        unpacked += written[0]
        packed += written[1]
        _record_basket(datum, number, entries, written)
    cascading._num_entries += entries
    cascading._num_baskets += 1
    cascading._metadata["fTotBytes"] += unpacked
    cascading._metadata["fZipBytes"] += packed
    # The file's free segments and length, once for all the baskets (uproot
    # writes them after each).
    cascading._freesegments.write(sink)
    sink.set_file_length(cascading._freesegments.fileheader.end)
    sink.flush()
    cascading.write_updates(sink)


def _write_basket(
    cascading: Any,
    sink: Any,
    datum: dict[str, Any],
    values: np.ndarray,
    offsets: np.ndarray | None,
) -> tuple[int, int, int]:
    """Write one basket of a branch; return its sizes (key included, before
    and after compression) and its place, as uproot's basket writers do.
    """
    compression = datum["compression"]
    if isinstance(compression, uproot.ZSTD) and compression.level > 0:
        return _write_zstd_basket(cascading, sink, datum, values, offsets)
    written: tuple[int, int, int]
    if offsets is None:
        written = cascading.write_np_basket(sink, datum["fName"], compression, values)
    else:
        written = cascading.write_jagged_basket(
            sink, datum["fName"], compression, values, offsets.copy()
        )
    return written


def _write_zstd_basket(
    cascading: Any,
    sink: Any,
    datum: dict[str, Any],
    values: np.ndarray,
    offsets: np.ndarray | None,
) -> tuple[int, int, int]:
    """Write a ZSTD basket straight from *values*: each part of its object
    (the values, then the entry offsets) is compressed where it lies, with
    no copy of it joined up first.
    """
    names = b"".join(map(root_string, ("TBasket", datum["fName"], cascading._name)))
    keylen = KEY_LARGE.size + len(names) + BASKET_END_SIZE
    parts, tail = _basket_object(values, offsets, keylen)
    length = sum(len(part) for part in parts)
    body = _zstd_blocks(parts, datum["compression"].level) or parts
    nbytes = keylen + sum(len(piece) for piece in body)
    location = cascading._freesegments.allocate(nbytes, dry_run=False)
    now = datime(dt.datetime.now())
    parent = cascading._directory.key.location
    key = KEY_LARGE.pack(nbytes, 1004, length, now, keylen, 0, location, parent)
    head = b"".join((key, names, BASKET_END.pack(3, 32000, *tail), b"\x00"))
    sink.write(location, head)
    at = location + len(head)
    for piece in body:
        sink.write(at, piece)
        at += len(piece)
    return keylen + length, nbytes, location


def _basket_object(
    values: np.ndarray, offsets: np.ndarray | None, keylen: int
) -> tuple[list[memoryview], tuple[int, int, int]]:
    """The parts of a basket's object, and its header's fNevBufSize, fNevBuf
    and fLast. Entry offsets count bytes from the key's start; ROOT stores
    their number first.
    """
    data = np.ascontiguousarray(values).data.cast("B")
    if offsets is None:
        return [data], (values.dtype.itemsize, len(values), keylen + len(data))
    starts = np.empty(len(offsets) + 1, ">i4")
    starts[0] = len(offsets)
    starts[1:] = offsets * values.dtype.itemsize + keylen
    tail = (len(offsets) + 1, len(offsets) - 1, int(starts[-1]))
    return [data, starts.data.cast("B")], tail


def _zstd_blocks(parts: list[memoryview], level: int) -> list[bytes] | None:
    """*parts* compressed into blocks, each after its header; None when a
    block does not shrink (the object is then stored as it is, as ROOT does).
    """
    compressor = zstandard.ZstdCompressor(level=level)
    blocks: list[bytes] = []
    for part in parts:
        for start in range(0, len(part), MAX_BLOCK):
            block = part[start : start + MAX_BLOCK]
            packed = compressor.compress(block)
            if len(packed) >= len(block):
                return None
            blocks += [block_header(ZSTD, len(packed), len(block)), packed]
    return blocks


def _record_basket(
    datum: dict[str, Any], number: int, entries: int, written: tuple[int, int, int]
) -> None:
    """Note basket *number* (its sizes and place) in the tables of a branch."""
    unpacked, packed, location = written
    datum["fTotBytes"] += unpacked
    datum["fZipBytes"] += packed
    datum["fBasketBytes"][number] = packed
    first = datum["fBasketEntry"]
    first[number + 1] = first[number] + entries
    datum["fBasketSeek"][number] = location
    datum["arrays_write_stop"] = number + 1


def _flat_arrays(
    data: dict[str, Column],
) -> dict[str, tuple[np.ndarray, np.ndarray | None]]:
    """Each branch's values and, for a jagged one, its item offsets
    (big-endian int32, as a basket stores them)."""
    arrays: dict[str, tuple[np.ndarray, np.ndarray | None]] = {}
    for key, column in data.items():
        if column.values is not None:
            arrays[key] = (column.values, None)
            continue
        counts, offsets = _counts_and_offsets(column, ">i4")
        arrays[_counter_of(key)] = (counts, None)
        for name, contents in column.contents.items():
            arrays[name] = (contents, offsets)
    return arrays


# -- Through extend ----------------------------------------------------------------


def _joined(columns: list[Column]) -> Column:
    """One column of the buffered pieces of a branch or group."""
    if len(columns) == 1:
        return columns[0]
    if columns[0].values is not None:
        return Column(values=np.concatenate([c.values for c in columns]))
    return Column(
        counts=np.concatenate([c.counts for c in columns]),
        contents={
            name: np.concatenate([c.contents[name] for c in columns])
            for name in columns[0].contents
        },
    )


def _awkward(column: Column) -> Any:
    """*column* as ``extend`` takes it: a numpy array, or a jagged array of
    records in native byte order."""
    if column.values is not None:
        return column.values
    _, offsets = _counts_and_offsets(column, np.int64)
    names = list(column.contents)
    contents = [
        ak.contents.NumpyArray(_native(column.contents[name])) for name in names
    ]
    record = ak.contents.RecordArray(contents, names, length=int(offsets[-1]))
    return ak.Array(ak.contents.ListOffsetArray(ak.index.Index64(offsets), record))


def _counts_and_offsets(column: Column, dtype: Any) -> tuple[np.ndarray, np.ndarray]:
    """The counts of a jagged group, and where each entry's items start in
    its flat contents (the end last), as *dtype*.
    """
    counts = column.counts if column.counts is not None else np.zeros(0, np.int32)
    offsets = np.zeros(len(counts) + 1, dtype)
    np.cumsum(counts, out=offsets[1:])
    return counts, offsets


def _native(values: np.ndarray) -> np.ndarray:
    return values.astype(values.dtype.newbyteorder("="), copy=False)


def _branch_type(column: Column) -> Any:
    """What ``mktree`` is told of a branch or jagged group."""
    if column.values is not None:
        return column.values.dtype.newbyteorder("=")
    fields = [
        ak.types.NumpyType(str(_native(values[:0]).dtype))
        for values in column.contents.values()
    ]
    return ak.types.ListType(ak.types.RecordType(fields, list(column.contents)))


def _counter_of(record: str) -> str:
    return record.removesuffix(GROUP_SUFFIX)
