"""Extraction: copy the events of a collection into new ROOT files.

An event collection says which entries of which source files to keep. The
work is planned before anything is read:

1. :func:`plan_extraction` opens each source file's tree (metadata only),
   estimates the bytes an entry takes in the output from the compressed size
   of the chosen branches, and packs the selected entries, in order, into
   output files of about *target_size* bytes. Each output file is one
   :class:`Unit`; a large source file is split over several units, small
   ones share one. With *parallel* workers, a plan with enough to read is
   also cut between clusters into that many units reading equal shares.
2. :func:`extract_unit` writes one unit. For each of its source files it
   reads only the clusters (entry ranges whose boundaries every chosen branch
   shares; one basket per branch in files written by uproot) that hold
   selected entries, and keeps the selected entries
   (:mod:`skimengine.baskets`). The output TTree has the chosen branches, the
   jagged ones grouped under the same count branches as in the source,
   in baskets of a few MB at most (:mod:`skimengine.treewriter`).
3. The output is written under a temporary name, flushed to disk, and
   linked to its final name only when complete, so a final name always
   holds a complete file. Running a plan again (:func:`pending_units`) skips
   the units whose file is there: a crash resumes without duplicating output
   and a retry redoes only the units that failed.

``RunNumber``, ``EventNumber`` and ``LumiBlock`` are always kept, and a
jagged branch brings its count branch along.
"""

from __future__ import annotations

import base64
import difflib
import json
import mmap
import os
import re
import threading
import uuid
import zlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import uproot
from zlib_ng import zlib_ng

from catalog.errors import InvalidInput, InvalidName, NotFound
from catalog.nomenclature import (
    MAX_NAME_LENGTH,
    build_dataset_name,
    parse_dataset_name,
)
from skimengine.baskets import (
    Column,
    SourceTree,
    cluster_ranges,
    common_boundaries,
    read_entries,
    split_at,
)
from skimengine.filestore import reading_event_file
from skimengine.treewriter import TreeWriter

__all__ = [
    "DEFAULT_COMPRESSION",
    "DEFAULT_TARGET_SIZE",
    "CANCEL_MARKER",
    "EventFileGone",
    "OutputFile",
    "Piece",
    "Plan",
    "Unit",
    "UnitCancelled",
    "cancel_units",
    "check_branches",
    "clear_cancel",
    "cluster_ranges",
    "entries_by_file",
    "extract_unit",
    "output_dataset_name",
    "normal_compression",
    "output_file_name",
    "parse_compression",
    "pending_units",
    "plan_extraction",
]

TREE_NAME = "CollectionTree"
#: Branches every event file has, kept whatever subset is chosen.
IDENTITY_BRANCHES = ("RunNumber", "EventNumber", "LumiBlock")
DEFAULT_COMPRESSION = "zstd:1"
#: Bytes of an output file before the next one is started.
DEFAULT_TARGET_SIZE = 2_000_000_000
#: Bytes of an output file besides its baskets: streamers, then per branch.
FILE_OVERHEAD, BRANCH_OVERHEAD = 21_000, 600
#: Least compressed bytes a unit reads when a plan is cut for parallel units.
MIN_SHARE = 16_000_000
#: A file in an output directory that tells the units writing there to stop:
#: each looks for it between the branches it reads, so a running unit stops
#: within a fraction of a second, whichever worker process it is in.
CANCEL_MARKER = ".cancel"
#: The compression algorithms of an output file, and the highest level of
#: each (the lowest is 0).
_ALGORITHMS = {
    "zstd": (uproot.ZSTD, 22),
    "lz4": (uproot.LZ4, 12),
    "zlib": (uproot.ZLIB, 9),
}


# -- The plan ----------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class Piece:
    """The selected entries of one source file that go into one output."""

    source: str
    path: str
    entries: np.ndarray


@dataclass(frozen=True)
class Unit:
    """One output file to write: its serial number, name and pieces."""

    number: int
    name: str
    pieces: tuple[Piece, ...]

    @property
    def events(self) -> int:
        return sum(len(piece.entries) for piece in self.pieces)


@dataclass(frozen=True)
class Plan:
    """What to extract: the output dataset, tree, branches, compression,
    target size, the units, and the source files' metadata *objects*
    (TObjStrings such as ``TriggerMenu``: name and text) that every output
    file carries too.
    """

    dataset: str
    tree: str
    branches: tuple[str, ...]
    compression: str
    target_size: int
    units: tuple[Unit, ...] = field(default=())
    objects: tuple[tuple[str, str], ...] = ()

    @property
    def events(self) -> int:
        return sum(unit.events for unit in self.units)

    def to_json(self) -> str:
        """The plan as JSON, to be kept beside a skim (entries packed)."""
        data = {k: v for k, v in self.__dict__.items() if k != "units"}
        data["units"] = [
            {
                "number": unit.number,
                "name": unit.name,
                "pieces": [[p.source, p.path, _pack(p.entries)] for p in unit.pieces],
            }
            for unit in self.units
        ]
        return json.dumps(data)

    @classmethod
    def from_json(cls, text: str) -> Plan:
        data = json.loads(text)
        units = tuple(
            Unit(
                u["number"],
                u["name"],
                tuple(Piece(s, p, _unpack(e)) for s, p, e in u["pieces"]),
            )
            for u in data.pop("units")
        )
        data["branches"] = tuple(data["branches"])
        # A plan kept before objects were carried has none.
        data["objects"] = tuple(tuple(pair) for pair in data.get("objects", ()))
        return cls(**data, units=units)


def _pack(entries: np.ndarray) -> str:
    raw = np.asarray(entries, "<i8").tobytes()
    return base64.b64encode(zlib.compress(raw)).decode("ascii")


def _unpack(text: str) -> np.ndarray:
    return np.frombuffer(zlib.decompress(base64.b64decode(text)), "<i8").copy()


@dataclass(frozen=True)
class OutputFile:
    """A complete output file: name, path, events, bytes and checksum
    (``ad:`` and the adler32 of its bytes in hex, as Rucio writes it).
    """

    number: int
    name: str
    path: Path
    events: int
    size: int
    checksum: str
    sources: tuple[str, ...]


# -- Names -------------------------------------------------------------------------


def output_dataset_name(parent: str, login: str, skim: str) -> str:
    """The name of the skim *skim* of dataset *parent* by user *login*:
    ``user.<login>.<parent without its production step>.<skim>``, e.g.
    ``user.jdoe.mc16_13TeV.361106.PowhegPythia8EvtGen_Zee.DAOD_PHYS.e3601_p4164.zee``;
    of a user dataset, ``user.<login>.<its free part>.<skim>`` when it is
    *login*'s, else ``user.<login>.<its whole name>.<skim>``.
    Room is made for the file suffix by shortening the physics short name
    (to 8 characters at least).

    :raises InvalidName: when *login* or *skim* cannot be part of a name, or
        when the names of its files would be longer than a file system
        allows (:data:`MAX_NAME_LENGTH`, 255), whatever the kind of *parent*.
    """
    name = parse_dataset_name(parent)
    if name.kind == "user":
        # A skim of one's own skim goes on with its name; of another user's,
        # it keeps that name whole, scope included, so that it cannot be the
        # name of a skim of one's own.
        own = name.scope == f"user.{login}"
        middle = [name.free or ""] if own else [parent]
    else:
        number = name.dataset_number if name.kind == "mc" else name.run_number
        width = 6 if name.kind == "mc" else 8
        short = name.physics_short or name.stream_name or ""
        middle = [name.project, str(number).zfill(width), short, name.data_type or ""]
        middle += [name.version] if name.version else []
    free = ".".join([*middle, skim])
    excess = len(output_file_name(f"user.{login}.{free}", 1)) - MAX_NAME_LENGTH
    if excess > 0 and name.kind != "user":
        middle[2] = middle[2][: max(8, len(middle[2]) - excess)]
        free = ".".join([*middle, skim])
    output = build_dataset_name(scope=f"user.{login}", free=free)
    _check_room(output, skim)
    return output


def _check_room(output: str, skim: str) -> None:
    """:raises InvalidName: when the files of dataset *output*, the skim
    *skim*, would have names longer than a file system allows.
    """
    length = len(output_file_name(output, 1))
    excess = length - MAX_NAME_LENGTH
    if excess <= 0:
        return
    hint = (
        f"choose a skim name of at most {len(skim) - excess} characters"
        if excess < len(skim)
        else "its parent's name leaves no room for a skim name"
    )
    raise InvalidName(
        output,
        f"its output files would have names of {length} characters (with "
        f"'._000001.root'), more than {MAX_NAME_LENGTH}; {hint}",
    )


def output_file_name(dataset: str, number: int) -> str:
    """The name of output file *number* (from 1) of *dataset*."""
    return f"{dataset}._{number:06d}.root"


def parse_compression(text: str) -> Any:
    """An uproot compression from text such as ``zstd``, ``zstd:3``, ``lz4:1``
    or ``zlib:6`` (:func:`normal_compression`).

    :raises InvalidInput: for an unknown algorithm or a bad level.
    """
    algorithm, _, level = normal_compression(text).partition(":")
    return _ALGORITHMS[algorithm][0](int(level))


def normal_compression(text: str) -> str:
    """The compression *text* (an algorithm, optionally ``:level``; default
    level 1) as ``algorithm:level``, the way it is stored: ``ZSTD: 03`` is
    ``zstd:3``.

    :raises InvalidInput: for an unknown algorithm, or a level that is not a
        whole number within the algorithm's range.
    """
    algorithm, colon, level = str(text).partition(":")
    algorithm, level = algorithm.strip().lower(), level.strip()
    if algorithm not in _ALGORITHMS:
        raise InvalidInput(
            f"unknown compression {text!r}; expected one of "
            f"{', '.join(_ALGORITHMS)}, optionally with ':level', e.g. 'zstd:1'"
        )
    highest = _ALGORITHMS[algorithm][1]
    # ASCII digits only (int() takes '1_0' and other scripts' digits), and
    # few enough of them for int() to read.
    digits = (level.lstrip("0") or level[:1]) if colon else "1"
    if not re.fullmatch(r"[0-9]{1,3}", digits) or int(digits) > highest:
        raise InvalidInput(
            f"compression {text!r}: the level of {algorithm} is a whole number "
            f"from 0 to {highest}, e.g. '{algorithm}:1'"
        )
    return f"{algorithm}:{int(digits)}"


# -- Planning ----------------------------------------------------------------------


def entries_by_file(collection: Any) -> dict[str, np.ndarray]:
    """The sorted, unique entry numbers of each file of *collection*: an
    :class:`~skimengine.collection.EventCollection`, a mapping from file (LFN
    or GUID) to entry numbers, or a table with ``file`` and ``entry`` columns
    (a numpy structured array, a dict of arrays, or an object with those
    attributes). Files keep their order of first appearance.
    """
    if hasattr(collection, "entries_by_file"):
        collection = collection.entries_by_file()
    if isinstance(collection, Mapping) and "entry" not in collection:
        return {str(key): _sorted_unique(value) for key, value in collection.items()}
    files, entries = _columns(collection)
    keys, first = np.unique(files, return_index=True)
    result = {}
    for key in keys[np.argsort(first)]:
        result[str(key)] = np.unique(entries[files == key])
    return result


def _sorted_unique(values: Any) -> np.ndarray:
    """*values* sorted without repeats; a collection's entries usually are
    already, and checking costs a tenth of sorting them again.
    """
    entries = np.asarray(values, np.int64)
    if len(entries) < 2 or bool(np.all(entries[1:] > entries[:-1])):
        return entries
    return np.unique(entries)


def _columns(collection: Any) -> tuple[np.ndarray, np.ndarray]:
    try:
        files, entries = collection["file"], collection["entry"]
    except (KeyError, TypeError, IndexError, ValueError):
        try:
            files, entries = collection.file, collection.entry
        except AttributeError:
            raise InvalidInput(
                "an event collection is a mapping from file to entry numbers, "
                "or a table with 'file' and 'entry' columns"
            ) from None
    return np.asarray(files).astype(str), np.asarray(entries, np.int64)


def plan_extraction(
    collection: Any,
    sources: Mapping[str, Path | str],
    *,
    dataset: str,
    tree: str = TREE_NAME,
    branches: Sequence[str] | None = None,
    compression: str = DEFAULT_COMPRESSION,
    target_size: int = DEFAULT_TARGET_SIZE,
    parallel: int = 1,
) -> Plan:
    """Plan the extraction of *collection* from the *sources* (file key →
    path) into output files of dataset *dataset*.

    :param branches: the branches to write; default all of the source tree.
    :param compression: ``zstd``, ``lz4`` or ``zlib``, with an optional
        ``:level`` (default ``zstd:1``).
    :param target_size: bytes (about) of each output file (default 2 GB).
    :param parallel: the units that can run at once (an executor's
        ``workers``). When the clusters to read hold more than
        :data:`MIN_SHARE` compressed bytes per unit, the plan has at least
        this many units, cut between clusters into equal shares of reading,
        so that a small selection from a big dataset is not read by one
        process while the others wait (default 1: only *target_size* cuts).
    :raises InvalidInput: for an unknown branch, an entry beyond the end of
        its file, a file without a path, or a bad compression.
    """
    parse_compression(compression)
    if target_size <= 0:
        raise InvalidInput(f"the target size must be positive, not {target_size}")
    selected = entries_by_file(collection)
    found: list[_Source] = []
    chosen: tuple[str, ...] | None = None
    objects: dict[str, str] | None = None
    for key, entries in selected.items():
        if not len(entries):
            continue
        path = _source_path(sources, key)
        with reading_event_file(key, path), SourceTree(path, tree) as opened:
            source_tree = _tree(opened, key)
            chosen = chosen or _chosen_branches(source_tree, branches)
            _check_entries(key, entries, source_tree.num_entries)
            found.append(_Source.of(key, str(path), entries, source_tree, chosen))
            objects = _same_objects(objects, _metadata(opened.file), key)
    branches = chosen or tuple(branches or ())
    reading = sum(source.read_bytes for source in found)
    share = max(reading / parallel, MIN_SHARE) if parallel > 1 else float("inf")
    overhead = FILE_OVERHEAD + BRANCH_OVERHEAD * len(branches)
    packer = _Packer(dataset, target_size, overhead, share)
    for source in found:
        packer.add(source)
    carried = tuple(sorted((objects or {}).items()))
    units = packer.units()
    return Plan(dataset, tree, branches, compression, target_size, units, carried)


def _metadata(file: Any) -> dict[str, str]:
    """The TObjStrings of a source *file* (its metadata, such as the
    ``TriggerMenu``), by name. Objects of other classes are not carried.
    """
    names = file.keys(filter_classname="TObjString", cycle=False)
    return {name: str(file[name]) for name in names}


def _same_objects(
    before: dict[str, str] | None, found: dict[str, str], key: str
) -> dict[str, str]:
    """The metadata *found* in source *key*, checked to be the same as
    the other sources' (*before*; None before the first).

    :raises InvalidInput: for a source whose metadata differs.
    """
    if before is not None and before != found:
        differ = sorted(set(before.items()) ^ set(found.items()))
        raise InvalidInput(
            f"file {key!r} has another {differ[0][0]} than the files before it: "
            "its events cannot share output files with theirs"
        )
    return found


def _source_path(sources: Mapping[str, Path | str], key: str) -> Path:
    try:
        return Path(sources[key])
    except KeyError:
        raise InvalidInput(f"the collection names file {key!r}, not given") from None


def _tree(source: SourceTree, key: str) -> Any:
    """The layout of the tree of *source* (file *key* of the collection)."""
    try:
        return source.info
    except KeyError:
        keys = ", ".join(source.file.keys(cycle=False)) or "nothing"
        raise InvalidInput(
            f"file {key!r} has no tree {source.name!r}; it has {keys}"
        ) from None


def _chosen_branches(tree: Any, wanted: Sequence[str] | None) -> tuple[str, ...]:
    """The chosen branches in the source's order, with the identity branches
    and the count branch of every chosen jagged branch.
    """
    names = list(tree.keys())
    if wanted is None:
        return tuple(names)
    check_branches(wanted, names)
    keep = set(wanted) | set(IDENTITY_BRANCHES)
    counts = {tree[name].count for name in keep if name in names}
    return tuple(name for name in names if name in keep | counts)


def check_branches(wanted: Sequence[str], names: Sequence[str]) -> None:
    """:raises InvalidInput: naming the *wanted* branches that are not among
    the source tree's *names*, with the near misses.
    """
    unknown = [name for name in wanted if name not in names]
    if unknown:
        hints = [
            f"{name!r}" + (f" (did you mean {near[0]!r}?)" if near else "")
            for name in unknown
            for near in [difflib.get_close_matches(name, names, n=1)]
        ]
        raise InvalidInput(f"no branch {', '.join(hints)} in the source tree")


def _check_entries(key: str, entries: np.ndarray, n_entries: int) -> None:
    if entries[0] < 0 or entries[-1] >= n_entries:
        bad = entries[0] if entries[0] < 0 else entries[-1]
        raise InvalidInput(
            f"the collection asks for entry {bad} of file {key!r}, "
            f"which has entries 0 to {n_entries - 1}"
        )


def _entry_bytes(tree: Any, branches: Sequence[str]) -> float:
    """Compressed bytes an entry of *branches* takes in the source."""
    total = sum(tree[name].compressed_bytes for name in branches)
    return float(total / max(tree.num_entries, 1))


@dataclass(frozen=True, eq=False)
class _Source:
    """The selected entries of a source file, with what it costs to read
    them: the compressed bytes an entry takes, and the boundaries of the
    clusters that are read whole.
    """

    key: str
    path: str
    entries: np.ndarray
    per_entry: float
    bounds: np.ndarray

    @classmethod
    def of(
        cls, key: str, path: str, entries: np.ndarray, tree: Any, chosen: Sequence[str]
    ) -> _Source:
        per_entry = _entry_bytes(tree, chosen)
        return cls(key, path, entries, per_entry, common_boundaries(tree, chosen))

    @cached_property
    def clusters(self) -> list[tuple[np.ndarray, float]]:
        """The selected entries of each cluster that holds some, with the
        compressed bytes read for that cluster.
        """
        bounds = self.bounds.tolist()
        return [
            (part, (bounds[number + 1] - bounds[number]) * self.per_entry)
            for number, part in split_at(self.entries, self.bounds)
        ]

    @property
    def read_bytes(self) -> float:
        return sum(read for _, read in self.clusters)


class _Packer:
    """Fills output units with pieces of source files, in order: a unit is
    closed when its estimated output reaches the target size, or, between
    two clusters, when the bytes it reads reach *share*.
    """

    def __init__(
        self, dataset: str, target_size: int, overhead: int, share: float
    ) -> None:
        self.dataset = dataset
        self.target = target_size
        self.overhead = overhead
        self.share = share
        self.done: list[Unit] = []
        self.pieces: list[tuple[str, str, list[np.ndarray]]] = []
        self.filled = 0.0
        self.read = 0.0

    def add(self, source: _Source) -> None:
        for entries, read in source.clusters:
            self._take(source.key, source.path, entries, source.per_entry)
            self.read += read
            if self.read >= self.share:
                self._close()

    def _take(self, key: str, path: str, entries: np.ndarray, per_entry: float) -> None:
        while len(entries):
            free = self.target - self.overhead - self.filled
            room = int(free // max(per_entry, 1e-9))
            if room <= 0 and self.pieces:
                self._close()
                continue
            taken, entries = entries[: max(room, 1)], entries[max(room, 1) :]
            if self.pieces and self.pieces[-1][0] == key:
                self.pieces[-1][2].append(taken)
            else:
                self.pieces.append((key, path, [taken]))
            self.filled += len(taken) * per_entry

    def _close(self) -> None:
        if not self.pieces:
            return
        number = len(self.done) + 1
        name = output_file_name(self.dataset, number)
        pieces = tuple(Piece(k, p, np.concatenate(e)) for k, p, e in self.pieces)
        self.done.append(Unit(number, name, pieces))
        self.pieces, self.filled, self.read = [], 0.0, 0.0

    def units(self) -> tuple[Unit, ...]:
        self._close()
        return tuple(self.done)


# -- Running a unit ----------------------------------------------------------------


def pending_units(plan: Plan, output_dir: Path) -> list[Unit]:
    """The units of *plan* whose output file is not yet in *output_dir*."""
    return [u for u in plan.units if not (Path(output_dir) / u.name).is_file()]


class UnitCancelled(Exception):  # noqa: N818 (an outcome, not a mistake)
    """A unit stopped because its output directory was marked cancelled
    (:func:`cancel_units`); it left no file behind.
    """

    def __init__(self, name: str, written: int, planned: int) -> None:
        # The arguments are all of it, so the error crosses process
        # boundaries (pickle) as it is.
        super().__init__(name, written, planned)
        self.name, self.written, self.planned = name, written, planned

    def __str__(self) -> str:
        return (
            f"extraction of {self.name} cancelled after {self.written} of "
            f"{self.planned} entries; nothing was kept"
        )


class EventFileGone(NotFound):
    """A source file of a plan is no longer where planning found it."""

    def __init__(self, lfn: str, path: str) -> None:
        super().__init__(
            f"event file {lfn} is missing from the file store: {path} is gone "
            "since the skim was planned"
        )
        self.lfn, self.path = lfn, path

    def __reduce__(self) -> Any:
        # Rebuilt from its arguments when it crosses to the planning process.
        return type(self), (self.lfn, self.path)


def cancel_units(output_dir: Path | str) -> None:
    """Tell the units writing into *output_dir* to stop, wherever they run:
    each removes its temporary file and raises :class:`UnitCancelled`.
    """
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    (output_dir / CANCEL_MARKER).touch()


def clear_cancel(output_dir: Path | str) -> None:
    """Let units write into *output_dir* again (a new run of its plan)."""
    (Path(output_dir) / CANCEL_MARKER).unlink(missing_ok=True)


def extract_unit(plan: Plan, unit: Unit, output_dir: Path | str) -> OutputFile:
    """Write the output file of *unit* into *output_dir*, or describe it when
    a previous run completed it. The file appears under its final name only
    when complete.

    :raises UnitCancelled: when *output_dir* is marked cancelled, before or
        while the unit runs; no file is left behind.
    """
    output_dir = Path(output_dir)
    final = output_dir / unit.name
    if final.is_file():
        return describe_output(plan, unit, final)
    if (output_dir / CANCEL_MARKER).exists():
        raise UnitCancelled(unit.name, 0, unit.events)
    output_dir.mkdir(parents=True, exist_ok=True)
    _remove_leftovers(output_dir, unit.number)
    # Named by the unit's number: a name of the dataset's length could
    # leave the file system's 255 bytes.
    temporary = output_dir / f".{unit.number:06d}.{uuid.uuid4().hex[:8]}.part"
    try:
        written = _write_unit(plan, unit, temporary)
        summary = _publish(temporary, final)
    finally:
        temporary.unlink(missing_ok=True)
    return describe_output(plan, unit, final, events=written, summary=summary)


def _remove_leftovers(output_dir: Path, number: int) -> None:
    """Remove the temporary files of an attempt at unit *number* that
    crashed.
    """
    for leftover in output_dir.glob(f".{number:06d}.*.part"):
        leftover.unlink(missing_ok=True)


def _publish(temporary: Path, final: Path) -> tuple[int, str] | None:
    """Make *temporary* durable and give it its *final* name, unless another
    attempt got there first (its file is as good as ours); return its size
    and adler32, or None when the file under *final* is the other's.
    """
    with temporary.open("rb+") as handle:
        # The checksum is computed while the disk takes the bytes: both
        # leave the interpreter's lock, and each takes about as long.
        syncing = threading.Thread(
            target=os.fsync, args=(handle.fileno(),), name="fsync-output"
        )
        syncing.start()
        try:
            summary = file_adler32(temporary)
        finally:
            # No timeout: the file must be on disk before it is published.
            syncing.join()
    try:
        os.link(temporary, final)
    except FileExistsError:
        return None
    directory = os.open(final.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)
    return summary


def describe_output(
    plan: Plan,
    unit: Unit,
    path: Path,
    *,
    events: int | None = None,
    summary: tuple[int, str] | None = None,
) -> OutputFile:
    """The events, size and adler32 of the complete output file *path*; the
    events are counted in the file unless the writer gives them, and the
    size and adler32 computed unless given (*summary*).
    """
    if events is None:
        with uproot.open(path) as output:
            events = int(output[plan.tree].num_entries)
    sources = tuple(dict.fromkeys(piece.source for piece in unit.pieces))
    size, checksum = summary or file_adler32(path)
    return OutputFile(unit.number, unit.name, path, events, size, checksum, sources)


def file_adler32(path: Path) -> tuple[int, str]:
    """The size and the adler32 of the file *path*, read through a memory
    map (no copy of its bytes; the file was just written, so they are in
    memory already). zlib-ng's adler32 is vectorised: on this project's
    machine it sums 29 GB/s against the standard zlib's 1.7, which took a
    tenth of a unit's CPU time when half of its events were kept.
    """
    with path.open("rb") as handle:
        size = os.fstat(handle.fileno()).st_size
        if size == 0:
            return 0, f"ad:{1:08x}"
        with mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as view:
            value = zlib_ng.adler32(view)
    return size, f"ad:{value & 0xFFFFFFFF:08x}"


def _write_unit(plan: Plan, unit: Unit, path: Path) -> int:
    """Write the output of *unit* to *path*; return the entries written.

    :raises UnitCancelled: as soon as the directory is marked cancelled.
    """
    compression = parse_compression(plan.compression)
    marker = path.parent / CANCEL_MARKER

    def check() -> None:
        if marker.exists():
            raise UnitCancelled(unit.name, writer.entries, unit.events)

    with uproot.recreate(path, compression=compression) as output:
        for name, text in plan.objects:
            output[name] = text
        writer = TreeWriter(output, plan.tree)
        for piece in unit.pieces:
            for chunk in read_piece(piece, plan.tree, plan.branches, check):
                writer.add(chunk)
        check()
        writer.flush()
    return int(writer.tree.num_entries) if writer.tree is not None else 0


# -- Reading only what is needed ---------------------------------------------------


def read_piece(
    piece: Piece,
    tree_name: str,
    branches: Sequence[str],
    check: Callable[[], None] | None = None,
) -> Iterator[dict[str, Column]]:
    """The selected entries of *piece*, one dict of columns per read range
    (:func:`skimengine.baskets.read_entries`); *check* is called between
    branches, and raises to stop.
    """
    with ExitStack() as stack:
        stack.enter_context(reading_event_file(piece.source, piece.path))
        try:
            source = stack.enter_context(SourceTree(piece.path, tree_name))
        except FileNotFoundError:
            raise EventFileGone(piece.source, piece.path) from None
        yield from read_entries(source, branches, piece.entries, check)
