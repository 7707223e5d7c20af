"""Event collections: the events a selection picked, each named by its run,
event number and lumi block and found by its file and entry.

A collection is kept as a ROOT file: a TTree ``Collection`` with the
branches ``RunNumber`` (int32), ``EventNumber`` (uint64), ``LumiBlock``
(int32), ``FileIndex`` (int32) and ``Entry`` (int64), and a TObjString
``Files`` with one line ``GUID LFN`` per file, in ``FileIndex`` order. It is
also written and read as CSV, one event a line, with the columns
``RunNumber,EventNumber,LumiBlock,GUID,LFN,Entry`` (an upload may leave out
one of ``GUID`` and ``LFN``). Uploaded collections are read with checks that
name the column, row or file at fault.
"""

from __future__ import annotations

import csv
import difflib
import io
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import IO, Any

import numpy as np
import uproot

from catalog.errors import InvalidInput

COLLECTION_TREE = "Collection"
FILES_OBJECT = "Files"
BRANCHES = {
    "RunNumber": np.int32,
    "EventNumber": np.uint64,
    "LumiBlock": np.int32,
    "FileIndex": np.int32,
    "Entry": np.int64,
}
CSV_COLUMNS = ("RunNumber", "EventNumber", "LumiBlock", "GUID", "LFN", "Entry")
NUMBER_COLUMNS = ("RunNumber", "EventNumber", "LumiBlock", "Entry")
BASKET_ROWS = 1 << 20  # rows per extend(): several MB per branch
#: Bits of an entry number: a file of more than a trillion events is not a
#: file, and a TAG looks events up by (file << ENTRY_BITS) | entry.
ENTRY_BITS = 40
#: The values each number of an uploaded collection may take.
LIMITS = {
    "RunNumber": (-(2**31), 2**31 - 1),
    "EventNumber": (0, 2**63 - 1),
    "LumiBlock": (-(2**31), 2**31 - 1),
    "Entry": (0, 2**ENTRY_BITS - 1),
}
#: A whole number in a CSV cell: ASCII digits, with an optional sign.
_WHOLE_NUMBER = re.compile(r"[-+]?[0-9]+")
# What uproot says of a file object it reads from, which means nothing to
# the person who uploaded it.
_FILE_OBJECT = re.compile(r"\s*(?:for file path|in file) <_io\.BytesIO object at \w+>")


class CollectionError(InvalidInput):
    """An event collection that cannot be read or does not fit its dataset."""

    def __init__(self, where: str, reason: str) -> None:
        super().__init__(f"{where}: {reason}")
        self.where = where
        self.reason = reason


@dataclass(frozen=True)
class FileRef:
    """A file of a dataset, by GUID and logical file name (LFN); an uploaded
    collection may know only one of them ("" for the other).
    """

    guid: str
    lfn: str

    @property
    def name(self) -> str:
        return self.lfn or self.guid


@dataclass(frozen=True)
class EventCollection:
    """Events by run, event number, lumi block, file and entry; the arrays
    are parallel, *file_index* indexes *files*.
    """

    files: tuple[FileRef, ...]
    file_index: np.ndarray
    entry: np.ndarray
    run_number: np.ndarray
    event_number: np.ndarray
    lumi_block: np.ndarray

    def __len__(self) -> int:
        return len(self.entry)

    def entries_by_file(self) -> dict[str, np.ndarray]:
        """The sorted, distinct entries of each file that has events, by
        file name (LFN, or GUID when the LFN is unknown), in file order: the
        mapping :func:`skimengine.extract.plan_extraction` takes.
        """
        found: dict[str, np.ndarray] = {}
        for index, ref in enumerate(self.files):
            entries = self.entry[self.file_index == index]
            if len(entries):
                # Two lines of an upload (by GUID, by LFN) may name one file.
                previous = found.get(ref.name, entries[:0])
                found[ref.name] = np.unique(np.concatenate([previous, entries]))
        return found

    def write_root(self, path: str | Path) -> Path:
        """Write the collection to the ROOT file *path* (replaced atomically)."""
        path = Path(path)
        partial = path.with_name(f".{path.name}.partial")
        with uproot.recreate(partial, compression=uproot.ZSTD(1)) as out:
            out[FILES_OBJECT] = "\n".join(f"{f.guid} {f.lfn}" for f in self.files)
            tree = out.mktree(COLLECTION_TREE, dict(BRANCHES), title="event collection")
            for start in range(0, len(self), BASKET_ROWS):
                tree.extend(self.branches(slice(start, start + BASKET_ROWS)))
        os.replace(partial, path)
        return path

    def branches(self, rows: slice = slice(None)) -> dict[str, np.ndarray]:
        """The ROOT branches of *rows*, with their ROOT types."""
        arrays = {
            "RunNumber": self.run_number[rows],
            "EventNumber": self.event_number[rows],
            "LumiBlock": self.lumi_block[rows],
            "FileIndex": self.file_index[rows],
            "Entry": self.entry[rows],
        }
        return {name: arrays[name].astype(kind) for name, kind in BRANCHES.items()}

    def write_csv(self, stream: IO[str]) -> None:
        """Write the collection as CSV to the text *stream*."""
        writer = csv.writer(stream, lineterminator="\n")
        writer.writerow(CSV_COLUMNS)
        files = self.files
        for run, event, lumi, index, entry in zip(
            self.run_number.tolist(),
            self.event_number.tolist(),
            self.lumi_block.tolist(),
            self.file_index.tolist(),
            self.entry.tolist(),
            strict=True,
        ):
            writer.writerow(
                (run, event, lumi, files[index].guid, files[index].lfn, entry)
            )

    def to_csv(self) -> str:
        """The collection as CSV text."""
        stream = io.StringIO()
        self.write_csv(stream)
        return stream.getvalue()


def make_collection(
    files: Sequence[FileRef],
    *,
    file_index: Any,
    entry: Any,
    run_number: Any,
    event_number: Any,
    lumi_block: Any,
) -> EventCollection:
    """An :class:`EventCollection` of the given columns, in canonical types."""
    return EventCollection(
        files=tuple(files),
        file_index=np.asarray(file_index, dtype=np.int32),
        entry=np.asarray(entry, dtype=np.int64),
        run_number=np.asarray(run_number, dtype=np.int32),
        event_number=np.asarray(event_number, dtype=np.int64),
        lumi_block=np.asarray(lumi_block, dtype=np.int32),
    )


# -- reading ----------------------------------------------------------------


def read_collection(source: str | Path | bytes, name: str = "") -> EventCollection:
    """Read a collection from a ROOT or CSV file (a path, or its bytes as
    uploaded, with the upload's file *name* for messages).

    :raises CollectionError: naming the column, row or object at fault.
    """
    where = name or (str(source) if not isinstance(source, bytes) else "upload")
    data = source if isinstance(source, bytes) else Path(source).read_bytes()
    if not data.strip():
        raise CollectionError(where, "is an empty file")
    if data.startswith(b"root"):
        return read_root(io.BytesIO(data), where)
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise CollectionError(where, "neither a ROOT file nor UTF-8 CSV") from None
    return read_csv(text, where)


def read_root(source: Any, where: str) -> EventCollection:
    """Read the ROOT collection in *source* (a path or a binary file object)."""
    try:
        with uproot.open(source) as file:
            tree = _collection_tree(file, where)
            arrays = _root_numbers(tree, where)
            files = _root_files(file, where)
    except CollectionError:
        raise
    except Exception as err:  # damaged bytes raise nearly anything: _unreadable
        raise CollectionError(where, _unreadable(err)) from None
    if len(arrays["FileIndex"]) and not (
        0 <= arrays["FileIndex"].min() and arrays["FileIndex"].max() < len(files)
    ):
        reason = f"FileIndex goes beyond the {len(files)} lines of {FILES_OBJECT!r}"
        raise CollectionError(where, reason)
    return make_collection(
        files,
        file_index=arrays["FileIndex"],
        entry=arrays["Entry"],
        run_number=arrays["RunNumber"],
        event_number=arrays["EventNumber"].astype(np.int64),  # checked < 2**63
        lumi_block=arrays["LumiBlock"],
    )


def _unreadable(err: Exception) -> str:
    """Why uproot could not read an upload, without uproot's file object.

    Damaged bytes make uproot raise nearly anything (its
    DeserializationError, KeyInFileError, zlib.error, RecursionError,
    IndexError, AssertionError, ...), whose words (object dumps, offsets)
    mean nothing to the person who uploaded the file: only an OSError's or
    a ValueError's are shown.
    """
    damaged = "cannot be read as ROOT: it is truncated or damaged"
    if not isinstance(err, OSError | ValueError):
        return damaged
    text = " ".join(_FILE_OBJECT.sub("", str(err)).split())
    if text.startswith("expected Chunk"):
        return f"{damaged} ({text})"
    return f"cannot be read as ROOT: {text}"


def _collection_tree(file: Any, where: str) -> Any:
    trees = file.keys(filter_classname="TTree", cycle=False)
    if COLLECTION_TREE in trees:
        return file[COLLECTION_TREE]
    if len(trees) == 1:
        return file[trees[0]]
    reason = f"has no TTree {COLLECTION_TREE!r} (found: {', '.join(trees) or 'none'})"
    kind = file.classnames(cycle=False).get(COLLECTION_TREE)
    if kind is not None:
        # uproot's f["Collection"] = {...} writes an RNTuple, which is not
        # what a collection is; say how to write the TTree.
        reason = (
            f"has {COLLECTION_TREE!r} as a {kind}, not a TTree; write it as a "
            f"TTree, e.g. with uproot's file.mktree({COLLECTION_TREE!r}, ...)"
        )
    raise CollectionError(where, reason)


def _root_numbers(tree: Any, where: str) -> dict[str, np.ndarray]:
    present = set(tree.keys())
    missing = [branch for branch in BRANCHES if branch not in present]
    if missing:
        raise CollectionError(where, _missing(missing, present, "branch"))
    arrays: dict[str, np.ndarray] = tree.arrays(list(BRANCHES), library="np")
    for branch, values in arrays.items():
        if values.dtype == object or values.ndim != 1:
            raise CollectionError(
                where, f"branch {branch!r} must hold one number per event"
            )
        if not np.issubdtype(values.dtype, np.integer):
            reason = f"branch {branch!r} holds {values.dtype}, not whole numbers"
            raise CollectionError(where, reason)
        _check_range(values, branch, where)
    return arrays


def _check_range(values: np.ndarray, branch: str, where: str) -> None:
    """:raises CollectionError: naming the first value of *branch* out of range."""
    if branch in LIMITS and (found := out_of_range(values, branch, LIMITS[branch])):
        index, reason = found
        raise CollectionError(f"{where}, entry {index}", reason)


def out_of_range(
    values: np.ndarray, name: str, limits: tuple[int, int]
) -> tuple[int, str] | None:
    """The first of the whole numbers *values* (of *name*) outside *limits*,
    both included, by index, and what is wrong with it; None when all fit.
    """
    low, high = limits
    # Compared as Python integers: uint64 and int64 limits do not mix in numpy.
    if not len(values) or low <= int(values.min()) and int(values.max()) <= high:
        return None
    index = int(np.flatnonzero((values < low) | (values > high))[0])
    return index, f"{name} {values[index]} is out of range ({low} to {high})"


def _root_files(file: Any, where: str) -> list[FileRef]:
    if FILES_OBJECT not in file.keys(cycle=False):
        reason = f"has no {FILES_OBJECT!r} object listing the files (GUID LFN lines)"
        raise CollectionError(where, reason)
    refs = []
    for number, line in enumerate(str(file[FILES_OBJECT]).splitlines(), start=1):
        parts = line.split()
        if len(parts) not in (1, 2):
            reason = f"line {number} of {FILES_OBJECT!r} is not 'GUID LFN': {line!r}"
            raise CollectionError(where, reason)
        refs.append(FileRef(parts[0], parts[1] if len(parts) == 2 else ""))
    return refs


def read_csv(text: str, where: str) -> EventCollection:
    """Read a CSV collection from *text*."""
    reader = csv.reader(io.StringIO(text))
    header = [column.strip() for column in next(reader, [])]
    columns = _csv_columns(header, where)
    files: dict[tuple[str, str], int] = {}
    values: dict[str, list[int]] = {column: [] for column in NUMBER_COLUMNS}
    indexes: list[int] = []
    for row_number, row in enumerate(reader, start=2):
        if not any(cell.strip() for cell in row):
            continue
        if len(row) != len(header):
            reason = f"has {len(row)} fields, the header {len(header)}"
            raise CollectionError(f"{where}, line {row_number}", reason)
        for column in NUMBER_COLUMNS:
            values[column].append(
                _integer(row[columns[column]], where, row_number, column)
            )
        key = tuple(
            row[columns[c]].strip() if c in columns else "" for c in ("GUID", "LFN")
        )
        indexes.append(files.setdefault(key, len(files)))  # type: ignore[arg-type]
    return make_collection(
        [FileRef(guid, lfn) for guid, lfn in files],
        file_index=indexes,
        entry=values["Entry"],
        run_number=values["RunNumber"],
        event_number=values["EventNumber"],
        lumi_block=values["LumiBlock"],
    )


def _csv_columns(header: Sequence[str], where: str) -> dict[str, int]:
    repeated = [c for i, c in enumerate(header) if c and c in header[:i]]
    if repeated:
        reason = f"the header names column {repeated[0]!r} twice; name each once"
        raise CollectionError(where, reason)
    missing = [column for column in NUMBER_COLUMNS if column not in header]
    if "GUID" not in header and "LFN" not in header:
        missing.append("GUID or LFN")
    if missing:
        raise CollectionError(where, _missing(missing, header, "column"))
    return {column: header.index(column) for column in CSV_COLUMNS if column in header}


def _missing(missing: Sequence[str], present: Iterable[str], what: str) -> str:
    present = list(present)
    hints = []
    for name in missing:
        near = difflib.get_close_matches(name, present, n=1)
        hints.append(f"{name!r}" + (f" (not {near[0]!r}?)" if near else ""))
    found = ", ".join(map(repr, present)) or "none"
    return f"no {what} {', '.join(hints)}; found {found}"


def _integer(cell: str, where: str, row_number: int, column: str) -> int:
    # Only ASCII digits: int() also takes '0_2' and full-width or other
    # scripts' digits, which no collection writer means as a number.
    if not _WHOLE_NUMBER.fullmatch(cell.strip()):
        reason = f"{column} must be a whole number, not {cell!r}"
        raise CollectionError(f"{where}, line {row_number}", reason)
    value = int(cell.strip())
    low, high = LIMITS[column]
    if not low <= value <= high:
        reason = f"{column} {value} is out of range ({low} to {high})"
        raise CollectionError(f"{where}, line {row_number}", reason)
    return value


# -- checking against a dataset -------------------------------------------


def resolve_files(
    collection: EventCollection, known: Sequence[FileRef], dataset: str
) -> EventCollection:
    """The collection with each file matched, by GUID (in any case) or LFN,
    to one of the *known* files of *dataset*, both names filled in.

    :raises CollectionError: naming the files that are not in the dataset,
        or a file whose GUID and LFN are those of different files.
    """
    by_guid = {ref.guid.upper(): ref for ref in known}
    by_lfn = {ref.lfn: ref for ref in known}
    resolved = [_match(ref, by_guid, by_lfn, dataset) for ref in collection.files]
    unknown = [
        ref.name
        for ref, match in zip(collection.files, resolved, strict=True)
        if match is None
    ]
    if unknown:
        shown = ", ".join(map(repr, unknown[:3])) + (" ..." if len(unknown) > 3 else "")
        reason = f"{len(unknown)} file(s) are not files of {dataset}: {shown}"
        raise CollectionError("collection", reason)
    return replace(collection, files=tuple(r for r in resolved if r is not None))


def _match(
    ref: FileRef,
    by_guid: Mapping[str, FileRef],
    by_lfn: Mapping[str, FileRef],
    dataset: str,
) -> FileRef | None:
    """The known file *ref* names, or None.

    :raises CollectionError: when its GUID and LFN name different files.
    """
    of_guid = by_guid.get(ref.guid.upper()) if ref.guid else None
    of_lfn = by_lfn.get(ref.lfn) if ref.lfn else None
    if ref.guid and ref.lfn and (of_guid or of_lfn) and of_guid != of_lfn:
        guid_is = f"the GUID of {of_guid.lfn}" if of_guid else "no file's GUID"
        reason = (
            f"GUID {ref.guid} and LFN {ref.lfn} name different files: {ref.guid} "
            f"is {guid_is} in {dataset}; give the GUID and LFN of one file"
        )
        raise CollectionError("collection", reason)
    return of_guid or of_lfn
