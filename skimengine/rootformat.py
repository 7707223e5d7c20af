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
"""

from __future__ import annotations

import datetime as dt
import struct

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
