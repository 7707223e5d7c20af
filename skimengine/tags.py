"""TAG databases: the event-level metadata of a dataset, one row per event.

A TAG row names an event (``RunNumber``, ``EventNumber``, ``LumiBlock``),
says where it lives (the file, by GUID and LFN, and the entry in the file's
``CollectionTree``) and carries attributes to select on: object counts,
leading transverse momenta, missing ET and the fired triggers as a bit mask.
The schema is the columns of :class:`catalog.models.TagEvent` that carry
``info["tag"]``.

A TAG is built from a dataset's event files with uproot, or imported from a
TAG ROOT file, and kept in two stores:

- the **columnar store**: one uncompressed ``.npy`` file per attribute in a
  directory, opened memory-mapped, so a selection is vectorised numpy over
  the columns it reads, in chunks, on a thread per core;
- the **relational store**: table ``tag_event`` of the catalogue database,
  where the same selection runs as SQL.

The TAG is registered as a :class:`catalog.models.TagDatabase` with its
schema, event count and per-attribute distributions.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
import secrets
import shutil
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import awkward as ak
import numpy as np
import uproot
from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from catalog.datasets import counted_files, get_dataset
from catalog.errors import HepcatError, InvalidInput, NotFound
from catalog.models import Dataset, File, TagDatabase, TagEvent
from catalog.models.skims import TAG_OF_DATASET
from skimengine.collection import (
    ENTRY_BITS,
    FILES_OBJECT,
    LIMITS,
    CollectionError,
    EventCollection,
    FileRef,
    make_collection,
    out_of_range,
    resolve_files,
)
from skimengine.filestore import reading_event_file
from skimengine.selection import FLOAT, INTEGER, Selection, Vocabulary, bit_mask
from skimengine.selection import compile_selection as compile_expression

EVENT_TREE = "CollectionTree"
TAG_TREE = "TAG"
TRIGGER_MENU = "TriggerMenu"
LOCATION = ("FileIndex", "Entry")
LOCATION_TYPES = {"FileIndex": np.int32, "Entry": np.int64}
CHUNK = 1 << 18  # rows a thread selects at a time: its columns stay in cache
INSERT_ROWS = 5_000
HISTOGRAM_BINS = 40
FLOAT32_MAX = float(np.finfo(np.float32).max)
_MENU_ENTRY = re.compile(r"\s*([0-9]+)\s*:\s*(\S.*?)\s*")
# A version of a columnar store: <number>-<8 hex>, or being written.
_VERSION = re.compile(r"\.?([0-9]+)-[0-9a-f]{8}(?:\.partial)?")
#: Seconds a replaced version of a columnar store is kept for the readers
#: that found it just before (they open it in milliseconds).
KEEP_REPLACED = 60.0


class TagNotFound(NotFound):
    def __init__(self, dataset: str) -> None:
        super().__init__(
            f"dataset {dataset!r} has no TAG database; build one from its event files"
        )
        self.dataset = dataset


class TagOutdated(InvalidInput):
    """A TAG names event files that its dataset no longer has (lost, or
    taken out of it).
    """

    def __init__(
        self, dataset: str, missing: Sequence[str], lost: Sequence[str]
    ) -> None:
        first = missing[0]
        why = "was reported lost" if first in lost else "is no longer one of its files"
        more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
        super().__init__(
            f"event file {first} of {dataset} {why}{more}, but its TAG still "
            f"lists it: the TAG of {dataset} is out of date; request the skim "
            "again once the TAG is built again from the dataset's files"
        )
        self.dataset = dataset


class TagReplaced(HepcatError, RuntimeError):
    """Another process registered the TAG of a dataset while this one wrote
    its own.
    """

    status = 409

    def __init__(self, dataset: str) -> None:
        super().__init__(
            f"the TAG of {dataset} was registered by another process meanwhile, "
            "and is left as that one made it; build or import it again to replace it"
        )
        self.dataset = dataset


@dataclass(frozen=True)
class TagAttribute:
    """An attribute of the TAG schema."""

    name: str
    column: str
    dtype: np.dtype[Any]
    doc: str

    @property
    def kind(self) -> str:
        return INTEGER if self.dtype.kind in "iu" else FLOAT


SCHEMA: tuple[TagAttribute, ...] = tuple(
    TagAttribute(c.info["tag"], c.name, np.dtype(c.info["dtype"]), c.info["doc"])
    for c in TagEvent.__table__.columns
    if "tag" in c.info
)
BY_NAME = {attribute.name: attribute for attribute in SCHEMA}
#: The type of every column of a TAG: its attributes, then its location.
TYPES = {a.name: a.dtype for a in SCHEMA} | {
    name: np.dtype(kind) for name, kind in LOCATION_TYPES.items()
}
# How the attributes come from an event file's branches (leading first).
COUNTED = {"nJets": "jet_pt", "nElectrons": "el_pt", "nMuons": "mu_pt"}
LEADING = {
    "jet_pt1": ("jet_pt", 0),
    "jet_pt2": ("jet_pt", 1),
    "el_pt1": ("el_pt", 0),
    "mu_pt1": ("mu_pt", 0),
}
COPIED = ("RunNumber", "EventNumber", "LumiBlock", "MET", "triggerBits")
EVENT_BRANCHES = sorted({*COPIED, *COUNTED.values()})


def vocabulary(triggers: Sequence[str] = ()) -> Vocabulary:
    """What a selection may name in a TAG with the trigger menu *triggers*."""
    kinds = {attribute.name: attribute.kind for attribute in SCHEMA}
    return Vocabulary(kinds, tuple(triggers))


@dataclass(frozen=True)
class TagTable:
    """A TAG: its *files*, its *columns* (every schema attribute plus
    ``FileIndex`` into *files* and ``Entry``, by name; numpy arrays or
    memory maps), the trigger menu, *triggers* in bit order, and the
    *branches* of the event files' tree when built from them (a skim
    request is checked against them).
    """

    files: tuple[FileRef, ...]
    columns: Mapping[str, np.ndarray]
    triggers: tuple[str, ...] = ()
    branches: tuple[str, ...] = ()

    def __len__(self) -> int:
        return len(self.columns["Entry"])

    def compile(self, expression: str) -> Selection:
        """*expression* checked against this TAG.

        :raises SelectionError: pointing at what is wrong.
        """
        return compile_expression(expression, vocabulary(self.triggers))

    def count(self, expression: str) -> int:
        """The number of events that pass *expression*."""
        selection = self.compile(expression)
        counts = self._scan(selection, lambda mask, start: np.count_nonzero(mask))
        return int(sum(counts))

    def select(self, expression: str) -> np.ndarray:
        """The rows (int64, ascending) of the events that pass *expression*."""
        selection = self.compile(expression)
        parts = self._scan(selection, lambda mask, start: np.flatnonzero(mask) + start)
        return np.concatenate([np.empty(0, np.int64), *parts])

    def collection(self, rows: np.ndarray | None = None) -> EventCollection:
        """The event collection of *rows* (default: every event)."""
        rows = np.arange(len(self)) if rows is None else rows
        return make_collection(
            self.files,
            file_index=self.columns["FileIndex"][rows],
            entry=self.columns["Entry"][rows],
            run_number=self.columns["RunNumber"][rows],
            event_number=self.columns["EventNumber"][rows],
            lumi_block=self.columns["LumiBlock"][rows],
        )

    def _scan(
        self, selection: Selection, reduce: Callable[[np.ndarray, int], Any]
    ) -> list[Any]:
        """``reduce(mask, start)`` of every chunk, in order. numpy lets go of
        the GIL in its loops, so the chunks run on a thread per core.
        """
        needed = selection.attributes

        def one(start: int) -> Any:
            chunk = {name: self.columns[name][start : start + CHUNK] for name in needed}
            length = min(CHUNK, len(self) - start)
            return reduce(selection.numpy(chunk, length), start)

        starts = range(0, len(self), CHUNK)
        if len(starts) <= 1:
            return [one(start) for start in starts]
        with ThreadPoolExecutor(os.cpu_count(), thread_name_prefix="tag-scan") as pool:
            return list(pool.map(one, starts))


def schema_json(table: TagTable) -> str:
    """The TAG's schema as the catalogue keeps it."""
    attributes = [
        {"name": a.name, "type": str(a.dtype), "kind": a.kind, "doc": a.doc}
        for a in SCHEMA
    ]
    files = [{"guid": ref.guid, "lfn": ref.lfn} for ref in table.files]
    schema = {"attributes": attributes, "triggers": list(table.triggers)}
    if table.branches:
        schema["branches"] = list(table.branches)
    return json.dumps(schema | {"files": files})


# -- building from event files ---------------------------------------------


@dataclass(frozen=True)
class EventFile:
    """An event data file of a dataset and where it is on disk."""

    ref: FileRef
    path: Path


def build_tag(
    files: Sequence[EventFile], *, tree: str = EVENT_TREE, step_size: str = "100 MB"
) -> TagTable:
    """Build the TAG of the event *files* (ROOT files with a TTree *tree*,
    see SOURCES.md "The file store"), reading only the branches it needs.
    Counts and leading pT come from ``jet_pt``, ``el_pt`` and ``mu_pt``;
    ``RunNumber``, ``EventNumber``, ``LumiBlock``, ``MET`` and
    ``triggerBits`` are copied. The trigger menu is the files'
    ``TriggerMenu`` (``bit:name,...``), when they have one.

    :raises InvalidInput: for a file without the tree or a needed branch, a
        value that does not fit its attribute (NaN, infinite, out of range:
        the first, by file and entry), a trigger menu that cannot be read, or
        files whose trigger menus differ.
    :raises EventFileDamaged: for a file whose bytes cannot be read.
    """
    parts: list[dict[str, np.ndarray]] = []
    menus: set[tuple[str, ...]] = set()
    branches: tuple[str, ...] = ()
    for index, event_file in enumerate(files):
        where = f"event file {event_file.ref.name}"
        with (
            reading_event_file(event_file.ref.name, event_file.path),
            uproot.open(event_file.path) as opened,
        ):
            events = _event_tree(opened, tree, event_file)
            menus.add(_trigger_menu(opened, where))
            branches = branches or tuple(events.keys(recursive=False))
            steps = events.iterate(EVENT_BRANCHES, step_size=step_size, report=True)
            for arrays, report in steps:
                first = report.tree_entry_start
                found = _attributes(arrays, index, first)
                parts.append(_typed(found, where, first=first, n_files=len(files)))
    if len(menus) > 1:
        raise InvalidInput("the event files have different trigger menus")
    refs = tuple(event_file.ref for event_file in files)
    menu = menus.pop() if menus else ()
    return TagTable(refs, _concatenate(parts), menu, branches)


def _event_tree(opened: Any, tree: str, event_file: EventFile) -> Any:
    name = event_file.ref.name
    if tree not in opened.keys(cycle=False):
        raise InvalidInput(f"event file {name} has no TTree {tree!r}")
    events = opened[tree]
    missing = [branch for branch in EVENT_BRANCHES if branch not in events.keys()]
    if missing:
        raise InvalidInput(
            f"event file {name} lacks the branches {', '.join(missing)} "
            "that a TAG is built from"
        )
    return events


def _trigger_menu(opened: Any, where: str) -> tuple[str, ...]:
    """The trigger names, in bit order, of the ``TriggerMenu`` of the ROOT
    file *opened* (``bit:name,...``; a bit it leaves out is ``bit<N>``).

    :raises InvalidInput: for an entry that is not ``bit:name``, a bit
        beyond 63, or a bit or a name given twice.
    """
    if TRIGGER_MENU not in opened.keys(cycle=False):
        return ()
    text = str(opened[TRIGGER_MENU]).strip()
    by_bit: dict[int, str] = {}
    for item in text.split(",") if text else ():
        bit, name = _menu_entry(item, where)
        if bit in by_bit:
            raise InvalidInput(f"{where}: {TRIGGER_MENU!r} names bit {bit} twice")
        by_bit[bit] = name
    names = tuple(
        by_bit.get(bit, f"bit{bit}") for bit in range(max(by_bit, default=-1) + 1)
    )
    twice = [name for name in names if names.count(name) > 1]
    if twice:
        raise InvalidInput(
            f"{where}: {TRIGGER_MENU!r} names trigger {twice[0]!r} twice"
        )
    return names


def _menu_entry(item: str, where: str) -> tuple[int, str]:
    found = _MENU_ENTRY.fullmatch(item)
    if found is None:
        raise InvalidInput(
            f"{where}: {TRIGGER_MENU!r} entry {item.strip()!r} is not 'bit:name'"
        )
    bit = int(found[1])
    if bit > 63:
        raise InvalidInput(
            f"{where}: trigger bit {bit} of {TRIGGER_MENU!r} is beyond 63"
        )
    return bit, found[2]


def _attributes(arrays: ak.Array, index: int, first: int) -> dict[str, np.ndarray]:
    """The TAG columns of the events of file *index* from entry *first*."""
    length = len(arrays)
    columns = {name: ak.to_numpy(arrays[name]) for name in COPIED}
    for name, branch in COUNTED.items():
        columns[name] = ak.to_numpy(ak.num(arrays[branch], axis=1))
    for name, (branch, nth) in LEADING.items():
        columns[name] = _nth_largest(arrays[branch], nth)
    columns["FileIndex"] = np.full(length, index)
    columns["Entry"] = np.arange(first, first + length)
    return columns


def _nth_largest(values: ak.Array, nth: int) -> np.ndarray:
    ordered = ak.sort(values, axis=1, ascending=False)
    padded = ak.pad_none(ordered, nth + 1, axis=1, clip=True)[:, nth]
    return np.asarray(ak.to_numpy(ak.fill_none(padded, 0.0)))


def _concatenate(parts: Sequence[Mapping[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """The columns of *parts* (each :func:`_typed`) end to end."""
    if not parts:
        return {name: np.empty(0, dtype) for name, dtype in TYPES.items()}
    return {name: np.concatenate([part[name] for part in parts]) for name in TYPES}


def _typed(
    columns: Mapping[str, np.ndarray], where: str, *, first: int = 0, n_files: int
) -> dict[str, np.ndarray]:
    """*columns* (of a TAG of *n_files* files, read from *where*) in the
    TAG's types, once every value is checked to fit: whole numbers within
    their column's type and :data:`~skimengine.collection.LIMITS`,
    ``FileIndex`` within the files, finite numbers within float32.
    ``triggerBits`` keep their 64 bits.

    :raises InvalidInput: naming the column, and the entry (counted from
        *first*) of the first value that does not fit.
    """
    limits = LIMITS | {"FileIndex": (0, n_files - 1)}
    typed = {}
    for name, dtype in TYPES.items():
        values = np.asarray(columns[name])
        misfit = _misfit(values, name, dtype, limits)
        if misfit is not None:
            index, reason = misfit
            place = where if index is None else f"{where}, entry {first + index}"
            raise InvalidInput(f"{place}: {reason}")
        # uint64 EventNumber (checked below 2**63) and triggerBits: the same bits.
        same_bits = values.dtype == np.uint64 and dtype == np.int64
        typed[name] = (
            values.view(dtype) if same_bits else values.astype(dtype, copy=False)
        )
    return typed


def _misfit(
    values: np.ndarray, name: str, dtype: np.dtype[Any], limits: Mapping[str, Any]
) -> tuple[int | None, str] | None:
    """The first of *values* that column *name* of type *dtype* cannot hold
    (None: the whole column), and why; None when all fit.
    """
    if values.ndim != 1 or values.dtype == object:
        return None, f"{name} must hold one number per event"
    if dtype.kind == "f":
        if values.dtype.kind not in "iuf":
            return None, f"{name} holds {values.dtype}, not numbers"
        return _misfit_float(values, name) if values.dtype.kind == "f" else None
    if values.dtype.kind not in "iu":
        return None, f"{name} holds {values.dtype}, not whole numbers"
    if name == "triggerBits":
        return None  # a mask: any 64 bits
    info = np.iinfo(dtype)
    return out_of_range(values, name, limits.get(name, (int(info.min), int(info.max))))


def _misfit_float(values: np.ndarray, name: str) -> tuple[int, str] | None:
    bad = ~np.isfinite(values) | (np.abs(values) > FLOAT32_MAX)
    if not bad.any():
        return None
    index = int(np.flatnonzero(bad)[0])
    value = values[index].item()
    if not math.isfinite(value):
        return index, f"{name} {value!r} is not a finite number"
    return index, f"{name} {value!r} is beyond the range of float32 ({FLOAT32_MAX:g})"


# -- TAG ROOT files ------------------------------------------------------------


def write_tag_root(table: TagTable, path: str | Path, *, rows: int = 1 << 20) -> Path:
    """Export *table* to the ROOT file *path*: a TTree ``TAG`` with one
    branch per attribute plus ``FileIndex`` and ``Entry``, a TObjString
    ``Files`` (``GUID LFN`` lines) and ``TriggerMenu`` (``bit:name,...``).
    ``EventNumber`` and ``triggerBits`` are written as uint64, as in the
    event files.
    """
    path = Path(path)
    types = {a.name: a.dtype for a in SCHEMA} | LOCATION_TYPES
    types |= {"EventNumber": np.uint64, "triggerBits": np.uint64}
    with uproot.recreate(path, compression=uproot.ZSTD(1)) as out:
        out[FILES_OBJECT] = "\n".join(f"{f.guid} {f.lfn}" for f in table.files)
        out[TRIGGER_MENU] = ",".join(f"{i}:{t}" for i, t in enumerate(table.triggers))
        tree = out.mktree(TAG_TREE, types, title="TAG")
        for start in range(0, len(table), rows):
            part = slice(start, start + rows)
            # astype keeps the 64 bits of int64 values as uint64.
            tree.extend({n: table.columns[n][part].astype(t) for n, t in types.items()})
    return path


def read_tag_root(path: str | Path) -> TagTable:
    """Import the TAG ROOT file *path* (as :func:`write_tag_root` writes it).

    :raises InvalidInput: for a file without the TAG tree, a branch, the
        file list or a readable trigger menu, and for a value that does not
        fit its column (:func:`_typed`) or an event listed twice, naming the
        entry of the first.
    """
    where = str(path)
    try:
        opened = uproot.open(path)
    except FileNotFoundError:
        raise InvalidInput(f"{where}: no such file") from None
    except (OSError, ValueError) as err:
        raise InvalidInput(f"{where} cannot be read as ROOT: {err}") from None
    with opened:
        if TAG_TREE not in opened.keys(cycle=False):
            raise InvalidInput(f"{where} has no TTree {TAG_TREE!r}")
        tree = opened[TAG_TREE]
        wanted = [a.name for a in SCHEMA] + list(LOCATION)
        missing = [name for name in wanted if name not in tree.keys()]
        if missing:
            raise InvalidInput(f"{where} lacks the TAG branches {', '.join(missing)}")
        arrays = tree.arrays(wanted, library="np")
        files = _file_list(opened, where)
        menu = _trigger_menu(opened, where)
    columns = _typed(arrays, where, n_files=len(files))
    _check_once(columns, where)
    return TagTable(files, columns, menu)


def _check_once(columns: Mapping[str, np.ndarray], where: str) -> None:
    """:raises InvalidInput: naming the first entry whose event (file and
    entry in it) an earlier entry holds already: it would be counted twice.
    """
    files, entries = columns["FileIndex"], columns["Entry"]
    found = _repeated(_location_keys(files, entries))
    if found is not None:
        second, first = found
        event = f"FileIndex {files[second]} Entry {entries[second]}"
        raise InvalidInput(
            f"{where}, entry {second}: {event} is listed already as entry {first}; "
            "list each event once"
        )


def _file_list(opened: Any, where: str) -> tuple[FileRef, ...]:
    if FILES_OBJECT not in opened.keys(cycle=False):
        raise InvalidInput(f"{where} has no {FILES_OBJECT!r} list of files")
    lines = str(opened[FILES_OBJECT]).splitlines()
    return tuple(FileRef(*(line.split() + [""])[:2]) for line in lines)


# -- the columnar store --------------------------------------------------------


def write_columns(table: TagTable, directory: str | Path) -> Path:
    """Write *table* to the columnar store *directory*, which must not exist:
    ``<attribute>.npy`` per column and ``files.json`` (files, triggers),
    written to ``.<name>.partial`` beside it and renamed, so that it is
    whole or absent. A store is never changed once written: a TAG
    registered again gets a new one (:func:`register_tag`).

    :raises OSError: when *directory* exists and is not empty.
    """
    directory = Path(directory)
    partial = directory.with_name(f".{directory.name}.partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    for name, values in table.columns.items():
        np.save(partial / f"{name}.npy", np.ascontiguousarray(values))
    files = [{"guid": ref.guid, "lfn": ref.lfn} for ref in table.files]
    meta = {"files": files, "triggers": list(table.triggers)}
    (partial / "files.json").write_text(json.dumps(meta))
    os.rename(partial, directory)
    return directory


def open_columns(directory: str | Path) -> TagTable:
    """The TAG in the columnar store *directory*, its columns memory-mapped."""
    directory = Path(directory)
    meta = json.loads((directory / "files.json").read_text())
    names = [a.name for a in SCHEMA] + list(LOCATION)
    columns = {n: np.load(directory / f"{n}.npy", mmap_mode="r") for n in names}
    files = tuple(FileRef(f["guid"], f["lfn"]) for f in meta["files"])
    return TagTable(files, columns, tuple(meta["triggers"]))


# -- the relational store ----------------------------------------------------


def sql_columns() -> dict[str, Any]:
    """The ``tag_event`` column of each attribute, by attribute name."""
    table = TagEvent.__table__
    return {a.name: table.c[a.column] for a in SCHEMA}


def insert_events(tag_id: int, table: TagTable, *, session: Session) -> None:
    """Replace the rows of TAG *tag_id* in ``tag_event`` by *table*'s, in
    bulk (executemany of a few thousand rows at a time).
    """
    session.execute(delete(TagEvent).where(TagEvent.tag_database_id == tag_id))
    guids = [ref.guid for ref in table.files]
    for start in range(0, len(table), INSERT_ROWS):
        session.execute(insert(TagEvent), list(_rows(tag_id, table, start, guids)))


def _rows(
    tag_id: int, table: TagTable, start: int, guids: Sequence[str]
) -> Iterator[dict[str, Any]]:
    stop = min(start + INSERT_ROWS, len(table))
    values = {a.column: table.columns[a.name][start:stop].tolist() for a in SCHEMA}
    files = table.columns["FileIndex"][start:stop].tolist()
    entries = table.columns["Entry"][start:stop].tolist()
    for i, seq in enumerate(range(start, stop)):
        row = {column: column_values[i] for column, column_values in values.items()}
        row |= {"tag_database_id": tag_id, "seq": seq, "entry": entries[i]}
        yield row | {"file_guid": guids[files[i]]}


def select_rows_sql(
    tag: TagDatabase, expression: str, *, session: Session
) -> np.ndarray:
    """The rows (``seq``, ascending) of the events of *tag* that pass
    *expression*, selected by the catalogue database.
    """
    condition = compile_for(tag, expression).sql(sql_columns())
    query = (
        select(TagEvent.seq)
        .where(TagEvent.tag_database_id == tag.id, condition)
        .order_by(TagEvent.seq)
    )
    return np.fromiter(session.scalars(query), dtype=np.int64)


def count_sql(tag: TagDatabase, expression: str, *, session: Session) -> int:
    """The number of events of *tag* that pass *expression*, counted by the
    catalogue database.
    """
    condition = compile_for(tag, expression).sql(sql_columns())
    query = select(func.count()).where(TagEvent.tag_database_id == tag.id, condition)
    return int(session.scalar(query) or 0)


def compile_for(tag: TagDatabase, expression: str) -> Selection:
    """*expression* checked against the registered TAG *tag* (its trigger
    menu is in its schema), without opening its stores.

    :raises SelectionError: pointing at what is wrong.
    """
    triggers = json.loads(tag.schema_json or "{}").get("triggers", ())
    return compile_expression(expression, vocabulary(triggers))


def tag_branches(tag: TagDatabase) -> tuple[str, ...]:
    """The branches of the event files the registered TAG *tag* was built
    from; none are known for an imported TAG, or one registered before they
    were kept.
    """
    return tuple(json.loads(tag.schema_json or "{}").get("branches", ()))


# -- distributions and registration --------------------------------------------


def distributions(table: TagTable, bins: int = HISTOGRAM_BINS) -> dict[str, Any]:
    """Per attribute: ``min``, ``max``, ``mean`` and a histogram (``edges``,
    ``counts``); whole-number attributes with a small range get one bin per
    value. ``triggerBits`` also gets ``fired``: the events per trigger.
    """
    found: dict[str, Any] = {}
    for attribute in SCHEMA:
        values = table.columns[attribute.name]
        found[attribute.name] = _distribution(values, attribute.kind, bins)
    bits = table.columns["triggerBits"]
    names = table.triggers or tuple(f"bit{bit}" for bit in range(64))
    fired = {
        name: int(np.count_nonzero(bits & np.int64(bit_mask(bit))))
        for bit, name in enumerate(names)
    }
    # Without a menu, only the bits in use are worth showing.
    found["triggerBits"]["fired"] = {
        name: count for name, count in fired.items() if count or table.triggers
    }
    return found


def _distribution(values: np.ndarray, kind: str, bins: int) -> dict[str, Any]:
    # Over the finite values (build and import refuse others): JSON has no
    # NaN or Infinity, and a histogram reaching to infinity has no bins.
    values = values[np.isfinite(values)] if kind == FLOAT else values
    if len(values) == 0:
        return {"min": None, "max": None, "mean": None, "edges": [], "counts": []}
    low, high = values.min().item(), values.max().item()
    if kind == INTEGER and high - low < 2 * bins:
        edges: Any = np.arange(low, high + 2) - 0.5
    else:
        edges = np.linspace(low, high if high > low else low + 1, bins + 1)
    counts, edges = np.histogram(values, bins=edges)
    mean = float(np.mean(values, dtype=np.float64))
    return {
        "min": low,
        "max": high,
        "mean": mean,
        "edges": [float(edge) for edge in edges],
        "counts": counts.tolist(),
    }


def tag_directory(data_dir: str | Path, dataset: str) -> Path:
    """Where the versions of the columnar store of *dataset*'s TAG live
    under *data_dir*.
    """
    return Path(data_dir).resolve() / "tags" / dataset


def register_tag(
    dataset: str,
    table: TagTable,
    *,
    data_dir: str | Path,
    session: Session,
    relational: bool = True,
) -> TagDatabase:
    """Store *table* as the TAG of *dataset* (replacing an older one): the
    columnar store under *data_dir*, the rows in ``tag_event`` unless
    *relational* is false (for very large TAGs), and the catalogue record.

    The columnar store is a new version, a directory the record points to
    from the commit on (:func:`_new_version`): a reader finds the old TAG or
    the new one, whole, and a rolled back registration changes nothing.

    :raises DatasetNotFound: when there is no such dataset.
    :raises TagReplaced: when another process registered this TAG meanwhile.
    """
    owner = get_dataset(dataset, session=session)
    home = tag_directory(data_dir, dataset)
    tag = session.scalar(select(TagDatabase).where(TagDatabase.dataset_id == owner.id))
    first = tag is None
    if tag is None:
        tag = TagDatabase(dataset=owner)
        tag.location = str(write_columns(table, _version(home, 1)))
    else:
        _new_version(tag, table, home, session=session)
    tag.store = "npy+sql" if relational else "npy"
    tag.schema_json = schema_json(table)
    tag.distributions_json = json.dumps(distributions(table), allow_nan=False)
    tag.n_events = len(table)
    tag.source_files, tag.source_events, tag.source_size = _source_totals(
        owner, table.files, session=session
    )
    tag.status = "ready"
    if first:
        _insert_first(tag, session=session)
    session.flush()
    if relational:
        insert_events(tag.id, table, session=session)
    else:
        session.execute(delete(TagEvent).where(TagEvent.tag_database_id == tag.id))
    return tag


def _insert_first(tag: TagDatabase, *, session: Session) -> None:
    """Insert the record of a dataset's first TAG, *tag*.

    :raises TagReplaced: when another process registered a first TAG of the
        dataset meanwhile (the unique ``dataset_id`` stops the second); its
        columnar store is then removed.
    """
    try:
        with session.begin_nested():
            session.add(tag)
    except IntegrityError as err:
        if not _names_tag_of_dataset(err):
            raise
        shutil.rmtree(tag.location, ignore_errors=True)
        raise TagReplaced(tag.dataset.name) from None


def _names_tag_of_dataset(err: IntegrityError) -> bool:
    """Whether *err* is the unique ``dataset_id`` of ``tag_database``
    refusing a second row (each database words it its own way).
    """
    text = str(err.orig)
    return TAG_OF_DATASET in text or "tag_database.dataset_id" in text


def _source_totals(
    owner: Dataset, files: Sequence[FileRef], *, session: Session
) -> tuple[int, int, int]:
    """The number, events and bytes of the files of *owner* that *files*
    names, as the catalogue counts them now.
    """
    wanted = {ref.guid for ref in files}
    query = select(File.guid, File.events, File.size).where(
        File.dataset_id == owner.id
    )
    found = [(n or 0, size or 0) for guid, n, size in session.execute(query)
             if guid in wanted]  # fmt: skip
    return len(found), sum(n for n, _ in found), sum(size for _, size in found)


def _new_version(
    tag: TagDatabase, table: TagTable, home: Path, *, session: Session
) -> None:
    """Write *table* as the next version of the columnar store of *tag*, in
    *home*, and point *tag* at it, if no other process did so meanwhile.
    The one replaced is kept (see :func:`_remove_versions`).

    :raises TagReplaced: when *tag* no longer points where it did.
    """
    previous = tag.location
    number = _version_number(previous)
    directory = write_columns(table, _version(home, number + 1))
    moved = session.execute(
        update(TagDatabase)
        .where(TagDatabase.id == tag.id, TagDatabase.location == previous)
        .values(location=str(directory))
    )
    if moved.rowcount != 1:  # type: ignore[attr-defined]
        shutil.rmtree(directory, ignore_errors=True)
        raise TagReplaced(tag.dataset.name)
    tag.location = str(directory)
    with contextlib.suppress(FileNotFoundError):
        os.utime(Path(previous) / "files.json")  # when it was replaced
    _remove_versions(home, before=number)


def _version(home: Path, number: int) -> Path:
    # The random part keeps apart two processes writing the same version.
    return home / f"{number}-{secrets.token_hex(4)}"


def _version_number(location: str) -> int:
    """The version of the columnar store at *location*; 0 for one written
    before stores had versions (``<data_dir>/tags/<dataset>`` itself).
    """
    found = _VERSION.fullmatch(Path(location).name)
    return int(found[1]) if found else 0


def _remove_versions(home: Path, *, before: int) -> None:
    """Remove the versions of the columnar store in *home* numbered below
    *before* (the current one), those left half written included, that were
    replaced over :data:`KEEP_REPLACED` seconds ago: no reader still opens
    them. Version 0, a store of before versions, is the files in *home*.
    """
    old = time.time() - KEEP_REPLACED
    unversioned = before > 0 and _replaced_at(home) < old
    for path in list(home.iterdir()):
        found = _VERSION.fullmatch(path.name)
        if path.is_file() and unversioned:
            path.unlink(missing_ok=True)
        elif found and int(found[1]) < before and _replaced_at(path) < old:
            shutil.rmtree(path, ignore_errors=True)


def _replaced_at(store: Path) -> float:
    """When the columnar store *store* was replaced (its ``files.json``'s
    time), or written when it never was current.
    """
    for path in (store / "files.json", store):
        with contextlib.suppress(FileNotFoundError):
            return path.stat().st_mtime
    return 0.0


def export_tag(dataset: str, path: str | Path, *, session: Session) -> TagTable:
    """Write the TAG of *dataset* to the ROOT file *path*
    (:func:`write_tag_root`); return the TAG.

    :raises TagNotFound: when the dataset has no TAG.
    """
    table = open_tag(get_tag(dataset, session=session))
    write_tag_root(table, path)
    return table


def import_tag(
    dataset: str, path: str | Path, *, data_dir: str | Path, session: Session
) -> TagDatabase:
    """Register the TAG ROOT file *path* (as :func:`write_tag_root` writes
    it) as the TAG of *dataset*, replacing an older one.

    :raises InvalidInput: for a file that is not such a TAG, or that lists a
        file which is not one of the dataset's: skims of it would find no
        event file to read.
    :raises DatasetNotFound: when there is no such dataset.
    """
    table = read_tag_root(path)
    owner = get_dataset(dataset, session=session)
    query = select(File.guid, File.lfn, File.events).where(
        File.dataset_id == owner.id
    )
    held = {guid: (lfn, events) for guid, lfn, events in session.execute(query)}
    strangers = [f for f in table.files if held.get(f.guid, ("",))[0] != f.lfn]
    if strangers:
        listed = ", ".join(f"{f.guid} {f.lfn}" for f in strangers[:3])
        raise InvalidInput(
            f"{path} lists {len(strangers)} file(s) that are not files of "
            f"{dataset}: {listed}"
        )
    events = [held[f.guid][1] for f in table.files]
    _check_entries(table, events, path)
    _check_complete(table, events, path)
    return register_tag(dataset, table, data_dir=data_dir, session=session)


def _check_entries(
    table: TagTable, events: Sequence[int | None], where: str | Path
) -> None:
    """Check that every ``Entry`` of *table* is within its file's *events*
    (the catalogue's count; a file without one is not checked): an entry
    past the end would select events that no event file holds.

    :raises InvalidInput: naming the first entry past its file's end.
    """
    known = np.array([-1 if n is None else n for n in events], np.int64)
    ends = known[table.columns["FileIndex"]]
    past = np.flatnonzero((ends >= 0) & (table.columns["Entry"] >= ends))
    if past.size:
        row = int(past[0])
        ref = table.files[int(table.columns["FileIndex"][row])]
        raise InvalidInput(
            f"{where}, entry {row}: Entry {table.columns['Entry'][row]} is past "
            f"the end of {ref.lfn}, which holds {ends[row]} events"
        )


def _check_complete(
    table: TagTable, events: Sequence[int | None], where: str | Path
) -> None:
    """Check that *table* has a row for every event of each file it lists,
    as many as the catalogue's *events* of the file (a file without a count
    is not checked): a TAG missing events would make skims miss them too,
    and pass for in step with its dataset.

    :raises InvalidInput: naming the files whose events the TAG does not
        hold, with both counts.
    """
    held = np.bincount(table.columns["FileIndex"], minlength=len(table.files))
    short = [
        f"{table.files[i].lfn} ({held[i]} of {n})"
        for i, n in enumerate(events)
        if n is not None and held[i] != n
    ]
    if short:
        shown = ", ".join(short[:3]) + (" ..." if len(short) > 3 else "")
        raise InvalidInput(
            f"{where} does not hold every event of {len(short)} file(s) it lists, "
            f"as the catalogue counts them: {shown}; a TAG has one row per "
            "event of each of its files ('hepcat tag build' makes one)"
        )


def get_tag(dataset: str, *, session: Session) -> TagDatabase:
    """The TAG database of *dataset*.

    :raises DatasetNotFound: when there is no such dataset.
    :raises TagNotFound: when it has no TAG.
    """
    tag = tag_of(get_dataset(dataset, session=session), session=session)
    if tag is None:
        raise TagNotFound(dataset)
    return tag


def tag_of(dataset: Dataset, *, session: Session) -> TagDatabase | None:
    """The TAG database of *dataset*, or None when it has none."""
    query = select(TagDatabase).where(TagDatabase.dataset_id == dataset.id)
    return session.scalar(query)


def open_tag(tag: TagDatabase) -> TagTable:
    """The columnar store of *tag*, memory-mapped."""
    return open_columns(tag.location)


def dataset_event_files(
    dataset: str, store: Any, *, session: Session
) -> list[EventFile]:
    """The event files of *dataset*, found in the file store *store*
    (:class:`skimengine.filestore.FileStore`): its files that count
    (:func:`catalog.datasets.counted_files`, those of ``nFiles``: not lost,
    and ``finished`` for ProdSys), by LFN.

    :raises EventFileNotFound: for a file the store does not have.
    """
    owner = get_dataset(dataset, session=session)
    query = (
        select(File)
        .join(Dataset, Dataset.id == File.dataset_id)
        .where(counted_files([owner.id]))
        .order_by(File.lfn)
    )
    return [
        EventFile(
            FileRef(f.guid, f.lfn), store.path(f.lfn, scope=owner.scope, guid=f.guid)
        )
        for f in session.scalars(query)
    ]


def check_sources(
    collection: EventCollection,
    sources: Mapping[str, Any],
    dataset: Dataset,
    *,
    session: Session,
) -> None:
    """Check that every file *collection* has events in is one of *sources*
    (the event files :func:`dataset_event_files` found, by LFN).

    :raises TagOutdated: naming a file that is lost or no longer in *dataset*.
    """
    used = np.flatnonzero(np.bincount(collection.file_index, minlength=1))
    names = [collection.files[i].name for i in used.tolist()]
    missing = [name for name in names if name not in sources]
    if not missing:
        return
    query = select(File.lfn).where(
        File.dataset_id == dataset.id, File.lost.is_(True), File.lfn.in_(missing[:1])
    )
    raise TagOutdated(dataset.name, missing, list(session.scalars(query)))


# -- checking uploaded collections -------------------------------------------


def check_collection(
    collection: EventCollection, table: TagTable, dataset: str
) -> EventCollection:
    """*collection* checked against the TAG *table* of *dataset*: every file
    is one of the dataset's, every (file, entry) is in the TAG and holds the
    run and event number the collection says. Returns it with both names of
    each file filled in.

    :raises CollectionError: naming the first event at fault.
    """
    resolved = resolve_files(collection, table.files, dataset)
    position = {ref: index for index, ref in enumerate(table.files)}
    files = np.array([position[ref] for ref in resolved.files], np.int64)
    rows, present = _tag_rows(table, files[resolved.file_index], resolved.entry)
    _first_problem(resolved, ~present, "is not in the TAG of " + dataset)
    differs = (table.columns["RunNumber"][rows] != resolved.run_number) | (
        table.columns["EventNumber"][rows] != resolved.event_number
    )
    _first_problem(resolved, differs, "holds another run or event number in the TAG")
    lumi = table.columns["LumiBlock"][rows]
    _first_problem(
        resolved,
        lumi != resolved.lumi_block,
        lambda i: (
            f"is in lumi block {lumi[i]} in the TAG, not {resolved.lumi_block[i]}"
        ),
    )
    _check_repeated(resolved, rows)
    return resolved


def _check_repeated(collection: EventCollection, rows: np.ndarray) -> None:
    """:raises CollectionError: naming the first event listed a second time
    (it would be extracted once, and counted twice).
    """
    found = _repeated(rows)
    if found is None:
        return
    second, first = found
    bad = np.zeros(len(rows), bool)
    bad[second] = True
    what = f"is listed already as event {first + 1}; list each event once"
    _first_problem(collection, bad, what)


def _repeated(keys: np.ndarray) -> tuple[int, int] | None:
    """The first position whose key an earlier one holds, and that earlier
    one's; None when every key is there once.
    """
    order = np.argsort(keys, kind="stable")
    again = np.flatnonzero(keys[order][1:] == keys[order][:-1])
    if not len(again):
        return None
    second = int(order[again + 1].min())
    return second, int(np.flatnonzero(keys == keys[second])[0])


def _tag_rows(
    table: TagTable, file_index: np.ndarray, entry: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """The TAG row of each (file, entry), and whether there is one."""
    wanted = _location_keys(file_index, entry)
    have = _location_keys(table.columns["FileIndex"], table.columns["Entry"])
    if len(have) == 0:
        return np.zeros(len(wanted), np.int64), np.zeros(len(wanted), bool)
    order = np.argsort(have, kind="stable")
    found = np.searchsorted(have, wanted, sorter=order)
    rows = order[np.minimum(found, len(have) - 1)]
    # An entry beyond ENTRY_BITS would spill into the file's bits of its key.
    fits = (np.asarray(entry) >= 0) & (np.asarray(entry) < 2**ENTRY_BITS)
    return rows, (have[rows] == wanted) & fits


def _location_keys(file_index: np.ndarray, entry: np.ndarray) -> np.ndarray:
    files = np.asarray(file_index, np.int64) << ENTRY_BITS
    return files | np.asarray(entry, np.int64)


def _first_problem(
    collection: EventCollection, bad: np.ndarray, what: str | Callable[[int], str]
) -> None:
    """:raises CollectionError: naming the first event of *collection* that is
    *bad*, and *what* is wrong with it (a text, or a function of the event's
    index giving one).
    """
    if not bad.any():
        return
    i = int(np.flatnonzero(bad)[0])
    if callable(what):
        what = what(i)
    ref = collection.files[collection.file_index[i]]
    event = f"run {collection.run_number[i]} event {collection.event_number[i]}"
    reason = f"{event} (entry {collection.entry[i]} of {ref.name}) {what}"
    raise CollectionError(f"collection, event {i + 1} of {len(collection)}", reason)
