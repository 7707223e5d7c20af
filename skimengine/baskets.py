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
"""

from __future__ import annotations

import mmap
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
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
    block_sizes,
)

__all__ = ["GROUP_SUFFIX", "Column", "Layout", "cluster_ranges", "read_entries"]

#: Uncompressed bytes (about) read from a source file at once.
READ_STEP = 256_000_000
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


def count_name(branch: Any) -> str | None:
    """The name of the count branch of a jagged *branch*, or None."""
    return branch.count_branch.name if branch.count_branch is not None else None


@dataclass(frozen=True)
class Layout:
    """How the chosen branches are written: scalars by name, and jagged
    branches grouped under their count branch (the group key).
    """

    scalars: tuple[str, ...]
    groups: dict[str, tuple[str, ...]]

    @classmethod
    def of(cls, tree: Any, branches: Sequence[str]) -> Layout:
        groups: dict[str, list[str]] = {}
        for name in branches:
            count = count_name(tree[name])
            if count is not None:
                groups.setdefault(count, []).append(name)
        jagged = {name for fields in groups.values() for name in fields}
        scalars = tuple(n for n in branches if n not in groups and n not in jagged)
        return cls(scalars, {k: tuple(v) for k, v in groups.items()})

    @property
    def read(self) -> list[str]:
        return [*self.scalars, *(f for fields in self.groups.values() for f in fields)]


def read_entries(
    tree: Any,
    branches: Sequence[str],
    entries: np.ndarray,
    check: Callable[[], None] | None = None,
) -> Iterator[dict[str, Column]]:
    """The sorted *entries* of *tree*, one dict of columns per read range
    (adjacent clusters up to about :data:`READ_STEP` uncompressed bytes).

    :param check: called before each branch (or group of jagged branches)
        of a range is read; it raises to stop the reading, which a range
        of a few hundred MB would otherwise hold up for a second or more.
    """
    check = check or _go_on
    layout = Layout.of(tree, branches)
    unpacked = sum(tree[name].uncompressed_bytes for name in branches)
    step = int(READ_STEP * tree.num_entries / max(unpacked, 1))
    ranges = cluster_ranges(tree, branches, entries, step)
    if not _plain(tree, layout.read):
        for start, stop in ranges:
            check()
            yield _from_arrays(tree, layout, start, stop, _within(entries, start, stop))
        return
    with BasketBytes(tree.file.file_path) as baskets:
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
    """The entry ranges to read for *entries*: the clusters (ranges whose
    boundaries all *branches* share) that hold one, adjacent ones merged
    while the range stays within *max_entries* (default: no limit).
    """
    bounds = common_boundaries(tree, branches)
    touched = np.unique(np.searchsorted(bounds, entries, side="right") - 1)
    limit = max_entries or tree.num_entries
    ranges: list[tuple[int, int]] = []
    for cluster in touched:
        start, stop = int(bounds[cluster]), int(bounds[cluster + 1])
        if ranges and ranges[-1][1] == start and stop - ranges[-1][0] <= limit:
            ranges[-1] = (ranges[-1][0], stop)
        else:
            ranges.append((start, stop))
    return ranges


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


def _plain(tree: Any, names: Sequence[str]) -> bool:
    """Whether every branch is numbers, or jagged numbers without headers."""
    for name in names:
        interpretation = tree[name].interpretation
        if type(interpretation) is uproot.AsJagged:
            if interpretation.header_bytes or not _number(interpretation.content):
                return False
        elif not _number(interpretation):
            return False
    return True


def _number(interpretation: Any) -> bool:
    return (
        type(interpretation) is uproot.AsDtype
        and interpretation.from_dtype.fields is None
        and interpretation.from_dtype.subdtype is None
    )


def _from_baskets(
    baskets: BasketBytes,
    tree: Any,
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
        # The fields of a group share their counts: one gather index per
        # basket span serves them all.
        shared: dict[tuple[int, int], tuple[np.ndarray, np.ndarray, int]] = {}
        parts = [_gather_jagged(baskets, tree[n], where, shared) for n in fields]
        contents = {name: part[1] for name, part in zip(fields, parts, strict=True)}
        chosen[count + GROUP_SUFFIX] = Column(counts=parts[0][0], contents=contents)
    return chosen


class _Where:
    """Which baskets hold the *entries*, found once for each basket layout
    (most branches of a tree share theirs).
    """

    def __init__(self, entries: np.ndarray) -> None:
        self.entries = entries
        self.known: dict[tuple[int, ...], list[tuple[int, int, int, np.ndarray]]] = {}

    def baskets(self, branch: Any) -> list[tuple[int, int, int, np.ndarray]]:
        """(basket number, first entry, end, selected entries counted from
        the first) of each basket of *branch* holding some entries.
        """
        key = tuple(branch.entry_offsets)
        if key not in self.known:
            offsets = np.asarray(key, np.int64)
            which = np.searchsorted(offsets, self.entries, side="right") - 1
            cuts = np.flatnonzero(np.diff(which)) + 1
            numbers = which[np.concatenate([[0], cuts])].tolist()
            self.known[key] = [
                (n, int(offsets[n]), int(offsets[n + 1]), part - offsets[n])
                for n, part in zip(numbers, np.split(self.entries, cuts), strict=True)
            ]
        return self.known[key]


def _gather_numbers(baskets: BasketBytes, branch: Any, where: _Where) -> np.ndarray:
    """The values of the entries, left big-endian: the writer wants them so."""
    dtype = branch.interpretation.from_dtype
    parts = [
        baskets.read(branch, number)[0].view(dtype)[local]
        for number, _, _, local in where.baskets(branch)
    ]
    return np.concatenate(parts) if parts else np.zeros(0, dtype)


def _gather_jagged(
    baskets: BasketBytes, branch: Any, where: _Where, shared: dict[tuple[int, int], Any]
) -> tuple[np.ndarray, np.ndarray]:
    """The counts and the flat contents (big-endian) of the entries of a
    jagged branch.
    """
    dtype = branch.interpretation.content.from_dtype
    counts, contents = [], []
    for number, first, end, local in where.baskets(branch):
        data, byte_offsets = baskets.read(branch, number)
        items = len(data) // dtype.itemsize
        known = shared.get((first, end))
        if known is None or known[2] != items:
            offsets = byte_offsets.astype(np.int64) // dtype.itemsize
            known = shared[first, end] = (*_gather_index(offsets, local), items)
        contents.append(data.view(dtype)[known[0]])
        counts.append(known[1])
    if not counts:
        return np.zeros(0, np.int32), np.zeros(0, dtype)
    return np.concatenate(counts), np.concatenate(contents)


def _gather_index(offsets: np.ndarray, local: np.ndarray) -> tuple[np.ndarray, Any]:
    """The positions in the flat contents of the items of entries *local*,
    and the number of items of each (as int32, a count branch's type).
    """
    starts, stops = offsets[local], offsets[local + 1]
    counts = stops - starts
    shift = np.repeat(starts - (np.cumsum(counts) - counts), counts)
    return shift + np.arange(len(shift), dtype=np.int64), counts.astype(np.int32)


class BasketBytes:
    """The decompressed bytes of the baskets of one ROOT file.

    :meth:`read` may give a basket's bytes in a buffer that the next call
    reuses: gather what is needed from them before reading another basket.
    """

    def __init__(self, path: str | Path) -> None:
        with open(path, "rb") as handle:
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

    def read(self, branch: Any, number: int) -> tuple[np.ndarray, np.ndarray | None]:
        """The data bytes of basket *number* of *branch* and, for a jagged
        branch, where each entry's bytes start (the data's length last).
        """
        seeks = branch.member("fBasketSeek")
        seek = int(seeks[number]) if number < len(seeks) else 0
        if seek:  # not a basket kept inside the tree's own record
            nbytes, _, objlen, _, keylen, _ = KEY_START.unpack_from(self._map, seek)
            end = seek + keylen - BASKET_END_SIZE
            last = BASKET_END.unpack_from(self._map, end)[4]
            raw = self._unpacked(seek + keylen, nbytes - keylen, objlen)
            if raw is not None:
                return _split_basket(raw, last - keylen, keylen)
        basket = branch.basket(number)
        return basket.data, basket.byte_offsets

    def _unpacked(self, start: int, size: int, length: int) -> np.ndarray | None:
        """The *length* bytes that the *size* bytes at *start* hold, or None
        when they are compressed otherwise than with ZSTD.
        """
        assert self._bytes is not None, "read after close"
        if size == length:  # stored as it is
            return self._bytes[start : start + size]
        blocks = self._blocks(start, size)
        if blocks is None:
            return None
        if len(blocks) == 1:  # a basket under 16 MB: one block
            return self._block(*blocks[0])
        if len(self._buffer) < length:
            self._buffer = np.empty(length, np.uint8)
        done = 0
        for block, unpacked in blocks:
            self._buffer[done : done + unpacked] = self._block(block, unpacked)
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

    def _block(self, block: np.ndarray, unpacked: int) -> np.ndarray:
        data = self._zstd.decompress(block, max_output_size=unpacked)
        if len(data) != unpacked:
            raise ValueError(f"a ZSTD block holds {len(data)} bytes, not {unpacked}")
        return np.frombuffer(data, np.uint8)


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
