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

import json
import os
import shutil
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import awkward as ak
import numpy as np
import uproot
from sqlalchemy import delete, func, insert, select
from sqlalchemy.orm import Session

from catalog.datasets import get_dataset
from catalog.errors import InvalidInput, NotFound
from catalog.models import Dataset, File, TagDatabase, TagEvent
from skimengine.collection import (
    ENTRY_BITS,
    FILES_OBJECT,
    CollectionError,
    EventCollection,
    FileRef,
    make_collection,
    resolve_files,
)
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

    :raises InvalidInput: for a file without the tree or a needed branch, or
        files whose trigger menus differ.
    """
    parts: list[dict[str, np.ndarray]] = []
    menus: set[tuple[str, ...]] = set()
    branches: tuple[str, ...] = ()
    for index, event_file in enumerate(files):
        with uproot.open(event_file.path) as opened:
            events = _event_tree(opened, tree, event_file)
            menus.add(_trigger_menu(opened))
            branches = branches or tuple(events.keys(recursive=False))
            steps = events.iterate(EVENT_BRANCHES, step_size=step_size, report=True)
            for arrays, report in steps:
                parts.append(_attributes(arrays, index, report.tree_entry_start))
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


def _trigger_menu(opened: Any) -> tuple[str, ...]:
    if TRIGGER_MENU not in opened.keys(cycle=False):
        return ()
    text = str(opened[TRIGGER_MENU]).strip()
    if not text:
        return ()
    pairs = [item.split(":", 1) for item in text.split(",")]
    by_bit = {int(bit): name.strip() for bit, name in pairs}
    return tuple(by_bit.get(bit, f"bit{bit}") for bit in range(max(by_bit) + 1))


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
    """The columns of *parts* end to end, in the schema's types."""
    types = {a.name: a.dtype for a in SCHEMA} | LOCATION_TYPES
    columns = {}
    for name, dtype in types.items():
        pieces = [np.asarray(part[name]) for part in parts]
        joined = np.concatenate(pieces) if pieces else np.empty(0, dtype)
        columns[name] = _as_type(joined, np.dtype(dtype), name)
    return columns


def _as_type(values: np.ndarray, dtype: np.dtype[Any], name: str) -> np.ndarray:
    if values.dtype == np.uint64 and dtype == np.int64:
        # EventNumber must fit the catalogue's signed BIGINT; trigger bits
        # keep their 64 bits, bit 63 as the sign.
        if name == "EventNumber" and len(values) and values.max() >= 2**63:
            raise InvalidInput("an EventNumber is 2**63 or more")
        return values.view(np.int64)
    return values.astype(dtype, copy=False)


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

    :raises InvalidInput: for a file without the TAG tree, a branch or the
        file list.
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
        menu = _trigger_menu(opened)
    columns = _concatenate([arrays])
    if len(columns["FileIndex"]) and columns["FileIndex"].max() >= len(files):
        raise InvalidInput(f"{where}: FileIndex goes beyond the {len(files)} files")
    return TagTable(files, columns, menu)


def _file_list(opened: Any, where: str) -> tuple[FileRef, ...]:
    if FILES_OBJECT not in opened.keys(cycle=False):
        raise InvalidInput(f"{where} has no {FILES_OBJECT!r} list of files")
    lines = str(opened[FILES_OBJECT]).splitlines()
    return tuple(FileRef(*(line.split() + [""])[:2]) for line in lines)


# -- the columnar store --------------------------------------------------------


def write_columns(table: TagTable, directory: str | Path) -> Path:
    """Write *table* to the columnar store *directory* (replaced whole):
    ``<attribute>.npy`` per column and ``files.json`` (files, triggers).
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
    shutil.rmtree(directory, ignore_errors=True)
    os.replace(partial, directory)
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
    """Where the columnar store of *dataset*'s TAG lives under *data_dir*."""
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

    :raises DatasetNotFound: when there is no such dataset.
    """
    owner = get_dataset(dataset, session=session)
    tag = session.scalar(select(TagDatabase).where(TagDatabase.dataset_id == owner.id))
    if tag is None:
        tag = TagDatabase(dataset=owner)
        session.add(tag)
    directory = write_columns(table, tag_directory(data_dir, dataset))
    tag.store = "npy+sql" if relational else "npy"
    tag.location = str(directory)
    tag.schema_json = schema_json(table)
    tag.distributions_json = json.dumps(distributions(table))
    tag.n_events = len(table)
    tag.status = "ready"
    session.flush()
    if relational:
        insert_events(tag.id, table, session=session)
    else:
        session.execute(delete(TagEvent).where(TagEvent.tag_database_id == tag.id))
    return tag


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
    query = select(File.guid, File.lfn).where(File.dataset_id == owner.id)
    held: dict[str, str] = {guid: lfn for guid, lfn in session.execute(query)}
    strangers = [f for f in table.files if held.get(f.guid) != f.lfn]
    if strangers:
        listed = ", ".join(f"{f.guid} {f.lfn}" for f in strangers[:3])
        raise InvalidInput(
            f"{path} lists {len(strangers)} file(s) that are not files of "
            f"{dataset}: {listed}"
        )
    return register_tag(dataset, table, data_dir=data_dir, session=session)


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
    """The event files of *dataset* (its files not lost, by LFN), found in
    the file store *store* (:class:`skimengine.filestore.FileStore`).

    :raises EventFileNotFound: for a file the store does not have.
    """
    owner = get_dataset(dataset, session=session)
    query = (
        select(File)
        .where(File.dataset_id == owner.id, File.lost.is_(False))
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
    _check_repeated(resolved, rows)
    return resolved


def _check_repeated(collection: EventCollection, rows: np.ndarray) -> None:
    """:raises CollectionError: naming the first event listed a second time
    (it would be extracted once, and counted twice).
    """
    order = np.argsort(rows, kind="stable")
    again = np.flatnonzero(rows[order][1:] == rows[order][:-1])
    if not len(again):
        return
    second = int(order[again + 1].min())
    first = int(np.flatnonzero(rows == rows[second])[0])
    bad = np.zeros(len(rows), bool)
    bad[second] = True
    what = f"is listed already as event {first + 1}; list each event once"
    _first_problem(collection, bad, what)


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


def _first_problem(collection: EventCollection, bad: np.ndarray, what: str) -> None:
    if not bad.any():
        return
    i = int(np.flatnonzero(bad)[0])
    ref = collection.files[collection.file_index[i]]
    event = f"run {collection.run_number[i]} event {collection.event_number[i]}"
    reason = f"{event} (entry {collection.entry[i]} of {ref.name}) {what}"
    raise CollectionError(f"collection, event {i + 1} of {len(collection)}", reason)
