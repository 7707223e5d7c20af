"""The pieces of ROOT's file format that hepcat reads and writes itself:
keys, basket headers and compressed blocks (ROOT's ``TKey``, ``TBasket`` and
``R__zip``), big-endian as ROOT writes them.

A basket is a key (its sizes, date, place and the names ``TBasket``, the
branch and the tree), the end of a basket header, then its object: the
values of its entries and, for a branch of variable size, where each entry
starts. The object is stored as it is or as consecutive compressed blocks
of at most :data:`MAX_BLOCK` bytes before compression, each with a 9-byte
header; readers decompress block after block until they have the object's
length, so block boundaries can be anywhere.

A tree's own record (its ``TTree``, branches and leaves, streamed as ROOT's
``TBufferFile`` does) is read here too, for flat trees of plain numbers
(:func:`parse_tree`): an extraction needs only where each branch's baskets
are and what their values are, which this reads in under a millisecond;
uproot's general reader, which builds every member of every object, takes
about 5 ms a file, paid when a skim is planned and again in each unit.
"""

from __future__ import annotations

import datetime as dt
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

#: The start of every key: fNbytes, fVersion, fObjlen, fDatime, fKeylen,
#: fCycle; a key of version above 1000 then has 64-bit fSeekKey, fSeekPdir.
KEY_START = struct.Struct(">ihiIhh")
KEY_LARGE = struct.Struct(">ihiIhhqq")
#: The end of a basket's key: fVersion, fBufferSize, fNevBufSize, fNevBuf,
#: fLast, then one flag byte.
BASKET_END = struct.Struct(">Hiiii")
BASKET_END_SIZE = BASKET_END.size + 1
#: A compressed block's header: algorithm (2 bytes), method (1), then the
#: compressed and the uncompressed sizes (3 bytes each, little-endian).
BLOCK_HEADER = 9
MAX_BLOCK = (1 << 24) - 1
ZSTD = b"ZS\x01"


def root_string(text: str) -> bytes:
    """*text* as ROOT writes a string: its length (1 byte, or 255 then 4
    bytes), then its UTF-8 bytes.
    """
    data = text.encode(errors="surrogateescape")
    if len(data) < 255:
        return bytes([len(data)]) + data
    return b"\xff" + struct.pack(">I", len(data)) + data


def datime(when: dt.datetime) -> int:
    """*when* as ROOT's ``TDatime`` packs it into 32 bits."""
    return (
        (when.year - 1995) << 26
        | when.month << 22
        | when.day << 17
        | when.hour << 12
        | when.minute << 6
        | when.second
    )


def block_header(algorithm: bytes, packed: int, unpacked: int) -> bytes:
    """The header of a compressed block of *packed* bytes holding *unpacked*."""
    return algorithm + packed.to_bytes(3, "little") + unpacked.to_bytes(3, "little")


def block_sizes(header: bytes) -> tuple[int, int]:
    """The compressed and uncompressed sizes a block *header* gives."""
    return int.from_bytes(header[3:6], "little"), int.from_bytes(header[6:9], "little")


# -- A tree's record ---------------------------------------------------------------

#: ROOT's object streaming (``TBufferFile``): a byte count's flag, a class
#: tag's flag, the tag of a new class; references to what was read before
#: are its position counted from the key's start, plus ``kMapOffset``.
_BYTE_COUNT, _CLASS_TAG, _NEW_CLASS, _MAP_OFFSET = 0x40000000, 0x80000000, 0xFFFFFFFF, 2
_IS_REFERENCED = 1 << 4
#: Leaf classes of plain numbers, with their signed and unsigned types.
_LEAF_TYPES = {
    kind: (np.dtype(signed), np.dtype(unsigned))
    for kind, signed, unsigned in [
        ("TLeafO", "?", "?"),
        ("TLeafB", "i1", "u1"),
        ("TLeafS", ">i2", ">u2"),
        ("TLeafI", ">i4", ">u4"),
        ("TLeafL", ">i8", ">u8"),
        ("TLeafG", ">i8", ">u8"),
        ("TLeafF", ">f4", ">f4"),
        ("TLeafD", ">f8", ">f8"),
    ]
}
_UINT, _COUNT_VERSION = struct.Struct(">I"), struct.Struct(">Ih")
_TOBJECT, _TWO_INTS = struct.Struct(">hII"), struct.Struct(">ii")
_TTREE_V20 = struct.Struct(">qqqqqdiiiiIqqqqqq")
_TBRANCH_V12 = struct.Struct(">iiiiqiIiqqqq")
_TBRANCH_V13 = struct.Struct(">iiiiq"), struct.Struct(">iIiqqqq")
_TLEAF_V2 = struct.Struct(">iii??")


class UnreadableRecord(ValueError):
    """A tree's record holds what :func:`parse_tree` does not read (uproot
    reads it instead).
    """


@dataclass(frozen=True, eq=False)
class BranchInfo:
    """What a tree's record says of one of its branches: its name, the type
    of its values when they are plain numbers (big-endian; None for other
    values), its count branch when it is jagged, the entry where each basket
    starts (the end last), where each basket lies in the file (0 for one
    that is not on its own), and its bytes (compressed or not, keys
    included).
    """

    name: str
    dtype: np.dtype | None
    count: str | None
    entry_offsets: np.ndarray
    seeks: np.ndarray
    compressed_bytes: int
    uncompressed_bytes: int

    @property
    def num_baskets(self) -> int:
        return len(self.seeks)


@dataclass(frozen=True, eq=False)
class TreeInfo:
    """A tree's entries and its top-level branches, by name, in its order."""

    num_entries: int
    branches: dict[str, BranchInfo]

    def __getitem__(self, name: str) -> BranchInfo:
        return self.branches[name]

    def keys(self) -> list[str]:
        return list(self.branches)


def parse_tree(data: bytes | np.ndarray, keylen: int) -> TreeInfo:
    """The layout of a tree from its record (*data*, uncompressed, the
    object of a key of *keylen* bytes): a ``TTree`` of version 20 whose
    branches are ``TBranch`` (versions 12 and 13) with leaves of numbers,
    as uproot and ROOT write flat trees.

    :raises UnreadableRecord: for anything else (objects split in branches,
        baskets kept in the record, other versions, bytes that do not add
        up); uproot reads those.
    """
    try:
        return _parse(_Record(data, keylen))
    except UnreadableRecord:
        raise
    except (struct.error, IndexError, ValueError) as err:
        raise UnreadableRecord(f"a record cut short or garbled: {err}") from None


def _parse(record: _Record) -> TreeInfo:
    end, version = record.header()
    if version != 20:
        raise UnreadableRecord(f"a TTree of version {version}")
    for _ in range(4):  # TNamed, TAttLine, TAttFill, TAttMarker
        record.skip()
    fields = record.unpack(_TTREE_V20)
    entries, ranges = fields[0], fields[10]  # fEntries, fNClusterRange
    record.at += 2 * (1 + 8 * ranges)  # the clusters' ends and sizes
    record.skip()  # TIOFeatures
    branches = [record.branch(kind) for kind, _ in record.items()]
    if record.at > end:
        raise UnreadableRecord("the branches overrun the TTree")
    named = {branch.name: branch for branch in branches}
    if len(named) != len(branches):
        raise UnreadableRecord("two branches of the same name")
    return TreeInfo(entries, named)


@dataclass(eq=False)
class _Leaf:
    """A leaf: its type (None when not one plain number) and the leaf
    holding its counts; its branch is noted once the branch is read.
    """

    dtype: np.dtype | None
    count: _Leaf | None
    branch: str | None = None


class _Record:
    """A cursor over the streamed objects of a record, keeping the classes
    and objects read so far by position (as references name them).
    """

    def __init__(self, data: bytes | np.ndarray, keylen: int) -> None:
        self.data = bytes(data)
        self.keylen, self.at = keylen, 0
        self.refs: dict[int, Any] = {}

    def unpack(self, layout: struct.Struct) -> tuple[Any, ...]:
        values = layout.unpack_from(self.data, self.at)
        self.at += layout.size
        return values

    def header(self) -> tuple[int, int]:
        """An object's end (from its byte count) and its version."""
        count, version = _COUNT_VERSION.unpack_from(self.data, self.at)
        if not count & _BYTE_COUNT:
            raise UnreadableRecord("an object without a byte count")
        self.at += 6
        return self.at - 2 + (count & ~_BYTE_COUNT), version

    def skip(self) -> None:
        self.at = self.header()[0]

    def finish(self, end: int, what: str) -> None:
        if self.at != end:
            raise UnreadableRecord(f"{what} read {self.at - end} bytes off")

    def string(self) -> str:
        size = self.data[self.at]
        self.at += 1
        if size == 255:
            (size,) = self.unpack(_UINT)
        self.at += size
        return self.data[self.at - size : self.at].decode(errors="surrogateescape")

    def tobject(self) -> None:
        version, _, bits = _TOBJECT.unpack_from(self.data, self.at)
        self.at += 10
        if version & 0x4000:
            raise UnreadableRecord("a TObject of the old format")
        self.at += 2 if bits & _IS_REFERENCED else 0

    def named(self) -> str:
        """A ``TNamed``'s name (its ``TObject`` and title passed over)."""
        end, _ = self.header()
        self.tobject()
        name, _ = self.string(), self.string()
        self.finish(end, f"TNamed {name!r}")
        return name

    def empty(self) -> bool:
        """Whether the ``TObjArray`` here holds nothing but null pointers."""
        end, _ = self.header()
        self.tobject()
        self.string()
        size, _ = self.unpack(_TWO_INTS)
        nulls = self.data[self.at : self.at + 4 * size] == bytes(4 * size)
        self.at += 4 * size
        return nulls and self.at == end

    def items(self) -> Iterator[tuple[str, int]]:
        """The class and start of each object of a ``TObjArray``, which the
        caller reads before taking the next; null items are passed over.
        """
        end, _ = self.header()
        self.tobject()
        self.string()
        size, _ = self.unpack(_TWO_INTS)
        for _ in range(size):
            found = self.pointer()
            if isinstance(found, tuple):
                yield found
            elif found is not None:
                raise UnreadableRecord("an array refers to an object read before")
        self.finish(end, "TObjArray")

    def pointer(self) -> Any:
        """What the pointer here points to: None, an object read before, or
        the class and start of a new object that the caller reads.
        """
        start = self.at
        (tag,) = self.unpack(_UINT)
        counted = bool(tag & _BYTE_COUNT) and tag != _NEW_CLASS
        if counted:
            (tag,) = self.unpack(_UINT)
        if not tag & _CLASS_TAG:
            if tag and tag not in self.refs:
                raise UnreadableRecord(f"a reference to {tag}, not read")
            return self.refs.get(tag)
        if not counted:
            raise UnreadableRecord("an object without a byte count")
        name: Any
        if tag == _NEW_CLASS:
            stop = self.data.index(b"\x00", self.at)
            name = self.data[self.at : stop].decode()
            self.refs[start + 4 + self.keylen + _MAP_OFFSET] = name
            self.at = stop + 1
        else:
            name = self.refs.get(tag & ~_CLASS_TAG)
        if not isinstance(name, str):
            raise UnreadableRecord(f"a reference to class {tag}, not read")
        return name, start

    def remember(self, start: int, found: Any) -> Any:
        self.refs[start + self.keylen + _MAP_OFFSET] = found
        return found

    def branch(self, kind: str) -> BranchInfo:
        """A ``TBranch`` of leaves of numbers, without baskets of its own."""
        end, version = self.header()
        if kind != "TBranch" or version not in (12, 13):
            raise UnreadableRecord(f"a {kind} of version {version}")
        name = self.named()
        self.skip()  # TAttFill
        if version == 13:
            *_, written, _ = self.unpack(_TBRANCH_V13[0])
            self.skip()  # TIOFeatures
            _, size, _, entries, _, unpacked, packed = self.unpack(_TBRANCH_V13[1])
        else:
            fields = self.unpack(_TBRANCH_V12)
            written, size, entries, unpacked, packed = (
                fields[i] for i in (3, 6, 8, 10, 11)
            )
        if not self.empty():
            raise UnreadableRecord(f"branch {name!r} has branches")
        leaves = [self.remember(at, self.leaf(kind)) for kind, at in self.items()]
        if not self.empty():
            raise UnreadableRecord(f"branch {name!r} keeps baskets in the record")
        offsets, seeks = self.baskets(size, written, entries)
        self.string()  # fFileName
        self.finish(end, f"TBranch {name!r}")
        for leaf in leaves:
            leaf.branch = name
        dtype, count = _values(name, leaves)
        return BranchInfo(name, dtype, count, offsets, seeks, packed, unpacked)

    def baskets(
        self, size: int, written: int, entries: int
    ) -> tuple[np.ndarray, np.ndarray]:
        """The entry offsets and seeks of the baskets written to the file."""
        # Each table after ROOT's flag that an array follows: the baskets'
        # bytes (not needed), first entries and seeks.
        self.at += 2 + 4 * size
        firsts = np.frombuffer(self.data, ">i8", size, self.at)
        seeks = np.frombuffer(self.data, ">i8", size, self.at + 8 * size + 1)
        self.at += 16 * size + 1
        stored = stored_baskets(seeks, written)
        offsets = np.empty(stored + 1, np.int64)
        offsets[:stored] = firsts[:stored]
        offsets[stored] = firsts[stored] if stored < size else entries
        if (
            offsets[0] != 0
            or offsets[-1] != entries
            or (offsets[1:] < offsets[:-1]).any()
        ):
            raise UnreadableRecord("baskets that do not hold the branch's entries")
        return offsets, seeks[:stored].astype(np.int64)

    def leaf(self, kind: str) -> _Leaf:
        """A leaf of a type of :data:`_LEAF_TYPES`."""
        if kind not in _LEAF_TYPES:
            raise UnreadableRecord(f"a leaf {kind}")
        end, _ = self.header()
        inner, version = self.header()
        if version != 2:
            raise UnreadableRecord(f"a TLeaf of version {version}")
        self.skip()  # TNamed
        length, _, _, _, unsigned = self.unpack(_TLEAF_V2)
        count = self.pointer()
        if count is not None and not isinstance(count, _Leaf):
            raise UnreadableRecord("a leaf whose counts are in another branch's place")
        self.finish(inner, "TLeaf")
        self.at = end  # its least and greatest values
        dtype = _LEAF_TYPES[kind][unsigned] if length == 1 else None
        return _Leaf(dtype, count)


def stored_baskets(seeks: np.ndarray, written: int) -> int:
    """How many of a branch's first baskets are on their own in the file,
    from its basket seeks and its ``fWriteBasket``: uproot writes as many
    baskets as ``fWriteBasket``, ROOT one more kept in memory (in the
    record); they are in the file while they have a seek.
    """
    on_disk = np.asarray(seeks[:written]) != 0
    return len(on_disk) if on_disk.all() else int(on_disk.argmin())


def _values(name: str, leaves: list[_Leaf]) -> tuple[np.dtype | None, str | None]:
    """A branch's type of values and count branch, from its leaves: one
    plain number per entry or per item of a jagged entry, or None.
    """
    if len(leaves) != 1:
        return None, None
    (leaf,) = leaves
    if leaf.count is None:
        return leaf.dtype, None
    if leaf.count.branch is None:
        raise UnreadableRecord(f"branch {name!r} counts with a leaf of no branch")
    return leaf.dtype, leaf.count.branch
