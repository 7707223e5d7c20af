"""Reading only what an extraction needs from a source tree.

A piece of a plan is a source file and the sorted entries to keep. The
entries are read range by range: a range is made of the clusters (entry
ranges whose boundaries every chosen branch shares) that hold a selected
entry, adjacent ones merged up to a few hundred MB, so that memory stays
bounded whatever the file's size.

Branches of plain numbers, and jagged arrays of plain numbers (the
``float jet_pt[nJets]`` kind), are read basket by basket: each basket is
decompressed and the selected entries are gathered straight from its bytes
(big-endian, as they are written again), without building the whole basket
as an array first. Any other branch makes the whole tree go through
uproot's ``arrays`` and awkward, which is slower but reads everything
uproot can.

A basket compressed with ZSTD (hepcat's default, and ROOT's) is
decompressed here, straight from a memory map of the file
(:class:`BasketBytes`), with the ``zstandard`` library: on this project's
machine it decompresses ROOT's baskets 1.3 times as fast as the library
uproot uses (``cramjam``), and decompressing is most of what a small skim
costs, since it must decompress every basket holding a selected event.
Baskets of any other kind are read by uproot.

Where the baskets are and what their values are comes from the tree's
record, read by hepcat when the tree is flat (:class:`SourceTree`,
:func:`skimengine.rootformat.parse_tree`) and by uproot otherwise: uproot
builds every member of every branch, which takes several milliseconds a
file, when a skim plans and again when each unit reads.
"""

from __future__ import annotations

import mmap
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from itertools import pairwise
from pathlib import Path
from typing import Any

import awkward as ak
import numpy as np
import uproot
import zstandard

from skimengine.rootformat import (
    BASKET_END,
    BASKET_END_SIZE,
    BLOCK_HEADER,
    KEY_START,
    ZSTD,
    BranchInfo,
    TreeInfo,
    UnreadableRecord,
    block_sizes,
    parse_tree,
    stored_baskets,
)

__all__ = [
    "GROUP_SUFFIX",
    "BasketBytes",
    "Column",
    "Layout",
    "SourceTree",
    "cluster_ranges",
    "read_entries",
    "split_at",
]

#: Uncompressed bytes (about) read from a source file at once.
READ_STEP = 256_000_000
#: A basket whose last selected entry comes before this share of its
#: entries is decompressed only up to that entry.
PREFIX_SHARE = 0.75
# A group is written as a record named after its count branch plus this
# suffix, so that uproot's generated counter keeps the count branch's name.
GROUP_SUFFIX = "__group"


@dataclass(frozen=True)
class Column:
    """Selected values of one branch or group: a numpy array for a scalar
    branch; counts and the flat contents of each field for a jagged group.
    """

    values: np.ndarray | None = None
    counts: np.ndarray | None = None
    contents: dict[str, np.ndarray] = field(default_factory=dict)

    def __len__(self) -> int:
        """The number of entries."""
        chosen = self.values if self.values is not None else self.counts
        return len(chosen) if chosen is not None else 0

    @property
    def nbytes(self) -> int:
        if self.values is not None:
            return int(self.values.nbytes)
        return sum(int(c.nbytes) for c in self.contents.values()) + 4 * len(
            self.counts if self.counts is not None else ()
        )


class SourceTree:
    """A tree of a source file, open as a context manager: its layout
    (:attr:`info`) and, opened only when needed, uproot's view of it
    (:attr:`tree`), which reads what the layout does not tell.
    """

    def __init__(self, path: str | Path, name: str) -> None:
        self.path, self.name = str(path), name
        self.file: Any = None

    def __enter__(self) -> SourceTree:
        # A memory map serves the many small basket reads best (uproot's
        # default for local files goes through fsspec, a handle per read).
        self.file = uproot.open(self.path, handler=uproot.MemmapSource)
        return self

    def __exit__(self, *exc: object) -> None:
        self.file.close()

    @cached_property
    def info(self) -> TreeInfo | _UprootInfo:
        """The tree's layout: read from its record by hepcat for a flat tree,
        through uproot for any other.

        :raises KeyError: when the file has no tree of that name.
        """
        key = self.file.key(self.name)
        if key.fClassName == "TTree":
            chunk, _ = key.get_uncompressed_chunk_cursor()
            try:
                return parse_tree(chunk.raw_data, key.fKeylen)
            except UnreadableRecord:
                pass
        return _UprootInfo(self.tree)

    @cached_property
    def tree(self) -> Any:
        """uproot's tree."""
        return self.file[self.name]


class _UprootInfo:
    """A tree's layout as uproot reads it, each branch's when asked for."""

    def __init__(self, tree: Any) -> None:
        self.tree = tree
        self.num_entries = int(tree.num_entries)
        self.known: dict[str, BranchInfo] = {}

    def keys(self) -> list[str]:
        return list(self.tree.keys(recursive=False))

    def __getitem__(self, name: str) -> BranchInfo:
        if name not in self.known:
            self.known[name] = _branch_info(self.tree[name])
        return self.known[name]


def _branch_info(branch: Any) -> BranchInfo:
    """What uproot's *branch* says of itself, as the record would."""
    count = branch.count_branch.name if branch.count_branch is not None else None
    interpretation = branch.interpretation
    jagged = type(interpretation) is uproot.AsJagged
    if jagged and not interpretation.header_bytes:
        interpretation = interpretation.content
    plain = _number(interpretation) and jagged == (count is not None)
    offsets = np.asarray(branch.entry_offsets, np.int64)
    # Baskets past the ones stored on their own are kept in the record:
    # no seek, uproot reads them.
    seeks = np.zeros(len(offsets) - 1, np.int64)
    given = np.asarray(branch.member("fBasketSeek"), np.int64)[: len(seeks)]
    stored = stored_baskets(given, branch.member("fWriteBasket"))
    seeks[:stored] = given[:stored]
    return BranchInfo(
        branch.name,
        interpretation.from_dtype if plain else None,
        count,
        offsets,
        seeks,
        int(branch.compressed_bytes),
        int(branch.uncompressed_bytes),
    )


@dataclass(frozen=True)
class Layout:
    """How the chosen branches are written: scalars by name, and jagged
    branches grouped under their count branch (the group key).
    """

    scalars: tuple[str, ...]
    groups: dict[str, tuple[str, ...]]

    @classmethod
    def of(cls, tree: TreeInfo | _UprootInfo, branches: Sequence[str]) -> Layout:
        groups: dict[str, list[str]] = {}
        for name in branches:
            count = tree[name].count
            if count is not None:
                groups.setdefault(count, []).append(name)
        jagged = {name for fields in groups.values() for name in fields}
        scalars = tuple(n for n in branches if n not in groups and n not in jagged)
        return cls(scalars, {k: tuple(v) for k, v in groups.items()})

    @property
    def read(self) -> list[str]:
        return [*self.scalars, *(f for fields in self.groups.values() for f in fields)]


def read_entries(
    source: SourceTree,
    branches: Sequence[str],
    entries: np.ndarray,
    check: Callable[[], None] | None = None,
) -> Iterator[dict[str, Column]]:
    """The sorted *entries* of the tree *source*, one dict of columns per
    read range (adjacent clusters up to about :data:`READ_STEP` uncompressed
    bytes).

    :param check: called before each branch (or group of jagged branches)
        of a range is read; it raises to stop the reading, which a range
        of a few hundred MB would otherwise hold up for a second or more.
    """
    check = check or _go_on
    tree = source.info
    layout = Layout.of(tree, branches)
    unpacked = sum(tree[name].uncompressed_bytes for name in branches)
    step = int(READ_STEP * tree.num_entries / max(unpacked, 1))
    ranges = cluster_ranges(tree, branches, entries, step)
    if not _plain(tree, layout.read):
        for start, stop in ranges:
            check()
            chosen = _within(entries, start, stop)
            yield _from_arrays(source.tree, layout, start, stop, chosen)
        return
    with BasketBytes(source) as baskets:
        for start, stop in ranges:
            check()
            chosen = _within(entries, start, stop)
            yield _from_baskets(baskets, tree, layout, chosen, check)


def _within(entries: np.ndarray, start: int, stop: int) -> np.ndarray:
    lo, hi = np.searchsorted(entries, (start, stop))
    return entries[lo:hi]


def _go_on() -> None:
    """A check that never stops the reading."""


def cluster_ranges(
    tree: Any,
    branches: Sequence[str],
    entries: np.ndarray,
    max_entries: int | None = None,
) -> list[tuple[int, int]]:
    """The entry ranges to read for the sorted *entries*: the clusters
    (ranges whose boundaries all *branches* share) that hold one, adjacent
    ones merged while the range stays within *max_entries* (default: no
    limit). *tree* is a tree's layout or uproot's tree.
    """
    bounds = common_boundaries(tree, branches)
    touched = [cluster for cluster, _ in split_at(entries, bounds)]
    limit = max_entries or tree.num_entries
    ranges: list[tuple[int, int]] = []
    for cluster in touched:
        start, stop = int(bounds[cluster]), int(bounds[cluster + 1])
        if ranges and ranges[-1][1] == start and stop - ranges[-1][0] <= limit:
            ranges[-1] = (ranges[-1][0], stop)
        else:
            ranges.append((start, stop))
    return ranges


def split_at(entries: np.ndarray, bounds: np.ndarray) -> list[tuple[int, np.ndarray]]:
    """The sorted *entries* cut at the sorted *bounds*: for each range from
    one bound to the next that holds some, its number and its entries (a
    view). The few bounds are looked for among the many entries, not the
    other way round.
    """
    at = np.searchsorted(entries, bounds).tolist()
    return [
        (number, entries[start:stop])
        for number, (start, stop) in enumerate(pairwise(at))
        if stop > start
    ]


def common_boundaries(tree: Any, branches: Sequence[str]) -> np.ndarray:
    """The entry numbers where every one of *branches* starts a basket."""
    common: set[int] | None = None
    for name in branches:
        offsets = set(int(x) for x in tree[name].entry_offsets)
        common = offsets if common is None else common & offsets
    bounds = common or {0}
    bounds |= {0, tree.num_entries}
    return np.array(sorted(bounds), np.int64)


# -- Basket by basket --------------------------------------------------------------


def _plain(tree: TreeInfo | _UprootInfo, names: Sequence[str]) -> bool:
    """Whether every branch is numbers, or jagged numbers without headers."""
    return all(tree[name].dtype is not None for name in names)


def _number(interpretation: Any) -> bool:
    return (
        type(interpretation) is uproot.AsDtype
        and interpretation.from_dtype.fields is None
        and interpretation.from_dtype.subdtype is None
    )


def _from_baskets(
    baskets: BasketBytes,
    tree: TreeInfo | _UprootInfo,
    layout: Layout,
    entries: np.ndarray,
    check: Callable[[], None],
) -> dict[str, Column]:
    where = _Where(entries)
    chosen: dict[str, Column] = {}
    for name in layout.scalars:
        check()
        chosen[name] = Column(values=_gather_numbers(baskets, tree[name], where))
    for count, fields in layout.groups.items():
        check()
        chosen[count + GROUP_SUFFIX] = _gather_group(
            baskets, tree, count, fields, where
        )
    return chosen


def _gather_group(
    baskets: BasketBytes,
    tree: TreeInfo | _UprootInfo,
    count: str,
    fields: Sequence[str],
    where: _Where,
) -> Column:
    """The counts and the flat contents of the jagged *fields* counted by
    branch *count*. They share their counts: one gather index per basket
    span serves them all, and the first tells how many items the others
    gather.
    """
    group = _Group(baskets, tree[count])
    first = tree[fields[0]]
    counts, contents = _gather_jagged(baskets, first, where, group, [])
    chosen = {first.name: contents}
    for name in fields[1:]:
        branch = tree[name]
        assert branch.dtype is not None, "a jagged branch of plain numbers"
        out = np.empty(len(contents), branch.dtype)
        chosen[name] = _gather_jagged(baskets, branch, where, group, out)[1]
    return Column(counts=counts, contents=chosen)


class _Where:
    """Which baskets hold the *entries*, found once for each basket layout
    (most branches of a tree share theirs).
    """

    def __init__(self, entries: np.ndarray) -> None:
        self.entries = entries
        self.known: dict[bytes, list[tuple[int, int, int, np.ndarray]]] = {}

    def baskets(self, branch: BranchInfo) -> list[tuple[int, int, int, np.ndarray]]:
        """(basket number, first entry, end, selected entries counted from
        the first) of each basket of *branch* holding some entries.
        """
        key = branch.entry_offsets.tobytes()
        if key not in self.known:
            offsets = branch.entry_offsets.tolist()
            self.known[key] = [
                (n, offsets[n], offsets[n + 1], part - offsets[n])
                for n, part in split_at(self.entries, branch.entry_offsets)
            ]
        return self.known[key]


def _gather_numbers(
    baskets: BasketBytes, branch: BranchInfo, where: _Where
) -> np.ndarray:
    """The values of the entries, left big-endian: the writer wants them so."""
    dtype = branch.dtype
    assert dtype is not None, "a branch of plain numbers"
    out, at = np.empty(len(where.entries), dtype), 0
    for number, first, end, local in where.baskets(branch):
        stop = _prefix(first, end, local)
        need = None if stop is None else stop * dtype.itemsize
        at = _take(baskets.read(branch, number, need)[0].view(dtype), local, out, at)
    return out


def _take(values: np.ndarray, index: np.ndarray, out: np.ndarray, at: int) -> int:
    """Put ``values[index]`` in *out* from *at*, and return where it ends.
    *index* is sorted, so one look at its last says whether it is in range,
    and the gather itself needs no checks and no buffer.
    """
    if len(index) and index[-1] >= len(values):
        raise ValueError(f"a basket holds {len(values)} values, not {index[-1] + 1}")
    np.take(values, index, out=out[at : at + len(index)], mode="clip")
    return at + len(index)


def _prefix(first: int, end: int, local: np.ndarray) -> int | None:
    """The entries of the basket holding entries *first* to *end* to
    decompress for the selected ones (*local*), when few enough to pay.
    """
    stop = int(local[-1]) + 1
    return stop if stop < PREFIX_SHARE * (end - first) else None


class _Group:
    """The gather index of each basket span of a group of jagged branches,
    found once for all its fields: from the count branch when the selected
    entries end early in the span (the fields then decompress only the
    items before), else from the entry offsets of a field's basket.
    """

    def __init__(self, baskets: BasketBytes, counter: BranchInfo) -> None:
        self.baskets, self.counter = baskets, counter
        self.counted: dict[tuple[int, int], Any] = {}
        self.offset: dict[tuple[int, int], Any] = {}

    def from_counts(self, first: int, end: int, local: np.ndarray) -> Any:
        """The gather index, counts and items to decompress of the span,
        when its selected entries end early enough and the count branch
        has a basket over the same span; else None.
        """
        if (first, end) not in self.counted:
            self.counted[first, end] = self._from_counts(first, end, local)
        return self.counted[first, end]

    def _from_counts(self, first: int, end: int, local: np.ndarray) -> Any:
        stop, dtype = _prefix(first, end, local), self.counter.dtype
        offsets = self.counter.entry_offsets
        number = int(np.searchsorted(offsets, first, side="right")) - 1
        same = offsets[number] == first and offsets[number + 1] == end
        if stop is None or dtype is None or not same:
            return None
        data, _ = self.baskets.read(self.counter, number, stop * dtype.itemsize)
        items = np.zeros(stop + 1, np.int64)
        np.cumsum(data[: stop * dtype.itemsize].view(dtype), out=items[1:])
        return (*_gather_index(items, local), int(items[-1]))

    def from_offsets(
        self, span: tuple[int, int], local: np.ndarray, starts: Any, dtype: Any
    ) -> Any:
        """The gather index and counts of the span, from where each entry's
        bytes start in a field's basket of items of *dtype* (the end last).
        """
        if span not in self.offset:
            items = starts.astype(np.int64) // dtype.itemsize
            self.offset[span] = _gather_index(items, local)
        return self.offset[span]


def _gather_jagged(
    baskets: BasketBytes,
    branch: BranchInfo,
    where: _Where,
    group: _Group,
    out: list[np.ndarray] | np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """The counts and the flat contents (big-endian) of the entries of a
    jagged branch of *group*, gathered into *out*: an array of the right
    length, or a list (for the first field, whose length is not known yet).
    """
    dtype = branch.dtype
    assert dtype is not None, "a jagged branch of plain numbers"
    counts, at = [], 0
    for number, first, end, local in where.baskets(branch):
        known = group.from_counts(first, end, local)
        if known is not None:
            need = known[2] * dtype.itemsize
            data = baskets.read(branch, number, need)[0][:need]
        else:
            span = (first, end)
            wanted = span not in group.offset  # only the first field of a span
            data, starts = baskets.read(branch, number, offsets=wanted)
            known = group.from_offsets(span, local, starts, dtype)
        if isinstance(out, list):
            out.append(np.empty(len(known[0]), dtype))
            _take(data.view(dtype), known[0], out[-1], 0)
        else:
            at = _take(data.view(dtype), known[0], out, at)
        counts.append(known[1])
    if isinstance(out, list):
        out = np.concatenate(out) if out else np.zeros(0, dtype)
    elif at != len(out):
        raise ValueError(f"branch {branch.name!r} holds other counts than its group")
    joined = np.concatenate(counts) if counts else np.zeros(0, np.int32)
    return joined, out


def _gather_index(offsets: np.ndarray, local: np.ndarray) -> tuple[np.ndarray, Any]:
    """The positions in the flat contents of the items of entries *local*,
    and the number of items of each (as int32, a count branch's type).
    """
    starts = offsets[local]
    counts = offsets[local + 1] - starts
    index = np.repeat(starts - (np.cumsum(counts) - counts), counts)
    index += np.arange(len(index), dtype=np.int64)
    return index, counts.astype(np.int32)


class BasketBytes:
    """The decompressed bytes of the baskets of the tree *source*.

    :meth:`read` may give a basket's bytes in a buffer that the next call
    reuses: gather what is needed from them before reading another basket.
    """

    def __init__(self, source: SourceTree) -> None:
        self._source = source
        with open(source.path, "rb") as handle:
            self._map = mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ)
        self._bytes: np.ndarray | None = np.frombuffer(self._map, np.uint8)
        self._buffer = np.empty(0, np.uint8)
        self._zstd = zstandard.ZstdDecompressor()

    def __enter__(self) -> BasketBytes:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._bytes = None
        try:
            self._map.close()
        except BufferError:  # a view is still held: the map goes with it
            pass

    def read(
        self,
        branch: BranchInfo,
        number: int,
        need: int | None = None,
        *,
        offsets: bool = True,
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """The data bytes of basket *number* of *branch* and, for a jagged
        branch, where each entry's bytes start (the data's length last).

        :param need: the bytes of data wanted, from the start: a ZSTD basket
            is decompressed only that far, and its entry offsets, which
            come after its data, are then not given (None).
        :param offsets: false when the entry offsets are not wanted (None).
        """
        seek = int(branch.seeks[number])
        if seek:  # not a basket kept inside the tree's own record
            nbytes, _, objlen, _, keylen, _ = KEY_START.unpack_from(self._map, seek)
            end = seek + keylen - BASKET_END_SIZE
            border = BASKET_END.unpack_from(self._map, end)[4] - keylen
            start, size = seek + keylen, nbytes - keylen
            early = need if need is not None and need < border else None
            raw = self._unpacked(start, size, objlen, early)
            if raw is not None:
                if early is not None or not offsets:
                    return raw[:border], None
                return _split_basket(raw, border, keylen)
        basket = self._source.tree[branch.name].basket(number)
        return basket.data, basket.byte_offsets

    def _unpacked(
        self, start: int, size: int, length: int, need: int | None = None
    ) -> np.ndarray | None:
        """The *length* bytes that the *size* bytes at *start* hold (with
        *need*, at least their first *need*), or None when they are
        compressed otherwise than with ZSTD.
        """
        assert self._bytes is not None, "read after close"
        if size == length:  # stored as it is
            return self._bytes[start : start + size]
        blocks = self._blocks(start, size)
        if blocks is None:
            return None
        if len(self._buffer) < length:
            self._buffer = np.empty(length, np.uint8)
        done = 0
        for block, unpacked in blocks:
            if need is not None and need - done < unpacked:
                self._fill(block, self._buffer[done:need], whole=False)
                return self._buffer[:need]
            self._fill(block, self._buffer[done : done + unpacked], whole=True)
            done += unpacked
        if done != length:
            raise ValueError(f"basket at {start} holds {done} bytes, not {length}")
        return self._buffer[:length]

    def _blocks(self, start: int, size: int) -> list[tuple[np.ndarray, int]] | None:
        """The compressed blocks at *start* with their unpacked sizes, or
        None when one is not ZSTD.
        """
        assert self._bytes is not None, "read after close"
        blocks, at, stop = [], start, start + size
        while at < stop:
            header = self._map[at : at + BLOCK_HEADER]
            if header[:2] != ZSTD[:2]:
                return None
            packed, unpacked = block_sizes(header)
            begin = at + BLOCK_HEADER
            blocks.append((self._bytes[begin : begin + packed], unpacked))
            at = begin + packed
        return blocks

    def _fill(self, block: np.ndarray, out: np.ndarray, *, whole: bool) -> None:
        """Decompress the ZSTD *block* into *out*: all it holds (*whole*),
        or only its start, decompressing no further than the frame's inner
        block holding the last byte wanted. A buffer used again and again
        is faster to write than the new one each call would allocate.
        """
        reader = self._zstd.stream_reader(block.data, read_size=max(len(block), 1))
        done = 0
        while done < len(out):
            got = reader.readinto(out[done:])
            if not got:
                break
            done += got
        if done != len(out) or (whole and reader.read(1)):
            raise ValueError(f"a ZSTD block does not hold the {len(out)} bytes said")


def _split_basket(
    raw: np.ndarray, border: int, keylen: int
) -> tuple[np.ndarray, np.ndarray | None]:
    """A basket's data and, when entry offsets follow it, the byte offset of
    each entry in the data (ROOT writes them counted from the key's start).
    """
    if border == len(raw):
        return raw, None
    offsets = raw[border:].view(">i4")[1:] - keylen
    offsets[-1] = border
    return raw[:border], offsets


# -- Through uproot's arrays -------------------------------------------------------


def _from_arrays(
    tree: Any, layout: Layout, start: int, stop: int, entries: np.ndarray
) -> dict[str, Column]:
    # One call reads the range: the check was made before it.
    arrays = tree.arrays(layout.read, entry_start=start, entry_stop=stop, how=dict)
    local = entries - start
    chosen = {n: Column(values=_numpy(arrays[n])[local]) for n in layout.scalars}
    for count, fields in layout.groups.items():
        group = _select_jagged([arrays[f] for f in fields], fields, local)
        chosen[count + GROUP_SUFFIX] = group
    return chosen


def _numpy(array: Any) -> np.ndarray:
    return np.asarray(ak.to_numpy(array) if isinstance(array, ak.Array) else array)


def _list_offset(array: ak.Array) -> Any:
    """The layout of a jagged array as offsets and contents."""
    layout = ak.to_layout(array)
    if not isinstance(layout, ak.contents.ListOffsetArray):
        layout = ak.to_layout(ak.to_packed(array))
    return layout


def _select_jagged(
    arrays: Sequence[ak.Array], fields: Sequence[str], local: np.ndarray
) -> Column:
    """Keep entries *local* of jagged arrays that share their counts: one
    gather index, computed from the offsets, serves every field.
    """
    layouts = [_list_offset(array) for array in arrays]
    gather, counts = _gather_index(np.asarray(layouts[0].offsets, np.int64), local)
    contents = {
        name: layout.content.data[gather]
        for name, layout in zip(fields, layouts, strict=True)
    }
    return Column(counts=counts, contents=contents)
